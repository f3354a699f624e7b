//! The output stream on stdout: a sequence of framed items,
//! `u32 BE header length, JSON header, u32 BE body length, body` (see PROTOCOL.md).
//!
//! Item kinds: `init` (the CMAF init segment), `part` (one CMAF chunk) and `event`
//! (status, empty body). This module writes and reads the framing; it knows no GStreamer.

use std::io::{self, Read, Write};

use serde_json::{json, Map, Value};

/// Refuse to read headers or bodies larger than this (a corrupt stream, not real data).
pub const MAX_HEADER_LEN: u32 = 1 << 20;
pub const MAX_BODY_LEN: u32 = 256 << 20;

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
    Event(Map<String, Value>),
}

impl Item {
    /// A status event: `{"kind":"event","event":name, ...fields}`.
    pub fn event(name: &str, fields: Value) -> Item {
        let mut map = Map::new();
        map.insert("event".into(), Value::String(name.into()));
        if let Value::Object(fields) = fields {
            map.extend(fields);
        }
        Item::Event(map)
    }

    /// The JSON header and the body of this item.
    pub fn header_and_body(&self) -> (Value, &[u8]) {
        match self {
            Item::Init(data) => (json!({"kind": "init"}), data),
            Item::Part(p) => {
                let mut header = json!({
                    "kind": "part",
                    "independent": p.independent,
                    "segment_start": p.segment_start,
                    "pts_ns": p.pts_ns,
                    "duration_ns": p.duration_ns,
                });
                if let Some(age_us) = p.age_us {
                    header["age_us"] = age_us.into();
                }
                (header, &p.data)
            }
            Item::Event(fields) => {
                let mut map = Map::new();
                map.insert("kind".into(), Value::String("event".into()));
                map.extend(fields.clone());
                (Value::Object(map), &[])
            }
        }
    }
}

/// Write one framed item.
pub fn write_frame(w: &mut impl Write, header: &Value, body: &[u8]) -> io::Result<()> {
    let header = serde_json::to_vec(header)?;
    let too_big = |what| io::Error::new(io::ErrorKind::InvalidInput, format!("{what} too large"));
    let hlen = u32::try_from(header.len()).map_err(|_| too_big("header"))?;
    let blen = u32::try_from(body.len()).map_err(|_| too_big("body"))?;
    w.write_all(&hlen.to_be_bytes())?;
    w.write_all(&header)?;
    w.write_all(&blen.to_be_bytes())?;
    w.write_all(body)?;
    Ok(())
}

pub fn write_item(w: &mut impl Write, item: &Item) -> io::Result<()> {
    let (header, body) = item.header_and_body();
    write_frame(w, &header, body)
}

/// Read one framed item: `Ok(None)` on a clean end of stream between items.
pub fn read_frame(r: &mut impl Read) -> io::Result<Option<(Value, Vec<u8>)>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let hlen = u32::from_be_bytes(len);
    if hlen > MAX_HEADER_LEN {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "header too large"));
    }
    let mut header = vec![0u8; hlen as usize];
    r.read_exact(&mut header)?;
    let header: Value = serde_json::from_slice(&header)?;
    r.read_exact(&mut len)?;
    let blen = u32::from_be_bytes(len);
    if blen > MAX_BODY_LEN {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "body too large"));
    }
    let mut body = vec![0u8; blen as usize];
    r.read_exact(&mut body)?;
    Ok(Some((header, body)))
}

#[cfg(test)]
mod tests {
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
            Item::event("stats", json!({"fps_out": 30.0})),
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
        assert_eq!(h, json!({"kind":"event","event":"stats","fps_out":30.0}));
        assert!(b.is_empty());
        assert!(read_frame(&mut r).unwrap().is_none());
    }

    #[test]
    fn truncated_stream_is_an_error() {
        let mut buf = Vec::new();
        write_item(&mut buf, &Item::Init(vec![0; 10])).unwrap();
        buf.truncate(buf.len() - 1);
        assert!(read_frame(&mut buf.as_slice()).is_err());
        let huge = (MAX_HEADER_LEN + 1).to_be_bytes();
        assert!(read_frame(&mut huge.as_slice()).is_err());
    }
}
