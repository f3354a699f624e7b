// What the room page shows beside each tile, refreshed once a second from getStats(): the
// connection quality of every tile, the active speaker, frames decoded, and in E2EE rooms the
// decrypt counters. The decisions are pure (stats.ts: QualityTracker, readStats; speaker.ts);
// this is the loop around them, reading the session through a narrow view of it.
import { Store } from '../store';
import { NO_COUNTERS, addCounters, type DecryptCounters } from '../e2ee/status';
import { NO_SPEAKER, nextActiveSpeaker, type SpeakerState } from './speaker';
import { QualityTracker, readStats, type TileQuality } from './stats';
import { remoteTiles, type RoomState, type TileModel } from './state';

/** The tile key of our own camera tile in `live.quality` and `live.speaker`. */
export const SELF_KEY = 'self';

const STATS_INTERVAL_MS = 1000;

export interface LiveStats {
  /** Tile key (participant id, screen key, or SELF_KEY) → connection quality. */
  quality: ReadonlyMap<string, TileQuality>;
  /** Participant id (or SELF_KEY) of the active speaker. */
  speaker: string | null;
  /** Tile key → video frames decoded so far (remote tiles). */
  framesDecoded: ReadonlyMap<string, number>;
  /** E2EE rooms: tile key → frames decrypted / failed to decrypt (audio + video). */
  decrypt: ReadonlyMap<string, DecryptCounters>;
  /** E2EE rooms: frames we encrypted and sent. */
  encryptedFrames: number;
}

/** What the poller reads from the session. */
export interface StatsView {
  ended(): boolean;
  room(): RoomState;
  publishPc(): RTCPeerConnection | null;
  subscribePc(): RTCPeerConnection | null;
  /** Our camera is on and sending; our microphone is on. */
  sendingVideo(): boolean;
  sendingAudio(): boolean;
  /** The height we asked the server for this producer's video (0: none), if we asked. */
  wantedHeight(producerId: string): number | undefined;
  /** E2EE rooms: the worker's counters per `generation/pc/mid` key, and the generation now. */
  e2ee(): { receivers: ReadonlyMap<string, DecryptCounters>; senders: ReadonlyMap<string, number>; generation: number } | null;
}

export class LiveStatsPoller {
  readonly live = new Store<LiveStats>({ quality: new Map(), speaker: null, framesDecoded: new Map(), decrypt: new Map(), encryptedFrames: 0 });
  private timer: number | null = null;
  private busy = false;
  private readonly quality = new QualityTracker();
  private speaker: SpeakerState = NO_SPEAKER;

  constructor(private readonly view: StatsView) {}

  start(): void {
    if (this.timer !== null) return;
    this.timer = window.setInterval(() => void this.poll(), STATS_INTERVAL_MS);
  }

  stop(): void {
    if (this.timer !== null) window.clearInterval(this.timer);
    this.timer = null;
  }

  /** New PeerConnections: their counters start again from zero. */
  reset(): void {
    this.quality.reset();
  }

  /** The worker's decrypt counters per tile (all m-lines of the tile added up). */
  private decryptByTile(tileOfMid: Map<string, { key: string }>): Pick<LiveStats, 'decrypt' | 'encryptedFrames'> {
    const decrypt = new Map<string, DecryptCounters>();
    const e2ee = this.view.e2ee();
    if (!e2ee) return { decrypt, encryptedFrames: 0 };
    for (const [mid, tile] of tileOfMid) {
      const c = e2ee.receivers.get(`${e2ee.generation}/subscribe/${mid}`);
      if (c) decrypt.set(tile.key, addCounters(decrypt.get(tile.key) ?? NO_COUNTERS, c));
    }
    let encryptedFrames = 0;
    for (const [id, n] of e2ee.senders) if (id.startsWith(`${e2ee.generation}/`)) encryptedFrames += n;
    return { decrypt, encryptedFrames };
  }

  /** Video should flow to this tile: it has video, the camera is on, and we did not ask for none. */
  private expectsVideo(tile: TileModel | undefined): boolean {
    if (!tile || !tile.hasVideo || tile.videoMuted) return false;
    return tile.videoProducerId === null || this.view.wantedHeight(tile.videoProducerId) !== 0;
  }

  private async poll(): Promise<void> {
    if (this.view.ended() || this.busy || this.view.room().phase !== 'joined') return;
    this.busy = true;
    try {
      const state = this.view.room();
      const tiles = remoteTiles(state);
      const tileOfMid = new Map<string, { key: string; participantId: string; kind: 'audio' | 'video' }>();
      for (const t of state.tracks) {
        const tile = tiles.find((x) => x.mids.includes(t.mid));
        if (tile) tileOfMid.set(t.mid, { key: tile.key, participantId: t.participant_id, kind: t.kind });
      }
      const now = Date.now();
      const r = await readStats(this.view.publishPc(), this.view.subscribePc(), tileOfMid, now);
      if (this.view.ended()) return;
      const counters = new Map(r.remote);
      if (r.local) counters.set(SELF_KEY, r.local);
      const byKey = new Map(tiles.map((t) => [t.key, t]));
      const quality = this.quality.update(
        counters,
        (key) => (key === SELF_KEY ? r.localRttMs : r.subscribeRttMs),
        (key) => (key === SELF_KEY ? this.view.sendingVideo() : this.expectsVideo(byKey.get(key))),
        now,
      );
      const levels = new Map(r.levels);
      for (const t of tiles) if (t.audioMuted) levels.delete(t.participantId);
      if (r.localLevel !== null && this.view.sendingAudio()) levels.set(SELF_KEY, r.localLevel);
      // Unmuted participants without a level yet count as present and silent; muted ones and
      // those who left are absent, which clears their highlight at once.
      for (const t of tiles) if (!levels.has(t.participantId) && t.kind === 'camera' && !t.audioMuted) levels.set(t.participantId, 0);
      this.speaker = nextActiveSpeaker(levels, this.speaker, now);
      this.live.set({ quality, speaker: this.speaker.id, framesDecoded: r.framesDecoded, ...this.decryptByTile(tileOfMid) });
    } catch (e) {
      console.info('[roomcast]', `getStats failed: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
    } finally {
      this.busy = false;
    }
  }
}
