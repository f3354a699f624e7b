import { describe, expect, it } from 'vitest';
import { MAX_NETWORK_RETRIES, nextRecovery, RESYNC_BEHIND_S, RESYNC_EVERY_MS, shouldResync, type RecoveryHistory } from './recovery';

const empty: RecoveryHistory = { mediaRecoveries: [], networkRetries: [] };

describe('nextRecovery', () => {
  it('recovers media errors, swaps codecs on a quick repeat, rebuilds after too many', () => {
    let a = nextRecovery(empty, 'media', 1000);
    expect(a.do).toBe('recover_media');
    a = nextRecovery(a.history, 'media', 2000);
    expect(a.do).toBe('swap_codec_and_recover');
    a = nextRecovery(a.history, 'media', 10000);
    expect(a.do).toBe('recover_media');
    a = nextRecovery(a.history, 'media', 11000);
    expect(a.do).toBe('rebuild');
    expect(a.history).toEqual(empty);
  });

  it('forgets media errors older than the window', () => {
    const a = nextRecovery({ mediaRecoveries: [0, 1, 2], networkRetries: [] }, 'media', 60_000);
    expect(a.do).toBe('recover_media');
  });

  it('retries network errors with growing delays, then rebuilds', () => {
    let h = empty;
    const delays: number[] = [];
    for (let i = 0; i < MAX_NETWORK_RETRIES; i++) {
      const a = nextRecovery(h, 'network', 1000 + i);
      expect(a.do).toBe('check_then_restart_load');
      delays.push(a.delayMs);
      h = a.history;
    }
    expect(delays).toEqual([500, 1000, 2000, 4000, 8000]);
    expect(nextRecovery(h, 'network', 2000).do).toBe('rebuild');
  });

  it('rebuilds on other fatal errors', () => {
    expect(nextRecovery(empty, 'other', 0).do).toBe('rebuild');
  });
});

describe('resync to the live edge', () => {
  it('starts over when far behind the edge, at most once per interval', () => {
    expect(shouldResync(null, null, 0)).toBe(false);
    expect(shouldResync(1.4, null, 0)).toBe(false);
    expect(shouldResync(RESYNC_BEHIND_S, null, 0)).toBe(false);
    expect(shouldResync(101.7, null, 0)).toBe(true);
    expect(shouldResync(101.7, 0, RESYNC_EVERY_MS - 1)).toBe(false);
    expect(shouldResync(101.7, 0, RESYNC_EVERY_MS)).toBe(true);
  });
});
