// Active speaker from audio levels (0..1, as getStats() reports them), with hysteresis so the
// highlight does not flicker between two people talking over each other.

export interface SpeakerState {
  /** The highlighted participant, or null. */
  id: string | null;
  /** When the highlighted participant was last heard above the threshold (ms). */
  lastLoudAt: number;
}

export interface SpeakerOptions {
  /** Levels below this are silence. */
  threshold: number;
  /** Someone else takes over only when louder than the current speaker by this factor… */
  switchFactor: number;
  /** …or when the current speaker has been quiet for this long. */
  holdMs: number;
  /** The highlight goes away after this much silence. */
  clearMs: number;
}

export const SPEAKER_DEFAULTS: SpeakerOptions = { threshold: 0.02, switchFactor: 1.5, holdMs: 1200, clearMs: 4000 };

export const NO_SPEAKER: SpeakerState = { id: null, lastLoudAt: 0 };

export function nextActiveSpeaker(
  levels: ReadonlyMap<string, number>,
  prev: SpeakerState,
  now: number,
  options: Partial<SpeakerOptions> = {},
): SpeakerState {
  const o = { ...SPEAKER_DEFAULTS, ...options };
  let loudest: string | null = null;
  let loudestLevel = 0;
  for (const [id, level] of levels) {
    if (level >= o.threshold && level > loudestLevel) {
      loudest = id;
      loudestLevel = level;
    }
  }
  const current = prev.id;
  const currentLevel = current !== null ? (levels.get(current) ?? 0) : 0;
  const currentPresent = current !== null && levels.has(current);

  if (current !== null && currentPresent && currentLevel >= o.threshold) {
    // The current speaker is still talking: only a clearly louder voice takes over.
    if (loudest !== null && loudest !== current && loudestLevel >= currentLevel * o.switchFactor) {
      return { id: loudest, lastLoudAt: now };
    }
    return { id: current, lastLoudAt: now };
  }
  if (loudest !== null) {
    // The current speaker is quiet (or gone): someone else takes over once the hold expired.
    if (current === null || !currentPresent || now - prev.lastLoudAt >= o.holdMs) return { id: loudest, lastLoudAt: now };
    return prev;
  }
  if (current !== null && (!currentPresent || now - prev.lastLoudAt >= o.clearMs)) return NO_SPEAKER;
  return prev;
}
