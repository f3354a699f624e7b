//! Keyframes: does an RTP payload start one (when a gated consumer or leg may start), and
//! when to ask a publisher for one (PLI, then FIR while unanswered).

use std::time::{Duration, Instant};

use str0m::format::{detect_h264_keyframe, detect_h264_nalu, detect_vp8_keyframe, Codec};
use str0m::media::KeyframeRequestKind;

/// While a request is unanswered, asking again waits this long (the publisher's answer takes
/// ~55 ms from Chrome; a lost request or a lost keyframe shows as no answer).
pub const REASK_AFTER: Duration = Duration::from_millis(500);

/// H.264 NAL unit type of a sequence parameter set.
const H264_SPS: u8 = 7;

pub fn starts_keyframe(codec: Codec, payload: &[u8]) -> bool {
    match codec {
        Codec::Vp8 => detect_vp8_keyframe(payload),
        // A keyframe starts at its SPS: packetizers (str0m's, Chrome's when the IDR is large)
        // send SPS+PPS in a packet of their own just before the IDR, and an IDR without them
        // cannot be decoded by a receiver (or compositor leg) that starts there.
        Codec::H264 => detect_h264_nalu(payload, H264_SPS) || detect_h264_keyframe(payload),
        // Audio and anything we cannot inspect is always decodable from any packet.
        _ => true,
    }
}

/// Keyframe requests to one publisher stream (a producer, or one simulcast layer of it).
///
/// Browsers send a keyframe only when asked, so an unanswered request must be repeated: the
/// first ask is a PLI; once one has gone unanswered for [`REASK_AFTER`], the next is a FIR
/// (some encoders treat it as a stronger "start over"). A keyframe resets it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyframeRequests {
    last: Option<Instant>,
    unanswered: u32,
}

impl KeyframeRequests {
    /// A request went out less than [`REASK_AFTER`] ago and no keyframe came since.
    pub fn in_flight(&self, now: Instant) -> bool {
        self.last.is_some_and(|t| now.saturating_duration_since(t) < REASK_AFTER)
    }

    /// Someone needs a keyframe now: the request to send, or `None` while one is in flight.
    pub fn ask(&mut self, now: Instant) -> Option<KeyframeRequestKind> {
        if self.in_flight(now) {
            return None;
        }
        let kind = if self.unanswered == 0 { KeyframeRequestKind::Pli } else { KeyframeRequestKind::Fir };
        self.unanswered += 1;
        self.last = Some(now);
        Some(kind)
    }

    /// A keyframe arrived: the next need asks at once, with a PLI.
    pub fn answered(&mut self) {
        *self = Self::default();
    }

    /// Requests sent since the last keyframe.
    pub fn unanswered(&self) -> u32 {
        self.unanswered
    }
}

/// May a waiting consumer or leg start at this packet? Only at a keyframe's first packet that is
/// the newest of its stream: an older one (a retransmission answering a NACK, or reordering)
/// comes after the rest of its keyframe went by, so starting there forwards a keyframe with a
/// hole, and a receiver that cannot ask for another (the compositor) shows nothing.
pub fn can_start_at(starts_keyframe: bool, seq: u64, newest_before: Option<u64>) -> bool {
    starts_keyframe && newest_before.is_none_or(|n| seq > n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asks_pli_then_fir_while_unanswered() {
        let t0 = Instant::now();
        let mut r = KeyframeRequests::default();
        assert_eq!(r.ask(t0), Some(KeyframeRequestKind::Pli));
        // In flight: others needing it now do not ask again.
        assert!(r.in_flight(t0 + Duration::from_millis(100)));
        assert_eq!(r.ask(t0 + Duration::from_millis(100)), None);
        assert_eq!(r.ask(t0 + Duration::from_millis(499)), None);
        // 500 ms without a keyframe: ask again, harder.
        assert_eq!(r.ask(t0 + Duration::from_millis(500)), Some(KeyframeRequestKind::Fir));
        assert_eq!(r.ask(t0 + Duration::from_millis(900)), None);
        assert_eq!(r.ask(t0 + Duration::from_millis(1000)), Some(KeyframeRequestKind::Fir));
        assert_eq!(r.unanswered(), 3);
        // A keyframe came: the next need is a fresh PLI at once.
        r.answered();
        assert_eq!(r.ask(t0 + Duration::from_millis(1001)), Some(KeyframeRequestKind::Pli));
    }

    #[test]
    fn starts_only_at_the_newest_keyframe_packet() {
        assert!(can_start_at(true, 100, None), "the stream's first packet");
        assert!(can_start_at(true, 101, Some(100)));
        assert!(!can_start_at(false, 101, Some(100)), "not a keyframe");
        // The keyframe's first packet was lost and came back (RTX) after packets 101..=130:
        // those were dropped while waiting, so this keyframe cannot be forwarded whole.
        assert!(!can_start_at(true, 100, Some(130)), "a retransmission");
        assert!(!can_start_at(true, 100, Some(100)), "a duplicate");
    }

    #[test]
    fn vp8_keyframe_start_and_delta() {
        // Descriptor: S=1, PID=0 (0x10); VP8 payload header byte 0 with P (inverse key) bit 0 = key.
        assert!(starts_keyframe(Codec::Vp8, &[0x10, 0x50, 0x02, 0x00, 0x9d, 0x01, 0x2a]));
        // Same but P bit = 1: interframe.
        assert!(!starts_keyframe(Codec::Vp8, &[0x10, 0x51, 0x02, 0x00]));
        // Continuation packet of a partition (S=0).
        assert!(!starts_keyframe(Codec::Vp8, &[0x00, 0x50, 0x02, 0x00]));
        assert!(!starts_keyframe(Codec::Vp8, &[]));
    }

    #[test]
    fn h264_idr_single_stapa_and_fua() {
        assert!(starts_keyframe(Codec::H264, &[0x65, 0x88])); // IDR slice (type 5)
        assert!(!starts_keyframe(Codec::H264, &[0x41, 0x9a])); // non-IDR (type 1)
                                                               // STAP-A holding SPS (7) + IDR (5)
        assert!(starts_keyframe(Codec::H264, &[0x78, 0x00, 0x02, 0x67, 0x42, 0x00, 0x02, 0x65, 0x88]));
        // FU-A start of an IDR: indicator type 28, header S=1 type 5
        assert!(starts_keyframe(Codec::H264, &[0x7c, 0x85, 0x88]));
        // SPS alone, or SPS + PPS aggregated (sent just before the IDR): the keyframe starts here.
        assert!(starts_keyframe(Codec::H264, &[0x67, 0x42, 0xc0, 0x1f]));
        assert!(starts_keyframe(Codec::H264, &[0x78, 0x00, 0x02, 0x67, 0x42, 0x00, 0x02, 0x68, 0xce]));
        // PPS alone is not a start (its SPS came first).
        assert!(!starts_keyframe(Codec::H264, &[0x68, 0xce, 0x3c, 0x80]));
        assert!(starts_keyframe(Codec::Opus, &[0x01]));
    }
}
