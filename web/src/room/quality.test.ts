import { describe, expect, it } from 'vitest';
import { classifyQuality, describeQuality, rates, sumCounters } from './quality';

describe('rates', () => {
  it('computes bitrate and loss over the interval', () => {
    const s = rates({ at: 0, bytes: 0, packets: 0, packetsLost: 0 }, { at: 2000, bytes: 125_000, packets: 95, packetsLost: 5 }, 40);
    expect(s.bitrateKbps).toBe(500);
    expect(s.lossPct).toBe(5);
    expect(s.rttMs).toBe(40);
  });

  it('knows nothing from a single reading or a clock that did not move', () => {
    const c = { at: 1000, bytes: 10, packets: 1, packetsLost: 0 };
    expect(rates(undefined, c, null)).toEqual({ rttMs: null, lossPct: null, bitrateKbps: null });
    expect(rates(c, c, 12)).toEqual({ rttMs: 12, lossPct: null, bitrateKbps: null });
  });

  it('never reports negative rates when counters reset (a new stream)', () => {
    const s = rates({ at: 0, bytes: 1e6, packets: 1000, packetsLost: 50 }, { at: 1000, bytes: 10, packets: 5, packetsLost: 0 }, null);
    expect(s.bitrateKbps).toBe(0);
    expect(s.lossPct).toBeNull();
  });

  it('no packets expected → loss unknown', () => {
    const s = rates({ at: 0, bytes: 0, packets: 10, packetsLost: 0 }, { at: 1000, bytes: 0, packets: 10, packetsLost: 0 }, null);
    expect(s.lossPct).toBeNull();
  });
});

describe('classifyQuality', () => {
  const q = (rttMs: number | null, lossPct: number | null, bitrateKbps: number | null, video = true) =>
    classifyQuality({ rttMs, lossPct, bitrateKbps }, video);

  it('good when RTT, loss and bitrate are fine', () => {
    expect(q(30, 0, 600)).toBe('good');
  });
  it('fair on moderate loss, RTT or a thin video stream', () => {
    expect(q(30, 3, 600)).toBe('fair');
    expect(q(300, 0, 600)).toBe('fair');
    expect(q(30, 0, 30)).toBe('fair');
    expect(q(30, 0, 60)).toBe('good');
  });
  it('poor on heavy loss, long RTT or a starved video stream; the worst wins', () => {
    expect(q(30, 10, 600)).toBe('poor');
    expect(q(800, 0, 600)).toBe('poor');
    expect(q(30, 0, 10)).toBe('poor');
    expect(q(300, 10, 30)).toBe('poor');
  });
  it('ignores bitrate when no video is expected (camera off, audio only)', () => {
    expect(q(30, 0, 5, false)).toBe('good');
  });
  it('unknown until something is measured', () => {
    expect(q(null, null, null)).toBe('unknown');
    expect(q(null, null, 500, false)).toBe('unknown');
  });
});

describe('sumCounters / describeQuality', () => {
  it('adds streams up', () => {
    expect(sumCounters([])).toBeUndefined();
    expect(
      sumCounters([
        { at: 5, bytes: 1, packets: 2, packetsLost: 3 },
        { at: 7, bytes: 10, packets: 20, packetsLost: 30 },
      ]),
    ).toEqual({ at: 7, bytes: 11, packets: 22, packetsLost: 33 });
  });
  it('describes a sample', () => {
    expect(describeQuality('fair', { rttMs: 180.4, lossPct: 3.14, bitrateKbps: 420.2 })).toBe(
      'Fair connection · 180 ms · 3.1 % loss · 420 kbit/s',
    );
    expect(describeQuality('unknown', null)).toBe('Connection quality not known yet');
  });
});
