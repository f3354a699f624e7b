//! Small helpers shared by the benchmark binaries (`src/bin/`): percentiles, process CPU and
//! memory from /proc, where the repository is.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// The repository root (this crate lives in `tests/`).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().map(PathBuf::from).unwrap_or_default()
}

/// Nearest-rank percentile of sorted values (`p` in 0..=100).
pub fn percentile<T: Copy>(sorted: &[T], p: f64) -> Option<T> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// min / p50 / p95 / p99 / max / mean of a set of durations.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Summary {
    pub n: usize,
    pub min_ms: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl Summary {
    pub fn of(values: &[Duration]) -> Option<Summary> {
        let mut v: Vec<Duration> = values.to_vec();
        v.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        Some(Summary {
            n: v.len(),
            min_ms: ms(*v.first()?),
            p50_ms: ms(percentile(&v, 50.0)?),
            p95_ms: ms(percentile(&v, 95.0)?),
            p99_ms: ms(percentile(&v, 99.0)?),
            max_ms: ms(*v.last()?),
            mean_ms: ms(v.iter().sum::<Duration>()) / v.len() as f64,
        })
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "n={} p50={:.0} ms p95={:.0} ms (min {:.0}, max {:.0}, mean {:.0})",
            self.n, self.p50_ms, self.p95_ms, self.min_ms, self.max_ms, self.mean_ms
        )
    }
}

/// Clock ticks per second of /proc/<pid>/stat times (USER_HZ; 100 on Linux).
const CLK_TCK: f64 = 100.0;

/// CPU time and resident memory of one process at one instant.
#[derive(Debug, Clone, Copy)]
pub struct ProcSample {
    pub at: Instant,
    /// utime + stime, seconds.
    pub cpu_s: f64,
    pub rss_bytes: u64,
    pub threads: u64,
}

impl ProcSample {
    pub fn read(pid: u32) -> Result<ProcSample> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).with_context(|| format!("/proc/{pid}/stat"))?;
        // Fields after the command name (which may hold spaces) start after the last ')'.
        let rest = &stat[stat.rfind(')').context("stat format")? + 2..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        // rest[0] is field 3 (state): utime is field 14, stime 15, num_threads 20, rss 24 (pages).
        let field = |n: usize| -> Result<u64> { Ok(f.get(n - 3).context("stat field")?.parse()?) };
        let cpu_s = (field(14)? + field(15)?) as f64 / CLK_TCK;
        let rss_bytes = field(24)? * page_size();
        Ok(ProcSample { at: Instant::now(), cpu_s, rss_bytes, threads: field(20)? })
    }

    /// CPU use between two samples, in % of one core.
    pub fn cpu_percent_since(&self, earlier: &ProcSample) -> f64 {
        let wall = self.at.saturating_duration_since(earlier.at).as_secs_f64();
        if wall <= 0.0 {
            return 0.0;
        }
        100.0 * (self.cpu_s - earlier.cpu_s) / wall
    }
}

fn page_size() -> u64 {
    // Linux on x86-64 and arm64 as we run it.
    4096
}

/// The 1-minute load average (how busy the shared machine was).
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg").ok()?.split_whitespace().next()?.parse().ok()
}

/// Milliseconds, for printing.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u32> = (1..=20).collect();
        assert_eq!(percentile(&v, 50.0), Some(10));
        assert_eq!(percentile(&v, 95.0), Some(19));
        assert_eq!(percentile(&v, 100.0), Some(20));
        assert_eq!(percentile(&v, 0.0), Some(1));
        assert_eq!(percentile::<u32>(&[], 50.0), None);
        let s = Summary::of(&[Duration::from_millis(30), Duration::from_millis(10), Duration::from_millis(20)]).unwrap();
        assert_eq!((s.n, s.min_ms, s.p50_ms, s.max_ms), (3, 10.0, 20.0, 30.0));
    }

    #[test]
    fn reads_our_own_process() {
        let a = ProcSample::read(std::process::id()).unwrap();
        assert!(a.rss_bytes > 1_000_000 && a.threads >= 1);
    }
}
