//! Counting a stream's viewers (pure: instants are passed in, in order).
//!
//! A viewer is a distinct key seen on a playlist request within the last `window` (the
//! stream uses 3 target durations: a live player reloads the playlist at least once per
//! target duration, an LL-HLS player about once per part). Keys are 64-bit hashes (the
//! routes hash a per-tab viewer id, or the client address + User-Agent): no address is
//! kept. Sightings go in a queue in time order, so expiring them is amortised O(1) per
//! request and the count is exact; a key's sighting is refreshed at most every `window / 8`
//! (it may expire up to that much early), which bounds the queue for fast reloaders.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// More distinct keys than this within one window are not tracked (memory bound): the
/// count then reads as this value.
pub const MAX_TRACKED: usize = 200_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct ViewerStats {
    /// Distinct viewers within the window now.
    pub current: usize,
    /// The highest `current` since the broadcast (re)started.
    pub peak: usize,
}

#[derive(Debug)]
pub struct ViewerCounter {
    window: Duration,
    /// Each tracked key and the instant of its latest sighting in `queue`.
    last_seen: HashMap<u64, Instant>,
    /// Sightings, oldest first.
    queue: VecDeque<(Instant, u64)>,
    peak: usize,
}

impl ViewerCounter {
    pub fn new(window: Duration) -> Self {
        Self { window, last_seen: HashMap::new(), queue: VecDeque::new(), peak: 0 }
    }

    pub fn window(&self) -> Duration {
        self.window
    }

    fn expire(&mut self, now: Instant) {
        while let Some(&(t, key)) = self.queue.front() {
            if now.saturating_duration_since(t) < self.window {
                break;
            }
            self.queue.pop_front();
            // Only the key's latest sighting removes it.
            if self.last_seen.get(&key) == Some(&t) {
                self.last_seen.remove(&key);
            }
        }
    }

    /// A playlist request from `key` at `now` (not earlier than any previous `now`).
    pub fn seen(&mut self, key: u64, now: Instant) {
        self.expire(now);
        match self.last_seen.get(&key) {
            Some(t) if now.saturating_duration_since(*t) < self.window / 8 => return,
            Some(_) => {}
            None if self.last_seen.len() >= MAX_TRACKED => return,
            None => {}
        }
        self.last_seen.insert(key, now);
        self.queue.push_back((now, key));
        self.peak = self.peak.max(self.last_seen.len());
    }

    /// Distinct viewers seen within the window before `now`, and the peak.
    pub fn stats(&mut self, now: Instant) -> ViewerStats {
        self.expire(now);
        ViewerStats { current: self.last_seen.len(), peak: self.peak }
    }

    /// A new broadcast on the same stream: the peak starts again from who is watching now.
    pub fn restart_peak(&mut self, now: Instant) {
        self.expire(now);
        self.peak = self.last_seen.len();
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
        assert_eq!(c.queue.len(), 6);
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
        assert!(c.queue.len() <= 2, "expired sightings are gone");
    }
}
