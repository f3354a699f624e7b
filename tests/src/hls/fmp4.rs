//! Just enough ISO BMFF to follow fMP4/CMAF parts: which track is video (init segment), and
//! how many video samples a part (one or more `moof`+`mdat`) carries, with the decode time
//! of its first one.

/// One box: its type and its payload (after the header).
#[derive(Debug, Clone, Copy)]
pub struct Bmff<'a> {
    pub kind: [u8; 4],
    pub body: &'a [u8],
}

/// The boxes one after the other in `data` (stops at the first malformed header).
pub fn boxes(mut data: &[u8]) -> Vec<Bmff<'_>> {
    let mut out = vec![];
    while data.len() >= 8 {
        let size32 = u32::from_be_bytes([data[0], data[1], data[2], data[3]]) as u64;
        let kind = [data[4], data[5], data[6], data[7]];
        let (header, size) = match size32 {
            0 => (8, data.len() as u64),
            1 if data.len() >= 16 => (16, u64::from_be_bytes(data[8..16].try_into().expect("8 bytes"))),
            1 => break,
            n => (8, n),
        };
        let Ok(size) = usize::try_from(size) else { break };
        if size < header || size > data.len() {
            break;
        }
        out.push(Bmff { kind, body: &data[header..size] });
        data = &data[size..];
    }
    out
}

fn children<'a>(b: &Bmff<'a>, kind: &[u8; 4]) -> Vec<Bmff<'a>> {
    boxes(b.body).into_iter().filter(|c| &c.kind == kind).collect()
}

fn child<'a>(b: &Bmff<'a>, kind: &[u8; 4]) -> Option<Bmff<'a>> {
    children(b, kind).into_iter().next()
}

fn be32(d: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(d.get(at..at + 4)?.try_into().ok()?))
}

fn be64(d: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(d.get(at..at + 8)?.try_into().ok()?))
}

/// A track of the init segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackMeta {
    pub id: u32,
    /// `vide`, `soun`, ...
    pub handler: [u8; 4],
    pub timescale: u32,
}

/// The tracks of an init segment (`moov/trak`).
pub fn tracks(init: &[u8]) -> Vec<TrackMeta> {
    let mut out = vec![];
    for moov in boxes(init).iter().filter(|b| &b.kind == b"moov") {
        for trak in children(moov, b"trak") {
            let Some(tkhd) = child(&trak, b"tkhd") else { continue };
            let id = match tkhd.body.first() {
                Some(1) => be32(tkhd.body, 4 + 16),
                _ => be32(tkhd.body, 4 + 8),
            };
            let Some(mdia) = child(&trak, b"mdia") else { continue };
            let handler = child(&mdia, b"hdlr").and_then(|h| h.body.get(8..12)).and_then(|s| s.try_into().ok());
            let timescale = child(&mdia, b"mdhd").and_then(|m| match m.body.first() {
                Some(1) => be32(m.body, 4 + 16),
                _ => be32(m.body, 4 + 8),
            });
            if let (Some(id), Some(handler), Some(timescale)) = (id, handler, timescale) {
                out.push(TrackMeta { id, handler, timescale });
            }
        }
    }
    out
}

/// The video track of an init segment.
pub fn video_track(init: &[u8]) -> Option<TrackMeta> {
    tracks(init).into_iter().find(|t| &t.handler == b"vide")
}

/// What a part holds of one track.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FragmentInfo {
    /// Samples (frames) of the track, over every `moof` of the part.
    pub samples: u32,
    /// `tfdt` of the first `moof` that has the track, in the track's timescale.
    pub first_decode_time: Option<u64>,
}

/// Samples of `track_id` in a part.
pub fn fragment_info(part: &[u8], track_id: u32) -> FragmentInfo {
    let mut out = FragmentInfo::default();
    for moof in boxes(part).iter().filter(|b| &b.kind == b"moof") {
        for traf in children(moof, b"traf") {
            let Some(tfhd) = child(&traf, b"tfhd") else { continue };
            if be32(tfhd.body, 4) != Some(track_id) {
                continue;
            }
            if out.first_decode_time.is_none() {
                out.first_decode_time = child(&traf, b"tfdt").and_then(|t| match t.body.first() {
                    Some(1) => be64(t.body, 4),
                    _ => be32(t.body, 4).map(u64::from),
                });
            }
            for trun in children(&traf, b"trun") {
                out.samples += be32(trun.body, 4).unwrap_or(0);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bx(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut v = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        v.extend_from_slice(kind);
        v.extend_from_slice(body);
        v
    }

    fn trak(id: u32, handler: &[u8; 4], timescale: u32) -> Vec<u8> {
        let mut tkhd = vec![0u8; 4 + 8];
        tkhd.extend(id.to_be_bytes());
        tkhd.extend([0u8; 60]);
        let mut mdhd = vec![0u8; 4 + 8];
        mdhd.extend(timescale.to_be_bytes());
        mdhd.extend([0u8; 8]);
        let mut hdlr = vec![0u8; 8];
        hdlr.extend_from_slice(handler);
        hdlr.extend([0u8; 13]);
        let mdia = [bx(b"mdhd", &mdhd), bx(b"hdlr", &hdlr)].concat();
        bx(b"trak", &[bx(b"tkhd", &tkhd), bx(b"mdia", &mdia)].concat())
    }

    fn traf(id: u32, tfdt: u64, samples: u32) -> Vec<u8> {
        let mut tfhd = vec![0u8; 4];
        tfhd.extend(id.to_be_bytes());
        let mut tfdt_body = vec![1u8, 0, 0, 0];
        tfdt_body.extend(tfdt.to_be_bytes());
        let mut trun = vec![0u8; 4];
        trun.extend(samples.to_be_bytes());
        bx(b"traf", &[bx(b"tfhd", &tfhd), bx(b"tfdt", &tfdt_body), bx(b"trun", &trun)].concat())
    }

    #[test]
    fn finds_the_video_track_and_counts_its_samples() {
        let init = [bx(b"ftyp", b"iso6"), bx(b"moov", &[trak(1, b"soun", 48000), trak(2, b"vide", 90000)].concat())].concat();
        assert_eq!(video_track(&init), Some(TrackMeta { id: 2, handler: *b"vide", timescale: 90000 }));
        assert_eq!(tracks(&init).len(), 2);
        let part = [
            bx(b"moof", &[traf(1, 5, 16), traf(2, 9000, 10)].concat()),
            bx(b"mdat", &[0u8; 32]),
            bx(b"moof", &traf(2, 12000, 3)),
            bx(b"mdat", &[0u8; 4]),
        ]
        .concat();
        assert_eq!(fragment_info(&part, 2), FragmentInfo { samples: 13, first_decode_time: Some(9000) });
        assert_eq!(fragment_info(&part, 1).samples, 16);
        assert_eq!(fragment_info(&part, 7), FragmentInfo::default());
        assert!(boxes(&[0, 0, 0, 200, b'm', b'o', b'o', b'f']).is_empty(), "a truncated box is not read");
    }
}
