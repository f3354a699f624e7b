//! HTTP: `GET /hls/{room}/index.m3u8` (with LL-HLS blocking reload and delta updates),
//! `init-{n}.mp4`, `seg-{msn}.m4s`, `part-{msn}.{part}.m4s`. Everything comes from memory;
//! names are parsed ([`crate::uri`]), never turned into paths.
//!
//! Errors are JSON `{error, message}`: 400 for malformed names, room ids or query directives
//! (and blocking requests too far ahead), 401/403 when the access hook refuses (a private
//! room: signature missing / expired, tampered or another room's), 404 for unknown rooms and
//! media that is not (or no longer) there, 503 when a wait times out or the stream has
//! nothing to play yet.
//!
//! Viewers are counted on playlist requests (see [`crate::viewers`]), keyed by the
//! `X-Roomcast-Viewer` header (a random per-tab id the watch page sends) or, without one, by
//! the client address + User-Agent.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{ConnectInfo, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use bytes::Bytes;
use tower_http::cors::{Any, CorsLayer};
use tracing::debug;

use crate::access::Denied;
use crate::packager::Lookup;
use crate::playlist::{self as pl, Delivery};
use crate::store::{HlsStore, Stream, WaitError};
use crate::uri::{self, FileName, NameError};

pub const PLAYLIST_CONTENT_TYPE: &str = "application/vnd.apple.mpegurl";
pub const INIT_CONTENT_TYPE: &str = "video/mp4";
pub const MEDIA_CONTENT_TYPE: &str = "video/iso.segment";
/// Segments, parts and init segments never change under their name.
pub const MEDIA_CACHE_CONTROL: &str = "public, max-age=31536000, immutable";
/// A playlist without delivery directives changes with every part.
pub const PLAYLIST_CACHE_CONTROL: &str = "no-cache";
/// Media of a private room: browsers may keep it, shared caches may not (a cache would go
/// on serving it after the signature expired).
pub const PRIVATE_MEDIA_CACHE_CONTROL: &str = "private, max-age=31536000, immutable";
pub const PRIVATE_PLAYLIST_CACHE_CONTROL: &str = "private, no-cache";
/// Blocking waits last at most this many target durations.
pub const BLOCK_TARGET_DURATIONS: u32 = 3;
/// The per-tab viewer id header (`[A-Za-z0-9_-]{8,64}`), used to count viewers.
pub const VIEWER_HEADER: &str = "x-roomcast-viewer";

/// The HLS routes, to be merged into the gateway's router at the root.
pub fn routes<S: Clone + Send + Sync + 'static>(store: Arc<HlsStore>) -> Router<S> {
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::HEAD, Method::POST, Method::OPTIONS])
        .allow_headers(Any)
        .expose_headers(CORS_EXPOSED)
        .max_age(Duration::from_secs(86_400));
    Router::new()
        .route("/hls/{room}/{file}", get(serve))
        .route("/hls/{room}/watching", post(watching))
        // Everything else under /hls answers here too (JSON 400/404), not the gateway's
        // fallback. (A `/hls/{*rest}` catch-all would conflict with the route above.)
        .route("/hls", any(not_ours))
        .route("/hls/", any(not_ours))
        .route("/hls/{room}", any(not_ours))
        .route("/hls/{room}/", any(not_ours))
        .route("/hls/{room}/{file}/{*rest}", any(not_ours))
        .layer(cors)
        .with_state(store)
}

/// Response headers a player's script may read (the edge's `Age` tells it how stale a copy is).
const CORS_EXPOSED: [header::HeaderName; 3] = [header::AGE, header::CONTENT_LENGTH, header::DATE];

/// The CORS headers `routes()`' layer adds to a GET's answer (any origin may play a stream),
/// for answers made outside the router (the gateway's fast path; a test there keeps the two
/// alike).
pub fn add_cors_headers(headers: &mut axum::http::HeaderMap) {
    headers.append(header::VARY, HeaderValue::from_static("origin, access-control-request-method, access-control-request-headers"));
    headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static("age,content-length,date"));
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
}

