import { describe, expect, it } from 'vitest';
import { e2eeDebug } from './debug';

describe('debug handle', () => {
  it('e2ee counters add up over every transform', () => {
    const receivers = new Map([
      ['1/subscribe/0', { ok: 10, failed: 2, failedRun: 0 }],
      ['2/subscribe/1', { ok: 5, failed: 1, failedRun: 1 }],
    ]);
    const senders = new Map([
      ['1/publish/0', 7],
      ['2/publish/1', 3],
    ]);
    expect(e2eeDebug('script-transform', { receivers, senders })).toEqual({ api: 'script-transform', decryptFailures: 3, decrypted: 15, encrypted: 10 });
    expect(e2eeDebug('encoded-streams', { receivers: new Map(), senders: new Map() })).toEqual({ api: 'encoded-streams', decryptFailures: 0, decrypted: 0, encrypted: 0 });
  });
});
