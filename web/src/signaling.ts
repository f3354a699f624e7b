// Signaling protocol v1 (docs/protocol.md): message types, parsing and the WebSocket client.
// Parsing and URL resolution are plain functions; SignalingClient is the thin I/O shell.

export const PROTOCOL_VERSION = 1;

export type PcName = 'publish' | 'subscribe';
export type MediaKind = 'audio' | 'video';

export interface ParticipantInfo {
  id: string;
  name: string;
  audio_muted?: boolean;
  video_muted?: boolean;
}

export type BroadcastState = 'stopped' | 'starting' | 'live' | 'restarting' | 'failed';

export interface ProducerInfo {
  id: string;
  participant_id: string;
  kind: MediaKind;
}

export interface TrackInfo {
  mid: string;
  producer_id: string;
  participant_id: string;
  kind: MediaKind;
}

// Client → server
export type ClientMessage =
  | { type: 'publish_offer'; sdp: string }
  | { type: 'subscribe_answer'; sdp: string }
  | { type: 'candidate'; pc: PcName; candidate: string; sdp_mid: string | null }
  | { type: 'leave' }
  | { type: 'refresh_token' }
  | { type: 'chat'; text: string }
  | { type: 'reaction'; emoji: string }
  | { type: 'media_state'; audio_muted: boolean; video_muted: boolean }
  /** Host only: removes another participant (others get error `forbidden`). */
  | { type: 'remove_participant'; participant_id: string }
  /**
   * How tall (device pixels, 0..=4320) we show a remote video: the SFU forwards the highest
   * simulcast layer that fits (at least the lowest), none while 0. Other producers ignore it.
   */
  | { type: 'layer_preference'; producer_id: string; max_height: number }
  /**
   * The subscribe connection's media broke while this socket works: the server sends a new
   * `subscribe_offer` with fresh ICE credentials (after the one in flight, if any is).
   */
  | { type: 'ice_restart' };

// Server → client
export type ServerMessage =
  | {
      type: 'welcome';
      protocol: number;
      room_id: string;
      participant_id: string;
      participants: ParticipantInfo[];
      producers: ProducerInfo[];
      broadcast: BroadcastState;
    }
  | { type: 'broadcast_state'; state: BroadcastState }
  | { type: 'chat'; participant_id: string; name: string; text: string; ts: number }
  | { type: 'reaction'; participant_id: string; emoji: string }
  | { type: 'media_state'; participant_id: string; audio_muted: boolean; video_muted: boolean }
  | { type: 'reconnect'; reason: string }
  /** The host removed us; the server closes the socket and our token is used up. */
  | { type: 'removed'; reason: string }
  | { type: 'token'; token: string; expires_in: number | null }
  | { type: 'publish_answer'; sdp: string }
  | { type: 'subscribe_offer'; sdp: string; tracks: TrackInfo[] }
  | { type: 'candidate'; pc: PcName; candidate: string; sdp_mid: string | null }
  | { type: 'participant_joined'; participant: ParticipantInfo }
  | { type: 'participant_left'; participant_id: string }
  | { type: 'producer_added'; producer: ProducerInfo }
  | { type: 'producer_removed'; producer_id: string; participant_id: string }
  | { type: 'error'; code: string; message: string; fatal: boolean };

export type ParseResult = { ok: true; message: ServerMessage } | { ok: false; reason: string };

type Obj = Record<string, unknown>;

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const isStr = (v: unknown): v is string => typeof v === 'string';

const isBool = (v: unknown): v is boolean => typeof v === 'boolean';

function participant(v: unknown): ParticipantInfo | null {
  if (!isObj(v) || !isStr(v.id)) return null;
  const p: ParticipantInfo = { id: v.id, name: isStr(v.name) ? v.name : v.id };
  if (isBool(v.audio_muted)) p.audio_muted = v.audio_muted;
  if (isBool(v.video_muted)) p.video_muted = v.video_muted;
  return p;
}

const BROADCAST_STATES: readonly BroadcastState[] = ['stopped', 'starting', 'live', 'restarting', 'failed'];

/** An unknown broadcast state (a newer server) is shown as `stopped` rather than refused. */
function broadcastState(v: unknown): BroadcastState {
  return BROADCAST_STATES.find((s) => s === v) ?? 'stopped';
}

function kind(v: unknown): MediaKind | null {
  return v === 'audio' || v === 'video' ? v : null;
}

function producer(v: unknown): ProducerInfo | null {
  if (!isObj(v) || !isStr(v.id) || !isStr(v.participant_id)) return null;
  const k = kind(v.kind);
  if (!k) return null;
  return { id: v.id, participant_id: v.participant_id, kind: k };
}