/// Every error code of the `/hls` routes, in the API's shape (`{"error", "message"}`); each has
/// one status. `docs/protocol.md` lists them (the gateway's `api::error` tests keep the two in step).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HlsErrorCode {
    /// 400: a malformed path or LL-HLS directive.
    BadRequest,
    /// 401: a private room's playlist or media without a signed URL.
    Unauthorized,
    /// 403: a signed URL that has expired, was tampered with, or is another room's.
    Forbidden,
    /// 404: no such file (or a path outside `/hls/{room}/{file}`).
    NotFound,
    /// 404: the room is not broadcasting.
    StreamNotFound,
    /// 503: the broadcast is starting and has no media yet (retry shortly).
    StreamStarting,
    /// 503: a blocking request's part or segment did not appear in time (reload the playlist).
    Timeout,
}

impl HlsErrorCode {
    pub const ALL: [HlsErrorCode; 7] =
        [Self::BadRequest, Self::Unauthorized, Self::Forbidden, Self::NotFound, Self::StreamNotFound, Self::StreamStarting, Self::Timeout];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::StreamNotFound => "stream_not_found",
            Self::StreamStarting => "stream_starting",
            Self::Timeout => "timeout",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            Self::BadRequest => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound | Self::StreamNotFound => StatusCode::NOT_FOUND,
            Self::StreamStarting | Self::Timeout => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

fn error(code: HlsErrorCode, message: impl Into<String>) -> Response {
    let mut r = (code.status(), Json(serde_json::json!({"error": code.as_str(), "message": message.into()}))).into_response();
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn bad_request(message: impl Into<String>) -> Response {
    error(HlsErrorCode::BadRequest, message)
}

fn not_found(message: impl Into<String>) -> Response {
    error(HlsErrorCode::NotFound, message)
}

fn timeout(what: &str) -> Response {
    let mut r = error(HlsErrorCode::Timeout, format!("{what} did not become available in time; reload the playlist"));
    r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    r
}

/// Anything under /hls/ that is not `/hls/{room}/{file}`: more or fewer path segments,
/// `..` and friends.
async fn not_ours(uri: axum::http::Uri) -> Response {
    let path = uri.path();
    if path.split('/').any(|s| s == ".." || s == ".") || path.contains('\\') || path.contains("//") {
        return bad_request("malformed path; HLS URLs are /hls/{room}/index.m3u8 and the names it lists");
    }
    not_found("no such HLS resource; HLS URLs are /hls/{room}/index.m3u8 and the names it lists")
}

/// Who is asking, for counting viewers: what the request says of itself.
pub struct ViewerIdentity {
    viewer_id: Option<String>,
    user_agent: Option<String>,
    ip: Option<IpAddr>,
}

impl<S: Send + Sync> FromRequestParts<S> for ViewerIdentity {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Infallible> {
        let text = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        Ok(ViewerIdentity {
            viewer_id: text(VIEWER_HEADER),
            user_agent: text(header::USER_AGENT.as_str()),
            // Absent when the router is served without connect info (tests with `oneshot`).
            ip: parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip()),
        })
    }
}

impl ViewerIdentity {
    /// The string a viewer is counted under: the viewer id when it is well-formed, else the
    /// client address + User-Agent (tabs of one browser behind one address count once).
    pub fn key(&self) -> String {
        viewer_identity(self.viewer_id.as_deref(), self.user_agent.as_deref(), self.ip)
    }
}

/// See [`ViewerIdentity::key`].
pub fn viewer_identity(viewer_id: Option<&str>, user_agent: Option<&str>, ip: Option<IpAddr>) -> String {
    match viewer_id {
        Some(id) if (8..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') => {
            format!("id:{id}")
        }
        _ => {
            let ip = ip.map_or_else(|| "?".to_owned(), |ip| ip.to_string());
            let ua: String = user_agent.unwrap_or("").chars().take(256).collect();
            format!("addr:{ip}|{ua}")
        }
    }
}

fn media(content_type: &'static str, body: Bytes, private: bool) -> Response {
    let cache = if private { PRIVATE_MEDIA_CACHE_CONTROL } else { MEDIA_CACHE_CONTROL };
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, cache)], body).into_response()
}

