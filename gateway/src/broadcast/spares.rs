//! Compositors started ahead of need. A compositor's start costs GStreamer's and its plugins'
//! loading and the pipeline's building: 0.1–2.9 s on a host loaded by the room's own
//! browsers, which a viewer sees as the broadcast's go-live (or a restart's gap). A spare has
//! that behind it: it waits in `--standby` (no CPU) until a broadcast takes it and says
//! `start`. The node keeps up to `--compositor-spares` of them once someone publishes. A taken
//! spare is replaced when the host is calm ([`Calm`]): its start-up (about a second of CPU)
//! would otherwise land on the new broadcast's busiest seconds (its late joiners' keyframes).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::compositor::{Compositor, OutputFormat};

/// When a taken spare is replaced: not before `after`, then once the host's CPUs were idle
/// for at least `idle_share` of a look, and at the latest `at_most` after the take.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Calm {
    pub after: Duration,
    pub idle_share: f64,
    pub at_most: Duration,
}

/// The gateway's: 5 s, a quarter of the CPUs idle, at most a minute.
pub const REFILL: Calm = Calm { after: Duration::from_secs(5), idle_share: 0.25, at_most: Duration::from_secs(60) };

/// How often the host's idle share is looked at while a refill waits.
const LOOK: Duration = Duration::from_millis(500);

impl Calm {
    /// Start the replacement now? `waited`: since the take; `idle`: the CPUs' idle share over
    /// the last look, if it could be read (without it, only the time counts).
    pub fn refill_now(&self, waited: Duration, idle: Option<f64>) -> bool {
        waited >= self.at_most || (waited >= self.after && idle.is_some_and(|i| i >= self.idle_share))
    }
}

/// The CPUs' (idle, total) time so far, from `/proc/stat`'s first line (idle counts iowait).
pub fn cpu_times(stat: &str) -> Option<(u64, u64)> {
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let fields: Vec<u64> = line.split_whitespace().map(|f| f.parse().ok()).collect::<Option<_>>()?;
    let idle = fields.get(3)? + fields.get(4).copied().unwrap_or(0);
    // guest and guest_nice (9th, 10th) are already counted in user and nice.
    let total = fields.iter().take(8).sum();
    Some((idle, total))
}

/// The idle share between two [`cpu_times`] readings.
pub fn idle_share(before: (u64, u64), after: (u64, u64)) -> Option<f64> {
    let total = after.1.checked_sub(before.1).filter(|t| *t > 0)?;
    Some(after.0.saturating_sub(before.0) as f64 / total as f64)
}

async fn read_cpu_times() -> Option<(u64, u64)> {
    cpu_times(&tokio::fs::read_to_string("/proc/stat").await.ok()?)
}

/// Waits until `calm` says the replacement may start.
async fn wait_for_calm(calm: Calm) {
    let began = tokio::time::Instant::now();
    tokio::time::sleep(calm.after).await;
    loop {
        let before = read_cpu_times().await;
        tokio::time::sleep(LOOK).await;
        let idle = match (before, read_cpu_times().await) {
            (Some(b), Some(a)) => idle_share(b, a),
            _ => None,
        };
        if calm.refill_now(began.elapsed(), idle) {
            return;
        }
    }
}

pub struct Spares {
    bin: PathBuf,
    format: OutputFormat,
    want: usize,
    refill: Calm,
    ready: Mutex<Vec<Compositor>>,
    /// A fill is scheduled or running (one at a time).
    filling: AtomicBool,
}

impl Spares {
    /// `want` spares, a taken one replaced as `refill` says ([`REFILL`] in the gateway).
    pub fn new(bin: PathBuf, format: OutputFormat, want: usize, refill: Calm) -> Arc<Self> {
        Arc::new(Self { bin, format, want, refill, ready: Mutex::new(Vec::new()), filling: AtomicBool::new(false) })
    }

    /// A spare that is still alive, if one is ready; its replacement waits for a calm host.
    pub fn take(self: &Arc<Self>) -> Option<Compositor> {
        let taken = {
            let mut ready = self.ready.lock().expect("spares lock");
            ready.retain_mut(Compositor::is_running);
            ready.pop()
        };
        self.fill(Some(self.refill));
        taken
    }

    /// Spares ready now (ops and metrics).
    pub fn ready(&self) -> usize {
        let mut ready = self.ready.lock().expect("spares lock");
        ready.retain_mut(Compositor::is_running);
        ready.len()
    }

    /// Someone publishes: start spares up to the wanted number now.
    pub fn prepare(self: &Arc<Self>) {
        self.fill(None);
    }

