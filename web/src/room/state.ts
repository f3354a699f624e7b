// Room state as plain data and a pure reducer over it. No WebRTC, no sockets: the session
// (session.ts) feeds it events and renders from it.
import type { BroadcastState, ParticipantInfo, ProducerInfo, ServerMessage, TrackInfo } from '../signaling';

export type Phase =
  | 'idle' // not joined yet (the pre-join lobby)
  | 'joining' // HTTP join + WebSocket connecting
  | 'joined' // welcome received
  | 'reconnecting' // lost the server or the media; trying to get back in
  | 'disconnected' // gave up reconnecting
  | 'left' // the user left
  | 'removed' // the host removed us (no reconnect: our token is used up)
  | 'failed'; // could not join, or a fatal error

export type MediaStatus = 'pending' | 'ok' | 'unavailable' | 'off';
export type ScreenStatus = 'off' | 'starting' | 'on';

export interface Notice {
  id: number;
  code: string;
  message: string;
  at: number;
}

export interface ChatMessage {
  id: number;
  participantId: string;
  name: string;
  text: string;
  /** Server time, unix seconds. */
  ts: number;
  self: boolean;
}

export interface Reaction {
  id: number;
  participantId: string;
  emoji: string;
  /** Local receive time (ms). */
  at: number;
}

export interface ReconnectInfo {
  /** 1-based attempt number (0 while waiting for the server's welcome after `reconnect`). */
  attempt: number;
  reason: string;
  /** When the next attempt starts (ms), or null when waiting for the server. */
  retryAt: number | null;
  /** An ICE restart on the same session (signaling works, media broke): no re-join yet. */
  iceRestart?: boolean;
}

export interface RoomState {
  phase: Phase;
  roomId: string;
  selfId: string | null;
  selfName: string;
  /** Remote participants in join order (with their mute flags). */
  participants: ParticipantInfo[];
  producers: ProducerInfo[];
  /** The mid → producer map of the last applied subscribe offer. */
  tracks: TrackInfo[];
  camera: MediaStatus;
  mic: MediaStatus;
  screen: ScreenStatus;
  broadcast: BroadcastState;
  publishPcState: RTCPeerConnectionState | 'none';
  subscribePcState: RTCPeerConnectionState | 'none';
  chat: ChatMessage[];
  reactions: Reaction[];
  reconnect: ReconnectInfo | null;
  /** How many times this session got back in after a connection loss. */
  reconnects: number;
  /** How many times media came back by an ICE restart (same participant, same socket). */
  iceRestarts: number;
  /** Non-fatal problems, newest last (at most MAX_NOTICES). */
  notices: Notice[];
  /** Why the session ended, when phase is failed/disconnected. */
  endReason: string | null;
  /** A welcome arrived at some point: "failed" then means removed, not "could not join". */
  wasJoined: boolean;
  /** Our role from the join response ('host' may remove others); null when the gateway does not say. */
  role: string | null;
  /** The room is end-to-end encrypted (from the join response). */
  e2ee: boolean;
}

export const MAX_NOTICES = 5;
export const MAX_CHAT = 200;
export const REACTION_MS = 4000;

export function initialRoomState(roomId: string, selfName = ''): RoomState {
  return {
    phase: 'idle',
    roomId,
    selfId: null,
    selfName,
    participants: [],
    producers: [],
    tracks: [],
    camera: 'pending',
    mic: 'pending',
    screen: 'off',
    broadcast: 'stopped',
    publishPcState: 'none',
    subscribePcState: 'none',
    chat: [],
    reactions: [],
    reconnect: null,
    reconnects: 0,
    iceRestarts: 0,
    notices: [],
    endReason: null,
    wasJoined: false,
    role: null,
    e2ee: false,
  };
}

