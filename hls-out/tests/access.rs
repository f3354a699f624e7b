//! The access-check hook and viewer counting through the router: a private room's requests
//! need a signature (401 without, 403 expired/tampered/foreign), the signed playlist signs
//! every URI it lists, LL-HLS directives keep working next to the signature, public rooms are
//! untouched; distinct viewers are counted on playlist requests and "watching" beacons.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use bytes::Bytes;
use hls_out::signed::{self, UrlKey};
use hls_out::{Denied, HlsStore, PackagerConfig, Part};
use tower::ServiceExt;

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn key() -> UrlKey {
    UrlKey::derive(b"test-secret-test-secret-test-secret", "hls-url")
}

/// `private-*` rooms need a signature; others are public.
fn setup() -> (Arc<HlsStore>, Router) {
    let store = HlsStore::new();
    store.set_access(Arc::new(|room: &str, q: &[(String, String)]| {
        if !room.starts_with("private") {
            return Ok(None);
        }
        match key().verify(room, q, now()) {
            Ok(exp) => Ok(Some(format!("exp={exp}&sig={}", q.iter().find(|(k, _)| k == "sig").unwrap().1))),
            Err(signed::SigError::Missing) => Err(Denied::Unauthenticated(signed::SigError::Missing.to_string())),
            Err(e) => Err(Denied::Forbidden(e.to_string())),
        }
    }));
    for room in ["private-1", "private-2", "public-1"] {
        let w = store.open(
            room,
            PackagerConfig { part_target: Duration::from_millis(334), segment_target: Duration::from_secs(1), window_segments: 10 },
        );
        w.init(Bytes::from_static(b"ftyp+moov"));
        for i in 0..8u64 {
            w.push_part(Part {
                data: Bytes::from(format!("part {i}")),
                duration: Duration::from_millis(333),
                independent: i % 3 == 0,
                segment_start: i % 3 == 0,
            });
        }
    }
    let app = hls_out::routes(store.clone());
    (store, app)
}

async fn get(app: &Router, uri: &str, viewer: Option<&str>) -> (StatusCode, String, String) {
    let mut req = Request::get(uri);
    if let Some(v) = viewer {
        req = req.header("x-roomcast-viewer", v);
    }
    let r = app.clone().oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
    let status = r.status();
    let cache = r.headers().get(header::CACHE_CONTROL).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    let body = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
    (status, String::from_utf8_lossy(&body).into_owned(), cache)
}

fn uris(playlist: &str) -> Vec<String> {
    let mut out = Vec::new();
    for l in playlist.lines() {
        if !l.starts_with('#') && !l.is_empty() {
            out.push(l.to_owned());
        } else if let Some((_, r)) = l.split_once("URI=\"") {
            out.push(r.split('"').next().unwrap().to_owned());
        }
    }
    out
}

