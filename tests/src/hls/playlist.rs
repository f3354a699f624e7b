//! A player's reading of an LL-HLS media playlist: segments, parts (also those of the segment
//! in progress), the preload hint, the init segment. m3u8-rs 6 has no LL-HLS types, so this
//! reads the lines itself; the tests check it against m3u8-rs for what both understand.

use anyhow::{bail, Context, Result};

/// One `EXT-X-PART`.
#[derive(Debug, Clone, PartialEq)]
pub struct PartEntry {
    /// Media sequence number of the segment it belongs to.
    pub msn: u64,
    /// Its index within that segment.
    pub index: u32,
    pub uri: String,
    pub duration: f64,
    pub independent: bool,
}

impl PartEntry {
    pub fn id(&self) -> PartId {
        PartId { msn: self.msn, index: self.index }
    }
}

/// (segment, part) — ordered as in the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PartId {
    pub msn: u64,
    pub index: u32,
}

impl PartId {
    /// The (segment, part) a URI names in hls-out's scheme, `part-{msn}.{part}.m4s`.
    pub fn from_uri(uri: &str) -> Option<PartId> {
        let name = uri.rsplit('/').next()?.split('?').next()?;
        let (msn, index) = name.strip_prefix("part-")?.strip_suffix(".m4s")?.split_once('.')?;
        Some(PartId { msn: msn.parse().ok()?, index: index.parse().ok()? })
    }
}

impl std::fmt::Display for PartId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.msn, self.index)
    }
}

/// A complete segment (`EXTINF` + URI).
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentEntry {
    pub msn: u64,
    pub uri: String,
    pub duration: f64,
    pub discontinuity: bool,
    /// The `EXT-X-MAP` URI in effect for it.
    pub map_uri: Option<String>,
    /// Its parts, when the playlist still lists them.
    pub parts: Vec<PartEntry>,
}

/// `EXT-X-PRELOAD-HINT:TYPE=PART`: the part the server will publish next.
#[derive(Debug, Clone, PartialEq)]
pub struct PreloadHint {
    /// From the URI when it follows hls-out's naming (the server may hint the next
    /// segment's first part while the current one is still open); otherwise the next
    /// position in the segment in progress.
    pub part: PartId,
    pub uri: String,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct LivePlaylist {
    pub media_sequence: u64,
    pub target_duration: f64,
    pub part_target: Option<f64>,
    pub part_hold_back: Option<f64>,
    pub can_block_reload: bool,
    pub segments: Vec<SegmentEntry>,
    /// MSN of the segment in progress and its parts so far.
    pub partial_msn: u64,
    pub partial_parts: Vec<PartEntry>,
    /// `EXT-X-MAP` in effect for the segment in progress.
    pub partial_map_uri: Option<String>,
    /// A discontinuity comes before the segment in progress.
    pub partial_discontinuity: bool,
    pub preload_hint: Option<PreloadHint>,
    pub ended: bool,
}

impl LivePlaylist {
    /// Every listed part, in stream order (complete segments first, then the one in progress).
    pub fn parts(&self) -> impl Iterator<Item = &PartEntry> {
        self.segments.iter().flat_map(|s| s.parts.iter()).chain(self.partial_parts.iter())
    }

    pub fn last_part(&self) -> Option<&PartEntry> {
        self.parts().last()
    }

    /// The newest part that starts with a keyframe: where a low-latency player starts.
    pub fn last_independent_part(&self) -> Option<&PartEntry> {
        self.parts().filter(|p| p.independent).last()
    }

    /// True when segment `msn` is complete in this playlist.
    pub fn segment_complete(&self, msn: u64) -> bool {
        self.segments.iter().any(|s| s.msn == msn) || msn < self.media_sequence
    }

