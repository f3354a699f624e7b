// Query parameters of the room page: ?name=Ada prefills the display name, ?autojoin=1 joins
// without the lobby (used by tests and links from other tools), ?preset=low picks the quality.
import { parsePreset, type PresetId } from './presets';

export interface RoomParams {
  name: string | null;
  autojoin: boolean;
  /** ?preset=hd|sd|low: the video quality preset (overrides the remembered one). */
  preset: PresetId | null;
}

export const MAX_NAME_LENGTH = 64;

export function parseRoomParams(search: string): RoomParams {
  const q = new URLSearchParams(search);
  const name = cleanName(q.get('name') ?? '');
  const auto = (q.get('autojoin') ?? '').toLowerCase();
  return { name: name || null, autojoin: auto === '1' || auto === 'true' || auto === 'yes', preset: parsePreset(q.get('preset')) };
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
