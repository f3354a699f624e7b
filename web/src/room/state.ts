// Room state as plain data and a pure reducer over it. No WebRTC, no sockets: the session
// (session.ts) feeds it events and renders from it.
import type { ParticipantInfo, ProducerInfo, ServerMessage, TrackInfo } from '../signaling';

export type Phase =
  | 'idle' // not joined yet (name form)
  | 'joining' // HTTP join + WebSocket connecting
  | 'joined' // welcome received
  | 'disconnected' // socket closed unexpectedly
  | 'left' // the user left
  | 'failed'; // could not join, or a fatal error

export type MediaStatus = 'pending' | 'ok' | 'unavailable' | 'off';

export interface Notice {
  id: number;
  code: string;
  message: string;
  at: number;
}

export interface RoomState {
  phase: Phase;
  roomId: string;
  selfId: string | null;
  selfName: string;
  /** Remote participants in join order. */
  participants: ParticipantInfo[];
  producers: ProducerInfo[];
  /** The mid → producer map of the last applied subscribe offer. */
  tracks: TrackInfo[];
  camera: MediaStatus;
  mic: MediaStatus;
  publishPcState: RTCPeerConnectionState | 'none';
  subscribePcState: RTCPeerConnectionState | 'none';
  /** Non-fatal problems, newest last (at most MAX_NOTICES). */
  notices: Notice[];
  /** Why the session ended, when phase is failed/disconnected. */
  endReason: string | null;
  /** A welcome arrived at some point: "failed" then means removed, not "could not join". */
  wasJoined: boolean;
}

export const MAX_NOTICES = 5;

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
    publishPcState: 'none',
    subscribePcState: 'none',
    notices: [],
    endReason: null,
    wasJoined: false,
  };
}

export type RoomAction =
  | { type: 'server'; message: ServerMessage }
  | { type: 'joining'; name: string }
  | { type: 'joined_http'; participantId: string }
  | { type: 'media'; camera: MediaStatus; mic: MediaStatus }
  | { type: 'pc_state'; pc: 'publish' | 'subscribe'; state: RTCPeerConnectionState | 'none' }
  | { type: 'tracks_applied'; tracks: TrackInfo[] }
  | { type: 'notice'; code: string; message: string; at?: number }
  | { type: 'dismiss_notice'; id: number }
  | { type: 'ended'; phase: 'disconnected' | 'left' | 'failed'; reason: string | null };

let nextNoticeId = 1;

function addNotice(state: RoomState, code: string, message: string, at = Date.now()): RoomState {
  const notices = [...state.notices, { id: nextNoticeId++, code, message, at }];
  return { ...state, notices: notices.slice(-MAX_NOTICES) };
}

function upsertParticipant(list: ParticipantInfo[], p: ParticipantInfo): ParticipantInfo[] {
  const i = list.findIndex((x) => x.id === p.id);
  if (i < 0) return [...list, p];
  const copy = list.slice();
  copy[i] = p;
  return copy;
}

function upsertProducer(list: ProducerInfo[], p: ProducerInfo): ProducerInfo[] {
  return [...list.filter((x) => x.id !== p.id), p];
}

function applyServer(state: RoomState, msg: ServerMessage): RoomState {
  switch (msg.type) {
    case 'welcome': {
      const self = msg.participant_id;
      return {
        ...state,
        phase: 'joined',
        selfId: self,
        roomId: msg.room_id || state.roomId,
        participants: msg.participants.filter((p) => p.id !== self),
        producers: msg.producers.filter((p) => p.participant_id !== self),
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
      };
    case 'producer_added':
      if (msg.producer.participant_id === state.selfId) return state;
      return { ...state, producers: upsertProducer(state.producers, msg.producer) };
    case 'producer_removed':
      return { ...state, producers: state.producers.filter((p) => p.id !== msg.producer_id) };
    case 'error':
      // A fatal error ends the session and is shown as the reason, not as a notice.
      if (msg.fatal) return { ...state, phase: 'failed', endReason: msg.message || msg.code };
      return addNotice(state, msg.code, msg.message || msg.code);
    // SDP and candidates are the session's business; they do not change the plain state.
    case 'publish_answer':
    case 'subscribe_offer':
    case 'candidate':
      return state;
  }
}

export function roomReducer(state: RoomState, action: RoomAction): RoomState {
  switch (action.type) {
    case 'server':
      return applyServer(state, action.message);
    case 'joining':
      return { ...initialRoomState(state.roomId, action.name), phase: 'joining', notices: state.notices };
    case 'joined_http':
      return { ...state, selfId: action.participantId || state.selfId };
    case 'media':
      return { ...state, camera: action.camera, mic: action.mic };
    case 'pc_state':
      return action.pc === 'publish'
        ? { ...state, publishPcState: action.state }
        : { ...state, subscribePcState: action.state };
    case 'tracks_applied':
      return { ...state, tracks: action.tracks };
    case 'notice':
      return addNotice(state, action.code, action.message, action.at);
    case 'dismiss_notice':
      return { ...state, notices: state.notices.filter((n) => n.id !== action.id) };
    case 'ended':
      if (state.phase === 'failed' && action.phase === 'disconnected') return state;
      return { ...state, phase: action.phase, endReason: action.reason ?? state.endReason };
  }
}

export interface TileModel {
  participantId: string;
  name: string;
  /** The producers of this participant that a subscribe m-line currently carries. */
  hasVideo: boolean;
  hasAudio: boolean;
}

/** One tile per remote participant, in join order. */
export function remoteTiles(state: RoomState): TileModel[] {
  return state.participants.map((p) => ({
    participantId: p.id,
    name: p.name,
    hasVideo: state.tracks.some((t) => t.participant_id === p.id && t.kind === 'video'),
    hasAudio: state.tracks.some((t) => t.participant_id === p.id && t.kind === 'audio'),
  }));
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
