// Understands what a person pastes into "Join a room": a room or watch link, a path, or an id.
import { parseRoute } from '../routes';

export type RoomLink = { page: 'room' | 'watch'; roomId: string };

export function parseRoomLink(input: string): RoomLink | null {
  const text = input.trim();
  if (!text) return null;
  let pathname: string | null = null;
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(text)) {
    try {
      pathname = new URL(text).pathname;
    } catch {
      return null;
    }
  } else if (text.startsWith('/')) {
    pathname = text.split(/[?#]/)[0];
  } else if (/^(room|watch)\//.test(text)) {
    pathname = `/${text.split(/[?#]/)[0]}`;
  }
  if (pathname !== null) {
    const route = parseRoute(pathname);
    return route.page === 'room' || route.page === 'watch' ? route : null;
  }
  // A bare room id: letters, digits, '-' and '_'.
  return /^[A-Za-z0-9_-]{1,128}$/.test(text) ? { page: 'room', roomId: text } : null;
}