function track(v: unknown): TrackInfo | null {
  if (!isObj(v) || !isStr(v.mid) || !isStr(v.producer_id) || !isStr(v.participant_id)) return null;
  const k = kind(v.kind);
  if (!k) return null;
  return { mid: v.mid, producer_id: v.producer_id, participant_id: v.participant_id, kind: k };
}

function list<T>(v: unknown, item: (x: unknown) => T | null): T[] | null {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) return null;
  const out: T[] = [];
  for (const x of v) {
    const parsed = item(x);
    if (parsed === null) return null;
    out.push(parsed);
  }
  return out;
}

/** Parses and validates one text frame from the server. */
export function parseServerMessage(text: string): ParseResult {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return { ok: false, reason: 'not JSON' };
  }
  if (!isObj(v) || !isStr(v.type)) return { ok: false, reason: 'no "type" field' };
  const bad = (what: string): ParseResult => ({ ok: false, reason: `${v.type}: ${what}` });
  switch (v.type) {
    case 'welcome': {
      if (!isStr(v.participant_id)) return bad('missing participant_id');
      const participants = list(v.participants, participant);
      const producers = list(v.producers, producer);
      if (!participants || !producers) return bad('bad participants/producers');
      return {
        ok: true,
        message: {
          type: 'welcome',
          protocol: typeof v.protocol === 'number' ? v.protocol : PROTOCOL_VERSION,
          room_id: isStr(v.room_id) ? v.room_id : '',
          participant_id: v.participant_id,
          participants,
          producers,
          broadcast: broadcastState(v.broadcast),
        },
      };
    }
    case 'broadcast_state':
      if (!isStr(v.state)) return bad('missing state');
      return { ok: true, message: { type: 'broadcast_state', state: broadcastState(v.state) } };
    case 'chat':
      if (!isStr(v.participant_id) || !isStr(v.text)) return bad('missing participant_id or text');
      return {
        ok: true,
        message: {
          type: 'chat',
          participant_id: v.participant_id,
          name: isStr(v.name) ? v.name : v.participant_id,
          text: v.text,
          ts: typeof v.ts === 'number' ? v.ts : Math.floor(Date.now() / 1000),
        },
      };
    case 'reaction':
      if (!isStr(v.participant_id) || !isStr(v.emoji)) return bad('missing participant_id or emoji');
      return { ok: true, message: { type: 'reaction', participant_id: v.participant_id, emoji: v.emoji } };
    case 'media_state':
      if (!isStr(v.participant_id) || !isBool(v.audio_muted) || !isBool(v.video_muted)) {
        return bad('missing participant_id, audio_muted or video_muted');
      }
      return {
        ok: true,
        message: { type: 'media_state', participant_id: v.participant_id, audio_muted: v.audio_muted, video_muted: v.video_muted },
      };
    case 'reconnect':
      return { ok: true, message: { type: 'reconnect', reason: isStr(v.reason) ? v.reason : '' } };
    case 'removed':
      return { ok: true, message: { type: 'removed', reason: isStr(v.reason) ? v.reason : '' } };
    case 'token':
      if (!isStr(v.token) || !v.token) return bad('missing token');
      return {
        ok: true,
        message: { type: 'token', token: v.token, expires_in: typeof v.expires_in === 'number' && v.expires_in > 0 ? v.expires_in : null },
      };
    case 'publish_answer':
      if (!isStr(v.sdp)) return bad('missing sdp');
      return { ok: true, message: { type: 'publish_answer', sdp: v.sdp } };
    case 'subscribe_offer': {
      if (!isStr(v.sdp)) return bad('missing sdp');
      const tracks = list(v.tracks, track);
      if (!tracks) return bad('bad tracks');
      return { ok: true, message: { type: 'subscribe_offer', sdp: v.sdp, tracks } };
    }
    case 'candidate': {
      if (v.pc !== 'publish' && v.pc !== 'subscribe') return bad('pc must be publish or subscribe');
      if (!isStr(v.candidate)) return bad('missing candidate');
      const mid = isStr(v.sdp_mid) ? v.sdp_mid : null;
      return { ok: true, message: { type: 'candidate', pc: v.pc, candidate: v.candidate, sdp_mid: mid } };
    }
    case 'participant_joined': {
      const p = participant(v.participant);
      if (!p) return bad('bad participant');
      return { ok: true, message: { type: 'participant_joined', participant: p } };
    }
    case 'participant_left':
      if (!isStr(v.participant_id)) return bad('missing participant_id');
      return { ok: true, message: { type: 'participant_left', participant_id: v.participant_id } };
    case 'producer_added': {
      const p = producer(v.producer);
      if (!p) return bad('bad producer');
      return { ok: true, message: { type: 'producer_added', producer: p } };
    }
    case 'producer_removed':
      if (!isStr(v.producer_id)) return bad('missing producer_id');
      return {
        ok: true,
        message: {
          type: 'producer_removed',
          producer_id: v.producer_id,
          participant_id: isStr(v.participant_id) ? v.participant_id : '',
        },
      };
    case 'error':
      return {
        ok: true,
        message: {
          type: 'error',
          code: isStr(v.code) ? v.code : 'unknown',
          message: isStr(v.message) ? v.message : '',
          fatal: v.fatal === true,
        },
      };
    default:
      return { ok: false, reason: `unknown type "${v.type}"` };
  }
}

