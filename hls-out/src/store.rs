//! The registry of streams, one per room, and the writer handle the gateway feeds.
//!
//! Each stream is a [`Packager`] behind a `std::sync::Mutex` (held for microseconds, never
//! across an await) plus a `tokio::sync::watch` channel bumped on every change. A request
//! that has to wait subscribes to the channel and sleeps until the next change or its
//! deadline: waiting costs a receiver and a timer entry, no thread and no polling.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, Weak};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::access::AccessCheck;
use crate::delay::DelayHistogram;
use crate::packager::{Packager, PackagerConfig, Part, PushOutcome, StreamStats};
use crate::viewers::{ViewerCounter, ViewerStats};

/// How long a closed stream's final playlist (with EXT-X-ENDLIST) stays served.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(30);

/// Viewers are those seen on a playlist request within this many target durations.
pub const VIEWER_WINDOW_TARGET_DURATIONS: u32 = 3;

/// All streams, keyed by room id.
pub struct HlsStore {
    me: Weak<HlsStore>,
    grace: Duration,
    streams: Mutex<HashMap<String, Arc<Stream>>>,
    /// Who may fetch what (none: everything is public).
    access: RwLock<Option<Arc<dyn AccessCheck>>>,
    /// Viewer keys are hashed with a per-process random key (no address is kept).
    hasher: RandomState,
}

/// The gateway's handle to feed one stream. Cheap to clone.
#[derive(Clone)]
pub struct StreamWriter {
    stream: Arc<Stream>,
}

pub(crate) struct Stream {
    room: String,
    state: Mutex<StreamState>,
    changed: watch::Sender<u64>,
    /// Its own lock: counting a viewer never waits for the packager.
    viewers: Mutex<ViewerCounter>,
}

struct StreamState {
    packager: Packager,
    /// Set by `close`; the stream is removed `grace` later unless reopened.
    closed_at: Option<Instant>,
    /// Bumped by every open/close, so a stale removal timer leaves a reopened stream alone.
    epoch: u64,
    /// Drop reasons and over-target parts already logged at warn level (once per stream).
    warned: u8,
    /// From a part's last frame being composed to the part being in the playlist.
    publish_delay: DelayHistogram,
}

/// Why a wait ended without its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WaitError {
    Timeout,
    Gone,
}

/// MSN of a brand-new stream's first segment: the wall clock in tenths of a second.
///
/// Media URLs are served `immutable`, so a room's URLs must never name different bytes, even
/// for a later broadcast or after a gateway restart. A stream started later starts above any
/// MSN an earlier stream reached unless its segments averaged under 100 ms.
pub fn first_msn_at(now: SystemTime) -> u64 {
    now.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| (d.as_millis() / 100) as u64)
}

impl HlsStore {
    pub fn new() -> Arc<Self> {
        Self::with_grace(DEFAULT_GRACE)
    }

    /// A store whose closed streams stay `grace` before they are removed.
    pub fn with_grace(grace: Duration) -> Arc<Self> {
        Arc::new_cyclic(|me| HlsStore {
            me: me.clone(),
            grace,
            streams: Mutex::new(HashMap::new()),
            access: RwLock::new(None),
            hasher: RandomState::new(),
        })
    }

    /// Sets the access-check hook asked for every HLS request (see [`crate::access`]).
    pub fn set_access(&self, hook: Arc<dyn AccessCheck>) {
        *self.access.write().unwrap_or_else(|e| e.into_inner()) = Some(hook);
    }

