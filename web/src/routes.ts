// Client-side routes. The gateway serves index.html for /room/{id} and /watch/{id}.
import { useSyncExternalStore } from 'react';

export type Route =
  | { page: 'lobby' }
  | { page: 'room'; roomId: string }
  | { page: 'watch'; roomId: string }
  | { page: 'not_found'; path: string };

function decode(segment: string): string | null {
  try {
    const id = decodeURIComponent(segment);
    return id.length > 0 ? id : null;
  } catch {
    return null;
  }
}

export function parseRoute(pathname: string): Route {
  const path = pathname.replace(/\/+$/, '') || '/';
  if (path === '/' || path === '/index.html') return { page: 'lobby' };
  const m = /^\/(room|watch)\/([^/]+)$/.exec(path);
  if (m) {
    const roomId = decode(m[2]);
    if (roomId) return m[1] === 'room' ? { page: 'room', roomId } : { page: 'watch', roomId };
  }
  return { page: 'not_found', path: pathname };
}

export const roomPath = (roomId: string) => `/room/${encodeURIComponent(roomId)}`;
export const watchPath = (roomId: string) => `/watch/${encodeURIComponent(roomId)}`;

const NAV_EVENT = 'roomcast:navigate';

export function navigate(path: string): void {
  if (path === window.location.pathname + window.location.search) return;
  window.history.pushState(null, '', path);
  window.dispatchEvent(new Event(NAV_EVENT));
}

function subscribe(cb: () => void): () => void {
  window.addEventListener('popstate', cb);
  window.addEventListener(NAV_EVENT, cb);
  return () => {
    window.removeEventListener('popstate', cb);
    window.removeEventListener(NAV_EVENT, cb);
  };
}

/** The current location (pathname + search), re-rendering on navigation. */
export function useLocation(): string {
  return useSyncExternalStore(
    subscribe,
    () => window.location.pathname + window.location.search,
    () => '/',
  );
}
