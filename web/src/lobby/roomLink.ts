// Understands what a person pastes into "Join a room": a room or watch link, a path, or an id.
// The key of an end-to-end encrypted room (`#key=…`) is kept, so the room page can decrypt,
// and so is the invite of an invite link (`?invite=…`), so the room page can join with it.
import { keyFromHash } from '../e2ee/passphrase';
import { inviteFromSearch } from '../room/invite';
import { parseRoute } from '../routes';

export type RoomLink = { page: 'room' | 'watch'; roomId: string; key?: string; invite?: string };

export function parseRoomLink(input: string): RoomLink | null {
  const text = input.trim();
  if (!text) return null;
  let pathname: string | null = null;
  let hash = '';
  let search = '';
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(text)) {
    try {
      const url = new URL(text);
      pathname = url.pathname;
      hash = url.hash;
      search = url.search;
    } catch {
      return null;
    }
  } else if (text.startsWith('/') || /^(room|watch)\//.test(text)) {
    pathname = `${text.startsWith('/') ? '' : '/'}${text.split(/[?#]/)[0]}`;
    const at = text.indexOf('#');
    hash = at >= 0 ? text.slice(at) : '';
    const q = text.split('#')[0].indexOf('?');
    search = q >= 0 ? text.split('#')[0].slice(q) : '';
  }
  if (pathname !== null) {
    const route = parseRoute(pathname);
    if (route.page !== 'room' && route.page !== 'watch') return null;
    if (route.page === 'watch') return route;
    const key = keyFromHash(hash);
    const invite = inviteFromSearch(search);
    return { ...route, ...(key ? { key } : {}), ...(invite ? { invite } : {}) };
  }
  // A bare room id: letters, digits, '-' and '_'.
  return /^[A-Za-z0-9_-]{1,128}$/.test(text) ? { page: 'room', roomId: text } : null;
}