export type RoomAction =
  | { type: 'server'; message: ServerMessage; at?: number }
  | { type: 'joining'; name: string }
  | { type: 'joined_http'; participantId: string; role?: string | null; e2ee?: boolean }
  | { type: 'media'; camera?: MediaStatus; mic?: MediaStatus; screen?: ScreenStatus }
  | { type: 'pc_state'; pc: 'publish' | 'subscribe'; state: RTCPeerConnectionState | 'none' }
  | { type: 'tracks_applied'; tracks: TrackInfo[] }
  | { type: 'reconnecting'; attempt: number; reason: string; retryAt: number | null }
  /** Media broke while signaling works: ICE restart in progress (tiles and tracks stay). */
  | { type: 'ice_restarting'; reason: string }
  /** The ICE restart brought media back. */
  | { type: 'ice_recovered' }
  | { type: 'broadcast'; state: BroadcastState }
  | { type: 'expire_reactions'; now: number }
  | { type: 'notice'; code: string; message: string; at?: number }
  | { type: 'dismiss_notice'; id: number }
  | { type: 'ended'; phase: 'disconnected' | 'left' | 'failed' | 'removed'; reason: string | null };

let nextId = 1;

function addNotice(state: RoomState, code: string, message: string, at = Date.now()): RoomState {
  const notices = [...state.notices, { id: nextId++, code, message, at }];
  return { ...state, notices: notices.slice(-MAX_NOTICES) };
}

function upsertParticipant(list: ParticipantInfo[], p: ParticipantInfo): ParticipantInfo[] {
  const i = list.findIndex((x) => x.id === p.id);
  if (i < 0) return [...list, p];
  const copy = list.slice();
  copy[i] = { ...copy[i], ...p };
  return copy;
}

function upsertProducer(list: ProducerInfo[], p: ProducerInfo): ProducerInfo[] {
  return [...list.filter((x) => x.id !== p.id), p];
}

function applyServer(state: RoomState, msg: ServerMessage, at: number): RoomState {
  switch (msg.type) {
    case 'welcome': {
      const self = msg.participant_id;
      const again = state.wasJoined;
      return {
        ...state,
        phase: 'joined',
        selfId: self,
        roomId: msg.room_id || state.roomId,
        participants: msg.participants.filter((p) => p.id !== self),
        producers: msg.producers.filter((p) => p.participant_id !== self),
        tracks: [],
        broadcast: msg.broadcast,
        reconnect: null,
        reconnects: again && state.phase === 'reconnecting' ? state.reconnects + 1 : state.reconnects,
        endReason: null,
        wasJoined: true,
      };
    }
    case 'participant_joined':
      if (msg.participant.id === state.selfId) return state;
      return { ...state, participants: upsertParticipant(state.participants, msg.participant) };
    case 'participant_left':
      return {
        ...state,
        participants: state.participants.filter((p) => p.id !== msg.participant_id),
        producers: state.producers.filter((p) => p.participant_id !== msg.participant_id),
        tracks: state.tracks.filter((t) => t.participant_id !== msg.participant_id),
        reactions: state.reactions.filter((r) => r.participantId !== msg.participant_id),
      };
    case 'producer_added':
      if (msg.producer.participant_id === state.selfId) return state;
      return { ...state, producers: upsertProducer(state.producers, msg.producer) };
    case 'producer_removed':
      return { ...state, producers: state.producers.filter((p) => p.id !== msg.producer_id) };
    case 'media_state': {
      if (msg.participant_id === state.selfId) return state;
      const i = state.participants.findIndex((p) => p.id === msg.participant_id);
      if (i < 0) return state;
      const participants = state.participants.slice();
      participants[i] = { ...participants[i], audio_muted: msg.audio_muted, video_muted: msg.video_muted };
      return { ...state, participants };
    }
    case 'chat': {
      const m: ChatMessage = {
        id: nextId++,
        participantId: msg.participant_id,
        name: msg.name,
        text: msg.text,
        ts: msg.ts,
        self: msg.participant_id === state.selfId,
      };
      return { ...state, chat: [...state.chat, m].slice(-MAX_CHAT) };
    }
    case 'reaction':
      return {
        ...state,
        reactions: [
          ...state.reactions.filter((r) => at - r.at < REACTION_MS),
          { id: nextId++, participantId: msg.participant_id, emoji: msg.emoji, at },
        ].slice(-30),
      };
    case 'broadcast_state':
      return { ...state, broadcast: msg.state };
    case 'reconnect':
      // The session closes its PeerConnections; the server's next welcome brings us back.
      return {
        ...state,
        phase: 'reconnecting',
        tracks: [],
        reactions: [],
        reconnect: { attempt: 0, reason: msg.reason || 'The media server restarted.', retryAt: null },
      };
    case 'removed':
      return {
        ...state,
        phase: 'removed',
        endReason: msg.reason || 'The host removed you from the room.',
        reconnect: null,
        participants: [],
        producers: [],
        tracks: [],
        reactions: [],
      };
    case 'error':
      // A fatal error ends the session and is shown as the reason, not as a notice.
      if (msg.fatal) return { ...state, phase: 'failed', endReason: msg.message || msg.code };
      return addNotice(state, msg.code, msg.message || msg.code);
    // SDP, candidates and tokens are the session's business; they do not change the plain state.
    case 'token':
    case 'publish_answer':
    case 'subscribe_offer':
    case 'candidate':
      return state;
  }
}

