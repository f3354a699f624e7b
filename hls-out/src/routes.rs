//! HTTP: `GET /hls/{room}/index.m3u8` (with LL-HLS blocking reload and delta updates),
//! `init-{n}.mp4`, `seg-{msn}.m4s`, `part-{msn}.{part}.m4s`. Everything comes from memory;
//! names are parsed ([`crate::uri`]), never turned into paths.
//!
//! Errors are JSON `{error, message}`: 400 for malformed names, room ids or query directives
//! (and blocking requests too far ahead), 404 for unknown rooms and media that is not (or no
//! longer) there, 503 when a wait times out or the stream has nothing to play yet.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Json, Router};
use bytes::Bytes;
use tower_http::cors::{Any, CorsLayer};
use tracing::debug;

use crate::packager::Lookup;
use crate::playlist::Delivery;
use crate::store::{HlsStore, Stream, WaitError};
use crate::uri::{self, FileName, NameError};

pub const PLAYLIST_CONTENT_TYPE: &str = "application/vnd.apple.mpegurl";
pub const INIT_CONTENT_TYPE: &str = "video/mp4";
pub const MEDIA_CONTENT_TYPE: &str = "video/iso.segment";
/// Segments, parts and init segments never change under their name.
pub const MEDIA_CACHE_CONTROL: &str = "public, max-age=31536000, immutable";
/// A playlist without delivery directives changes with every part.
pub const PLAYLIST_CACHE_CONTROL: &str = "no-cache";
/// Blocking waits last at most this many target durations.
pub const BLOCK_TARGET_DURATIONS: u32 = 3;

/// The HLS routes, to be merged into the gateway's router at the root.
pub fn routes<S: Clone + Send + Sync + 'static>(store: Arc<HlsStore>) -> Router<S> {
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::HEAD, Method::OPTIONS])
        .allow_headers(Any)
        .expose_headers([header::AGE, header::CONTENT_LENGTH, header::DATE])
        .max_age(Duration::from_secs(86_400));
    Router::new()
        .route("/hls/{room}/{file}", get(serve))
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

fn error(status: StatusCode, code: &'static str, message: impl Into<String>) -> Response {
    let mut r = (status, Json(serde_json::json!({"error": code, "message": message.into()}))).into_response();
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn bad_request(message: impl Into<String>) -> Response {
    error(StatusCode::BAD_REQUEST, "bad_request", message)
}

fn not_found(message: impl Into<String>) -> Response {
    error(StatusCode::NOT_FOUND, "not_found", message)
}

fn timeout(what: &str) -> Response {
    let mut r = error(
        StatusCode::SERVICE_UNAVAILABLE,
        "timeout",
        format!("{what} did not become available in time; reload the playlist"),
    );
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

fn media(content_type: &'static str, body: Bytes) -> Response {
    (
        [(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, MEDIA_CACHE_CONTROL)],
        body,
    )
        .into_response()
}

async fn serve(
    State(store): State<Arc<HlsStore>>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Response {
    let Ok(Path((room, file))) = path else {
        return bad_request("malformed path");
    };
    if !uri::valid_room(&room) {
        return bad_request("malformed room id");
    }
    let file = match FileName::parse(&file) {
        Ok(f) => f,
        Err(NameError::BadNumber) => return bad_request(format!("malformed number in {file:?}")),
        Err(NameError::Unknown) => {
            return not_found("no such file; a stream has index.m3u8 and the init, seg and part files it lists")
        }
    };
    let Some(stream) = store.get(&room) else {
        return error(StatusCode::NOT_FOUND, "stream_not_found", "this room is not broadcasting");
    };
    match file {
        FileName::Playlist => {
            let Ok(Query(pairs)) = query else {
                return bad_request("malformed query string");
            };
            match Directives::parse(&pairs) {
                Ok(d) => playlist(&stream, d).await,
                Err(msg) => bad_request(msg),
            }
        }
        FileName::Init(v) => match stream.with(|p| p.init(v)) {
            Some(data) => media(INIT_CONTENT_TYPE, data),
            None => not_found(format!("{file} is not (or no longer) available")),
        },
        FileName::Segment(msn) => wait_for_media(&stream, file, |p| p.segment_data(msn)).await,
        FileName::Part(msn, i) => wait_for_media(&stream, file, |p| p.part_data(msn, i)).await,
    }
}

fn deadline(stream: &Stream) -> tokio::time::Instant {
    tokio::time::Instant::now() + stream.with(|p| p.target_duration()) * BLOCK_TARGET_DURATIONS
}

/// Serves a segment or part, waiting for it if it is the next one to be published.
async fn wait_for_media(
    stream: &Stream,
    file: FileName,
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
        Ok(Some(data)) => media(MEDIA_CONTENT_TYPE, data),
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

async fn playlist(stream: &Stream, d: Directives) -> Response {
    let delivery = if d.skip { Delivery::Delta } else { Delivery::Full };
    let body = match d.msn {
        Some(msn) => {
            if let Err(e) = stream.with(|p| p.check_directive(msn, d.part)) {
                return bad_request(e.to_string());
            }
            let waited = stream
                .wait_until(deadline(stream), |p| p.playlist_ready(msn, d.part).then(|| p.playlist(delivery)))
                .await;
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
                let mut r = error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "stream_starting",
                    "the broadcast is starting; no media yet",
                );
                r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                return r;
            }
            body
        }
    };
    let cache = match d.msn {
        // A blocking response is the playlist as of (at least) the requested part: any later
        // copy would do as well, so caches may keep it for a while (RFC 8216bis 6.2.5.2).
        Some(_) => {
            let td = stream.with(|p| p.target_duration()).as_secs();
            HeaderValue::from_str(&format!("public, max-age={}", 6 * td)).expect("ascii")
        }
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
