// The E2EE worker: encrypts every encoded frame our senders produce and decrypts every frame
// our receivers get, off the main thread. Frames arrive through RTCRtpScriptTransform
// (`rtctransform` events) or, in browsers with only the older API, as the streams of
// createEncodedStreams() posted here. The framing is in frame.ts.
import { buildIv, clearHeaderLength, decryptFrame, encryptFrame } from './frame';
import type { DecryptCounters } from './status';
import type { TransformOptions, WorkerReport, WorkerRequest } from './protocol';

interface EncodedFrame {
  data: ArrayBuffer;
  type?: string;
  getMetadata(): { synchronizationSource?: number };
}

interface WorkerScope {
  onmessage: ((ev: MessageEvent<WorkerRequest>) => void) | null;
  onrtctransform?: ((ev: { transformer: { readable: ReadableStream; writable: WritableStream; options: TransformOptions } }) => void) | null;
  postMessage(msg: WorkerReport): void;
}

const scope = self as unknown as WorkerScope;

let key: CryptoKey | null = null;
/** Receiver id → counters; sender id → frames encrypted. */
const receivers = new Map<string, DecryptCounters>();
const senders = new Map<string, number>();
let dirty = false;

function senderTransform(opts: TransformOptions) {
  // A random salt per transform keeps IVs unique even if an SSRC repeats (a re-join, a clash).
  let salt = crypto.getRandomValues(new Uint32Array(1))[0];
  let counter = 0;
  return async (frame: EncodedFrame, controller: TransformStreamDefaultController<EncodedFrame>) => {
    // No key yet: drop the frame. An e2ee room never sends media in clear.
    if (!key || frame.data.byteLength === 0) {
      if (key) controller.enqueue(frame);
      return;
    }
    const meta = frame.getMetadata();
    if (counter === 0xffffffff) {
      salt = crypto.getRandomValues(new Uint32Array(1))[0];
      counter = 0;
    }
    const iv = buildIv(meta.synchronizationSource ?? 0, salt, counter++);
    frame.data = await encryptFrame(key, frame.data, clearHeaderLength(opts.kind, frame.type), iv);
    senders.set(opts.id, (senders.get(opts.id) ?? 0) + 1);
    dirty = true;
    controller.enqueue(frame);
  };
}

function receiverTransform(opts: TransformOptions) {
  return async (frame: EncodedFrame, controller: TransformStreamDefaultController<EncodedFrame>) => {
    if (frame.data.byteLength === 0) return;
    const c = receivers.get(opts.id) ?? { ok: 0, failed: 0, failedRun: 0 };
    receivers.set(opts.id, c);
    dirty = true;
    if (!key) {
      c.failed++;
      c.failedRun++;
      return;
    }
    try {
      frame.data = await decryptFrame(key, frame.data);
    } catch {
      // Wrong key, or a sender that does not encrypt: drop it (garbage would only confuse the
      // decoder) and count it, so the tile can say "cannot decrypt".
      c.failed++;
      c.failedRun++;
      return;
    }
    c.ok++;
    c.failedRun = 0;
    controller.enqueue(frame);
  };
}

function handle(readable: ReadableStream, writable: WritableStream, opts: TransformOptions): void {
  const transform = opts.role === 'sender' ? senderTransform(opts) : receiverTransform(opts);
  readable
    .pipeThrough(new TransformStream<EncodedFrame, EncodedFrame>({ transform }))
    .pipeTo(writable)
    .catch((e: unknown) => scope.postMessage({ type: 'error', id: opts.id, message: String(e) }));
}

scope.onrtctransform = (ev) => {
  const t = ev.transformer;
  handle(t.readable, t.writable, t.options);
};

scope.onmessage = (ev) => {
  const msg = ev.data;
  switch (msg.type) {
    case 'key':
      key = msg.key;
      return;
    case 'streams':
      handle(msg.readable, msg.writable, msg.options);
      return;
    case 'forget':
      for (const id of [...receivers.keys()]) if (id.startsWith(msg.prefix)) receivers.delete(id);
      for (const id of [...senders.keys()]) if (id.startsWith(msg.prefix)) senders.delete(id);
      dirty = true;
      return;
  }
};

setInterval(() => {
  if (!dirty) return;
  dirty = false;
  scope.postMessage({ type: 'stats', receivers: Object.fromEntries(receivers), senders: Object.fromEntries(senders) });
}, 500);
