//! The media playlist as text, from a plain [`PlaylistState`] (pure: no clock, no I/O).
//!
//! m3u8-rs 6 writes the header it knows, the complete segments (EXTINF, EXT-X-MAP,
//! EXT-X-DISCONTINUITY, EXT-X-PROGRAM-DATE-TIME, and the EXT-X-PART lines as segment-level
//! unknown tags) and EXT-X-ENDLIST. It has no LL-HLS types and never writes playlist-level
//! unknown tags, so this module adds, with a small renderer of its own:
//! EXT-X-PART-INF and EXT-X-SERVER-CONTROL after the header, EXT-X-SKIP for delta updates,
//! and after the last complete segment the segment in progress (its tags and parts) and the
//! EXT-X-PRELOAD-HINT for the next part.
//!
//! Rules kept here (so every caller gets them):
//! - EXT-X-VERSION 9 (needed for EXT-X-SKIP); classic players ignore the part tags.
//! - PART-HOLD-BACK = 3 × part target; CAN-SKIP-UNTIL = 6 × target duration.
//! - Part lines only for segments ending less than 3 target durations before the end of the
//!   playlist (RFC 8216bis 4.4.4.9), always for the segment in progress.
//! - EXT-X-MAP before the first segment written and wherever the init segment changes.
//! - Durations are written in milliseconds precision; a part's DURATION is compared to
//!   PART-TARGET as written.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use m3u8_rs::{ExtTag, Map, MediaPlaylist, MediaSegment};

/// EXT-X-VERSION written. 9 is the first with EXT-X-SKIP / CAN-SKIP-UNTIL.
pub const HLS_VERSION: usize = 9;

/// Part lines are kept for segments ending less than this many target durations before the
/// end of the playlist.
pub const PART_LINES_TARGET_DURATIONS: u32 = 3;

/// The playlist as plain data: what a packager knows at one instant.
#[derive(Debug, Clone, PartialEq)]
pub struct PlaylistState {
    /// EXT-X-TARGETDURATION, whole seconds.
    pub target_duration: u64,
    /// EXT-X-PART-INF PART-TARGET.
    pub part_target: Duration,
    /// MSN of the first segment in `segments`.
    pub media_sequence: u64,
    /// Discontinuity sequence number of the first segment in `segments`.
    pub discontinuity_sequence: u64,
    /// Complete segments, oldest first, with consecutive MSNs from `media_sequence`.
    pub segments: Vec<SegmentEntry>,
    /// The segment in progress (some of its parts published), if any.
    pub partial: Option<PartialSegment>,
    /// URI of the next part, for EXT-X-PRELOAD-HINT (not written once `ended`).
    pub preload_hint: Option<String>,
    /// EXT-X-ENDLIST.
    pub ended: bool,
}

/// A complete segment.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentEntry {
    pub uri: String,
    pub duration: Duration,
    /// EXT-X-DISCONTINUITY before it.
    pub discontinuity: bool,
    /// URI of its init segment (EXT-X-MAP written when it changes).
    pub init_uri: String,
    pub program_date_time: Option<SystemTime>,
    /// Its parts; written only while the segment is near the end of the playlist.
    pub parts: Vec<PartEntry>,
}

/// The segment in progress: no URI or EXTINF yet, only parts.
#[derive(Debug, Clone, PartialEq)]
pub struct PartialSegment {
    pub discontinuity: bool,
    pub init_uri: String,
    pub program_date_time: Option<SystemTime>,
    pub parts: Vec<PartEntry>,
}

/// One EXT-X-PART.
#[derive(Debug, Clone, PartialEq)]
pub struct PartEntry {
    pub uri: String,
    pub duration: Duration,
    pub independent: bool,
}

/// Full playlist or a delta update (`_HLS_skip=YES`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    Full,
    Delta,
}

/// Rounds to whole milliseconds (the precision everything is written with).
pub fn millis(d: Duration) -> u64 {
    ((d.as_nanos() + 500_000) / 1_000_000) as u64
}

