//! The packager of one stream as a plain state machine: init segments, parts and segments in
//! memory (bounded by a sliding window), media sequence and discontinuity numbering, lookups,
//! and the readiness questions blocking requests ask. No clock (times are passed in), no I/O,
//! no locks: [`crate::store`] wraps it in a Mutex and a watch channel.

use std::collections::VecDeque;
use std::ops::Range;
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use serde::Serialize;

use crate::playlist::{self, Delivery, PartEntry, PartialSegment, PlaylistState, SegmentEntry};
use crate::uri;

/// How the stream is cut. `part_target` is advertised as PART-TARGET; `segment_target` is the
/// expected segment length (EXT-X-TARGETDURATION is its ceiling, raised if a longer segment
/// arrives); `window_segments` complete segments are kept (older ones are dropped, with their
/// bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackagerConfig {
    pub part_target: Duration,
    pub segment_target: Duration,
    pub window_segments: usize,
}

impl Default for PackagerConfig {
    fn default() -> Self {
        PackagerConfig { part_target: Duration::from_millis(334), segment_target: Duration::from_secs(1), window_segments: 10 }
    }
}

impl PackagerConfig {
    /// Clamped to something that works: part target 10 ms..=segment target, segment target
    /// 100 ms..=60 s, window 2..=1000 segments.
    pub fn sanitized(&self) -> PackagerConfig {
        let segment_target = self.segment_target.clamp(Duration::from_millis(100), Duration::from_secs(60));
        PackagerConfig {
            segment_target,
            part_target: self.part_target.clamp(Duration::from_millis(10), segment_target),
            window_segments: self.window_segments.clamp(2, 1000),
        }
    }
}

/// One CMAF chunk from the compositor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub data: Bytes,
    pub duration: Duration,
    /// Starts with a keyframe (EXT-X-PART INDEPENDENT=YES).
    pub independent: bool,
    /// First part of a segment: closes the previous segment.
    pub segment_start: bool,
}

/// What happened to a pushed part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    /// Published as part `index` of segment `msn`.
    Published {
        msn: u64,
        index: u64,
    },
    Dropped(DropReason),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DropReason {
    /// No init segment yet.
    NoInit,
    /// The stream was closed (EXT-X-ENDLIST written).
    Ended,
    /// Zero duration or no bytes.
    Empty,
    /// After a start, discontinuity or new init, playback has to start at an independent part.
    NotIndependent,
}

/// Answer to "can this be served?"
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup<T> {
    Ready(T),
    /// Not yet, but it is the next thing to be published (a preload hint or the segment in
    /// progress): worth waiting for.
    Pending,
    /// Not here and never will be (slid out of the window, never existed, or too far ahead).
    Missing,
}

/// Why a blocking playlist request is refused at once (400).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirectiveError {
    MsnTooFarAhead { requested: u64, limit: u64 },
    PartTooFarAhead { requested: u64, limit: u64 },
}

impl std::fmt::Display for DirectiveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DirectiveError::MsnTooFarAhead { requested, limit } => {
                write!(f, "_HLS_msn={requested} is more than two segments ahead of the playlist (at most {limit} now)")
            }
            DirectiveError::PartTooFarAhead { requested, limit } => {
                write!(f, "_HLS_part={requested} is too far ahead of the last published part (at most {limit} now)")
            }
        }
    }
}

/// Counters and positions of one stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StreamStats {
    /// MSN of the first segment in the playlist.
    pub media_sequence: u64,
    /// MSN of the last complete segment.
    pub last_msn: Option<u64>,
    /// Last published part: (msn, index).
    pub last_part: Option<(u64, u64)>,
    /// MSN the segment in progress has (or the next one will get).
    pub next_msn: u64,
    pub discontinuity_sequence: u64,
    pub init_version: Option<u64>,
    pub target_duration_secs: u64,
    pub segments_in_window: usize,
    pub segments_published: u64,
    pub parts_published: u64,
    pub parts_dropped: u64,
    /// Parts longer than PART-TARGET (published anyway; the compositor's chunking is off).
    pub parts_over_target: u64,
    /// Segments cut because they grew past 3 × segment target without a segment start.
    pub segments_forced: u64,
    /// Media and init bytes held.
    pub bytes_in_memory: usize,
    /// Requests currently waiting for something of this stream (filled in by the store).
    pub waiting_requests: usize,
    /// Distinct viewers now and the peak since the broadcast started (filled in by the
    /// store; see [`crate::viewers`]).
    pub viewers: usize,
    pub viewers_peak: usize,
    /// Part publish delays (filled in by the store; see [`crate::delay`]).
    pub publish_delay: crate::delay::DelayHistogram,
    pub ended: bool,
}

#[derive(Debug)]
struct Init {
    version: u64,
    data: Bytes,
}

#[derive(Debug)]
struct PartMeta {
    range: Range<usize>,
    duration: Duration,
    independent: bool,
}

