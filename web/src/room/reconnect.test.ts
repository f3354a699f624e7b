import { describe, expect, it } from 'vitest';
import { MAX_RECONNECT_ATTEMPTS } from './backoff';
import { ApiError } from '../api';
import { RECONNECT_IDLE, joinFailure, type ReconnectEvent, type ReconnectState, reconnectStep } from './reconnect';

const delay = (attempt: number) => 100 * 2 ** attempt;
const step = (s: ReconnectState, e: ReconnectEvent) => reconnectStep(s, e, delay);
const lost = (reason = 'socket closed'): ReconnectEvent => ({ type: 'lost', reason, wasJoined: true });

describe('reconnect', () => {
  it('a loss tears down, waits the first backoff delay, then joins again', () => {
    const a = step(RECONNECT_IDLE, lost());
    expect(a.state).toEqual({ phase: 'waiting', attempt: 1 });
    expect(a.effects).toEqual([{ type: 'teardown' }, { type: 'schedule', delayMs: 100, attempt: 1, reason: 'socket closed' }]);
    const b = step(a.state, { type: 'retry_due' });
    expect(b.state.phase).toBe('connecting');
    expect(b.effects).toEqual([{ type: 'connect' }]);
  });

  it('each failed retry waits longer; media flowing again starts over', () => {
    let s = RECONNECT_IDLE;
    const delays: number[] = [];
    for (let i = 0; i < 3; i += 1) {
      const r = step(s, lost());
      delays.push(r.effects.find((e) => e.type === 'schedule')!.delayMs);
      s = step(r.state, { type: 'retry_due' }).state;
    }
    expect(delays).toEqual([100, 200, 400]);
    s = step(s, { type: 'media_flowing' }).state;
    expect(s).toEqual(RECONNECT_IDLE);
    expect(step(s, lost()).effects[1]).toMatchObject({ delayMs: 100, attempt: 1 });
  });

  it('a second loss while a retry is scheduled changes nothing', () => {
    const a = step(RECONNECT_IDLE, lost());
    const b = step(a.state, lost('DTLS failed'));
    expect(b.state).toBe(a.state);
    expect(b.effects).toEqual([]);
  });

  it('"retry now" cancels the timer and joins at once; a late timer then does nothing', () => {
    const a = step(RECONNECT_IDLE, lost());
    const b = step(a.state, { type: 'retry_now' });
    expect(b.effects).toEqual([{ type: 'cancel_timer' }, { type: 'connect' }]);
    expect(step(b.state, { type: 'retry_due' }).effects).toEqual([]);
    expect(step(RECONNECT_IDLE, { type: 'retry_now' }).effects).toEqual([]);
  });

  it(`gives up after ${MAX_RECONNECT_ATTEMPTS} attempts in a row, and then stays ended`, () => {
    let s = RECONNECT_IDLE;
    for (let i = 0; i < MAX_RECONNECT_ATTEMPTS; i += 1) s = step(step(s, lost()).state, { type: 'retry_due' }).state;
    const end = step(s, lost('server unreachable'));
    expect(end.state.phase).toBe('given_up');
    expect(end.effects).toEqual([{ type: 'end', kind: 'disconnected', message: `server unreachable Gave up after ${MAX_RECONNECT_ATTEMPTS} attempts.` }]);
    expect(step(end.state, lost()).effects).toEqual([]);
    expect(step(end.state, { type: 'retry_now' }).effects).toEqual([]);
  });

  it('before the first join, or for an answer that will not change, the session ends at once', () => {
    const never = step(RECONNECT_IDLE, { type: 'lost', reason: 'Could not open the signaling connection', wasJoined: false });
    expect(never.effects).toEqual([{ type: 'end', kind: 'failed', message: 'Could not open the signaling connection' }]);
    const gone = step(RECONNECT_IDLE, { type: 'lost', reason: 'This room does not exist', wasJoined: true, retryable: false });
    expect(gone.state.phase).toBe('given_up');
    expect(gone.effects).toContainEqual({ type: 'end', kind: 'failed', message: 'This room does not exist' });
  });
});

describe('join failures', () => {
  it('a missing room is final; server trouble and rate limits are retried; a network error is retried', () => {
    expect(joinFailure(new ApiError(404, 'room_not_found', 'no such room'), false, false)).toEqual({
      lost: { type: 'lost', reason: 'This room does not exist (or was closed).', wasJoined: false, retryable: false },
      inviteFailure: null,
    });
    expect(joinFailure(new ApiError(503, 'unavailable', 'try later'), false, true).lost).toEqual({
      type: 'lost',
      reason: 'Cannot get back into the room: try later (unavailable)',
      wasJoined: true,
      retryable: true,
    });
    expect(joinFailure(new ApiError(429, 'rate_limited', 'slow down'), false, true).lost).toMatchObject({ retryable: true });
    expect(joinFailure(new ApiError(403, 'forbidden', 'no'), false, true).lost).toMatchObject({ retryable: false });
    expect(joinFailure(new TypeError('Failed to fetch'), false, false).lost).toMatchObject({ reason: 'TypeError: Failed to fetch', retryable: true });
  });

  it('with an invite link, the invite problem is explained (and only then)', () => {
    const expired = new ApiError(410, 'invite_expired', 'expired');
    const r = joinFailure(expired, true, false);
    expect(r.inviteFailure?.code).toBe('invite_expired');
    expect(r.lost).toMatchObject({ reason: `${r.inviteFailure!.title}. ${r.inviteFailure!.detail}`, retryable: false });
    expect(joinFailure(expired, false, false)).toMatchObject({ inviteFailure: null, lost: { reason: 'expired (invite_expired)' } });
  });
});