    /// Starts spares up to the wanted number, once `calm` allows (now without it); nothing if
    /// a fill is already due.
    fn fill(self: &Arc<Self>, calm: Option<Calm>) {
        if self.want == 0 || self.filling.swap(true, Ordering::AcqRel) {
            return;
        }
        let spares = Arc::downgrade(self);
        tokio::spawn(async move {
            if let Some(calm) = calm {
                wait_for_calm(calm).await;
            }
            let Some(spares) = spares.upgrade() else { return };
            // At most the missing number per fill: a spare that dies at once is not respawned
            // in a loop (the next take or publish tries again).
            for _ in spares.ready()..spares.want {
                match Compositor::spawn(&spares.bin, &spares.format) {
                    Ok(c) => spares.ready.lock().expect("spares lock").push(c),
                    Err(e) => {
                        // The broadcast's own start reports a missing binary where it matters.
                        tracing::debug!(bin = %spares.bin.display(), error = %e, "no spare compositor");
                        break;
                    }
                }
            }
            spares.filling.store(false, Ordering::Release);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn script(dir: &std::path::Path, name: &str, body: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    fn format() -> OutputFormat {
        OutputFormat { width: 64, height: 36, fps: 30, part: Duration::from_millis(333), segment: Duration::from_secs(1) }
    }

    async fn wait_ready(spares: &Spares, n: usize) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while spares.ready() != n {
            assert!(tokio::time::Instant::now() < deadline, "{} spares ready, not {n}", spares.ready());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A stand-in that waits in "standby" (reads stdin until it closes), as the compositor does.
    #[tokio::test]
    async fn a_taken_spare_is_replaced_later() {
        let dir = tempfile::tempdir().unwrap();
        // Replaced 300 ms after a take, whatever the host's load.
        let soon = Calm { after: Duration::from_millis(300), idle_share: 2.0, at_most: Duration::from_millis(300) };
        let spares = Spares::new(script(dir.path(), "standby", "exec cat >/dev/null"), format(), 1, soon);
        assert!(spares.take().is_none(), "nothing ready before a fill");
        wait_ready(&spares, 1).await; // the take asked for a refill
        spares.prepare();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(spares.ready(), 1, "never more than wanted");
        let mut taken = spares.take().expect("a spare");
        assert!(taken.is_running());
        assert_eq!(spares.ready(), 0);
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(spares.ready(), 0, "the replacement waits for its time");
        wait_ready(&spares, 1).await;
        taken.kill().await;
    }

    /// A spare that dies in standby is not handed out, and a fill does not respawn it in a loop.
    #[tokio::test]
    async fn a_dead_spare_is_skipped_and_not_respawned_in_a_loop() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("spawned");
        let bin = script(dir.path(), "dies", &format!("echo x >> {}; exit 1", log.display()));
        let spares = Spares::new(bin, format(), 1, REFILL);
        spares.prepare();
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(spares.take().is_none(), "a dead spare is not handed out");
        assert_eq!(std::fs::read_to_string(&log).unwrap().lines().count(), 1, "one start per fill");
        let none = Spares::new(PathBuf::from("/nonexistent/roomcast-compositor"), format(), 1, REFILL);
        none.prepare();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(none.ready(), 0);
    }

    #[test]
    fn a_refill_waits_for_a_calm_host_or_its_limit() {
        let calm = REFILL;
        assert!(!calm.refill_now(Duration::from_secs(1), Some(0.9)), "not before `after`, however idle");
        assert!(calm.refill_now(Duration::from_secs(5), Some(0.25)));
        assert!(!calm.refill_now(Duration::from_secs(30), Some(0.05)), "a saturated host: wait");
        assert!(!calm.refill_now(Duration::from_secs(30), None), "no reading: wait for the limit");
        assert!(calm.refill_now(Duration::from_secs(60), Some(0.0)), "at the limit, whatever the load");
    }

    #[test]
    fn idle_share_from_proc_stat() {
        let a = "cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 50 0 25 400 25 0 0 0 0 0\n";
        let b = "cpu  160 10 70 900 60 0 0 0 7 0\n";
        assert_eq!(cpu_times(a), Some((850, 1000)));
        assert_eq!(cpu_times(b), Some((960, 1200)), "guest time is part of user time already");
        assert_eq!(idle_share(cpu_times(a).unwrap(), cpu_times(b).unwrap()), Some(110.0 / 200.0));
        assert_eq!(idle_share((5, 10), (5, 10)), None, "no time passed");
        assert_eq!(cpu_times("intr 1 2 3"), None);
        assert_eq!(cpu_times("cpu  1 x 3"), None);
    }
}