#[derive(Debug)]
struct Segment {
    msn: u64,
    init_version: u64,
    discontinuity: bool,
    pdt: SystemTime,
    duration: Duration,
    /// The parts' bytes, concatenated; parts are slices of it.
    data: Bytes,
    parts: Vec<PartMeta>,
}

#[derive(Debug)]
struct OpenPart {
    data: Bytes,
    duration: Duration,
    independent: bool,
}

#[derive(Debug)]
struct OpenSegment {
    msn: u64,
    init_version: u64,
    discontinuity: bool,
    pdt: SystemTime,
    duration: Duration,
    parts: Vec<OpenPart>,
}

/// One stream's packager.
#[derive(Debug)]
pub struct Packager {
    config: PackagerConfig,
    segments: VecDeque<Segment>,
    open: Option<OpenSegment>,
    /// MSN of the next segment to open.
    next_msn: u64,
    first_msn: u64,
    discontinuity_sequence: u64,
    pending_discontinuity: bool,
    need_independent: bool,
    inits: Vec<Init>,
    current_init: Option<u64>,
    target_duration: u64,
    /// Start time of the next segment when it continues the previous one.
    next_pdt: Option<SystemTime>,
    /// End time of the last closed segment: dates never go back, even across a
    /// discontinuity.
    last_pdt_end: Option<SystemTime>,
    ended: bool,
    segments_published: u64,
    parts_published: u64,
    parts_dropped: u64,
    parts_over_target: u64,
    segments_forced: u64,
    cache: [Option<Bytes>; 2],
}

impl Packager {
    /// A new stream whose first segment gets MSN `first_msn` (the store picks numbers that do
    /// not repeat URLs of an earlier stream of the same room).
    pub fn new(config: PackagerConfig, first_msn: u64) -> Packager {
        let config = config.sanitized();
        Packager {
            target_duration: playlist::ceil_secs(config.segment_target).max(1),
            config,
            segments: VecDeque::new(),
            open: None,
            next_msn: first_msn,
            first_msn,
            discontinuity_sequence: 0,
            pending_discontinuity: false,
            need_independent: true,
            inits: Vec::new(),
            current_init: None,
            next_pdt: None,
            last_pdt_end: None,
            ended: false,
            segments_published: 0,
            parts_published: 0,
            parts_dropped: 0,
            parts_over_target: 0,
            segments_forced: 0,
            cache: [None, None],
        }
    }

    pub fn config(&self) -> &PackagerConfig {
        &self.config
    }

    pub fn target_duration(&self) -> Duration {
        Duration::from_secs(self.target_duration)
    }

    pub fn is_ended(&self) -> bool {
        self.ended
    }

    fn published_any(&self) -> bool {
        self.next_msn > self.first_msn
    }

    fn changed(&mut self) {
        self.cache = [None, None];
    }

    /// A new init segment. Identical bytes change nothing (false). Otherwise the segment in
    /// progress is closed, later segments use the new init (version = MSN of the first segment
    /// that uses it) after an EXT-X-DISCONTINUITY if anything was published before.
    pub fn set_init(&mut self, data: Bytes) -> bool {
        if let Some(cur) = self.current_init.and_then(|v| self.init(v)) {
            if cur == data {
                return false;
            }
        }
        self.close_open();
        let version = self.next_msn;
        self.inits.retain(|i| i.version != version);
        self.inits.push(Init { version, data });
        self.current_init = Some(version);
        self.break_timeline();
        self.prune_inits();
        self.changed();
        true
    }

    /// The next segment starts after EXT-X-DISCONTINUITY (timestamps jump). Closes the segment
    /// in progress.
    pub fn discontinuity(&mut self) {
        self.close_open();
        self.break_timeline();
        self.changed();
    }

    fn break_timeline(&mut self) {
        if self.published_any() {
            self.pending_discontinuity = true;
        }
        self.need_independent = true;
        self.next_pdt = None;
    }

    /// Broadcast stopped: the segment in progress is closed and EXT-X-ENDLIST written.
    pub fn end(&mut self) {
        self.close_open();
        self.ended = true;
        self.changed();
    }

    /// A broadcast (re)starts on this stream (a new producer: its timestamps start over).
    /// Numbering continues; the segment in progress is closed, and the next one follows a
    /// discontinuity. A closed stream is live again (EXT-X-ENDLIST goes away).
    pub fn reopen(&mut self) {
        self.close_open();
        self.ended = false;
        self.break_timeline();
        self.changed();
    }

