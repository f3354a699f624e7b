// One participant's session in a room: the join request, the signaling socket, the two
// PeerConnections (publish: we offer; subscribe: the server offers), local media and the
// reconnect logic. The plain state lives in state.ts; this file is the I/O shell around it.
//
// Connection loss:
// - the server sends `reconnect` (its media worker restarted): close both PeerConnections and
//   wait on the same socket for the next `welcome`, then publish again;
// - a PeerConnection's ICE breaks (disconnected for 2 s, or failed) while the socket is open:
//   "reconnecting…" and an ICE restart of that connection (iceRecovery.ts; publish: restartIce
//   and a new offer, subscribe: `ice_restart` asks the server for a new offer), same participant;
//   if media is not back within 10 s, a full re-join as below;
// - the socket closes, or DTLS fails: "reconnecting…", then a full re-join (new POST join,
//   new socket) with exponential backoff and jitter (backoff.ts).
import { joinRoom, redeemInvite, ApiError } from '../api';
import { inviteProblem, type InviteProblem } from './invite';
import { SignalingClient, resolveWsUrl, type ClientMessage, type PcName, type ServerMessage, type TrackInfo, type LogEntry } from '../signaling';
import { Store } from '../store';
import { E2eeClient, e2eeApi, type E2eeApi } from '../e2ee/client';
import { deriveRoomKey } from '../e2ee/frame';
import { RECONNECT_IDLE, type ReconnectEvent, type ReconnectState, reconnectStep } from './reconnect';
import { ICE_OK, nextIceCheck, stepIceRecovery, type IceEffect, type IceEvent, type IceRecoveryState, type IceState } from './iceRecovery';
import {
  DEFAULT_SETTINGS,
  acquireLocalMedia,
  describeMediaError,
  openCamera,
  openMicrophone,
  openScreen,
  preferVp8,
  saveSettings,
  type LocalMedia,
  type MediaSettings,
} from './media';
import { LayerPreferences } from './layers';
import { SCREEN_MAX_BITRATE, cameraNeedsRepublish, cameraSendEncodings, videoConstraints, videoSendParameters, type VideoSource } from './presets';
import { SerialQueue } from './queue';
import { LiveStatsPoller, type LiveStats } from './liveStats';
import { tileStreams } from './subscriberStreams';
import { initialRoomState, remoteTiles, roomReducer, type RoomAction, type RoomState } from './state';

export { SELF_KEY, type LiveStats } from './liveStats';

type RemoteCandidate = { candidate: string; sdp_mid: string | null };

export interface E2eeDebug {
  api: E2eeApi;
  /** Frames that failed to decrypt, all tiles together. */
  decryptFailures: number;
  decrypted: number;
  encrypted: number;
}

export interface RoomDebugHandle {
  readonly participantId: string | null;
  readonly publishPc: RTCPeerConnection | null;
  readonly subscribePc: RTCPeerConnection | null;
  readonly state: RoomState;
  readonly live: LiveStats;
  /** The last signaling frames (in, out, info). */
  readonly log: LogEntry[];
  /** Null outside e2ee rooms. */
  readonly e2ee: E2eeDebug | null;
  readonly session: RoomSession;
  /** Simulcast: what the SFU was last told per remote video producer (producer id → max_height). */
  readonly layerPreferences: Record<string, number>;
  /** Test hook: pins a producer's `layer_preference` (null: back to its tile's size). */
  setLayerPreference(producerId: string, maxHeight: number | null): void;
  /** ICE restarts: per connection how many were started, and the recoveries they brought. */
  readonly iceRestarts: IceRestartStats;
  /** Wall-clock ms (`Date.now()`) of the last `welcome`: tests time a join from the page's own clock. */
  readonly welcomedAtMs: number | null;
}

export interface IceRestartStats {
  started: Record<PcName, number>;
  /** Recoveries (media back without a re-join) and how long each took from the first restart (ms). */
  recoveredMs: number[];
  /** Recoveries that gave up and re-joined. */
  fellBack: number;
}

export interface JoinOptions {
  name: string;
  settings?: MediaSettings;
  /** Camera + microphone the lobby already opened for its preview; the session takes them over. */
  media?: LocalMedia | null;
  audioMuted?: boolean;
  videoMuted?: boolean;
  /** The room passphrase (from the link's #key=…); needed when the room is end-to-end encrypted. */
  passphrase?: string | null;
  /** The invite of an invite link (`?invite=…`): joins (and re-joins) exchange it for a token. */
  invite?: string | null;
  /** The join token of this page's previous session (a "Rejoin"): an invite's seat moves to us. */
  previousToken?: string | null;
}

/** After `reconnect`, the server's new `welcome` should come quickly; else re-join. */
const WELCOME_AFTER_RECONNECT_MS = 15000;
/**
 * A joiner's own media goes first: the receiving connection (an offer with every other
 * participant's tracks, a decoder each) waits until our publish offer is answered, at most this
 * long. A browser has one signaling thread per page; on a busy machine, answering a big
 * subscribe offer first delayed our publish offer and its ICE by up to a second, and with it
 * our tile in the broadcast and in everyone else's view.
 */
const PUBLISH_FIRST_MAX_MS = 1500;

function log(...args: unknown[]): void {
  console.info('[roomcast]', ...args);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => window.setTimeout(resolve, ms));
}

function errorText(e: unknown): string {
  return e instanceof Error ? `${e.name}: ${e.message}` : String(e);
}

export class RoomSession {
  readonly roomId: string;
  readonly state: Store<RoomState>;
  /** Our camera + microphone tracks (the local preview). */
  readonly localStream = new Store<MediaStream | null>(null);
  /** Our screen share, while sharing. */
  readonly screenStream = new Store<MediaStream | null>(null);
  /** Tile key → the stream that tile plays (see remoteTiles). */
  readonly remoteStreams = new Store<ReadonlyMap<string, MediaStream>>(new Map());
  /** Quality, active speaker and frame counters per tile (liveStats.ts), once a second. */
  readonly live: Store<LiveStats>;
  readonly settings: Store<MediaSettings>;

