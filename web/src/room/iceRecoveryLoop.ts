// The loop around iceRecovery.ts: feeds it the PeerConnections' ICE states and its timer ticks,
// and carries out what it decides through a narrow view of the session (restart a connection,
// show "reconnecting…", re-join). Counts restarts and recoveries for the debug handle.
import type { PcName } from '../signaling';
import type { IceRestartStats } from './debug';
import { ICE_OK, nextIceCheck, stepIceRecovery, type IceEffect, type IceEvent, type IceRecoveryState } from './iceRecovery';
import { log } from './peer';
import type { RoomAction } from './state';

export interface IceRecoveryView {
  ended(): boolean;
  signalingOpen(): boolean;
  dispatch(action: RoomAction): void;
  /** Starts an ICE restart of this connection; false: it could not be asked for (no socket). */
  restart(pc: PcName): boolean;
  /** Gives up on restarts: a full re-join. */
  rejoin(reason: string): void;
}

export class IceRecoveryLoop {
  readonly stats: IceRestartStats = { started: { publish: 0, subscribe: 0 }, recoveredMs: [], fellBack: 0 };
  private state: IceRecoveryState = ICE_OK;
  private timer: number | null = null;

  constructor(private readonly view: IceRecoveryView) {}

  event(ev: IceEvent): void {
    if (this.view.ended()) return;
    const step = stepIceRecovery(this.state, ev, Date.now());
    this.state = step.state;
    this.scheduleCheck();
    for (const effect of step.effects) this.apply(effect);
  }

  /** New connections (or none): nothing to recover. */
  reset(): void {
    if (this.timer !== null) window.clearTimeout(this.timer);
    this.timer = null;
    this.state = ICE_OK;
  }

  private apply(effect: IceEffect): void {
    switch (effect.type) {
      case 'recovering':
        log(`ICE restart: ${effect.reason}`);
        this.view.dispatch({ type: 'ice_restarting', reason: effect.reason });
        return;
      case 'restart':
        this.stats.started[effect.pc]++;
        log(`ICE restart of the ${effect.pc} connection (attempt ${effect.attempt})`);
        if (!this.view.restart(effect.pc)) this.event({ type: 'refused', reason: 'The connection to the server was lost.' });
        return;
      case 'recovered':
        log(`ICE restart: media is back after ${effect.ms} ms`);
        this.stats.recoveredMs.push(effect.ms);
        this.view.dispatch({ type: 'ice_recovered' });
        return;
      case 'rejoin':
        this.stats.fellBack++;
        this.view.rejoin(effect.reason);
        return;
    }
  }

  private scheduleCheck(): void {
    if (this.timer !== null) window.clearTimeout(this.timer);
    this.timer = null;
    const at = nextIceCheck(this.state);
    if (at === null || this.view.ended()) return;
    this.timer = window.setTimeout(() => {
      this.timer = null;
      this.event({ type: 'tick', signalingOpen: this.view.signalingOpen() });
    }, Math.max(0, at - Date.now()) + 5);
  }
}
