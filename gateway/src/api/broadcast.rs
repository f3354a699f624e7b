//! Broadcast endpoints: start, stop, status of a room's broadcast.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde_json::{json, Value};

use super::error::{ApiError, ApiErrorCode};
use super::extract::{authorization, known_room, live_room};
use crate::auth::access;
use crate::broadcast::BroadcastError;
use crate::clock::unix_now;
use crate::state::AppState;
use crate::store::Write;

/// Starts the broadcast; an ended room is brought back for it (and its idle clock starts).
pub async fn start(State(app): State<AppState>, Path(id): Path<String>, headers: HeaderMap) -> Result<(StatusCode, Json<Value>), ApiError> {
    known_room(&app, &id).await?;
    access::host_call(authorization(&headers), app.config.api_key.as_deref(), &app.tokens, &id)?;
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
        Json(json!({"state": app.broadcasts.state(&id), "hls_url": format!("/hls/{id}/index.m3u8"), "watch_url": format!("/watch/{id}")})),
    ))
}

pub async fn stop(State(app): State<AppState>, Path(id): Path<String>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    known_room(&app, &id).await?;
    access::host_call(authorization(&headers), app.config.api_key.as_deref(), &app.tokens, &id)?;
    let end = app.broadcasts.stop(&id).map_err(|e| ApiError::conflict(e.to_string()))?;
    tracing::info!(room = %id, "broadcast stopped on request");
    app.rooms.record(Write::BroadcastStopped { room: id.clone(), end });
    Ok(Json(json!({"state": "stopped"})))
}

/// The broadcast's state, compositor figures and audience (`viewers`, `viewers_peak`). A
/// stopped broadcast still reports its audience while the stream's final playlist is served.
pub async fn status(State(app): State<AppState>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    known_room(&app, &id).await?;
    Ok(Json(match app.broadcasts.status(&id) {
        Some(s) => json!(s),
        None => {
            let v = app.broadcasts.viewers(&id);
            json!({"state": "stopped", "viewers": v.current, "viewers_peak": v.peak})
        }
    }))
}
