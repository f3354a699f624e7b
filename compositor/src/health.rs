//! One input's health as the controller tracks it: stalled or flowing (from its packet count
//! and the socket's silence timeout), how often it was rebuilt, whether its decoder waits for a
//! keyframe, and when it started waiting for its first picture. Plain state: the controller
//! feeds it counts and times and carries out what it answers.

use std::time::{Duration, Instant};

use crate::keyframes::{KeyframeWatch, Reason};

/// An input that fails is rebuilt this many times at most, then left out.
pub const MAX_RESTARTS: u32 = 5;

#[derive(Debug, Default)]
pub struct InputHealth {
    stalled: bool,
    packets_at_stall: u64,
    restarts: u32,
    /// Video: whether the decoder waits for a keyframe nobody asked for (from the first look).
    keyframes: Option<KeyframeWatch>,
    /// Video: since when it waits for its first decoded frame (None once it came).
    waiting_since: Option<Instant>,
}

/// What to do with an input that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rebuild {
    /// Rebuild it; this is rebuild number `attempt`.
    Again { attempt: u32 },
    /// It failed [`MAX_RESTARTS`] times: leave it out of the picture.
    GiveUp { restarts: u32 },
}

impl InputHealth {
    /// A new input (`restarts`: how often it was rebuilt before), waiting for its first picture.
    pub fn new(now: Instant, restarts: u32) -> Self {
        Self { restarts, waiting_since: Some(now), ..Default::default() }
    }

    pub fn is_stalled(&self) -> bool {
        self.stalled
    }

    /// The input's socket was silent for the stall time, having received `packets` so far.
    /// True if this is news (report a stall). An input that never had a packet is still
    /// starting (inputs are made at negotiation, before the publisher's media flows).
    pub fn silent(&mut self, packets: u64) -> bool {
        if self.stalled || packets == 0 {
            return false;
        }
        self.stalled = true;
        self.packets_at_stall = packets;
        true
    }

    /// A look at the packet count: true if a stalled input has received packets again
    /// (report it resumed).
    pub fn packets(&mut self, packets: u64) -> bool {
        if self.stalled && packets > self.packets_at_stall {
            self.stalled = false;
            return true;
        }
        false
    }

    /// A look at a video input's counters: `Some(waited)` the first time a decoded frame is
    /// seen (how long the first picture took), and whether to ask the publisher for a keyframe
    /// (see [`KeyframeWatch`]).
    pub fn video(&mut self, now: Instant, packets: u64, frames: u64, upstream: u64) -> (Option<Duration>, Option<Reason>) {
        let first = if frames > 0 { self.waiting_since.take().map(|since| now.saturating_duration_since(since)) } else { None };
        let watch = self.keyframes.get_or_insert_with(|| KeyframeWatch::new(now));
        (first, watch.observe(now, packets, frames, upstream))
    }

    /// The input failed: rebuild it or give up.
    pub fn failed(&self) -> Rebuild {
        if self.restarts >= MAX_RESTARTS {
            Rebuild::GiveUp { restarts: self.restarts }
        } else {
            Rebuild::Again { attempt: self.restarts + 1 }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stall_is_reported_once_and_a_resume_when_packets_come_again() {
        let t0 = Instant::now();
        let mut h = InputHealth::new(t0, 0);
        assert!(!h.silent(0), "no packet yet: still starting, not stalled");
        assert!(!h.is_stalled());
        assert!(h.silent(120), "silent after 120 packets: a stall");
        assert!(!h.silent(120), "reported once");
        assert!(!h.packets(120), "no new packet: still stalled");
        assert!(h.is_stalled());
        assert!(h.packets(121), "packets again: resumed");
        assert!(!h.is_stalled());
        assert!(!h.packets(200), "resumed once");
    }

    #[test]
    fn the_first_picture_is_timed_once() {
        let t0 = Instant::now();
        let mut h = InputHealth::new(t0, 0);
        assert_eq!(h.video(t0 + Duration::from_millis(100), 10, 0, 0).0, None);
        assert_eq!(h.video(t0 + Duration::from_millis(700), 40, 3, 0).0, Some(Duration::from_millis(700)));
        assert_eq!(h.video(t0 + Duration::from_millis(900), 50, 9, 0).0, None);
    }

    #[test]
    fn a_failing_input_is_rebuilt_five_times_then_left_out() {
        let t0 = Instant::now();
        let attempts: Vec<Rebuild> = (0..=MAX_RESTARTS).map(|r| InputHealth::new(t0, r).failed()).collect();
        assert_eq!(attempts[0], Rebuild::Again { attempt: 1 });
        assert_eq!(attempts[4], Rebuild::Again { attempt: 5 });
        assert_eq!(attempts[5], Rebuild::GiveUp { restarts: 5 });
    }
}
