// What to do about a fatal hls.js error, as a pure function of the recent error history.
// (hls.js's own advice: media errors → recoverMediaError, twice in a row → swapAudioCodec too;
// network errors → startLoad again; anything else or too many → start over.)

export type ErrorKind = 'media' | 'network' | 'other';

export interface RecoveryHistory {
  /** Times (ms) of recent media recoveries. */
  mediaRecoveries: number[];
  /** Times (ms) of recent network retries. */
  networkRetries: number[];
}

export type RecoveryAction = {
  do: 'recover_media' | 'swap_codec_and_recover' | 'check_then_restart_load' | 'rebuild';
  delayMs: number;
  history: RecoveryHistory;
};

export const WINDOW_MS = 30_000;
export const MAX_MEDIA_RECOVERIES = 3;
export const MAX_NETWORK_RETRIES = 5;
const QUICK_REPEAT_MS = 3_000;

const EMPTY: RecoveryHistory = { mediaRecoveries: [], networkRetries: [] };

export function nextRecovery(history: RecoveryHistory, kind: ErrorKind, now: number): RecoveryAction {
  const recent = (xs: number[]) => xs.filter((t) => now - t < WINDOW_MS);
  const media = recent(history.mediaRecoveries);
  const network = recent(history.networkRetries);
  if (kind === 'media') {
    if (media.length >= MAX_MEDIA_RECOVERIES) return { do: 'rebuild', delayMs: 1000, history: EMPTY };
    const last = media[media.length - 1];
    const quick = last !== undefined && now - last < QUICK_REPEAT_MS;
    return {
      do: quick ? 'swap_codec_and_recover' : 'recover_media',
      delayMs: 0,
      history: { mediaRecoveries: [...media, now], networkRetries: network },
    };
  }
  if (kind === 'network') {
    if (network.length >= MAX_NETWORK_RETRIES) return { do: 'rebuild', delayMs: 3000, history: EMPTY };
    return {
      do: 'check_then_restart_load',
      delayMs: Math.min(500 * 2 ** network.length, 8000),
      history: { mediaRecoveries: media, networkRetries: [...network, now] },
    };
  }
  return { do: 'rebuild', delayMs: 1000, history: EMPTY };
}

/**
 * Seconds behind the live edge past which the player starts over at the live edge. It happens
 * when a new stream appears under the same URL (the room moved to another node of a cluster,
 * whose broadcast has its own timeline) or after a long stall; either way a live viewer wants
 * the live picture, not minutes of waiting.
 */
export const RESYNC_BEHIND_S = 15;
/** At most one such restart per this long (a stream that keeps jumping is not chased). */
export const RESYNC_EVERY_MS = 30_000;

export function shouldResync(latency: number | null, lastResyncAt: number | null, now: number): boolean {
  if (latency === null || latency <= RESYNC_BEHIND_S) return false;
  return lastResyncAt === null || now - lastResyncAt >= RESYNC_EVERY_MS;
}
