//! Compositors started ahead of need. A compositor's start costs GStreamer's and its plugins'
//! loading and the pipeline's building: 0.1–2.9 s on a host loaded by the room's own
//! browsers, which a viewer sees as the broadcast's go-live (or a restart's gap). A spare has
//! that behind it: it waits in `--standby` (no CPU) until a broadcast takes it and says
//! `start`. The node keeps up to `--compositor-spares` of them once someone publishes, and
//! replaces a taken one soon after: a spare's start costs about 0.07 s of CPU (GStreamer
//! loaded, pipeline built and PAUSED; `/usr/bin/time roomcast-compositor --standby </dev/null`),
//! nothing a running broadcast notices.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::compositor::{Compositor, OutputFormat};

/// A taken spare is replaced this long after: the new broadcast's first steps go first.
pub const REFILL_AFTER: Duration = Duration::from_secs(2);

pub struct Spares {
    bin: PathBuf,
    format: OutputFormat,
    want: usize,
    refill_after: Duration,
    ready: Mutex<Vec<Compositor>>,
    /// A fill is scheduled or running (one at a time).
    filling: AtomicBool,
}

impl Spares {
    /// `want` spares, a taken one replaced `refill_after` later ([`REFILL_AFTER`] in the gateway).
    pub fn new(bin: PathBuf, format: OutputFormat, want: usize, refill_after: Duration) -> Arc<Self> {
        Arc::new(Self { bin, format, want, refill_after, ready: Mutex::new(Vec::new()), filling: AtomicBool::new(false) })
    }

    /// A spare that is still alive, if one is ready; a refill follows after `refill_after`.
    pub fn take(self: &Arc<Self>) -> Option<Compositor> {
        let taken = {
            let mut ready = self.ready.lock().expect("spares lock");
            ready.retain_mut(Compositor::is_running);
            ready.pop()
        };
        if self.want > 0 {
            self.fill_after(self.refill_after);
        }
        taken
    }

    /// Hands this compositor out at the next take (tests: in-memory compositors).
    #[cfg(test)]
    pub fn offer(&self, compositor: Compositor) {
        self.ready.lock().expect("spares lock").insert(0, compositor);
    }

    /// Spares ready now (ops and metrics).
    pub fn ready(&self) -> usize {
        let mut ready = self.ready.lock().expect("spares lock");
        ready.retain_mut(Compositor::is_running);
        ready.len()
    }

    /// Starts spares up to the wanted number, after `delay`; nothing if a fill is already due.
    pub fn fill_after(self: &Arc<Self>, delay: Duration) {
        if self.want == 0 || self.filling.swap(true, Ordering::AcqRel) {
            return;
        }
        let spares = Arc::downgrade(self);
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
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
        let spares = Spares::new(script(dir.path(), "standby", "exec cat >/dev/null"), format(), 1, Duration::from_millis(300));
        assert!(spares.take().is_none(), "nothing ready before a fill");
        wait_ready(&spares, 1).await; // the take asked for a refill
        spares.fill_after(Duration::ZERO);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(spares.ready(), 1, "never more than wanted");
        let mut taken = spares.take().expect("a spare");
        assert!(taken.is_running());
        assert_eq!(spares.ready(), 0);
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(spares.ready(), 0, "the replacement waits out refill_after");
        wait_ready(&spares, 1).await;
        taken.kill().await;
    }

    /// A spare that dies in standby is not handed out, and a fill does not respawn it in a loop.
    #[tokio::test]
    async fn a_dead_spare_is_skipped_and_not_respawned_in_a_loop() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("spawned");
        let bin = script(dir.path(), "dies", &format!("echo x >> {}; exit 1", log.display()));
        let spares = Spares::new(bin, format(), 1, Duration::from_secs(60));
        spares.fill_after(Duration::ZERO);
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(spares.take().is_none(), "a dead spare is not handed out");
        assert_eq!(std::fs::read_to_string(&log).unwrap().lines().count(), 1, "one start per fill");
        let none = Spares::new(PathBuf::from("/nonexistent/roomcast-compositor"), format(), 1, Duration::ZERO);
        none.fill_after(Duration::ZERO);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(none.ready(), 0);
    }
}
