//! What handlers take from a request besides its body: the `Authorization` header and the room
//! the path names (404 when there is none, 503 when the store cannot say).

use axum::http::HeaderMap;

use super::error::ApiError;
use crate::rooms::RoomEntry;
use crate::state::AppState;
use crate::store::{RoomRecord, StoreError};

/// The raw `Authorization` header, if it is text.
pub fn authorization(headers: &HeaderMap) -> Option<&str> {
    headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok())
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
