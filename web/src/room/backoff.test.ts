import { describe, expect, it } from 'vitest';
import { backoffDelay, DEFAULT_BACKOFF } from './backoff';

describe('backoffDelay', () => {
  it('grows exponentially up to the cap (no jitter)', () => {
    const d = [0, 1, 2, 3, 4, 5, 6, 10].map((a) => backoffDelay(a, { jitter: 0 }));
    expect(d).toEqual([500, 1000, 2000, 4000, 8000, 15000, 15000, 15000]);
  });

  it('keeps the delay within [nominal × (1 − jitter), nominal]', () => {
    for (let attempt = 0; attempt < 10; attempt++) {
      const nominal = Math.min(DEFAULT_BACKOFF.maxMs, DEFAULT_BACKOFF.baseMs * 2 ** attempt);
      expect(backoffDelay(attempt, {}, () => 0)).toBe(nominal / 2);
      expect(backoffDelay(attempt, {}, () => 0.999999)).toBe(nominal);
      const mid = backoffDelay(attempt, {}, () => 0.5);
      expect(mid).toBeGreaterThanOrEqual(nominal / 2);
      expect(mid).toBeLessThanOrEqual(nominal);
    }
  });

  it('spreads clients out: different random draws give different delays', () => {
    const seen = new Set([0.1, 0.3, 0.6, 0.9].map((r) => backoffDelay(3, {}, () => r)));
    expect(seen.size).toBe(4);
  });

  it('tolerates odd inputs', () => {
    expect(backoffDelay(-3, { jitter: 0 })).toBe(500);
    expect(backoffDelay(Number.NaN, { jitter: 0 })).toBe(500);
    expect(backoffDelay(1e9, { jitter: 0 })).toBe(15000);
    expect(backoffDelay(0, { jitter: 7 }, () => 0)).toBe(0);
    expect(backoffDelay(2, { baseMs: 100, factor: 3, maxMs: 10_000, jitter: 0 })).toBe(900);
  });
});
