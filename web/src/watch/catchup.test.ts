import { describe, expect, it } from 'vitest';
import { MIN_AHEAD_S, catchUpRate } from './catchup';

describe('catchUpRate', () => {
  it('plays at normal speed at the target, or without an estimate', () => {
    expect(catchUpRate(0.6, 0.6, 0.5, 1)).toBe(1);
    expect(catchUpRate(0.65, 0.6, 0.5, 1)).toBe(1);
    expect(catchUpRate(null, 0.6, 0.5, 1)).toBe(1);
    expect(catchUpRate(1, null, 0.5, 1)).toBe(1);
    expect(catchUpRate(Number.NaN, 0.6, 0.5, 1)).toBe(1);
  });

  it('plays faster when behind the target, more the further behind, within limits', () => {
    const half = catchUpRate(1.1, 0.6, 0.5, 1);
    expect(half).toBeGreaterThan(1);
    expect(half).toBeLessThanOrEqual(1.25);
    expect(catchUpRate(0.9, 0.6, 0.5, 1)).toBeLessThan(half);
    expect(catchUpRate(5, 0.6, 0.5, 1)).toBe(1.25); // a short buffer: at most 1.25x
    expect(catchUpRate(5, 0.6, 3, 1)).toBe(1.5); // more than a second buffered: up to 1.5x
  });

  it('never plays faster with too little buffered (that would stall)', () => {
    expect(catchUpRate(2, 0.6, MIN_AHEAD_S - 0.01, 1)).toBe(1);
    expect(catchUpRate(2, 0.6, MIN_AHEAD_S - 0.01, 1.2)).toBe(1);
  });

  it('keeps catching up until the gap is nearly closed (no flapping at the threshold)', () => {
    expect(catchUpRate(0.67, 0.6, 0.5, 1)).toBe(1); // not started for 70 ms
    expect(catchUpRate(0.67, 0.6, 0.5, 1.05)).toBeGreaterThan(1); // but not stopped either
    expect(catchUpRate(0.62, 0.6, 0.5, 1.05)).toBe(1);
  });
});
