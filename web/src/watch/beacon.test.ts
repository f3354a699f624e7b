import { describe, expect, it } from 'vitest';
import { BEACON_EVERY_MS, beaconDue, beaconUrl } from './beacon';

describe('watching beacons', () => {
  it('go next to the playlist, with its query', () => {
    expect(beaconUrl('/hls/r-1/index.m3u8')).toBe('/hls/r-1/watching');
    expect(beaconUrl('/hls/r-1/index.m3u8?exp=9&sig=a?b')).toBe('/hls/r-1/watching?exp=9&sig=a?b');
    expect(beaconUrl('https://edge.example/hls/r-1/index.m3u8?exp=9')).toBe('https://edge.example/hls/r-1/watching?exp=9');
    expect(beaconUrl('/hls/r-1/part5.1.m4s')).toBeNull();
  });

  it('are sent once per interval', () => {
    expect(beaconDue(null, 0)).toBe(true);
    expect(beaconDue(1000, 1000 + BEACON_EVERY_MS - 1)).toBe(false);
    expect(beaconDue(1000, 1000 + BEACON_EVERY_MS)).toBe(true);
  });
});
