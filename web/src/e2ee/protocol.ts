// Messages between the page (client.ts) and the E2EE worker (worker.ts).
import type { DecryptCounters } from './status';

export interface TransformOptions {
  role: 'sender' | 'receiver';
  kind: 'audio' | 'video';
  /** Unique per transform: `<generation>/<pc>/<mid or index>`. */
  id: string;
}

export type WorkerRequest =
  | { type: 'key'; key: CryptoKey }
  /** createEncodedStreams() fallback: the frame streams of one sender or receiver. */
  | { type: 'streams'; readable: ReadableStream; writable: WritableStream; options: TransformOptions }
  /** Drop the counters of transforms whose id starts with `prefix` (closed PeerConnections). */
  | { type: 'forget'; prefix: string };

export type WorkerReport =
  | { type: 'stats'; receivers: Record<string, DecryptCounters>; senders: Record<string, number> }
  | { type: 'error'; id: string; message: string };
