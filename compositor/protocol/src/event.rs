//! The compositor's status events (`{"kind":"event","event":NAME,...}` headers; the table in
//! compositor/PROTOCOL.md). The compositor builds them, the gateway reads them, both through
//! these types. An event this version does not know reads as [`Event::Unknown`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::frame::Header;

/// The tile a video track is drawn in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tile {
    pub width: u32,
    pub height: u32,
}

/// The periodic `stats` event (every `--stats-interval-ms`). Counters are cumulative; rates
/// and timings cover the interval since the previous one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Stats {
    pub fps_out: f64,
    pub fps_in: f64,
    pub frames_out: u64,
    pub frames_dropped: u64,
    pub packets_lost: u64,
    pub encode_ms_avg: Option<f64>,
    pub encode_ms_max: Option<f64>,
    pub part_age_ms_max: Option<f64>,
    pub parts_out: u64,
    pub bytes_out: u64,
    pub participants: u64,
    pub video_inputs: u64,
    pub audio_inputs: u64,
    /// Tracks whose RTP stopped.
    pub stalled: Vec<String>,
    pub errors: u64,
    pub stray_buffers: u64,
    pub keyframe_requests: u64,
    /// Times the mixer was told it fell behind the clock (it skipped late frames).
    pub mixer_catchups: u64,
    /// Per participant, per track: the lip-sync delay applied, ms.
    pub av_sync_ms: BTreeMap<String, BTreeMap<String, f64>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The pipeline is PLAYING.
    Started {
        width: u32,
        height: u32,
        fps: u32,
        part_ms: u64,
        segment_ms: u64,
        preset: String,
        pid: u32,
    },
    /// A control line was carried out (`id`: the participant or track; none for shutdown).
    Applied {
        op: String,
        id: Option<String>,
    },
    /// A bad control line, or an input that failed; `code` is machine-readable.
    Error {
        code: String,
        message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        op: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        track_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        participant_id: Option<String>,
    },
    /// No RTP on a track for `--stall-ms`, once RTP had flowed.
    InputStalled {
        track_id: String,
        participant_id: String,
    },
    InputResumed {
        track_id: String,
    },
    /// A track that kept failing was dropped.
    InputRemoved {
        track_id: String,
        reason: String,
    },
    /// A video track needs a keyframe (plain RTP has no RTCP path back to the publisher).
    KeyframeRequest {
        track_id: String,
        reason: String,
    },
    /// After every layout change: the tile each visible video track is drawn in.
    Layout {
        tiles: BTreeMap<String, Tile>,
    },
    Stats(Stats),
    /// The output pipeline failed; the process exits 1.
    Fatal {
        message: String,
    },
    /// Always the last item.
    Stopped {
        code: i32,
    },
    #[serde(other)]
    Unknown,
}

impl Event {
    /// The event's JSON header (`kind` and `event` first, then its fields).
    pub fn to_header(&self) -> Vec<u8> {
        let mut v = serde_json::to_value(self).expect("events serialize");
        if let Some(map) = v.as_object_mut() {
            let mut framed = serde_json::Map::new();
            framed.insert("kind".into(), "event".into());
            framed.extend(std::mem::take(map));
            v = framed.into();
        }
        serde_json::to_vec(&v).expect("events serialize")
    }

    /// Reads an event header (`kind` is `event`); an unknown event name is `Unknown`.
    pub fn from_header(header: &[u8]) -> Result<Event, serde_json::Error> {
        debug_assert!(serde_json::from_slice::<Header>(header).map(|h| h == Header::Event).unwrap_or(true));
        serde_json::from_slice(header)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_reads_back_as_written() {
        let mut tiles = BTreeMap::new();
        tiles.insert("p-1:0".to_string(), Tile { width: 632, height: 356 });
        let mut sync = BTreeMap::new();
        sync.insert("p-1".to_string(), BTreeMap::from([("p-1:0".to_string(), 0.0), ("p-1:1".to_string(), 41.5)]));
        let events = [
            Event::Started { width: 1280, height: 720, fps: 30, part_ms: 333, segment_ms: 1000, preset: "ultrafast".into(), pid: 42 },
            Event::Applied { op: "add_track".into(), id: Some("p-1:0".into()) },
            Event::Applied { op: "shutdown".into(), id: None },
            Event::Error {
                code: "unknown_participant".into(),
                message: "no".into(),
                op: Some("add_track".into()),
                track_id: None,
                participant_id: None,
            },
            Event::InputStalled { track_id: "p-1:0".into(), participant_id: "p-1".into() },
            Event::InputResumed { track_id: "p-1:0".into() },
            Event::InputRemoved { track_id: "p-1:0".into(), reason: "failed".into() },
            Event::KeyframeRequest { track_id: "p-1:0".into(), reason: "no_picture".into() },
            Event::Layout { tiles },
            Event::Stats(Stats {
                fps_out: 30.0,
                stalled: vec!["p-1:0".into()],
                encode_ms_avg: Some(4.5),
                av_sync_ms: sync,
                ..Stats::default()
            }),
            Event::Fatal { message: "x264 failed".into() },
            Event::Stopped { code: 0 },
        ];
        for e in events {
            let header = e.to_header();
            assert_eq!(serde_json::from_slice::<Header>(&header).unwrap(), Header::Event);
            assert_eq!(Event::from_header(&header).unwrap(), e, "{}", String::from_utf8_lossy(&header));
        }
    }

    #[test]
    fn the_documented_examples_read_and_unknown_events_do_not_fail() {
        let stats = br#"{"kind":"event","event":"stats","fps_out":30.0,"fps_in":90.0,"frames_out":900,"frames_dropped":0,"packets_lost":0,"encode_ms_avg":4.218,"encode_ms_max":9.87,"part_age_ms_max":203.4,"parts_out":90,"bytes_out":9300000,"participants":3,"video_inputs":3,"audio_inputs":1,"stalled":[],"errors":0,"stray_buffers":0,"av_sync_ms":{"p-1":{"p-1:0":0.0,"p-1:1":256.7}}}"#;
        assert!(
            matches!(Event::from_header(stats).unwrap(), Event::Stats(s) if s.frames_out == 900 && s.av_sync_ms["p-1"]["p-1:1"] == 256.7)
        );
        let layout = br#"{"kind":"event","event":"layout","tiles":{"p-1:0":{"width":632,"height":356}}}"#;
        assert!(matches!(Event::from_header(layout).unwrap(), Event::Layout { tiles } if tiles["p-1:0"].height == 356));
        assert_eq!(Event::from_header(br#"{"kind":"event","event":"brand_new","x":1}"#).unwrap(), Event::Unknown);
        assert!(Event::from_header(br#"{"kind":"event","event":"layout","tiles":{"a":{"height":-1}}}"#).is_err());
    }
}
