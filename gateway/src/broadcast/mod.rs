//! Broadcasting a room: one supervised `roomcast-compositor` process per live room, fed by
//! plain-RTP legs from the SFU, its CMAF output packaged by hls-out.

pub mod compositor;
pub mod figures;
pub mod policy;
pub mod ports;
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
use crate::sfu::WorkerHandle;

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
    /// durations), and the most at once since the broadcast started. Filled in by
    /// [`Broadcasts::status`] from hls-out.
    pub viewers: usize,
    pub viewers_peak: usize,
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
}

pub struct Broadcasts {
    inner: Mutex<HashMap<String, Running>>,
    ports: Arc<Mutex<PortAllocator>>,
    pub hls: Arc<hls_out::HlsStore>,
    /// Signs private rooms' HLS URLs; set once at start (`auth::hls_url::install`).
    pub hls_urls: OnceLock<crate::auth::hls_url::HlsUrls>,
    bin: PathBuf,
    format: OutputFormat,
    policy: RestartPolicy,
}

impl Broadcasts {
    pub fn new(hls: Arc<hls_out::HlsStore>, bin: PathBuf, format: OutputFormat, ports: std::ops::Range<u16>, policy: RestartPolicy) -> Self {
        Self { inner: Mutex::new(HashMap::new()), ports: Arc::new(Mutex::new(PortAllocator::new(ports))), hls, hls_urls: OnceLock::new(), bin, format, policy }
    }

    pub fn start(&self, room: &str, worker: WorkerHandle) -> Result<(), BroadcastError> {
        let mut inner = self.inner.lock().expect("broadcasts lock");
        if inner.get(room).is_some_and(|r| r.status.lock().expect("status").state.is_running()) {
            return Err(BroadcastError::AlreadyLive);
        }
        let status = Arc::new(Mutex::new(Status {
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
        }));
        let (stop_tx, stop_rx) = oneshot::channel();
        let part = self.format.part;
        let sup = supervisor::Supervisor {
            room: room.to_owned(),
            worker,
            hls: self.hls.open(room, hls_out::PackagerConfig { part_target: part, segment_target: self.format.segment, window_segments: 12 }),
            hls_store: self.hls.clone(),
            ports: self.ports.clone(),
            status: status.clone(),
            bin: self.bin.clone(),
            format: self.format.clone(),
            policy: self.policy,
        };
        let (restart_tx, restart_rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(sup.run(stop_rx, restart_rx));
        inner.insert(room.to_owned(), Running { status, stop: Some(stop_tx), restart: restart_tx });
        tracing::info!(room, "broadcast starting");
        Ok(())
    }

    pub fn stop(&self, room: &str) -> Result<(), BroadcastError> {
        let mut inner = self.inner.lock().expect("broadcasts lock");
        let running = inner.get_mut(room).ok_or(BroadcastError::NotLive)?;
        let stop = running.stop.take().ok_or(BroadcastError::NotLive)?;
        let _ = stop.send(());
        inner.remove(room);
        self.hls.close(room);
        Ok(())
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
