//! What handlers take from a request besides its body: the `Authorization` header, the checked
//! ops caller, and the room the path names (404 when there is none, 503 when the store cannot say).

use axum::extract::FromRequestParts;
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