    /// The part that follows `id` in the stream, as far as this playlist knows: the next
    /// index in the same segment, or the first part of the next one if `id`'s segment is
    /// complete and `id` was its last part.
    pub fn successor(&self, id: PartId) -> PartId {
        let seg = self.segments.iter().find(|s| s.msn == id.msn);
        match seg {
            Some(s) if s.parts.iter().all(|p| p.index <= id.index) => PartId { msn: id.msn + 1, index: 0 },
            _ => PartId { msn: id.msn, index: id.index + 1 },
        }
    }

    /// The init segment URI for the segment `msn`.
    pub fn map_uri_for(&self, msn: u64) -> Option<&str> {
        if msn >= self.partial_msn {
            return self.partial_map_uri.as_deref();
        }
        self.segments.iter().find(|s| s.msn == msn).and_then(|s| s.map_uri.as_deref())
    }

    /// A discontinuity comes right before segment `msn`.
    pub fn discontinuity_before(&self, msn: u64) -> bool {
        if msn == self.partial_msn {
            return self.partial_discontinuity;
        }
        self.segments.iter().any(|s| s.msn == msn && s.discontinuity)
    }
}

/// `KEY=VALUE,KEY="quoted, value"` → pairs (quotes removed).
pub fn attributes(list: &str) -> Vec<(String, String)> {
    let mut out = vec![];
    let mut rest = list.trim();
    while !rest.is_empty() {
        let Some(eq) = rest.find('=') else { break };
        let key = rest[..eq].trim().to_owned();
        rest = &rest[eq + 1..];
        let value;
        if let Some(stripped) = rest.strip_prefix('"') {
            let end = stripped.find('"').unwrap_or(stripped.len());
            value = stripped[..end].to_owned();
            rest = stripped.get(end + 1..).unwrap_or("");
            rest = rest.trim_start_matches(',');
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            value = rest[..end].trim().to_owned();
            rest = rest.get(end + 1..).unwrap_or("");
        }
        out.push((key, value));
        rest = rest.trim_start();
    }
    out
}

fn attr<'a>(attrs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    attrs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// Parses a media playlist as a low-latency player reads it.
pub fn parse(text: &str) -> Result<LivePlaylist> {
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    if lines.next() != Some("#EXTM3U") {
        bail!("not a playlist (no #EXTM3U): {}", text.chars().take(120).collect::<String>());
    }
    let mut pl = LivePlaylist::default();
    let mut msn: Option<u64> = None;
    let mut parts: Vec<PartEntry> = vec![];
    let mut extinf: Option<f64> = None;
    let mut discontinuity = false;
    let mut map: Option<String> = None;
    for line in lines {
        let cur = msn.unwrap_or(0);
        if let Some(v) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
            let n = v.trim().parse().context("EXT-X-MEDIA-SEQUENCE")?;
            pl.media_sequence = n;
            msn = Some(n);
        } else if let Some(v) = line.strip_prefix("#EXT-X-TARGETDURATION:") {
            pl.target_duration = v.trim().parse().context("EXT-X-TARGETDURATION")?;
        } else if let Some(v) = line.strip_prefix("#EXT-X-PART-INF:") {
            pl.part_target = attr(&attributes(v), "PART-TARGET").and_then(|t| t.parse().ok());
        } else if let Some(v) = line.strip_prefix("#EXT-X-SERVER-CONTROL:") {
            let a = attributes(v);
            pl.can_block_reload = attr(&a, "CAN-BLOCK-RELOAD") == Some("YES");
            pl.part_hold_back = attr(&a, "PART-HOLD-BACK").and_then(|t| t.parse().ok());
        } else if let Some(v) = line.strip_prefix("#EXT-X-SKIP:") {
            let n: u64 = attr(&attributes(v), "SKIPPED-SEGMENTS").context("EXT-X-SKIP without SKIPPED-SEGMENTS")?.parse()?;
            msn = Some(cur + n);
        } else if let Some(v) = line.strip_prefix("#EXT-X-MAP:") {
            map = attr(&attributes(v), "URI").map(str::to_owned);
        } else if line == "#EXT-X-DISCONTINUITY" {
            discontinuity = true;
        } else if let Some(v) = line.strip_prefix("#EXTINF:") {
            extinf = Some(v.split(',').next().unwrap_or("").trim().parse().context("EXTINF")?);
        } else if let Some(v) = line.strip_prefix("#EXT-X-PART:") {
            let a = attributes(v);
            parts.push(PartEntry {
                msn: cur,
                index: parts.len() as u32,
                uri: attr(&a, "URI").context("EXT-X-PART without URI")?.to_owned(),
                duration: attr(&a, "DURATION").context("EXT-X-PART without DURATION")?.parse()?,
                independent: attr(&a, "INDEPENDENT") == Some("YES"),
            });
        } else if let Some(v) = line.strip_prefix("#EXT-X-PRELOAD-HINT:") {
            let a = attributes(v);
            if attr(&a, "TYPE") == Some("PART") {
                let uri = attr(&a, "URI").context("EXT-X-PRELOAD-HINT without URI")?.to_owned();
                pl.preload_hint =
                    Some(PreloadHint { part: PartId::from_uri(&uri).unwrap_or(PartId { msn: cur, index: parts.len() as u32 }), uri });
            }
        } else if line == "#EXT-X-ENDLIST" {
            pl.ended = true;
        } else if !line.starts_with('#') {
            pl.segments.push(SegmentEntry {
                msn: cur,
                uri: line.to_owned(),
                duration: extinf.take().context("a segment URI without EXTINF")?,
                discontinuity: std::mem::take(&mut discontinuity),
                map_uri: map.clone(),
                parts: std::mem::take(&mut parts),
            });
            msn = Some(cur + 1);
        }
    }
    pl.partial_msn = msn.unwrap_or(0);
    pl.partial_parts = parts;
    pl.partial_map_uri = map;
    pl.partial_discontinuity = discontinuity;
    Ok(pl)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIVE: &str = "#EXTM3U
#EXT-X-VERSION:9
#EXT-X-TARGETDURATION:1
#EXT-X-PART-INF:PART-TARGET=0.33334
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.00002,CAN-SKIP-UNTIL=6
#EXT-X-MEDIA-SEQUENCE:17952609230
#EXT-X-MAP:URI=\"init-17952609230.mp4\"
#EXT-X-PROGRAM-DATE-TIME:2026-11-21T12:00:00.000Z
#EXT-X-PART:DURATION=0.33333,URI=\"part-17952609230.0.m4s\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.33333,URI=\"part-17952609230.1.m4s\"
#EXT-X-PART:DURATION=0.33334,URI=\"part-17952609230.2.m4s\"
#EXTINF:1.00000,
seg-17952609230.m4s
#EXT-X-DISCONTINUITY
#EXT-X-PART:DURATION=0.33333,URI=\"part-17952609231.0.m4s\",INDEPENDENT=YES
#EXTINF:0.33333,
seg-17952609231.m4s
#EXT-X-PART:DURATION=0.33333,URI=\"part-17952609232.0.m4s\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.33333,URI=\"part-17952609232.1.m4s\"
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part-17952609232.2.m4s\"
";

