//! Frame timing bookkeeping (pure: no GStreamer; the caller passes the instants in).
//!
//! Each composed video frame is followed from the moment it leaves the `compositor` element
//! (`composed`), into x264 (`encode_started`), out of x264 (`encoded`), until the CMAF part
//! that carries it is handed to the stdout writer (`part_written`). That gives the encode
//! time of every frame and the age of every part (the age of its last video frame).
//!
//! Frames are identified by their **running time** (ns), not by their PTS: x264enc shifts its
//! output PTS and segment by 1000 h (`min-pts`, room for negative DTS) and isofmp4mux
//! re-timestamps to running time + 1000 h (its own segment starts there), so raw PTSs line up
//! only by coincidence. The pipeline converts every timestamp with the segment of the pad it
//! was seen on, which makes all of them comparable whatever offsets the elements pick.
//! Matching by running time rather than by order also survives a frame the encoder drops
//! (x264 with `tune=zerolatency` gives one frame out per frame in, in order, but a frame it
//! dropped would otherwise shift every later match by one).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Frames between the compositor and x264's output kept at most (the queue before x264
/// holds up to 1 s; 256 frames is > 4 s at 60 fps). The oldest are forgotten beyond that.
pub const MAX_IN_FLIGHT: usize = 256;
/// Encoded frames waiting for their part at most (the muxer holds about one part plus its
/// latency; 1024 frames is > 15 s at 60 fps).
pub const MAX_ENCODED: usize = 1024;

#[derive(Debug, Clone, Copy)]
struct InFlight {
    rt_ns: u64,
    composed: Instant,
    encode_start: Option<Instant>,
}

/// What happened in one stats interval (see `FrameTiming::take_interval`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Interval {
    /// Frames whose encode time was measured.
    pub frames_encoded: u64,
    pub encode_total: Duration,
    pub encode_max: Duration,
    /// The oldest part (by `age`) written, if any part's age was known.
    pub part_age_max: Option<Duration>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl Interval {
    /// Mean time in the encoder, ms; None when no frame was encoded.
    pub fn encode_ms_avg(&self) -> Option<f64> {
        (self.frames_encoded > 0).then(|| ms(self.encode_total) / self.frames_encoded as f64)
    }

    pub fn encode_ms_max(&self) -> Option<f64> {
        (self.frames_encoded > 0).then(|| ms(self.encode_max))
    }

    pub fn part_age_ms_max(&self) -> Option<f64> {
        self.part_age_max.map(ms)
    }
}

/// When the output's first frame passed each stage: where a slow start (the time from
/// "compositor started" to the first part the viewers can get) went.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FirstFrame {
    pub composed: Option<Instant>,
    /// How far the first composed frame's running time was behind the pipeline clock's
    /// running time when it left the mixer (ns; 0 when ahead). The mixer's own latency is
    /// part of it: a live mixer outputs time t once the clock reaches t + its latency.
    pub composed_late_ns: u64,
    pub encoded: Option<Instant>,
    pub part: Option<Instant>,
}

impl FirstFrame {
    /// "composed +a ms (b ms late), encoded +c ms, first part +d ms", relative to `since`;
    /// None until the first part is out.
    pub fn describe(&self, since: Instant) -> Option<String> {
        let at = |t: Option<Instant>| t.map(|t| t.saturating_duration_since(since).as_millis());
        let part = at(self.part)?;
        let fmt = |t: Option<u128>| t.map_or("never".to_string(), |ms| format!("+{ms} ms"));
        Some(format!(
            "composed {} ({} ms behind the clock), encoded {}, first part +{part} ms",
            fmt(at(self.composed)),
            self.composed_late_ns / 1_000_000,
            fmt(at(self.encoded)),
        ))
    }
}

#[derive(Debug, Default)]
pub struct FrameTiming {
    /// Composed, not yet out of the encoder; in running-time order.
    in_flight: VecDeque<InFlight>,
    /// Out of the encoder, not yet in a written part: (running time, composed).
    encoded: VecDeque<(u64, Instant)>,
    interval: Interval,
    first: FirstFrame,
}

impl FrameTiming {
    pub fn new() -> FrameTiming {
        FrameTiming::default()
    }

