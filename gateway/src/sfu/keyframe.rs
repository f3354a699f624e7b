//! Does this RTP payload start a keyframe? (Decides when a gated consumer may start.)

use str0m::format::{detect_h264_keyframe, detect_h264_nalu, detect_vp8_keyframe, Codec};

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

#[cfg(test)]
mod tests {
    use super::*;

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