    /// Appends a part. `now` is when it arrived (the segment's program date time is derived
    /// from the first part after a start or discontinuity, then continues by durations).
    pub fn push_part(&mut self, part: Part, now: SystemTime) -> PushOutcome {
        let drop = if self.ended {
            Some(DropReason::Ended)
        } else if self.current_init.is_none() {
            Some(DropReason::NoInit)
        } else if part.duration.is_zero() || part.data.is_empty() {
            Some(DropReason::Empty)
        } else if self.need_independent && !part.independent {
            Some(DropReason::NotIndependent)
        } else {
            None
        };
        if let Some(reason) = drop {
            self.parts_dropped += 1;
            return PushOutcome::Dropped(reason);
        }
        if playlist::millis(part.duration) > playlist::millis(self.config.part_target) {
            self.parts_over_target += 1;
        }
        if let Some(open) = &self.open {
            let too_long = open.duration + part.duration > self.config.segment_target * 3;
            if part.segment_start || too_long {
                if too_long && !part.segment_start {
                    self.segments_forced += 1;
                }
                self.close_open();
            }
        }
        self.need_independent = false;
        let open = match &mut self.open {
            Some(open) => open,
            None => {
                let msn = self.next_msn;
                self.next_msn += 1;
                let pdt = self.next_pdt.unwrap_or_else(|| {
                    let started = now.checked_sub(part.duration).unwrap_or(now);
                    self.last_pdt_end.map_or(started, |end| started.max(end))
                });
                let init_version = self.current_init.expect("checked above");
                self.open.insert(OpenSegment {
                    msn,
                    init_version,
                    discontinuity: std::mem::take(&mut self.pending_discontinuity),
                    pdt,
                    duration: Duration::ZERO,
                    parts: Vec::new(),
                })
            }
        };
        open.duration += part.duration;
        open.parts.push(OpenPart { data: part.data, duration: part.duration, independent: part.independent });
        let outcome = PushOutcome::Published { msn: open.msn, index: open.parts.len() as u64 - 1 };
        self.parts_published += 1;
        self.changed();
        outcome
    }

    fn close_open(&mut self) {
        let Some(open) = self.open.take() else { return };
        let len = open.parts.iter().map(|p| p.data.len()).sum();
        let mut data = BytesMut::with_capacity(len);
        let mut parts = Vec::with_capacity(open.parts.len());
        for p in open.parts {
            let start = data.len();
            data.extend_from_slice(&p.data);
            parts.push(PartMeta { range: start..data.len(), duration: p.duration, independent: p.independent });
        }
        self.next_pdt = Some(open.pdt + open.duration);
        self.last_pdt_end = self.next_pdt;
        self.target_duration = self.target_duration.max(playlist::ceil_secs(open.duration));
        self.segments.push_back(Segment {
            msn: open.msn,
            init_version: open.init_version,
            discontinuity: open.discontinuity,
            pdt: open.pdt,
            duration: open.duration,
            data: data.freeze(),
            parts,
        });
        self.segments_published += 1;
        while self.segments.len() > self.config.window_segments {
            if let Some(old) = self.segments.pop_front() {
                if old.discontinuity {
                    self.discontinuity_sequence += 1;
                }
            }
        }
        self.prune_inits();
        self.changed();
    }

    /// Keeps the current init and those the window's segments use.
    fn prune_inits(&mut self) {
        let oldest_used = self.segments.front().map(|s| s.init_version);
        let current = self.current_init;
        self.inits.retain(|i| Some(i.version) == current || oldest_used.is_some_and(|o| i.version >= o));
    }

    /// MSN of the first segment that is not complete (in progress or not started).
    fn current_msn(&self) -> u64 {
        self.open.as_ref().map_or(self.next_msn, |o| o.msn)
    }

    fn segment(&self, msn: u64) -> Option<&Segment> {
        let first = self.segments.front()?.msn;
        self.segments.get(usize::try_from(msn.checked_sub(first)?).ok()?)
    }

    /// The init segment of `version`, while it is in use.
    pub fn init(&self, version: u64) -> Option<Bytes> {
        self.inits.iter().find(|i| i.version == version).map(|i| i.data.clone())
    }

    /// A complete segment's bytes. The segment in progress is Pending.
    pub fn segment_data(&self, msn: u64) -> Lookup<Bytes> {
        if let Some(s) = self.segment(msn) {
            return Lookup::Ready(s.data.clone());
        }
        if !self.ended && msn == self.current_msn() && self.current_init.is_some() {
            return Lookup::Pending;
        }
        Lookup::Missing
    }

    /// A part's bytes. The next part (the preload hint: next index of the segment in progress,
    /// or part 0 of the next segment) is Pending; a part index beyond the end of a closed
    /// segment is Missing (a preload hint that guessed wrong).
    pub fn part_data(&self, msn: u64, index: u64) -> Lookup<Bytes> {
        if let Some(s) = self.segment(msn) {
            return match s.parts.get(index as usize) {
                Some(p) => Lookup::Ready(s.data.slice(p.range.clone())),
                None => Lookup::Missing,
            };
        }
        if let Some(o) = &self.open {
            if o.msn == msn {
                if let Some(p) = o.parts.get(index as usize) {
                    return Lookup::Ready(p.data.clone());
                }
                if !self.ended && index == o.parts.len() as u64 {
                    return Lookup::Pending;
                }
                return Lookup::Missing;
            }
        }
        if !self.ended && self.current_init.is_some() && msn == self.next_msn && index == 0 {
            return Lookup::Pending;
        }
        Lookup::Missing
    }

