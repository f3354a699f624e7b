//! Fire-and-forget writes: callers on hot paths (the signaling loop, broadcast start/stop)
//! hand a [`Write`] to a bounded channel and move on; one task applies them in order, so a
//! session's leave is never written before its join. A full channel drops the write with a
//! warning rather than block the caller.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::{BroadcastEnd, SessionRecord, StatsSample, Store};

/// Writes waiting for the store; past this they are dropped (and counted).
pub const QUEUE_CAPACITY: usize = 4096;

#[derive(Debug, Clone)]
pub enum Write {
    SessionJoined(Box<SessionRecord>),
    SessionLeft {
        room: String,
        participant: String,
        at: u64,
    },
    Stats(Vec<StatsSample>),
    BroadcastStarted {
        room: String,
        at: u64,
    },
    BroadcastStopped {
        room: String,
        end: BroadcastEnd,
    },
    /// The room ended (nobody in it for a while): its record gets `ended_at`.
    RoomEnded {
        room: String,
        at: u64,
    },
}

enum Job {
    Write(Write),
    Flush(oneshot::Sender<()>),
}

#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Job>,
    dropped: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
}

impl Writer {
    /// Starts the writer task (needs a tokio runtime); it ends when the last `Writer` is dropped.
    pub fn spawn(store: Arc<dyn Store>) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let failed = Arc::new(AtomicU64::new(0));
        tokio::spawn(run(store, rx, failed.clone()));
        Self { tx, dropped: Arc::new(AtomicU64::new(0)), failed }
    }

    /// Queues a write without waiting.
    pub fn send(&self, write: Write) {
        if let Err(e) = self.tx.try_send(Job::Write(write)) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            let write = match e {
                mpsc::error::TrySendError::Full(Job::Write(w)) | mpsc::error::TrySendError::Closed(Job::Write(w)) => Some(w),
                _ => None,
            };
            tracing::warn!(?write, "store write dropped: the store is not keeping up (or stopped)");
        }
    }

    /// Waits until every write queued before this call has been applied (or has failed).
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Job::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }

    /// Writes dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Writes the store refused (logged as errors).
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }
}

async fn run(store: Arc<dyn Store>, mut rx: mpsc::Receiver<Job>, failed: Arc<AtomicU64>) {
    while let Some(job) = rx.recv().await {
        let write = match job {
            Job::Write(w) => w,
            Job::Flush(done) => {
                let _ = done.send(());
                continue;
            }
        };
        if let Err(e) = apply(store.as_ref(), &write).await {
            failed.fetch_add(1, Ordering::Relaxed);
            tracing::error!(error = %e, ?write, store = store.kind(), "store write failed");
        }
    }
}

async fn apply(store: &dyn Store, write: &Write) -> super::Result<()> {
    match write {
        Write::SessionJoined(s) => store.session_joined(s).await,
        Write::SessionLeft { room, participant, at } => store.session_left(room, participant, *at).await,
        Write::Stats(samples) => store.record_stats(samples).await,
        Write::BroadcastStarted { room, at } => store.broadcast_started(room, *at).await,
        Write::BroadcastStopped { room, end } => store.broadcast_stopped(room, end).await,
        Write::RoomEnded { room, at } => store.end_room(room, *at).await,
    }
}