    pub(crate) fn access(&self) -> Option<Arc<dyn AccessCheck>> {
        self.access.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The key a viewer is counted under: a hash, so the table holds no ids or addresses.
    pub(crate) fn viewer_key(&self, identity: &str) -> u64 {
        self.hasher.hash_one(identity)
    }

    /// Distinct viewers of the room's stream now, and the peak since the broadcast started.
    pub fn viewers(&self, room: &str) -> Option<ViewerStats> {
        self.get(room).map(|s| s.viewer_stats())
    }

    fn map(&self) -> MutexGuard<'_, HashMap<String, Arc<Stream>>> {
        self.streams.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Creates the room's stream, or continues an existing one (live, or closed and in its
    /// grace period): numbering goes on, the next segment follows EXT-X-DISCONTINUITY, and the
    /// first configuration is kept (PART-TARGET must not change).
    pub fn open(&self, room: &str, config: PackagerConfig) -> StreamWriter {
        let mut map = self.map();
        self.purge_expired(&mut map);
        if let Some(stream) = map.get(room) {
            let stream = stream.clone();
            drop(map);
            stream.update(|s| {
                if s.packager.config() != &config.sanitized() {
                    warn!(room, ?config, kept = ?s.packager.config(), "hls: stream reopened with another config; keeping the first");
                }
                s.packager.reopen();
                s.closed_at = None;
                s.epoch += 1;
            });
            stream.counter().restart_peak(Instant::now());
            info!(room, "hls: stream continued");
            return StreamWriter { stream };
        }
        let first_msn = first_msn_at(SystemTime::now());
        let packager = Packager::new(config.clone(), first_msn);
        let window = packager.target_duration() * VIEWER_WINDOW_TARGET_DURATIONS;
        let stream = Arc::new(Stream {
            room: room.to_owned(),
            state: Mutex::new(StreamState { packager, closed_at: None, epoch: 0, warned: 0, publish_delay: DelayHistogram::default() }),
            changed: watch::Sender::new(0),
            viewers: Mutex::new(ViewerCounter::new(window)),
        });
        map.insert(room.to_owned(), stream.clone());
        info!(room, first_msn, ?config, "hls: stream opened");
        StreamWriter { stream }
    }

    /// The broadcast stopped: the segment in progress is closed, the playlist gets
    /// EXT-X-ENDLIST, waiting requests are answered, and the stream is removed after the grace
    /// period (unless `open` continues it first).
    pub fn close(&self, room: &str) {
        let mut map = self.map();
        self.purge_expired(&mut map);
        let Some(stream) = map.get(room).cloned() else { return };
        drop(map);
        let epoch = stream.update(|s| {
            s.packager.end();
            s.closed_at = Some(Instant::now());
            s.epoch += 1;
            s.epoch
        });
        info!(room, grace = ?self.grace, "hls: stream closed");
        // Removal on time needs a runtime; without one, the next store access purges it.
        if let (Ok(rt), Some(me)) = (tokio::runtime::Handle::try_current(), self.me.upgrade()) {
            let room = room.to_owned();
            let grace = self.grace;
            rt.spawn(async move {
                tokio::time::sleep(grace).await;
                me.remove_closed(&room, epoch);
            });
        }
    }

    fn remove_closed(&self, room: &str, epoch: u64) {
        let mut map = self.map();
        let Some(stream) = map.get(room) else { return };
        let remove = {
            let s = stream.lock();
            s.epoch == epoch && s.closed_at.is_some()
        };
        if remove {
            map.remove(room);
            debug!(room, "hls: closed stream removed");
        }
    }

    fn purge_expired(&self, map: &mut HashMap<String, Arc<Stream>>) {
        let grace = self.grace;
        map.retain(|_, s| !s.lock().expired(grace));
    }

    pub(crate) fn get(&self, room: &str) -> Option<Arc<Stream>> {
        let mut map = self.map();
        let stream = map.get(room)?.clone();
        if stream.lock().expired(self.grace) {
            map.remove(room);
            return None;
        }
        Some(stream)
    }

    /// Positions and counters of the room's stream, if it exists.
    pub fn stats(&self, room: &str) -> Option<StreamStats> {
        self.get(room).map(|s| s.stats())
    }

    /// Rooms with a stream (live, or closed and in their grace period).
    pub fn rooms(&self) -> Vec<String> {
        let mut map = self.map();
        self.purge_expired(&mut map);
        let mut rooms: Vec<String> = map.keys().cloned().collect();
        rooms.sort();
        rooms
    }
}

impl StreamState {
    fn expired(&self, grace: Duration) -> bool {
        self.closed_at.is_some_and(|t| t.elapsed() >= grace)
    }
}

impl Stream {
    fn lock(&self) -> MutexGuard<'_, StreamState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads (or touches caches of) the packager; wakes nobody.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut Packager) -> R) -> R {
        f(&mut self.lock().packager)
    }

    /// Changes the stream and wakes every waiting request.
    fn update<R>(&self, f: impl FnOnce(&mut StreamState) -> R) -> R {
        let r = f(&mut self.lock());
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
        r
    }

