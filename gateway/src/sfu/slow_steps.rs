//! Datagrams the SFU worker took long to handle, summed up over a window instead of one log
//! line each: on a starved host hundreds of datagrams a second wait, and a warning per
//! datagram was itself a load. The summary says where the worker's time went (its own CPU
//! time against the wall clock, from [`ThreadUsage`]), so an operator knows whether the SFU
//! is busy (more workers), blocked (a lock or a full pipe) or starved (the host's CPU).

use std::time::{Duration, Instant};

use crate::clock::{ThreadUsage, Verdict};

/// A step (a datagram, or a command from signaling) that holds the worker this long is slow:
/// datagrams are counted here, commands logged one by one (they are rare).
pub const SLOW_STEP: Duration = Duration::from_millis(20);
/// At most one summary per this long.
pub const WINDOW: Duration = Duration::from_secs(5);

/// The slow steps of the current window.
#[derive(Debug, Clone)]
pub struct SlowSteps {
    since: Instant,
    usage_at_start: ThreadUsage,
    count: u64,
    worst: Duration,
    total: Duration,
}

/// One window's slow steps, for the log.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub count: u64,
    pub worst: Duration,
    /// Wall time the slow steps took together.
    pub total: Duration,
    pub window: Duration,
    /// What the worker thread used over the window.
    pub used: ThreadUsage,
}

impl Summary {
    /// Where the slow steps' time went, judged from the whole window (per-step CPU times would
    /// cost two system calls per datagram): a worker thread that used over half a core was
    /// busy; one that used less can only have waited, preempted (starved) or on a lock or pipe
    /// (blocked). Its voluntary waits say nothing here: it waits for datagrams all the time.
    pub fn verdict(&self) -> &'static str {
        if self.used.cpu_us * 2 >= self.window.as_micros() as u64 {
            Verdict::Busy.text()
        } else if self.used.preemptions >= self.count {
            Verdict::Starved.text()
        } else {
            Verdict::Blocked.text()
        }
    }
}

impl SlowSteps {
    pub fn new(now: Instant, usage: ThreadUsage) -> Self {
        Self { since: now, usage_at_start: usage, count: 0, worst: Duration::ZERO, total: Duration::ZERO }
    }

    /// A step took `took`; counted if that is slow.
    pub fn step(&mut self, took: Duration) {
        if took >= SLOW_STEP {
            self.count += 1;
            self.total += took;
            self.worst = self.worst.max(took);
        }
    }

    /// At `now`, once the window is over: its summary if any step was slow, and a new window
    /// (`usage`: the thread's usage now; asked only then).
    pub fn report(&mut self, now: Instant, usage: impl FnOnce() -> ThreadUsage) -> Option<Summary> {
        let window = now.saturating_duration_since(self.since);
        if window < WINDOW {
            return None;
        }
        let usage = usage();
        let summary = (self.count > 0).then(|| Summary {
            count: self.count,
            worst: self.worst,
            total: self.total,
            window,
            used: usage.since(self.usage_at_start),
        });
        *self = Self::new(now, usage);
        summary
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn slow_steps_are_summed_once_per_window_and_fast_ones_ignored() {
        let t0 = Instant::now();
        let mut s = SlowSteps::new(t0, ThreadUsage { cpu_us: 1_000, waits: 0, preemptions: 0 });
        s.step(MS * 3);
        s.step(MS * 40);
        s.step(MS * 700);
        assert_eq!(s.report(t0 + MS * 4_000, || panic!("not asked before the window ends")), None);
        let summary = s.report(t0 + MS * 5_000, || ThreadUsage { cpu_us: 21_000, waits: 1, preemptions: 40 }).unwrap();
        assert_eq!((summary.count, summary.worst, summary.total), (2, MS * 700, MS * 740));
        assert_eq!(summary.used, ThreadUsage { cpu_us: 20_000, waits: 1, preemptions: 40 });
        assert!(summary.verdict().starts_with("starved"), "{}", summary.verdict());
        // A quiet window says nothing, and counts from the last report.
        assert_eq!(s.report(t0 + MS * 10_000, || ThreadUsage { cpu_us: 22_000, waits: 1, preemptions: 40 }), None);
        s.step(MS * 30);
        let busy = s.report(t0 + MS * 15_000, || ThreadUsage { cpu_us: 3_022_000, waits: 9, preemptions: 41 }).unwrap();
        assert_eq!(busy.used.cpu_us, 3_000_000);
        assert!(busy.verdict().starts_with("busy"), "{}", busy.verdict());
        s.step(MS * 90);
        s.step(MS * 90);
        let blocked = s.report(t0 + MS * 20_000, || ThreadUsage { cpu_us: 3_100_000, waits: 500, preemptions: 42 }).unwrap();
        assert!(blocked.verdict().starts_with("blocked"), "{}", blocked.verdict());
    }
}
