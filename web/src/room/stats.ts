// Reads getStats() of the two PeerConnections once a second and turns it into per-tile
// connection quality and audio levels (the plain logic is in quality.ts and speaker.ts).
import { classifyQuality, rates, sumCounters, type Quality, type QualitySample, type RtpCounters } from './quality';

/** Readings of one stream kept for the quality window. */
const WINDOW_MS = 3000;

export interface TileQuality {
  quality: Quality;
  sample: QualitySample | null;
}

export interface StatsReading {
  /** Per remote tile key, its counters (video + audio added up) this round. */
  remote: Map<string, RtpCounters>;
  /** Per remote participant id, the loudest audio level (0..1) of its audio m-lines. */
  levels: Map<string, number>;
  /** Per remote tile key, the video frames decoded so far (for "is the picture moving"). */
  framesDecoded: Map<string, number>;
  subscribeRttMs: number | null;
  /** The local (outgoing) side: bytes/packets sent and what the SFU reports back. */
  local: RtpCounters | null;
  localRttMs: number | null;
  localLevel: number | null;
}

type Stat = Record<string, unknown> & { type: string; id: string };
const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

function selectedPairRtt(report: RTCStatsReport): number | null {
  let rtt: number | null = null;
  report.forEach((r: Stat) => {
    if (r.type === 'transport' && typeof r.selectedCandidatePairId === 'string') {
      const pair = report.get(r.selectedCandidatePairId) as Stat | undefined;
      const v = num(pair?.currentRoundTripTime);
      if (v !== null) rtt = v * 1000;
    }
  });
  if (rtt === null) {
    report.forEach((r: Stat) => {
      if (r.type === 'candidate-pair' && r.nominated === true && r.state === 'succeeded') {
        const v = num(r.currentRoundTripTime);
        if (v !== null) rtt = v * 1000;
      }
    });
  }
  return rtt;
}

/**
 * One reading. `tileOfMid` maps a subscribe m-line to its tile key and participant.
 */
export async function readStats(
  publishPc: RTCPeerConnection | null,
  subscribePc: RTCPeerConnection | null,
  tileOfMid: Map<string, { key: string; participantId: string; kind: 'audio' | 'video' }>,
  now: number,
): Promise<StatsReading> {
  const out: StatsReading = {
    remote: new Map(),
    levels: new Map(),
    framesDecoded: new Map(),
    subscribeRttMs: null,
    local: null,
    localRttMs: null,
    localLevel: null,
  };
  if (subscribePc && subscribePc.connectionState !== 'closed') {
    const report = await subscribePc.getStats();
    out.subscribeRttMs = selectedPairRtt(report);
    const perTile = new Map<string, RtpCounters[]>();
    report.forEach((r: Stat) => {
      if (r.type !== 'inbound-rtp' || typeof r.mid !== 'string') return;
      const tile = tileOfMid.get(r.mid);
      if (!tile) return;
      const c: RtpCounters = {
        at: now,
        bytes: num(r.bytesReceived) ?? 0,
        packets: num(r.packetsReceived) ?? 0,
        packetsLost: Math.max(0, num(r.packetsLost) ?? 0),
      };
      const list = perTile.get(tile.key) ?? [];
      list.push(c);
      perTile.set(tile.key, list);
      if (tile.kind === 'audio') {
        const level = num(r.audioLevel) ?? 0;
        out.levels.set(tile.participantId, Math.max(out.levels.get(tile.participantId) ?? 0, level));
      } else {
        out.framesDecoded.set(tile.key, (out.framesDecoded.get(tile.key) ?? 0) + (num(r.framesDecoded) ?? 0));
      }
    });
    for (const [key, list] of perTile) {
      const sum = sumCounters(list);
      if (sum) out.remote.set(key, sum);
    }
  }
  if (publishPc && publishPc.connectionState !== 'closed') {
    const report = await publishPc.getStats();
    const sent: RtpCounters[] = [];
    let lost = 0;
    let rtt: number | null = null;
    report.forEach((r: Stat) => {
      if (r.type === 'outbound-rtp') {
        sent.push({ at: now, bytes: num(r.bytesSent) ?? 0, packets: num(r.packetsSent) ?? 0, packetsLost: 0 });
      } else if (r.type === 'remote-inbound-rtp') {
        lost += Math.max(0, num(r.packetsLost) ?? 0);
        const v = num(r.roundTripTime);
        if (v !== null) rtt = Math.max(rtt ?? 0, v * 1000);
      } else if (r.type === 'media-source' && r.kind === 'audio') {
        const v = num(r.audioLevel);
        if (v !== null) out.localLevel = Math.max(out.localLevel ?? 0, v);
      }
    });
    const sum = sumCounters(sent);
    if (sum) out.local = { ...sum, packetsLost: lost };
    out.localRttMs = rtt ?? selectedPairRtt(report);
  }
  return out;
}

/** Keeps a short history of counters per key and grades each key over the window. */
export class QualityTracker {
  private readonly history = new Map<string, RtpCounters[]>();

  /** Adds this round's counters; returns the grade per key. `expectVideo(key)`: video should flow. */
  update(
    counters: Map<string, RtpCounters>,
    rttMs: (key: string) => number | null,
    expectVideo: (key: string) => boolean,
    now: number,
  ): Map<string, TileQuality> {
    const result = new Map<string, TileQuality>();
    for (const [key, c] of counters) {
      const list = (this.history.get(key) ?? []).filter((x) => now - x.at <= WINDOW_MS + 500);
      const oldest = list[0];
      list.push(c);
      this.history.set(key, list);
      const sample = rates(oldest, c, rttMs(key));
      result.set(key, { quality: classifyQuality(sample, expectVideo(key)), sample });
    }
    for (const key of [...this.history.keys()]) if (!counters.has(key)) this.history.delete(key);
    return result;
  }

  reset(): void {
    this.history.clear();
  }
}