    fn counter(&self) -> MutexGuard<'_, ViewerCounter> {
        self.viewers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A playlist request from the viewer with this key.
    pub(crate) fn viewer_seen(&self, key: u64) {
        self.counter().seen(key, Instant::now());
    }

    /// A "watching" beacon from the viewer with this key.
    pub(crate) fn viewer_beacon(&self, key: u64) {
        self.counter().beacon(key, Instant::now());
    }

    fn viewer_stats(&self) -> ViewerStats {
        self.counter().stats(Instant::now())
    }

    fn stats(&self) -> StreamStats {
        let (mut stats, delay) = {
            let state = self.lock();
            (state.packager.stats(), state.publish_delay.clone())
        };
        stats.publish_delay = delay;
        stats.waiting_requests = self.changed.receiver_count();
        let v = self.viewer_stats();
        (stats.viewers, stats.viewers_peak) = (v.current, v.peak);
        stats
    }

    /// Waits until `f` answers (checked now and after every change) or the deadline passes.
    pub(crate) async fn wait_until<T>(
        &self,
        deadline: tokio::time::Instant,
        mut f: impl FnMut(&mut Packager) -> Option<T>,
    ) -> Result<T, WaitError> {
        if let Some(v) = self.with(&mut f) {
            return Ok(v);
        }
        // Subscribe, then check again: a change between the two checks is not missed.
        let mut rx = self.changed.subscribe();
        loop {
            if let Some(v) = self.with(&mut f) {
                return Ok(v);
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(WaitError::Gone),
                Err(_) => return Err(WaitError::Timeout),
            }
        }
    }
}

impl StreamWriter {
    pub fn room(&self) -> &str {
        &self.stream.room
    }

    /// A new init segment (a compositor restart may bring a different one). Identical bytes
    /// are ignored; different ones get a new `init-{n}.mp4` for the segments that follow.
    pub fn init(&self, data: Bytes) {
        let room = &self.stream.room;
        let (changed, version) = {
            let mut s = self.stream.lock();
            let changed = s.packager.set_init(data);
            (changed, s.packager.stats().init_version)
        };
        if changed {
            self.stream.changed.send_modify(|v| *v = v.wrapping_add(1));
            info!(room, ?version, "hls: new init segment");
        }
    }

    /// Appends a part; `segment_start` closes the previous segment. Parts that cannot be
    /// published (no init yet, stream closed, empty, or not independent where playback must
    /// start) are dropped and counted.
    pub fn push_part(&self, part: Part) -> PushOutcome {
        self.push_part_composed_at(part, None)
    }

    /// [`Self::push_part`], also recording the publish delay: from `composed_at` (when the
    /// part's last frame was composed) to the part being in the playlist.
    pub fn push_part_composed_at(&self, part: Part, composed_at: Option<Instant>) -> PushOutcome {
        let room = &self.stream.room;
        let duration = part.duration;
        self.stream.update(|s| {
            let before = s.packager.stats().parts_over_target;
            let outcome = s.packager.push_part(part, SystemTime::now());
            if let (Some(at), PushOutcome::Published { .. }) = (composed_at, outcome) {
                s.publish_delay.record(at.elapsed());
            }
            let flag = match outcome {
                PushOutcome::Dropped(reason) => {
                    let bit = 1u8 << (reason as u8);
                    if s.warned & bit == 0 {
                        warn!(room, ?reason, "hls: part dropped (further drops of this kind logged at debug)");
                    } else {
                        debug!(room, ?reason, "hls: part dropped");
                    }
                    bit
                }
                PushOutcome::Published { .. } if s.packager.stats().parts_over_target > before => {
                    if s.warned & 0x80 == 0 {
                        warn!(room, ?duration, part_target = ?s.packager.config().part_target,
                            "hls: part longer than PART-TARGET (published; check the compositor's chunk duration)");
                    }
                    0x80
                }
                PushOutcome::Published { .. } => 0,
            };
            s.warned |= flag;
            outcome
        })
    }

    /// The next segment starts after EXT-X-DISCONTINUITY (compositor restarted, timestamps
    /// jump). The segment in progress is closed.
    pub fn discontinuity(&self) {
        self.stream.update(|s| s.packager.discontinuity());
        debug!(room = %self.stream.room, "hls: discontinuity");
    }