    #[test]
    fn reads_segments_parts_and_the_hint() {
        let pl = parse(LIVE).unwrap();
        assert_eq!(pl.media_sequence, 17952609230);
        assert_eq!(pl.part_target, Some(0.33334));
        assert_eq!(pl.part_hold_back, Some(1.00002));
        assert!(pl.can_block_reload);
        assert_eq!(pl.segments.len(), 2);
        assert_eq!(pl.segments[0].parts.len(), 3);
        assert!(pl.segments[1].discontinuity && !pl.segments[0].discontinuity);
        assert_eq!(pl.partial_msn, 17952609232);
        assert_eq!(pl.partial_parts.len(), 2);
        assert_eq!(pl.parts().count(), 6);
        let hint = pl.preload_hint.clone().unwrap();
        assert_eq!(hint.part, PartId { msn: 17952609232, index: 2 });
        assert_eq!(hint.uri, "part-17952609232.2.m4s");
        assert_eq!(pl.last_independent_part().unwrap().uri, "part-17952609232.0.m4s");
        assert_eq!(pl.map_uri_for(17952609231), Some("init-17952609230.mp4"));
        assert_eq!(pl.map_uri_for(17952609232), Some("init-17952609230.mp4"));
        // The last part of a complete segment is followed by the next segment's first.
        assert_eq!(pl.successor(PartId { msn: 17952609230, index: 2 }), PartId { msn: 17952609231, index: 0 });
        assert_eq!(pl.successor(PartId { msn: 17952609230, index: 1 }), PartId { msn: 17952609230, index: 2 });
        assert_eq!(pl.successor(PartId { msn: 17952609232, index: 1 }), PartId { msn: 17952609232, index: 2 });
        assert!(pl.discontinuity_before(17952609231));
    }

