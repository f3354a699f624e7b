// One participant's session in a room: the join request, the signaling socket, the welcome,
// token refresh and the reconnect logic. The two PeerConnections are publisher.ts (publish: we
// offer; our camera, microphone and screen) and subscriber.ts (subscribe: the server offers),
// each reached through its own side; the plain state lives in state.ts. This file is the I/O
// shell around them.
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
import { joinRoom, redeemInvite } from '../api';
import type { InviteProblem } from './invite';
import { SignalingClient, resolveWsUrl, type ClientMessage, type PcName, type ServerMessage, type LogEntry } from '../signaling';
import { Store } from '../store';
import { E2eeClient, e2eeApi } from '../e2ee/client';
import { deriveRoomKey } from '../e2ee/frame';
import { RECONNECT_IDLE, joinFailure, type ReconnectEvent, type ReconnectState, reconnectStep } from './reconnect';
import type { IceState } from './iceRecovery';
import { IceRecoveryLoop } from './iceRecoveryLoop';
import { roomDebugHandle, type RoomDebugHandle } from './debug';
import { DEFAULT_SETTINGS, saveSettings, type LocalMedia, type MediaSettings } from './media';
import { LayerPreferences } from './layers';
import { LiveStatsPoller, type LiveStats } from './liveStats';
import { errorText, log, type PeerHost } from './peer';
import { Publisher } from './publisher';
import { Subscriber } from './subscriber';
import { initialRoomState, roomReducer, type RoomAction, type RoomState } from './state';

export { SELF_KEY, type LiveStats } from './liveStats';
export type { E2eeDebug, IceRestartStats, RoomDebugHandle } from './debug';

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

export class RoomSession {
  readonly roomId: string;
  readonly state: Store<RoomState>;
  /** Our camera + microphone tracks (the local preview). */
  readonly localStream: Store<MediaStream | null>;
  /** Our screen share, while sharing. */
  readonly screenStream: Store<MediaStream | null>;
  /** Tile key → the stream that tile plays (see remoteTiles). */
  readonly remoteStreams: Store<ReadonlyMap<string, MediaStream>>;
  /** Quality, active speaker and frame counters per tile (liveStats.ts), once a second. */
  readonly live: Store<LiveStats>;
  readonly settings: Store<MediaSettings>;

  /** Our current join token and role (for host calls such as the broadcast controls). */
  token: string | null = null;
  role: string | null = null;
  /** Why a join with an invite link was refused (expired, used up …), for the page to explain. */
  inviteFailure: InviteProblem | null = null;
  private invite: string | null = null;
  private previousToken: string | null = null;
  private signaling: SignalingClient | null = null;
  private name = '';
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
  private refreshTimer: number | null = null;
  /** Seconds the current token lives, when the gateway refreshes tokens over signaling. */
  private tokenLifetime: number | null = null;

  private passphrase: string | null = null;
  /** Set once the join response says e2ee and the key is derived; kept across reconnects. */
  private e2ee: E2eeClient | null = null;
  /** Bumped per pair of PeerConnections: names the E2EE transforms (`<gen>/<pc>/<mid>`). */
  private pcGeneration = 0;

  /** The publish side: our tracks and the connection that sends them. */
  private readonly publisher = new Publisher({
    ...this.peerHost(),
    notice: (code, message) => this.notice(code, message),
    settings: () => this.settings.get(),
    generation: () => this.pcGeneration,
  });

  /** The subscribe side: the server's offers and the remote tiles' streams. */
  private readonly subscriber = new Subscriber({
    ...this.peerHost(),
    room: () => this.state.get(),
    subscribed: () => this.layers.flush(), // preferences for producers we just subscribed to (or all, after a reconnect)
  });

  /** ICE restarts when media breaks and signaling works (iceRecovery.ts). */
  private readonly ice = new IceRecoveryLoop({
    ended: () => this.ended,
    signalingOpen: () => this.signalingOpen(),
    dispatch: (action) => this.dispatch(action),
    restart: (pc) => (pc === 'publish' ? (this.publisher.restartIce(), true) : this.send({ type: 'ice_restart' })),
    rejoin: (reason) => this.scheduleReconnect(reason),
  });

