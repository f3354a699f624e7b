//! This node's own state, below the HTTP layer: draining (no new rooms, joins or broadcasts)
//! and the open signaling sessions that a shutdown closes and waits for.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Node-wide state: whether the node is draining, and the signaling sessions that shutdown
/// waits for.
#[derive(Debug)]
pub struct NodeState {
    draining: AtomicBool,
    /// Set once when the process shuts down: every signaling session closes (1012).
    closing: tokio::sync::watch::Sender<bool>,
    /// Signaling sessions still open; shutdown waits for them to have said 1012.
    open_sessions: tokio::sync::watch::Sender<usize>,
}

impl Default for NodeState {
    fn default() -> Self {
        Self {
            draining: AtomicBool::new(false),
            closing: tokio::sync::watch::Sender::new(false),
            open_sessions: tokio::sync::watch::Sender::new(0),
        }
    }
}

/// Counts one open signaling session for as long as it lives.
#[derive(Debug)]
pub struct OpenSession(tokio::sync::watch::Sender<usize>);

impl Drop for OpenSession {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

impl NodeState {
    /// Tells every signaling session that the server is going down.
    pub fn close_sessions(&self) {
        self.closing.send_replace(true);
    }

    /// Call when a signaling session opens; keep the guard until it has closed.
    pub fn session_opened(&self) -> OpenSession {
        self.open_sessions.send_modify(|n| *n += 1);
        OpenSession(self.open_sessions.clone())
    }

    pub fn open_sessions(&self) -> usize {
        *self.open_sessions.borrow()
    }

    /// Waits (at most `wait`) until every signaling session has closed; returns how many are
    /// still open. Without this wait the process could exit before a busy runtime had run the
    /// sessions, and clients would see a dropped connection (1006) instead of 1012.
    pub async fn sessions_closed(&self, wait: Duration) -> usize {
        let mut rx = self.open_sessions.subscribe();
        let _ = tokio::time::timeout(wait, rx.wait_for(|n| *n == 0)).await;
        self.open_sessions()
    }

    /// Resolves once the server is going down (at once if it already is).
    pub fn closing(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.closing.subscribe();
        async move {
            let _ = rx.wait_for(|closing| *closing).await;
        }
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Returns whether the node was already draining.
    pub fn set_draining(&self, on: bool) -> bool {
        self.draining.swap(on, Ordering::Relaxed)
    }
}