  publishPc: RTCPeerConnection | null = null;
  subscribePc: RTCPeerConnection | null = null;
  /** Our current join token and role (for host calls such as the broadcast controls). */
  token: string | null = null;
  role: string | null = null;
  /** Why a join with an invite link was refused (expired, used up …), for the page to explain. */
  inviteFailure: InviteProblem | null = null;
  private invite: string | null = null;
  private previousToken: string | null = null;
  private signaling: SignalingClient | null = null;
  private name = '';
  private media: Promise<void> | null = null;
  private iceServers: RTCIceServer[] = [];
  private ended = false;
  /** Bumped on every (re)connect: events of older sockets and PeerConnections are ignored. */
  private epoch = 0;
  private welcomedEpoch = -1;
  private welcomedAtMs: number | null = null;
  private awaitingWelcome = false;
  /** Re-joining after the connection was lost (reconnect.ts). */
  private reconnect: ReconnectState = RECONNECT_IDLE;
  private retryTimer: number | null = null;
  private welcomeTimer: number | null = null;
  /** Lets the subscribe queue go on once the first publish offer is answered (PUBLISH_FIRST_MAX_MS). */
  private publishAnswered: (() => void) | null = null;
  private refreshTimer: number | null = null;
  /** Seconds the current token lives, when the gateway refreshes tokens over signaling. */
  private tokenLifetime: number | null = null;
  /** ICE restarts when media breaks and signaling works (iceRecovery.ts). */
  private iceRecovery: IceRecoveryState = ICE_OK;
  private iceTimer: number | null = null;
  /** The publish connection needs an ICE restart offer once its outstanding offer is answered. */
  private publishRestartPending = false;
  private readonly iceStats: IceRestartStats = { started: { publish: 0, subscribe: 0 }, recoveredMs: [], fellBack: 0 };
  private pending: Record<PcName, RemoteCandidate[]> = { publish: [], subscribe: [] };
  private publishQueue = this.newQueue('publish');
  private subscribeQueue = this.newQueue('subscribe');

  private camTrack: MediaStreamTrack | null = null;
  private micTrack: MediaStreamTrack | null = null;
  private screenTrack: MediaStreamTrack | null = null;
  private cameraTx: RTCRtpTransceiver | null = null;
  /** The browser would not set up simulcast layers for the camera: don't try again. */
  private simulcastRefused = false;
  private micTx: RTCRtpTransceiver | null = null;
  private screenTx: RTCRtpTransceiver | null = null;
  private audioMuted = false;
  private videoMuted = false;
  private hasCamera = true;
  private hasMic = true;

  private passphrase: string | null = null;
  /** Set once the join response says e2ee and the key is derived; kept across reconnects. */
  private e2ee: E2eeClient | null = null;
  /** Bumped per pair of PeerConnections: names the E2EE transforms (`<gen>/<pc>/<mid>`). */
  private pcGeneration = 0;

  /** Simulcast: how tall we show each remote video, told to the SFU (layers.ts). */
  private readonly layers = new LayerPreferences({
    send: (producerId, maxHeight) => this.send({ type: 'layer_preference', producer_id: producerId, max_height: maxHeight }),
    canSend: (producerId) =>
      !this.ended && this.subscribePc !== null && this.state.get().tracks.some((t) => t.producer_id === producerId && t.kind === 'video'),
  });

  /** Quality and active speaker per tile, read through a narrow view of this session. */
  private readonly stats = new LiveStatsPoller({
    ended: () => this.ended,
    room: () => this.state.get(),
    publishPc: () => this.publishPc,
    subscribePc: () => this.subscribePc,
    sendingVideo: () => !this.videoMuted && this.camTrack !== null,
    sendingAudio: () => !this.audioMuted,
    wantedHeight: (producerId) => this.layers.wantedFor(producerId),
    e2ee: () => (this.e2ee ? { ...this.e2ee.stats.get(), generation: this.pcGeneration } : null),
  });

  constructor(roomId: string, settings: MediaSettings = DEFAULT_SETTINGS) {
    this.roomId = roomId;
    this.state = new Store(initialRoomState(roomId));
    this.settings = new Store(settings);
    this.live = this.stats.live;
  }

  get signalingLog(): LogEntry[] {
    return this.signaling?.log ?? [];
  }

  get isAudioMuted(): boolean {
    return this.audioMuted;
  }

  get isVideoMuted(): boolean {
    return this.videoMuted;
  }

  debugHandle(): RoomDebugHandle {
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const session = this;
    return {
      get participantId() {
        return session.state.get().selfId;
      },
      get publishPc() {
        return session.publishPc;
      },
      get subscribePc() {
        return session.subscribePc;
      },
      get state() {
        return session.state.get();
      },
      get live() {
        return session.live.get();
      },
      get log() {
        return session.signalingLog;
      },
      get welcomedAtMs() {
        return session.welcomedAtMs;
      },
      get e2ee() {
        const e = session.e2ee;
        if (!e) return null;
        const { receivers, senders } = e.stats.get();
        let decryptFailures = 0;
        let decrypted = 0;
        for (const c of receivers.values()) {
          decryptFailures += c.failed;
          decrypted += c.ok;
        }
        let encrypted = 0;
        for (const n of senders.values()) encrypted += n;
        return { api: e.api, decryptFailures, decrypted, encrypted };
      },
      session,
      get layerPreferences() {
        return Object.fromEntries(session.layers.current);
      },
      setLayerPreference(producerId: string, maxHeight: number | null) {
        session.layers.pin(producerId, maxHeight);
      },
      get iceRestarts() {
        const s = session.iceStats;
        return { started: { ...s.started }, recoveredMs: [...s.recoveredMs], fellBack: s.fellBack };
      },
    };
  }

  private dispatch(action: RoomAction): void {
    this.state.set(roomReducer(this.state.get(), action));
  }

  private notice(code: string, message: string): void {
    log(`notice ${code}: ${message}`);
    this.dispatch({ type: 'notice', code, message });
  }

  private newQueue(pc: PcName): SerialQueue {
    return new SerialQueue((e, label) => this.fail(pc, label, e));
  }

  private fail(pc: PcName, label: string, e: unknown): void {
    if (this.ended) return;
    console.error('[roomcast]', `${pc} ${label} failed:`, e);
    this.notice(`${pc}_failed`, `${label} failed: ${errorText(e)}`);
  }