export function roomReducer(state: RoomState, action: RoomAction): RoomState {
  switch (action.type) {
    case 'server':
      return applyServer(state, action.message, action.at ?? Date.now());
    case 'joining':
      return {
        ...initialRoomState(state.roomId, action.name),
        phase: 'joining',
        notices: state.notices,
        camera: state.camera,
        mic: state.mic,
      };
    case 'joined_http':
      return {
        ...state,
        selfId: action.participantId || state.selfId,
        role: action.role !== undefined ? action.role : state.role,
        e2ee: action.e2ee ?? state.e2ee,
      };
    case 'media':
      return {
        ...state,
        camera: action.camera ?? state.camera,
        mic: action.mic ?? state.mic,
        screen: action.screen ?? state.screen,
      };
    case 'pc_state':
      return action.pc === 'publish'
        ? { ...state, publishPcState: action.state }
        : { ...state, subscribePcState: action.state };
    case 'tracks_applied':
      return { ...state, tracks: action.tracks };
    case 'reconnecting':
      if (state.phase === 'left' || state.phase === 'failed' || state.phase === 'disconnected' || state.phase === 'removed') return state;
      return {
        ...state,
        phase: 'reconnecting',
        tracks: [],
        reactions: [],
        publishPcState: 'none',
        subscribePcState: 'none',
        reconnect: { attempt: action.attempt, reason: action.reason, retryAt: action.retryAt },
      };
    case 'ice_restarting':
      if (state.phase !== 'joined') return state;
      return { ...state, phase: 'reconnecting', reconnect: { attempt: 0, reason: action.reason, retryAt: null, iceRestart: true } };
    case 'ice_recovered':
      if (state.phase !== 'reconnecting' || !state.reconnect?.iceRestart) return state;
      return { ...state, phase: 'joined', reconnect: null, iceRestarts: state.iceRestarts + 1 };
    case 'broadcast':
      return { ...state, broadcast: action.state };
    case 'expire_reactions': {
      const reactions = state.reactions.filter((r) => action.now - r.at < REACTION_MS);
      return reactions.length === state.reactions.length ? state : { ...state, reactions };
    }
    case 'notice':
      return addNotice(state, action.code, action.message, action.at);
    case 'dismiss_notice':
      return { ...state, notices: state.notices.filter((n) => n.id !== action.id) };
    case 'ended':
      if (state.phase === 'failed' && action.phase === 'disconnected') return state;
      if (state.phase === 'left' || state.phase === 'removed') return state;
      return { ...state, phase: action.phase, endReason: action.reason ?? state.endReason, reconnect: null };
  }
}

