//! Call quality of one participant, sampled for the store: the bitrate it sends us, the loss
//! on what it sends, and the round-trip time to it. Fed by str0m's per-stream stats events
//! (once a second per stream); a sample comes out every [`SAMPLE_EVERY`]. Pure: no clock, no IO.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use str0m::media::{Mid, Rid};

/// One incoming stream: a media line, and its simulcast layer if any.
type StreamKey = (Mid, Option<Rid>);

/// How often a participant's quality is written to the store. Samples are small; a 1-hour call
/// is 360 rows per participant.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(10);

/// One sample, without ids (the room adds them).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QualitySample {
    pub bitrate_bps: u64,
    /// Fraction lost, 0.0–1.0: the worst stream of the interval.
    pub loss: f64,
    /// Latest round-trip time; 0 when none was measurable yet.
    pub rtt_ms: f64,
}

#[derive(Debug)]
pub struct QualityMeter {
    /// Bytes received per incoming stream (str0m counts are cumulative).
    bytes_in: HashMap<StreamKey, u64>,
    /// Total bytes at the start of the interval.
    bytes_at_start: u64,
    interval_start: Instant,
    worst_loss: f64,
    rtt_ms: Option<f64>,
}

impl QualityMeter {
    pub fn new(now: Instant) -> Self {
        Self { bytes_in: HashMap::new(), bytes_at_start: 0, interval_start: now, worst_loss: 0.0, rtt_ms: None }
    }

    fn total_in(&self) -> u64 {
        self.bytes_in.values().sum()
    }

    /// Stats of a stream the participant publishes (`MediaIngressStats`).
    pub fn on_ingress(&mut self, stream: StreamKey, bytes: u64, loss: Option<f32>, rtt: Option<Duration>) {
        self.bytes_in.insert(stream, bytes);
        self.note(loss, rtt);
    }

    /// Stats of a stream we send the participant (`MediaEgressStats`): its receiver reports
    /// give the RTT and the loss on our way to it.
    pub fn on_egress(&mut self, loss: Option<f32>, rtt: Option<Duration>) {
        self.note(loss, rtt);
    }

    fn note(&mut self, loss: Option<f32>, rtt: Option<Duration>) {
        if let Some(l) = loss.filter(|l| l.is_finite()) {
            self.worst_loss = self.worst_loss.max(f64::from(l).clamp(0.0, 1.0));
        }
        if let Some(r) = rtt {
            self.rtt_ms = Some(r.as_secs_f64() * 1000.0);
        }
    }

    /// A published media line ended (all its layers): its bytes leave the running total.
    pub fn stream_gone(&mut self, mid: Mid) {
        let gone: u64 = self.bytes_in.iter().filter(|(k, _)| k.0 == mid).map(|(_, b)| *b).sum();
        self.bytes_in.retain(|k, _| k.0 != mid);
        self.bytes_at_start = self.bytes_at_start.saturating_sub(gone);
    }

    /// The sample of the interval if [`SAMPLE_EVERY`] has passed (or `force`, when the
    /// participant leaves and the interval is at least a second long); starts the next interval.
    pub fn sample(&mut self, now: Instant, force: bool) -> Option<QualitySample> {
        let dt = now.saturating_duration_since(self.interval_start);
        let due = dt >= SAMPLE_EVERY || (force && dt >= Duration::from_secs(1));
        if !due {
            return None;
        }
        let total = self.total_in();
        let bytes = total.saturating_sub(self.bytes_at_start);
        let sample = QualitySample {
            bitrate_bps: (bytes as f64 * 8.0 / dt.as_secs_f64()).round() as u64,
            loss: self.worst_loss,
            rtt_ms: self.rtt_ms.unwrap_or(0.0),
        };
        self.bytes_at_start = total;
        self.interval_start = now;
        self.worst_loss = 0.0;
        Some(sample)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mid(s: &str) -> StreamKey {
        (Mid::from(s), None)
    }

    #[test]
    fn bitrate_is_the_bytes_of_the_interval_over_its_length() {
        let t0 = Instant::now();
        let mut q = QualityMeter::new(t0);
        q.on_ingress(mid("0"), 50_000, Some(0.0), None);
        q.on_ingress(mid("1"), 200_000, Some(0.01), Some(Duration::from_millis(40)));
        assert_eq!(q.sample(t0 + Duration::from_secs(5), false), None, "not due yet");
        let s = q.sample(t0 + SAMPLE_EVERY, false).expect("due");
        assert_eq!(s.bitrate_bps, 250_000 * 8 / 10);
        assert!((s.loss - 0.01).abs() < 1e-6);
        assert!((s.rtt_ms - 40.0).abs() < 1e-6);
        // The next interval counts only new bytes; loss starts over, RTT stays the latest known.
        q.on_ingress(mid("1"), 300_000, None, None);
        let s = q.sample(t0 + SAMPLE_EVERY * 2, false).expect("due");
        assert_eq!(s.bitrate_bps, 100_000 * 8 / 10);
        assert_eq!(s.loss, 0.0);
        assert!((s.rtt_ms - 40.0).abs() < 1e-6);
    }

    #[test]
    fn loss_is_the_worst_stream_and_bad_values_are_ignored() {
        let t0 = Instant::now();
        let mut q = QualityMeter::new(t0);
        q.on_ingress(mid("0"), 0, Some(0.2), None);
        q.on_egress(Some(0.05), Some(Duration::from_millis(120)));
        q.on_egress(Some(f32::NAN), None);
        q.on_egress(Some(7.0), None);
        let s = q.sample(t0 + SAMPLE_EVERY, false).unwrap();
        assert_eq!(s.loss, 1.0, "clamped to a fraction");
        assert!((s.rtt_ms - 120.0).abs() < 1e-6);
    }

    #[test]
    fn leaving_flushes_a_short_interval_but_not_an_instant_one() {
        let t0 = Instant::now();
        let mut q = QualityMeter::new(t0);
        q.on_ingress(mid("0"), 10_000, None, None);
        assert_eq!(q.sample(t0 + Duration::from_millis(200), true), None, "too short to mean anything");
        let s = q.sample(t0 + Duration::from_secs(2), true).unwrap();
        assert_eq!(s.bitrate_bps, 40_000);
        assert_eq!(s.rtt_ms, 0.0, "no RTT measured yet");
    }

    #[test]
    fn a_stream_that_ends_does_not_make_the_bitrate_negative() {
        let t0 = Instant::now();
        let mut q = QualityMeter::new(t0);
        q.on_ingress(mid("0"), 100_000, None, None);
        q.on_ingress(mid("1"), 100_000, None, None);
        q.sample(t0 + SAMPLE_EVERY, false).unwrap();
        q.stream_gone(mid("1").0);
        q.on_ingress(mid("0"), 150_000, None, None);
        let s = q.sample(t0 + SAMPLE_EVERY * 2, false).unwrap();
        assert_eq!(s.bitrate_bps, 50_000 * 8 / 10);
    }
}
