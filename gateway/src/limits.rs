//! Abuse limits: token buckets for message rate per connection and joins per IP.
//! Plain state machines over explicit time, so they are tested without clocks.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Allows `burst` events at once and `per_second` on average.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    capacity: f64,
    refill_per_sec: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn new(per_second: f64, burst: f64, now: Instant) -> Self {
        Self { capacity: burst, refill_per_sec: per_second, tokens: burst, last: now }
    }

    /// Takes one token if there is one.
    pub fn try_take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.refill_per_sec).min(self.capacity);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Full again (and so forgettable) after this long without use.
    fn idle_full(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.last).as_secs_f64() * self.refill_per_sec + self.tokens >= self.capacity
    }
}

/// Joins per client IP (a bucket per address; idle ones are dropped).
pub struct JoinLimiter {
    per_minute: u32,
    buckets: Mutex<HashMap<IpAddr, TokenBucket>>,
}

impl JoinLimiter {
    pub fn new(per_minute: u32) -> Self {
        Self { per_minute, buckets: Mutex::new(HashMap::new()) }
    }

    pub fn allow(&self, ip: IpAddr, now: Instant) -> bool {
        if self.per_minute == 0 {
            return true;
        }
        let mut buckets = self.buckets.lock().expect("limiter lock");
        if buckets.len() > 10_000 {
            buckets.retain(|_, b| !b.idle_full(now));
        }
        let per_minute = f64::from(self.per_minute);
        buckets.entry(ip).or_insert_with(|| TokenBucket::new(per_minute / 60.0, per_minute, now)).try_take(now)
    }
}

pub const RETRY_HINT: Duration = Duration::from_secs(1);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_a_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10.0, 3.0, t0);
        assert!(b.try_take(t0) && b.try_take(t0) && b.try_take(t0));
        assert!(!b.try_take(t0), "burst used up");
        assert!(!b.try_take(t0 + Duration::from_millis(50)), "half a token");
        assert!(b.try_take(t0 + Duration::from_millis(100)), "one token after 100 ms at 10/s");
        assert!(
            b.try_take(t0 + Duration::from_secs(60))
                && b.try_take(t0 + Duration::from_secs(60))
                && b.try_take(t0 + Duration::from_secs(60))
        );
        assert!(!b.try_take(t0 + Duration::from_secs(60)), "refill is capped at the burst");
    }

    #[test]
    fn joins_are_limited_per_ip() {
        let t0 = Instant::now();
        let l = JoinLimiter::new(2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        assert!(l.allow(a, t0) && l.allow(a, t0));
        assert!(!l.allow(a, t0));
        assert!(l.allow(b, t0), "other addresses are not affected");
        assert!(l.allow(a, t0 + Duration::from_secs(30)), "one join per 30 s at 2/min");
        assert!(JoinLimiter::new(0).allow(a, t0), "0 = unlimited");
    }
}
