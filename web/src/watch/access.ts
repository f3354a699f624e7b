// Private rooms and viewer counting on the watch page, as pure functions: where the viewer
// token comes from, when to fetch a fresh signed HLS URL, how to put the fresh signature on
// every URL hls.js requests, the per-tab viewer id, and the texts.

/** The signature's query parameters (set by the server; see docs/protocol.md). */
const SIGNATURE_PARAMS = ['exp', 'sig'] as const;

/** The viewer token in the watch link (`/watch/{id}?token=…`), if any. */
export function viewerTokenFromSearch(search: string): string | null {
  const t = new URLSearchParams(search).get('token');
  return t && t.trim() !== '' ? t.trim() : null;
}

/** `exp=…&sig=…` of a signed URL, or null when it carries no signature. */
export function signatureOf(url: string): string | null {
  const q = url.indexOf('?');
  if (q < 0) return null;
  const params = new URLSearchParams(url.slice(q + 1));
  const exp = params.get('exp');
  const sig = params.get('sig');
  return exp && sig ? `exp=${exp}&sig=${sig}` : null;
}

/**
 * `url` with its `exp`/`sig` replaced by `signature` (other parameters, e.g. hls.js's
 * `_HLS_msn`, kept in order). The playlist lists every URI with the signature it was loaded
 * with; this keeps a long session going on the fresh one. URLs without a signature (another
 * origin, a public room) are left alone.
 */
export function withSignature(url: string, signature: string | null): string {
  if (!signature) return url;
  const q = url.indexOf('?');
  if (q < 0) return url;
  const hash = url.indexOf('#', q);
  const query = url.slice(q + 1, hash < 0 ? undefined : hash);
  const parts = query.split('&').filter((kv) => kv !== '');
  const isSig = (kv: string) => (SIGNATURE_PARAMS as readonly string[]).includes(kv.split('=')[0]);
  if (!parts.some(isSig)) return url;
  const kept = parts.filter((kv) => !isSig(kv));
  return `${url.slice(0, q)}?${[...kept, signature].join('&')}${hash < 0 ? '' : url.slice(hash)}`;
}

/** Fetch a fresh signed URL this long before the current one expires, at the latest. */
export const REFRESH_MARGIN_MS = 60_000;
/** …and never more often than this. */
export const MIN_REFRESH_MS = 5_000;

/**
 * When to fetch the next signed URL: at 70 % of the remaining life, or a minute before it
 * expires if that is sooner; retries after a failure use the same rule on the old expiry.
 */
export function refreshDelayMs(expiresAtSecs: number, nowMs: number): number {
  const left = expiresAtSecs * 1000 - nowMs;
  return Math.max(MIN_REFRESH_MS, Math.min(left * 0.7, left - REFRESH_MARGIN_MS));
}

/** A new random viewer id (what `X-Roomcast-Viewer` carries): 22 url-safe characters. */
export function newViewerId(random: (n: number) => Uint8Array): string {
  const a = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  return Array.from(random(22), (b) => a[b & 63]).join('');
}

/** Whether `id` is a viewer id the server accepts (`[A-Za-z0-9_-]{8,64}`). */
export function isViewerId(id: string | null | undefined): id is string {
  return typeof id === 'string' && /^[A-Za-z0-9_-]{8,64}$/.test(id);
}

export function viewersText(n: number): string {
  return `${n} watching`;
}

/** What the watch page shows when it cannot get the stream's URL. */
export type AccessProblem = 'private' | 'link_invalid' | 'not_found' | 'unavailable';

export const ACCESS_TEXT: Record<AccessProblem, string> = {
  private: 'This broadcast is private — ask the host for a viewer link.',
  link_invalid: 'This viewer link is not valid for this broadcast or has expired — ask the host for a new one.',
  not_found: 'There is no such room.',
  unavailable: 'The server could not be reached; retrying…',
};

/** An answer of `GET /api/rooms/{id}/hls-url` that is not 200, as a problem to show. */
export function accessProblem(status: number, hadToken: boolean): AccessProblem {
  if (status === 404) return 'not_found';
  if (status === 401 || status === 403) return hadToken ? 'link_invalid' : 'private';
  return 'unavailable';
}