fn denied(room: &str, d: Denied) -> Response {
    // The reason only: never the query (it carries the signature).
    match d {
        Denied::Unauthenticated(m) => {
            debug!(room, "hls: request without credentials refused");
            error(HlsErrorCode::Unauthorized, m)
        }
        Denied::Forbidden(m) => {
            debug!(room, reason = %m, "hls: request refused");
            error(HlsErrorCode::Forbidden, m)
        }
    }
}

async fn serve(
    State(store): State<Arc<HlsStore>>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    viewer: ViewerIdentity,
) -> Response {
    let Ok(Path((room, file))) = path else {
        return bad_request("malformed path");
    };
    let query = query.map(|Query(pairs)| pairs).map_err(|_| MalformedQuery);
    serve_file(&store, &room, &file, query, || viewer.key()).await
}

/// A query string that is not `k=v&…` form encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MalformedQuery;

/// A raw query string as `serve_file` takes it: parsed as axum's `Query` does (so both ways in
/// answer alike).
pub fn parse_query(query: Option<&str>) -> Result<Vec<(String, String)>, MalformedQuery> {
    match query {
        None | Some("") => Ok(Vec::new()),
        Some(q) => serde_urlencoded::from_str(q).map_err(|_| MalformedQuery),
    }
}

/// `GET /hls/{room}/{file}` once the path is split and decoded: the whole answer, for the
/// router's handler and for a server's fast path alike (see the gateway's `api::hls_fast_path`).
/// `viewer_key` is only called for playlists (see [`ViewerIdentity::key`]).
pub async fn serve_file(
    store: &HlsStore,
    room: &str,
    file: &str,
    query: Result<Vec<(String, String)>, MalformedQuery>,
    viewer_key: impl FnOnce() -> String,
) -> Response {
    if !uri::valid_room(room) {
        return bad_request("malformed room id");
    }
    let file = match FileName::parse(file) {
        Ok(f) => f,
        Err(NameError::BadNumber) => return bad_request(format!("malformed number in {file:?}")),
        Err(NameError::Unknown) => return not_found("no such file; a stream has index.m3u8 and the init, seg and part files it lists"),
    };
    // Access before anything about the stream is revealed.
    let signed = match store.access() {
        Some(hook) => {
            let pairs = query.as_ref().map_or(&[][..], |p| p.as_slice());
            match hook.check(room, pairs) {
                Ok(signed) => signed,
                Err(d) => return denied(room, d),
            }
        }
        None => None,
    };
    let Some(stream) = store.get(room) else {
        return error(HlsErrorCode::StreamNotFound, "this room is not broadcasting");
    };
    let private = signed.is_some();
    match file {
        FileName::Playlist => {
            let Ok(pairs) = query else {
                return bad_request("malformed query string");
            };
            match Directives::parse(&pairs) {
                Ok(d) => {
                    stream.viewer_seen(store.viewer_key(&viewer_key()));
                    playlist(&stream, d, signed.as_deref()).await
                }
                Err(msg) => bad_request(msg),
            }
        }
        FileName::Init(v) => match stream.with(|p| p.init(v)) {
            Some(data) => media(INIT_CONTENT_TYPE, data, private),
            None => not_found(format!("{file} is not (or no longer) available")),
        },
        FileName::Segment(msn) => wait_for_media(&stream, file, private, |p| p.segment_data(msn)).await,
        FileName::Part(msn, i) => wait_for_media(&stream, file, private, |p| p.part_data(msn, i)).await,
    }
}

