//! The ops API (`/api/ops/...`): list the node's pipelines, restart one, drain the node.
//! Every endpoint needs an ops-role token for room `*` or the API key (see `auth::ops`):
//! nothing sent or a bad token → 401, a valid token of another role or room → 403.

use std::time::{Duration, Instant};

use axum::extract::{Path, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use tokio::sync::oneshot;

use super::error::{ApiError, ApiErrorCode};
use super::extract::Ops;
use crate::broadcast::policy::BroadcastState;
use crate::broadcast::{Broadcasts, Status};
use crate::clock::unix_now;
use crate::sfu::Command;
use crate::state::AppState;
use crate::store::Write;

/// How long `drain` (and shutdown) waits for stopped compositors to exit.
const COMPOSITOR_EXIT_WAIT: Duration = Duration::from_secs(5);
/// How long a pipeline listing waits for a worker's room snapshot.
const SNAPSHOT_WAIT: Duration = Duration::from_millis(500);

/// One pipeline (a room's broadcast), as `GET /api/ops/pipelines` shows it: the broadcast's
/// status (state, restarts, parts, legs, pid, fps, last error) plus where it lives.
#[derive(Debug, Clone, Serialize)]
pub struct Pipeline {
    pub room: String,
    #[serde(flatten)]
    pub status: Status,
    /// Seconds since the last state change (a restart starts it again).
    pub uptime_secs: f64,
    /// The SFU worker the room lives on, and how many people are in it (None: unknown).
    pub worker: Option<usize>,
    pub participants: Option<usize>,
    /// The room's HLS stream: positions, counters, requests waiting (None: no stream).
    pub hls: Option<hls_out::StreamStats>,
}

/// The rooms that have a broadcast (running, failed, or stopping), sorted.
pub fn pipeline_rooms(app: &AppState) -> Vec<String> {
    let mut rooms = app.broadcasts.rooms();
    rooms.sort();
    rooms
}

/// Every pipeline with its status, without asking the SFU workers (for metrics).
pub fn pipeline_statuses(app: &AppState) -> Vec<(String, Status)> {
    pipeline_rooms(app).into_iter().filter_map(|room| app.broadcasts.status(&room).map(|s| (room, s))).collect()
}

async fn participants(app: &AppState, room: &str, worker: usize) -> Option<usize> {
    let (reply, rx) = oneshot::channel();
    if !app.workers.get(worker)?.send(Command::Snapshot { room: room.to_owned(), reply }) {
        return None;
    }
    tokio::time::timeout(SNAPSHOT_WAIT, rx).await.ok()?.ok().map(|s| s.participants.len())
}

pub async fn pipelines_now(app: &AppState) -> Vec<Pipeline> {
    let mut out = Vec::new();
    for (room, s) in pipeline_statuses(app) {
        let worker = app.rooms.get(&room).map(|r| r.worker);
        let participants = match worker {
            Some(w) => participants(app, &room, w).await,
            None => None,
        };
        out.push(Pipeline {
            uptime_secs: (Broadcasts::uptime(&s).as_secs_f64() * 10.0).round() / 10.0,
            status: s,
            worker,
            participants,
            hls: app.broadcasts.hls.stats(&room),
            room,
        });
    }
    out
}

/// `GET /api/ops/pipelines`: every pipeline on this node, and whether the node is draining.
#[derive(Debug, Serialize)]
pub struct PipelineList {
    pub draining: bool,
    pub pipelines: Vec<Pipeline>,
}

/// `POST /api/ops/pipelines/{room}/restart`: what was done.
#[derive(Debug, Serialize)]
pub struct Restarted {
    pub room: String,
    pub restarted: bool,
    pub how: &'static str,
    pub state: BroadcastState,
}

/// In a cluster, every room held here goes to the node `Cluster::place` picks (another one):
/// its owner is handed over in the store, its broadcast stops here without a word to the store
/// (the record stays open, so the new node starts it again when the room is next asked for),
/// and its participants are told to reconnect, which brings them there. Rooms no other node
/// can take stay (their broadcasts are stopped as on a single node).
async fn move_rooms(app: &AppState) -> Vec<String> {
    let Some(cluster) = &app.cluster else { return Vec::new() };
    let mut moved = Vec::new();
    for room in app.rooms.ids() {
        let Some(node) = cluster.place(true).filter(|n| n.id != cluster.id()) else {
            tracing::warn!(%room, "drain: no other node can take this room; it stays (its broadcast stops)");
            continue;
        };
        match cluster.hand_over(&room, &node.id).await {
            Ok(true) => {
                let was_live = app.broadcasts.stop(&room).is_ok();
                app.rooms.evict(&room);
                tracing::info!(%room, node = %node.id, was_live, "drain: room moved; its participants reconnect there");
                moved.push(room);
            }
            Ok(false) => tracing::warn!(%room, "drain: the room's owner changed meanwhile; left as it is"),
            Err(e) => tracing::error!(%room, error = %e, "drain: the room could not be handed over (store); it stays"),
        }
    }
    moved
}

/// `POST /api/ops/drain`.
#[derive(Debug, Serialize)]
pub struct Drained {
    pub draining: bool,
    #[serde(flatten)]
    pub report: DrainReport,
}

/// `DELETE /api/ops/drain`.
#[derive(Debug, Serialize)]
pub struct Undrained {
    pub draining: bool,
    pub was_draining: bool,
}

pub async fn list(_: Ops, State(app): State<AppState>) -> Result<Json<PipelineList>, ApiError> {
    let pipelines = pipelines_now(&app).await;
    Ok(Json(PipelineList { draining: app.node.is_draining(), pipelines }))
}

/// `POST /api/ops/pipelines/{room}/restart`: a new compositor for the room; the room and its
/// viewers keep going (the HLS timeline continues after a discontinuity).
pub async fn restart(Ops(caller): Ops, State(app): State<AppState>, Path(room): Path<String>) -> Result<Json<Restarted>, ApiError> {
    app.rooms.get(&room).ok_or_else(ApiError::room_not_found)?;
    let Some(status) = app.broadcasts.status(&room) else {
        return Err(ApiError::conflict("this room has no broadcast; start one with POST /api/rooms/{id}/broadcast"));
    };
    tracing::info!(%room, %caller, state = status.state.as_str(), restarts = status.restarts, "ops: pipeline restart requested");
    let how = if status.state == BroadcastState::Failed {
        // A failed broadcast has no compositor left to replace: start it again (the HLS
        // stream continues if it is still in its grace period).
        let worker = app.rooms.get(&room).and_then(|r| app.workers.get(r.worker).cloned()).ok_or_else(ApiError::room_not_found)?;
        if app.node.is_draining() {
            return Err(ApiError::unavailable("this node is draining; a failed broadcast is not started again here"));
        }
        if let Ok(end) = app.broadcasts.stop(&room) {
            app.rooms.record(Write::BroadcastStopped { room: room.clone(), end });
        }
        app.broadcasts.start(&room, worker).map_err(|e| ApiError::conflict(e.to_string()))?;
        app.rooms.record(Write::BroadcastStarted { room: room.clone(), at: unix_now() });
        "started again after failing"
    } else {
        app.broadcasts.restart(&room).map_err(|e| ApiError::conflict(format!("{e}; start it with POST /api/rooms/{{id}}/broadcast")))?;
        "compositor replaced"
    };
    tracing::info!(%room, %caller, how, "ops: pipeline restarted");
    let state = app.broadcasts.state(&room);
    Ok(Json(Restarted { room, restarted: true, how, state }))
}

/// What a drain did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DrainReport {
    pub already_draining: bool,
    /// Rooms handed to another node of the cluster (their participants reconnect there, a
    /// live broadcast starts there again).
    pub moved: Vec<String>,
    /// Rooms whose broadcast was stopped.
    pub stopped: Vec<String>,
    /// Compositors still running when the wait ended (pids).
    pub still_running: Vec<u32>,
}

