//! When a video input needs a keyframe its publisher has not sent.
//!
//! The compositor receives plain RTP with no RTCP path back to the publisher, and browsers
//! send a keyframe only when asked. A decoder that lost a packet of a keyframe, or started
//! after one, shows nothing until the next: without a request that may be never. So each video
//! input is watched, and a `keyframe_request` event goes to the gateway (which sends the
//! publisher a PLI, then FIR) when:
//! - the depayloader or decoder asked upstream for one (a `GstForceKeyUnit` event: loss), or
//! - packets keep arriving but no picture has come out for [`NO_PICTURE_AFTER`].
//!
//! Repeated every [`ASK_EVERY`] while the picture stays missing. Pure: the controller feeds it
//! the input's counters on each tick.

use std::time::{Duration, Instant};

/// Packets arriving for this long without a decoded frame: the decoder waits for a keyframe.
pub const NO_PICTURE_AFTER: Duration = Duration::from_millis(500);
/// At most one request per input in this interval (the gateway escalates PLI → FIR).
pub const ASK_EVERY: Duration = Duration::from_millis(500);
/// No packets for this long is silence (camera off, publisher gone), not a missing keyframe;
/// the wait for a picture starts again when packets resume.
pub const SILENCE: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The depayloader or decoder asked upstream for a keyframe (packet loss, a corrupt frame).
    Decoder,
    /// Packets arrive but no frame has been decoded for [`NO_PICTURE_AFTER`].
    NoPicture,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Decoder => "decoder",
            Reason::NoPicture => "no_picture",
        }
    }
}

/// One video input's counters as seen on the last tick, and when it last asked.
#[derive(Debug, Clone)]
pub struct KeyframeWatch {
    /// Since when the picture is missing: the input's start, its last decoded frame, or
    /// packets resuming after a silence.
    picture_since: Instant,
    last_packet: Option<Instant>,
    packets: u64,
    frames: u64,
    asks: u64,
    last_request: Option<Instant>,
}

impl KeyframeWatch {
    pub fn new(now: Instant) -> Self {
        Self { picture_since: now, last_packet: None, packets: 0, frames: 0, asks: 0, last_request: None }
    }

    /// Looks at the input's totals (RTP packets received, frames decoded, upstream keyframe
    /// requests); says whether to ask the publisher for a keyframe now, and why.
    pub fn observe(&mut self, now: Instant, packets: u64, frames: u64, asks: u64) -> Option<Reason> {
        let flowing = packets > self.packets;
        let decoded = frames > self.frames;
        let asked = asks > self.asks;
        // Pictures came before this tick (not only on it): see `Reason::Decoder` below.
        let had_picture = self.frames > 0;
        (self.packets, self.frames, self.asks) = (packets, frames, asks);
        let silent_before = self.last_packet.is_none_or(|t| now.saturating_duration_since(t) > SILENCE);
        if flowing {
            self.last_packet = Some(now);
        }
        if decoded || (flowing && silent_before) {
            self.picture_since = now;
        }
        let receiving = self.last_packet.is_some_and(|t| now.saturating_duration_since(t) < NO_PICTURE_AFTER);
        // Before the first picture an upstream request means nothing yet: the depayloader asks
        // on the stream's first (discontinuous) buffer even when it is the keyframe the leg
        // started at, and that request and the first pictures are often seen on the same tick.
        // A first keyframe that does not decode shows as `NoPicture`.
        let reason = if asked && had_picture {
            Reason::Decoder
        } else if receiving && !decoded && now.saturating_duration_since(self.picture_since) >= NO_PICTURE_AFTER {
            Reason::NoPicture
        } else {
            return None;
        };
        if self.last_request.is_some_and(|t| now.saturating_duration_since(t) < ASK_EVERY) {
            return None;
        }
        self.last_request = Some(now);
        Some(reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn packets_without_pictures_ask_and_keep_asking() {
        let t0 = Instant::now();
        let mut w = KeyframeWatch::new(t0);
        // Packets flow from 250 ms on, no frame: not yet (a keyframe takes a moment to arrive
        // and decode)…
        assert_eq!(w.observe(t0 + ms(250), 40, 0, 0), None);
        assert_eq!(w.observe(t0 + ms(500), 80, 0, 0), None);
        // …500 ms of packets without a picture: ask.
        assert_eq!(w.observe(t0 + ms(750), 120, 0, 0), Some(Reason::NoPicture));
        // Asked: not again within ASK_EVERY…
        assert_eq!(w.observe(t0 + ms(1000), 160, 0, 0), None);
        // …but again while the picture stays missing.
        assert_eq!(w.observe(t0 + ms(1250), 200, 0, 0), Some(Reason::NoPicture));
        // Frames come: nothing to ask.
        assert_eq!(w.observe(t0 + ms(1500), 240, 5, 0), None);
        assert_eq!(w.observe(t0 + ms(1750), 280, 12, 0), None);
    }

    #[test]
    fn silence_is_not_a_missing_keyframe() {
        let t0 = Instant::now();
        let mut w = KeyframeWatch::new(t0);
        assert_eq!(w.observe(t0 + ms(250), 10, 3, 0), None);
        // No packets at all (camera off, publisher gone): the stall logic's business, not ours.
        assert_eq!(w.observe(t0 + ms(2000), 10, 3, 0), None);
        assert_eq!(w.observe(t0 + ms(4000), 10, 3, 0), None);
        // Packets again: the wait for a picture starts now…
        assert_eq!(w.observe(t0 + ms(4250), 30, 3, 0), None);
        // …and a slow stream (no new packet on this tick) still counts as receiving.
        assert_eq!(w.observe(t0 + ms(4500), 30, 3, 0), None);
        assert_eq!(w.observe(t0 + ms(4750), 31, 3, 0), Some(Reason::NoPicture));
    }

    #[test]
    fn a_request_before_the_first_picture_waits_for_no_picture() {
        let t0 = Instant::now();
        let mut w = KeyframeWatch::new(t0);
        assert_eq!(w.observe(t0 + ms(100), 10, 0, 1), None, "the depayloader's start-up request");
        assert_eq!(w.observe(t0 + ms(250), 20, 2, 1), None, "pictures came");
        // The start-up request and the first pictures on the same tick: still nothing to ask.
        let mut w = KeyframeWatch::new(t0);
        assert_eq!(w.observe(t0 + ms(250), 20, 4, 1), None);
        assert_eq!(w.observe(t0 + ms(500), 30, 9, 1), None);
        let mut w = KeyframeWatch::new(t0);
        assert_eq!(w.observe(t0 + ms(100), 10, 0, 1), None);
        assert_eq!(w.observe(t0 + ms(600), 60, 0, 1), Some(Reason::NoPicture), "the first keyframe did not decode");
    }

    #[test]
    fn a_decoder_request_is_passed_on_at_once_but_not_flooded() {
        let t0 = Instant::now();
        let mut w = KeyframeWatch::new(t0);
        assert_eq!(w.observe(t0 + ms(100), 10, 3, 0), None);
        assert_eq!(w.observe(t0 + ms(200), 20, 6, 1), Some(Reason::Decoder));
        assert_eq!(w.observe(t0 + ms(300), 30, 6, 4), None, "within ASK_EVERY");
        assert_eq!(w.observe(t0 + ms(700), 40, 6, 5), Some(Reason::Decoder));
    }
}
