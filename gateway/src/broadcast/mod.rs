//! Broadcasting a room: one supervised `roomcast-compositor` process per live room, fed by
//! plain-RTP legs from the SFU, its CMAF output packaged by hls-out.

pub mod compositor;
pub mod figures;
pub mod policy;
pub mod ports;
pub mod spares;
pub mod supervisor;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::oneshot;

use self::compositor::OutputFormat;
use self::figures::PipelineFigures;
use self::policy::{BroadcastState, RestartPolicy};
use self::ports::PortAllocator;
use self::spares::Spares;
use crate::clock::unix_now;
use crate::sfu::WorkerHandle;
use crate::store::BroadcastEnd;

/// What ops and the API see of one broadcast.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub state: BroadcastState,
    #[serde(skip)]
    pub since: Instant,
    pub restarts: u32,
    pub parts: u64,
    pub legs: usize,
    pub pid: Option<u32>,
    pub last_error: Option<String>,
    /// From the compositor's stats reports: fps in/out, stalled inputs, drops, encode time.
    #[serde(flatten)]
    pub figures: PipelineFigures,
    /// The last part's publish delay (its last frame composed → in the playlist), ms. Filled
    /// in by [`Broadcasts::status`] from hls-out.
    pub part_publish_delay_ms: Option<f64>,
    /// Distinct viewers of the room's HLS now (seen on a playlist request within 3 target
    /// durations, or on a "watching" beacon within 25 s), and the most at once since the
    /// broadcast started. Filled in by
    /// [`Broadcasts::status`] from hls-out.
    pub viewers: usize,
    pub viewers_peak: usize,
}