  private send(msg: ClientMessage): boolean {
    return this.signaling?.send(msg) ?? false;
  }

  // ---- join, leave, reconnect ----

  /** Joins the room. Resolves once the first join request is done (media and ICE go on). */
  async join(options: JoinOptions): Promise<void> {
    this.name = options.name;
    if (options.settings) this.settings.set(options.settings);
    this.audioMuted = options.audioMuted ?? false;
    this.videoMuted = options.videoMuted ?? false;
    this.passphrase = options.passphrase ?? null;
    this.invite = options.invite ?? null;
    this.previousToken = options.previousToken ?? null;
    this.dispatch({ type: 'joining', name: options.name });
    this.media = this.takeMedia(options);
    this.stats.start();
    await this.connect();
  }

  private async takeMedia(options: JoinOptions): Promise<void> {
    const m =
      options.media ??
      (await acquireLocalMedia(this.settings.get(), { video: !this.videoMuted, audio: true }));
    if (this.ended) {
      m.stream?.getTracks().forEach((t) => t.stop());
      return;
    }
    this.camTrack = m.stream?.getVideoTracks()[0] ?? null;
    this.micTrack = m.stream?.getAudioTracks()[0] ?? null;
    this.hasCamera = m.camera !== 'unavailable';
    this.hasMic = m.mic !== 'unavailable';
    if (!this.camTrack) this.videoMuted = true;
    if (!this.micTrack) this.audioMuted = true;
    if (this.micTrack) this.micTrack.enabled = !this.audioMuted;
    this.publishLocalStream();
    this.dispatch({
      type: 'media',
      camera: this.camTrack ? (this.videoMuted ? 'off' : 'ok') : m.camera === 'unavailable' ? 'unavailable' : 'off',
      mic: this.micTrack ? (this.audioMuted ? 'off' : 'ok') : m.mic === 'unavailable' ? 'unavailable' : 'off',
    });
    if (m.problem) this.notice('media', m.problem);
  }

  private publishLocalStream(): void {
    const tracks = [this.camTrack, this.micTrack].filter((t): t is MediaStreamTrack => t !== null);
    this.localStream.set(tracks.length ? new MediaStream(tracks) : null);
  }

  private async connect(): Promise<void> {
    const epoch = ++this.epoch;
    let join;
    try {
      // With an invite, every (re)join exchanges it; the token we had keeps our seat of it.
      join = this.invite
        ? await redeemInvite(this.roomId, this.invite, this.name, this.token ?? this.previousToken)
        : await joinRoom(this.roomId, this.name);
    } catch (e) {
      if (this.ended || epoch !== this.epoch) return;
      const gone = e instanceof ApiError && e.status === 404;
      const problem = this.invite && e instanceof ApiError ? inviteProblem(e.code) : null;
      this.inviteFailure = problem;
      const reason = problem
        ? `${problem.title}. ${problem.detail}`
        : e instanceof ApiError
          ? gone
            ? 'This room does not exist (or was closed).'
            : `${e.message} (${e.code})`
          : String(e);
      const retryable = !gone && !(e instanceof ApiError && e.status >= 400 && e.status < 500 && e.status !== 429);
      const wasJoined = this.state.get().wasJoined;
      this.onReconnect({ type: 'lost', reason: wasJoined ? `Cannot get back into the room: ${reason}` : reason, wasJoined, retryable });
      return;
    }
    if (this.ended || epoch !== this.epoch) return;
    log('joined over HTTP as', join.participant_id, join.role ?? '');
    this.iceServers = join.ice_servers;
    this.token = join.token;
    this.role = join.role;
    this.tokenLifetime = join.expires_in;
    this.dispatch({ type: 'joined_http', participantId: join.participant_id, role: join.role, e2ee: join.e2ee });
    if (join.e2ee && !(await this.startE2ee())) return;
    if (this.ended || epoch !== this.epoch) return;
    const url = resolveWsUrl(join.ws_url, join.token, window.location.href);
    const signaling = new SignalingClient(url, {
      onMessage: (m) => {
        if (epoch === this.epoch) this.onMessage(m, epoch);
      },
      onBadMessage: (reason) => this.notice('bad_message', `Ignored a message from the server: ${reason}`),
      onClose: (ev) => {
        if (epoch === this.epoch) this.onSocketClosed(ev);
      },
    });
    this.signaling = signaling;
    signaling.connect();
  }

  /** An e2ee room: derive the room key and start the worker (once). False: the session ended. */
  private async startE2ee(): Promise<boolean> {
    if (this.e2ee) return true;
    const api = e2eeApi();
    if (!api) {
      this.end('failed', 'This room is end-to-end encrypted, and this browser cannot encrypt WebRTC media (no encoded transforms). Use a current Chrome, Edge or Safari.');
      return false;
    }
    if (!this.passphrase) {
      this.end('failed', 'This room is end-to-end encrypted: open it with the full invite link (the part after # holds the key), or enter the key.');
      return false;
    }
    try {
      const key = await deriveRoomKey(this.passphrase, this.roomId);
      if (this.ended) return false;
      this.e2ee = new E2eeClient(api, key, (message) => this.notice('e2ee', message));
      log(`e2ee on (${api})`);
      return true;
    } catch (e) {
      this.end('failed', `Could not set up end-to-end encryption: ${errorText(e)}`);
      return false;
    }
  }

  private onSocketClosed(ev: { code: number; reason: string }): void {
    if (this.ended) return;
    const detail = `code ${ev.code}${ev.reason ? `: ${ev.reason}` : ''}`;
    const wasJoined = this.state.get().wasJoined;
    const reason = wasJoined ? `The connection to the server was lost (${detail}).` : `Could not open the signaling connection (${detail}).`;
    this.onReconnect({ type: 'lost', reason, wasJoined });
  }

  /** Drops the current connection (socket and media) and re-joins after a backoff delay. */
  private scheduleReconnect(reason: string): void {
    this.onReconnect({ type: 'lost', reason, wasJoined: true }); // only after a welcome: media, DTLS and the server's restart
  }

