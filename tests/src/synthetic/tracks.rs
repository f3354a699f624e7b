//! Bookkeeping of the subscribe PeerConnection: which m-lines carry which producer, which
//! m-lines the SDP made inactive, and when a received video track needs a keyframe.

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
    parse_mlines(sdp)
        .into_iter()
        .filter(|m| m.media != "application" && m.is_inactive())
        .filter_map(|m| m.mid)
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
        TrackInfo {
            mid: mid.into(),
            producer_id: producer.into(),
            participant_id: producer.split(':').next().unwrap_or("").into(),
            kind,
        }
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
