// Connection quality from getStats() numbers: plain functions over plain counters, so the
// thresholds are unit-tested. stats.ts reads the PeerConnections and feeds these.

export type Quality = 'good' | 'fair' | 'poor' | 'unknown';

/** Cumulative RTP counters of one stream at one moment (from inbound-rtp or outbound-rtp). */
export interface RtpCounters {
  /** When the counters were read (ms). */
  at: number;
  bytes: number;
  /** Packets received (inbound) or sent (outbound). */
  packets: number;
  /** Packets lost as the receiver counts them (inbound packetsLost, or remote-inbound packetsLost). */
  packetsLost: number;
}

/** Rates over an interval. null = not known. */
export interface QualitySample {
  rttMs: number | null;
  /** Loss in percent of the packets expected in the interval. */
  lossPct: number | null;
  bitrateKbps: number | null;
}

/** Rates between two readings of the same stream's counters (older first). */
export function rates(older: RtpCounters | undefined, newer: RtpCounters, rttMs: number | null): QualitySample {
  if (!older || newer.at <= older.at) return { rttMs, lossPct: null, bitrateKbps: null };
  const seconds = (newer.at - older.at) / 1000;
  const bytes = Math.max(0, newer.bytes - older.bytes);
  const packets = Math.max(0, newer.packets - older.packets);
  const lost = Math.max(0, newer.packetsLost - older.packetsLost);
  const expected = packets + lost;
  return {
    rttMs,
    lossPct: expected > 0 ? (100 * lost) / expected : null,
    bitrateKbps: (bytes * 8) / 1000 / seconds,
  };
}

export interface QualityThresholds {
  fairLossPct: number;
  poorLossPct: number;
  fairRttMs: number;
  poorRttMs: number;
  /**
   * Video below this bitrate (while it is expected to flow) is fair / poor. Kept low: a still
   * or simple picture at 180p legitimately needs only a few dozen kbit/s; what these catch is
   * video that has (nearly) stopped.
   */
  fairKbps: number;
  poorKbps: number;
}

export const THRESHOLDS: QualityThresholds = {
  fairLossPct: 2,
  poorLossPct: 8,
  fairRttMs: 250,
  poorRttMs: 500,
  fairKbps: 40,
  poorKbps: 15,
};

/**
 * good / fair / poor from RTT, loss and (for video that should be flowing) bitrate; the worst
 * of the three wins. `unknown` when nothing is measured yet.
 */
export function classifyQuality(s: QualitySample, expectVideo = false, t: QualityThresholds = THRESHOLDS): Quality {
  const grades: Quality[] = [];
  if (s.lossPct !== null) grades.push(s.lossPct >= t.poorLossPct ? 'poor' : s.lossPct >= t.fairLossPct ? 'fair' : 'good');
  if (s.rttMs !== null) grades.push(s.rttMs >= t.poorRttMs ? 'poor' : s.rttMs >= t.fairRttMs ? 'fair' : 'good');
  if (expectVideo && s.bitrateKbps !== null) {
    grades.push(s.bitrateKbps < t.poorKbps ? 'poor' : s.bitrateKbps < t.fairKbps ? 'fair' : 'good');
  }
  if (grades.length === 0) return 'unknown';
  if (grades.includes('poor')) return 'poor';
  if (grades.includes('fair')) return 'fair';
  return 'good';
}

/** Adds up the counters of several streams (e.g. a participant's audio and video) read together. */
export function sumCounters(list: RtpCounters[]): RtpCounters | undefined {
  if (list.length === 0) return undefined;
  return list.reduce((a, b) => ({
    at: Math.max(a.at, b.at),
    bytes: a.bytes + b.bytes,
    packets: a.packets + b.packets,
    packetsLost: a.packetsLost + b.packetsLost,
  }));
}

export const QUALITY_TEXT: Record<Quality, string> = {
  good: 'Good connection',
  fair: 'Fair connection',
  poor: 'Poor connection',
  unknown: 'Connection quality not known yet',
};

/** A short description for a tooltip / screen readers: "Fair connection · 180 ms · 3.1 % loss · 420 kbit/s". */
export function describeQuality(q: Quality, s: QualitySample | null): string {
  const parts = [QUALITY_TEXT[q]];
  if (s?.rttMs != null) parts.push(`${Math.round(s.rttMs)} ms`);
  if (s?.lossPct != null) parts.push(`${s.lossPct.toFixed(1)} % loss`);
  if (s?.bitrateKbps != null) parts.push(`${Math.round(s.bitrateKbps)} kbit/s`);
  return parts.join(' · ');
}