/// Stops taking new rooms, joins and broadcasts, stops every broadcast (compositors are asked
/// to shut down; playlists get EXT-X-ENDLIST) and waits a little for the compositors to exit.
pub async fn drain_node(app: &AppState) -> DrainReport {
    let already_draining = app.node.set_draining(true);
    let mut report = DrainReport { already_draining, ..Default::default() };
    report.moved = move_rooms(app).await;
    let mut pids = Vec::new();
    for (room, status) in pipeline_statuses(app) {
        match app.broadcasts.stop(&room) {
            Ok(end) => {
                tracing::info!(%room, state = status.state.as_str(), pid = ?status.pid, "drain: broadcast stopped");
                app.rooms.record(Write::BroadcastStopped { room: room.clone(), end });
                pids.extend(status.pid);
                report.stopped.push(room);
            }
            Err(e) => tracing::debug!(%room, error = %e, "drain: broadcast already ending"),
        }
    }
    let deadline = Instant::now() + COMPOSITOR_EXIT_WAIT;
    loop {
        pids.retain(|&pid| process_exists(pid));
        if pids.is_empty() || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if !pids.is_empty() {
        tracing::warn!(
            ?pids,
            "drain: compositors still running after {COMPOSITOR_EXIT_WAIT:?}; they are killed when their supervisors give up waiting"
        );
    }
    report.still_running = pids;
    report
}

fn process_exists(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        std::path::Path::new(&format!("/proc/{pid}")).exists()
    } else {
        false
    }
}

/// `POST /api/ops/drain`
pub async fn drain(Ops(caller): Ops, State(app): State<AppState>) -> Result<Json<Drained>, ApiError> {
    tracing::info!(%caller, "ops: drain requested; new rooms, joins and broadcasts are refused from now on");
    let report = drain_node(&app).await;
    tracing::info!(stopped = report.stopped.len(), still_running = report.still_running.len(), "ops: drain done");
    Ok(Json(Drained { draining: true, report }))
}

/// `DELETE /api/ops/drain`: take new rooms again (stopped broadcasts stay stopped).
pub async fn undrain(Ops(caller): Ops, State(app): State<AppState>) -> Result<Json<Undrained>, ApiError> {
    let was = app.node.set_draining(false);
    tracing::info!(%caller, was_draining = was, "ops: drain cancelled; new rooms are accepted again");
    Ok(Json(Undrained { draining: false, was_draining: was }))
}

/// Middleware for the endpoints that bring new load (create a room, join, start a broadcast):
/// a draining node answers 503 so clients go to another node.
pub async fn refuse_when_draining(State(app): State<AppState>, req: Request, next: Next) -> Response {
    if app.node.is_draining() {
        tracing::debug!(path = req.uri().path(), "refused: node draining");
        return draining().into_response();
    }
    next.run(req).await
}

/// The answer of a draining node to what would bring it new load.
pub fn draining() -> ApiError {
    ApiError::new(
        ApiErrorCode::Draining,
        "this node is draining (shutting down or being deployed) and takes no new rooms, joins or broadcasts; use another node or try again later",
    )
}
