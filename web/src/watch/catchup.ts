// How fast the watch page plays to stay at the target latency (PART-HOLD-BACK from the
// playlist, hls.js's `targetLatency`). hls.js speeds up by itself only with more than a second
// buffered, which a player half a second behind the live edge never has: it stayed wherever it
// started, up to a segment behind the target (playback starts at an independent part), so the
// picture was 1.2-1.4 s late instead of 0.8 s. This plays slightly faster until it is there.

/** Close enough: no faster playback for a smaller gap (and where faster playback stops). */
export const NEAR_S = 0.1;
const STOP_S = 0.03;
/** Below this much buffered ahead, faster playback would run into a stall: normal speed. */
export const MIN_AHEAD_S = 0.25;
/** Faster playback per second behind the target, and its limits: hardly audible up to 1.25x. */
const GAIN = 0.5;
const MAX_RATE_SHORT_BUFFER = 1.25;
const MAX_RATE = 1.5;

/**
 * The playback rate for `latency` seconds behind the live edge against `target`, with
 * `ahead` seconds buffered past the playhead; `current`: the rate now (faster playback goes on
 * until the gap is nearly closed, so it does not flap around the threshold).
 */
export function catchUpRate(latency: number | null, target: number | null, ahead: number, current: number): number {
  if (latency == null || target == null || !Number.isFinite(latency) || !Number.isFinite(target)) return 1;
  const behind = latency - target;
  const speeding = current > 1;
  if (behind < (speeding ? STOP_S : NEAR_S) || ahead < MIN_AHEAD_S) return 1;
  const max = ahead > 1 ? MAX_RATE : MAX_RATE_SHORT_BUFFER;
  // In steps of 0.05 (a new rate for every small change of the estimate would be noise).
  return Math.min(max, Math.round((1 + behind * GAIN) * 20) / 20 || 1);
}