    /// A frame with running time `rt_ns` left the compositor.
    pub fn composed(&mut self, rt_ns: u64, now: Instant) {
        self.first.composed.get_or_insert(now);
        if self.in_flight.len() >= MAX_IN_FLIGHT {
            self.in_flight.pop_front();
        }
        self.in_flight.push_back(InFlight { rt_ns, composed: now, encode_start: None });
    }

    /// The frame entered the encoder. A frame never seen composed counts as composed now.
    pub fn encode_started(&mut self, rt_ns: u64, now: Instant) {
        match self.in_flight.iter_mut().find(|f| f.rt_ns == rt_ns && f.encode_start.is_none()) {
            Some(f) => f.encode_start = Some(now),
            None => {
                self.composed(rt_ns, now);
                if let Some(f) = self.in_flight.back_mut() {
                    f.encode_start = Some(now);
                }
            }
        }
    }

    /// The encoded frame with running time `rt_ns` left the encoder. Frames before it that
    /// never came out were dropped by the encoder and are forgotten. Returns the encode time
    /// (None for a frame that was not seen going in).
    pub fn encoded(&mut self, rt_ns: u64, now: Instant) -> Option<Duration> {
        let i = self.in_flight.iter().position(|f| f.rt_ns == rt_ns)?;
        self.in_flight.drain(..i);
        let f = self.in_flight.pop_front()?;
        if self.encoded.len() >= MAX_ENCODED {
            self.encoded.pop_front();
        }
        self.encoded.push_back((rt_ns, f.composed));
        self.first.encoded.get_or_insert(now);
        let took = now.saturating_duration_since(f.encode_start?);
        let iv = &mut self.interval;
        iv.frames_encoded += 1;
        iv.encode_total += took;
        iv.encode_max = iv.encode_max.max(took);
        Some(took)
    }

    /// A part covering running times `[start_ns, end_ns)` is handed to the writer. Returns its
    /// age: `now` minus the moment its last video frame (the latest encoded frame in the
    /// range) left the compositor; None if no encoded frame falls in the range. Frames before
    /// `end_ns` are forgotten (they belong to this part or to earlier ones).
    pub fn part_written(&mut self, start_ns: u64, end_ns: u64, now: Instant) -> Option<Duration> {
        self.first.part.get_or_insert(now);
        let last = self.encoded.iter().rposition(|(rt, _)| *rt < end_ns)?;
        let (rt, composed) = self.encoded[last];
        self.encoded.drain(..=last);
        if rt < start_ns {
            return None;
        }
        let age = now.saturating_duration_since(composed);
        let max = &mut self.interval.part_age_max;
        *max = Some(max.map_or(age, |m| m.max(age)));
        Some(age)
    }

    /// The first composed frame was `late_ns` behind the clock.
    pub fn first_composed_late(&mut self, late_ns: u64) {
        self.first.composed_late_ns = late_ns;
    }

    pub fn first_frame(&self) -> FirstFrame {
        self.first
    }

    /// The interval's figures; starts a new interval.
    pub fn take_interval(&mut self) -> Interval {
        std::mem::take(&mut self.interval)
    }

    /// Frames between the compositor and the encoder's output (for tests and debugging).
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Encoded frames not yet in a written part.
    pub fn pending_encoded(&self) -> usize {
        self.encoded.len()
    }
}

/// No part for this long is worth a line in the log saying where the output chain stands
/// (three parts; the gateway's watchdog acts later).
pub const SILENCE_REPORT_AFTER: Duration = Duration::from_secs(1);
/// Then once every this long while it lasts.
pub const SILENCE_REPORT_EVERY: Duration = Duration::from_secs(5);

/// Watches the count of parts written for a silence worth reporting.
#[derive(Debug, Default)]
pub struct PartSilence {
    /// The count last seen and since when it has not moved.
    last: Option<(u64, Instant)>,
    reported: Option<Instant>,
}

