//! The HLS fast path: `GET /hls/{room}/{file}` of a stream this node holds is answered before
//! the router, with what the router's way gives it (the answer of `hls_out::routes::serve_file`,
//! the CORS and security headers, the request counter), without the rest.
//!
//! Why: viewers are most of what a node with an audience serves, two requests per part each,
//! and the general stack cost more than the answer itself. Each request cloned and dropped
//! every layer of its route (the application state with it, the CORS configuration), ran the
//! path extractors, a tracing span and the connect-info layer: 61 µs of CPU per request against
//! nginx's 26 µs serving the same files (`hls-load`, closed loop, 1 000 connections).
//!
//! Everything else goes to the router as before: other methods and paths, names it would
//! percent-decode, and in a cluster a room this node does not hold (the router sends those to
//! the room's node). `tests/hls_fast_path.rs` checks that both ways answer alike.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::extract::{ConnectInfo, Request};
use axum::http::{header, Method};
use axum::response::Response;
use axum::serve::IncomingStream;
use axum::Router;
use tokio::net::TcpListener;
use tower::{Service, ServiceExt};

use super::security::add_security_headers;
use crate::state::AppState;

/// The `(room, file)` of a request the fast path may answer: a GET of `/hls/{room}/{file}`
/// with plain segments. Not `watching` (a POST route: a GET there is the router's 405), not
/// anything percent-encoded (the router decodes it first), not more or fewer segments.
pub fn hls_target<'p>(method: &Method, path: &'p str) -> Option<(&'p str, &'p str)> {
    if method != Method::GET || path.contains('%') {
        return None;
    }
    let (room, file) = path.strip_prefix("/hls/")?.split_once('/')?;
    if room.is_empty() || file.is_empty() || file.contains('/') || file == "watching" {
        return None;
    }
    Some((room, file))
}

/// Makes one [`FastPath`] per connection (as `into_make_service_with_connect_info` makes the
/// router's, with the client's address).
#[derive(Clone)]
pub struct MakeFastPath {
    app: AppState,
    router: Router,
}

impl MakeFastPath {
    pub fn new(app: AppState, router: Router) -> Self {
        Self { app, router }
    }
}

impl<'a> Service<IncomingStream<'a, TcpListener>> for MakeFastPath {
    type Response = FastPath;
    type Error = Infallible;
    type Future = std::future::Ready<Result<FastPath, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, stream: IncomingStream<'a, TcpListener>) -> Self::Future {
        std::future::ready(Ok(FastPath { app: self.app.clone(), router: self.router.clone(), peer: *stream.remote_addr() }))
    }
}

/// One connection's service: HLS files here, the rest to the router.
#[derive(Clone)]
pub struct FastPath {
    app: AppState,
    router: Router,
    peer: SocketAddr,
}

impl FastPath {
    /// Whether this node answers `room`'s HLS itself (in a cluster, only for rooms it holds).
    fn holds(&self, room: &str) -> bool {
        self.app.cluster.is_none() || self.app.rooms.get(room).is_some()
    }
}

impl Service<Request> for FastPath {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        let fast = hls_target(req.method(), req.uri().path()).is_some_and(|(room, _)| self.holds(room));
        if !fast {
            req.extensions_mut().insert(ConnectInfo(self.peer));
            return Box::pin(self.router.clone().oneshot(req));
        }
        let (app, ip) = (self.app.clone(), self.peer.ip());
        Box::pin(async move {
            let (room, file) = hls_target(req.method(), req.uri().path()).expect("checked above");
            let query = hls_out::routes::parse_query(req.uri().query());
            let headers = req.headers();
            let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
            let viewer =
                || hls_out::routes::viewer_identity(text(hls_out::routes::VIEWER_HEADER), text(header::USER_AGENT.as_str()), Some(ip));
            let mut response = hls_out::routes::serve_file(&app.broadcasts.hls, room, file, query, viewer).await;
            hls_out::routes::add_cors_headers(response.headers_mut());
            add_security_headers(response.headers_mut());
            app.metrics.count_request("hls", &Method::GET, response.status().as_u16());
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_gets_of_hls_files_take_the_fast_path() {
        let get = Method::GET;
        assert_eq!(hls_target(&get, "/hls/r-1/index.m3u8"), Some(("r-1", "index.m3u8")));
        assert_eq!(hls_target(&get, "/hls/r-1/part-3.1.m4s"), Some(("r-1", "part-3.1.m4s")));
        // (a malformed name is the fast path's too: serve_file refuses it as the router would)
        assert_eq!(hls_target(&get, "/hls/r-1/nope"), Some(("r-1", "nope")));
        for path in [
            "/hls/r-1/index%2Em3u8",
            "/hls/r-1/watching",
            "/hls/r-1/a/b",
            "/hls/r-1/",
            "/hls//index.m3u8",
            "/hls/r-1",
            "/hls/",
            "/hlsx/r-1/index.m3u8",
            "/api/rooms/r-1",
        ] {
            assert_eq!(hls_target(&get, path), None, "{path}");
        }
        for method in [Method::HEAD, Method::POST, Method::OPTIONS, Method::DELETE] {
            assert_eq!(hls_target(&method, "/hls/r-1/index.m3u8"), None, "{method}");
        }
    }
}
