// `window.__roomcast`: what the browser tests read of a room session (and what a developer
// inspects in the console). Built over a narrow view of the session; the field names are what
// the tests use, so they stay as they are.
import type { E2eeApi, E2eeStats } from '../e2ee/client';
import type { LogEntry, PcName } from '../signaling';
import type { LiveStats } from './liveStats';
import type { RoomState } from './state';

export interface E2eeDebug {
  api: E2eeApi;
  /** Frames that failed to decrypt, all tiles together. */
  decryptFailures: number;
  decrypted: number;
  encrypted: number;
}

/**
 * What the handle reads of a session. The handle is generic over the session's type, so this
 * file needs no import of the session that builds it (no import cycle).
 */
export interface DebuggedSession {
  readonly state: { get(): RoomState };
  readonly live: { get(): LiveStats };
  readonly publishPc: RTCPeerConnection | null;
  readonly subscribePc: RTCPeerConnection | null;
  readonly signalingLog: LogEntry[];
}

export interface RoomDebugHandle<S extends DebuggedSession = DebuggedSession> {
  readonly participantId: string | null;
  readonly publishPc: RTCPeerConnection | null;
  readonly subscribePc: RTCPeerConnection | null;
  readonly state: RoomState;
  readonly live: LiveStats;
  /** The last signaling frames (in, out, info). */
  readonly log: LogEntry[];
  /** Null outside e2ee rooms. */
  readonly e2ee: E2eeDebug | null;
  /** The session itself (tests call its methods). */
  readonly session: S;
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

/** The E2EE worker's counters summed over every transform, of every connection so far. */
export function e2eeDebug(api: E2eeApi, { receivers, senders }: E2eeStats): E2eeDebug {
  let decryptFailures = 0;
  let decrypted = 0;
  for (const c of receivers.values()) {
    decryptFailures += c.failed;
    decrypted += c.ok;
  }
  let encrypted = 0;
  for (const n of senders.values()) encrypted += n;
  return { api, decryptFailures, decrypted, encrypted };
}

/** What the handle reads beyond the session's public API. */
export interface DebugView {
  welcomedAtMs(): number | null;
  e2ee(): { api: E2eeApi; stats: { get(): E2eeStats } } | null;
  layerPreferences(): ReadonlyMap<string, number>;
  pinLayer(producerId: string, maxHeight: number | null): void;
  iceRestarts(): IceRestartStats;
}

export function roomDebugHandle<S extends DebuggedSession>(session: S, view: DebugView): RoomDebugHandle<S> {
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
      return view.welcomedAtMs();
    },
    get e2ee() {
      const e = view.e2ee();
      return e ? e2eeDebug(e.api, e.stats.get()) : null;
    },
    session,
    get layerPreferences() {
      return Object.fromEntries(view.layerPreferences());
    },
    setLayerPreference(producerId: string, maxHeight: number | null) {
      view.pinLayer(producerId, maxHeight);
    },
    get iceRestarts() {
      const s = view.iceRestarts();
      return { started: { ...s.started }, recoveredMs: [...s.recoveredMs], fellBack: s.fellBack };
    },
  };
}
