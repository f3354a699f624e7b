// When media breaks but signaling works: ICE restart first, full re-join only as a fallback.
// A plain state machine over (state, event, now) → (state, effects); iceRecoveryLoop.ts feeds it
// the PeerConnections' iceConnectionState changes and timer ticks, and carries out the effects.
//
// Per PeerConnection:
//   ok ──disconnected──▶ grace ──graceMs──▶ restarting ──connected──▶ ok
//   ok/grace ──failed──▶ restarting (at once)
//   restarting ──failed again──▶ another restart (up to maxRestarts, within the same deadline)
//   restarting ──deadline (recoverMs after the first restart)──▶ re-join
// Anything that needs an ICE restart while the signaling socket is not open re-joins instead.

export type PcName = 'publish' | 'subscribe';

/** RTCIceConnectionState, spelled out so this module needs no DOM types. */
export type IceState = 'new' | 'checking' | 'connected' | 'completed' | 'disconnected' | 'failed' | 'closed';

export interface IceRecoveryConfig {
  /** A connection "disconnected" this long gets an ICE restart (it may come back by itself). */
  graceMs: number;
  /** Media must be back this long after the first restart, else re-join. */
  recoverMs: number;
  /** Restarts per connection within one recovery (a restart whose checks fail is tried again). */
  maxRestarts: number;
}

export const DEFAULT_ICE_RECOVERY: IceRecoveryConfig = { graceMs: 2000, recoverMs: 10_000, maxRestarts: 3 };

export type PcRecovery =
  | { status: 'ok' }
  | { status: 'grace'; since: number }
  | { status: 'restarting'; startedAt: number; deadline: number; restarts: number };

export interface IceRecoveryState {
  readonly publish: PcRecovery;
  readonly subscribe: PcRecovery;
  /** When the current recovery began (the first restart), null when there is none. */
  readonly since: number | null;
}

export type IceEvent =
  /** A PeerConnection's iceConnectionState changed. */
  | { type: 'ice'; pc: PcName; state: IceState; signalingOpen: boolean }
  /** Time passed (the timer set for nextIceCheck fired). */
  | { type: 'tick'; signalingOpen: boolean }
  /** The server cannot restart (e.g. an older gateway answered `unknown_type`). */
  | { type: 'refused'; reason: string };

export type IceEffect =
  /** Restart ICE on this connection (publish: restartIce + new offer; subscribe: send ice_restart). */
  | { type: 'restart'; pc: PcName; attempt: number }
  /** The first restart of a recovery began: show "reconnecting…". */
  | { type: 'recovering'; reason: string }
  /** Every restarted connection is connected again (ms since the first restart). */
  | { type: 'recovered'; ms: number }
  /** Give up on restarts: full re-join. */
  | { type: 'rejoin'; reason: string };

export interface IceStep {
  state: IceRecoveryState;
  effects: IceEffect[];
}

export const ICE_OK: IceRecoveryState = { publish: { status: 'ok' }, subscribe: { status: 'ok' }, since: null };

const PCS: readonly PcName[] = ['publish', 'subscribe'];

const what = (pc: PcName) => (pc === 'publish' ? 'sending' : 'receiving');

/** A recovery is under way ("reconnecting…" is shown): from the first restart until all connections are back. */
export function isRecovering(s: IceRecoveryState): boolean {
  return s.since !== null;
}

/** When the next timer check is due (ms), or null when no timer is needed. */
export function nextIceCheck(s: IceRecoveryState, config: IceRecoveryConfig = DEFAULT_ICE_RECOVERY): number | null {
  let at: number | null = null;
  for (const pc of PCS) {
    const r = s[pc];
    const due = r.status === 'grace' ? r.since + config.graceMs : r.status === 'restarting' ? r.deadline : null;
    if (due !== null && (at === null || due < at)) at = due;
  }
  return at;
}

export function stepIceRecovery(
  s: IceRecoveryState,
  ev: IceEvent,
  now: number,
  config: IceRecoveryConfig = DEFAULT_ICE_RECOVERY,
): IceStep {
  const next: Record<PcName, PcRecovery> = { publish: s.publish, subscribe: s.subscribe };
  const effects: IceEffect[] = [];
  let since = s.since;
  let rejoin: string | null = null;

  const restart = (pc: PcName, signalingOpen: boolean, why: string) => {
    const r = next[pc];
    if (!signalingOpen) {
      rejoin ??= `The ${what(pc)} media connection ${why}, and the server cannot be reached.`;
      return;
    }
    if (r.status === 'restarting') {
      if (r.restarts >= config.maxRestarts) {
        rejoin ??= `The ${what(pc)} media connection did not come back after ${r.restarts} ICE restarts.`;
        return;
      }
      next[pc] = { ...r, restarts: r.restarts + 1 };
      effects.push({ type: 'restart', pc, attempt: r.restarts + 1 });
      return;
    }
    next[pc] = { status: 'restarting', startedAt: now, deadline: now + config.recoverMs, restarts: 1 };
    effects.push({ type: 'restart', pc, attempt: 1 });
    if (since === null) {
      since = now;
      effects.push({ type: 'recovering', reason: `The ${what(pc)} media connection ${why}; restoring it.` });
    }
  };

  switch (ev.type) {
    case 'ice': {
      const r = next[ev.pc];
      switch (ev.state) {
        case 'connected':
        case 'completed':
          next[ev.pc] = { status: 'ok' };
          break;
        case 'disconnected':
          if (r.status === 'ok') next[ev.pc] = { status: 'grace', since: now };
          break;
        case 'failed':
          restart(ev.pc, ev.signalingOpen, 'failed');
          break;
        case 'closed':
          next[ev.pc] = { status: 'ok' };
          break;
        case 'new':
        case 'checking':
          break; // a restart's checks in progress: the deadline decides
      }
      break;
    }
    case 'tick':
      for (const pc of PCS) {
        const r = next[pc];
        if (r.status === 'grace' && now >= r.since + config.graceMs) {
          restart(pc, ev.signalingOpen, 'was interrupted');
        } else if (r.status === 'restarting' && now >= r.deadline) {
          rejoin ??= `The ${what(pc)} media connection did not come back within ${Math.round(config.recoverMs / 1000)} s of an ICE restart.`;
        }
      }
      break;
    case 'refused':
      if (PCS.some((pc) => next[pc].status !== 'ok')) rejoin = ev.reason;
      break;
  }

  if (rejoin !== null) {
    // The re-join replaces both connections: nothing left to track.
    return { state: ICE_OK, effects: [{ type: 'rejoin', reason: rejoin }] };
  }
  if (since !== null && PCS.every((pc) => next[pc].status === 'ok')) {
    effects.push({ type: 'recovered', ms: now - since });
    since = null;
  }
  return { state: { ...next, since }, effects };
}
