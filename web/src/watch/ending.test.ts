import { describe, expect, it } from 'vitest';
import { broadcastOver, bufferedEndAt, type Playback } from './ending';

const at = (currentTime: number, bufferedEnd: number | null, ended = false): Playback => ({
  ended,
  currentTime,
  bufferedEnd,
});

describe('broadcastOver', () => {
  it('is over when the video ended, whatever the playlist says', () => {
    expect(broadcastOver(false, at(10, 10, true), null)).toBe(true);
  });

  it('is never over while the playlist is live, even when playback stalls', () => {
    expect(broadcastOver(false, at(10, 10.1), at(10, 10.1))).toBe(false);
    expect(broadcastOver(false, at(10, null), null)).toBe(false);
  });

  it('is over when the playlist ended and the playhead is at the end of its buffer', () => {
    expect(broadcastOver(true, at(9.8, 10), null)).toBe(true);
    expect(broadcastOver(true, at(10, null), null)).toBe(true);
  });

  it('waits while the ended playlist still has buffered picture to play', () => {
    expect(broadcastOver(true, at(7, 10), null)).toBe(false);
    expect(broadcastOver(true, at(8, 10), at(7, 10))).toBe(false);
  });

  it('is over when the playlist ended and playback stopped short of the buffer end', () => {
    // Audio and video buffered to different ends: the playhead waits at 8 s forever.
    expect(broadcastOver(true, at(8, 10), at(8, 10))).toBe(true);
  });
});

describe('bufferedEndAt', () => {
  const ranges = [
    { start: 0, end: 4 },
    { start: 6, end: 10 },
  ];
  it('finds the range holding the playhead', () => {
    expect(bufferedEndAt(ranges, 2)).toBe(4);
    expect(bufferedEndAt(ranges, 7)).toBe(10);
  });
  it('counts a playhead just before a range as in it (a small gap is jumped)', () => {
    expect(bufferedEndAt(ranges, 5.8)).toBe(10);
  });
  it('is null in a gap or past the end', () => {
    expect(bufferedEndAt(ranges, 5)).toBe(null);
    expect(bufferedEndAt(ranges, 11)).toBe(null);
  });
});
