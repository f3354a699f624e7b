import { describe, expect, it } from 'vitest';
import {
  DecryptError,
  FRAME_VERSION,
  IV_BYTES,
  TAG_BYTES,
  TRAILER_BYTES,
  buildIv,
  clearHeaderLength,
  decryptFrame,
  deriveRoomKey,
  encryptFrame,
} from './frame';
import { generatePassphrase, keyFromHash, withKey } from './passphrase';
import { FAILING_RUN, addCounters, decryptState } from './status';

// Few iterations keep the tests fast; the parameters are otherwise the real ones.
const key = (pass = 'correct horse', room = 'r-1') => deriveRoomKey(pass, room, 1000);

/** A VP8-keyframe-shaped frame: tag, start code 9d 01 2a, 320×180, then payload. */
function vp8Key(len = 200): Uint8Array {
  const f = new Uint8Array(len);
  f.set([0x50, 0x42, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xb4, 0x00]);
  for (let i = 10; i < len; i++) f[i] = (i * 7) & 0xff;
  return f;
}

describe('clearHeaderLength', () => {
  it('keeps 10 bytes of a VP8 keyframe, 3 of a delta frame, 1 of audio', () => {
    expect(clearHeaderLength('video', 'key')).toBe(10);
    expect(clearHeaderLength('video', 'delta')).toBe(3);
    expect(clearHeaderLength('audio')).toBe(1);
  });
});

describe('buildIv', () => {
  it('is SSRC ‖ salt ‖ counter, big-endian', () => {
    expect([...buildIv(0x01020304, 0xa0b0c0d0, 7)]).toEqual([1, 2, 3, 4, 0xa0, 0xb0, 0xc0, 0xd0, 0, 0, 0, 7]);
    expect(buildIv(1, 2, 3)).toHaveLength(IV_BYTES);
    // Counters wrap at 2^32 instead of throwing.
    expect([...buildIv(0, 0, 2 ** 32 + 1).subarray(8)]).toEqual([0, 0, 0, 1]);
  });
});

describe('encryptFrame / decryptFrame', () => {
  it('round-trips a keyframe and keeps its 10 header bytes in clear', async () => {
    const k = await key();
    const frame = vp8Key();
    const enc = new Uint8Array(await encryptFrame(k, frame, 10, buildIv(5, 6, 1)));
    expect(enc.length).toBe(frame.length + TAG_BYTES + TRAILER_BYTES);
    expect([...enc.subarray(0, 10)]).toEqual([...frame.subarray(0, 10)]);
    expect([...enc.subarray(10, 40)]).not.toEqual([...frame.subarray(10, 40)]);
    expect(enc[enc.length - 1]).toBe(FRAME_VERSION);
    expect(enc[enc.length - 2]).toBe(10);
    const dec = new Uint8Array(await decryptFrame(k, enc));
    expect([...dec]).toEqual([...frame]);
  });

  it('round-trips a delta frame (3 bytes in clear) and an Opus frame (TOC in clear)', async () => {
    const k = await key();
    const delta = new Uint8Array([0x31, 0x12, 0x00, 9, 8, 7, 6, 5]);
    const encD = new Uint8Array(await encryptFrame(k, delta, 3, buildIv(5, 6, 2)));
    expect([...encD.subarray(0, 3)]).toEqual([0x31, 0x12, 0x00]);
    expect([...new Uint8Array(await decryptFrame(k, encD))]).toEqual([...delta]);
    const opus = new Uint8Array([0x78, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    const encA = new Uint8Array(await encryptFrame(k, opus.buffer, 1, buildIv(9, 6, 1)));
    expect(encA[0]).toBe(0x78);
    expect([...new Uint8Array(await decryptFrame(k, encA))]).toEqual([...opus]);
  });

  it('handles frames shorter than the clear header', async () => {
    const k = await key();
    const tiny = new Uint8Array([0xf8]);
    const enc = await encryptFrame(k, tiny, 3, buildIv(1, 1, 1));
    expect([...new Uint8Array(await decryptFrame(k, enc))]).toEqual([0xf8]);
  });

  it('fails with another passphrase, or the same passphrase in another room', async () => {
    const enc = await encryptFrame(await key(), vp8Key(), 10, buildIv(1, 2, 3));
    await expect(decryptFrame(await key('wrong'), enc)).rejects.toBeInstanceOf(DecryptError);
    await expect(decryptFrame(await key('correct horse', 'r-2'), enc)).rejects.toBeInstanceOf(DecryptError);
  });

  it('fails when the ciphertext, the clear header or the IV is tampered with', async () => {
    const k = await key();
    const enc = new Uint8Array(await encryptFrame(k, vp8Key(), 10, buildIv(1, 2, 3)));
    for (const at of [20, 2, enc.length - TRAILER_BYTES + 1]) {
      const bad = enc.slice();
      bad[at] ^= 0x01;
      await expect(decryptFrame(k, bad), `flip byte ${at}`).rejects.toBeInstanceOf(DecryptError);
    }
    const cut = enc.slice(0, 5);
    await expect(decryptFrame(k, cut)).rejects.toThrow(/too short/);
  });

  it('refuses a plain (unencrypted) frame', async () => {
    const k = await key();
    const plain = vp8Key();
    plain[plain.length - 1] = 0x00;
    await expect(decryptFrame(k, plain)).rejects.toThrow(/not an encrypted frame/);
  });
});

describe('passphrase in the link fragment', () => {
  it('generates 22 base64url characters from 16 random bytes', () => {
    const p = generatePassphrase((b) => b.fill(0xff));
    expect(p).toBe('_____________________w');
    expect(generatePassphrase()).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(generatePassphrase()).not.toBe(generatePassphrase());
  });

  it('reads and writes #key=', () => {
    expect(keyFromHash('#key=abc-_1')).toBe('abc-_1');
    expect(keyFromHash('key=a%20b&x=1')).toBe('a b');
    expect(keyFromHash('')).toBeNull();
    expect(keyFromHash('#key=')).toBeNull();
    expect(keyFromHash('#other=1')).toBeNull();
    expect(withKey('/room/r-1', 'k+y')).toBe('/room/r-1#key=k%2By');
    expect(keyFromHash(withKey('/room/r-1#old', 'k+y/=').split('#')[1])).toBe('k+y/=');
    expect(withKey('/room/r-1#key=x', null)).toBe('/room/r-1');
  });
});

describe('decryptState', () => {
  it('is waiting, then ok, then failing after a run of failures', () => {
    expect(decryptState({ ok: 0, failed: 0, failedRun: 0 })).toBe('waiting');
    expect(decryptState({ ok: 3, failed: 2, failedRun: 2 })).toBe('ok');
    expect(decryptState({ ok: 0, failed: FAILING_RUN, failedRun: FAILING_RUN })).toBe('failing');
    expect(decryptState({ ok: 100, failed: 50, failedRun: 50 })).toBe('failing');
    expect(addCounters({ ok: 1, failed: 2, failedRun: 2 }, { ok: 3, failed: 9, failedRun: 9 })).toEqual({ ok: 4, failed: 11, failedRun: 9 });
  });
});
