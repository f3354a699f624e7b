//! Per-consumer forwarding state: keyframe gating and sequence-number rewriting.
//!
//! Each consumer sees one continuous sequence-number space starting below 2^15 (so the
//! SRTP rollover counter starts at 0) whatever the producer's extended sequence numbers are.
//! A video consumer gets nothing until a packet that starts a keyframe arrives.

#[derive(Debug, Clone)]
pub struct Forwarder {
    gate_on_keyframe: bool,
    /// out = in + offset, fixed when the first packet is forwarded.
    offset: Option<i64>,
    first_out: u64,
    highest_out: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Send with this (extended) sequence number.
    Forward(u64),
    /// Drop; still waiting for a keyframe (the caller should ask the producer for one).
    AwaitKeyframe,
    /// Drop; older than where this consumer started.
    TooOld,
}

impl Forwarder {
    pub fn new(is_video: bool, first_out: u16) -> Self {
        Self { gate_on_keyframe: is_video, offset: None, first_out: u64::from(first_out & 0x7fff), highest_out: None }
    }

    pub fn started(&self) -> bool {
        self.offset.is_some()
    }

    pub fn decide(&mut self, in_seq: u64, starts_keyframe: bool) -> Decision {
        let offset = match self.offset {
            Some(o) => o,
            None if self.gate_on_keyframe && !starts_keyframe => return Decision::AwaitKeyframe,
            None => {
                let o = self.first_out as i64 - in_seq as i64;
                self.offset = Some(o);
                o
            }
        };
        let out = in_seq as i64 + offset;
        if out < self.first_out as i64 {
            return Decision::TooOld;
        }
        let out = out as u64;
        self.highest_out = Some(self.highest_out.map_or(out, |h| h.max(out)));
        Decision::Forward(out)
    }

    /// Start over (e.g. the producer restarted): the next keyframe re-anchors, continuing after
    /// the highest sequence number already sent so the consumer never sees numbers go back.
    pub fn resync(&mut self) {
        if let Some(h) = self.highest_out {
            self.first_out = h + 1;
        }
        self.offset = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Decision::*;

    #[test]
    fn video_waits_for_keyframe_then_rewrites_contiguously() {
        let mut f = Forwarder::new(true, 1000);
        assert_eq!(f.decide(70_000, false), AwaitKeyframe);
        assert_eq!(f.decide(70_001, false), AwaitKeyframe);
        assert_eq!(f.decide(70_002, true), Forward(1000));
        assert_eq!(f.decide(70_003, false), Forward(1001));
        // Reordered packet from before the start is dropped, a later one keeps its gap (NACK-able).
        assert_eq!(f.decide(70_001, false), TooOld);
        assert_eq!(f.decide(70_006, false), Forward(1004));
    }

    #[test]
    fn audio_starts_immediately_and_start_stays_below_2_pow_15() {
        let mut f = Forwarder::new(false, 0xffff);
        assert_eq!(f.decide(5, false), Forward(0x7fff));
        assert_eq!(f.decide(6, false), Forward(0x8000));
    }

    #[test]
    fn resync_continues_after_the_highest_sent() {
        let mut f = Forwarder::new(true, 10);
        assert_eq!(f.decide(500, true), Forward(10));
        assert_eq!(f.decide(501, false), Forward(11));
        f.resync();
        assert_eq!(f.decide(3, false), AwaitKeyframe);
        assert_eq!(f.decide(4, true), Forward(12));
    }
}
