// "Watching" beacons: behind an edge cache or a CDN the server never sees a viewer's playlist
// requests (the cache answers them), so the page says it is watching, with a POST no cache
// answers (POST /hls/{id}/watching, hls-out/src/routes.rs), every BEACON_EVERY_MS while it
// plays. The server counts a beacon for 25 s.

/** Matches hls-out's BEACON_EVERY. */
export const BEACON_EVERY_MS = 10_000;

/**
 * The beacon URL for a playlist URL: the same directory and query (a private room's signature
 * is checked as for the playlist), `watching` in place of `index.m3u8`. Null for a URL that
 * is not a stream's playlist.
 */
export function beaconUrl(playlist: string): string | null {
  const [path, query] = playlist.split(/\?(.*)/s, 2);
  if (!path.endsWith('/index.m3u8')) return null;
  const url = `${path.slice(0, -'index.m3u8'.length)}watching`;
  return query ? `${url}?${query}` : url;
}

/** Whether a beacon is due at `now`, the last one having gone at `last` (null: none yet). */
export function beaconDue(last: number | null, now: number): boolean {
  return last === null || now - last >= BEACON_EVERY_MS;
}
