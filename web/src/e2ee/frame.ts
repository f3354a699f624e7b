// End-to-end encryption of encoded media frames: the framing (what stays in clear, the IV, the
// trailer) and the key derivation. Plain functions over bytes and WebCrypto; the worker
// (worker.ts) runs them on every frame, the unit tests run them in Node.
//
// An encrypted frame is
//
//   [clear header][AES-GCM ciphertext of the rest + 16-byte tag][IV, 12 bytes][clear length, 1][version, 1]
//
// The clear header is what the SFU and the receiving depacketizer read from the payload:
// the VP8 payload header (10 bytes of a keyframe: frame tag, start code and dimensions — the
// SFU's keyframe gate for late joiners and the receiver's frame size; 3 bytes of a delta frame:
// the frame tag) and the Opus TOC byte. It is authenticated as AES-GCM additional data, so
// changing it breaks decryption too. The IV is built by the sender (SSRC, a random salt per
// sending transform, a frame counter) and travels in the trailer, so a receiver needs no state
// and the SFU may rewrite SSRCs.

export const FRAME_VERSION = 1;
export const IV_BYTES = 12;
export const TAG_BYTES = 16;
/** IV + clear length + version. */
export const TRAILER_BYTES = IV_BYTES + 2;
export const PBKDF2_ITERATIONS = 100_000;
const SALT_PREFIX = 'roomcast-e2ee-v1:';

/**
 * How many leading bytes of a frame stay in clear: the Opus TOC byte of audio; the VP8 payload
 * header of video (our client negotiates VP8; H.264 would need its NAL headers kept instead).
 */
export function clearHeaderLength(kind: 'audio' | 'video', frameType?: string): number {
  if (kind === 'audio') return 1;
  return frameType === 'key' ? 10 : 3;
}

/** IV: SSRC (4 bytes) ‖ salt (4 bytes, random per sending transform) ‖ frame counter (4 bytes). */
export function buildIv(ssrc: number, salt: number, counter: number): Uint8Array {
  const iv = new Uint8Array(IV_BYTES);
  const view = new DataView(iv.buffer);
  view.setUint32(0, ssrc >>> 0);
  view.setUint32(4, salt >>> 0);
  view.setUint32(8, counter >>> 0);
  return iv;
}

const bytes = (data: ArrayBuffer | Uint8Array): Uint8Array => (data instanceof Uint8Array ? data : new Uint8Array(data));

/** Encrypts one frame; `clearLen` bytes stay in clear (fewer if the frame is shorter). */
export async function encryptFrame(key: CryptoKey, data: ArrayBuffer | Uint8Array, clearLen: number, iv: Uint8Array): Promise<ArrayBuffer> {
  if (iv.length !== IV_BYTES) throw new Error(`IV must be ${IV_BYTES} bytes`);
  const src = bytes(data);
  const n = Math.min(Math.max(0, clearLen), src.length, 255);
  const header = src.subarray(0, n);
  const sealed = new Uint8Array(
    await crypto.subtle.encrypt({ name: 'AES-GCM', iv: iv as BufferSource, additionalData: header as BufferSource, tagLength: TAG_BYTES * 8 }, key, src.subarray(n) as BufferSource),
  );
  const out = new Uint8Array(n + sealed.length + TRAILER_BYTES);
  out.set(header, 0);
  out.set(sealed, n);
  out.set(iv, n + sealed.length);
  out[out.length - 2] = n;
  out[out.length - 1] = FRAME_VERSION;
  return out.buffer;
}

export class DecryptError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DecryptError';
  }
}

/** Decrypts one frame made by encryptFrame; throws DecryptError (wrong key, tampered, not encrypted). */
export async function decryptFrame(key: CryptoKey, data: ArrayBuffer | Uint8Array): Promise<ArrayBuffer> {
  const src = bytes(data);
  if (src.length < TRAILER_BYTES + TAG_BYTES) throw new DecryptError('frame too short to be encrypted');
  if (src[src.length - 1] !== FRAME_VERSION) throw new DecryptError('not an encrypted frame (unknown version byte)');
  const n = src[src.length - 2];
  const ivAt = src.length - TRAILER_BYTES;
  if (n + TAG_BYTES > ivAt) throw new DecryptError('bad clear-header length');
  const header = src.subarray(0, n);
  const iv = src.subarray(ivAt, ivAt + IV_BYTES);
  let plain: ArrayBuffer;
  try {
    plain = await crypto.subtle.decrypt(
      { name: 'AES-GCM', iv: iv as BufferSource, additionalData: header as BufferSource, tagLength: TAG_BYTES * 8 },
      key,
      src.subarray(n, ivAt) as BufferSource,
    );
  } catch {
    throw new DecryptError('authentication failed (wrong key or tampered frame)');
  }
  const out = new Uint8Array(n + plain.byteLength);
  out.set(header, 0);
  out.set(new Uint8Array(plain), n);
  return out.buffer;
}

/**
 * The room key: PBKDF2-SHA-256 over the passphrase, salted with the room id (the same
 * passphrase gives another key in another room), 100 000 iterations, → AES-GCM 256.
 */
export async function deriveRoomKey(passphrase: string, roomId: string, iterations = PBKDF2_ITERATIONS): Promise<CryptoKey> {
  const enc = new TextEncoder();
  const base = await crypto.subtle.importKey('raw', enc.encode(passphrase) as BufferSource, 'PBKDF2', false, ['deriveKey']);
  return crypto.subtle.deriveKey(
    { name: 'PBKDF2', hash: 'SHA-256', salt: enc.encode(SALT_PREFIX + roomId) as BufferSource, iterations },
    base,
    { name: 'AES-GCM', length: 256 },
    false,
    ['encrypt', 'decrypt'],
  );
}
