//! Broadcast endpoints: start, stop, status of a room's broadcast.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;

use super::error::{ApiError, ApiErrorCode};
use super::extract::{known_room, live_room, RoomHost};
use crate::broadcast::policy::BroadcastState;
use crate::broadcast::{BroadcastError, Status};
use crate::clock::unix_now;
use crate::state::AppState;
use crate::store::Write;

/// `202` to `POST /api/rooms/{id}/broadcast`.
#[derive(Debug, Serialize)]
pub struct Started {
    pub state: BroadcastState,
    pub hls_url: String,
    pub watch_url: String,
}

/// `200` to `DELETE /api/rooms/{id}/broadcast`.
#[derive(Debug, Serialize)]
pub struct Stopped {
    pub state: BroadcastState,
}

/// `GET /api/rooms/{id}/broadcast`: the live status, or the audience of a stopped one.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum View {
    Running(Box<Status>),
    Stopped { state: BroadcastState, viewers: usize, viewers_peak: usize },
}

/// Starts the broadcast; an ended room is brought back for it (and its idle clock starts).
pub async fn start(RoomHost { room }: RoomHost, State(app): State<AppState>) -> Result<(StatusCode, Json<Started>), ApiError> {
    let id = room.id;
    let room = live_room(&app, &id).await?;
    if room.settings.e2ee {
        return Err(ApiError::new(
            ApiErrorCode::E2eeRoom,
            "this room is end-to-end encrypted: the gateway cannot see its media, so it cannot be broadcast; create a room without e2ee to broadcast",
        ));
    }
    let worker = app.workers[room.worker].clone();
    app.broadcasts.start(&id, worker).map_err(|e| match e {
        BroadcastError::AlreadyLive => ApiError::conflict(e.to_string()),
        BroadcastError::NotLive => ApiError::conflict(e.to_string()),
    })?;
    app.rooms.record(Write::BroadcastStarted { room: id.clone(), at: unix_now() });
    Ok((
        StatusCode::ACCEPTED,
        Json(Started { state: app.broadcasts.state(&id), hls_url: format!("/hls/{id}/index.m3u8"), watch_url: format!("/watch/{id}") }),
    ))
}

pub async fn stop(RoomHost { room }: RoomHost, State(app): State<AppState>) -> Result<Json<Stopped>, ApiError> {
    let id = room.id;
    let end = app.broadcasts.stop(&id).map_err(|e| ApiError::conflict(e.to_string()))?;
    tracing::info!(room = %id, "broadcast stopped on request");
    app.rooms.record(Write::BroadcastStopped { room: id.clone(), end });
    Ok(Json(Stopped { state: BroadcastState::Stopped }))
}

/// The broadcast's state, compositor figures and audience (`viewers`, `viewers_peak`). A
/// stopped broadcast still reports its audience while the stream's final playlist is served.
pub async fn status(State(app): State<AppState>, Path(id): Path<String>) -> Result<Json<View>, ApiError> {
    known_room(&app, &id).await?;
    Ok(Json(match app.broadcasts.status(&id) {
        Some(s) => View::Running(Box::new(s)),
        None => {
            let v = app.broadcasts.viewers(&id);
            View::Stopped { state: BroadcastState::Stopped, viewers: v.current, viewers_peak: v.peak }
        }
    }))
}