    #[test]
    fn agrees_with_m3u8_rs_on_segments() {
        // m3u8-rs does not know the trailing LL-HLS lines; drop them for the comparison.
        let classic: String = LIVE.lines().filter(|l| !l.starts_with("#EXT-X-PRELOAD-HINT")).map(|l| format!("{l}\n")).collect();
        let theirs = m3u8_rs::parse_media_playlist_res(classic.as_bytes()).unwrap();
        let ours = parse(LIVE).unwrap();
        assert_eq!(theirs.media_sequence, ours.media_sequence);
        assert_eq!(theirs.segments.len(), ours.segments.len());
        for (t, o) in theirs.segments.iter().zip(&ours.segments) {
            assert_eq!(t.uri, o.uri);
            assert!((f64::from(t.duration) - o.duration).abs() < 1e-4);
            assert_eq!(t.discontinuity, o.discontinuity);
        }
    }

    #[test]
    fn a_hint_may_name_the_next_segment() {
        let text = "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:7\n#EXT-X-PART:DURATION=0.333,URI=\"part-7.0.m4s\",INDEPENDENT=YES\n#EXT-X-PART:DURATION=0.333,URI=\"part-7.1.m4s\"\n#EXT-X-PART:DURATION=0.333,URI=\"part-7.2.m4s\"\n#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part-8.0.m4s\"\n";
        let pl = parse(text).unwrap();
        assert_eq!(pl.preload_hint.unwrap().part, PartId { msn: 8, index: 0 });
        let other = parse(&text.replace("part-8.0.m4s", "next.mp4")).unwrap();
        assert_eq!(other.preload_hint.unwrap().part, PartId { msn: 7, index: 3 }, "positional without hls-out's naming");
        assert_eq!(PartId::from_uri("/hls/r/part-12.3.m4s"), Some(PartId { msn: 12, index: 3 }));
        assert_eq!(PartId::from_uri("seg-12.m4s"), None);
    }

    #[test]
    fn delta_update_skips_segments() {
        let text = "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:100\n#EXT-X-SKIP:SKIPPED-SEGMENTS=3\n#EXTINF:1.0,\nseg-103.m4s\n#EXT-X-PART:DURATION=0.3,URI=\"part-104.0.m4s\",INDEPENDENT=YES\n";
        let pl = parse(text).unwrap();
        assert_eq!(pl.segments[0].msn, 103);
        assert_eq!(pl.partial_msn, 104);
        assert_eq!(pl.partial_parts[0].id(), PartId { msn: 104, index: 0 });
        assert!(pl.segment_complete(99));
    }

    #[test]
    fn attribute_lists_with_quotes_and_commas() {
        let a = attributes("TYPE=PART,URI=\"a,b.m4s\",BYTERANGE-START=10");
        assert_eq!(a, vec![("TYPE".into(), "PART".into()), ("URI".into(), "a,b.m4s".into()), ("BYTERANGE-START".into(), "10".into())]);
        assert!(parse("hello").is_err());
    }
}
