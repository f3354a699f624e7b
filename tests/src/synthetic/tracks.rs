//! Bookkeeping of the subscribe PeerConnection: which m-lines carry which producer, which
//! m-lines the SDP made inactive, which frames are keyframes (VP8 key bit; H.264 IDR slice,
//! decodable once SPS and PPS were seen), and when a received video track needs a keyframe.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::signaling::TrackInfo;

/// What changed between two `subscribe_offer`s. A track is identified by (mid, producer):
/// an m-line reused for another producer is one removal plus one addition.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TrackDiff {
    pub added: Vec<TrackInfo>,
    pub removed: Vec<TrackInfo>,
}

pub fn diff_tracks(old: &[TrackInfo], new: &[TrackInfo]) -> TrackDiff {
    let same = |a: &TrackInfo, b: &TrackInfo| a.mid == b.mid && a.producer_id == b.producer_id;
    TrackDiff {
        added: new.iter().filter(|n| !old.iter().any(|o| same(o, n))).cloned().collect(),
        removed: old.iter().filter(|o| !new.iter().any(|n| same(o, n))).cloned().collect(),
    }
}

/// Direction of one m-line as written in an SDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MlineDirection {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

/// One m-line of an SDP: its mid, direction, and whether it was rejected (port 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mline {
    pub media: String,
    pub mid: Option<String>,
    pub direction: MlineDirection,
    pub port_zero: bool,
}

impl Mline {
    /// True when no media flows on this m-line.
    pub fn is_inactive(&self) -> bool {
        self.port_zero || self.direction == MlineDirection::Inactive
    }
}

/// The m-lines of an SDP in order (a session-level direction is the default for each).
pub fn parse_mlines(sdp: &str) -> Vec<Mline> {
    let mut session_dir = MlineDirection::SendRecv;
    let mut out: Vec<Mline> = vec![];
    for line in sdp.lines() {
        let line = line.trim_end_matches('\r');
        if let Some(rest) = line.strip_prefix("m=") {
            let mut parts = rest.split_whitespace();
            let media = parts.next().unwrap_or("").to_owned();
            let port_zero = parts.next() == Some("0");
            out.push(Mline { media, mid: None, direction: session_dir, port_zero });
            continue;
        }
        let dir = match line {
            "a=sendrecv" => Some(MlineDirection::SendRecv),
            "a=sendonly" => Some(MlineDirection::SendOnly),
            "a=recvonly" => Some(MlineDirection::RecvOnly),
            "a=inactive" => Some(MlineDirection::Inactive),
            _ => None,
        };
        match (out.last_mut(), dir) {
            (Some(m), Some(d)) => m.direction = d,
            (None, Some(d)) => session_dir = d,
            _ => {}
        }
        if let (Some(m), Some(mid)) = (out.last_mut(), line.strip_prefix("a=mid:")) {
            m.mid = Some(mid.trim().to_owned());
        }
    }
    out
}

/// Mids of the media m-lines (audio/video) on which nothing flows.
pub fn inactive_mids(sdp: &str) -> Vec<String> {
    parse_mlines(sdp).into_iter().filter(|m| m.media != "application" && m.is_inactive()).filter_map(|m| m.mid).collect()
}

/// The payload types an SDP maps (`a=rtpmap:PT codec/rate`), with their encoding names.
pub fn rtpmap(sdp: &str) -> BTreeMap<u8, String> {
    sdp.lines()
        .filter_map(|l| l.trim_end_matches('\r').strip_prefix("a=rtpmap:"))
        .filter_map(|rest| {
            let (pt, codec) = rest.split_once(' ')?;
            Some((pt.parse().ok()?, codec.split('/').next().unwrap_or("").to_owned()))
        })
        .collect()
}

/// Tracks grouped by participant.
pub fn tracks_by_participant(tracks: &[TrackInfo]) -> BTreeMap<String, Vec<TrackInfo>> {
    let mut map: BTreeMap<String, Vec<TrackInfo>> = BTreeMap::new();
    for t in tracks {
        map.entry(t.participant_id.clone()).or_default().push(t.clone());
    }
    map
}