  /** Simulcast: how tall we show each remote video, told to the SFU (layers.ts). */
  private readonly layers = new LayerPreferences({
    send: (producerId, maxHeight) => this.send({ type: 'layer_preference', producer_id: producerId, max_height: maxHeight }),
    canSend: (producerId) =>
      !this.ended && this.subscriber.pc !== null && this.state.get().tracks.some((t) => t.producer_id === producerId && t.kind === 'video'),
  });

  /** Quality and active speaker per tile, read through a narrow view of this session. */
  private readonly stats = new LiveStatsPoller({
    ended: () => this.ended,
    room: () => this.state.get(),
    publishPc: () => this.publisher.pc,
    subscribePc: () => this.subscriber.pc,
    sendingVideo: () => this.publisher.sendingVideo,
    sendingAudio: () => !this.publisher.isAudioMuted,
    wantedHeight: (producerId) => this.layers.wantedFor(producerId),
    e2ee: () => (this.e2ee ? { ...this.e2ee.stats.get(), generation: this.pcGeneration } : null),
  });

  constructor(roomId: string, settings: MediaSettings = DEFAULT_SETTINGS) {
    this.roomId = roomId;
    this.state = new Store(initialRoomState(roomId));
    this.settings = new Store(settings);
    this.live = this.stats.live;
    this.localStream = this.publisher.localStream;
    this.screenStream = this.publisher.screenStream;
    this.remoteStreams = this.subscriber.streams;
  }

  /** What both sides see of the session. */
  private peerHost(): PeerHost {
    return {
      ended: () => this.ended,
      send: (msg) => this.send(msg),
      dispatch: (action) => this.dispatch(action),
      fail: (pc, label, e) => this.fail(pc, label, e),
      iceServers: () => this.iceServers,
      e2ee: () => this.e2ee,
      connectionChanged: (name, pc) => this.onConnectionState(name, pc),
      iceChanged: (name, pc) => this.ice.event({ type: 'ice', pc: name, state: pc.iceConnectionState as IceState, signalingOpen: this.signalingOpen() }),
    };
  }

  /** The live publish connection (null between connections). */
  get publishPc(): RTCPeerConnection | null {
    return this.publisher.pc;
  }

  get subscribePc(): RTCPeerConnection | null {
    return this.subscriber.pc;
  }

  get signalingLog(): LogEntry[] {
    return this.signaling?.log ?? [];
  }

  get isAudioMuted(): boolean {
    return this.publisher.isAudioMuted;
  }

  get isVideoMuted(): boolean {
    return this.publisher.isVideoMuted;
  }

  debugHandle(): RoomDebugHandle<RoomSession> {
    return roomDebugHandle(this, {
      welcomedAtMs: () => this.welcomedAtMs,
      e2ee: () => this.e2ee,
      layerPreferences: () => this.layers.current,
      pinLayer: (producerId, maxHeight) => this.layers.pin(producerId, maxHeight),
      iceRestarts: () => this.ice.stats,
    });
  }

  private dispatch(action: RoomAction): void {
    this.state.set(roomReducer(this.state.get(), action));
  }

  private notice(code: string, message: string): void {
    log(`notice ${code}: ${message}`);
    this.dispatch({ type: 'notice', code, message });
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
    this.passphrase = options.passphrase ?? null;
    this.invite = options.invite ?? null;
    this.previousToken = options.previousToken ?? null;
    this.dispatch({ type: 'joining', name: options.name });
    this.publisher.start(options);
    this.stats.start();
    await this.connect();
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
      const failure = joinFailure(e, Boolean(this.invite), this.state.get().wasJoined);
      this.inviteFailure = failure.inviteFailure;
      this.onReconnect(failure.lost);
      return;
    }
    if (this.ended || epoch !== this.epoch) return;
    log('joined over HTTP as', join.participant_id, join.role ?? '');
    this.iceServers = join.ice_servers;
    this.token = join.token;
    this.role = join.role;
    this.tokenLifetime = join.expires_in;
    this.dispatch({ type: 'joined_http', participantId: join.participant_id, role: join.role, e2ee: join.e2ee });
    // The first offer is made while the socket opens (not in e2ee rooms: their transforms are
    // named after the connection the welcome starts).
    if (!join.e2ee) this.publisher.prepare();
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
    this.publisher.stopMedia();
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

