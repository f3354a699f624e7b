//! How many cores a node used since its last heartbeat: the gateway process and its
//! compositors (child processes, whose time the kernel gives the parent only when they exit).
//! Per process, not the whole machine, so nodes sharing one machine (a test, a small
//! deployment) each report their own work.

use std::collections::HashMap;
use std::time::Instant;

/// CPU ticks per process at the last sample; a process seen for the first time counts from 0
/// (a compositor started since the last sample: all its time is recent).
#[derive(Debug, Default)]
pub struct NodeCpu {
    last: HashMap<u32, u64>,
    at: Option<Instant>,
}

impl NodeCpu {
    /// Cores used since the last call by the processes `pids` (0 on the first call).
    pub fn sample(&mut self, pids: &[u32], now: Instant) -> f64 {
        let ticks: HashMap<u32, u64> = pids.iter().filter_map(|&p| crate::clock::process_cpu_ticks(p).map(|t| (p, t))).collect();
        let used = used_ticks(&self.last, &ticks);
        let elapsed = self.at.map(|t| now.saturating_duration_since(t).as_secs_f64());
        self.last = ticks;
        self.at = Some(now);
        match elapsed {
            Some(secs) if secs > 0.0 => used as f64 / crate::clock::clock_ticks_per_second() as f64 / secs,
            _ => 0.0,
        }
    }
}

/// Ticks used between two samples, over the processes alive now (one that ended took its
/// time with it; one that is new counts all of its own).
pub fn used_ticks(before: &HashMap<u32, u64>, now: &HashMap<u32, u64>) -> u64 {
    now.iter().map(|(pid, t)| t.saturating_sub(before.get(pid).copied().unwrap_or(0))).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_what_each_live_process_used_and_all_of_a_new_one() {
        let before = HashMap::from([(1, 100), (2, 50), (3, 70)]);
        // 1 used 30, 2 ended, 3 restarted under the same pid with fewer ticks (counted as 0),
        // 4 is new with 12.
        let now = HashMap::from([(1, 130), (3, 5), (4, 12)]);
        assert_eq!(used_ticks(&before, &now), 30 + 12);
    }

    #[test]
    fn a_busy_thread_shows_as_cores() {
        let mut m = NodeCpu::default();
        let me = [std::process::id()];
        let t0 = Instant::now();
        assert_eq!(m.sample(&me, t0), 0.0, "nothing to compare the first sample with");
        let spin_until = Instant::now() + std::time::Duration::from_millis(300);
        let mut x = 0u64;
        while Instant::now() < spin_until {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        let cores = m.sample(&me, Instant::now());
        // One thread spinning: about one core (the test runner's other threads add a little;
        // a starved host takes some away).
        assert!(cores > 0.3 && cores < 2.5, "{cores}");
    }
}
