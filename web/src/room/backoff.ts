// Reconnect delays: exponential backoff with jitter, as a plain function of the attempt number.
// ("Equal jitter": half of the exponential delay is fixed, the other half random, so retries of
// many clients after a server restart spread out but none waits much longer than the nominal delay.)

export interface BackoffOptions {
  /** Delay before the first retry (attempt 0), before jitter. */
  baseMs: number;
  /** Cap on the nominal delay. */
  maxMs: number;
  factor: number;
  /** 0 = no jitter; 0.5 = the delay is uniformly in [50 %, 100 %] of the nominal delay. */
  jitter: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { baseMs: 500, maxMs: 15_000, factor: 2, jitter: 0.5 };

/** Give up (and offer a manual "Rejoin") after this many failed attempts in a row. */
export const MAX_RECONNECT_ATTEMPTS = 12;

/**
 * The delay before retry number `attempt` (0-based). `random` returns a number in [0, 1).
 * Always in [nominal × (1 − jitter), nominal], where nominal = min(maxMs, baseMs × factor^attempt).
 */
export function backoffDelay(attempt: number, options: Partial<BackoffOptions> = {}, random: () => number = Math.random): number {
  const o = { ...DEFAULT_BACKOFF, ...options };
  const n = Math.max(0, Math.floor(Number.isFinite(attempt) ? attempt : 0));
  const nominal = Math.min(o.maxMs, o.baseMs * o.factor ** Math.min(n, 64));
  const jitter = Math.min(1, Math.max(0, o.jitter));
  const r = Math.min(Math.max(random(), 0), 1);
  return Math.round(nominal * (1 - jitter) + nominal * jitter * r);
}