impl PartSilence {
    /// The part count at `now`. Some(silent) when a report is due: no new part for `silent`
    /// (at least [`SILENCE_REPORT_AFTER`]; then again every [`SILENCE_REPORT_EVERY`]). Nothing
    /// before the first part (start-up is reported on its own).
    pub fn observe(&mut self, parts: u64, now: Instant) -> Option<Duration> {
        match self.last {
            Some((n, since)) if n == parts => {
                let silent = now.saturating_duration_since(since);
                let due = silent >= SILENCE_REPORT_AFTER
                    && self.reported.is_none_or(|r| now.saturating_duration_since(r) >= SILENCE_REPORT_EVERY);
                if parts > 0 && due {
                    self.reported = Some(now);
                    return Some(silent);
                }
                None
            }
            _ => {
                self.last = Some((parts, now));
                self.reported = None;
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: u64 = 66_666_666; // 15 fps
    const MS: Duration = Duration::from_millis(1);

    /// Frame `i` composed at t0 + 66 ms·i, into the encoder 1 ms later, out 5 ms after that.
    fn run_frames(t: &mut FrameTiming, t0: Instant, frames: std::ops::Range<u64>) {
        for i in frames {
            let at = t0 + Duration::from_millis(66 * i);
            t.composed(i * FRAME, at);
            t.encode_started(i * FRAME, at + MS);
            assert_eq!(t.encoded(i * FRAME, at + 6 * MS), Some(5 * MS));
        }
    }

    #[test]
    fn encode_times_and_interval() {
        let t0 = Instant::now();
        let mut t = FrameTiming::new();
        assert_eq!(t.take_interval().encode_ms_avg(), None);
        t.composed(0, t0);
        t.composed(FRAME, t0 + 66 * MS);
        t.encode_started(0, t0 + MS);
        t.encode_started(FRAME, t0 + 66 * MS);
        assert_eq!(t.in_flight(), 2);
        assert_eq!(t.encoded(0, t0 + 3 * MS), Some(2 * MS));
        assert_eq!(t.encoded(FRAME, t0 + 76 * MS), Some(10 * MS));
        assert_eq!(t.in_flight(), 0);
        let iv = t.take_interval();
        assert_eq!(iv.frames_encoded, 2);
        assert!((iv.encode_ms_avg().unwrap() - 6.0).abs() < 1e-9);
        assert!((iv.encode_ms_max().unwrap() - 10.0).abs() < 1e-9);
        assert_eq!(iv.part_age_ms_max(), None);
        // a new interval starts empty
        let iv = t.take_interval();
        assert_eq!((iv.frames_encoded, iv.encode_ms_avg(), iv.encode_ms_max()), (0, None, None));
    }

    #[test]
    fn a_part_silence_is_reported_after_a_second_then_every_five() {
        let t0 = Instant::now();
        let mut s = PartSilence::default();
        assert_eq!(s.observe(0, t0), None);
        assert_eq!(s.observe(0, t0 + 3000 * MS), None, "nothing before the first part");
        assert_eq!(s.observe(4, t0 + 3100 * MS), None);
        assert_eq!(s.observe(4, t0 + 4000 * MS), None);
        assert_eq!(s.observe(4, t0 + 4100 * MS), Some(1000 * MS));
        assert_eq!(s.observe(4, t0 + 6000 * MS), None);
        assert_eq!(s.observe(4, t0 + 9100 * MS), Some(6000 * MS));
        assert_eq!(s.observe(5, t0 + 9200 * MS), None, "parts again");
        assert_eq!(s.observe(5, t0 + 10_200 * MS), Some(1000 * MS), "a new silence is reported at once");
    }

    #[test]
    fn the_first_frame_is_followed_to_its_part() {
        let t0 = Instant::now();
        let mut t = FrameTiming::new();
        assert_eq!(t.first_frame().describe(t0), None);
        t.composed(0, t0 + 100 * MS);
        t.first_composed_late(40_000_000);
        t.encode_started(0, t0 + 101 * MS);
        t.encoded(0, t0 + 150 * MS);
        assert_eq!(t.first_frame().describe(t0), None, "no part yet");
        run_frames(&mut t, t0 + 200 * MS, 1..10);
        t.part_written(0, 10 * FRAME, t0 + 900 * MS);
        assert_eq!(t.first_frame().describe(t0).unwrap(), "composed +100 ms (40 ms behind the clock), encoded +150 ms, first part +900 ms");
    }

    #[test]
    fn a_frame_the_encoder_dropped_does_not_shift_later_matches() {
        let t0 = Instant::now();
        let mut t = FrameTiming::new();
        for i in 0..3 {
            t.composed(i * FRAME, t0 + Duration::from_millis(66 * i));
            t.encode_started(i * FRAME, t0 + Duration::from_millis(66 * i) + MS);
        }
        // frame 0 never comes out
        assert_eq!(t.encoded(FRAME, t0 + 70 * MS), Some(3 * MS));
        assert_eq!(t.encoded(2 * FRAME, t0 + 140 * MS), Some(7 * MS));
        assert_eq!(t.in_flight(), 0);
        // an output frame never seen going in is not measured
        assert_eq!(t.encoded(9 * FRAME, t0 + 200 * MS), None);
        assert_eq!(t.take_interval().frames_encoded, 2);
    }

    #[test]
    fn encode_start_without_composed_counts_as_composed_then() {
        let t0 = Instant::now();
        let mut t = FrameTiming::new();
        t.encode_started(5, t0);
        assert_eq!(t.encoded(5, t0 + 4 * MS), Some(4 * MS));
        assert_eq!(t.part_written(0, 10, t0 + 10 * MS), Some(10 * MS));
    }

    #[test]
    fn part_age_is_that_of_its_last_video_frame() {
        let t0 = Instant::now();
        let mut t = FrameTiming::new();
        run_frames(&mut t, t0, 0..12);
        // part 1: frames 0..5 ([0, 5 frames)); written 400 ms after t0
        let age = t.part_written(0, 5 * FRAME, t0 + 400 * MS).unwrap();
        // last frame is 4, composed at 264 ms
        assert_eq!(age, 136 * MS);
        assert_eq!(t.pending_encoded(), 7);
        // part 2 starts a little before its first frame (audio), ends after frame 9
        let age = t.part_written(5 * FRAME - 3_000_000, 10 * FRAME, t0 + 700 * MS);
        assert_eq!(age, Some((700 - 66 * 9) * MS));
        assert_eq!(t.pending_encoded(), 2);
        let iv = t.take_interval();
        assert_eq!(iv.part_age_max, Some(136 * MS));
        assert!((iv.part_age_ms_max().unwrap() - 136.0).abs() < 1e-9);
        assert_eq!(iv.frames_encoded, 12);
    }

    #[test]
    fn part_without_a_known_frame_has_no_age() {
        let t0 = Instant::now();
        let mut t = FrameTiming::new();
        // nothing encoded yet
        assert_eq!(t.part_written(0, 5 * FRAME, t0), None);
        run_frames(&mut t, t0, 0..3);
        // a part entirely after every known frame
        assert_eq!(t.part_written(10 * FRAME, 15 * FRAME, t0 + 900 * MS), None);
        // ... which also drops the frames before its end: they can't be in a later part
        assert_eq!(t.pending_encoded(), 0);
        // a part whose range holds no frame, with older frames pending: no age either
        run_frames(&mut t, t0, 20..22);
        assert_eq!(t.part_written(30 * FRAME, 31 * FRAME, t0 + 3000 * MS), None);
        assert_eq!(t.take_interval().part_age_max, None);
        // time never runs backwards into a negative age
        run_frames(&mut t, t0, 40..41);
        assert_eq!(t.part_written(40 * FRAME, 41 * FRAME, t0), Some(Duration::ZERO));
    }

    #[test]
    fn bounded() {
        let t0 = Instant::now();
        let mut t = FrameTiming::new();
        for i in 0..(MAX_IN_FLIGHT as u64 + 10) {
            t.composed(i, t0);
        }
        assert_eq!(t.in_flight(), MAX_IN_FLIGHT);
        // the oldest were forgotten: their output is not measured
        assert_eq!(t.encoded(0, t0), None);
        // frame 10 is still known (composed), but was never seen entering the encoder
        assert_eq!(t.encoded(10, t0), None);
        assert_eq!(t.pending_encoded(), 1);
        let mut t = FrameTiming::new();
        for i in 0..(MAX_ENCODED as u64 + 10) {
            t.encode_started(i, t0);
            t.encoded(i, t0);
        }
        assert_eq!(t.pending_encoded(), MAX_ENCODED);
        assert_eq!(t.in_flight(), 0);
    }
}
