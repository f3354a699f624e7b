// Page side of end-to-end encryption: owns the worker, attaches a transform to each
// RTCRtpSender / RTCRtpReceiver, and keeps the worker's decrypt counters.
import { Store } from '../store';
import type { TransformOptions, WorkerReport, WorkerRequest } from './protocol';
import type { DecryptCounters } from './status';

export type E2eeApi = 'script-transform' | 'encoded-streams';

interface EncodedStreams {
  readable: ReadableStream;
  writable: WritableStream;
}
type WithEncodedStreams = { createEncodedStreams?: () => EncodedStreams; transform?: unknown };

/** Which insertable-streams API this browser has (null: it cannot join an e2ee room). */
export function e2eeApi(): E2eeApi | null {
  if (typeof Worker === 'undefined' || typeof crypto === 'undefined' || !crypto.subtle) return null;
  if (typeof RTCRtpScriptTransform !== 'undefined') return 'script-transform';
  if (typeof RTCRtpSender !== 'undefined' && 'createEncodedStreams' in RTCRtpSender.prototype) return 'encoded-streams';
  return null;
}

export interface E2eeStats {
  /** Transform id → decrypt counters (receivers). */
  receivers: ReadonlyMap<string, DecryptCounters>;
  /** Transform id → frames encrypted (senders). */
  senders: ReadonlyMap<string, number>;
}

export class E2eeClient {
  readonly api: E2eeApi;
  readonly stats = new Store<E2eeStats>({ receivers: new Map(), senders: new Map() });
  private readonly worker: Worker;
  private readonly attached = new WeakSet<object>();
  private closed = false;

  constructor(api: E2eeApi, key: CryptoKey, onError: (message: string) => void) {
    this.api = api;
    this.worker = new Worker(new URL('./worker.ts', import.meta.url), { type: 'module', name: 'roomcast-e2ee' });
    this.worker.onmessage = (ev: MessageEvent<WorkerReport>) => {
      const m = ev.data;
      if (m.type === 'stats') {
        this.stats.set({ receivers: new Map(Object.entries(m.receivers)), senders: new Map(Object.entries(m.senders)) });
      } else if (m.type === 'error') {
        onError(`E2EE transform ${m.id} stopped: ${m.message}`);
      }
    };
    this.worker.onerror = (ev) => onError(`E2EE worker failed: ${ev.message || 'unknown error'}`);
    this.post({ type: 'key', key });
  }

  /** The PeerConnection configuration this API needs. */
  pcConfig(): Partial<RTCConfiguration> {
    // Chromium's older API must be switched on per PeerConnection; with it on, every sender and
    // receiver must have its streams piped (attach below) or its media stalls.
    return this.api === 'encoded-streams' ? ({ encodedInsertableStreams: true } as Partial<RTCConfiguration>) : {};
  }

  attachSender(sender: RTCRtpSender, kind: 'audio' | 'video', id: string): void {
    this.attach(sender as unknown as WithEncodedStreams, { role: 'sender', kind, id });
  }

  attachReceiver(receiver: RTCRtpReceiver, kind: 'audio' | 'video', id: string): void {
    this.attach(receiver as unknown as WithEncodedStreams, { role: 'receiver', kind, id });
  }

  /** Forgets the counters of one PeerConnection generation (its id prefix). */
  forget(prefix: string): void {
    this.post({ type: 'forget', prefix });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.worker.terminate();
  }

  private attach(target: WithEncodedStreams, options: TransformOptions): void {
    if (this.closed || this.attached.has(target)) return;
    this.attached.add(target);
    if (this.api === 'script-transform') {
      target.transform = new RTCRtpScriptTransform(this.worker, options);
      return;
    }
    const streams = target.createEncodedStreams!();
    this.worker.postMessage({ type: 'streams', ...streams, options } satisfies WorkerRequest, [streams.readable, streams.writable]);
  }

  private post(msg: WorkerRequest): void {
    if (!this.closed) this.worker.postMessage(msg);
  }
}
