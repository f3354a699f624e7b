//! Counters a worker publishes for metrics and ops (atomics: read from any thread, never locked).

use std::sync::atomic::{AtomicU64, Ordering};

use super::router::Counters;

#[derive(Debug, Default)]
pub struct WorkerStats {
    // Gauges, refreshed by the worker's housekeeping.
    pub rooms: AtomicU64,
    pub participants: AtomicU64,
    pub producers: AtomicU64,
    pub consumers: AtomicU64,
    pub legs: AtomicU64,
    // Counters.
    pub rtp_packets_in: AtomicU64,
    pub rtp_bytes_in: AtomicU64,
    pub rtp_packets_out: AtomicU64,
    pub rtp_bytes_out: AtomicU64,
    pub leg_packets_out: AtomicU64,
    /// Keyframe requests sent to publishers (PLI or FIR), and of those the FIRs (a PLI that
    /// went unanswered for 500 ms is repeated as a FIR).
    pub keyframe_requests: AtomicU64,
    pub keyframe_requests_fir: AtomicU64,
    /// NACKs sent to publishers / received from subscribers (retransmissions asked for).
    pub nacks_sent: AtomicU64,
    pub nacks_received: AtomicU64,
    /// Worst incoming packet loss reported in the last stats interval, in parts per million.
    pub ingress_loss_ppm: AtomicU64,
    /// Worst round-trip time (RTCP) to any participant in the last stats interval, µs.
    pub rtt_max_us: AtomicU64,
    pub datagrams_in: AtomicU64,
    pub datagrams_unrouted: AtomicU64,
    /// Loop iterations; a stuck worker stops counting (the liveness check reads it).
    pub loop_turns: AtomicU64,
}

impl WorkerStats {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn set(gauge: &AtomicU64, v: u64) {
        gauge.store(v, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// Adds a router's counters (and keeps the worst of its loss and RTT).
    pub fn absorb(&self, c: &Counters) {
        let adds = [
            (&self.rtp_packets_in, c.rtp_packets_in),
            (&self.rtp_bytes_in, c.rtp_bytes_in),
            (&self.rtp_packets_out, c.rtp_packets_out),
            (&self.rtp_bytes_out, c.rtp_bytes_out),
            (&self.leg_packets_out, c.leg_packets_out),
            (&self.keyframe_requests, c.keyframe_requests),
            (&self.keyframe_requests_fir, c.keyframe_requests_fir),
            (&self.nacks_sent, c.nacks_sent),
            (&self.nacks_received, c.nacks_received),
        ];
        for (counter, n) in adds.into_iter().filter(|(_, n)| *n > 0) {
            counter.fetch_add(n, Ordering::Relaxed);
        }
        if c.ingress_loss_ppm > 0 {
            self.ingress_loss_ppm.fetch_max(c.ingress_loss_ppm, Ordering::Relaxed);
        }
        if c.rtt_max_us > 0 {
            self.rtt_max_us.fetch_max(c.rtt_max_us, Ordering::Relaxed);
        }
    }
}
