//! Room endpoints: create, inspect, join.

use axum::extract::{rejection::JsonRejection, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::oneshot;

use super::error::ApiError;
use super::AppState;
use crate::auth::token::{Role, JOIN_TOKEN_TTL};
use crate::rooms::registry::new_id;
use crate::sfu::{Command, RoomSnapshot};

const MAX_NAME_CHARS: usize = 64;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct NameBody {
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    #[serde(default)]
    name: Option<String>,
    /// Start the broadcast when the first participant publishes.
    #[serde(default)]
    auto_broadcast: bool,
}

fn clean_name(name: Option<String>, default: &str) -> Result<String, ApiError> {
    let name = name.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty()).unwrap_or_else(|| default.to_owned());
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(ApiError::bad_request(format!("name is longer than {MAX_NAME_CHARS} characters")));
    }
    if name.chars().any(char::is_control) {
        return Err(ApiError::bad_request("name contains control characters"));
    }
    Ok(name)
}

pub async fn create(State(app): State<AppState>, body: Result<Json<CreateBody>, JsonRejection>) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(body) = body?;
    let name = clean_name(body.name, "Room")?;
    let room = app.rooms.create_stored(name, body.auto_broadcast).await.map_err(|e| {
        tracing::error!(error = %e, "cannot store a new room");
        ApiError::unavailable(format!("the room could not be saved: {e}"))
    })?;
    tracing::info!(room = %room.id, worker = room.worker, "room created");
    Ok((StatusCode::CREATED, Json(json!({"id": room.id, "name": room.name, "auto_broadcast": room.auto_broadcast}))))
}

pub async fn get(State(app): State<AppState>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let room = app.rooms.get(&id).ok_or_else(ApiError::room_not_found)?;
    let (reply, rx) = oneshot::channel();
    let snapshot = if app.workers[room.worker].send(Command::Snapshot { room: id.clone(), reply }) {
        rx.await.unwrap_or_default()
    } else {
        RoomSnapshot::default()
    };
    Ok(Json(json!({
        "id": room.id, "name": room.name, "created_at": room.created_at, "auto_broadcast": room.auto_broadcast,
        "participants": snapshot.participants, "producers": snapshot.producers,
        "broadcast": app.broadcasts.state(&id),
    })))
}

pub async fn join(
    State(app): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Json<NameBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(body) = body?;
    let room = app.rooms.get(&id).ok_or_else(ApiError::room_not_found)?;
    let participant = new_id("p");
    let name = clean_name(body.name, &format!("Guest {}", &participant[2..6]))?;
    let token = app.tokens.mint(&room.id, &participant, &name, Role::Publisher, JOIN_TOKEN_TTL);
    let host = headers.get("host").and_then(|h| h.to_str().ok()).map(str::to_owned).unwrap_or_else(|| app.config.listen.to_string());
    Ok(Json(json!({
        "token": token,
        "participant_id": participant,
        "ws_url": format!("ws://{host}/ws?token={token}"),
        "ice_servers": [],
        "expires_in": JOIN_TOKEN_TTL.as_secs(),
    })))
}