/// Seconds with three decimals, e.g. `0.333`, `6.000`.
pub fn format_secs(d: Duration) -> String {
    let ms = millis(d);
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

/// Whole seconds, rounded up (after rounding to milliseconds): EXT-X-TARGETDURATION of a
/// segment of this duration.
pub fn ceil_secs(d: Duration) -> u64 {
    millis(d).div_ceil(1000)
}

fn pdt(t: SystemTime) -> chrono::DateTime<chrono::FixedOffset> {
    chrono::DateTime::<chrono::Utc>::from(t).into()
}

fn part_attributes(p: &PartEntry) -> String {
    let mut s = format!("DURATION={},URI=\"{}\"", format_secs(p.duration), p.uri);
    if p.independent {
        s.push_str(",INDEPENDENT=YES");
    }
    s
}

impl PlaylistState {
    pub fn part_hold_back(&self) -> Duration {
        self.part_target * 3
    }

    pub fn can_skip_until(&self) -> Duration {
        Duration::from_secs(6 * self.target_duration)
    }

    fn partial_duration(&self) -> Duration {
        self.partial.as_ref().map_or(Duration::ZERO, |p| p.parts.iter().map(|p| p.duration).sum())
    }

    /// For each complete segment, how far its end is from the end of the playlist
    /// (which includes the parts of the segment in progress).
    fn distances_to_end(&self) -> Vec<Duration> {
        let mut out = vec![Duration::ZERO; self.segments.len()];
        let mut acc = self.partial_duration();
        for (i, s) in self.segments.iter().enumerate().rev() {
            out[i] = acc;
            acc += s.duration;
        }
        out
    }

    /// How many leading segments a delta update replaces with EXT-X-SKIP: those that end at
    /// least CAN-SKIP-UNTIL before the end of the playlist. The last segment is never skipped,
    /// and neither is a segment after EXT-X-DISCONTINUITY (nor anything after it), so the
    /// delta's EXT-X-DISCONTINUITY-SEQUENCE and DISCONTINUITY tags number the remaining
    /// segments exactly as the full playlist does.
    pub fn skippable_segments(&self) -> usize {
        let until = self.can_skip_until();
        let n = self.distances_to_end().iter().zip(&self.segments).take_while(|(d, s)| **d >= until && !s.discontinuity).count();
        n.min(self.segments.len().saturating_sub(1))
    }

    /// Whether a complete segment still gets its part lines.
    fn part_lines_from(&self) -> usize {
        let window = Duration::from_secs(self.target_duration) * PART_LINES_TARGET_DURATIONS;
        self.distances_to_end().iter().take_while(|d| **d >= window).count()
    }
}

/// Writes the playlist. Delta updates skip [`PlaylistState::skippable_segments`] segments
/// (none to skip: the full playlist).
pub fn render(state: &PlaylistState, delivery: Delivery) -> String {
    let skipped = match delivery {
        Delivery::Full => 0,
        Delivery::Delta => state.skippable_segments(),
    };
    let parts_from = state.part_lines_from();
    let ended_here = state.ended && state.partial.is_none();

    let mut segments = Vec::with_capacity(state.segments.len() - skipped);
    let mut last_init: Option<&str> = None;
    for (i, s) in state.segments.iter().enumerate().skip(skipped) {
        let map = (last_init != Some(s.init_uri.as_str())).then(|| Map { uri: s.init_uri.clone(), ..Default::default() });
        last_init = Some(&s.init_uri);
        let unknown_tags = if i >= parts_from {
            s.parts.iter().map(|p| ExtTag { tag: "X-PART".into(), rest: Some(part_attributes(p)) }).collect()
        } else {
            Vec::new()
        };
        segments.push(MediaSegment {
            uri: s.uri.clone(),
            duration: millis(s.duration) as f32 / 1000.0,
            discontinuity: s.discontinuity,
            map,
            program_date_time: s.program_date_time.map(pdt),
            unknown_tags,
            ..Default::default()
        });
    }

    let mut playlist = MediaPlaylist {
        version: Some(HLS_VERSION),
        target_duration: state.target_duration,
        media_sequence: state.media_sequence,
        discontinuity_sequence: state.discontinuity_sequence,
        ..Default::default()
    };
    // The header exactly as m3u8-rs writes it, so our header lines can follow it.
    let header = write_m3u8(&playlist);
    playlist.segments = segments;
    playlist.end_list = ended_here;
    let body = write_m3u8(&playlist);
    debug_assert!(body.starts_with(&header));
    let rest = body.strip_prefix(header.as_str()).unwrap_or(&body[header.len().min(body.len())..]);

    let mut out = String::with_capacity(body.len() + 512);
    out.push_str(&header);
    let _ = writeln!(out, "#EXT-X-PART-INF:PART-TARGET={}", format_secs(state.part_target));
    let _ = writeln!(
        out,
        "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={},CAN-SKIP-UNTIL={}",
        format_secs(state.part_hold_back()),
        format_secs(state.can_skip_until()),
    );
    if skipped > 0 {
        let _ = writeln!(out, "#EXT-X-SKIP:SKIPPED-SEGMENTS={skipped}");
    }
    out.push_str(rest);

    if let Some(p) = &state.partial {
        // Same tag order m3u8-rs uses for complete segments.
        if last_init != Some(p.init_uri.as_str()) {
            let _ = writeln!(out, "#EXT-X-MAP:URI=\"{}\"", p.init_uri);
        }
        if p.discontinuity {
            out.push_str("#EXT-X-DISCONTINUITY\n");
        }
        if let Some(t) = p.program_date_time {
            let _ = writeln!(out, "#EXT-X-PROGRAM-DATE-TIME:{}", pdt(t).to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
        }
        for part in &p.parts {
            let _ = writeln!(out, "#EXT-X-PART:{}", part_attributes(part));
        }
    }
    if state.ended {
        if !ended_here {
            out.push_str("#EXT-X-ENDLIST\n");
        }
    } else if let Some(uri) = &state.preload_hint {
        let _ = writeln!(out, "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{uri}\"");
    }
    out
}

fn write_m3u8(p: &MediaPlaylist) -> String {
    let mut buf = Vec::with_capacity(1024);
    p.write_to(&mut buf).expect("writing to a Vec cannot fail");
    String::from_utf8(buf).expect("m3u8-rs writes UTF-8")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::uri;

    const T0: u64 = 1_700_000_000;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn parts(msn: u64, durations: &[u64]) -> Vec<PartEntry> {
        durations
            .iter()
            .enumerate()
            .map(|(i, d)| PartEntry { uri: uri::part(msn, i as u64), duration: ms(*d), independent: i == 0 })
            .collect()
    }

    /// `n` complete 1 s segments of three parts from `first`, then a partial one of `k` parts.
    pub(crate) fn state(first: u64, n: u64, k: usize) -> PlaylistState {
        let segments = (first..first + n)
            .map(|msn| SegmentEntry {
                uri: uri::segment(msn),
                duration: ms(1000),
                discontinuity: false,
                init_uri: uri::init(first),
                program_date_time: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(T0 + msn)),
                parts: parts(msn, &[333, 333, 334]),
            })
            .collect();
        let partial = (k > 0).then(|| PartialSegment {
            discontinuity: false,
            init_uri: uri::init(first),
            program_date_time: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(T0 + first + n)),
            parts: parts(first + n, &vec![333; k]),
        });
        PlaylistState {
            target_duration: 1,
            part_target: ms(334),
            media_sequence: first,
            discontinuity_sequence: 0,
            segments,
            partial,
            preload_hint: Some(uri::part(first + n, k as u64)),
            ended: false,
        }
    }

    fn parse(text: &str) -> m3u8_rs::MediaPlaylist {
        let pl =
            m3u8_rs::parse_media_playlist_res(text.as_bytes()).unwrap_or_else(|e| panic!("m3u8-rs refuses the playlist: {e:?}\n{text}"));
        // m3u8-rs stops quietly at a line it cannot parse: make sure it read every segment.
        let uris = text.lines().filter(|l| !l.is_empty() && !l.starts_with('#')).count();
        assert_eq!(pl.segments.len(), uris, "m3u8-rs did not read every segment:\n{text}");
        pl
    }

    /// `KEY=value` from an attribute list line.
    pub(crate) fn attr<'a>(line: &'a str, key: &str) -> Option<&'a str> {
        let list = line.split_once(':')?.1;
        list.split(',').find_map(|kv| kv.strip_prefix(key)?.strip_prefix('=')).map(|v| v.trim_matches('"'))
    }

    /// Checks what every playlist must satisfy; returns the parsed playlist.
    pub(crate) fn check_invariants(text: &str) -> m3u8_rs::MediaPlaylist {
        let pl = parse(text);
        assert!(pl.version.unwrap() >= 9, "{text}");
        let part_target = text
            .lines()
            .find_map(|l| l.strip_prefix("#EXT-X-PART-INF:"))
            .map(|l| attr(&format!("X:{l}"), "PART-TARGET").unwrap().parse::<f64>().unwrap());
        let part_target = part_target.expect("EXT-X-PART-INF");
        let sc = text.lines().find(|l| l.starts_with("#EXT-X-SERVER-CONTROL:")).expect("server control");
        assert_eq!(attr(sc, "CAN-BLOCK-RELOAD"), Some("YES"));
        let hold: f64 = attr(sc, "PART-HOLD-BACK").unwrap().parse().unwrap();
        assert!(hold >= 3.0 * part_target - 1e-9, "{sc}");
        let skip: f64 = attr(sc, "CAN-SKIP-UNTIL").unwrap().parse().unwrap();
        assert!(skip >= 6.0 * pl.target_duration as f64, "{sc}");
        for l in text.lines().filter(|l| l.starts_with("#EXT-X-PART:")) {
            let d: f64 = attr(l, "DURATION").unwrap().parse().unwrap();
            assert!(d > 0.0 && d <= part_target, "{l} vs PART-TARGET {part_target}");
        }
        for s in &pl.segments {
            assert!(s.duration.ceil() as u64 <= pl.target_duration, "{} > target {}", s.duration, pl.target_duration);
        }
        assert_eq!(text.matches("#EXT-X-PART-INF").count(), 1);
        let hints = text.matches("#EXT-X-PRELOAD-HINT").count();
        assert!(hints <= usize::from(!pl.end_list), "{text}");
        // MSNs follow from the header
        for (i, s) in pl.segments.iter().enumerate() {
            let skipped =
                text.lines().find_map(|l| l.strip_prefix("#EXT-X-SKIP:SKIPPED-SEGMENTS=")).map_or(0, |n| n.parse::<u64>().unwrap());
            assert_eq!(s.uri, uri::segment(pl.media_sequence + skipped + i as u64));
        }
        pl
    }

    #[test]
    fn full_playlist_parses_with_m3u8_rs() {
        let st = state(100, 5, 2);
        let text = render(&st, Delivery::Full);
        let pl = check_invariants(&text);
        assert_eq!(pl.media_sequence, 100);
        assert_eq!(pl.target_duration, 1);
        assert_eq!(pl.segments.len(), 5);
        assert!(!pl.end_list);
        assert_eq!(pl.segments[0].map.as_ref().unwrap().uri, "init-100.mp4");
        assert!(pl.segments[1..].iter().all(|s| s.map.is_none()));
        assert_eq!(pl.segments[0].program_date_time.unwrap().to_rfc3339(), "2023-11-14T22:15:00+00:00", "PDT of msn 100 = T0 + 100 s");
        assert!(pl.segments.iter().all(|s| s.program_date_time.is_some()));
        assert!(pl.segments.iter().all(|s| (s.duration - 1.0).abs() < 1e-6));
        let head: Vec<&str> = text.lines().take(6).collect();
        assert_eq!(
            head,
            [
                "#EXTM3U",
                "#EXT-X-VERSION:9",
                "#EXT-X-TARGETDURATION:1",
                "#EXT-X-MEDIA-SEQUENCE:100",
                "#EXT-X-PART-INF:PART-TARGET=0.334",
                "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.002,CAN-SKIP-UNTIL=6.000",
            ]
        );
    }

    #[test]
    fn segment_in_progress_and_preload_hint_come_last() {
        let text = render(&state(0, 3, 2), Delivery::Full);
        check_invariants(&text);
        let tail: Vec<&str> = text.lines().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect();
        assert_eq!(
            tail,
            [
                "#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:23.000Z",
                "#EXT-X-PART:DURATION=0.333,URI=\"part-3.0.m4s\",INDEPENDENT=YES",
                "#EXT-X-PART:DURATION=0.333,URI=\"part-3.1.m4s\"",
                "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part-3.2.m4s\"",
            ]
        );
        // media sequence 0 is the default: m3u8-rs leaves the tag out
        assert!(!text.contains("MEDIA-SEQUENCE"));
    }

    #[test]
    fn independent_parts_are_marked() {
        let text = render(&state(0, 2, 3), Delivery::Full);
        for l in text.lines().filter(|l| l.starts_with("#EXT-X-PART:")) {
            let first = attr(l, "URI").unwrap().ends_with(".0.m4s");
            assert_eq!(l.ends_with(",INDEPENDENT=YES"), first, "{l}");
        }
        assert_eq!(text.matches("INDEPENDENT=YES").count(), 3);
    }

    #[test]
    fn part_durations_never_exceed_part_target() {
        // a 0.3335 s part is written as 0.334 = PART-TARGET, not above it
        let mut st = state(0, 2, 1);
        st.partial.as_mut().unwrap().parts[0].duration = Duration::from_micros(333_500);
        let text = render(&st, Delivery::Full);
        check_invariants(&text);
        assert!(text.contains("DURATION=0.334,URI=\"part-2.0.m4s\""));
    }

    #[test]
    fn old_segments_lose_their_part_lines() {
        let st = state(10, 8, 1);
        let text = render(&st, Delivery::Full);
        check_invariants(&text);
        // 3 target durations: segments ending within 3 s of the end keep parts: 15 (ends 2.333
        // before), 16, 17; 14 ends 3.333 s before the end.
        for msn in 10..=14 {
            assert!(!text.contains(&format!("part-{msn}.")), "segment {msn} still has part lines");
        }
        for msn in 15..=18 {
            assert!(text.contains(&format!("part-{msn}.0.m4s")), "segment {msn} lost its parts");
        }
    }

    #[test]
    fn delta_update_skips_segments_older_than_can_skip_until() {
        let st = state(50, 10, 1);
        assert_eq!(st.skippable_segments(), 4, "segments ending >= 6 s before the end: 50..=53");
        let full = render(&st, Delivery::Full);
        let delta = render(&st, Delivery::Delta);
        let pl = check_invariants(&delta);
        assert!(delta.contains("#EXT-X-SKIP:SKIPPED-SEGMENTS=4\n"));
        assert!(!full.contains("EXT-X-SKIP"));
        assert_eq!(pl.media_sequence, 50, "the header still names the first segment");
        assert_eq!(pl.segments.len(), 6);
        assert_eq!(pl.segments[0].uri, "seg-54.m4s");
        assert_eq!(pl.segments[0].map.as_ref().unwrap().uri, "init-50.mp4", "EXT-X-MAP repeated");
        // the SKIP line sits between the header and the first segment
        let skip_at = delta.find("#EXT-X-SKIP").unwrap();
        assert!(skip_at > delta.find("#EXT-X-SERVER-CONTROL").unwrap());
        assert!(skip_at < delta.find("seg-54.m4s").unwrap());
        // the rest is the same as the full playlist from segment 54 on
        let tail = |t: &str| t[t.find("#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:14:14").unwrap()..].to_owned();
        assert_eq!(tail(&full), tail(&delta));
    }

    #[test]
    fn delta_update_never_skips_a_discontinuity() {
        let mut st = state(50, 10, 1);
        st.segments[2].discontinuity = true;
        assert_eq!(st.skippable_segments(), 2);
        let delta = render(&st, Delivery::Delta);
        let pl = check_invariants(&delta);
        assert!(delta.contains("#EXT-X-SKIP:SKIPPED-SEGMENTS=2\n"));
        assert!(pl.segments[0].discontinuity, "the discontinuity is still in the delta");
        st.segments[0].discontinuity = true;
        assert_eq!(st.skippable_segments(), 0);
        assert_eq!(render(&st, Delivery::Delta), render(&st, Delivery::Full));
    }

    #[test]
    fn nothing_to_skip_gives_the_full_playlist() {
        let st = state(0, 4, 1);
        assert_eq!(st.skippable_segments(), 0);
        assert_eq!(render(&st, Delivery::Delta), render(&st, Delivery::Full));
    }

    #[test]
    fn discontinuity_and_new_init() {
        let mut st = state(0, 4, 0);
        st.discontinuity_sequence = 2;
        st.segments[2].discontinuity = true;
        st.segments[2].init_uri = uri::init(2);
        st.segments[3].init_uri = uri::init(2);
        st.partial = Some(PartialSegment { discontinuity: true, init_uri: uri::init(4), program_date_time: None, parts: parts(4, &[300]) });
        let text = render(&st, Delivery::Full);
        let pl = check_invariants(&text);
        assert_eq!(pl.discontinuity_sequence, 2);
        assert!(pl.segments[2].discontinuity && pl.segments[2].map.as_ref().unwrap().uri == "init-2.mp4");
        assert!(pl.segments[3].map.is_none());
        assert!(text.contains("#EXT-X-MAP:URI=\"init-4.mp4\"\n#EXT-X-DISCONTINUITY\n#EXT-X-PART:DURATION=0.300"));
        assert_eq!(text.matches("#EXT-X-DISCONTINUITY\n").count(), 2);
    }

    #[test]
    fn ended_playlist_has_endlist_and_no_hint() {
        let mut st = state(7, 3, 0);
        st.ended = true;
        let text = render(&st, Delivery::Full);
        let pl = check_invariants(&text);
        assert!(pl.end_list);
        assert!(text.ends_with("#EXT-X-ENDLIST\n"));
        assert!(!text.contains("PRELOAD-HINT"));
        // a partial segment in an ended state is still written, before the ENDLIST
        let mut st = state(7, 3, 1);
        st.ended = true;
        let text = render(&st, Delivery::Full);
        check_invariants(&text);
        assert!(text.ends_with("INDEPENDENT=YES\n#EXT-X-ENDLIST\n"));
    }

    #[test]
    fn empty_playlist_is_still_valid() {
        let mut st = state(5, 0, 0);
        st.preload_hint = Some(uri::part(5, 0));
        let text = render(&st, Delivery::Full);
        let pl = check_invariants(&text);
        assert!(pl.segments.is_empty());
        assert!(text.ends_with("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part-5.0.m4s\"\n"));
    }

    #[test]
    fn duration_helpers() {
        assert_eq!(format_secs(ms(333)), "0.333");
        assert_eq!(format_secs(Duration::from_nanos(333_333_333)), "0.333");
        assert_eq!(format_secs(Duration::from_secs(6)), "6.000");
        assert_eq!(ceil_secs(ms(1000)), 1);
        assert_eq!(ceil_secs(Duration::from_nanos(1_000_000_400)), 1, "sub-ms jitter ignored");
        assert_eq!(ceil_secs(ms(1001)), 2);
        assert_eq!(ceil_secs(ms(1)), 1);
    }
}

