// The watch page's player: hls.js in low-latency mode on /hls/{id}/index.m3u8, with
// live/offline detection (the playlist is polled; 404 means offline) and error recovery.
// A private room's source is a signed URL that the page renews before it expires: every
// request hls.js makes gets the current signature (xhrSetup), and carries this tab's viewer
// id (X-Roomcast-Viewer) so the server can count viewers.
import Hls, { ErrorTypes, Events, type ErrorData } from 'hls.js';
import { Store } from '../store';
import { signatureOf, withSignature } from './access';
import { beaconDue, beaconUrl } from './beacon';
import { catchUpRate } from './catchup';
import { broadcastOver, bufferedEndAt, type Playback } from './ending';
import { programDelay } from './readout';
import { nextRecovery, shouldResync, type RecoveryAction, type RecoveryHistory } from './recovery';

export type WatchStatus =
  | 'connecting' // checking the playlist / loading
  | 'live' // playing
  | 'buffering' // live, but waiting for data
  | 'offline' // no broadcast (playlist 404 or stream ended)
  | 'unsupported'; // neither MSE nor native HLS

export interface WatchState {
  status: WatchStatus;
  muted: boolean;
  /** Autoplay was refused even muted: the user has to press play. */
  needsPlay: boolean;
  /** Seconds behind the live edge of the playlist (hls.js `latency`), when known. */
  latency: number | null;
  /**
   * Seconds between the wall clock and the program date time of the frame on screen: how far
   * behind real time the picture is (includes encoding and packaging), when the playlist
   * carries EXT-X-PROGRAM-DATE-TIME.
   */
  delay: number | null;
  recoveries: number;
  /** Fatal hls.js errors seen (each one triggers a recovery). */
  fatalErrors: number;
  lastError: string | null;
}

export const OFFLINE_POLL_MS = 2000;
export const LIVE_POLL_MS = 5000;

export function playlistUrl(roomId: string): string {
  return `/hls/${encodeURIComponent(roomId)}/index.m3u8`;
}

export class WatchPlayer {
  readonly state: Store<WatchState>;
  hls: Hls | null = null;
  readonly video: HTMLVideoElement;
  private readonly source: () => string;
  private readonly viewerId: string | null;
  private pollTimer: number | null = null;
  private restartTimer: number | null = null;
  private stopped = false;
  private history: RecoveryHistory = { mediaRecoveries: [], networkRetries: [] };
  /** When the player last started over at the live edge (recovery.ts `shouldResync`). */
  private lastResync: number | null = null;
  /** When the last "watching" beacon went (beacon.ts). */
  private lastBeacon: number | null = null;
  /** Playback at the previous poll after the playlist ended (is it still advancing?). */
  private lastLook: Playback | null = null;
  private readonly onVideoEvent = () => this.fromVideo();

  /**
   * `src`: the playlist URL, or a function giving the current one (a private room's signed
   * URL, renewed by the page). `viewerId`: sent with every HLS request.
   */
  constructor(video: HTMLVideoElement, src: string | (() => string), viewerId: string | null = null) {
    this.video = video;
    this.source = typeof src === 'string' ? () => src : src;
    this.viewerId = viewerId;
    this.state = new Store<WatchState>({
      status: 'connecting',
      muted: true,
      needsPlay: false,
      latency: null,
      delay: null,
      recoveries: 0,
      fatalErrors: 0,
      lastError: null,
    });
  }

  start(): void {
    const v = this.video;
    v.muted = true;
    v.autoplay = true;
    v.playsInline = true;
    for (const ev of ['playing', 'waiting', 'pause', 'ended', 'volumechange', 'timeupdate']) {
      v.addEventListener(ev, this.onVideoEvent);
    }
    if (!Hls.isSupported() && !v.canPlayType('application/vnd.apple.mpegurl')) {
      this.patch({ status: 'unsupported' });
      return;
    }
    void this.poll();
  }

  stop(): void {
    this.stopped = true;
    this.clearTimers();
    for (const ev of ['playing', 'waiting', 'pause', 'ended', 'volumechange', 'timeupdate']) {
      this.video.removeEventListener(ev, this.onVideoEvent);
    }
    this.teardown();
  }

  setMuted(muted: boolean): void {
    this.video.muted = muted;
    if (!muted) this.video.volume = Math.max(this.video.volume, 0.5);
    this.play();
  }

  play(): void {
    this.video.play().then(
      () => this.patch({ needsPlay: false }),
      (e: unknown) => {
        if (e instanceof DOMException && e.name === 'NotAllowedError') this.patch({ needsPlay: true });
      },
    );
  }

