//! What every request handler and signaling session shares: the node's parts, wired by
//! `app::start`. Below the HTTP layer: nothing here knows about routes.

use std::sync::Arc;

use crate::auth::token::TokenKeys;
use crate::broadcast::Broadcasts;
use crate::config::Config;
use crate::rooms::Rooms;
use crate::sfu::WorkerHandle;

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub rooms: Arc<Rooms>,
    pub workers: Arc<Vec<WorkerHandle>>,
    pub tokens: TokenKeys,
    pub broadcasts: Arc<Broadcasts>,
    /// Draining, and the open signaling sessions.
    pub node: Arc<crate::node::NodeState>,
    /// Counters kept as things happen (the rest of /metrics is read at scrape time).
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Joins per client IP.
    pub joins: Arc<crate::limits::JoinLimiter>,
    /// With a MongoDB store: this node's cluster (placement, room owners). `None`: this node
    /// owns every room.
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
}