/// `POST /hls/{room}/watching` (with the playlist URL's query in a private room): a viewer
/// says it is watching. The watch page sends one every [`crate::viewers::BEACON_EVERY`]. A
/// POST is never answered by a cache, so viewers behind an edge cache or a CDN, whose
/// playlist requests the cache answers, still count. `204`, never cached.
async fn watching(
    State(store): State<Arc<HlsStore>>,
    Path(room): Path<String>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    viewer: ViewerIdentity,
) -> Response {
    if !uri::valid_room(&room) {
        return bad_request("malformed room id");
    }
    if let Some(hook) = store.access() {
        let pairs = query.as_ref().map_or(&[][..], |Query(p)| p.as_slice());
        if let Err(d) = hook.check(&room, pairs) {
            return denied(&room, d);
        }
    }
    let Some(stream) = store.get(&room) else {
        return error(HlsErrorCode::StreamNotFound, "this room is not broadcasting");
    };
    stream.viewer_beacon(store.viewer_key(&viewer.key()));
    (StatusCode::NO_CONTENT, [(header::CACHE_CONTROL, "no-store")]).into_response()
}

fn deadline(stream: &Stream) -> tokio::time::Instant {
    tokio::time::Instant::now() + stream.with(|p| p.target_duration()) * BLOCK_TARGET_DURATIONS
}

/// Serves a segment or part, waiting for it if it is the next one to be published.
async fn wait_for_media(
    stream: &Stream,
    file: FileName,
    private: bool,
    lookup: impl Fn(&crate::packager::Packager) -> Lookup<Bytes>,
) -> Response {
    let deadline = deadline(stream);
    let found = stream
        .wait_until(deadline, |p| match lookup(p) {
            Lookup::Ready(b) => Some(Some(b)),
            Lookup::Missing => Some(None),
            Lookup::Pending => None,
        })
        .await;
    match found {
        Ok(Some(data)) => media(MEDIA_CONTENT_TYPE, data, private),
        Ok(None) | Err(WaitError::Gone) => not_found(format!("{file} is not (or no longer) available")),
        Err(WaitError::Timeout) => {
            debug!(%file, "hls: media wait timed out");
            timeout(&file.to_string())
        }
    }
}

/// LL-HLS delivery directives from the playlist query string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Directives {
    pub msn: Option<u64>,
    pub part: Option<u64>,
    pub skip: bool,
}

impl Directives {
    /// `_HLS_msn=N`, `_HLS_part=M` (only with `_HLS_msn`), `_HLS_skip=YES|v2`; other parameters
    /// are ignored; a directive given twice or malformed is an error.
    pub fn parse(pairs: &[(String, String)]) -> Result<Directives, String> {
        let mut d = Directives::default();
        let mut seen = [false; 3];
        for (k, v) in pairs {
            let slot = match k.as_str() {
                "_HLS_msn" => 0,
                "_HLS_part" => 1,
                "_HLS_skip" => 2,
                _ => continue,
            };
            if std::mem::replace(&mut seen[slot], true) {
                return Err(format!("{k} given twice"));
            }
            match slot {
                0 => d.msn = Some(uri::parse_number(v).ok_or_else(|| format!("_HLS_msn={v:?} is not a number"))?),
                1 => d.part = Some(uri::parse_number(v).ok_or_else(|| format!("_HLS_part={v:?} is not a number"))?),
                _ => {
                    d.skip = match v.as_str() {
                        "YES" | "v2" => true,
                        _ => return Err(format!("_HLS_skip={v:?}: expected YES or v2")),
                    }
                }
            }
        }
        if d.part.is_some() && d.msn.is_none() {
            return Err("_HLS_part needs _HLS_msn".into());
        }
        Ok(d)
    }
}