  /** Feeds the reconnect reducer and carries out what it decides. */
  private onReconnect(event: ReconnectEvent): void {
    if (this.ended) return;
    const { state, effects } = reconnectStep(this.reconnect, event);
    this.reconnect = state;
    for (const effect of effects) {
      switch (effect.type) {
        case 'teardown':
          this.epoch++; // everything of the old connection is now stale
          this.clearWelcomeTimer();
          this.awaitingWelcome = false;
          if (this.signaling) {
            this.signaling.send({ type: 'leave' }); // the server frees our old seat at once
            this.signaling.close(1000, 'reconnecting');
            this.signaling = null;
          }
          this.teardownPeers();
          break;
        case 'schedule':
          log(`reconnecting in ${effect.delayMs} ms (attempt ${effect.attempt}): ${effect.reason}`);
          this.dispatch({ type: 'reconnecting', attempt: effect.attempt, reason: effect.reason, retryAt: Date.now() + effect.delayMs });
          if (this.retryTimer !== null) window.clearTimeout(this.retryTimer);
          this.retryTimer = window.setTimeout(() => {
            this.retryTimer = null;
            this.onReconnect({ type: 'retry_due' });
          }, effect.delayMs);
          break;
        case 'cancel_timer':
          if (this.retryTimer !== null) window.clearTimeout(this.retryTimer);
          this.retryTimer = null;
          break;
        case 'connect':
          void this.connect();
          break;
        case 'end':
          this.end(effect.kind, effect.message);
          return;
      }
    }
  }

  /** Reconnects now (the "Retry now" button). */
  retryNow(): void {
    this.onReconnect({ type: 'retry_now' });
  }

  /** Leaves the room: tells the server, closes everything, stops the camera. */
  leave(): void {
    if (this.ended) return;
    this.send({ type: 'leave' });
    this.end('left', null);
  }

  /** Test hook: drops the signaling socket as a network failure would. */
  dropConnectionForTest(): void {
    this.signaling?.drop();
  }

  dismissNotice(id: number): void {
    this.dispatch({ type: 'dismiss_notice', id });
  }

  /**
   * A remote video's tile: the `max_height` it wants (heightBucket: 0 when not shown), or null
   * when the tile went away. Sent as `layer_preference` after a short quiet time.
   */
  setVideoHeight(producerId: string, maxHeight: number | null): void {
    if (maxHeight === null) this.layers.forget(producerId);
    else if (!this.ended) this.layers.set(producerId, maxHeight);
  }

  /** Host only: asks the server to remove a participant (refusals come back as notices). */
  removeParticipant(participantId: string): boolean {
    if (this.ended || this.state.get().phase !== 'joined') return false;
    return this.send({ type: 'remove_participant', participant_id: participantId });
  }

  private end(phase: 'disconnected' | 'left' | 'failed' | 'removed', reason: string | null): void {
    if (this.ended) return;
    this.ended = true;
    this.epoch++;
    log(`session ended: ${phase}${reason ? ` (${reason})` : ''}`);
    if (this.retryTimer !== null) window.clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.clearWelcomeTimer();
    this.stats.stop();
    if (this.refreshTimer !== null) window.clearTimeout(this.refreshTimer);
    this.refreshTimer = null;
    this.layers.cancel();
    this.signaling?.close();
    this.teardownPeers();
    this.e2ee?.close();
    for (const t of [this.camTrack, this.micTrack, this.screenTrack]) t?.stop();
    this.camTrack = this.micTrack = this.screenTrack = null;
    void this.media?.then(() => {
      for (const t of [this.camTrack, this.micTrack]) t?.stop();
    });
    this.localStream.set(null);
    this.screenStream.set(null);
    this.dispatch({ type: 'media', screen: 'off' });
    this.dispatch({ type: 'ended', phase, reason });
  }

  /** Asks for a fresh token at 70 % of the current one's life (gateways whose tokens expire). */
  private scheduleTokenRefresh(): void {
    if (this.refreshTimer !== null) window.clearTimeout(this.refreshTimer);
    this.refreshTimer = null;
    if (this.ended || !this.tokenLifetime) return;
    const ms = Math.max(30_000, this.tokenLifetime * 700);
    this.refreshTimer = window.setTimeout(() => {
      this.refreshTimer = null;
      if (!this.ended) this.send({ type: 'refresh_token' });
    }, ms);
  }

  private clearWelcomeTimer(): void {
    if (this.welcomeTimer !== null) window.clearTimeout(this.welcomeTimer);
    this.welcomeTimer = null;
  }

  /** Closes both PeerConnections (our local tracks stay: they are published again). */
  private teardownPeers(): void {
    for (const pc of [this.publishPc, this.subscribePc]) {
      if (!pc) continue;
      pc.onicecandidate = pc.onconnectionstatechange = pc.oniceconnectionstatechange = pc.ontrack = null;
      pc.close();
    }
    this.resetIceRecovery();
    if (this.e2ee && (this.publishPc || this.subscribePc)) this.e2ee.forget(`${this.pcGeneration}/`);
    this.publishPc = this.subscribePc = null;
    this.cameraTx = this.micTx = this.screenTx = null;
    this.pending = { publish: [], subscribe: [] };
    this.publishQueue = this.newQueue('publish');
    this.subscribeQueue = this.newQueue('subscribe');
    this.stats.reset();
    this.layers.reset(); // the next connection's SFU knows no preferences: they go again
    if (this.remoteStreams.get().size) this.remoteStreams.set(new Map());
    this.dispatch({ type: 'pc_state', pc: 'publish', state: 'none' });
    this.dispatch({ type: 'pc_state', pc: 'subscribe', state: 'none' });
  }