/**
 * Turns the `ws_url` of a join response into an absolute WebSocket URL.
 * Accepts a full ws(s):// URL, an http(s):// URL, or a path (relative to `pageUrl`).
 * Adds `token` as a query parameter when the URL does not carry one.
 */
export function resolveWsUrl(wsUrl: string | undefined, token: string, pageUrl: string): string {
  const url = new URL(wsUrl && wsUrl.length > 0 ? wsUrl : '/ws', pageUrl);
  if (url.protocol === 'http:') url.protocol = 'ws:';
  else if (url.protocol === 'https:') url.protocol = 'wss:';
  if (token && !url.searchParams.has('token')) url.searchParams.set('token', token);
  return url.toString();
}

export interface LogEntry {
  at: number;
  dir: 'in' | 'out' | 'info';
  text: string;
}

export interface SignalingEvents {
  onMessage: (msg: ServerMessage) => void;
  onOpen?: () => void;
  onClose?: (ev: { code: number; reason: string; wasClean: boolean }) => void;
  /** A frame that did not parse: reported, never fatal. */
  onBadMessage?: (reason: string, text: string) => void;
}

const LOG_SIZE = 200;
const LOG_TEXT_MAX = 600;

/** One WebSocket to the gateway. Keeps a short log of the last frames for diagnostics. */
export class SignalingClient {
  readonly log: LogEntry[] = [];
  private ws: WebSocket | null = null;
  private readonly url: string;
  private readonly events: SignalingEvents;

  constructor(url: string, events: SignalingEvents) {
    this.url = url;
    this.events = events;
  }

  get readyState(): number {
    return this.ws?.readyState ?? WebSocket.CLOSED;
  }

  connect(): void {
    const ws = new WebSocket(this.url);
    this.ws = ws;
    this.record('info', `connecting ${this.url.replace(/token=[^&]+/, 'token=…')}`);
    ws.onopen = () => {
      this.record('info', 'open');
      this.events.onOpen?.();
    };
    ws.onmessage = (ev) => {
      if (typeof ev.data !== 'string') {
        this.record('in', '(binary frame ignored)');
        this.events.onBadMessage?.('binary frame', '');
        return;
      }
      this.record('in', ev.data);
      const parsed = parseServerMessage(ev.data);
      if (parsed.ok) this.events.onMessage(parsed.message);
      else this.events.onBadMessage?.(parsed.reason, ev.data);
    };
    ws.onclose = (ev) => {
      this.record('info', `closed code=${ev.code} reason=${ev.reason}`);
      this.events.onClose?.({ code: ev.code, reason: ev.reason, wasClean: ev.wasClean });
    };
    ws.onerror = () => this.record('info', 'socket error');
  }

  send(msg: ClientMessage): boolean {
    const text = JSON.stringify(msg);
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) {
      this.record('info', `not sent (socket not open): ${text}`);
      return false;
    }
    this.record('out', text);
    this.ws.send(text);
    return true;
  }

  /** Closes the socket; no more events are delivered after this. */
  close(code = 1000, reason = 'leave'): void {
    const ws = this.ws;
    if (!ws) return;
    ws.onopen = ws.onmessage = ws.onclose = null;
    if (ws.readyState <= WebSocket.OPEN) ws.close(code, reason);
    this.record('info', `closed by us: ${reason}`);
  }

  /** Closes the socket as if the network dropped it: onClose fires (tests and diagnostics). */
  drop(): void {
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) this.ws.close(4000, 'dropped (test)');
  }

  private record(dir: LogEntry['dir'], text: string): void {
    const short = text.length > LOG_TEXT_MAX ? `${text.slice(0, LOG_TEXT_MAX)}… (${text.length} chars)` : text;
    this.log.push({ at: Date.now(), dir, text: short });
    if (this.log.length > LOG_SIZE) this.log.splice(0, this.log.length - LOG_SIZE);
  }
}
