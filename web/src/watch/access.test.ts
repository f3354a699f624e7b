import { describe, expect, it } from 'vitest';
import {
  accessProblem,
  isViewerId,
  MIN_REFRESH_MS,
  newViewerId,
  refreshDelayMs,
  signatureOf,
  viewersText,
  viewerTokenFromSearch,
  withSignature,
} from './access';

const OLD = 'exp=1800000300&sig=OLD_sig-1';
const NEW = 'exp=1800000600&sig=NEW_sig-2';

describe('viewer token and signatures', () => {
  it('reads the token from the watch link', () => {
    expect(viewerTokenFromSearch('?token=abc.def.ghi')).toBe('abc.def.ghi');
    expect(viewerTokenFromSearch('?x=1&token=t')).toBe('t');
    expect(viewerTokenFromSearch('')).toBeNull();
    expect(viewerTokenFromSearch('?token=')).toBeNull();
  });

  it('takes the signature of a signed URL', () => {
    expect(signatureOf(`/hls/r-1/index.m3u8?${OLD}`)).toBe(OLD);
    expect(signatureOf('/hls/r-1/index.m3u8')).toBeNull();
    expect(signatureOf('/hls/r-1/index.m3u8?exp=1')).toBeNull();
  });

  it('puts the fresh signature on every URL hls.js asks for, keeping LL-HLS directives', () => {
    const base = 'http://127.0.0.1:8080/hls/r-1';
    expect(withSignature(`${base}/index.m3u8?${OLD}`, NEW)).toBe(`${base}/index.m3u8?${NEW}`);
    expect(withSignature(`${base}/index.m3u8?${OLD}&_HLS_msn=12&_HLS_part=2`, NEW)).toBe(
      `${base}/index.m3u8?_HLS_msn=12&_HLS_part=2&${NEW}`,
    );
    expect(withSignature(`${base}/part-12.2.m4s?${OLD}`, NEW)).toBe(`${base}/part-12.2.m4s?${NEW}`);
    expect(withSignature(`${base}/init-3.mp4?${OLD}#x`, NEW)).toBe(`${base}/init-3.mp4?${NEW}#x`);
    // unsigned URLs and no fresh signature: unchanged
    expect(withSignature(`${base}/index.m3u8`, NEW)).toBe(`${base}/index.m3u8`);
    expect(withSignature(`${base}/index.m3u8?_HLS_msn=1`, NEW)).toBe(`${base}/index.m3u8?_HLS_msn=1`);
    expect(withSignature(`${base}/index.m3u8?${OLD}`, null)).toBe(`${base}/index.m3u8?${OLD}`);
    // "expires" is not "exp"
    expect(withSignature(`${base}/x?expires=1`, NEW)).toBe(`${base}/x?expires=1`);
  });
});

describe('refreshDelayMs', () => {
  const now = 1_800_000_000_000;
  it('refreshes a minute before expiry, or at 70 % of a short life', () => {
    expect(refreshDelayMs(1_800_000_300, now)).toBe(210_000); // 5 min URL: after 3.5 min
    expect(refreshDelayMs(1_800_000_100, now)).toBe(40_000); // 100 s left: min(70 s, 40 s)
    expect(refreshDelayMs(1_800_000_030, now)).toBe(MIN_REFRESH_MS); // 30 s: not more often than 5 s
    expect(refreshDelayMs(1_799_999_000, now)).toBe(MIN_REFRESH_MS); // already expired
  });
});

describe('viewer id and texts', () => {
  it('makes ids the server accepts', () => {
    const id = newViewerId((n) => Uint8Array.from({ length: n }, (_, i) => i * 37));
    expect(id).toHaveLength(22);
    expect(isViewerId(id)).toBe(true);
    expect(isViewerId('short')).toBe(false);
    expect(isViewerId('has space here')).toBe(false);
    expect(isViewerId(null)).toBe(false);
    expect(isViewerId('x'.repeat(65))).toBe(false);
  });

  it('says what is wrong and how many watch', () => {
    expect(accessProblem(401, false)).toBe('private');
    expect(accessProblem(401, true)).toBe('link_invalid');
    expect(accessProblem(403, true)).toBe('link_invalid');
    expect(accessProblem(404, true)).toBe('not_found');
    expect(accessProblem(503, false)).toBe('unavailable');
    expect(viewersText(1)).toBe('1 watching');
    expect(viewersText(12)).toBe('12 watching');
  });
});