  private createPc(name: PcName): RTCPeerConnection {
    // publish: we offer, so max-bundle (one transport). subscribe: the server offers and decides
    // the bundling; 'balanced' also accepts offers without a BUNDLE group (e.g. every m-line
    // rejected after the last remote participant left), which max-bundle refuses.
    const pc = new RTCPeerConnection({
      iceServers: this.iceServers,
      bundlePolicy: name === 'publish' ? 'max-bundle' : 'balanced',
      rtcpMuxPolicy: 'require',
      ...this.e2ee?.pcConfig(),
    });
    const current = () => !this.ended && (name === 'publish' ? this.publishPc : this.subscribePc) === pc;
    pc.onicecandidate = (e) => {
      if (!current()) return;
      if (e.candidate) {
        if (!e.candidate.candidate) return; // Chrome's per-generation end marker; we send our own below
        this.send({ type: 'candidate', pc: name, candidate: e.candidate.candidate, sdp_mid: e.candidate.sdpMid ?? this.firstMid(pc) });
      } else {
        this.send({ type: 'candidate', pc: name, candidate: '', sdp_mid: this.firstMid(pc) });
      }
    };
    pc.onconnectionstatechange = () => {
      log(`${name} pc connection: ${pc.connectionState}`);
      if (!current()) return;
      this.dispatch({ type: 'pc_state', pc: name, state: pc.connectionState });
      if (pc.connectionState === 'failed' && pc.iceConnectionState !== 'failed' && pc.iceConnectionState !== 'disconnected') {
        // DTLS failed over working ICE: an ICE restart would not help.
        this.scheduleReconnect(`The ${name === 'publish' ? 'sending' : 'receiving'} media connection failed (DTLS).`);
      } else if (pc.connectionState === 'connected') {
        this.onReconnect({ type: 'media_flowing' }); // the next loss starts the backoff from the beginning
      }
    };
    // ICE disconnected or failed: an ICE restart while the socket is open (iceRecovery.ts).
    pc.oniceconnectionstatechange = () => {
      log(`${name} pc ice: ${pc.iceConnectionState}`);
      if (!current()) return;
      this.iceEvent({ type: 'ice', pc: name, state: pc.iceConnectionState as IceState, signalingOpen: this.signalingOpen() });
    };
    if (name === 'subscribe') {
      const gen = this.pcGeneration;
      pc.ontrack = (e) => {
        log(`subscribe track: mid=${e.transceiver.mid} kind=${e.track.kind}`);
        // Before the first frame arrives: every received frame goes through decryption.
        this.e2ee?.attachReceiver(e.receiver, e.track.kind === 'audio' ? 'audio' : 'video', `${gen}/subscribe/${e.transceiver.mid}`);
      };
    }
    return pc;
  }

  private firstMid(pc: RTCPeerConnection): string {
    return pc.getTransceivers().find((t) => t.mid !== null)?.mid ?? '0';
  }

  private onMessage(msg: ServerMessage, epoch: number): void {
    if (this.ended) return;
    if (msg.type !== 'candidate') log('<-', msg.type);
    switch (msg.type) {
      case 'welcome':
        if (this.welcomedEpoch === epoch && !this.awaitingWelcome) {
          this.notice('bad_message', 'Ignored a second welcome message.');
          return;
        }
        this.welcomedEpoch = epoch;
        this.welcomedAtMs = Date.now();
        this.awaitingWelcome = false;
        this.clearWelcomeTimer();
        this.dispatch({ type: 'server', message: msg });
        this.setupPeers();
        this.scheduleTokenRefresh();
        return;
      case 'token':
        // The answer to refresh_token: host calls (broadcast controls) use the fresh one.
        this.token = msg.token;
        if (msg.expires_in) this.tokenLifetime = msg.expires_in;
        this.scheduleTokenRefresh();
        return;
      case 'removed':
        // The host removed us: the server closes the socket and our token is spent, so no re-join.
        log(`removed by the host: ${msg.reason}`);
        this.dispatch({ type: 'server', message: msg });
        this.end('removed', msg.reason || 'The host removed you from the room.');
        return;
      case 'reconnect':
        // The server's media worker restarted: our PeerConnections are dead. A new welcome
        // follows on this socket; if it does not, re-join from scratch.
        log(`server asks to reconnect: ${msg.reason}`);
        this.teardownPeers();
        this.awaitingWelcome = true;
        this.dispatch({ type: 'server', message: msg });
        this.clearWelcomeTimer();
        this.welcomeTimer = window.setTimeout(() => {
          this.welcomeTimer = null;
          if (this.awaitingWelcome) this.scheduleReconnect('The server did not take us back after its restart.');
        }, WELCOME_AFTER_RECONNECT_MS);
        return;
      case 'publish_answer': {
        const pc = this.publishPc;
        this.publishQueue.push('publish_answer', () => this.applyPublishAnswer(pc, msg.sdp));
        return;
      }
      case 'subscribe_offer': {
        const pc = this.subscribePc;
        this.subscribeQueue.push('subscribe_offer', () => this.answerSubscribeOffer(pc, msg.sdp, msg.tracks));
        return;
      }
      case 'candidate': {
        const pc = msg.pc === 'publish' ? this.publishPc : this.subscribePc;
        const queue = msg.pc === 'publish' ? this.publishQueue : this.subscribeQueue;
        queue.push(`${msg.pc} candidate`, () => this.addRemoteCandidate(msg.pc, pc, msg));
        return;
      }
      case 'error':
        log(`server error ${msg.code}: ${msg.message}${msg.fatal ? ' (fatal)' : ''}`);
        if (msg.code === 'unknown_type' && msg.message.includes('`ice_restart`')) {
          // A gateway without ICE restarts: fall back to re-joining.
          this.iceEvent({ type: 'refused', reason: 'The server cannot restart the media connection.' });
          return;
        }
        // (The message lists the known types, so look for the refused one in backquotes.)
        if (msg.code === 'unknown_type' && msg.message.includes('`layer_preference`')) {
          // A gateway without simulcast: it forwards everything anyway; nothing to tell the user.
          this.layers.disable();
          return;
        }
        this.dispatch({ type: 'server', message: msg });
        if (msg.fatal) this.end('failed', msg.message || msg.code);
        return;
      default:
        this.dispatch({ type: 'server', message: msg });
        if (msg.type === 'participant_left' || msg.type === 'producer_removed') this.refreshRemoteStreams();
    }
  }