/// The playlist; `signed`: the query to append to every URI it lists (a private room).
async fn playlist(stream: &Stream, d: Directives, signed: Option<&str>) -> Response {
    let delivery = if d.skip { Delivery::Delta } else { Delivery::Full };
    let body = match d.msn {
        Some(msn) => {
            if let Err(e) = stream.with(|p| p.check_directive(msn, d.part)) {
                return bad_request(e.to_string());
            }
            let waited = stream.wait_until(deadline(stream), |p| p.playlist_ready(msn, d.part).then(|| p.playlist(delivery))).await;
            match waited {
                Ok(body) => body,
                Err(WaitError::Gone) => return not_found("the stream is gone"),
                Err(WaitError::Timeout) => {
                    debug!(msn, part = ?d.part, "hls: blocking playlist request timed out");
                    let what = match d.part {
                        Some(p) => format!("part {p} of segment {msn}"),
                        None => format!("segment {msn}"),
                    };
                    return timeout(&what);
                }
            }
        }
        None => {
            let (body, starting) = stream.with(|p| (p.playlist(delivery), !p.has_media() && !p.is_ended()));
            if starting {
                let mut r = error(HlsErrorCode::StreamStarting, "the broadcast is starting; no media yet");
                r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                return r;
            }
            body
        }
    };
    // Each viewer's signed copy differs; the rendered playlist stays cached unsigned.
    let body = match signed {
        Some(q) => Bytes::from(pl::with_query(std::str::from_utf8(&body).unwrap_or_default(), q)),
        None => body,
    };
    let scope = if signed.is_some() { "private" } else { "public" };
    let cache = match d.msn {
        // A blocking response is the playlist as of (at least) the requested part: any later
        // copy would do as well, so caches may keep it for a while (RFC 8216bis 6.2.5.2).
        Some(_) => {
            let td = stream.with(|p| p.target_duration()).as_secs();
            HeaderValue::from_str(&format!("{scope}, max-age={}", 6 * td)).expect("ascii")
        }
        None if signed.is_some() => HeaderValue::from_static(PRIVATE_PLAYLIST_CACHE_CONTROL),
        None => HeaderValue::from_static(PLAYLIST_CACHE_CONTROL),
    };
    let mut r = ([(header::CONTENT_TYPE, PLAYLIST_CONTENT_TYPE)], body).into_response();
    r.headers_mut().insert(header::CACHE_CONTROL, cache);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn viewer_identity_prefers_a_well_formed_id() {
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(viewer_identity(Some("tab-0123456789_ab"), Some("UA"), Some(ip)), "id:tab-0123456789_ab");
        // same id from another address: the same viewer (a phone switching networks)
        assert_eq!(viewer_identity(Some("tab-0123456789_ab"), None, None), "id:tab-0123456789_ab");
        for bad in ["short", "has space in it", "x".repeat(65).as_str(), "ünïcödé-ünïcödé", "a/b/c/d/e/f"] {
            assert_eq!(viewer_identity(Some(bad), Some("UA"), Some(ip)), "addr:192.0.2.7|UA", "{bad:?}");
        }
        assert_eq!(viewer_identity(None, Some("UA"), Some(ip)), "addr:192.0.2.7|UA");
        assert_ne!(viewer_identity(None, Some("UA 2"), Some(ip)), viewer_identity(None, Some("UA"), Some(ip)));
        assert_eq!(viewer_identity(None, None, None), "addr:?|");
        assert_eq!(viewer_identity(None, Some(&"u".repeat(1000)), None).len(), "addr:?|".len() + 256);
    }

    #[test]
    fn directives() {
        assert_eq!(Directives::parse(&q(&[])), Ok(Directives::default()));
        assert_eq!(
            Directives::parse(&q(&[("_HLS_msn", "12"), ("_HLS_part", "2"), ("_HLS_skip", "YES"), ("x", "y")])),
            Ok(Directives { msn: Some(12), part: Some(2), skip: true })
        );
        assert!(Directives::parse(&q(&[("_HLS_skip", "v2")])).unwrap().skip);
        for bad in [
            &[("_HLS_msn", "x")][..],
            &[("_HLS_msn", "-1")],
            &[("_HLS_msn", "")],
            &[("_HLS_msn", "99999999999999999999999")],
            &[("_HLS_part", "1")],
            &[("_HLS_msn", "1"), ("_HLS_msn", "2")],
            &[("_HLS_skip", "NO")],
        ] {
            assert!(Directives::parse(&q(bad)).is_err(), "{bad:?}");
        }
    }
}