impl Status {
    /// A broadcast's status before its first compositor runs.
    pub fn starting() -> Self {
        Status {
            state: BroadcastState::Starting,
            since: Instant::now(),
            restarts: 0,
            parts: 0,
            legs: 0,
            pid: None,
            last_error: None,
            figures: PipelineFigures::default(),
            part_publish_delay_ms: None,
            viewers: 0,
            viewers_peak: 0,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BroadcastError {
    #[error("the broadcast is already running; stop it first with DELETE")]
    AlreadyLive,
    #[error("the broadcast is not running")]
    NotLive,
}

struct Running {
    status: Arc<Mutex<Status>>,
    stop: Option<oneshot::Sender<()>>,
    restart: tokio::sync::mpsc::UnboundedSender<()>,
    /// The supervisor task; after a stop it still shuts the compositor down and releases the
    /// ports, and a new broadcast of the room waits for it (see [`Broadcasts::start`]).
    task: tokio::task::JoinHandle<()>,
}

pub struct Broadcasts {
    inner: Mutex<HashMap<String, Running>>,
    /// Supervisors of stopped broadcasts that may still be finishing, by room.
    stopping: Mutex<HashMap<String, tokio::task::JoinHandle<()>>>,
    ports: Arc<Mutex<PortAllocator>>,
    pub hls: Arc<hls_out::HlsStore>,
    /// Signs private rooms' HLS URLs; set once at start (`auth::hls_url::install`).
    pub hls_urls: OnceLock<crate::auth::hls_url::HlsUrls>,
    bin: PathBuf,
    format: OutputFormat,
    spares: Arc<Spares>,
    policy: RestartPolicy,
}

impl Broadcasts {
    pub fn new(
        hls: Arc<hls_out::HlsStore>,
        bin: PathBuf,
        format: OutputFormat,
        ports: std::ops::Range<u16>,
        policy: RestartPolicy,
        spares: usize,
    ) -> Self {
        Self {
            spares: Spares::new(bin.clone(), format.clone(), spares, spares::REFILL_AFTER),
            inner: Mutex::new(HashMap::new()),
            stopping: Mutex::new(HashMap::new()),
            ports: Arc::new(Mutex::new(PortAllocator::new(ports))),
            hls,
            hls_urls: OnceLock::new(),
            bin,
            format,
            policy,
        }
    }

    pub fn start(&self, room: &str, worker: WorkerHandle) -> Result<(), BroadcastError> {
        let mut inner = self.inner.lock().expect("broadcasts lock");
        if inner.get(room).is_some_and(|r| r.status.lock().expect("status").state.is_running()) {
            return Err(BroadcastError::AlreadyLive);
        }
        let status = Arc::new(Mutex::new(Status::starting()));
        let (stop_tx, stop_rx) = oneshot::channel();
        let part = self.format.part;
        let sup = supervisor::Supervisor {
            room: room.to_owned(),
            worker,
            hls: self
                .hls
                .open(room, hls_out::PackagerConfig { part_target: part, segment_target: self.format.segment, window_segments: 12 }),
            hls_store: self.hls.clone(),
            ports: self.ports.clone(),
            status: status.clone(),
            bin: self.bin.clone(),
            format: self.format.clone(),
            spares: self.spares.clone(),
            policy: self.policy,
        };
        let (restart_tx, restart_rx) = tokio::sync::mpsc::unbounded_channel();
        // A stopped broadcast's supervisor may still be shutting its compositor down: the new
        // one starts after it, so the old one's last word to the SFU worker ("stop sending
        // legs") cannot cut off the new one's legs.
        let previous = self.stopping.lock().expect("stopping lock").remove(room).filter(|t| !t.is_finished());
        let task = tokio::spawn(async move {
            if let Some(previous) = previous {
                let _ = previous.await;
            }
            sup.run(stop_rx, restart_rx).await
        });
        inner.insert(room.to_owned(), Running { status, stop: Some(stop_tx), restart: restart_tx, task });
        tracing::info!(room, "broadcast starting");
        Ok(())
    }

    /// Stops the room's broadcast (running or failed): the compositor is asked to exit (its
    /// ports are released when it has), the playlist gets EXT-X-ENDLIST and stays served for
    /// hls-out's grace period. Returns what the store keeps of the end (its viewers peak is
    /// read before the stream closes).
    pub fn stop(&self, room: &str) -> Result<BroadcastEnd, BroadcastError> {
        let viewers_peak = self.viewers(room).peak;
        let mut inner = self.inner.lock().expect("broadcasts lock");
        let running = inner.get_mut(room).ok_or(BroadcastError::NotLive)?;
        let stop = running.stop.take().ok_or(BroadcastError::NotLive)?;
        let _ = stop.send(());
        let Some(running) = inner.remove(room) else { return Err(BroadcastError::NotLive) };
        drop(inner);
        let restarts = running.status.lock().expect("status").restarts;
        let mut stopping = self.stopping.lock().expect("stopping lock");
        stopping.retain(|_, t| !t.is_finished());
        stopping.insert(room.to_owned(), running.task);
        drop(stopping);
        self.hls.close(room);
        Ok(BroadcastEnd { stopped_at: unix_now(), restarts, viewers_peak: u32::try_from(viewers_peak).unwrap_or(u32::MAX) })
    }

    /// Restarts the room's compositor (ops): the room notices nothing, viewers see one
    /// discontinuity. Not counted against the failure budget.
    pub fn restart(&self, room: &str) -> Result<(), BroadcastError> {
        let inner = self.inner.lock().expect("broadcasts lock");
        let running = inner.get(room).ok_or(BroadcastError::NotLive)?;
        if !running.status.lock().expect("status").state.is_running() {
            return Err(BroadcastError::NotLive);
        }
        running.restart.send(()).map_err(|_| BroadcastError::NotLive)
    }

    /// Someone publishes, so a broadcast may follow: have the spare compositors ready.
    pub fn prepare(&self) {
        self.spares.fill_after(Duration::ZERO);
    }

    /// Spare compositors ready now (see `spares`).
    pub fn spares_ready(&self) -> usize {
        self.spares.ready()
    }

    /// Rooms with a broadcast (running or failed).
    pub fn rooms(&self) -> Vec<String> {
        self.inner.lock().expect("broadcasts lock").keys().cloned().collect()
    }

    pub fn status(&self, room: &str) -> Option<Status> {
        let mut status = self.inner.lock().expect("broadcasts lock").get(room).map(|r| r.status.lock().expect("status").clone())?;
        let v = self.viewers(room);
        (status.viewers, status.viewers_peak) = (v.current, v.peak);
        status.part_publish_delay_ms = self.hls.stats(room).and_then(|s| s.publish_delay.last_us).map(|us| us as f64 / 1000.0);
        Some(status)
    }

    /// The room's HLS audience now and its peak since the broadcast started (zero without a
    /// stream). Still readable during the stream's grace period after a stop.
    pub fn viewers(&self, room: &str) -> hls_out::ViewerStats {
        self.hls.viewers(room).unwrap_or_default()
    }

    pub fn state(&self, room: &str) -> BroadcastState {
        self.status(room).map_or(BroadcastState::Stopped, |s| s.state)
    }

    pub fn ports_in_use(&self) -> usize {
        self.ports.lock().expect("ports lock").in_use()
    }

    pub fn uptime(status: &Status) -> Duration {
        status.since.elapsed()
    }
}
