// What the publish and subscribe sides share: one RTCPeerConnection at a time, a serial queue
// (offers, answers and server candidates run in the order the socket delivered them) and the
// server candidates that came before the remote description. Publisher and Subscriber extend
// PeerSide and reach the session only through a PeerHost: no socket, no room state of their own.
import type { E2eeClient } from '../e2ee/client';
import type { ClientMessage, PcName } from '../signaling';
import { SerialQueue } from './queue';
import type { RoomAction } from './state';

export type RemoteCandidate = { candidate: string; sdp_mid: string | null };

export function log(...args: unknown[]): void {
  console.info('[roomcast]', ...args);
}

export function errorText(e: unknown): string {
  return e instanceof Error ? `${e.name}: ${e.message}` : String(e);
}

/** What a side needs of the session. */
export interface PeerHost {
  ended(): boolean;
  send(msg: ClientMessage): boolean;
  dispatch(action: RoomAction): void;
  /** A queued step failed: the session logs it and shows a notice. */
  fail(pc: PcName, label: string, e: unknown): void;
  iceServers(): RTCIceServer[];
  /** Null outside e2ee rooms (and before the key is derived). */
  e2ee(): E2eeClient | null;
  /** The live connection's connectionState changed. */
  connectionChanged(name: PcName, pc: RTCPeerConnection): void;
  /** The live connection's iceConnectionState changed. */
  iceChanged(name: PcName, pc: RTCPeerConnection): void;
}

/**
 * publish: we offer, so max-bundle (one transport). subscribe: the server offers and decides the
 * bundling; 'balanced' also accepts offers without a BUNDLE group (e.g. every m-line rejected
 * after the last remote participant left), which max-bundle refuses.
 */
export function peerConfig(name: PcName, iceServers: RTCIceServer[], e2ee?: Partial<RTCConfiguration>): RTCConfiguration {
  return { iceServers, bundlePolicy: name === 'publish' ? 'max-bundle' : 'balanced', rtcpMuxPolicy: 'require', ...e2ee };
}

/**
 * The `candidate` message for a local icecandidate event, or null to send none. A null event
 * (gathering done) is sent as the empty end-of-candidates; the server needs an sdp_mid on every
 * candidate, so the first negotiated mid stands in when the browser gives none.
 */
export function localCandidateMessage(
  name: PcName,
  candidate: { candidate: string; sdpMid: string | null } | null,
  firstMid: () => string,
): ClientMessage | null {
  if (!candidate) return { type: 'candidate', pc: name, candidate: '', sdp_mid: firstMid() };
  if (!candidate.candidate) return null; // Chrome's per-generation end marker; ours goes with the null event
  return { type: 'candidate', pc: name, candidate: candidate.candidate, sdp_mid: candidate.sdpMid ?? firstMid() };
}

/**
 * What to do with a server candidate: ignore it (its connection is gone, or it is the empty
 * end-of-candidates), hold it until the remote description is set (addIceCandidate refuses it
 * before), or add it now.
 */
export function remoteCandidateStep(c: RemoteCandidate, live: boolean, hasRemoteDescription: boolean): 'ignore' | 'hold' | 'add' {
  if (!live || !c.candidate) return 'ignore';
  return hasRemoteDescription ? 'add' : 'hold';
}

/** addIceCandidate's argument: the server's mid, or the first m-line when it named none. */
export function candidateInit(c: RemoteCandidate): RTCIceCandidateInit {
  const init: RTCIceCandidateInit = { candidate: c.candidate };
  if (c.sdp_mid !== null) init.sdpMid = c.sdp_mid;
  else init.sdpMLineIndex = 0;
  return init;
}

function firstMid(pc: RTCPeerConnection): string {
  return pc.getTransceivers().find((t) => t.mid !== null)?.mid ?? '0';
}

/** One side's connection, its queue and its held server candidates; one instance per session. */
export abstract class PeerSide<Host extends PeerHost> {
  /** The live connection: null until the first welcome and after a teardown. */
  pc: RTCPeerConnection | null = null;
  protected queue: SerialQueue;
  private held: RemoteCandidate[] = [];

  constructor(
    readonly name: PcName,
    protected readonly host: Host,
  ) {
    this.queue = this.newQueue();
  }

  private newQueue(): SerialQueue {
    return new SerialQueue((e, label) => this.host.fail(this.name, label, e));
  }

  /** A new connection with our handlers; the caller makes it `this.pc`. Stale ones report nothing. */
  protected createPc(): RTCPeerConnection {
    const name = this.name;
    const pc = new RTCPeerConnection(peerConfig(name, this.host.iceServers(), this.host.e2ee()?.pcConfig()));
    const current = () => !this.host.ended() && this.pc === pc;
    pc.onicecandidate = (e) => {
      if (!current()) return;
      const msg = localCandidateMessage(name, e.candidate, () => firstMid(pc));
      if (msg) this.sendLocalCandidate(msg);
    };
    pc.onconnectionstatechange = () => {
      log(`${name} pc connection: ${pc.connectionState}`);
      if (current()) this.host.connectionChanged(name, pc);
    };
    // ICE disconnected or failed: an ICE restart while the socket is open (iceRecovery.ts).
    pc.oniceconnectionstatechange = () => {
      log(`${name} pc ice: ${pc.iceConnectionState}`);
      if (current()) this.host.iceChanged(name, pc);
    };
    return pc;
  }

  /** One of our ICE candidates for the server. */
  protected sendLocalCandidate(msg: ClientMessage): void {
    this.host.send(msg);
  }

  /**
   * Closes the connection. Held candidates go, and a fresh queue starts: steps still queued for
   * the old connection find it stale and do nothing.
   */
  close(): void {
    const pc = this.pc;
    if (pc) {
      pc.onicecandidate = pc.onconnectionstatechange = pc.oniceconnectionstatechange = pc.ontrack = null;
      pc.close();
    }
    this.pc = null;
    this.held = [];
    this.queue = this.newQueue();
  }

  /** A server `candidate` for this side, queued behind the offer or answer before it. */
  onCandidate(c: RemoteCandidate): void {
    const pc = this.pc;
    this.queue.push(`${this.name} candidate`, async () => {
      const live = pc !== null && pc === this.pc && !this.host.ended();
      const step = remoteCandidateStep(c, live, pc?.remoteDescription != null);
      if (step === 'hold') this.held.push(c);
      else if (step === 'add' && pc) await this.addCandidate(pc, c);
    });
  }

  /** The remote description is set: the held candidates go in, in order. */
  protected async flushCandidates(pc: RTCPeerConnection): Promise<void> {
    const list = this.held.splice(0);
    for (const c of list) await this.addCandidate(pc, c);
  }

  private async addCandidate(pc: RTCPeerConnection, c: RemoteCandidate): Promise<void> {
    try {
      await pc.addIceCandidate(candidateInit(c));
    } catch (e) {
      // The server's candidates are also in its SDP, so a rejected duplicate is harmless.
      console.warn('[roomcast]', `${this.name}: could not add server candidate ${c.candidate}:`, e);
    }
  }
}