    pub fn stats(&self) -> StreamStats {
        self.stream.stats()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packager::DropReason;

    fn part(start: bool) -> Part {
        Part { data: Bytes::from_static(b"moof+mdat"), duration: Duration::from_millis(333), independent: start, segment_start: start }
    }

    #[test]
    fn first_msn_follows_the_clock() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(first_msn_at(t), 17_000_000_001);
        assert!(first_msn_at(t + Duration::from_secs(60)) > first_msn_at(t) + 60 * 9);
    }

    #[test]
    fn open_close_reopen_continues_numbering() {
        let store = HlsStore::with_grace(Duration::from_secs(60));
        let w = store.open("r-1", PackagerConfig::default());
        w.init(Bytes::from_static(b"init"));
        for i in 0..6 {
            w.push_part(part(i % 3 == 0));
        }
        store.close("r-1");
        let s = store.stats("r-1").unwrap();
        assert!(s.ended);
        let last = s.last_msn.unwrap();
        assert_eq!(w.push_part(part(true)), PushOutcome::Dropped(DropReason::Ended));
        let w2 = store.open("r-1", PackagerConfig::default());
        assert!(matches!(w2.push_part(part(true)), PushOutcome::Published { msn, index: 0 } if msn == last + 1));
        assert!(!store.stats("r-1").unwrap().ended);
        assert_eq!(store.rooms(), ["r-1"]);
        assert!(store.stats("r-2").is_none());
    }

    #[test]
    fn publish_delay_counts_published_parts_only() {
        let store = HlsStore::new();
        let w = store.open("r-1", PackagerConfig::default());
        w.init(Bytes::from_static(b"init"));
        let composed = Instant::now() - Duration::from_millis(40);
        w.push_part_composed_at(part(false), Some(composed)); // dropped: no keyframe yet
        w.push_part_composed_at(part(true), Some(composed));
        w.push_part(part(false)); // no composition time: not counted
        let d = w.stats().publish_delay;
        assert_eq!(d.count, 1, "{d:?}");
        assert!(d.last_us.unwrap() >= 40_000, "{d:?}");
    }

    #[test]
    fn open_on_a_live_stream_breaks_the_timeline() {
        let store = HlsStore::new();
        let w = store.open("r-1", PackagerConfig::default());
        w.init(Bytes::from_static(b"init"));
        w.push_part(part(true));
        w.push_part(part(false));
        let first = w.stats().next_msn;
        let w2 = store.open("r-1", PackagerConfig { window_segments: 3, ..PackagerConfig::default() });
        assert_eq!(w2.stats().last_msn, Some(first), "segment in progress closed");
        assert_eq!(w2.push_part(part(false)), PushOutcome::Dropped(DropReason::NotIndependent));
        assert_eq!(w2.push_part(part(true)), PushOutcome::Published { msn: first + 1, index: 0 });
        let s = store.get("r-1").unwrap();
        let st = s.with(|p| p.playlist_state());
        assert!(st.partial.unwrap().discontinuity);
        assert_eq!(s.with(|p| p.config().window_segments), 10, "first config kept");
    }

    #[test]
    fn closed_streams_expire_without_a_runtime() {
        let store = HlsStore::with_grace(Duration::ZERO);
        store.open("a", PackagerConfig::default());
        store.open("b", PackagerConfig::default());
        store.close("a");
        assert!(store.stats("a").is_none());
        assert_eq!(store.rooms(), ["b"]);
    }

    #[tokio::test(start_paused = true)]
    async fn closed_stream_removed_after_grace_unless_reopened() {
        let store = HlsStore::with_grace(Duration::from_secs(30));
        store.open("a", PackagerConfig::default());
        store.open("b", PackagerConfig::default());
        store.close("a");
        store.close("b");
        tokio::time::sleep(Duration::from_secs(10)).await;
        store.open("b", PackagerConfig::default()); // continued: the old timer must not remove it
        tokio::time::sleep(Duration::from_secs(25)).await;
        assert_eq!(store.map().keys().count(), 1, "timer removed the closed stream");
        assert!(store.stats("b").is_some());
    }
}
