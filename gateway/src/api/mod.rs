//! The HTTP surface: router and health; the shared state is `crate::state::AppState`.

pub mod broadcast;
pub mod cluster;
pub mod error;
pub mod extract;
#[cfg(feature = "fault-injection")]
pub mod faults;
pub mod hls_fast_path;
pub mod invites;
pub mod metrics;
pub mod ops;
pub mod rooms;
pub mod security;
pub mod signaling;
pub mod watch;

use axum::extract::{DefaultBodyLimit, State};
use axum::handler::Handler;
use axum::http::StatusCode;
use axum::routing::{get, post};

use axum::Router;

use crate::state::AppState;

/// Request bodies of the JSON API are small; anything larger is a 413.
const MAX_BODY_BYTES: usize = 16 * 1024;

pub fn router(state: AppState) -> Router {
    // A draining node takes no new rooms, joins or broadcasts (503; joins: `rooms::join`).
    let draining = axum::middleware::from_fn_with_state(state.clone(), ops::refuse_when_draining);
    // In a cluster, what only the room's own node can answer is sent there (joins, invites,
    // viewer tokens and HLS URLs are answered by any node, pointing at it).
    let follow_owner = axum::middleware::from_fn_with_state(state.clone(), cluster::follow_owner);
    let on_owner = Router::new()
        .route("/rooms/{id}", get(rooms::get))
        .route("/rooms/{id}/participants/{pid}", axum::routing::delete(rooms::remove_participant))
        .route("/rooms/{id}/broadcast", post(broadcast::start.layer(draining.clone())).delete(broadcast::stop).get(broadcast::status))
        .route("/ops/pipelines/{room}/restart", post(ops::restart))
        .layer(follow_owner.clone());
    let api = Router::new()
        // (Room creation checks for itself: in a cluster a draining node places rooms elsewhere.)
        .route("/rooms", post(rooms::create))
        .route("/rooms/{id}/join", post(rooms::join))
        .route("/rooms/{id}/invites", post(invites::mint))
        .route("/rooms/{id}/invites/check", post(invites::check))
        .route("/rooms/{id}/viewer-token", post(watch::viewer_token))
        .route("/rooms/{id}/hls-url", get(watch::hls_url))
        .route("/config", get(invites::config))
        .route("/ops/pipelines", get(ops::list))
        .merge(on_owner)
        .route("/ops/drain", post(ops::drain).delete(ops::undrain));
    #[cfg(feature = "fault-injection")]
    let api = api.route("/ops/faults/blackhole", post(faults::blackhole));
    let api = api
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .fallback(|| async { error::ApiError::new(error::ApiErrorCode::NotFound, "no such API endpoint; see docs/protocol.md") });
    let api = match security::cors(&state.config.allowed_origins) {
        Some(cors) => api.layer(cors),
        None => api,
    };
    let router = Router::new()
        .nest("/api", api)
        .route("/ws", get(signaling::upgrade))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics::handler))
        .merge(hls_out::routes(state.broadcasts.hls.clone()).layer(follow_owner))
        .merge(crate::web::routes(&state.config.web_dir))
        // One `layer` call: each one wraps every route once more, and a route's whole stack is
        // cloned for each request (most of the cost of an HLS request when there were eight).
        .layer(
            tower::ServiceBuilder::new()
                .layer(tower_http::trace::TraceLayer::new_for_http().make_span_with(request_span))
                .layer(axum::middleware::map_response(security::security_headers))
                .layer(axum::middleware::from_fn_with_state(state.clone(), metrics::count_requests)),
        );
    router.with_state(state)
}

/// The span of one HTTP request: method, path and the room it is about. Never the query
/// string: `/ws?token=…` carries a bearer token.
fn request_span(req: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let path = req.uri().path();
    match room_of_path(path) {
        Some(room) => tracing::info_span!("request", method = %req.method(), path, room),
        None => tracing::info_span!("request", method = %req.method(), path),
    }
}

/// The room id a request path names, if any.
pub(crate) fn room_of_path(path: &str) -> Option<&str> {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let room = match parts.as_slice() {
        ["api", "rooms", id, ..] | ["api", "ops", "pipelines", id, ..] | ["hls", id, ..] | ["room", id] | ["watch", id] => *id,
        _ => return None,
    };
    (!room.is_empty()).then_some(room)
}

/// How long `/readyz` waits for the store to answer.
const STORE_PROBE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Ready when not draining, every SFU worker runs, RTP ports are left for compositor legs, and
/// the store answers a read.
async fn readyz(State(app): State<AppState>) -> (StatusCode, String) {
    let mut problems = Vec::new();
    if app.node.is_draining() {
        problems.push("draining: this node takes no new rooms (DELETE /api/ops/drain to resume)".to_owned());
    }
    let dead: Vec<usize> = app.workers.iter().filter(|w| !w.is_alive()).map(|w| w.index).collect();
    if !dead.is_empty() {
        problems.push(format!("SFU workers down: {dead:?}; restart the gateway"));
    }
    let capacity = crate::metrics::port_pairs(app.config.rtp_port_min, app.config.rtp_port_max);
    let in_use = app.broadcasts.ports_in_use();
    if in_use >= capacity {
        problems.push(format!(
            "no free RTP port pairs ({in_use} of {capacity} in use); widen --rtp-port-min/--rtp-port-max or stop a broadcast"
        ));
    }
    if let Some(store) = app.rooms.store() {
        match tokio::time::timeout(STORE_PROBE_WAIT, store.room("r-readyz-probe")).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => problems.push(format!("store unreachable: {e}")),
            Err(_) => problems.push(format!("store ({}) did not answer within {STORE_PROBE_WAIT:?}; check --store", store.kind())),
        }
    }
    let cluster = app.cluster.as_ref().map_or(String::new(), |c| format!(", cluster node {} of {} live", c.id(), c.live_nodes()));
    let files = crate::open_files::current()
        .and_then(|(soft, _)| crate::open_files::readiness_note(soft))
        .map_or(String::new(), |n| format!("; {n}"));
    if problems.is_empty() {
        (StatusCode::OK, format!("ready: {} SFU workers, {in_use}/{capacity} RTP port pairs in use{cluster}{files}", app.workers.len()))
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {}", problems.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::room_of_path;

    #[test]
    fn request_spans_name_the_room_from_the_path() {
        assert_eq!(room_of_path("/api/rooms/r-1/join"), Some("r-1"));
        assert_eq!(room_of_path("/api/rooms/r-1"), Some("r-1"));
        assert_eq!(room_of_path("/api/ops/pipelines/r-2/restart"), Some("r-2"));
        assert_eq!(room_of_path("/hls/r-3/index.m3u8"), Some("r-3"));
        assert_eq!(room_of_path("/watch/r-4"), Some("r-4"));
        assert_eq!(room_of_path("/api/rooms"), None);
        assert_eq!(room_of_path("/api/ops/pipelines"), None);
        assert_eq!(room_of_path("/ws"), None);
        assert_eq!(room_of_path("/room/"), None);
    }
}
