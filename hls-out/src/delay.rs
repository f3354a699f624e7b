//! Part publish delay: from the moment a part's last frame was composed to the moment the part
//! is in the playlist (what viewers wait on top of the encoder). Kept as a fixed-bucket
//! histogram per stream, in microseconds (integers, so stats stay `Eq`), for `/metrics`.

use std::time::Duration;

use serde::Serialize;

/// Upper bounds of the buckets, in microseconds (the last bucket, +Inf, is implied).
pub const BUCKET_BOUNDS_US: [u64; 10] = [10_000, 25_000, 50_000, 100_000, 200_000, 350_000, 500_000, 1_000_000, 2_000_000, 5_000_000];

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DelayHistogram {
    /// Delays per bucket (not cumulative); one more entry than `BUCKET_BOUNDS_US` (+Inf).
    pub counts: [u64; BUCKET_BOUNDS_US.len() + 1],
    pub count: u64,
    pub sum_us: u64,
    /// The most recent delay.
    pub last_us: Option<u64>,
}

impl DelayHistogram {
    pub fn record(&mut self, delay: Duration) {
        let us = u64::try_from(delay.as_micros()).unwrap_or(u64::MAX);
        let bucket = BUCKET_BOUNDS_US.iter().position(|&bound| us <= bound).unwrap_or(BUCKET_BOUNDS_US.len());
        self.counts[bucket] += 1;
        self.count += 1;
        self.sum_us = self.sum_us.saturating_add(us);
        self.last_us = Some(us);
    }

    /// `(upper bound in seconds, delays in that bucket)`, +Inf last: the shape Prometheus
    /// encoders take.
    pub fn buckets_seconds(&self) -> Vec<(f64, u64)> {
        BUCKET_BOUNDS_US.iter().map(|&us| us as f64 / 1e6).chain(std::iter::once(f64::INFINITY)).zip(self.counts.iter().copied()).collect()
    }

    pub fn sum_seconds(&self) -> f64 {
        self.sum_us as f64 / 1e6
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_land_in_their_buckets() {
        let mut h = DelayHistogram::default();
        h.record(Duration::from_millis(5)); // ≤ 10 ms
        h.record(Duration::from_millis(10)); // a bound belongs to its bucket
        h.record(Duration::from_millis(120)); // ≤ 200 ms
        h.record(Duration::from_secs(9)); // +Inf
        assert_eq!(h.count, 4);
        assert_eq!(h.counts[0], 2);
        assert_eq!(h.counts[4], 1);
        assert_eq!(h.counts[BUCKET_BOUNDS_US.len()], 1);
        assert_eq!(h.counts.iter().sum::<u64>(), h.count);
        assert_eq!(h.sum_us, 5_000 + 10_000 + 120_000 + 9_000_000);
        assert_eq!(h.last_us, Some(9_000_000));
    }

    #[test]
    fn buckets_for_prometheus_end_with_infinity() {
        let mut h = DelayHistogram::default();
        h.record(Duration::from_millis(300));
        let b = h.buckets_seconds();
        assert_eq!(b.len(), BUCKET_BOUNDS_US.len() + 1);
        assert_eq!(b[0], (0.01, 0));
        assert_eq!(b[5], (0.35, 1));
        assert!(b.last().unwrap().0.is_infinite());
        assert!((h.sum_seconds() - 0.3).abs() < 1e-9);
    }
}
