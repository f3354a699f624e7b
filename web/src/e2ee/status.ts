// Per-tile decrypt status from the worker's counters: a tile whose recent frames all fail to
// decrypt says so ("cannot decrypt") instead of showing a black picture.

export interface DecryptCounters {
  /** Frames decrypted. */
  ok: number;
  /** Frames that failed to decrypt (dropped). */
  failed: number;
  /** Failures since the last frame that decrypted. */
  failedRun: number;
}

export type DecryptState = 'waiting' | 'ok' | 'failing';

/** A run this long of failures (a few frames: packet loss alone does not cause it) means the key is wrong. */
export const FAILING_RUN = 5;

export const NO_COUNTERS: DecryptCounters = { ok: 0, failed: 0, failedRun: 0 };

export function addCounters(a: DecryptCounters, b: DecryptCounters): DecryptCounters {
  // A tile's run of failures: the longest among its streams (audio may decrypt while video does not, or the reverse).
  return { ok: a.ok + b.ok, failed: a.failed + b.failed, failedRun: Math.max(a.failedRun, b.failedRun) };
}

export function decryptState(c: DecryptCounters): DecryptState {
  if (c.failedRun >= FAILING_RUN) return 'failing';
  if (c.ok > 0) return 'ok';
  return 'waiting';
}
