//! Counting a stream's viewers (pure: instants are passed in, in order).
//!
//! A viewer is a distinct key seen within a window: on a playlist request within the last
//! `window` (the stream uses 3 target durations: a live player reloads the playlist at least
//! once per target duration, an LL-HLS player about once per part), or on a "watching"
//! beacon within the last [`BEACON_WINDOW`] (the watch page sends one every
//! [`BEACON_EVERY`]: behind an edge cache or a CDN, playlist requests are answered by the
//! cache, beacons never are). Keys are 64-bit hashes (the routes hash a per-tab viewer id, or
//! the client address + User-Agent): no address is kept. Each key keeps the latest instant
//! it counts until; sightings go in one queue per kind, in time order, so expiring them is
//! amortised O(1) per request and the count is exact. A key's sighting is refreshed at most
//! every `window / 8` (it may expire up to that much early), which bounds the queues for fast
//! reloaders.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// More distinct keys than this within one window are not tracked (memory bound): the
/// count then reads as this value.
pub const MAX_TRACKED: usize = 200_000;

/// How often the watch page says it is watching.
pub const BEACON_EVERY: Duration = Duration::from_secs(10);
/// How long one beacon counts: two and a half intervals, so one lost or late beacon does not
/// drop the viewer.
pub const BEACON_WINDOW: Duration = Duration::from_millis(25_000);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct ViewerStats {
    /// Distinct viewers within the window now.
    pub current: usize,
    /// The highest `current` since the broadcast (re)started.
    pub peak: usize,
}

/// Sightings of one kind (playlist requests, beacons): how long each counts, oldest first.
#[derive(Debug)]
struct Sightings {
    lasts: Duration,
    queue: VecDeque<(Instant, u64)>,
}

#[derive(Debug)]
pub struct ViewerCounter {
    window: Duration,
    /// Each tracked key and the instant it counts until.
    until: HashMap<u64, Instant>,
    playlists: Sightings,
    beacons: Sightings,
    peak: usize,
}

