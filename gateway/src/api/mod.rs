//! The HTTP surface: router, shared state, health.

pub mod broadcast;
pub mod error;
pub mod rooms;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::{get, post};

use crate::broadcast::Broadcasts;
use axum::Router;

use crate::auth::token::TokenKeys;
use crate::config::Config;
use crate::rooms::Rooms;
use crate::sfu::WorkerHandle;

/// Request bodies of the JSON API are small; anything larger is a 413.
const MAX_BODY_BYTES: usize = 16 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub rooms: Arc<Rooms>,
    pub workers: Arc<Vec<WorkerHandle>>,
    pub tokens: TokenKeys,
    pub broadcasts: Arc<Broadcasts>,
}

pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/rooms", post(rooms::create))
        .route("/rooms/{id}", get(rooms::get))
        .route("/rooms/{id}/join", post(rooms::join))
        .route("/rooms/{id}/broadcast", post(broadcast::start).delete(broadcast::stop).get(broadcast::status))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .fallback(|| async { error::ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such API endpoint; see docs/protocol.md") });
    Router::new()
        .nest("/api", api)
        .route("/ws", get(crate::signaling::session::upgrade))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .merge(hls_out::routes(state.broadcasts.hls.clone()))
        .merge(crate::web::routes(&state.config.web_dir))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

async fn readyz(State(app): State<AppState>) -> (StatusCode, String) {
    let dead: Vec<usize> = app.workers.iter().filter(|w| !w.is_alive()).map(|w| w.index).collect();
    if dead.is_empty() {
        (StatusCode::OK, "ready".into())
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, format!("SFU workers down: {dead:?}; restart the gateway"))
    }
}
