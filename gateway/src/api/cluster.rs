//! The HTTP side of a cluster: a request about a room that another live node holds is
//! answered by that node, through this one (one hop), and joins name the holder's signaling
//! URL. Proxying rather than redirecting keeps every browser request same-origin (the pages'
//! Content-Security-Policy allows `connect-src 'self'` only, and a cross-origin redirect would
//! need CORS on every node) and lets any load balancer, edge cache or CDN sit in front of any
//! node. A room this node holds, or claims because nobody (alive) does, is served here as on
//! a single node.

use std::time::Duration;

use axum::body::{to_bytes, Body};
use axum::extract::{OriginalUri, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use crate::clock::unix_now;
use crate::cluster::Owner;
use crate::state::AppState;
use crate::store::{NodeRecord, Write};

/// Set on a request one node sends another, so it is never sent on again (two nodes that
/// briefly disagree about a room's holder cannot bounce a request between them).
pub const VIA_HEADER: &str = "x-roomcast-via";
/// Set on a proxied answer: the node that answered.
pub const NODE_HEADER: &str = "x-roomcast-node";
/// Longer than the longest blocking playlist reload (3 target durations).
const PROXY_TIMEOUT: Duration = Duration::from_secs(30);
/// API bodies are small (16 KB); HLS requests have none.
const MAX_PROXIED_BODY: usize = 64 * 1024;
/// Parts and segments of a few seconds at broadcast bitrates, with room to spare.
const MAX_PROXIED_ANSWER: usize = 32 * 1024 * 1024;

/// The live node that holds `room`, if it is not this one. `None` also without a cluster, for
/// a room held here, and for an unknown room (whose handler answers 404: no claim is made for
/// ids nobody created).
///
/// Requests about a room (HLS above all) may take the holder found within the last heartbeat
/// (`Cluster::recently_elsewhere`); see [`owner_now`] for signaling.
pub async fn owner_elsewhere(app: &AppState, room: &str) -> Result<Option<NodeRecord>, ApiError> {
    if let Some(node) = app.cluster.as_ref().filter(|_| app.rooms.get(room).is_none()).and_then(|c| c.recently_elsewhere(room)) {
        return Ok(Some(node));
    }
    owner_now(app, room).await
}

/// As [`owner_elsewhere`], from the store now: for joins and signaling sockets, which follow a
/// room that just moved (a drain hands rooms over; an answer a heartbeat old would send its
/// participants back to the node they were just told to leave).
pub async fn owner_now(app: &AppState, room: &str) -> Result<Option<NodeRecord>, ApiError> {
    let Some(cluster) = &app.cluster else { return Ok(None) };
    if app.rooms.get(room).is_some() {
        return Ok(None);
    }
    let unavailable = |e: crate::store::StoreError| {
        tracing::error!(room, error = %e, "cannot find which node holds a room");
        ApiError::unavailable(format!("the room's node could not be looked up: {e}"))
    };
    if app.rooms.find(room).await.map_err(unavailable)?.is_none() {
        return Ok(None);
    }
    match cluster.locate(room).await.map_err(unavailable)? {
        Owner::Here => {
            // Not in memory, but ours: handed over by a draining node, or held here before a
            // restart. A broadcast still live by its record goes on here.
            resume_broadcast(app, room, "a node that handed it over").await;
            Ok(None)
        }
        Owner::TakenOver(dead) => {
            resume_broadcast(app, room, &format!("{dead}, which stopped heartbeating")).await;
            Ok(None)
        }
        Owner::There(node) => Ok(Some(node)),
    }
}

/// As [`owner_now`], for a join: a participant re-joins when its socket broke, so the
/// holder is asked first whether it is there at all. If its port refuses connections (its
/// process is gone), the room is claimed here now, not once its heartbeats have run out
/// (`placement::DEAD_AFTER_MS`), which kept the room off the air that much longer.
pub async fn owner_for_join(app: &AppState, room: &str) -> Result<Option<NodeRecord>, ApiError> {
    let Some(node) = owner_now(app, room).await? else { return Ok(None) };
    let Some(cluster) = &app.cluster else { return Ok(Some(node)) };
    if !refuses_connections(&node).await {
        return Ok(Some(node));
    }
    cluster.mark_refused(&node);
    owner_now(app, room).await
}

/// How long a node has to accept a connection when asked whether it is there. Only a refusal
/// counts: a node that does not answer in time may be cut off or busy.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// Whether `node`'s HTTP port refuses connections (a fresh connection: a kept-alive one to a
/// dead node fails otherwise).
async fn refuses_connections(node: &NodeRecord) -> bool {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    let client = CLIENT.get_or_init(|| node_client(PROBE_TIMEOUT).pool_max_idle_per_host(0).build().expect("an HTTP client"));
    match client.get(node.url("/healthz")).send().await {
        Ok(_) => false,
        Err(e) => is_refused(&e),
    }
}

/// A connection refused somewhere in an error's chain of causes.
fn is_refused(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused) {
            return true;
        }
        cause = c.source();
    }
    false
}

