// One participant's session in a room: the join request, the signaling socket and the two
// PeerConnections (publish: we offer; subscribe: the server offers). The plain state lives in
// state.ts; this file is the I/O shell around it.
import { joinRoom, ApiError } from '../api';
import {
  SignalingClient,
  resolveWsUrl,
  type PcName,
  type ServerMessage,
  type TrackInfo,
  type LogEntry,
} from '../signaling';
import { Store } from '../store';
import { acquireLocalMedia, preferVp8, type LocalMedia } from './media';
import { SerialQueue } from './queue';
import { initialRoomState, roomReducer, type RoomAction, type RoomState } from './state';

type RemoteCandidate = { candidate: string; sdp_mid: string | null };

export interface RoomDebugHandle {
  readonly participantId: string | null;
  readonly publishPc: RTCPeerConnection | null;
  readonly subscribePc: RTCPeerConnection | null;
  readonly state: RoomState;
  /** The last signaling frames (in, out, info). */
  readonly log: LogEntry[];
  readonly session: RoomSession;
}

function log(...args: unknown[]): void {
  console.info('[roomcast]', ...args);
}

export class RoomSession {
  readonly roomId: string;
  readonly state: Store<RoomState>;
  readonly localStream = new Store<MediaStream | null>(null);
  /** participant id → a stream of that participant's received tracks. */
  readonly remoteStreams = new Store<ReadonlyMap<string, MediaStream>>(new Map());

  publishPc: RTCPeerConnection | null = null;
  subscribePc: RTCPeerConnection | null = null;
  private signaling: SignalingClient | null = null;
  private media: Promise<LocalMedia> | null = null;
  private iceServers: RTCIceServer[] = [];
  private ended = false;
  private welcomed = false;
  private publishStarted = false;
  private readonly pending: Record<PcName, RemoteCandidate[]> = { publish: [], subscribe: [] };
  private readonly publishQueue = new SerialQueue((e, label) => this.fail('publish', label, e));
  private readonly subscribeQueue = new SerialQueue((e, label) => this.fail('subscribe', label, e));

  constructor(roomId: string) {
    this.roomId = roomId;
    this.state = new Store(initialRoomState(roomId));
  }

