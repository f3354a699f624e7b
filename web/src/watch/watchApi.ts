// The watch page's calls: the (signed) HLS URL of a room and its broadcast status. Errors
// come back as values (status codes), since the page shows each case differently.
import { isViewerId, newViewerId } from './access';

export interface HlsUrl {
  hls_url: string;
  private: boolean;
  /** Unix seconds; private rooms only. */
  expires_at?: number;
}

export type HlsUrlResult = { ok: true; url: HlsUrl } | { ok: false; status: number; message: string };

/** `GET /api/rooms/{id}/hls-url`, with the viewer token when there is one. */
export async function fetchHlsUrl(roomId: string, token: string | null): Promise<HlsUrlResult> {
  try {
    const res = await fetch(`/api/rooms/${encodeURIComponent(roomId)}/hls-url`, {
      cache: 'no-store',
      headers: token ? { Authorization: `Bearer ${token}` } : {},
    });
    const body: unknown = await res.json().catch(() => null);
    if (res.ok && body && typeof body === 'object' && typeof (body as HlsUrl).hls_url === 'string') {
      return { ok: true, url: body as HlsUrl };
    }
    const message = body && typeof body === 'object' && typeof (body as { message?: unknown }).message === 'string' ? (body as { message: string }).message : res.statusText;
    return { ok: false, status: res.status, message };
  } catch (e) {
    return { ok: false, status: 0, message: e instanceof Error ? e.message : String(e) };
  }
}

/** The audience of the room's broadcast, or null when it cannot be read. */
export async function fetchViewers(roomId: string): Promise<number | null> {
  try {
    const res = await fetch(`/api/rooms/${encodeURIComponent(roomId)}/broadcast`, { cache: 'no-store' });
    if (!res.ok) return null;
    const body = (await res.json()) as { viewers?: unknown };
    return typeof body.viewers === 'number' ? body.viewers : null;
  } catch {
    return null;
  }
}

const VIEWER_ID_KEY = 'roomcast.viewer-id';

/**
 * This tab's viewer id, sent as `X-Roomcast-Viewer` so the server counts the tab once (a
 * reload keeps it: sessionStorage is per tab).
 */
export function viewerId(): string {
  try {
    const kept = sessionStorage.getItem(VIEWER_ID_KEY);
    if (isViewerId(kept)) return kept;
    const id = newViewerId((n) => crypto.getRandomValues(new Uint8Array(n)));
    sessionStorage.setItem(VIEWER_ID_KEY, id);
    return id;
  } catch {
    return newViewerId((n) => crypto.getRandomValues(new Uint8Array(n)));
  }
}
