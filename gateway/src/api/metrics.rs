//! `/metrics` over HTTP: the request counter middleware and the page (the exposition itself is
//! `crate::metrics`).

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::metrics::{port_pairs, render, route_group, Snapshot, CONTENT_TYPE};
use crate::state::AppState;

/// Middleware: counts every request by route group, method and status.
pub async fn count_requests(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let route = route_group(req.uri().path());
    let method = req.method().clone();
    let response = next.run(req).await;
    app.metrics.count_request(route, &method, response.status().as_u16());
    response
}

/// `GET /metrics`
pub async fn handler(State(app): State<AppState>) -> Response {
    match render(&app.metrics, snapshot(&app)) {
        Ok(body) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "metrics could not be encoded");
            (StatusCode::INTERNAL_SERVER_ERROR, "metrics could not be encoded; see the gateway log").into_response()
        }
    }
}

/// What the collector reads, taken once per scrape.
fn snapshot(app: &AppState) -> Snapshot {
    let pipelines = super::ops::pipeline_statuses(app);
    let hls = app.broadcasts.hls.rooms().into_iter().filter_map(|r| app.broadcasts.hls.stats(&r).map(|s| (r, s))).collect();
    Snapshot {
        workers: app.workers.iter().map(|w| (w.index, w.is_alive(), w.stats.clone())).collect(),
        pipelines,
        hls,
        ports_in_use: app.broadcasts.ports_in_use(),
        port_pairs: port_pairs(app.config.rtp_port_min, app.config.rtp_port_max),
        compositor_spares: app.broadcasts.spares_ready(),
        rooms: app.rooms.len(),
        draining: app.node.is_draining(),
    }
}