/// A room that came to this node (taken over from a dead node, handed over by a draining one):
/// if its broadcast was live there (its record is still open), it goes live here, with
/// placeholders until the participants are back. `from`: where it came from, for the log.
async fn resume_broadcast(app: &AppState, room: &str, from: &str) {
    let Some(store) = app.rooms.store() else { return };
    // This node's own records first: a broadcast it stopped a moment ago (the room idle, or
    // ended) may still have its stop queued, and would look live.
    app.rooms.flush().await;
    let was_live = match store.broadcasts(room).await {
        Ok(b) => b.last().is_some_and(|b| b.stopped_at.is_none()),
        Err(e) => {
            tracing::error!(room, error = %e, "cannot read the broadcasts of a room taken over; start its broadcast by hand if it was live");
            return;
        }
    };
    if !was_live {
        return;
    }
    let entry = match app.rooms.reopen(room).await {
        Ok(Some(entry)) => entry,
        Ok(None) => return,
        Err(e) => {
            tracing::error!(room, error = %e, "cannot load a room taken over; start its broadcast by hand");
            return;
        }
    };
    if entry.settings.e2ee {
        return;
    }
    match app.broadcasts.start(room, app.workers[entry.worker].clone()) {
        Ok(()) => {
            app.rooms.record(Write::BroadcastStarted { room: room.to_owned(), at: unix_now() });
            tracing::warn!(room, from, "broadcast restarted here: it was live on the room's previous node");
        }
        Err(e) => tracing::info!(room, error = %e, "broadcast of a room taken over not restarted"),
    }
}

/// Middleware for routes about one room (`/api/rooms/{id}/…`, `/api/ops/pipelines/{id}/…`,
/// `/hls/{id}/…`): a room held by another node is answered by it, through this one.
pub async fn follow_owner(State(app): State<AppState>, req: Request, next: Next) -> Response {
    if app.cluster.is_none() || req.headers().contains_key(VIA_HEADER) {
        return next.run(req).await;
    }
    // Inside `/api` the router sees the path without its prefix; the other node needs all of it.
    let uri = req.extensions().get::<OriginalUri>().map_or_else(|| req.uri().clone(), |o| o.0.clone());
    let Some(room) = super::room_of_path(uri.path()).map(str::to_owned) else { return next.run(req).await };
    match owner_elsewhere(&app, &room).await {
        Ok(None) => next.run(req).await,
        Ok(Some(node)) => {
            let path = uri.path_and_query().map_or(uri.path(), |p| p.as_str()).to_owned();
            proxy(&app, &node, &path, req).await
        }
        Err(e) => e.into_response(),
    }
}

/// Headers that describe one connection, not the request or answer (RFC 9110 7.6.1), and the
/// ones the HTTP stack sets itself.
fn end_to_end(name: &HeaderName) -> bool {
    !matches!(
        name.as_str(),
        "connection" | "keep-alive" | "proxy-connection" | "te" | "trailer" | "transfer-encoding" | "upgrade" | "host" | "content-length"
    )
}

