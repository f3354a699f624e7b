import { describe, expect, it } from 'vitest';
import { QualityTracker } from './stats';

const c = (at: number, bytes: number, packets: number, packetsLost = 0) => ({ at, bytes, packets, packetsLost });

describe('QualityTracker', () => {
  it('grades each stream over a sliding window of readings', () => {
    const q = new QualityTracker();
    const rtt = () => 20;
    const video = () => true;
    // First reading: only RTT known.
    let r = q.update(new Map([['a', c(0, 0, 0)]]), rtt, video, 0);
    expect(r.get('a')?.quality).toBe('good');
    expect(r.get('a')?.sample?.bitrateKbps).toBeNull();
    // 500 kbit/s, no loss.
    r = q.update(new Map([['a', c(1000, 62_500, 50)]]), rtt, video, 1000);
    expect(r.get('a')?.quality).toBe('good');
    expect(r.get('a')?.sample?.bitrateKbps).toBe(500);
    // Heavy loss in the window → poor.
    r = q.update(new Map([['a', c(2000, 125_000, 90, 20)]]), rtt, video, 2000);
    expect(r.get('a')?.quality).toBe('poor');
  });

  it('forgets streams that went away', () => {
    const q = new QualityTracker();
    q.update(new Map([['a', c(0, 0, 0)]]), () => null, () => false, 0);
    const r = q.update(new Map([['b', c(1000, 0, 0)]]), () => null, () => false, 1000);
    expect([...r.keys()]).toEqual(['b']);
    // 'a' comes back: no stale history, so no rates yet.
    const again = q.update(new Map([['a', c(2000, 1000, 10)]]), () => null, () => true, 2000);
    expect(again.get('a')?.sample?.bitrateKbps).toBeNull();
  });
});
