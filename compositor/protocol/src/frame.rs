//! The compositor's stdout: a sequence of framed items,
//! `u32 BE header length | JSON header | u32 BE body length | body`.
//!
//! Header kinds: `init` (the CMAF init segment is the body), `part` (one CMAF chunk, an LL-HLS
//! part), `event` (a status event, see `event`; empty body). Both sides refuse lengths above
//! the limits here: such a length means a corrupt stream, not real data.

use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};

/// Largest header accepted (events are a few hundred bytes; `stats` with many tracks a few KiB).
pub const MAX_HEADER_LEN: u32 = 1 << 20;
/// Largest body accepted (a part of a 1080p60 broadcast is well under 1 MiB).
pub const MAX_BODY_LEN: u32 = 64 << 20;

/// The JSON header of an item (events carry their fields beside `kind`; see `event::Event`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Header {
    Init,
    Part {
        /// Starts with a keyframe (every part that starts a segment does, nothing else does).
        independent: bool,
        /// First part of a new CMAF fragment (an HLS segment).
        segment_start: bool,
        /// Presentation time of the earliest sample, pipeline running time, ns.
        #[serde(default)]
        pts_ns: u64,
        duration_ns: u64,
        /// Microseconds from the moment the part's last video frame left the compositor
        /// element to the moment the part was handed to the writer; absent when unknown.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        age_us: Option<u64>,
    },
    Event,
}

/// Writes one framed item: `header` is its JSON header.
pub fn write_frame(w: &mut impl Write, header: &[u8], body: &[u8]) -> io::Result<()> {
    let too_big = |what| io::Error::new(io::ErrorKind::InvalidInput, format!("{what} too large"));
    let hlen = u32::try_from(header.len()).ok().filter(|n| *n <= MAX_HEADER_LEN).ok_or_else(|| too_big("header"))?;
    let blen = u32::try_from(body.len()).ok().filter(|n| *n <= MAX_BODY_LEN).ok_or_else(|| too_big("body"))?;
    w.write_all(&hlen.to_be_bytes())?;
    w.write_all(header)?;
    w.write_all(&blen.to_be_bytes())?;
    w.write_all(body)?;
    Ok(())
}

/// Checks a header length read from the stream.
pub fn check_header_len(n: u32) -> io::Result<usize> {
    if n > MAX_HEADER_LEN {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("header of {n} bytes (at most {MAX_HEADER_LEN})")));
    }
    Ok(n as usize)
}

/// Checks a body length read from the stream.
pub fn check_body_len(n: u32) -> io::Result<usize> {
    if n > MAX_BODY_LEN {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("body of {n} bytes (at most {MAX_BODY_LEN})")));
    }
    Ok(n as usize)
}

/// Reads one framed item (raw JSON header, body): `Ok(None)` on a clean end between items.
pub fn read_frame(r: &mut impl Read) -> io::Result<Option<(Vec<u8>, Vec<u8>)>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let mut header = vec![0u8; check_header_len(u32::from_be_bytes(len))?];
    r.read_exact(&mut header)?;
    r.read_exact(&mut len)?;
    let mut body = vec![0u8; check_body_len(u32::from_be_bytes(len))?];
    r.read_exact(&mut body)?;
    Ok(Some((header, body)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_oversized_lengths_are_refused() {
        let mut buf = Vec::new();
        let part = Header::Part { independent: true, segment_start: false, pts_ns: 5, duration_ns: 333_000_000, age_us: Some(12) };
        write_frame(&mut buf, &serde_json::to_vec(&part).unwrap(), &[7; 10]).unwrap();
        write_frame(&mut buf, &serde_json::to_vec(&Header::Init).unwrap(), b"ftyp").unwrap();
        let mut r = buf.as_slice();
        let (h, body) = read_frame(&mut r).unwrap().unwrap();
        assert_eq!(serde_json::from_slice::<Header>(&h).unwrap(), part);
        assert_eq!(body, vec![7; 10]);
        let (h, body) = read_frame(&mut r).unwrap().unwrap();
        assert_eq!((serde_json::from_slice::<Header>(&h).unwrap(), body), (Header::Init, b"ftyp".to_vec()));
        assert!(read_frame(&mut r).unwrap().is_none(), "a clean end");

        let mut huge = (MAX_HEADER_LEN + 1).to_be_bytes().to_vec();
        huge.extend([0; 8]);
        assert!(read_frame(&mut huge.as_slice()).is_err());
        let mut big_body = 2u32.to_be_bytes().to_vec();
        big_body.extend(b"{}");
        big_body.extend((MAX_BODY_LEN + 1).to_be_bytes());
        assert!(read_frame(&mut big_body.as_slice()).is_err());
        // A part without age (older compositors) still reads.
        let h: Header = serde_json::from_str(r#"{"kind":"part","independent":false,"segment_start":false,"duration_ns":1}"#).unwrap();
        assert!(matches!(h, Header::Part { age_us: None, pts_ns: 0, .. }));
    }
}
