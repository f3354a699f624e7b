//! The output stream on stdout: a sequence of framed items,
//! `u32 BE header length, JSON header, u32 BE body length, body` (see PROTOCOL.md).
//!
//! Item kinds: `init` (the CMAF init segment), `part` (one CMAF chunk) and `event`
//! (status, empty body). The framing, its limits and the events are `compositor-protocol`'s;
//! this module turns the compositor's items into frames. It knows no GStreamer.

use std::io::{self, Read, Write};

use compositor_protocol::frame::{self, Header};
use compositor_protocol::Event;
use serde_json::Value;

/// One CMAF chunk (an LL-HLS part).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// Starts with a keyframe (every part that starts a segment does, nothing else does).
    pub independent: bool,
    /// First part of a new CMAF fragment (an HLS segment).
    pub segment_start: bool,
    /// Presentation time of the earliest sample, pipeline running time, ns.
    pub pts_ns: u64,
    /// Duration of the chunk, ns.
    pub duration_ns: u64,
    /// Microseconds from the moment the chunk's last video frame left the compositor element
    /// to the moment the item was handed to the stdout writer; None (the header leaves the
    /// field out) when that frame is not known.
    pub age_us: Option<u64>,
    /// `moof` + `mdat` bytes.
    pub data: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Init(Vec<u8>),
    Part(Part),
    Event(Event),
}

impl Item {
    /// The JSON header and the body of this item.
    pub fn header_and_body(&self) -> (Vec<u8>, &[u8]) {
        match self {
            Item::Init(data) => (serde_json::to_vec(&Header::Init).expect("headers serialize"), data),
            Item::Part(p) => {
                let header = Header::Part {
                    independent: p.independent,
                    segment_start: p.segment_start,
                    pts_ns: p.pts_ns,
                    duration_ns: p.duration_ns,
                    age_us: p.age_us,
                };
                (serde_json::to_vec(&header).expect("headers serialize"), &p.data)
            }
            Item::Event(e) => (e.to_header(), &[]),
        }
    }
}

pub fn write_item(w: &mut impl Write, item: &Item) -> io::Result<()> {
    let (header, body) = item.header_and_body();
    frame::write_frame(w, &header, body)
}

/// Reads one framed item with its header as JSON (tests and the benchmark look inside):
/// `Ok(None)` on a clean end of stream between items.
pub fn read_frame(r: &mut impl Read) -> io::Result<Option<(Value, Vec<u8>)>> {
    match frame::read_frame(r)? {
        Some((header, body)) => Ok(Some((serde_json::from_slice(&header)?, body))),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn round_trip() {
        let items = vec![
            Item::Init(vec![1, 2, 3]),
            Item::Part(Part {
                independent: true,
                segment_start: true,
                pts_ns: 1_000_000_000,
                duration_ns: 333_333_333,
                age_us: Some(412_345),
                data: vec![9; 1000],
            }),
            Item::Part(Part {
                independent: false,
                segment_start: false,
                pts_ns: 1_333_333_333,
                duration_ns: 333_333_333,
                age_us: None,
                data: vec![8; 10],
            }),
            Item::Event(Event::Stats(compositor_protocol::Stats { fps_out: 30.0, ..Default::default() })),
        ];
        let mut buf = Vec::new();
        for item in &items {
            write_item(&mut buf, item).unwrap();
        }
        // exact layout of the first frame
        assert_eq!(&buf[..4], &15u32.to_be_bytes());
        assert_eq!(&buf[4..19], br#"{"kind":"init"}"#);
        assert_eq!(&buf[19..23], &3u32.to_be_bytes());
        let mut r = buf.as_slice();
        let (h, b) = read_frame(&mut r).unwrap().unwrap();
        assert_eq!(h, json!({"kind":"init"}));
        assert_eq!(b, vec![1, 2, 3]);
        let (h, b) = read_frame(&mut r).unwrap().unwrap();
        assert_eq!(h["kind"], "part");
        assert_eq!(h["independent"], true);
        assert_eq!(h["pts_ns"], 1_000_000_000u64);
        assert_eq!(h["age_us"], 412_345u64);
        assert_eq!(b.len(), 1000);
        // an unknown age is left out, not null
        let (h, _) = read_frame(&mut r).unwrap().unwrap();
        assert_eq!(h["kind"], "part");
        assert!(h.get("age_us").is_none(), "{h}");
        let (h, b) = read_frame(&mut r).unwrap().unwrap();
        assert_eq!((&h["kind"], &h["event"], &h["fps_out"]), (&json!("event"), &json!("stats"), &json!(30.0)));
        assert!(b.is_empty());
        assert!(read_frame(&mut r).unwrap().is_none());
    }

    #[test]
    fn truncated_stream_is_an_error() {
        let mut buf = Vec::new();
        write_item(&mut buf, &Item::Init(vec![0; 10])).unwrap();
        buf.truncate(buf.len() - 1);
        assert!(read_frame(&mut buf.as_slice()).is_err());
        let huge = (compositor_protocol::MAX_HEADER_LEN + 1).to_be_bytes();
        assert!(read_frame(&mut huge.as_slice()).is_err());
    }
}