  /** After a welcome: fresh PeerConnections, publish our tracks, tell our mute state. */
  private setupPeers(): void {
    this.teardownPeers();
    this.pcGeneration++;
    this.publishPc = this.createPc('publish');
    this.subscribePc = this.createPc('subscribe');
    const pc = this.publishPc;
    const welcomedAt = performance.now();
    const published = new Promise<void>((resolve) => (this.publishAnswered = resolve));
    this.subscribeQueue.push('publish first', () => Promise.race([published, sleep(PUBLISH_FIRST_MAX_MS)]));
    this.publishQueue.push('publish_offer', async () => {
      await this.media;
      if (this.ended || pc !== this.publishPc) return;
      const mediaMs = Math.round(performance.now() - welcomedAt);
      if (this.audioMuted || this.videoMuted) this.sendMediaState();
      if (!this.hasCamera && !this.hasMic && !this.screenTrack) {
        this.notice('not_publishing', 'Nobody can see or hear you: no camera or microphone.');
        this.releaseSubscribe();
        return;
      }
      const stream = this.localStream.get() ?? new MediaStream();
      // The camera m-line comes first (others tell camera from screen by producer order) and
      // stays even while the camera is off, so turning it on again needs no renegotiation.
      if (this.hasCamera) {
        this.cameraTx = this.addCameraTransceiver(pc, stream);
        preferVp8(this.cameraTx);
        this.encryptSender(this.cameraTx, 'video');
      }
      if (this.hasMic) {
        this.micTx = pc.addTransceiver(this.micTrack ?? 'audio', { direction: 'sendonly', streams: [stream] });
        this.encryptSender(this.micTx, 'audio');
      }
      if (this.screenTrack) this.addScreenTransceiver(pc, this.screenTrack);
      await this.sendPublishOffer(pc);
      // Where a join's time goes before the server hears of our media (camera, then the offer).
      log(`publish offer sent ${Math.round(performance.now() - welcomedAt)} ms after welcome (media ready after ${mediaMs} ms)`);
    });
  }

  /**
   * The camera's sendonly transceiver, with simulcast layers for the preset (presets.ts
   * SIMULCAST_LAYERS: rids q/h/f, lowest first); a single encoding if the browser refuses them.
   * The encodings are fixed until the next publish: a preset or camera change re-maps the layers
   * onto them (applySendParameters).
   */
  private addCameraTransceiver(pc: RTCPeerConnection, stream: MediaStream): RTCRtpTransceiver {
    const preset = this.settings.get().preset;
    const init = (simulcast: boolean): RTCRtpTransceiverInit => ({
      direction: 'sendonly',
      streams: [stream],
      sendEncodings: cameraSendEncodings(preset, simulcast, this.camTrack?.getSettings()),
    });
    const encodings = init(true).sendEncodings ?? [];
    if (encodings.length > 1) {
      try {
        const tx = pc.addTransceiver(this.camTrack ?? 'video', init(true));
        log(`camera simulcast: ${encodings.map((e) => e.rid).join(', ')}`);
        return tx;
      } catch (e) {
        this.simulcastRefused = true;
        log(`simulcast refused (${errorText(e)}): one encoding`);
      }
    }
    return pc.addTransceiver(this.camTrack ?? 'video', init(false));
  }

  private sendMediaState(): void {
    this.send({ type: 'media_state', audio_muted: this.audioMuted, video_muted: this.videoMuted });
  }

  // ---- ICE restarts ----

  private signalingOpen(): boolean {
    return this.signaling !== null && this.signaling.readyState === WebSocket.OPEN;
  }

  private iceEvent(ev: IceEvent): void {
    if (this.ended) return;
    const step = stepIceRecovery(this.iceRecovery, ev, Date.now());
    this.iceRecovery = step.state;
    this.scheduleIceCheck();
    for (const effect of step.effects) this.applyIceEffect(effect);
  }

  private applyIceEffect(effect: IceEffect): void {
    switch (effect.type) {
      case 'recovering':
        log(`ICE restart: ${effect.reason}`);
        this.dispatch({ type: 'ice_restarting', reason: effect.reason });
        return;
      case 'restart':
        this.iceStats.started[effect.pc]++;
        log(`ICE restart of the ${effect.pc} connection (attempt ${effect.attempt})`);
        if (effect.pc === 'publish') this.restartPublishIce();
        else if (!this.send({ type: 'ice_restart' })) this.iceEvent({ type: 'refused', reason: 'The connection to the server was lost.' });
        return;
      case 'recovered':
        log(`ICE restart: media is back after ${effect.ms} ms`);
        this.iceStats.recoveredMs.push(effect.ms);
        this.dispatch({ type: 'ice_recovered' });
        return;
      case 'rejoin':
        this.iceStats.fellBack++;
        this.scheduleReconnect(effect.reason);
        return;
    }
  }

  private scheduleIceCheck(): void {
    if (this.iceTimer !== null) window.clearTimeout(this.iceTimer);
    this.iceTimer = null;
    const at = nextIceCheck(this.iceRecovery);
    if (at === null || this.ended) return;
    this.iceTimer = window.setTimeout(() => {
      this.iceTimer = null;
      this.iceEvent({ type: 'tick', signalingOpen: this.signalingOpen() });
    }, Math.max(0, at - Date.now()) + 5);
  }

  private resetIceRecovery(): void {
    if (this.iceTimer !== null) window.clearTimeout(this.iceTimer);
    this.iceTimer = null;
    this.iceRecovery = ICE_OK;
    this.publishRestartPending = false;
  }

  /** restartIce and a new publish_offer, the way a screen share renegotiates (after an offer in flight is answered). */
  private restartPublishIce(): void {
    const pc = this.publishPc;
    if (!pc) return;
    this.publishQueue.push('ice restart', async () => {
      if (pc !== this.publishPc || this.ended) return;
      if (pc.signalingState !== 'stable') {
        this.publishRestartPending = true; // applyPublishAnswer sends it
        return;
      }
      pc.restartIce();
      await this.sendPublishOffer(pc);
    });
  }

  // ---- publish ----

  private async sendPublishOffer(pc: RTCPeerConnection): Promise<void> {
    const offer = await pc.createOffer();
    if (pc !== this.publishPc) return;
    await pc.setLocalDescription(offer);
    const sdp = pc.localDescription?.sdp ?? offer.sdp ?? '';
    this.send({ type: 'publish_offer', sdp });
  }