#[tokio::test]
async fn private_rooms_need_a_valid_signature_for_everything() {
    let (_store, app) = setup();
    let q = key().sign("private-1", now() + 60);
    for file in ["index.m3u8", "init-0.mp4", "seg-1.m4s", "part-1.0.m4s"] {
        let (s, body, _) = get(&app, &format!("/hls/private-1/{file}"), None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{file}: {body}");
        assert!(body.contains("hls-url"), "{body}");
    }
    let expired = key().sign("private-1", now() - 1);
    let foreign = key().sign("private-2", now() + 60);
    let tampered = q.replace("exp=", "exp=1");
    for bad in [&expired, &foreign, &tampered] {
        let (s, body, _) = get(&app, &format!("/hls/private-1/index.m3u8?{bad}"), None).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{bad}: {body}");
        assert!(!body.contains("sig="), "no signature echoed: {body}");
    }

    let (s, text, cache) = get(&app, &format!("/hls/private-1/index.m3u8?{q}"), None).await;
    assert_eq!(s, StatusCode::OK, "{text}");
    assert_eq!(cache, "private, no-cache");
    let listed = uris(&text);
    assert!(listed.iter().any(|u| u.starts_with("init-")) && listed.iter().any(|u| u.starts_with("seg-")));
    assert!(listed.iter().any(|u| u.starts_with("part-")) && text.contains("#EXT-X-PRELOAD-HINT"));
    for u in &listed {
        assert!(u.ends_with(&format!("?{q}")), "{u} is not signed:\n{text}");
        if u.contains("PRELOAD") || text.contains(&format!("PRELOAD-HINT:TYPE=PART,URI=\"{u}\"")) {
            continue; // not published yet: it would block
        }
        let (s, body, cache) = get(&app, &format!("/hls/private-1/{u}"), None).await;
        assert_eq!(s, StatusCode::OK, "{u}: {body}");
        assert!(cache.starts_with("private,"), "{u}: {cache}");
    }
    // blocking reload next to the signature (already available: answers at once)
    let (s, text, cache) = get(&app, &format!("/hls/private-1/index.m3u8?_HLS_msn=2&_HLS_part=1&{q}"), None).await;
    assert_eq!(s, StatusCode::OK, "{text}");
    assert!(cache.starts_with("private, max-age="), "{cache}");
    let (s, text, _) = get(&app, &format!("/hls/private-1/index.m3u8?{q}&_HLS_skip=YES"), None).await;
    assert_eq!(s, StatusCode::OK, "{text}");
    // the signature of one room does not open another's media either
    let (s, _, _) = get(&app, &format!("/hls/private-2/seg-1.m4s?{q}"), None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn public_rooms_are_untouched_and_path_tricks_still_fail() {
    let (_store, app) = setup();
    let (s, text, cache) = get(&app, "/hls/public-1/index.m3u8", None).await;
    assert_eq!((s, cache.as_str()), (StatusCode::OK, "no-cache"));
    assert!(!text.contains('?'), "{text}");
    let seg = uris(&text).into_iter().find(|u| u.starts_with("seg-")).unwrap();
    let (s, _, cache) = get(&app, &format!("/hls/public-1/{seg}"), None).await;
    assert_eq!((s, cache.as_str()), (StatusCode::OK, "public, max-age=31536000, immutable"));
    let q = key().sign("private-1", now() + 60);
    for path in [
        "/hls/private-1/../../etc/passwd".to_owned(),
        format!("/hls/private-1/..%2F..%2Fetc%2Fpasswd?{q}"),
        format!("/hls/..%2Fprivate-1/index.m3u8?{q}"),
        format!("/hls/private-1/%2e%2e/index.m3u8?{q}"),
        "/hls/private-1/index.m3u8/x".to_owned(),
    ] {
        let (s, body, _) = get(&app, &path, None).await;
        assert!(s.is_client_error(), "{path}: {s} {body}");
        assert!(!body.contains("root:"), "{path}");
    }
}

#[tokio::test]
async fn distinct_viewers_are_counted_on_playlist_requests() {
    let (store, app) = setup();
    assert_eq!(store.viewers("public-1").unwrap().current, 0);
    for _ in 0..3 {
        get(&app, "/hls/public-1/index.m3u8", Some("viewer-aaaaaaaa")).await;
        get(&app, "/hls/public-1/index.m3u8", Some("viewer-bbbbbbbb")).await;
        get(&app, "/hls/public-1/init-0.mp4", Some("viewer-cccccccc")).await; // media: not counted
    }
    let v = store.viewers("public-1").unwrap();
    assert_eq!((v.current, v.peak), (2, 2));
    // refused requests are not viewers
    get(&app, "/hls/private-1/index.m3u8", Some("viewer-dddddddd")).await;
    assert_eq!(store.viewers("private-1").unwrap().current, 0);
    // without an id: address + User-Agent (no address under oneshot: one viewer)
    let q = key().sign("private-1", now() + 60);
    get(&app, &format!("/hls/private-1/index.m3u8?{q}"), None).await;
    get(&app, &format!("/hls/private-1/index.m3u8?{q}"), None).await;
    assert_eq!(store.viewers("private-1").unwrap().current, 1);
    assert_eq!(store.stats("public-1").unwrap().viewers, 2);
}

async fn beacon(app: &Router, uri: &str, viewer: &str) -> (StatusCode, String) {
    let req = Request::post(uri).header("x-roomcast-viewer", viewer).body(Body::empty()).unwrap();
    let r = app.clone().oneshot(req).await.unwrap();
    let cache = r.headers().get(header::CACHE_CONTROL).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    (r.status(), cache)
}

#[tokio::test]
async fn watching_beacons_count_viewers_under_the_same_access_rules() {
    let (store, app) = setup();
    // Public room: each distinct viewer's beacon counts; never cacheable.
    assert_eq!(beacon(&app, "/hls/public-1/watching", "viewer-aaaaaaaa").await, (StatusCode::NO_CONTENT, "no-store".to_owned()));
    beacon(&app, "/hls/public-1/watching", "viewer-bbbbbbbb").await;
    beacon(&app, "/hls/public-1/watching", "viewer-aaaaaaaa").await;
    assert_eq!(store.viewers("public-1").unwrap().current, 2);
    // A private room's beacon needs the playlist URL's signature, like its playlist.
    assert_eq!(beacon(&app, "/hls/private-1/watching", "viewer-cccccccc").await.0, StatusCode::UNAUTHORIZED);
    let other = key().sign("private-2", now() + 60);
    assert_eq!(beacon(&app, &format!("/hls/private-1/watching?{other}"), "viewer-cccccccc").await.0, StatusCode::FORBIDDEN);
    assert_eq!(store.viewers("private-1").unwrap().current, 0, "refused beacons are not viewers");
    let q = key().sign("private-1", now() + 60);
    assert_eq!(beacon(&app, &format!("/hls/private-1/watching?{q}"), "viewer-cccccccc").await.0, StatusCode::NO_CONTENT);
    assert_eq!(store.viewers("private-1").unwrap().current, 1);
    // Unknown and malformed rooms.
    assert_eq!(beacon(&app, "/hls/nobody-here/watching", "viewer-dddddddd").await.0, StatusCode::NOT_FOUND);
    assert_eq!(beacon(&app, "/hls/bad%20room/watching", "viewer-dddddddd").await.0, StatusCode::BAD_REQUEST);
    // A GET of it is no stream file.
    assert_eq!(get(&app, "/hls/public-1/watching", None).await.0, StatusCode::METHOD_NOT_ALLOWED);
}