/// The playlist with `query` (no leading `?`) appended to every URI it lists: segment lines
/// and the `URI="…"` attributes of EXT-X-MAP, EXT-X-PART, EXT-X-PRELOAD-HINT (and any other
/// tag with one). Pure text work on a playlist [`render`] wrote: our URIs are bare names
/// without a query of their own, so the query starts with `?`.
pub fn with_query(text: &str, query: &str) -> String {
    if query.is_empty() {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len() + text.lines().count() * (query.len() + 1));
    for line in text.split_inclusive('\n') {
        let (body, eol) = match line.strip_suffix('\n') {
            Some(b) => (b, "\n"),
            None => (line, ""),
        };
        if body.is_empty() {
            out.push_str(line);
        } else if !body.starts_with('#') {
            let sep = if body.contains('?') { '&' } else { '?' };
            let _ = write!(out, "{body}{sep}{query}{eol}");
        } else {
            let mut rest = body;
            while let Some(at) = rest.find("URI=\"") {
                let start = at + 5;
                let Some(len) = rest[start..].find('"') else { break };
                let uri = &rest[start..start + len];
                let sep = if uri.contains('?') { '&' } else { '?' };
                let _ = write!(out, "{}{uri}{sep}{query}", &rest[..start]);
                rest = &rest[start + len..];
            }
            out.push_str(rest);
            out.push_str(eol);
        }
    }
    out
}