  /**
   * Closes both PeerConnections (our local tracks stay: they are published again), or only the
   * subscribe one when the publish one is a fresh one made before the welcome.
   */
  private teardownPeers(keepPublish = false): void {
    const had = this.publisher.pc !== null || this.subscriber.pc !== null;
    if (!keepPublish) this.publisher.close();
    this.subscriber.close();
    this.ice.reset();
    if (this.e2ee && had) this.e2ee.forget(`${this.pcGeneration}/`);
    this.stats.reset();
    this.layers.reset(); // the next connection's SFU knows no preferences: they go again
    this.subscriber.clearStreams();
    if (!keepPublish) this.dispatch({ type: 'pc_state', pc: 'publish', state: 'none' });
    this.dispatch({ type: 'pc_state', pc: 'subscribe', state: 'none' });
  }

  /** A live PeerConnection's connectionState changed. */
  private onConnectionState(name: PcName, pc: RTCPeerConnection): void {
    this.dispatch({ type: 'pc_state', pc: name, state: pc.connectionState });
    if (pc.connectionState === 'failed' && pc.iceConnectionState !== 'failed' && pc.iceConnectionState !== 'disconnected') {
      // DTLS failed over working ICE: an ICE restart would not help.
      this.scheduleReconnect(`The ${name === 'publish' ? 'sending' : 'receiving'} media connection failed (DTLS).`);
    } else if (pc.connectionState === 'connected') {
      this.onReconnect({ type: 'media_flowing' }); // the next loss starts the backoff from the beginning
    }
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
      case 'publish_answer':
        this.publisher.onAnswer(msg.sdp);
        return;
      case 'subscribe_offer':
        this.subscriber.onOffer(msg.sdp, msg.tracks);
        return;
      case 'candidate':
        (msg.pc === 'publish' ? this.publisher : this.subscriber).onCandidate(msg);
        return;
      case 'error':
        log(`server error ${msg.code}: ${msg.message}${msg.fatal ? ' (fatal)' : ''}`);
        if (msg.code === 'unknown_type' && msg.message.includes('`ice_restart`')) {
          // A gateway without ICE restarts: fall back to re-joining.
          this.ice.event({ type: 'refused', reason: 'The server cannot restart the media connection.' });
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
        if (msg.type === 'participant_left' || msg.type === 'producer_removed') this.subscriber.refreshStreams();
    }
  }

  /** After a welcome: fresh PeerConnections, publish our tracks, tell our mute state. */
  private setupPeers(): void {
    const prepared = this.publisher.takePrepared(); // made while the socket opened (connect)
    this.teardownPeers(prepared !== null);
    this.pcGeneration++;
    const published = prepared ?? this.publisher.open();
    this.subscriber.open(this.pcGeneration, published); // its work waits for our first answer
    this.publisher.publish();
  }

  private signalingOpen(): boolean {
    return this.signaling !== null && this.signaling.readyState === WebSocket.OPEN;
  }

  // ---- local media controls (publisher.ts) ----

  setMicEnabled(enabled: boolean): void {
    this.publisher.setMicEnabled(enabled);
  }

  /** Camera off stops the camera (its light goes off); on opens it again. No renegotiation. */
  setCameraEnabled(enabled: boolean): Promise<void> {
    return this.publisher.setCameraEnabled(enabled);
  }

  /** Switches camera, microphone, speaker or preset mid-call (replaceTrack: no renegotiation). */
  async changeSettings(next: Partial<MediaSettings>): Promise<void> {
    const before = this.settings.get();
    const after = { ...before, ...next };
    this.settings.set(after);
    saveSettings(after);
    if (this.ended) return;
    await this.publisher.changeSettings(before, after);
  }

  /** A screen share is a separate producer: its own m-line, added and removed with a new offer. */
  startScreenShare(): Promise<void> {
    return this.publisher.startScreenShare();
  }

  stopScreenShare(): Promise<void> {
    return this.publisher.stopScreenShare();
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
}