  /** Jumps to the live edge. */
  goLive(): void {
    const pos = this.hls?.liveSyncPosition;
    if (pos != null && Number.isFinite(pos)) this.video.currentTime = pos;
    this.play();
  }

  private patch(p: Partial<WatchState>): void {
    this.state.update((s) => ({ ...s, ...p }));
  }

  private clearTimers(): void {
    if (this.pollTimer !== null) window.clearTimeout(this.pollTimer);
    if (this.restartTimer !== null) window.clearTimeout(this.restartTimer);
    this.pollTimer = this.restartTimer = null;
  }

  private schedulePoll(ms: number): void {
    if (this.stopped) return;
    if (this.pollTimer !== null) window.clearTimeout(this.pollTimer);
    this.pollTimer = window.setTimeout(() => void this.poll(), ms);
  }

  /**
   * 'live' when the playlist is there (`endlist`: it has EXT-X-ENDLIST, the broadcast
   * stopped), 'offline' on 404, 'unknown' on other failures.
   */
  private async checkPlaylist(): Promise<{ found: 'live' | 'offline' | 'unknown'; endlist: boolean }> {
    try {
      const res = await fetch(this.source(), {
        cache: 'no-store',
        headers: this.viewerId ? { 'X-Roomcast-Viewer': this.viewerId } : {},
      });
      if (res.status === 404 || res.status === 410) return { found: 'offline', endlist: false };
      if (!res.ok) return { found: 'unknown', endlist: false };
      const text = await res.text();
      // Not a playlist at all (e.g. an HTML fallback page): nothing to play.
      if (!text.trimStart().startsWith('#EXTM3U')) return { found: 'offline', endlist: false };
      const endlist = text.includes('#EXT-X-ENDLIST');
      // A finished broadcast with nothing after it is offline too.
      if (endlist && !this.hls) return { found: 'offline', endlist };
      return { found: 'live', endlist };
    } catch {
      return { found: 'unknown', endlist: false };
    }
  }

  /** What the video element shows of playback now. */
  private look(): Playback {
    const v = this.video;
    const ranges = Array.from({ length: v.buffered.length }, (_, i) => ({
      start: v.buffered.start(i),
      end: v.buffered.end(i),
    }));
    return { ended: v.ended, currentTime: v.currentTime, bufferedEnd: bufferedEndAt(ranges, v.currentTime) };
  }

  private async poll(): Promise<void> {
    this.pollTimer = null;
    if (this.stopped) return;
    const { found, endlist } = await this.checkPlaylist();
    if (this.stopped) return;
    if (found === 'offline') {
      this.goOffline();
    } else if (found === 'live' && !this.hls && this.video.src === '') {
      this.load();
    } else if (found === 'live' && endlist) {
      // The broadcast stopped: offline once playback has played what it has.
      const now = this.look();
      if (broadcastOver(true, now, this.lastLook)) this.goOffline();
      else this.lastLook = now;
    }
    const playing = this.hls !== null || this.video.src !== '';
    if (playing && !endlist) this.beacon();
    // After the end, look again soon: the last parts take seconds, not minutes, to play.
    this.schedulePoll(playing && !endlist ? LIVE_POLL_MS : OFFLINE_POLL_MS);
  }

  /** Says "watching" (at most once per interval): counted even behind a cache. */
  private beacon(): void {
    const now = Date.now();
    const url = beaconUrl(this.source());
    if (!url || !beaconDue(this.lastBeacon, now)) return;
    this.lastBeacon = now;
    void fetch(url, {
      method: 'POST',
      cache: 'no-store',
      keepalive: true,
      headers: this.viewerId ? { 'X-Roomcast-Viewer': this.viewerId } : {},
    }).catch(() => undefined);
  }

  private goOffline(): void {
    this.lastLook = null;
    this.teardown();
    this.patch({ status: 'offline', latency: null, delay: null, needsPlay: false });
  }

  private teardown(): void {
    if (this.hls) {
      this.hls.destroy();
      this.hls = null;
    }
    if (this.video.src) {
      this.video.removeAttribute('src');
      this.video.load();
    }
  }

