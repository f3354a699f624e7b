// The receiving side: the subscribe RTCPeerConnection (the server offers every other
// participant's tracks, we answer) and which stream each remote tile plays. It reaches the
// session only through a SubscriberHost.
import type { TrackInfo } from '../signaling';
import { Store } from '../store';
import { PeerSide, log, type PeerHost } from './peer';
import { remoteTiles, type RoomState } from './state';
import { tileStreams } from './subscriberStreams';

/**
 * A joiner's own media goes first: the receiving connection (an offer with every other
 * participant's tracks, a decoder each) waits until our publish offer is answered, at most this
 * long. A browser has one signaling thread per page; on a busy machine, answering a big
 * subscribe offer first delayed our publish offer and its ICE by up to a second, and with it
 * our tile in the broadcast and in everyone else's view.
 */
export const PUBLISH_FIRST_MAX_MS = 1500;

export interface SubscriberHost extends PeerHost {
  room(): RoomState;
  /** An offer is answered and its tracks applied: preferences for its producers may go. */
  subscribed(): void;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => window.setTimeout(resolve, ms));
}

export class Subscriber extends PeerSide<SubscriberHost> {
  /** Tile key → the stream that tile plays (see remoteTiles). */
  readonly streams = new Store<ReadonlyMap<string, MediaStream>>(new Map());

  constructor(host: SubscriberHost) {
    super('subscribe', host);
  }

  /**
   * A new connection after a welcome. `generation` names its E2EE transforms; nothing of it runs
   * before `published` (our first publish offer answered) or PUBLISH_FIRST_MAX_MS.
   */
  open(generation: number, published: Promise<void>): void {
    const pc = this.createPc();
    pc.ontrack = (e) => {
      log(`subscribe track: mid=${e.transceiver.mid} kind=${e.track.kind}`);
      // Before the first frame arrives: every received frame goes through decryption.
      this.host.e2ee()?.attachReceiver(e.receiver, e.track.kind === 'audio' ? 'audio' : 'video', `${generation}/subscribe/${e.transceiver.mid}`);
    };
    this.pc = pc;
    this.queue.push('publish first', () => Promise.race([published, sleep(PUBLISH_FIRST_MAX_MS)]));
  }

  /** A `subscribe_offer` for the connection we have now, answered in turn. */
  onOffer(sdp: string, tracks: TrackInfo[]): void {
    const pc = this.pc;
    this.queue.push('subscribe_offer', () => this.answer(pc, sdp, tracks));
  }

  private async answer(pc: RTCPeerConnection | null, sdp: string, tracks: TrackInfo[]): Promise<void> {
    if (!pc || this.host.ended() || pc !== this.pc) return;
    await pc.setRemoteDescription({ type: 'offer', sdp });
    const answer = await pc.createAnswer();
    await pc.setLocalDescription(answer);
    if (this.host.ended() || pc !== this.pc) return;
    this.host.send({ type: 'subscribe_answer', sdp: pc.localDescription?.sdp ?? answer.sdp ?? '' });
    await this.flushCandidates(pc);
    this.host.dispatch({ type: 'tracks_applied', tracks });
    this.refreshStreams();
    this.host.subscribed();
  }

  /** Rebuilds tile key → stream from the transceivers the latest offer maps to producers. */
  refreshStreams(): void {
    const pc = this.pc;
    if (!pc) return;
    const receivers = pc.getTransceivers().map((tr) => ({ mid: tr.mid, currentDirection: tr.currentDirection, track: tr.receiver.track }));
    const next = tileStreams(
      receivers,
      remoteTiles(this.host.room()),
      this.streams.get(),
      (s) => s.getTracks(),
      (t) => t.id,
      (tracks) => new MediaStream(tracks),
    );
    if (next) this.streams.set(next);
  }

  /** No connection, no remote tiles playing. */
  clearStreams(): void {
    if (this.streams.get().size) this.streams.set(new Map());
  }
}