impl ViewerCounter {
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            until: HashMap::new(),
            playlists: Sightings { lasts: window, queue: VecDeque::new() },
            beacons: Sightings { lasts: BEACON_WINDOW, queue: VecDeque::new() },
            peak: 0,
        }
    }

    pub fn window(&self) -> Duration {
        self.window
    }

    fn expire(&mut self, now: Instant) {
        for kind in [&mut self.playlists, &mut self.beacons] {
            while let Some(&(t, key)) = kind.queue.front() {
                let end = t + kind.lasts;
                if now < end {
                    break;
                }
                kind.queue.pop_front();
                // Only the sighting the key counts until removes it.
                if self.until.get(&key) == Some(&end) {
                    self.until.remove(&key);
                }
            }
        }
    }

    fn sighting(&mut self, beacon: bool, key: u64, now: Instant) {
        self.expire(now);
        let kind = if beacon { &mut self.beacons } else { &mut self.playlists };
        let end = now + kind.lasts;
        match self.until.get(&key) {
            // Counted long enough already (a recent sighting, or a beacon outlasting a request).
            Some(t) if *t + kind.lasts / 8 > end => return,
            Some(_) => {}
            None if self.until.len() >= MAX_TRACKED => return,
            None => {}
        }
        self.until.insert(key, end);
        kind.queue.push_back((now, key));
        self.peak = self.peak.max(self.until.len());
    }

    /// A playlist request from `key` at `now` (not earlier than any previous `now`).
    pub fn seen(&mut self, key: u64, now: Instant) {
        self.sighting(false, key, now);
    }

    /// A "watching" beacon from `key` at `now` (not earlier than any previous `now`).
    pub fn beacon(&mut self, key: u64, now: Instant) {
        self.sighting(true, key, now);
    }

    /// Distinct viewers seen within the window before `now`, and the peak.
    pub fn stats(&mut self, now: Instant) -> ViewerStats {
        self.expire(now);
        ViewerStats { current: self.until.len(), peak: self.peak }
    }

    /// A new broadcast on the same stream: the peak starts again from who is watching now.
    pub fn restart_peak(&mut self, now: Instant) {
        self.expire(now);
        self.peak = self.until.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: Duration = Duration::from_secs(3);

    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    #[test]
    fn distinct_keys_within_the_window() {
        let t0 = Instant::now();
        let mut c = ViewerCounter::new(W);
        assert_eq!(c.stats(t0), ViewerStats { current: 0, peak: 0 });
        // two players reloading every 333 ms
        for i in 0..9 {
            c.seen(1, at(t0, i * 333));
            c.seen(2, at(t0, i * 333 + 10));
        }
        assert_eq!(c.stats(at(t0, 2700)), ViewerStats { current: 2, peak: 2 });
        // viewer 2 stops; viewer 1 goes on
        for i in 9..30 {
            c.seen(1, at(t0, i * 333));
        }
        let end = at(t0, 29 * 333);
        assert_eq!(c.stats(end), ViewerStats { current: 1, peak: 2 }, "back to 1 after the window, peak kept");
        assert_eq!(c.stats(end + W).current, 0, "nobody within the window");
    }

    #[test]
    fn a_returning_viewer_counts_once_and_the_peak_ignores_expired_keys() {
        let t0 = Instant::now();
        let mut c = ViewerCounter::new(W);
        c.seen(1, t0);
        c.seen(1, at(t0, 100));
        assert_eq!(c.stats(at(t0, 200)).current, 1);
        // 1 leaves; 2 arrives just after 1 expired: never two at once
        c.seen(2, at(t0, 3200));
        assert_eq!(c.stats(at(t0, 3200)), ViewerStats { current: 1, peak: 1 });
    }

    #[test]
    fn restart_peak_starts_from_the_current_audience() {
        let t0 = Instant::now();
        let mut c = ViewerCounter::new(W);
        for k in 0..5 {
            c.seen(k, t0);
        }
        c.seen(0, at(t0, 2500));
        c.seen(0, at(t0, 2600)); // within window/8: not queued again
        assert_eq!(c.playlists.queue.len(), 6);
        c.restart_peak(at(t0, 3100));
        assert_eq!(c.stats(at(t0, 3100)), ViewerStats { current: 1, peak: 1 });
    }

    #[test]
    fn the_table_is_bounded() {
        let t0 = Instant::now();
        let mut c = ViewerCounter::new(W);
        for k in 0..(MAX_TRACKED as u64 + 10) {
            c.seen(k, t0);
        }
        assert_eq!(c.stats(t0).current, MAX_TRACKED);
        // known keys still refresh
        c.seen(3, at(t0, 2000));
        assert_eq!(c.stats(at(t0, 3500)).current, 1);
        assert!(c.playlists.queue.len() <= 2, "expired sightings are gone");
    }

    #[test]
    fn beacons_count_viewers_whose_playlist_requests_a_cache_answered() {
        let t0 = Instant::now();
        let mut c = ViewerCounter::new(W);
        // Behind an edge: the origin sees the edge's requests (one key) and each viewer's
        // beacon every 10 s.
        for i in 0..40 {
            c.seen(99, at(t0, i * 333));
        }
        for v in 1..=5 {
            c.beacon(v, at(t0, v * 100));
        }
        assert_eq!(c.stats(at(t0, 5000)).current, 6, "the edge and five viewers");
        // Viewers 1-4 beacon again at 10 s; viewer 5 left. The edge stops (no more requests).
        for v in 1..=4 {
            c.beacon(v, at(t0, 10_000 + v * 100));
        }
        assert_eq!(c.stats(at(t0, 20_000)).current, 5, "a beacon lasts 25 s; the edge's last request expired");
        assert_eq!(c.stats(at(t0, 25_600)).current, 4, "viewer 5's beacon ran out");
        assert_eq!(c.stats(at(t0, 35_500)).current, 0);
        assert_eq!(c.stats(at(t0, 35_500)).peak, 6);
    }

    #[test]
    fn a_playlist_request_does_not_shorten_a_beacon_and_a_beacon_extends_a_request() {
        let t0 = Instant::now();
        let mut c = ViewerCounter::new(W);
        c.seen(1, t0);
        c.beacon(1, at(t0, 1000)); // counts until 26 s
        c.seen(1, at(t0, 2000)); // would count until 5 s: changes nothing
        assert_eq!(c.stats(at(t0, 10_000)).current, 1);
        assert_eq!(c.stats(at(t0, 25_900)).current, 1);
        assert_eq!(c.stats(at(t0, 26_000)).current, 0);
        assert_eq!(c.playlists.queue.len() + c.beacons.queue.len(), 0);
    }
}