  get signalingLog(): LogEntry[] {
    return this.signaling?.log ?? [];
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
      get log() {
        return session.signalingLog;
      },
      session,
    };
  }

  private dispatch(action: RoomAction): void {
    this.state.set(roomReducer(this.state.get(), action));
  }

  private notice(code: string, message: string): void {
    log(`notice ${code}: ${message}`);
    this.dispatch({ type: 'notice', code, message });
  }

  private fail(pc: PcName, label: string, e: unknown): void {
    const msg = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
    console.error('[roomcast]', `${pc} ${label} failed:`, e);
    this.notice(`${pc}_failed`, `${label} failed: ${msg}`);
  }

  /** Joins the room as `name`. Resolves once the join request is done (media and ICE go on). */
  async join(name: string): Promise<void> {
    this.dispatch({ type: 'joining', name });
    this.media = acquireLocalMedia().then((m) => {
      if (this.ended) {
        m.stream?.getTracks().forEach((t) => t.stop());
        return m;
      }
      this.localStream.set(m.stream);
      this.dispatch({ type: 'media', camera: m.camera, mic: m.mic });
      if (m.problem) this.notice('media', m.problem);
      return m;
    });

    let join;
    try {
      join = await joinRoom(this.roomId, name);
    } catch (e) {
      const reason =
        e instanceof ApiError
          ? e.status === 404
            ? 'This room does not exist (or was closed).'
            : `${e.message} (${e.code})`
          : String(e);
      this.end('failed', reason);
      return;
    }
    if (this.ended) return;
    log('joined over HTTP as', join.participant_id);
    this.iceServers = join.ice_servers;
    this.dispatch({ type: 'joined_http', participantId: join.participant_id });

    this.publishPc = this.createPc('publish');
    this.subscribePc = this.createPc('subscribe');

    const url = resolveWsUrl(join.ws_url, join.token, window.location.href);
    this.signaling = new SignalingClient(url, {
      onMessage: (m) => this.onMessage(m),
      onBadMessage: (reason) => this.notice('bad_message', `Ignored a message from the server: ${reason}`),
      onClose: (ev) => {
        if (this.ended) return;
        const why = this.welcomed
          ? `The connection to the server was lost (code ${ev.code}${ev.reason ? `: ${ev.reason}` : ''}).`
          : `Could not open the signaling connection (code ${ev.code}${ev.reason ? `: ${ev.reason}` : ''}).`;
        this.end(this.welcomed ? 'disconnected' : 'failed', why);
      },
    });
    this.signaling.connect();
  }

  /** Leaves the room: tells the server, closes everything, stops the camera. */
  leave(): void {
    if (this.ended) return;
    this.signaling?.send({ type: 'leave' });
    this.end('left', null);
  }

  dismissNotice(id: number): void {
    this.dispatch({ type: 'dismiss_notice', id });
  }

  setMicEnabled(enabled: boolean): void {
    const tracks = this.localStream.get()?.getAudioTracks() ?? [];
    tracks.forEach((t) => (t.enabled = enabled));
    if (tracks.length) this.dispatch({ type: 'media', camera: this.state.get().camera, mic: enabled ? 'ok' : 'off' });
  }

  setCameraEnabled(enabled: boolean): void {
    const tracks = this.localStream.get()?.getVideoTracks() ?? [];
    tracks.forEach((t) => (t.enabled = enabled));
    if (tracks.length) this.dispatch({ type: 'media', camera: enabled ? 'ok' : 'off', mic: this.state.get().mic });
  }

  private end(phase: 'disconnected' | 'left' | 'failed', reason: string | null): void {
    if (this.ended) return;
    this.ended = true;
    log(`session ended: ${phase}${reason ? ` (${reason})` : ''}`);
    this.signaling?.close();
    this.publishPc?.close();
    this.subscribePc?.close();
    this.localStream.get()?.getTracks().forEach((t) => t.stop());
    void this.media?.then((m) => m.stream?.getTracks().forEach((t) => t.stop()));
    this.localStream.set(null);
    this.remoteStreams.set(new Map());
    this.dispatch({ type: 'pc_state', pc: 'publish', state: 'closed' });
    this.dispatch({ type: 'pc_state', pc: 'subscribe', state: 'closed' });
    this.dispatch({ type: 'ended', phase, reason });
  }

  private createPc(name: PcName): RTCPeerConnection {
    // publish: we offer, so max-bundle (one transport). subscribe: the server offers and decides
    // the bundling; 'balanced' also accepts offers without a BUNDLE group (e.g. every m-line
    // rejected after the last remote participant left), which max-bundle refuses.
    const pc = new RTCPeerConnection({
      iceServers: this.iceServers,
      bundlePolicy: name === 'publish' ? 'max-bundle' : 'balanced',
      rtcpMuxPolicy: 'require',
    });
    pc.onicecandidate = (e) => {
      if (this.ended) return;
      if (e.candidate) {
        if (!e.candidate.candidate) return; // Chrome's per-generation end marker; we send our own below
        this.signaling?.send({
          type: 'candidate',
          pc: name,
          candidate: e.candidate.candidate,
          sdp_mid: e.candidate.sdpMid ?? this.firstMid(pc),
        });
      } else {
        this.signaling?.send({ type: 'candidate', pc: name, candidate: '', sdp_mid: this.firstMid(pc) });
      }
    };
    pc.onconnectionstatechange = () => {
      log(`${name} pc connection: ${pc.connectionState}`);
      if (!this.ended) this.dispatch({ type: 'pc_state', pc: name, state: pc.connectionState });
      if (pc.connectionState === 'failed' && !this.ended) {
        this.notice(`${name}_ice`, `The ${name} media connection failed (ICE/DTLS).`);
      }
    };
    pc.oniceconnectionstatechange = () => log(`${name} pc ice: ${pc.iceConnectionState}`);
    if (name === 'subscribe') {
      pc.ontrack = (e) => log(`subscribe track: mid=${e.transceiver.mid} kind=${e.track.kind}`);
    }
    return pc;
  }

  private firstMid(pc: RTCPeerConnection): string {
    return pc.getTransceivers().find((t) => t.mid !== null)?.mid ?? '0';
  }

  private onMessage(msg: ServerMessage): void {
    if (this.ended) return;
    if (msg.type !== 'candidate') log('<-', msg.type);
    switch (msg.type) {
      case 'welcome':
        if (this.welcomed) {
          this.notice('bad_message', 'Ignored a second welcome message.');
          return;
        }
        this.welcomed = true;
        this.dispatch({ type: 'server', message: msg });
        this.startPublishing();
        return;
      case 'publish_answer':
        this.publishQueue.push('publish_answer', () => this.applyPublishAnswer(msg.sdp));
        return;
      case 'subscribe_offer':
        this.subscribeQueue.push('subscribe_offer', () => this.answerSubscribeOffer(msg.sdp, msg.tracks));
        return;
      case 'candidate': {
        const queue = msg.pc === 'publish' ? this.publishQueue : this.subscribeQueue;
        queue.push(`${msg.pc} candidate`, () => this.addRemoteCandidate(msg.pc, msg));
        return;
      }
      case 'error':
        log(`server error ${msg.code}: ${msg.message}${msg.fatal ? ' (fatal)' : ''}`);
        this.dispatch({ type: 'server', message: msg });
        if (msg.fatal) this.end('failed', msg.message || msg.code);
        return;
      case 'participant_left':
        this.dispatch({ type: 'server', message: msg });
        this.dropRemoteStream(msg.participant_id);
        return;
      default:
        this.dispatch({ type: 'server', message: msg });
    }
  }

  // ---- publish ----

  private startPublishing(): void {
    if (this.publishStarted) return;
    this.publishStarted = true;
    this.publishQueue.push('publish_offer', async () => {
      const media = await this.media;
      const pc = this.publishPc;
      if (this.ended || !pc || !media) return;
      const stream = media.stream;
      if (!stream || stream.getTracks().length === 0) {
        this.notice('not_publishing', 'Nobody can see or hear you: no camera or microphone.');
        return;
      }
      for (const track of stream.getTracks()) {
        const tr = pc.addTransceiver(track, { direction: 'sendonly', streams: [stream] });
        if (track.kind === 'video') preferVp8(tr);
      }
      await this.sendPublishOffer(pc);
    });
  }

  private async sendPublishOffer(pc: RTCPeerConnection): Promise<void> {
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    const sdp = pc.localDescription?.sdp ?? offer.sdp ?? '';
    this.signaling?.send({ type: 'publish_offer', sdp });
  }

  private async applyPublishAnswer(sdp: string): Promise<void> {
    const pc = this.publishPc;
    if (!pc || this.ended) return;
    if (pc.signalingState !== 'have-local-offer') {
      this.notice('bad_state', `Ignored a publish_answer: no offer outstanding (state ${pc.signalingState}).`);
      return;
    }
    await pc.setRemoteDescription({ type: 'answer', sdp });
    await this.flushCandidates('publish', pc);
  }

  // ---- subscribe ----

  private async answerSubscribeOffer(sdp: string, tracks: TrackInfo[]): Promise<void> {
    const pc = this.subscribePc;
    if (!pc || this.ended) return;
    await pc.setRemoteDescription({ type: 'offer', sdp });
    const answer = await pc.createAnswer();
    await pc.setLocalDescription(answer);
    if (this.ended) return;
    this.signaling?.send({ type: 'subscribe_answer', sdp: pc.localDescription?.sdp ?? answer.sdp ?? '' });
    await this.flushCandidates('subscribe', pc);
    this.dispatch({ type: 'tracks_applied', tracks });
    this.refreshRemoteStreams(pc, tracks);
  }

  /** Rebuilds participant → stream from the transceivers the latest offer maps to producers. */
  private refreshRemoteStreams(pc: RTCPeerConnection, tracks: TrackInfo[]): void {
    const byMid = new Map(tracks.map((t) => [t.mid, t]));
    const perParticipant = new Map<string, MediaStreamTrack[]>();
    for (const tr of pc.getTransceivers()) {
      if (!tr.mid || tr.currentDirection === 'inactive' || tr.currentDirection === 'stopped') continue;
      const info = byMid.get(tr.mid);
      if (!info) continue;
      const list = perParticipant.get(info.participant_id) ?? [];
      list.push(tr.receiver.track);
      perParticipant.set(info.participant_id, list);
    }
    const previous = this.remoteStreams.get();
    const next = new Map<string, MediaStream>();
    let changed = previous.size !== perParticipant.size;
    for (const [pid, list] of perParticipant) {
      const old = previous.get(pid);
      const oldIds = old ? old.getTracks().map((t) => t.id).sort().join(',') : '';
      const newIds = list.map((t) => t.id).sort().join(',');
      if (old && oldIds === newIds) {
        next.set(pid, old);
      } else {
        next.set(pid, new MediaStream(list));
        changed = true;
      }
    }
    if (changed) this.remoteStreams.set(next);
  }

  private dropRemoteStream(participantId: string): void {
    const current = this.remoteStreams.get();
    if (!current.has(participantId)) return;
    const next = new Map(current);
    next.delete(participantId);
    this.remoteStreams.set(next);
  }

  // ---- candidates ----

  private async addRemoteCandidate(name: PcName, c: RemoteCandidate): Promise<void> {
    const pc = name === 'publish' ? this.publishPc : this.subscribePc;
    if (!pc || this.ended || !c.candidate) return; // empty = end of candidates: nothing to do (ICE-lite server)
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
