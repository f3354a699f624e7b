import { describe, expect, it } from 'vitest';
import { formatSeconds, programDelay } from './readout';

describe('programDelay', () => {
  it('is the time from the program date time on screen to now', () => {
    expect(programDelay(10_000, 12_500)).toBe(2.5);
  });
  it('is unknown without a date, or when the clocks disagree wildly', () => {
    expect(programDelay(null, 1000)).toBeNull();
    expect(programDelay(0, 1000)).toBeNull();
    expect(programDelay(1000, 1000 + 120_000)).toBeNull();
    expect(programDelay(100_000, 90_000)).toBeNull();
  });
  it('a slightly fast server clock reads as zero, not negative', () => {
    expect(programDelay(10_500, 10_000)).toBe(0);
  });
});

describe('formatSeconds', () => {
  it('one decimal below 10 s', () => {
    expect(formatSeconds(1.44)).toBe('1.4 s');
    expect(formatSeconds(12.6)).toBe('13 s');
  });
});