/** "p-11aa:3" → 3; ids without a number sort after the numbered ones, in their list order. */
function producerIndex(id: string): number {
  const m = /:(\d+)$/.exec(id);
  return m ? Number(m[1]) : Number.MAX_SAFE_INTEGER;
}

/**
 * Which of each participant's video producers is the camera and which are screen shares.
 * The protocol does not label producers, so the convention is: a participant's first video
 * producer (lowest producer number) is its camera; any later video producer is a screen share.
 * (The web client always publishes its camera first; a re-join publishes it first again.)
 * Returns producer id → role.
 */
export function videoRoles(producers: ProducerInfo[]): Map<string, 'camera' | 'screen'> {
  const byParticipant = new Map<string, ProducerInfo[]>();
  for (const p of producers) {
    if (p.kind !== 'video') continue;
    const list = byParticipant.get(p.participant_id) ?? [];
    list.push(p);
    byParticipant.set(p.participant_id, list);
  }
  const roles = new Map<string, 'camera' | 'screen'>();
  for (const list of byParticipant.values()) {
    const sorted = list
      .map((p, i) => ({ p, i }))
      .sort((a, b) => producerIndex(a.p.id) - producerIndex(b.p.id) || a.i - b.i);
    sorted.forEach(({ p }, i) => roles.set(p.id, i === 0 ? 'camera' : 'screen'));
  }
  return roles;
}

export interface TileModel {
  /** Stable key: the participant id for a camera tile, `<participant>/screen/<producer>` for a screen. */
  key: string;
  participantId: string;
  name: string;
  kind: 'camera' | 'screen';
  /** A subscribe m-line currently carries this tile's video / the participant's audio. */
  hasVideo: boolean;
  hasAudio: boolean;
  audioMuted: boolean;
  videoMuted: boolean;
  /** The mids whose tracks this tile plays. */
  mids: string[];
  /** The producer of the video this tile plays (simulcast layer preferences), if any. */
  videoProducerId: string | null;
}

export const screenKey = (participantId: string, producerId: string) => `${participantId}/screen/${producerId}`;

/** Camera tiles (one per remote participant, in join order) and screen-share tiles. */
export function remoteTiles(state: RoomState): TileModel[] {
  const roles = videoRoles(state.producers);
  const out: TileModel[] = [];
  for (const p of state.participants) {
    const mine = state.tracks.filter((t) => t.participant_id === p.id);
    const camera = mine.filter((t) => t.kind === 'video' && roles.get(t.producer_id) !== 'screen');
    const audio = mine.filter((t) => t.kind === 'audio');
    out.push({
      key: p.id,
      participantId: p.id,
      name: p.name,
      kind: 'camera',
      hasVideo: camera.length > 0,
      hasAudio: audio.length > 0,
      audioMuted: p.audio_muted === true,
      videoMuted: p.video_muted === true,
      mids: [...camera, ...audio].map((t) => t.mid),
      videoProducerId: camera[0]?.producer_id ?? null,
    });
    for (const t of mine) {
      if (t.kind !== 'video' || roles.get(t.producer_id) !== 'screen') continue;
      out.push({
        key: screenKey(p.id, t.producer_id),
        participantId: p.id,
        name: p.name,
        kind: 'screen',
        hasVideo: true,
        hasAudio: false,
        audioMuted: false,
        videoMuted: false,
        mids: [t.mid],
        videoProducerId: t.producer_id,
      });
    }
  }
  return out;
}

/** Groups the mids of a subscribe offer by participant: participant id → mids. */
export function midsByParticipant(tracks: TrackInfo[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const t of tracks) {
    const mids = out.get(t.participant_id);
    if (mids) mids.push(t.mid);
    else out.set(t.participant_id, [t.mid]);
  }
  return out;
}

/** Chat messages that arrived after `seenId` and were not sent by us (for the unread badge). */
export function unreadCount(chat: ChatMessage[], seenId: number): number {
  return chat.filter((m) => m.id > seenId && !m.self).length;
}
