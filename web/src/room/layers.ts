// Simulcast layer preferences (docs/protocol.md `layer_preference`): how tall each remote video
// is on screen, so the SFU forwards the highest layer that fits. Heights are rounded up to a few
// buckets and sent only when a producer's bucket changes, after a quiet time, so resizing the
// window does not spam the server. Pure logic with injectable timers; session.ts owns one.

/** Device-pixel heights the client asks for; a tile's height is rounded up to one of these. */
export const HEIGHT_BUCKETS: readonly number[] = [180, 360, 720, 1080, 2160];
/** The protocol's upper bound for `max_height`. */
export const MAX_LAYER_HEIGHT = 4320;
/** Quiet time before a changed preference is sent. */
export const LAYER_DEBOUNCE_MS = 300;

/**
 * The `max_height` for a video shown `cssHeight` CSS pixels tall: × devicePixelRatio, rounded up
 * to the next bucket (the largest one beyond). 0 when it is not shown (hidden, off-screen, camera
 * off, no size), which tells the SFU to stop forwarding it.
 */
export function heightBucket(cssHeight: number, devicePixelRatio = 1, visible = true): number {
  if (!visible || !Number.isFinite(cssHeight) || cssHeight <= 0) return 0;
  const dpr = Number.isFinite(devicePixelRatio) && devicePixelRatio > 0 ? devicePixelRatio : 1;
  const px = Math.ceil(cssHeight * dpr - 1e-6);
  for (const b of HEIGHT_BUCKETS) if (px <= b) return b;
  return HEIGHT_BUCKETS[HEIGHT_BUCKETS.length - 1];
}

/** A valid `max_height`: an integer in 0..=4320. */
export function clampMaxHeight(v: number): number {
  if (!Number.isFinite(v) || v <= 0) return 0;
  return Math.min(MAX_LAYER_HEIGHT, Math.round(v));
}

export interface Timers {
  set(fn: () => void, ms: number): unknown;
  clear(handle: unknown): void;
}

const realTimers: Timers = {
  set: (fn, ms) => setTimeout(fn, ms),
  clear: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};

export interface LayerPreferenceOptions {
  /** Sends one `layer_preference`; false when it could not be sent (it is tried again later). */
  send: (producerId: string, maxHeight: number) => boolean;
  /** Whether the server can take a preference for this producer now (we are subscribed to it). */
  canSend: (producerId: string) => boolean;
  debounceMs?: number;
  timers?: Timers;
}

/**
 * Per remote video producer: the wanted `max_height` (the tile's bucket, or a pinned value) and
 * the one the server has. `flush()` sends the differences; `set()` flushes after the debounce.
 */
export class LayerPreferences {
  private readonly wanted = new Map<string, number>();
  private readonly pinned = new Map<string, number>();
  private readonly sent = new Map<string, number>();
  private timer: unknown = null;
  private disabled = false;
  private readonly opts: Required<LayerPreferenceOptions>;

  constructor(opts: LayerPreferenceOptions) {
    this.opts = { debounceMs: LAYER_DEBOUNCE_MS, timers: realTimers, ...opts };
  }

  /** A tile's measured `max_height` for its video producer (0: not shown). Sent after the debounce. */
  set(producerId: string, maxHeight: number): void {
    const v = clampMaxHeight(maxHeight);
    if (this.wanted.get(producerId) === v) return;
    this.wanted.set(producerId, v);
    this.schedule();
  }

  /** Pins a producer's `max_height` regardless of its tile (null unpins); sent at once. Tests use it. */
  pin(producerId: string, maxHeight: number | null): void {
    if (maxHeight === null) this.pinned.delete(producerId);
    else this.pinned.set(producerId, clampMaxHeight(maxHeight));
    this.flush();
  }

  /** The producer's tile went away: nothing more is sent for it. */
  forget(producerId: string): void {
    this.wanted.delete(producerId);
    this.pinned.delete(producerId);
    this.sent.delete(producerId);
  }

  /** A new connection: the server has no preferences; the wanted ones go again with `flush()`. */
  reset(): void {
    this.sent.clear();
    this.cancel();
  }

  /** What the server was last told, producer id → max_height. */
  get current(): ReadonlyMap<string, number> {
    return this.sent;
  }

  /** The value we want the server to have for a producer (pinned first), if any. */
  wantedFor(producerId: string): number | undefined {
    return this.pinned.get(producerId) ?? this.wanted.get(producerId);
  }

  /** The server does not know `layer_preference` (a gateway without simulcast): stop sending. */
  disable(): void {
    this.disabled = true;
    this.cancel();
  }

  /** Sends every preference the server does not have yet (for producers it can take one for). */
  flush(): void {
    this.cancel();
    if (this.disabled) return;
    const ids = new Set([...this.wanted.keys(), ...this.pinned.keys()]);
    for (const id of ids) {
      const v = this.wantedFor(id);
      if (v === undefined || this.sent.get(id) === v || !this.opts.canSend(id)) continue;
      if (this.opts.send(id, v)) this.sent.set(id, v);
    }
  }

  /** Stops a pending send (the session ended). */
  cancel(): void {
    if (this.timer !== null) this.opts.timers.clear(this.timer);
    this.timer = null;
  }

  private schedule(): void {
    this.cancel();
    this.timer = this.opts.timers.set(() => {
      this.timer = null;
      this.flush();
    }, this.opts.debounceMs);
  }
}