  /** The publish offer is answered (or there is nothing to publish): subscribe work may run. */
  private releaseSubscribe(): void {
    this.publishAnswered?.();
    this.publishAnswered = null;
  }

  private async applyPublishAnswer(pc: RTCPeerConnection | null, sdp: string): Promise<void> {
    if (!pc || this.ended || pc !== this.publishPc) return;
    if (pc.signalingState !== 'have-local-offer') {
      this.notice('bad_state', `Ignored a publish_answer: no offer outstanding (state ${pc.signalingState}).`);
      return;
    }
    await pc.setRemoteDescription({ type: 'answer', sdp });
    this.releaseSubscribe();
    await this.flushCandidates('publish', pc);
    await this.applySendParameters();
    if (this.publishRestartPending && pc === this.publishPc && !this.ended) {
      // An ICE restart was asked for while this offer was out: its offer goes now.
      this.publishRestartPending = false;
      pc.restartIce();
      await this.sendPublishOffer(pc);
    }
  }

  /** Bitrate caps per preset and degradation preference (camera balanced, screen keeps resolution). */
  private async applySendParameters(): Promise<void> {
    const preset = this.settings.get().preset;
    const apply = async (tx: RTCRtpTransceiver | null, source: VideoSource) => {
      if (!tx || tx.currentDirection === 'stopped') return;
      // The camera's picture size decides how many layers the browser will encode.
      const size = source === 'camera' ? this.camTrack?.getSettings() : undefined;
      try {
        await tx.sender.setParameters(videoSendParameters(tx.sender.getParameters(), source, preset, size));
      } catch (e) {
        // Older browsers refuse degradationPreference: keep the bitrate cap at least.
        try {
          const p = tx.sender.getParameters();
          const fixed = videoSendParameters(p, source, preset, size);
          delete (fixed as { degradationPreference?: unknown }).degradationPreference;
          await tx.sender.setParameters(fixed);
        } catch {
          log(`setParameters(${source}) failed: ${errorText(e)}`);
        }
      }
    };
    await apply(this.cameraTx, 'camera');
    await apply(this.screenTx, 'screen');
  }

  // ---- local media controls ----

  setMicEnabled(enabled: boolean): void {
    if (!this.micTrack || this.ended) return;
    this.audioMuted = !enabled;
    this.micTrack.enabled = enabled;
    this.dispatch({ type: 'media', mic: enabled ? 'ok' : 'off' });
    this.sendMediaState();
  }

  /** Camera off stops the camera (its light goes off); on opens it again. No renegotiation. */
  async setCameraEnabled(enabled: boolean): Promise<void> {
    if (this.ended || !this.hasCamera) return;
    if (!enabled) {
      this.videoMuted = true;
      this.dispatch({ type: 'media', camera: 'off' });
      this.sendMediaState();
      const old = this.camTrack;
      this.camTrack = null;
      this.publishLocalStream();
      await this.cameraTx?.sender.replaceTrack(null).catch(() => undefined);
      old?.stop();
      return;
    }
    this.dispatch({ type: 'media', camera: 'pending' });
    try {
      const track = await openCamera(this.settings.get());
      if (this.ended) {
        track.stop();
        return;
      }
      this.camTrack?.stop();
      this.camTrack = track;
      this.videoMuted = false;
      this.publishLocalStream();
      await this.cameraTx?.sender.replaceTrack(track);
      this.dispatch({ type: 'media', camera: 'ok' });
      this.sendMediaState();
      await this.applySendParameters(); // this camera may give another size: re-map the layers
    } catch (e) {
      this.dispatch({ type: 'media', camera: 'off' });
      this.notice('media', `Could not start the camera: ${describeMediaError(e)}.`);
    }
  }

  /** Switches camera, microphone, speaker or preset mid-call (replaceTrack: no renegotiation). */
  async changeSettings(next: Partial<MediaSettings>): Promise<void> {
    const before = this.settings.get();
    const after = { ...before, ...next };
    this.settings.set(after);
    saveSettings(after);
    if (this.ended) return;
    let cameraChanged = false;
    try {
      if (after.cameraId !== before.cameraId && this.camTrack && !this.videoMuted) {
        const track = await openCamera(after);
        const old = this.camTrack;
        this.camTrack = track;
        await this.cameraTx?.sender.replaceTrack(track);
        old.stop();
        this.publishLocalStream();
        cameraChanged = true;
      } else if (after.preset !== before.preset && this.camTrack) {
        await this.camTrack.applyConstraints(videoConstraints(after.preset));
      }
      if (after.micId !== before.micId && this.micTrack) {
        const track = await openMicrophone(after);
        track.enabled = !this.audioMuted;
        const old = this.micTrack;
        this.micTrack = track;
        await this.micTx?.sender.replaceTrack(track);
        old.stop();
        this.publishLocalStream();
      }
      if (after.preset !== before.preset || cameraChanged) await this.applySendParameters();
      if (after.preset !== before.preset) await this.republishCameraIfNeeded();
    } catch (e) {
      this.notice('media', `Could not switch the device: ${describeMediaError(e)}.`);
    }
  }

  /**
   * A preset that wants more simulcast layers than the camera's m-line was negotiated with
   * (Low → HD): the camera is published again on a new m-line with the new layers, and the
   * old one goes inactive (others see its producer replaced). See cameraNeedsRepublish.
   */
  private async republishCameraIfNeeded(): Promise<void> {
    const pc = this.publishPc;
    const old = this.cameraTx;
    if (!pc || !old || this.ended) return;
    const negotiated = old.sender.getParameters().encodings?.length || 1;
    const opts = { screenSharing: this.screenTrack !== null, simulcastRefused: this.simulcastRefused };
    if (!cameraNeedsRepublish(negotiated, this.settings.get().preset, this.camTrack?.getSettings(), opts)) return;
    await this.publishQueue.push('camera layers', async () => {
      if (pc !== this.publishPc || old !== this.cameraTx || this.ended) return;
      await old.sender.replaceTrack(null);
      old.direction = 'inactive';
      const tx = this.addCameraTransceiver(pc, this.localStream.get() ?? new MediaStream());
      preferVp8(tx);
      this.encryptSender(tx, 'video');
      this.cameraTx = tx;
      log(`camera published again for the ${this.settings.get().preset} preset (${tx.sender.getParameters().encodings?.length ?? 1} encodings)`);
      await this.sendPublishOffer(pc);
    });
  }

