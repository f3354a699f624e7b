// Query parameters of the room page: ?name=Ada prefills the display name, ?autojoin=1 joins
// without asking (used by tests and links from other tools).
export interface RoomParams {
  name: string | null;
  autojoin: boolean;
}

export const MAX_NAME_LENGTH = 64;

export function parseRoomParams(search: string): RoomParams {
  const q = new URLSearchParams(search);
  const name = cleanName(q.get('name') ?? '');
  const auto = (q.get('autojoin') ?? '').toLowerCase();
  return { name: name || null, autojoin: auto === '1' || auto === 'true' || auto === 'yes' };
}

/** Trims, collapses whitespace and caps the length of a display name. */
export function cleanName(name: string): string {
  return name.replace(/\s+/g, ' ').trim().slice(0, MAX_NAME_LENGTH);
}

export function guestName(random: () => number = Math.random): string {
  return `Guest ${100 + Math.floor(random() * 900)}`;
}

const NAME_KEY = 'roomcast.name';

export function rememberedName(): string | null {
  try {
    return window.localStorage.getItem(NAME_KEY);
  } catch {
    return null;
  }
}

export function rememberName(name: string): void {
  try {
    window.localStorage.setItem(NAME_KEY, name);
  } catch {
    // private mode: fine
  }
}