/// A VP8 frame (not an RTP payload) is a keyframe when bit 0 of its first byte is 0.
pub fn vp8_frame_is_keyframe(frame: &[u8]) -> bool {
    frame.first().is_some_and(|b| b & 0x01 == 0)
}

/// The NAL units of an Annex-B H.264 access unit (start codes of 3 or 4 bytes), in order,
/// each from its header byte on.
pub fn h264_nal_units(au: &[u8]) -> Vec<&[u8]> {
    // Start code positions: (where it begins, where its NAL unit begins).
    let mut starts = vec![];
    let mut i = 0;
    while i + 2 < au.len() {
        if au[i] == 0 && au[i + 1] == 0 && au[i + 2] == 1 {
            let begin = if i > 0 && au[i - 1] == 0 { i - 1 } else { i };
            starts.push((begin, i + 3));
            i += 3;
        } else {
            i += 1;
        }
    }
    starts
        .iter()
        .enumerate()
        .filter_map(|(k, &(_, nal))| {
            let end = starts.get(k + 1).map_or(au.len(), |&(b, _)| b);
            // Trailing zero bytes belong to no NAL unit.
            let mut end = end.max(nal);
            while end > nal && au[end - 1] == 0 {
                end -= 1;
            }
            (end > nal).then(|| &au[nal..end])
        })
        .collect()
}

/// The NAL unit types (5 IDR slice, 1 other slice, 6 SEI, 7 SPS, 8 PPS, 9 AUD) of an Annex-B
/// access unit, in order.
pub fn h264_nal_types(au: &[u8]) -> Vec<u8> {
    h264_nal_units(au).into_iter().map(|n| n[0] & 0x1f).collect()
}

/// An H.264 access unit is a keyframe when it holds an IDR slice (NAL type 5).
pub fn h264_frame_is_keyframe(au: &[u8]) -> bool {
    h264_nal_types(au).contains(&5)
}

/// What a received video frame is, for the keyframe gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameClass {
    Delta,
    /// A keyframe the decoder can start from.
    Keyframe,
    /// H.264: an IDR slice, but neither it nor an earlier frame of the track brought SPS and
    /// PPS, so no decoder can start from it. A browser (libwebrtc's SPS/PPS tracker) drops it
    /// and asks for another keyframe; so does [`KeyframeGate`] when told it is no keyframe.
    KeyframeWithoutParameterSets,
}

/// Classifies the frames of one received video track (H.264 remembers whether SPS and PPS
/// have been seen on it).
#[derive(Debug, Clone, Default)]
pub struct KeyframeDetector {
    codec: super::media::VideoCodec,
    have_sps: bool,
    have_pps: bool,
}

impl KeyframeDetector {
    pub fn new(codec: super::media::VideoCodec) -> Self {
        KeyframeDetector { codec, have_sps: false, have_pps: false }
    }

    pub fn codec(&self) -> super::media::VideoCodec {
        self.codec
    }

    pub fn classify(&mut self, frame: &[u8]) -> FrameClass {
        use super::media::VideoCodec;
        match self.codec {
            VideoCodec::Vp8 => {
                if vp8_frame_is_keyframe(frame) {
                    FrameClass::Keyframe
                } else {
                    FrameClass::Delta
                }
            }
            VideoCodec::H264 => {
                let types = h264_nal_types(frame);
                self.have_sps |= types.contains(&7);
                self.have_pps |= types.contains(&8);
                match (types.contains(&5), self.have_sps && self.have_pps) {
                    (false, _) => FrameClass::Delta,
                    (true, true) => FrameClass::Keyframe,
                    (true, false) => FrameClass::KeyframeWithoutParameterSets,
                }
            }
        }
    }
}

/// What to do with one received video frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameAction {
    /// Hand the frame to the decoder.
    pub decode: bool,
    /// Send a PLI to the sender now.
    pub request_keyframe: bool,
}

/// Per received video track: decode only from a keyframe on, and (like a browser) ask for a
/// keyframe when the stream starts without one or has a gap, at most once per `interval`.
#[derive(Debug, Clone)]
pub struct KeyframeGate {
    request_keyframes: bool,
    interval: Duration,
    have_keyframe: bool,
    last_request: Option<Instant>,
}

