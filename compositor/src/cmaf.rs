//! Turning `cmafmux` output buffers into init / part items.
//!
//! gst-plugin-fmp4 0.14.5 marks its buffers exactly like this (only these four flags matter;
//! others such as TAG_MEMORY are masked off before comparing whole sets, never "has any of"):
//! - init segment (`ftyp`+`moov`): DISCONT | HEADER
//! - chunk header (`moof`) starting a fragment: HEADER; any later chunk: HEADER | DELTA_UNIT.
//!   Its PTS is the chunk's earliest PTS and its duration the chunk's duration.
//! - the chunk's media (`mdat` …): DELTA_UNIT, the last one DELTA_UNIT | MARKER.

use crate::output::{Item, Part};

/// The four buffer flags that matter here, as plain booleans.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flags {
    pub discont: bool,
    pub header: bool,
    pub delta_unit: bool,
    pub marker: bool,
}

/// What one buffer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece {
    Init,
    ChunkHeader { fragment_start: bool },
    Media { last: bool },
    Unknown,
}

pub fn classify(f: Flags) -> Piece {
    let set = (f.discont, f.header, f.delta_unit, f.marker);
    match set {
        (true, true, false, false) => Piece::Init,
        (false, true, false, false) => Piece::ChunkHeader { fragment_start: true },
        (false, true, true, false) => Piece::ChunkHeader { fragment_start: false },
        (false, false, true, false) => Piece::Media { last: false },
        (false, false, true, true) => Piece::Media { last: true },
        _ => Piece::Unknown,
    }
}

/// Collects buffers into complete items. Feed buffers in order; an item comes out when the
/// init segment arrives and when a chunk's last (MARKER) buffer arrives.
#[derive(Debug, Default)]
pub struct Assembler {
    current: Option<Part>,
    sent_init: bool,
    /// Buffers that fitted nowhere (logged by the caller through the return value).
    pub stray: u64,
}

impl Assembler {
    pub fn new() -> Assembler {
        Assembler::default()
    }

    /// Feed one buffer. `pts_ns`/`duration_ns` matter only for chunk headers.
    pub fn push(&mut self, flags: Flags, pts_ns: Option<u64>, duration_ns: Option<u64>, data: &[u8]) -> Option<Item> {
        match classify(flags) {
            Piece::Init => {
                // cmafmux may send an updated header at EOS; the stream keeps the first one.
                if self.sent_init {
                    return None;
                }
                self.sent_init = true;
                Some(Item::Init(data.to_vec()))
            }
            Piece::ChunkHeader { fragment_start } => {
                if self.current.is_some() {
                    self.stray += 1; // previous chunk never got its MARKER: drop it
                }
                self.current = Some(Part {
                    independent: fragment_start,
                    segment_start: fragment_start,
                    pts_ns: pts_ns.unwrap_or(0),
                    duration_ns: duration_ns.unwrap_or(0),
                    age_us: None,
                    data: data.to_vec(),
                });
                None
            }
            Piece::Media { last } => match self.current.as_mut() {
                Some(part) => {
                    part.data.extend_from_slice(data);
                    if last {
                        self.current.take().map(Item::Part)
                    } else {
                        None
                    }
                }
                None => {
                    self.stray += 1;
                    None
                }
            },
            Piece::Unknown => {
                self.stray += 1;
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INIT: Flags = Flags { discont: true, header: true, delta_unit: false, marker: false };
    const FRAG: Flags = Flags { discont: false, header: true, delta_unit: false, marker: false };
    const CHUNK: Flags = Flags { discont: false, header: true, delta_unit: true, marker: false };
    const MEDIA: Flags = Flags { discont: false, header: false, delta_unit: true, marker: false };
    const LAST: Flags = Flags { discont: false, header: false, delta_unit: true, marker: true };

    #[test]
    fn exact_flag_sets() {
        assert_eq!(classify(INIT), Piece::Init);
        assert_eq!(classify(FRAG), Piece::ChunkHeader { fragment_start: true });
        assert_eq!(classify(CHUNK), Piece::ChunkHeader { fragment_start: false });
        assert_eq!(classify(MEDIA), Piece::Media { last: false });
        assert_eq!(classify(LAST), Piece::Media { last: true });
        // a chunk header that also says MARKER is not something cmafmux sends
        assert_eq!(classify(Flags { marker: true, ..CHUNK }), Piece::Unknown);
        assert_eq!(classify(Flags::default()), Piece::Unknown);
    }

    #[test]
    fn assembles_init_and_parts() {
        let mut a = Assembler::new();
        assert_eq!(a.push(INIT, Some(0), None, b"ftypmoov"), Some(Item::Init(b"ftypmoov".to_vec())));
        assert_eq!(a.push(FRAG, Some(10), Some(333), b"moof"), None);
        assert_eq!(a.push(MEDIA, None, None, b"mdat1"), None);
        let item = a.push(LAST, None, None, b"mdat2").unwrap();
        assert_eq!(
            item,
            Item::Part(Part {
                independent: true,
                segment_start: true,
                pts_ns: 10,
                duration_ns: 333,
                age_us: None,
                data: b"moofmdat1mdat2".to_vec(),
            })
        );
        assert_eq!(a.push(CHUNK, Some(343), Some(333), b"moof"), None);
        match a.push(LAST, None, None, b"mdat").unwrap() {
            Item::Part(p) => {
                assert!(!p.independent && !p.segment_start);
                assert_eq!(p.pts_ns, 343);
            }
            i => panic!("{i:?}"),
        }
        // a second init (header update at EOS) is dropped
        assert_eq!(a.push(INIT, None, None, b"x"), None);
        // media without a header is stray
        assert_eq!(a.push(LAST, None, None, b"x"), None);
        assert_eq!(a.stray, 1);
    }
}
