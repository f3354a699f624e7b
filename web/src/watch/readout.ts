// Plain helpers for the watch page's readouts (latency, delay).
/**
 * Seconds from the program date time of the frame on screen to now; null when unknown or
 * implausible (clocks of server and viewer more than a minute apart).
 */
export function programDelay(playingDateMs: number | null, nowMs: number): number | null {
  if (playingDateMs === null || !Number.isFinite(playingDateMs) || playingDateMs <= 0) return null;
  const d = (nowMs - playingDateMs) / 1000;
  return d > -5 && d < 60 ? Math.max(0, d) : null;
}

/** "1.4 s" / "12 s": short, steady text for the latency readout. */
export function formatSeconds(s: number): string {
  return s < 10 ? `${s.toFixed(1)} s` : `${Math.round(s)} s`;
}