#[cfg(test)]
mod query_tests {
    use super::*;
    use crate::playlist::tests::{check_invariants, state};

    const Q: &str = "exp=1800000300&sig=AbC-_x";

    #[test]
    fn every_uri_gets_the_query() {
        let mut st = state(100, 8, 2);
        st.segments[5].discontinuity = true;
        st.segments[5].init_uri = crate::uri::init(105);
        let text = render(&st, Delivery::Full);
        let signed = with_query(&text, Q);
        let pl = check_invariants_signed(&signed);
        assert_eq!(pl.segments.len(), 8);
        assert!(pl.segments.iter().all(|s| s.uri.ends_with(&format!(".m4s?{Q}"))));
        assert_eq!(pl.segments[0].map.as_ref().unwrap().uri, format!("init-100.mp4?{Q}"));
        assert_eq!(pl.segments[5].map.as_ref().unwrap().uri, format!("init-105.mp4?{Q}"));
        let uris: Vec<&str> = signed.lines().filter_map(|l| l.split_once("URI=\"").map(|(_, r)| r.split('"').next().unwrap())).collect();
        assert!(uris.len() > 8, "{signed}");
        assert!(uris.iter().all(|u| u.ends_with(Q)), "{uris:?}");
        assert!(signed.contains(&format!("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part-108.2.m4s?{Q}\"\n")));
        assert!(signed.contains(&format!("#EXT-X-PART:DURATION=0.333,URI=\"part-108.0.m4s?{Q}\",INDEPENDENT=YES\n")));
        // nothing but the URIs changed
        assert_eq!(signed.replace(&format!("?{Q}"), ""), text);
        assert_eq!(with_query(&text, ""), text);
    }

    #[test]
    fn delta_and_ended_playlists_too() {
        let st = state(50, 10, 1);
        let signed = with_query(&render(&st, Delivery::Delta), Q);
        assert!(signed.contains("#EXT-X-SKIP:SKIPPED-SEGMENTS=4\n"), "tags without URIs untouched");
        check_invariants_signed(&signed);
        let mut st = state(7, 3, 0);
        st.ended = true;
        let signed = with_query(&render(&st, Delivery::Full), Q);
        assert!(signed.ends_with(&format!("seg-9.m4s?{Q}\n#EXT-X-ENDLIST\n")), "{signed}");
    }

    /// The invariants, checked on the playlist with the query taken off again.
    fn check_invariants_signed(text: &str) -> m3u8_rs::MediaPlaylist {
        check_invariants(&text.replace(&format!("?{Q}"), ""));
        m3u8_rs::parse_media_playlist_res(text.as_bytes()).expect("parses")
    }
}