    /// Refuses blocking requests too far ahead (RFC 8216bis 6.2.5.2): `_HLS_msn` more than
    /// two past the last complete segment, or `_HLS_part` more than the Advance Part Limit
    /// past the last published part.
    pub fn check_directive(&self, msn: u64, part: Option<u64>) -> Result<(), DirectiveError> {
        let current = self.current_msn();
        // last complete = current - 1, so last + 2 = current + 1
        let msn_limit = current + 1;
        if msn > msn_limit {
            return Err(DirectiveError::MsnTooFarAhead { requested: msn, limit: msn_limit });
        }
        let Some(part) = part else { return Ok(()) };
        let pt = self.config.part_target.as_secs_f64();
        let advance = if pt < 1.0 { (3.0 / pt).ceil() as u64 } else { 3 };
        let limit = if msn == current {
            let have = self.open.as_ref().map_or(0, |o| o.parts.len() as u64);
            (have + advance).saturating_sub(1)
        } else if msn > current {
            advance.saturating_sub(1)
        } else {
            return Ok(());
        };
        if part > limit {
            return Err(DirectiveError::PartTooFarAhead { requested: part, limit });
        }
        Ok(())
    }

    /// Whether a blocking playlist request can be answered: `_HLS_msn=N` needs segment N
    /// complete; with `_HLS_part=M`, part M of segment N published (or segment N complete).
    /// An ended stream answers everything.
    pub fn playlist_ready(&self, msn: u64, part: Option<u64>) -> bool {
        if self.ended || msn < self.current_msn() {
            return true;
        }
        match (part, &self.open) {
            (Some(p), Some(o)) => o.msn == msn && (o.parts.len() as u64) > p,
            _ => false,
        }
    }

    /// Anything to play yet (a complete segment or a part)?
    pub fn has_media(&self) -> bool {
        !self.segments.is_empty() || self.open.is_some()
    }

    /// The playlist as plain data.
    pub fn playlist_state(&self) -> PlaylistState {
        let segments = self
            .segments
            .iter()
            .map(|s| SegmentEntry {
                uri: uri::segment(s.msn),
                duration: s.duration,
                discontinuity: s.discontinuity,
                init_uri: uri::init(s.init_version),
                program_date_time: Some(s.pdt),
                parts: s
                    .parts
                    .iter()
                    .enumerate()
                    .map(|(i, p)| PartEntry { uri: uri::part(s.msn, i as u64), duration: p.duration, independent: p.independent })
                    .collect(),
            })
            .collect();
        let partial = self.open.as_ref().map(|o| PartialSegment {
            discontinuity: o.discontinuity,
            init_uri: uri::init(o.init_version),
            program_date_time: Some(o.pdt),
            parts: o
                .parts
                .iter()
                .enumerate()
                .map(|(i, p)| PartEntry { uri: uri::part(o.msn, i as u64), duration: p.duration, independent: p.independent })
                .collect(),
        });
        let preload_hint = match &self.open {
            _ if self.ended || self.current_init.is_none() => None,
            Some(o) => {
                // Guess whether the next part starts a new segment: the segment in progress is
                // already within half a part of the segment target.
                let last = o.parts.last().map_or(self.config.part_target, |p| p.duration);
                if o.duration + last / 2 >= self.config.segment_target {
                    Some(uri::part(o.msn + 1, 0))
                } else {
                    Some(uri::part(o.msn, o.parts.len() as u64))
                }
            }
            None => Some(uri::part(self.next_msn, 0)),
        };
        PlaylistState {
            target_duration: self.target_duration,
            part_target: self.config.part_target,
            media_sequence: self.segments.front().map_or(self.current_msn(), |s| s.msn),
            discontinuity_sequence: self.discontinuity_sequence,
            segments,
            partial,
            preload_hint,
            ended: self.ended,
        }
    }

    /// The playlist text, rendered once per change and shared by every request until the next.
    pub fn playlist(&mut self, delivery: Delivery) -> Bytes {
        let slot = match delivery {
            Delivery::Full => 0,
            Delivery::Delta => 1,
        };
        if let Some(b) = &self.cache[slot] {
            return b.clone();
        }
        let text = Bytes::from(playlist::render(&self.playlist_state(), delivery));
        self.cache[slot] = Some(text.clone());
        text
    }