  private load(): void {
    this.patch({ status: 'connecting', lastError: null });
    if (!Hls.isSupported()) {
      this.video.src = this.source(); // Safari: native (LL-)HLS (a reload picks up a fresh signature)
      this.play();
      return;
    }
    const hls = new Hls({
      lowLatencyMode: true,
      // The playback rate is ours (catchup.ts): hls.js only speeds up with over a second
      // buffered, so at half a second behind the edge it never caught up to its target.
      maxLiveSyncPlaybackRate: 1,
      backBufferLength: 30,
      // Every request: the current signature (the playlist lists URIs with the one it was
      // loaded with) and this tab's viewer id.
      xhrSetup: (xhr, url) => {
        xhr.open('GET', withSignature(url, signatureOf(this.source())), true);
        if (this.viewerId) xhr.setRequestHeader('X-Roomcast-Viewer', this.viewerId);
      },
      // Keep trying through short gaps (a compositor restart) before reporting a fatal error.
      fragLoadPolicy: {
        default: {
          maxTimeToFirstByteMs: 10000,
          maxLoadTimeMs: 20000,
          timeoutRetry: { maxNumRetry: 4, retryDelayMs: 0, maxRetryDelayMs: 0 },
          errorRetry: { maxNumRetry: 6, retryDelayMs: 500, maxRetryDelayMs: 4000 },
        },
      },
    });
    this.hls = hls;
    this.history = { mediaRecoveries: [], networkRetries: [] };
    hls.on(Events.MANIFEST_PARSED, () => this.play());
    hls.on(Events.ERROR, (_e, data) => this.onHlsError(hls, data));
    hls.attachMedia(this.video);
    hls.loadSource(this.source());
  }

  private onHlsError(hls: Hls, data: ErrorData): void {
    if (hls !== this.hls || this.stopped) return;
    const what = `${data.type}/${data.details}${data.fatal ? ' (fatal)' : ''}`;
    if (!data.fatal) {
      console.debug('[watch] hls.js:', what);
      return;
    }
    console.warn('[watch] hls.js:', what, data.error);
    this.patch({ lastError: what, fatalErrors: this.state.get().fatalErrors + 1 });
    const kind =
      data.type === ErrorTypes.MEDIA_ERROR ? 'media' : data.type === ErrorTypes.NETWORK_ERROR ? 'network' : 'other';
    const action: RecoveryAction = nextRecovery(this.history, kind, Date.now());
    this.history = action.history;
    this.patch({ recoveries: this.state.get().recoveries + 1 });
    switch (action.do) {
      case 'recover_media':
        hls.recoverMediaError();
        return;
      case 'swap_codec_and_recover':
        hls.swapAudioCodec();
        hls.recoverMediaError();
        return;
      case 'check_then_restart_load':
        // The playlist may be gone (broadcast stopped): find out before retrying.
        void this.checkPlaylist().then(({ found }) => {
          if (hls !== this.hls || this.stopped) return;
          if (found === 'offline') this.goOffline();
          else this.restartLater(() => hls.startLoad(-1), action.delayMs);
        });
        return;
      case 'rebuild':
        this.teardown();
        this.patch({ status: 'connecting' });
        this.restartLater(() => void this.poll(), action.delayMs);
        return;
    }
  }

  private restartLater(fn: () => void, ms: number): void {
    if (this.restartTimer !== null) window.clearTimeout(this.restartTimer);
    this.restartTimer = window.setTimeout(() => {
      this.restartTimer = null;
      if (!this.stopped) fn();
    }, ms);
  }

  private fromVideo(): void {
    const v = this.video;
    const s = this.state.get();
    const latency = this.hls?.latency;
    const playing = this.hls?.playingDate;
    const p: Partial<WatchState> = {
      muted: v.muted,
      latency: latency != null && Number.isFinite(latency) && latency > 0 ? latency : null,
      delay: programDelay(playing ? playing.getTime() : null, Date.now()),
    };
    if (this.hls && shouldResync(p.latency ?? null, this.lastResync, Date.now())) {
      // Far behind the edge: a new stream under this URL (the room moved node) or a long stall.
      console.warn(`[watch] ${p.latency?.toFixed(1)} s behind the live edge: starting over at the edge`);
      this.lastResync = Date.now();
      this.teardown();
      this.patch({ ...p, status: 'connecting', latency: null });
      this.restartLater(() => void this.poll(), 0);
      return;
    }
    if (s.status !== 'offline' && s.status !== 'unsupported') {
      if (v.ended) {
        // The playlist ended (EXT-X-ENDLIST): offline until a new broadcast shows up.
        this.goOffline();
        return;
      }
      if (!v.paused && v.readyState >= 3) p.status = 'live';
      else if (s.status === 'live' && !v.paused) p.status = 'buffering';
    }
    if (!v.paused) p.needsPlay = false;
    this.catchUp(p.latency ?? null);
    this.patch(p);
  }

  /** Plays slightly faster while behind the target latency (catchup.ts). */
  private catchUp(latency: number | null): void {
    const v = this.video;
    if (!this.hls || v.paused) return;
    const now = this.look();
    const ahead = now.bufferedEnd === null ? 0 : now.bufferedEnd - now.currentTime;
    const rate = catchUpRate(latency, this.hls.targetLatency, ahead, v.playbackRate);
    if (rate !== v.playbackRate) v.playbackRate = rate;
  }
}
