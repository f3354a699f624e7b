// When the whole connection to the room is lost (the signaling socket closed, a re-join failed,
// a media connection failed for good): drop everything and join again after a backoff delay,
// up to MAX_RECONNECT_ATTEMPTS in a row. A plain reducer over (state, event) → (state,
// effects); session.ts feeds it what happened and carries out the effects (timers, sockets,
// PeerConnections). ICE restarts, for media that breaks while signaling works, are
// iceRecovery.ts's business; this is its fallback.
//
//   idle ──lost──▶ waiting ──retry_due / retry_now──▶ connecting ──media_flowing──▶ idle (attempts reset)
//   connecting ──lost──▶ waiting (the next, longer delay)
//   any ──lost, MAX_RECONNECT_ATTEMPTS used──▶ given_up (the page offers a manual re-join)
//   before the first join: a closed socket or a failed join ends the session (nothing to get back to)

import { ApiError } from '../api';
import { MAX_RECONNECT_ATTEMPTS, backoffDelay } from './backoff';
import { inviteProblem, type InviteProblem } from './invite';

export type ReconnectPhase = 'idle' | 'waiting' | 'connecting' | 'given_up';

export interface ReconnectState {
  readonly phase: ReconnectPhase;
  /** Reconnects started since media last flowed. */
  readonly attempt: number;
}

export const RECONNECT_IDLE: ReconnectState = { phase: 'idle', attempt: 0 };

export type ReconnectEvent =
  /** The connection is gone (`wasJoined`: this page had been in the room). `retryable`: false for answers that will not change (404, 403…). */
  | { type: 'lost'; reason: string; wasJoined: boolean; retryable?: boolean }
  /** The backoff delay is over. */
  | { type: 'retry_due' }
  /** The user pressed "Retry now". */
  | { type: 'retry_now' }
  /** A media connection is up again: the next loss starts the backoff from the beginning. */
  | { type: 'media_flowing' };

export type ReconnectEffect =
  /** Close the socket (after `leave`) and the PeerConnections; everything of the old connection is stale. */
  | { type: 'teardown' }
  /** Show "reconnecting" and call back with `retry_due` after `delayMs`. */
  | { type: 'schedule'; delayMs: number; attempt: number; reason: string }
  /** Cancel the scheduled retry. */
  | { type: 'cancel_timer' }
  /** Join again now. */
  | { type: 'connect' }
  /** The session is over (which closes everything): `failed` (never got in, or refused for good) or `disconnected` (gave up getting back). */
  | { type: 'end'; kind: 'failed' | 'disconnected'; message: string };

export interface ReconnectStep {
  state: ReconnectState;
  effects: ReconnectEffect[];
}

/** `delay(attempt)` is the backoff (a parameter so tests need no randomness). */
export function reconnectStep(state: ReconnectState, event: ReconnectEvent, delay: (attempt: number) => number = backoffDelay): ReconnectStep {
  const same: ReconnectStep = { state, effects: [] };
  if (state.phase === 'given_up') return same;
  switch (event.type) {
    case 'lost': {
      if (!event.wasJoined || event.retryable === false) {
        return { state: { ...state, phase: 'given_up' }, effects: [{ type: 'end', kind: 'failed', message: event.reason }] };
      }
      // One loss at a time: a second report while a retry is scheduled changes nothing.
      if (state.phase === 'waiting') return same;
      if (state.attempt >= MAX_RECONNECT_ATTEMPTS) {
        return {
          state: { ...state, phase: 'given_up' },
          effects: [{ type: 'end', kind: 'disconnected', message: `${event.reason} Gave up after ${state.attempt} attempts.` }],
        };
      }
      const delayMs = delay(state.attempt);
      const attempt = state.attempt + 1;
      return { state: { phase: 'waiting', attempt }, effects: [{ type: 'teardown' }, { type: 'schedule', delayMs, attempt, reason: event.reason }] };
    }
    case 'retry_due':
      return state.phase === 'waiting' ? { state: { ...state, phase: 'connecting' }, effects: [{ type: 'connect' }] } : same;
    case 'retry_now':
      return state.phase === 'waiting' ? { state: { ...state, phase: 'connecting' }, effects: [{ type: 'cancel_timer' }, { type: 'connect' }] } : same;
    case 'media_flowing':
      return state.attempt > 0 || state.phase === 'connecting' ? { state: RECONNECT_IDLE, effects: [] } : same;
  }
}

/**
 * A join request failed: the `lost` event (a 404 or another 4xx other than 429 will not change
 * on retry) and, with an invite link, the problem the page explains.
 */
export function joinFailure(e: unknown, withInvite: boolean, wasJoined: boolean): { lost: ReconnectEvent; inviteFailure: InviteProblem | null } {
  const api = e instanceof ApiError ? e : null;
  const gone = api !== null && api.status === 404;
  const problem = withInvite && api ? inviteProblem(api.code) : null;
  const reason = problem
    ? `${problem.title}. ${problem.detail}`
    : api
      ? gone
        ? 'This room does not exist (or was closed).'
        : `${api.message} (${api.code})`
      : String(e);
  const retryable = !gone && !(api && api.status >= 400 && api.status < 500 && api.status !== 429);
  return { lost: { type: 'lost', reason: wasJoined ? `Cannot get back into the room: ${reason}` : reason, wasJoined, retryable }, inviteFailure: problem };
}