impl KeyframeGate {
    pub fn new(request_keyframes: bool, interval: Duration) -> Self {
        KeyframeGate { request_keyframes, interval, have_keyframe: false, last_request: None }
    }

    pub fn on_frame(&mut self, is_keyframe: bool, contiguous: bool, now: Instant) -> FrameAction {
        if is_keyframe {
            self.have_keyframe = true;
            return FrameAction { decode: true, request_keyframe: false };
        }
        if !contiguous {
            // Lost data: the decoder's references are broken until the next keyframe.
            self.have_keyframe = false;
        }
        if self.have_keyframe {
            return FrameAction { decode: true, request_keyframe: false };
        }
        let due = self.last_request.is_none_or(|t| now.duration_since(t) >= self.interval);
        let request_keyframe = self.request_keyframes && due;
        if request_keyframe {
            self.last_request = Some(now);
        }
        FrameAction { decode: false, request_keyframe }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic::signaling::Kind;

    fn t(mid: &str, producer: &str, kind: Kind) -> TrackInfo {
        TrackInfo { mid: mid.into(), producer_id: producer.into(), participant_id: producer.split(':').next().unwrap_or("").into(), kind }
    }

    #[test]
    fn diff_finds_added_removed_and_reused_mlines() {
        let old = vec![t("0", "p-a:0", Kind::Audio), t("1", "p-a:1", Kind::Video)];
        let new = vec![t("1", "p-b:1", Kind::Video), t("2", "p-b:0", Kind::Audio)];
        let d = diff_tracks(&old, &new);
        assert_eq!(d.added, new);
        assert_eq!(d.removed, old);
        let same = diff_tracks(&old, &old);
        assert_eq!(same, TrackDiff::default());
        let grown = diff_tracks(&old[..1], &old);
        assert_eq!(grown.added, vec![old[1].clone()]);
        assert!(grown.removed.is_empty());
    }

    #[test]
    fn mline_directions_and_rejected_lines() {
        let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1 2\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=sendonly\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\na=inactive\r\n\
m=video 0 UDP/TLS/RTP/SAVPF 96\r\na=mid:2\r\na=sendonly\r\n\
m=application 0 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:3\r\n";
        let m = parse_mlines(sdp);
        assert_eq!(m.len(), 4);
        assert_eq!(m[0].direction, MlineDirection::SendOnly);
        assert!(!m[0].is_inactive());
        assert_eq!(m[1].mid.as_deref(), Some("1"));
        assert!(m[1].is_inactive());
        assert!(m[2].port_zero && m[2].is_inactive());
        assert_eq!(inactive_mids(sdp), vec!["1".to_owned(), "2".to_owned()]);
    }

    #[test]
    fn rtpmap_lists_payload_types() {
        let sdp = "m=video 9 UDP/TLS/RTP/SAVPF 96 97\r\na=rtpmap:96 VP8/90000\r\na=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\n";
        let m = rtpmap(sdp);
        assert_eq!(m.len(), 2);
        assert_eq!(m[&96], "VP8");
        assert_eq!(m[&97], "rtx");
    }

    #[test]
    fn session_level_direction_is_the_default() {
        let sdp = "v=0\na=inactive\nm=audio 9 RTP/AVP 0\na=mid:a\nm=video 9 RTP/AVP 96\na=mid:v\na=recvonly\n";
        let m = parse_mlines(sdp);
        assert_eq!(m[0].direction, MlineDirection::Inactive);
        assert_eq!(m[1].direction, MlineDirection::RecvOnly);
    }

    #[test]
    fn vp8_keyframe_bit() {
        assert!(vp8_frame_is_keyframe(&[0x50, 0x01, 0x00, 0x9d, 0x01, 0x2a]));
        assert!(!vp8_frame_is_keyframe(&[0x31, 0x02]));
        assert!(!vp8_frame_is_keyframe(&[]));
    }

    /// SPS, PPS, SEI, IDR as x264 writes a first keyframe (4- and 3-byte start codes).
    const H264_KEY: &[u8] = &[
        0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1e, // SPS
        0, 0, 0, 1, 0x68, 0xce, 0x3c, 0x80, // PPS
        0, 0, 1, 0x06, 0x05, 0x01, // SEI
        0, 0, 1, 0x65, 0x88, 0x84, 0x00, // IDR (its own trailing zero is not a start code)
    ];

    #[test]
    fn h264_nal_units_and_types() {
        assert_eq!(h264_nal_types(H264_KEY), vec![7, 8, 6, 5]);
        let units = h264_nal_units(H264_KEY);
        assert_eq!(units[0], &[0x67, 0x42, 0xc0, 0x1e]);
        assert_eq!(units[3], &[0x65, 0x88, 0x84], "trailing zeros are not part of a NAL unit");
        assert!(h264_frame_is_keyframe(H264_KEY));
        assert!(!h264_frame_is_keyframe(&[0, 0, 0, 1, 0x41, 0x9a, 0x02]));
        assert!(h264_nal_types(&[]).is_empty());
        assert!(h264_nal_types(&[0x65, 0x88]).is_empty(), "no start code, no NAL unit");
    }

    #[test]
    fn h264_keyframe_needs_parameter_sets_once() {
        use crate::synthetic::media::VideoCodec;
        let idr_only: &[u8] = &[0, 0, 0, 1, 0x65, 0x88, 0x84];
        let delta: &[u8] = &[0, 0, 0, 1, 0x41, 0x9a, 0x02];
        let mut d = KeyframeDetector::new(VideoCodec::H264);
        assert_eq!(d.classify(delta), FrameClass::Delta);
        assert_eq!(d.classify(idr_only), FrameClass::KeyframeWithoutParameterSets);
        assert_eq!(d.classify(H264_KEY), FrameClass::Keyframe);
        // Once SPS and PPS are known, a bare IDR is decodable.
        assert_eq!(d.classify(idr_only), FrameClass::Keyframe);
        let mut v = KeyframeDetector::new(VideoCodec::Vp8);
        assert_eq!(v.classify(&[0x50, 0x01, 0x00, 0x9d, 0x01, 0x2a]), FrameClass::Keyframe);
        assert_eq!(v.classify(&[0x31, 0x02]), FrameClass::Delta);
    }

    #[test]
    fn gate_waits_for_a_keyframe_and_throttles_requests() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut g = KeyframeGate::new(true, Duration::from_millis(500));
        assert_eq!(g.on_frame(false, true, ms(0)), FrameAction { decode: false, request_keyframe: true });
        assert_eq!(g.on_frame(false, true, ms(100)), FrameAction { decode: false, request_keyframe: false });
        assert_eq!(g.on_frame(false, true, ms(600)), FrameAction { decode: false, request_keyframe: true });
        assert_eq!(g.on_frame(true, true, ms(650)), FrameAction { decode: true, request_keyframe: false });
        assert_eq!(g.on_frame(false, true, ms(700)), FrameAction { decode: true, request_keyframe: false });
        // A gap breaks the chain: stop decoding and ask again (last request was at 600 ms).
        assert_eq!(g.on_frame(false, false, ms(1200)), FrameAction { decode: false, request_keyframe: true });
        assert_eq!(g.on_frame(false, true, ms(1300)), FrameAction { decode: false, request_keyframe: false });
    }

    #[test]
    fn gate_without_requests_only_waits() {
        let now = Instant::now();
        let mut g = KeyframeGate::new(false, Duration::from_millis(500));
        assert_eq!(g.on_frame(false, true, now), FrameAction { decode: false, request_keyframe: false });
        assert!(g.on_frame(true, true, now).decode);
    }

    #[test]
    fn grouping_by_participant() {
        let tracks = vec![t("0", "p-a:0", Kind::Audio), t("1", "p-b:1", Kind::Video), t("2", "p-a:1", Kind::Video)];
        let g = tracks_by_participant(&tracks);
        assert_eq!(g["p-a"].len(), 2);
        assert_eq!(g["p-b"].len(), 1);
    }
}