    pub fn stats(&self) -> StreamStats {
        let last_part = match &self.open {
            Some(o) => o.parts.len().checked_sub(1).map(|i| (o.msn, i as u64)),
            None => self.segments.back().and_then(|s| s.parts.len().checked_sub(1).map(|i| (s.msn, i as u64))),
        };
        StreamStats {
            media_sequence: self.segments.front().map_or(self.current_msn(), |s| s.msn),
            last_msn: self.segments.back().map(|s| s.msn),
            last_part,
            next_msn: self.current_msn(),
            discontinuity_sequence: self.discontinuity_sequence,
            init_version: self.current_init,
            target_duration_secs: self.target_duration,
            segments_in_window: self.segments.len(),
            segments_published: self.segments_published,
            parts_published: self.parts_published,
            parts_dropped: self.parts_dropped,
            parts_over_target: self.parts_over_target,
            segments_forced: self.segments_forced,
            bytes_in_memory: self.segments.iter().map(|s| s.data.len()).sum::<usize>()
                + self.open.iter().flat_map(|o| o.parts.iter()).map(|p| p.data.len()).sum::<usize>()
                + self.inits.iter().map(|i| i.data.len()).sum::<usize>(),
            waiting_requests: 0,
            viewers: 0,
            viewers_peak: 0,
            publish_delay: Default::default(),
            ended: self.ended,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::playlist::tests::check_invariants;

    const T0: Duration = Duration::from_secs(1_700_000_000);

    fn now(ms: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + T0 + Duration::from_millis(ms)
    }

    fn cfg() -> PackagerConfig {
        PackagerConfig { part_target: Duration::from_millis(334), segment_target: Duration::from_secs(1), window_segments: 5 }
    }

    fn part(i: u64, tag: &str) -> Part {
        Part {
            data: Bytes::from(format!("{tag}:{i};")),
            duration: Duration::from_millis(if i % 3 == 2 { 334 } else { 333 }),
            independent: i.is_multiple_of(3),
            segment_start: i.is_multiple_of(3),
        }
    }

    /// Pushes `n` parts (three per segment) and checks every playlist on the way.
    fn feed(p: &mut Packager, n: u64, tag: &str, clock: &mut u64) {
        for i in 0..n {
            *clock += 333;
            assert!(matches!(p.push_part(part(i, tag), now(*clock)), PushOutcome::Published { .. }));
            check_invariants(std::str::from_utf8(&p.playlist(Delivery::Full)).unwrap());
            check_invariants(std::str::from_utf8(&p.playlist(Delivery::Delta)).unwrap());
        }
    }

    fn text(p: &mut Packager, d: Delivery) -> String {
        String::from_utf8(p.playlist(d).to_vec()).unwrap()
    }

    #[test]
    fn segment_start_closes_the_previous_segment() {
        let mut p = Packager::new(cfg(), 0);
        p.set_init(Bytes::from_static(b"init"));
        let mut clock = 0;
        feed(&mut p, 7, "a", &mut clock);
        let st = p.playlist_state();
        assert_eq!(st.segments.len(), 2);
        assert_eq!(st.partial.as_ref().unwrap().parts.len(), 1);
        assert_eq!(st.segments[0].duration, Duration::from_millis(1000));
        assert_eq!(p.segment_data(0), Lookup::Ready(Bytes::from_static(b"a:0;a:1;a:2;")));
        assert_eq!(p.part_data(1, 2), Lookup::Ready(Bytes::from_static(b"a:5;")));
        assert_eq!(p.part_data(2, 0), Lookup::Ready(Bytes::from_static(b"a:6;")));
        let s = p.stats();
        assert_eq!((s.last_msn, s.last_part, s.next_msn), (Some(1), Some((2, 0)), 2));
        assert_eq!((s.parts_published, s.segments_published, s.parts_over_target), (7, 2, 0));
    }

    #[test]
    fn lookups_ready_pending_missing() {
        let mut p = Packager::new(cfg(), 10);
        assert_eq!(p.part_data(10, 0), Lookup::Missing, "no init yet: nothing will come");
        p.set_init(Bytes::from_static(b"init"));
        assert_eq!(p.part_data(10, 0), Lookup::Pending);
        assert_eq!(p.part_data(10, 1), Lookup::Missing);
        assert_eq!(p.segment_data(10), Lookup::Pending);
        let mut clock = 0;
        feed(&mut p, 2, "a", &mut clock);
        assert!(matches!(p.part_data(10, 1), Lookup::Ready(_)));
        assert_eq!(p.part_data(10, 2), Lookup::Pending, "next part of the segment in progress");
        assert_eq!(p.part_data(11, 0), Lookup::Pending, "first part of the next segment");
        assert_eq!(p.part_data(10, 3), Lookup::Missing);
        assert_eq!(p.part_data(11, 1), Lookup::Missing);
        assert_eq!(p.part_data(12, 0), Lookup::Missing);
        assert_eq!(p.segment_data(11), Lookup::Missing);
        // the segment closes after 2 parts: a request for part 10.2 can never be answered
        p.push_part(Part { segment_start: true, ..part(0, "b") }, now(clock));
        assert_eq!(p.part_data(10, 2), Lookup::Missing);
        assert!(matches!(p.segment_data(10), Lookup::Ready(_)));
        assert_eq!(p.segment_data(9), Lookup::Missing);
        p.end();
        assert_eq!(p.part_data(11, 1), Lookup::Missing, "ended: nothing pending");
        assert_eq!(p.part_data(12, 0), Lookup::Missing);
        assert_eq!(p.init(10), Some(Bytes::from_static(b"init")));
        assert_eq!(p.init(11), None);
    }

    #[test]
    fn preload_hint_guesses_the_segment_boundary() {
        let mut p = Packager::new(cfg(), 0);
        p.set_init(Bytes::from_static(b"init"));
        assert_eq!(p.playlist_state().preload_hint.as_deref(), Some("part-0.0.m4s"));
        p.push_part(part(0, "a"), now(333));
        assert_eq!(p.playlist_state().preload_hint.as_deref(), Some("part-0.1.m4s"));
        p.push_part(part(1, "a"), now(666));
        assert_eq!(p.playlist_state().preload_hint.as_deref(), Some("part-0.2.m4s"));
        p.push_part(part(2, "a"), now(1000));
        assert_eq!(p.playlist_state().preload_hint.as_deref(), Some("part-1.0.m4s"), "1 s reached: next segment");
        assert_eq!(p.part_data(1, 0), Lookup::Pending);
        p.end();
        assert_eq!(p.playlist_state().preload_hint, None);
    }

    #[test]
    fn msn_never_goes_back_across_discontinuity_and_new_init() {
        let mut p = Packager::new(cfg(), 0);
        p.set_init(Bytes::from_static(b"init-a"));
        let mut clock = 0;
        feed(&mut p, 5, "a", &mut clock); // segment 0 complete, 1 in progress (2 parts)
        p.discontinuity();
        assert_eq!(p.stats().last_msn, Some(1), "discontinuity closes the segment in progress");
        assert!(!p.set_init(Bytes::from_static(b"init-a")), "same init bytes: nothing changes");
        assert!(p.set_init(Bytes::from_static(b"init-b")));
        assert_eq!(p.stats().init_version, Some(2));
        feed(&mut p, 7, "b", &mut clock);
        let st = p.playlist_state();
        let msns: Vec<&str> = st.segments.iter().map(|s| s.uri.as_str()).collect();
        assert_eq!(msns, ["seg-0.m4s", "seg-1.m4s", "seg-2.m4s", "seg-3.m4s"]);
        assert_eq!(
            st.segments.iter().map(|s| s.discontinuity).collect::<Vec<_>>(),
            [false, false, true, false],
            "one discontinuity, even with a discontinuity() and a new init together"
        );
        assert_eq!(st.segments[2].init_uri, "init-2.mp4");
        assert_eq!(st.segments[1].init_uri, "init-0.mp4");
        let t = text(&mut p, Delivery::Full);
        let pl = check_invariants(&t);
        assert_eq!(pl.segments[2].map.as_ref().unwrap().uri, "init-2.mp4");
        assert_eq!(p.init(0), Some(Bytes::from_static(b"init-a")), "old init kept while used");
        // the first segment after a discontinuity re-anchors its date; later ones continue
        // (arrival of its first part minus its duration = 1.665 s, but not before the end of
        // segment 1 = 1.666 s)
        assert_eq!(st.segments[2].program_date_time, Some(now(1666)));
        assert_eq!(st.segments[3].program_date_time.unwrap(), st.segments[2].program_date_time.unwrap() + st.segments[2].duration);
        assert_eq!(st.segments[1].program_date_time.unwrap(), now(0) + Duration::from_millis(1000));
    }

    #[test]
    fn dates_never_go_back_across_a_discontinuity() {
        let mut p = Packager::new(cfg(), 0);
        p.set_init(Bytes::from_static(b"init"));
        // parts arrive faster than real time: the dates run ahead of the clock
        for i in 0..6 {
            p.push_part(part(i, "a"), now(0));
        }
        p.discontinuity();
        p.push_part(part(0, "b"), now(0));
        let st = p.playlist_state();
        let before = st.segments[1].program_date_time.unwrap() + st.segments[1].duration;
        assert_eq!(st.partial.unwrap().program_date_time.unwrap(), before);
        // a restart much later is dated by the clock again
        p.discontinuity();
        p.push_part(part(0, "c"), now(60_000));
        let st = p.playlist_state();
        assert_eq!(st.partial.unwrap().program_date_time.unwrap(), now(60_000 - 333));
    }

    #[test]
    fn discontinuity_sequence_counts_discontinuities_that_slid_out() {
        let mut p = Packager::new(cfg(), 0);
        p.set_init(Bytes::from_static(b"init"));
        let mut clock = 0;
        let mut last_msn = None;
        for round in 0..4 {
            feed(&mut p, 6, &format!("r{round}"), &mut clock);
            p.discontinuity();
            let s = p.stats();
            assert!(s.last_msn > last_msn, "msn moves forward");
            last_msn = s.last_msn;
        }
        // 8 segments, discontinuities before 2, 4, 6; window 5 keeps 3..=7
        let st = p.playlist_state();
        assert_eq!(st.media_sequence, 3);
        assert_eq!(st.discontinuity_sequence, 1, "segment 2's discontinuity slid out");
        assert_eq!(st.segments.iter().map(|s| s.discontinuity).collect::<Vec<_>>(), [false, true, false, true, false]);
        check_invariants(&text(&mut p, Delivery::Full));
    }

    #[test]
    fn window_is_bounded_and_old_parts_go() {
        let mut p = Packager::new(cfg(), 0);
        p.set_init(Bytes::from_static(b"init"));
        let mut clock = 0;
        feed(&mut p, 60, "a", &mut clock);
        let s = p.stats();
        assert_eq!(s.segments_in_window, 5);
        assert_eq!(s.media_sequence, 14);
        let held: usize = (14..=18)
            .map(|m| match p.segment_data(m) {
                Lookup::Ready(b) => b.len(),
                other => panic!("segment {m}: {other:?}"),
            })
            .chain((0..3).map(|i| match p.part_data(19, i) {
                Lookup::Ready(b) => b.len(),
                other => panic!("part 19.{i}: {other:?}"),
            }))
            .sum();
        assert_eq!(s.bytes_in_memory, held + 4, "5 segments + 3 parts in progress + init");
        assert_eq!(p.segment_data(13), Lookup::Missing);
        assert_eq!(p.part_data(13, 0), Lookup::Missing);
        let t = text(&mut p, Delivery::Full);
        // the partial segment has 3 parts (1 s); parts kept for segments ending < 3 s before
        // the end: 18 (1 s before) and 17 (2 s); 16 ends 3 s before
        assert!(!t.contains("part-14.") && !t.contains("part-15.") && !t.contains("part-16."));
        assert!(t.contains("part-17.0.m4s") && t.contains("part-18.2.m4s") && t.contains("part-19.2.m4s"));
    }

    #[test]
    fn start_discontinuity_and_init_wait_for_an_independent_part() {
        let mut p = Packager::new(cfg(), 0);
        assert_eq!(p.push_part(part(0, "x"), now(0)), PushOutcome::Dropped(DropReason::NoInit));
        p.set_init(Bytes::from_static(b"init"));
        assert_eq!(p.push_part(part(1, "x"), now(0)), PushOutcome::Dropped(DropReason::NotIndependent));
        assert_eq!(p.push_part(part(0, "x"), now(0)), PushOutcome::Published { msn: 0, index: 0 });
        assert_eq!(p.push_part(part(1, "x"), now(0)), PushOutcome::Published { msn: 0, index: 1 });
        p.discontinuity();
        assert_eq!(p.push_part(part(2, "x"), now(0)), PushOutcome::Dropped(DropReason::NotIndependent));
        assert_eq!(p.push_part(Part { duration: Duration::ZERO, ..part(0, "x") }, now(0)), PushOutcome::Dropped(DropReason::Empty));
        assert_eq!(p.push_part(part(0, "x"), now(0)), PushOutcome::Published { msn: 1, index: 0 });
        p.end();
        assert_eq!(p.push_part(part(0, "x"), now(0)), PushOutcome::Dropped(DropReason::Ended));
        assert_eq!(p.stats().parts_dropped, 5);
    }

    #[test]
    fn first_segment_has_no_discontinuity_and_reopen_adds_one() {
        let mut p = Packager::new(cfg(), 100);
        p.discontinuity();
        p.set_init(Bytes::from_static(b"init"));
        let mut clock = 0;
        feed(&mut p, 4, "a", &mut clock);
        p.end();
        let t = text(&mut p, Delivery::Full);
        assert!(!t.contains("#EXT-X-DISCONTINUITY\n"));
        assert!(t.ends_with("#EXT-X-ENDLIST\n"));
        assert_eq!(p.stats().last_msn, Some(101), "end closes the segment in progress");
        p.reopen();
        feed(&mut p, 3, "b", &mut clock);
        let t = text(&mut p, Delivery::Full);
        let pl = check_invariants(&t);
        assert!(!pl.end_list);
        assert!(t.contains("#EXT-X-DISCONTINUITY\n#EXT-X-PROGRAM-DATE-TIME"));
        assert_eq!(p.stats().next_msn, 102);
    }

    #[test]
    fn overlong_segment_is_cut() {
        let mut p = Packager::new(cfg(), 0);
        p.set_init(Bytes::from_static(b"init"));
        for i in 0..10 {
            let part = Part { segment_start: i == 0, independent: i == 0, ..part(1, "x") };
            p.push_part(part, now(0));
        }
        let s = p.stats();
        assert_eq!(s.segments_forced, 1);
        assert_eq!(s.last_msn, Some(0));
        let st = p.playlist_state();
        assert_eq!(st.segments[0].parts.len(), 9, "3 s of parts");
        assert!(!st.partial.as_ref().unwrap().parts[0].independent);
        assert_eq!(st.target_duration, 3, "target duration follows the longest segment");
        check_invariants(&text(&mut p, Delivery::Full));
    }

    #[test]
    fn long_parts_are_counted() {
        let mut p = Packager::new(cfg(), 0);
        p.set_init(Bytes::from_static(b"init"));
        p.push_part(Part { duration: Duration::from_micros(334_400), ..part(0, "x") }, now(0));
        assert_eq!(p.stats().parts_over_target, 0, "within the millisecond as written");
        p.push_part(Part { duration: Duration::from_millis(400), ..part(1, "x") }, now(0));
        assert_eq!(p.stats().parts_over_target, 1);
    }

    #[test]
    fn blocking_readiness_and_far_ahead() {
        let mut p = Packager::new(cfg(), 20);
        p.set_init(Bytes::from_static(b"init"));
        // nothing yet: current msn 20
        assert!(!p.playlist_ready(20, None));
        assert!(!p.playlist_ready(20, Some(0)));
        assert!(p.playlist_ready(19, None), "older than anything: answer at once");
        assert_eq!(p.check_directive(21, None), Ok(()));
        assert!(matches!(p.check_directive(22, None), Err(DirectiveError::MsnTooFarAhead { limit: 21, .. })));
        let mut clock = 0;
        feed(&mut p, 2, "a", &mut clock); // segment 20 in progress, parts 0, 1
        assert!(p.playlist_ready(20, Some(1)));
        assert!(!p.playlist_ready(20, Some(2)));
        assert!(!p.playlist_ready(20, None));
        assert!(!p.playlist_ready(21, Some(0)));
        // advance part limit: ceil(3 / 0.334) = 9 parts
        assert_eq!(p.check_directive(20, Some(10)), Ok(()));
        assert!(matches!(p.check_directive(20, Some(11)), Err(DirectiveError::PartTooFarAhead { limit: 10, .. })));
        assert_eq!(p.check_directive(21, Some(8)), Ok(()));
        assert!(p.check_directive(21, Some(9)).is_err());
        assert!(p.check_directive(22, Some(0)).is_err());
        p.push_part(part(0, "b"), now(clock)); // closes 20
        assert!(p.playlist_ready(20, Some(2)), "segment 20 closed with 2 parts: part 2 never comes");
        assert!(p.playlist_ready(20, None));
        assert!(p.playlist_ready(21, Some(0)));
        assert!(!p.playlist_ready(21, None));
        p.end();
        assert!(p.playlist_ready(25, Some(3)), "ended: everything answers");
    }

    #[test]
    fn playlist_cache_follows_changes() {
        let mut p = Packager::new(cfg(), 0);
        p.set_init(Bytes::from_static(b"init"));
        let a = p.playlist(Delivery::Full);
        assert_eq!(a.as_ptr(), p.playlist(Delivery::Full).as_ptr(), "rendered once");
        p.push_part(part(0, "x"), now(0));
        let b = p.playlist(Delivery::Full);
        assert_ne!(a, b);
        assert!(std::str::from_utf8(&b).unwrap().contains("part-0.0.m4s\",INDEPENDENT=YES"));
    }

    /// Many random-ish histories: every playlist parses and keeps the invariants, MSNs only
    /// go up, the discontinuity sequence only goes up.
    #[test]
    fn every_playlist_along_a_messy_history_is_valid() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut rnd = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let mut p = Packager::new(PackagerConfig { window_segments: 6, ..cfg() }, 1000);
        let mut clock = 0;
        let mut last_seq = (0, 0);
        let mut in_seg = 0;
        for step in 0..3000u64 {
            match rnd(100) {
                0 => p.discontinuity(),
                1 => {
                    p.set_init(Bytes::from(format!("init{}", rnd(3))));
                }
                2 if step % 7 == 0 => {
                    p.end();
                    p.reopen();
                }
                _ => {
                    let start = in_seg == 0 || in_seg >= 3 || rnd(10) == 0;
                    in_seg = if start { 1 } else { in_seg + 1 };
                    let dur = 200 + rnd(134);
                    clock += dur;
                    p.push_part(
                        Part {
                            data: Bytes::from(vec![step as u8; 1 + rnd(50) as usize]),
                            duration: Duration::from_millis(dur),
                            independent: start,
                            segment_start: start,
                        },
                        now(clock),
                    );
                }
            }
            for d in [Delivery::Full, Delivery::Delta] {
                let t = text(&mut p, d);
                let pl = check_invariants(&t);
                assert!(pl.segments.len() <= 6);
                let seq = (pl.media_sequence, pl.discontinuity_sequence);
                assert!(seq >= last_seq, "went back: {seq:?} < {last_seq:?}\n{t}");
                // every listed MAP is servable
                for s in &pl.segments {
                    if let Some(m) = &s.map {
                        let v: u64 = m.uri.trim_start_matches("init-").trim_end_matches(".mp4").parse().unwrap();
                        assert!(p.init(v).is_some(), "{} not in memory", m.uri);
                    }
                }
                if d == Delivery::Full {
                    last_seq = seq;
                }
            }
        }
        assert!(p.stats().segments_published > 300);
    }
}
