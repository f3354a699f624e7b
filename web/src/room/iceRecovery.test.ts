import { describe, expect, it } from 'vitest';
import {
  DEFAULT_ICE_RECOVERY,
  ICE_OK,
  isRecovering,
  nextIceCheck,
  stepIceRecovery,
  type IceEvent,
  type IceRecoveryState,
  type IceState,
  type PcName,
} from './iceRecovery';

const ice = (pc: PcName, state: IceState, signalingOpen = true): IceEvent => ({ type: 'ice', pc, state, signalingOpen });
const tick = (signalingOpen = true): IceEvent => ({ type: 'tick', signalingOpen });

/** Runs events in order (each with its time) and collects every effect. */
function run(events: [number, IceEvent][], start: IceRecoveryState = ICE_OK) {
  let state = start;
  const effects: { at: number; effect: ReturnType<typeof stepIceRecovery>['effects'][number] }[] = [];
  for (const [at, ev] of events) {
    const step = stepIceRecovery(state, ev, at);
    state = step.state;
    for (const effect of step.effects) effects.push({ at, effect });
  }
  return { state, effects, types: effects.map((e) => e.effect.type) };
}

describe('ICE recovery', () => {
  it('a short "disconnected" that comes back by itself does nothing', () => {
    const r = run([
      [0, ice('publish', 'disconnected')],
      [1500, ice('publish', 'connected')],
      [2500, tick()],
    ]);
    expect(r.effects).toEqual([]);
    expect(r.state).toEqual(ICE_OK);
    expect(nextIceCheck(r.state)).toBeNull();
  });

  it('"disconnected" for the grace time: ICE restart and "reconnecting", then "recovered"', () => {
    let s = stepIceRecovery(ICE_OK, ice('subscribe', 'disconnected'), 1000).state;
    expect(nextIceCheck(s)).toBe(1000 + DEFAULT_ICE_RECOVERY.graceMs);
    expect(stepIceRecovery(s, tick(), 2999).effects).toEqual([]);
    const step = stepIceRecovery(s, tick(), 3000);
    expect(step.effects).toEqual([
      { type: 'restart', pc: 'subscribe', attempt: 1 },
      { type: 'recovering', reason: expect.stringContaining('receiving') },
    ]);
    s = step.state;
    expect(isRecovering(s)).toBe(true);
    expect(nextIceCheck(s)).toBe(3000 + DEFAULT_ICE_RECOVERY.recoverMs);
    s = stepIceRecovery(s, ice('subscribe', 'checking'), 3100).state;
    const back = stepIceRecovery(s, ice('subscribe', 'connected'), 4200);
    expect(back.effects).toEqual([{ type: 'recovered', ms: 1200 }]);
    expect(back.state).toEqual(ICE_OK);
  });

  it('"failed" restarts at once (no grace)', () => {
    const r = run([[500, ice('publish', 'failed')]]);
    expect(r.types).toEqual(['restart', 'recovering']);
    expect(r.state.publish).toEqual({ status: 'restarting', startedAt: 500, deadline: 500 + DEFAULT_ICE_RECOVERY.recoverMs, restarts: 1 });
  });

  it('both connections broken: each restarts, "reconnecting" once, "recovered" when both are back', () => {
    const r = run([
      [0, ice('publish', 'disconnected')],
      [300, ice('subscribe', 'disconnected')],
      [2000, tick()],
      [2300, tick()],
      [5000, ice('publish', 'connected')],
      [5400, ice('subscribe', 'connected')],
    ]);
    expect(r.effects.map((e) => [e.at, e.effect.type, 'pc' in e.effect ? e.effect.pc : ''])).toEqual([
      [2000, 'restart', 'publish'],
      [2000, 'recovering', ''],
      [2300, 'restart', 'subscribe'],
      [5400, 'recovered', ''],
    ]);
    expect(r.effects.at(-1)?.effect).toEqual({ type: 'recovered', ms: 3400 });
  });

  it('"recovered" waits for a connection still in its grace time', () => {
    const r = run([
      [0, ice('publish', 'failed')],
      [100, ice('subscribe', 'disconnected')],
      [1000, ice('publish', 'connected')],
      [1500, ice('subscribe', 'connected')],
    ]);
    expect(r.types).toEqual(['restart', 'recovering', 'recovered']);
    expect(r.effects.at(-1)).toEqual({ at: 1500, effect: { type: 'recovered', ms: 1500 } });
  });

  it('not back within the recovery time: re-join', () => {
    const r = run([
      [0, ice('publish', 'disconnected')],
      [2000, tick()],
      [2000 + DEFAULT_ICE_RECOVERY.recoverMs - 1, tick()],
      [2000 + DEFAULT_ICE_RECOVERY.recoverMs, tick()],
    ]);
    expect(r.types).toEqual(['restart', 'recovering', 'rejoin']);
    expect(r.state).toEqual(ICE_OK);
  });

  it('a restart whose checks fail is tried again, up to maxRestarts, then re-join', () => {
    const cfg = { ...DEFAULT_ICE_RECOVERY, maxRestarts: 2 };
    let s = stepIceRecovery(ICE_OK, ice('publish', 'failed'), 0, cfg).state;
    let step = stepIceRecovery(s, ice('publish', 'failed'), 3000, cfg);
    expect(step.effects).toEqual([{ type: 'restart', pc: 'publish', attempt: 2 }]);
    s = step.state;
    // The deadline stays the first restart's.
    expect(nextIceCheck(s, cfg)).toBe(cfg.recoverMs);
    step = stepIceRecovery(s, ice('publish', 'failed'), 6000, cfg);
    expect(step.effects).toEqual([{ type: 'rejoin', reason: expect.stringContaining('2 ICE restarts') }]);
  });

  it('the signaling socket is not open: re-join instead of restarting', () => {
    expect(run([[0, ice('subscribe', 'failed', false)]]).types).toEqual(['rejoin']);
    expect(
      run([
        [0, ice('publish', 'disconnected', false)],
        [2000, tick(false)],
      ]).types,
    ).toEqual(['rejoin']);
  });

  it('the server refuses ice_restart: re-join (only while recovering)', () => {
    expect(stepIceRecovery(ICE_OK, { type: 'refused', reason: 'old server' }, 0).effects).toEqual([]);
    const s = stepIceRecovery(ICE_OK, ice('subscribe', 'failed'), 0).state;
    expect(stepIceRecovery(s, { type: 'refused', reason: 'old server' }, 10).effects).toEqual([{ type: 'rejoin', reason: 'old server' }]);
  });

  it('a new "disconnected" during a restart does not restart again; the deadline decides', () => {
    const r = run([
      [0, ice('publish', 'failed')],
      [100, ice('publish', 'checking')],
      [200, ice('publish', 'disconnected')],
      [5000, tick()],
    ]);
    expect(r.types).toEqual(['restart', 'recovering']);
    expect(isRecovering(r.state)).toBe(true);
  });

  it('per-connection tracking: a second episode starts from attempt 1', () => {
    const r = run([
      [0, ice('publish', 'failed')],
      [100, ice('publish', 'failed')],
      [1000, ice('publish', 'connected')],
      [60_000, ice('publish', 'failed')],
    ]);
    expect(r.effects.map((e) => e.effect)).toEqual([
      { type: 'restart', pc: 'publish', attempt: 1 },
      { type: 'recovering', reason: expect.any(String) },
      { type: 'restart', pc: 'publish', attempt: 2 },
      { type: 'recovered', ms: 1000 },
      { type: 'restart', pc: 'publish', attempt: 1 },
      { type: 'recovering', reason: expect.any(String) },
    ]);
  });
});
