//! What handlers take from a request besides its body: the `Authorization` header, the checked
//! callers (ops, server-side, a room's host), and the room the path names (404 when there is
//! none, 503 when the store cannot say).

use std::collections::HashMap;

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::http::HeaderMap;

use super::error::ApiError;
use crate::auth::ops::{OpsAuthError, OpsCaller};
use crate::rooms::RoomEntry;
use crate::state::AppState;
use crate::store::{RoomRecord, StoreError};

/// The raw `Authorization` header, if it is text.
pub fn authorization(headers: &HeaderMap) -> Option<&str> {
    headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok())
}

/// The caller of an ops endpoint (an ops-role token for room `*`, or the API key). A handler
/// that takes it runs only for such a caller; anyone else gets 401 (no or bad credentials) or
/// 403 (valid credentials of another role or room) first.
#[derive(Debug)]
pub struct Ops(pub OpsCaller);

impl FromRequestParts<AppState> for Ops {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Self::Rejection> {
        crate::auth::ops::check(authorization(&parts.headers), &app.tokens, app.config.api_key.as_deref()).map(Ops).map_err(|e| {
            tracing::warn!(error = %e, "ops API call refused");
            match e {
                OpsAuthError::Forbidden { .. } => ApiError::forbidden(e.to_string()),
                _ => ApiError::unauthorized(e.to_string()),
            }
        })
    }
}

/// A server-side caller (creating rooms, minting join tokens): the API key when the node has
/// one, anyone when it has none. Others get 401 before the handler runs.
#[derive(Debug)]
pub struct ServerCaller;

impl FromRequestParts<AppState> for ServerCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Self::Rejection> {
        crate::auth::access::server_call(authorization(&parts.headers), app.config.api_key.as_deref())?;
        Ok(ServerCaller)
    }
}

/// The host of the room the path's `{id}` names (a host token of that room, or the API key;
/// anyone on a node without an API key). The room is looked up first, so an unknown room is a
/// 404 whoever asks; then a caller without the rights gets 401 or 403.
#[derive(Debug)]
pub struct RoomHost {
    pub room: RoomRecord,
}

impl FromRequestParts<AppState> for RoomHost {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Self::Rejection> {
        let Path(params) = Path::<HashMap<String, String>>::from_request_parts(parts, app)
            .await
            .map_err(|e| ApiError::bad_request(format!("bad path: {e}")))?;
        let id = params.get("id").ok_or_else(ApiError::room_not_found)?;
        let room = known_room(app, id).await?;
        crate::auth::access::host_call(authorization(&parts.headers), app.config.api_key.as_deref(), &app.tokens, id)?;
        Ok(RoomHost { room })
    }
}

/// The room, live or ended (from the store, not brought back), or 404.
pub async fn known_room(app: &AppState, id: &str) -> Result<RoomRecord, ApiError> {
    app.rooms.find(id).await.map_err(store_unavailable)?.ok_or_else(ApiError::room_not_found)
}

/// The room in memory: an ended room is brought back (someone joins it again), or 404.
pub async fn live_room(app: &AppState, id: &str) -> Result<RoomEntry, ApiError> {
    app.rooms.reopen(id).await.map_err(store_unavailable)?.ok_or_else(ApiError::room_not_found)
}

fn store_unavailable(e: StoreError) -> ApiError {
    tracing::error!(error = %e, "cannot read a room from the store");
    ApiError::unavailable(format!("the room could not be read: {e}"))
}
