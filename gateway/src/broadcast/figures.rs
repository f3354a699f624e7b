//! A pipeline's media figures for ops and `/metrics`, read from the compositor's `stats`
//! events (compositor/PROTOCOL.md). Pure: the supervisor hands it each event.

use std::collections::BTreeMap;

use compositor_protocol::Stats;
use serde::Serialize;

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PipelineFigures {
    /// Video frames decoded per second over all inputs, and frames out per second.
    pub fps_in: Option<f64>,
    pub fps_out: Option<f64>,
    /// Inputs with no media now (their tiles show placeholders).
    pub stalled_inputs: usize,
    /// Frames / RTP packets lost before the grid, since the broadcast started: totals over
    /// every compositor process, so they never go back when one is restarted.
    pub frames_dropped: u64,
    pub packets_lost: u64,
    /// Times the video mixer was behind the clock and skipped frames to catch up (a starved
    /// host; compositor/src/catchup.rs), since the broadcast started.
    pub mixer_catchups: u64,
    /// Time frames spent in the encoder over the last stats interval (mean, worst), ms.
    pub encode_ms: Option<f64>,
    pub encode_ms_max: Option<f64>,
    /// Lip sync: per participant, how long each of its tracks is held back (ms) so they show
    /// the same capture instant together (from the publisher's RTCP sender reports).
    pub av_sync_ms: BTreeMap<String, BTreeMap<String, f64>>,
    #[serde(skip)]
    dropped: Total,
    #[serde(skip)]
    lost: Total,
    #[serde(skip)]
    catchups: Total,
}

impl PipelineFigures {
    /// A new compositor process starts: its counts start from zero and add to the totals.
    pub fn new_process(&mut self) {
        self.dropped.new_process();
        self.lost.new_process();
        self.catchups.new_process();
        self.av_sync_ms.clear();
    }

    /// Takes one `stats` event.
    pub fn apply_stats(&mut self, s: &Stats) {
        self.fps_in = Some(s.fps_in);
        self.fps_out = Some(s.fps_out);
        self.stalled_inputs = s.stalled.len();
        self.frames_dropped = self.dropped.report(s.frames_dropped);
        self.packets_lost = self.lost.report(s.packets_lost);
        self.mixer_catchups = self.catchups.report(s.mixer_catchups);
        self.encode_ms = s.encode_ms_avg;
        self.encode_ms_max = s.encode_ms_max;
        self.av_sync_ms = s.av_sync_ms.clone();
    }
}

/// A total over compositor processes, each reporting its own cumulative count from zero. The
/// supervisor says when a new process starts; a report lower than the last one also means one.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Total {
    earlier_processes: u64,
    current: u64,
}

impl Total {
    fn new_process(&mut self) {
        self.earlier_processes += self.current;
        self.current = 0;
    }

    fn report(&mut self, cumulative: u64) -> u64 {
        if cumulative < self.current {
            self.earlier_processes += self.current;
        }
        self.current = cumulative;
        self.earlier_processes + self.current
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// A `stats` event's fields as the compositor writes them (missing ones take their defaults).
    fn stats(fields: serde_json::Value) -> Stats {
        serde_json::from_value(fields).unwrap()
    }

    #[test]
    fn reads_a_stats_event() {
        let mut f = PipelineFigures::default();
        f.apply_stats(&stats(json!({"event": "stats", "fps_in": 58.5, "fps_out": 30.0, "stalled": ["p-1:0"], "frames_dropped": 3, "packets_lost": 7, "encode_ms_avg": 4.5, "encode_ms_max": 9.0, "av_sync_ms": {"p-1": {"p-1:0": 0.0, "p-1:1": 41.5}}})));
        assert_eq!((f.fps_in, f.fps_out, f.stalled_inputs), (Some(58.5), Some(30.0), 1));
        assert_eq!((f.frames_dropped, f.packets_lost), (3, 7));
        assert_eq!((f.encode_ms, f.encode_ms_max), (Some(4.5), Some(9.0)));
        assert_eq!(f.av_sync_ms["p-1"]["p-1:1"], 41.5);
        f.apply_stats(&stats(json!({"event": "stats", "mixer_catchups": 4})));
        assert_eq!(f.mixer_catchups, 4);
    }

    #[test]
    fn missing_fields_are_unknown_or_zero() {
        let mut f = PipelineFigures::default();
        f.apply_stats(&stats(json!({"event": "stats", "fps_out": 30.0, "encode_ms_avg": null})));
        assert_eq!((f.fps_in, f.encode_ms, f.frames_dropped, f.stalled_inputs), (Some(0.0), None, 0, 0));
        assert!(f.av_sync_ms.is_empty());
    }

    #[test]
    fn drop_totals_survive_a_compositor_restart() {
        let mut f = PipelineFigures::default();
        for n in [2, 5] {
            f.apply_stats(&stats(json!({"frames_dropped": n, "packets_lost": n * 10})));
        }
        assert_eq!((f.frames_dropped, f.packets_lost), (5, 50));
        // A new process counts from zero again.
        f.apply_stats(&stats(json!({"frames_dropped": 1, "packets_lost": 4})));
        assert_eq!((f.frames_dropped, f.packets_lost), (6, 54));
        f.apply_stats(&stats(json!({"frames_dropped": 3, "packets_lost": 4})));
        assert_eq!((f.frames_dropped, f.packets_lost), (8, 54));
        // Told explicitly: a new process whose first report is not lower still adds up.
        f.new_process();
        f.apply_stats(&stats(json!({"frames_dropped": 4, "packets_lost": 9})));
        assert_eq!((f.frames_dropped, f.packets_lost), (12, 63));
    }
}