  /** Starts a screen share: a separate producer (a new sendonly m-line and a new publish_offer). */
  async startScreenShare(): Promise<void> {
    if (this.ended || this.screenTrack) return;
    this.dispatch({ type: 'media', screen: 'starting' });
    let track: MediaStreamTrack;
    try {
      track = await openScreen();
    } catch (e) {
      this.dispatch({ type: 'media', screen: 'off' });
      if (!(e instanceof DOMException && e.name === 'NotAllowedError')) {
        this.notice('screen', `Could not share the screen: ${describeMediaError(e)}.`);
      }
      return;
    }
    if (this.ended) {
      track.stop();
      return;
    }
    this.screenTrack = track;
    track.addEventListener('ended', () => void this.stopScreenShare()); // "Stop sharing" in the browser
    this.screenStream.set(new MediaStream([track]));
    this.dispatch({ type: 'media', screen: 'on' });
    const pc = this.publishPc;
    if (!pc) return; // published with the next welcome
    this.publishQueue.push('screen share', async () => {
      if (pc !== this.publishPc || this.screenTrack !== track) return;
      this.addScreenTransceiver(pc, track);
      await this.sendPublishOffer(pc);
    });
  }

  private addScreenTransceiver(pc: RTCPeerConnection, track: MediaStreamTrack): void {
    this.screenTx = pc.addTransceiver(track, {
      direction: 'sendonly',
      streams: [new MediaStream([track])],
      sendEncodings: [{ maxBitrate: SCREEN_MAX_BITRATE }],
    });
    preferVp8(this.screenTx);
    this.encryptSender(this.screenTx, 'video');
  }

  private senderCount = 0;

  /** E2EE rooms: every frame of this sender is encrypted before it leaves (before the first one). */
  private encryptSender(tx: RTCRtpTransceiver, kind: 'audio' | 'video'): void {
    this.e2ee?.attachSender(tx.sender, kind, `${this.pcGeneration}/publish/${this.senderCount++}`);
  }

  /** Stops the screen share: its m-line goes inactive (the producer is removed) with a new offer. */
  async stopScreenShare(): Promise<void> {
    const track = this.screenTrack;
    if (!track) return;
    this.screenTrack = null;
    track.stop();
    this.screenStream.set(null);
    this.dispatch({ type: 'media', screen: 'off' });
    const pc = this.publishPc;
    const tx = this.screenTx;
    this.screenTx = null;
    if (!pc || !tx || this.ended) return;
    await this.publishQueue.push('stop screen share', async () => {
      if (pc !== this.publishPc) return;
      await tx.sender.replaceTrack(null);
      tx.direction = 'inactive';
      await this.sendPublishOffer(pc);
    });
  }

  // ---- chat, reactions ----

  sendChat(text: string): boolean {
    const t = text.trim();
    if (!t || this.ended) return false;
    return this.send({ type: 'chat', text: t.slice(0, 2000) });
  }

  sendReaction(emoji: string): boolean {
    if (this.ended) return false;
    return this.send({ type: 'reaction', emoji });
  }

  expireReactions(now = Date.now()): void {
    this.dispatch({ type: 'expire_reactions', now });
  }

  setBroadcastState(state: RoomState['broadcast']): void {
    this.dispatch({ type: 'broadcast', state });
  }

  // ---- subscribe ----

  private async answerSubscribeOffer(pc: RTCPeerConnection | null, sdp: string, tracks: TrackInfo[]): Promise<void> {
    if (!pc || this.ended || pc !== this.subscribePc) return;
    await pc.setRemoteDescription({ type: 'offer', sdp });
    const answer = await pc.createAnswer();
    await pc.setLocalDescription(answer);
    if (this.ended || pc !== this.subscribePc) return;
    this.send({ type: 'subscribe_answer', sdp: pc.localDescription?.sdp ?? answer.sdp ?? '' });
    await this.flushCandidates('subscribe', pc);
    this.dispatch({ type: 'tracks_applied', tracks });
    this.refreshRemoteStreams();
    this.layers.flush(); // preferences for producers we just subscribed to (or all, after a reconnect)
  }

  /** Rebuilds tile key → stream from the transceivers the latest offer maps to producers. */
  private refreshRemoteStreams(): void {
    const pc = this.subscribePc;
    if (!pc) return;
    const receivers = pc.getTransceivers().map((tr) => ({ mid: tr.mid, currentDirection: tr.currentDirection, track: tr.receiver.track }));
    const next = tileStreams(
      receivers,
      remoteTiles(this.state.get()),
      this.remoteStreams.get(),
      (s) => s.getTracks(),
      (t) => t.id,
      (tracks) => new MediaStream(tracks),
    );
    if (next) this.remoteStreams.set(next);
  }

  // ---- candidates ----

  private async addRemoteCandidate(name: PcName, pc: RTCPeerConnection | null, c: RemoteCandidate): Promise<void> {
    const currentPc = name === 'publish' ? this.publishPc : this.subscribePc;
    if (!pc || pc !== currentPc || this.ended || !c.candidate) return; // empty = end of candidates
    if (!pc.remoteDescription) {
      this.pending[name].push(c);
      return;
    }
    await this.addCandidate(name, pc, c);
  }

  private async flushCandidates(name: PcName, pc: RTCPeerConnection): Promise<void> {
    const list = this.pending[name].splice(0);
    for (const c of list) await this.addCandidate(name, pc, c);
  }

  private async addCandidate(name: PcName, pc: RTCPeerConnection, c: RemoteCandidate): Promise<void> {
    const init: RTCIceCandidateInit = { candidate: c.candidate };
    if (c.sdp_mid !== null) init.sdpMid = c.sdp_mid;
    else init.sdpMLineIndex = 0;
    try {
      await pc.addIceCandidate(init);
    } catch (e) {
      // The server's candidates are also in its SDP, so a rejected duplicate is harmless.
      console.warn('[roomcast]', `${name}: could not add server candidate ${c.candidate}:`, e);
    }
  }
}