async fn proxy(app: &AppState, node: &NodeRecord, path: &str, req: Request) -> Response {
    let room_node = || format!("the room's node {} ({})", node.id, node.public_url);
    let (parts, body) = req.into_parts();
    let Ok(body) = to_bytes(body, MAX_PROXIED_BODY).await else {
        return ApiError::new(super::error::ApiErrorCode::TooLarge, "the request body is too large").into_response();
    };
    let mut headers = HeaderMap::new();
    for (name, value) in parts.headers.iter().filter(|(n, _)| end_to_end(n)) {
        headers.append(name.clone(), value.clone());
    }
    let me = app.cluster.as_ref().map(|c| c.id()).unwrap_or_default();
    if let Ok(v) = HeaderValue::from_str(&me) {
        headers.insert(HeaderName::from_static(VIA_HEADER), v);
    }
    let sent = proxy_client().request(parts.method.clone(), node.url(path)).headers(headers).body(body).send().await;
    let answer = match sent {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(node = %node.id, error = %e, "a room's node did not answer a request sent on to it");
            if is_refused(&e) {
                // Gone: the next request about its rooms claims them (see `owner_for_join`).
                if let Some(cluster) = &app.cluster {
                    cluster.mark_refused(node);
                }
            }
            return ApiError::unavailable(format!(
                "{} does not answer; retry in a few seconds (if it is down, this node takes the room over)",
                room_node()
            ))
            .into_response();
        }
    };
    let status = answer.status();
    let mut out = HeaderMap::new();
    for (name, value) in answer.headers().iter().filter(|(n, _)| end_to_end(n)) {
        out.append(name.clone(), value.clone());
    }
    if let Ok(v) = HeaderValue::from_str(&node.id) {
        out.insert(HeaderName::from_static(NODE_HEADER), v);
    }
    match answer.bytes().await {
        Ok(bytes) if bytes.len() <= MAX_PROXIED_ANSWER => {
            let mut r = Response::new(Body::from(bytes));
            *r.status_mut() = status;
            *r.headers_mut() = out;
            r
        }
        Ok(_) => ApiError::unavailable(format!("{} sent an answer too large to pass on", room_node())).into_response(),
        Err(e) => ApiError::unavailable(format!("{} broke off its answer ({e}); retry", room_node())).into_response(),
    }
}

/// One client for every request sent on (it keeps connections to the other nodes open).
fn proxy_client() -> &'static reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT.get_or_init(|| node_client(PROXY_TIMEOUT).build().expect("an HTTP client"))
}

/// How this node talks to the others: a timeout, never following redirects.
fn node_client(timeout: Duration) -> reqwest::ClientBuilder {
    reqwest::Client::builder().timeout(timeout).redirect(reqwest::redirect::Policy::none())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_a_refused_connection_counts_as_gone() {
        // A port nothing listens on: refused.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let record = |port: u16| NodeRecord {
            id: "n".into(),
            public_url: format!("http://127.0.0.1:{port}"),
            media_ip: "127.0.0.1".into(),
            capacity_cores: 1.0,
            load: Default::default(),
            heartbeat_at_ms: 0,
            draining: false,
        };
        assert!(refuses_connections(&record(port)).await);
        // A port that accepts but never answers (a busy or stuck node): not gone.
        let stuck = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        assert!(!refuses_connections(&record(stuck.local_addr().unwrap().port())).await);
        // One that answers, whatever it answers: not gone.
        let live = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = live.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(live, axum::Router::new()).await });
        assert!(!refuses_connections(&record(port)).await);
    }

    #[test]
    fn connection_headers_stay_behind() {
        for h in ["connection", "keep-alive", "transfer-encoding", "upgrade", "host", "content-length", "te"] {
            assert!(!end_to_end(&HeaderName::from_static(h)), "{h}");
        }
        for h in ["authorization", "content-type", "cache-control", "x-roomcast-viewer", "retry-after", "location"] {
            assert!(end_to_end(&HeaderName::from_static(h)), "{h}");
        }
    }
}
