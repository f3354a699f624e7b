//! The HTTP routes through the axum router (tower `oneshot`, virtual time where waits are
//! involved) and one test over a real socket with many waiting viewers.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use bytes::Bytes;
use hls_out::{HlsStore, PackagerConfig, Part, StreamWriter};
use tower::ServiceExt;

const INIT: &[u8] = b"ftyp+moov";

fn config() -> PackagerConfig {
    PackagerConfig { part_target: Duration::from_millis(334), segment_target: Duration::from_secs(1), window_segments: 10 }
}

struct Setup {
    store: Arc<HlsStore>,
    w: StreamWriter,
    app: Router,
    /// MSN of the first segment.
    m: u64,
    pushed: u64,
}

fn setup() -> Setup {
    setup_with(config())
}

fn setup_with(config: PackagerConfig) -> Setup {
    let store = HlsStore::with_grace(Duration::from_secs(5));
    let w = store.open("r-1", config);
    w.init(Bytes::from_static(INIT));
    let m = w.stats().next_msn;
    let app = hls_out::routes(store.clone());
    Setup { store, w, app, m, pushed: 0 }
}

impl Setup {
    /// Pushes the next part of a 3-parts-per-segment stream; returns its bytes.
    fn push(&mut self) -> Bytes {
        let i = self.pushed;
        self.pushed += 1;
        let data = Bytes::from(format!("part {i}"));
        self.w.push_part(Part {
            data: data.clone(),
            duration: Duration::from_millis(333),
            independent: i.is_multiple_of(3),
            segment_start: i.is_multiple_of(3),
        });
        data
    }

    fn push_n(&mut self, n: u64) {
        for _ in 0..n {
            self.push();
        }
    }

    async fn get(&self, uri: &str) -> Resp {
        request(&self.app, Method::GET, uri).await
    }

    fn spawn_get(&self, uri: &str) -> tokio::task::JoinHandle<Resp> {
        let app = self.app.clone();
        let uri = uri.to_owned();
        tokio::spawn(async move { request(&app, Method::GET, &uri).await })
    }
}

#[derive(Debug)]
struct Resp {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Resp {
    fn text(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap()
    }
    fn header(&self, name: header::HeaderName) -> &str {
        self.headers.get(&name).map_or("", |v| v.to_str().unwrap())
    }
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text()))
    }
    /// A JSON `{error, message}` body.
    fn error(&self) -> String {
        let j = self.json();
        assert!(j["message"].as_str().is_some_and(|m| !m.is_empty()), "{j}");
        j["error"].as_str().expect("error field").to_owned()
    }
}

async fn request(app: &Router, method: Method, uri: &str) -> Resp {
    let req = Request::builder().method(method).uri(uri).header(header::ORIGIN, "http://watch.example").body(Body::empty()).unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let body = axum::body::to_bytes(res.into_body(), 16 << 20).await.unwrap();
    Resp { status, headers, body }
}

fn parse_playlist(text: &str) -> m3u8_rs::MediaPlaylist {
    m3u8_rs::parse_media_playlist_res(text.as_bytes()).unwrap_or_else(|e| panic!("{e:?}\n{text}"))
}

/// Yields to other tasks for a while of virtual time; the request must still be waiting.
async fn assert_still_waiting(h: &tokio::task::JoinHandle<Resp>) {
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!h.is_finished(), "request answered before its part existed");
}

#[tokio::test]
async fn content_types_and_cache_headers() {
    let mut s = setup();
    let m = s.m;
    let mut parts = Vec::new();
    for _ in 0..4 {
        parts.push(s.push());
    }
    let r = s.get("/hls/r-1/index.m3u8").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.header(header::CONTENT_TYPE), "application/vnd.apple.mpegurl");
    assert_eq!(r.header(header::CACHE_CONTROL), "no-cache");
    assert_eq!(r.header(header::ACCESS_CONTROL_ALLOW_ORIGIN), "*");
    let pl = parse_playlist(r.text());
    assert_eq!(pl.media_sequence, m);
    assert_eq!(pl.segments.len(), 1);
    assert_eq!(pl.segments[0].uri, format!("seg-{m}.m4s"));
    let init_uri = pl.segments[0].map.as_ref().unwrap().uri.clone();
    assert_eq!(init_uri, format!("init-{m}.mp4"));
    assert!(r.text().contains(&format!("#EXT-X-PART:DURATION=0.333,URI=\"part-{}.0.m4s\",INDEPENDENT=YES", m + 1)));

    let r = s.get(&format!("/hls/r-1/{init_uri}")).await;
    assert_eq!((r.status, r.header(header::CONTENT_TYPE)), (StatusCode::OK, "video/mp4"));
    assert_eq!(r.header(header::CACHE_CONTROL), "public, max-age=31536000, immutable");
    assert_eq!(&r.body[..], INIT);

    let r = s.get(&format!("/hls/r-1/seg-{m}.m4s")).await;
    assert_eq!((r.status, r.header(header::CONTENT_TYPE)), (StatusCode::OK, "video/iso.segment"));
    assert_eq!(r.header(header::CACHE_CONTROL), "public, max-age=31536000, immutable");
    assert_eq!(r.body, Bytes::from([&parts[0][..], &parts[1][..], &parts[2][..]].concat()));
    assert_eq!(r.header(header::CONTENT_LENGTH), r.body.len().to_string());

    for (msn, i, want) in [(m, 1, &parts[1]), (m + 1, 0, &parts[3])] {
        let r = s.get(&format!("/hls/r-1/part-{msn}.{i}.m4s")).await;
        assert_eq!((r.status, r.header(header::CONTENT_TYPE)), (StatusCode::OK, "video/iso.segment"));
        assert_eq!(r.header(header::CACHE_CONTROL), "public, max-age=31536000, immutable");
        assert_eq!(&r.body, want);
    }

    let r = request(&s.app, Method::HEAD, &format!("/hls/r-1/seg-{m}.m4s")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.is_empty());

    // CORS preflight
    let req = Request::builder()
        .method(Method::OPTIONS)
        .uri("/hls/r-1/index.m3u8")
        .header(header::ORIGIN, "http://watch.example")
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "GET")
        .body(Body::empty())
        .unwrap();
    let res = s.app.clone().oneshot(req).await.unwrap();
    assert!(res.status().is_success());
    assert_eq!(res.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");

    // errors are not cached
    let r = s.get("/hls/r-1/seg-1.m4s").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.header(header::CACHE_CONTROL), "no-store");
    assert_eq!(r.header(header::CONTENT_TYPE), "application/json");
}

#[tokio::test]
async fn unknown_room_is_404_json() {
    let s = setup();
    for path in ["/hls/r-2/index.m3u8", "/hls/r-2/seg-1.m4s", "/hls/r-2/part-1.0.m4s", "/hls/r-2/init-1.mp4"] {
        let r = s.get(path).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(r.error(), "stream_not_found", "{path}");
    }
}

#[tokio::test]
async fn path_tricks_are_refused() {
    let mut s = setup();
    s.push_n(4);
    let cases: &[(&str, u16)] = &[
        ("/hls/r-1/../index.m3u8", 400),
        ("/hls/../r-1/index.m3u8", 400),
        ("/hls/r-1/./index.m3u8", 400),
        ("/hls/..%2F..%2Fetc/passwd", 400),
        ("/hls/r-1%2F..%2Fr-1/index.m3u8", 400),
        ("/hls/r-1%2Findex.m3u8/x", 400),
        ("/hls/%2e%2e/index.m3u8", 400),
        ("/hls/%ff/index.m3u8", 400),
        ("/hls/r%201/index.m3u8", 400),
        ("/hls/r-1/seg-abc.m4s", 400),
        ("/hls/r-1/seg--1.m4s", 400),
        ("/hls/r-1/seg-01.m4s", 400),
        ("/hls/r-1/part-1.m4s", 400),
        ("/hls/r-1/part-1.2.3.m4s", 400),
        ("/hls/r-1/init-..mp4", 400),
        ("/hls/r-1/seg-99999999999999999999999.m4s", 400),
        ("/hls/r-1/index.m3u8?_HLS_msn=abc", 400),
        ("/hls/r-1/index.m3u8?_HLS_msn=-1", 400),
        ("/hls/r-1/index.m3u8?_HLS_part=1", 400),
        ("/hls/r-1/index.m3u8?_HLS_skip=MAYBE", 400),
        ("/hls/r-1/%2e%2e", 404),
        ("/hls/r-1/..%2F..%2Fetc%2Fpasswd", 404),
        ("/hls/r-1/index.m3u8%00", 404),
        ("/hls/r-1/etc/passwd", 404),
        ("/hls/r-1/seg-1.m4s/x", 404),
        ("/hls/r-1/index.m3u8.bak", 404),
        ("/hls/r-1/", 404),
        ("/hls/r-1", 404),
        ("/hls/", 404),
        ("/hls", 404),
        ("/hls/r-1/seg-1.m4s", 404),
    ];
    for (path, want) in cases {
        let r = s.get(path).await;
        assert_eq!(r.status.as_u16(), *want, "{path}: {}", r.text());
        r.error();
    }
}

#[tokio::test(start_paused = true)]
async fn blocking_reload_returns_when_the_part_is_pushed() {
    let mut s = setup();
    let m = s.m;
    s.push_n(2); // segment m in progress: parts 0, 1
    let h = s.spawn_get(&format!("/hls/r-1/index.m3u8?_HLS_msn={m}&_HLS_part=2"));
    assert_still_waiting(&h).await;
    assert_eq!(s.store.stats("r-1").unwrap().waiting_requests, 1);
    s.push();
    let r = h.await.unwrap();
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(r.text().contains(&format!("URI=\"part-{m}.2.m4s\"")));
    assert_eq!(r.header(header::CACHE_CONTROL), "public, max-age=6");
    assert_eq!(r.header(header::CONTENT_TYPE), "application/vnd.apple.mpegurl");
    assert_eq!(s.store.stats("r-1").unwrap().waiting_requests, 0);

    // _HLS_msn alone waits for the segment to be complete
    let h = s.spawn_get(&format!("/hls/r-1/index.m3u8?_HLS_msn={m}"));
    assert_still_waiting(&h).await;
    s.push(); // starts m+1, closing m
    let r = h.await.unwrap();
    assert_eq!(r.status, StatusCode::OK);
    assert!(parse_playlist(r.text()).segments.iter().any(|seg| seg.uri == format!("seg-{m}.m4s")));

    // a part the segment closed without: answered when the segment closes
    s.push(); // m+1: parts 0, 1
    let h = s.spawn_get(&format!("/hls/r-1/index.m3u8?_HLS_msn={}&_HLS_part=5", m + 1));
    assert_still_waiting(&h).await;
    s.w.discontinuity();
    assert_eq!(h.await.unwrap().status, StatusCode::OK);

    // already there: no wait, and delta updates combine with blocking
    let r = s.get(&format!("/hls/r-1/index.m3u8?_HLS_msn={m}&_HLS_part=0&_HLS_skip=YES")).await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test(start_paused = true)]
async fn blocking_reload_times_out_with_503() {
    let mut s = setup();
    let m = s.m;
    s.push_n(2);
    let start = tokio::time::Instant::now();
    let r = s.get(&format!("/hls/r-1/index.m3u8?_HLS_msn={m}&_HLS_part=2")).await;
    let waited = start.elapsed();
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.error(), "timeout");
    assert_eq!(r.header(header::CACHE_CONTROL), "no-store");
    assert!(waited >= Duration::from_secs(3) && waited < Duration::from_millis(3100), "{waited:?}");
    assert_eq!(s.store.stats("r-1").unwrap().waiting_requests, 0);
}

#[tokio::test]
async fn far_ahead_requests_are_400_at_once() {
    let mut s = setup();
    let m = s.m;
    s.push_n(2); // segment m in progress; last complete would be m - 1
    for q in [
        format!("_HLS_msn={}", m + 2),
        format!("_HLS_msn={}&_HLS_part=0", m + 2),
        format!("_HLS_msn={m}&_HLS_part=11"), // advance part limit: ceil(3 / 0.334) = 9
        format!("_HLS_msn={}&_HLS_part=9", m + 1),
        format!("_HLS_msn={}", u64::MAX),
    ] {
        let r =
            tokio::time::timeout(Duration::from_millis(500), s.get(&format!("/hls/r-1/index.m3u8?{q}"))).await.expect("answered at once");
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{q}");
        assert_eq!(r.error(), "bad_request");
    }
}

fn preload_hint(playlist: &str) -> String {
    let line = playlist.lines().find(|l| l.starts_with("#EXT-X-PRELOAD-HINT:")).expect("preload hint");
    assert!(line.contains("TYPE=PART"), "{line}");
    line.split("URI=\"").nth(1).unwrap().trim_end_matches('"').to_owned()
}

#[tokio::test(start_paused = true)]
async fn preload_hinted_part_waits_for_its_bytes() {
    let mut s = setup();
    let m = s.m;
    s.push();
    let hint = preload_hint(s.get("/hls/r-1/index.m3u8").await.text());
    assert_eq!(hint, format!("part-{m}.1.m4s"));
    let h = s.spawn_get(&format!("/hls/r-1/{hint}"));
    assert_still_waiting(&h).await;
    let bytes = s.push();
    let r = h.await.unwrap();
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, bytes);
    assert_eq!(r.header(header::CACHE_CONTROL), "public, max-age=31536000, immutable");

    // after the third part the hint names the next segment's first part
    s.push();
    let hint = preload_hint(s.get("/hls/r-1/index.m3u8").await.text());
    assert_eq!(hint, format!("part-{}.0.m4s", m + 1));
    let h = s.spawn_get(&format!("/hls/r-1/{hint}"));
    assert_still_waiting(&h).await;
    let bytes = s.push();
    assert_eq!(h.await.unwrap().body, bytes);

    // a segment in progress can be waited for too
    let h = s.spawn_get(&format!("/hls/r-1/seg-{}.m4s", m + 1));
    assert_still_waiting(&h).await;
    s.push_n(3);
    let r = h.await.unwrap();
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body.len(), 3 * "part 3".len());

    // a hint that guessed wrong (the segment closed early) ends in 404, not a hang
    let cur = m + 2; // one part so far
    let h = s.spawn_get(&format!("/hls/r-1/part-{cur}.1.m4s"));
    assert_still_waiting(&h).await;
    s.w.discontinuity();
    assert_eq!(h.await.unwrap().status, StatusCode::NOT_FOUND);

    // nothing more than the next part is waited for
    let r = s.get(&format!("/hls/r-1/part-{}.3.m4s", cur + 1)).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // a hinted part that never comes: 503 after 3 target durations
    let r = s.get(&format!("/hls/r-1/part-{}.0.m4s", cur + 1)).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.error(), "timeout");
}

#[tokio::test]
async fn delta_update_skips_old_segments() {
    let mut s = setup();
    let m = s.m;
    s.push_n(3 * 12 + 1); // 12 complete segments, window 10
    let full = s.get("/hls/r-1/index.m3u8").await;
    let delta = s.get("/hls/r-1/index.m3u8?_HLS_skip=YES").await;
    assert_eq!(delta.status, StatusCode::OK);
    let (full, delta) = (full.text(), delta.text());
    let pf = parse_playlist(full);
    let pd = parse_playlist(delta);
    assert_eq!(pf.media_sequence, m + 2);
    assert_eq!(pf.segments.len(), 10);
    // CAN-SKIP-UNTIL = 6 s: segments ending >= 6 s before the end (end = last + 1 part)
    assert!(full.contains("CAN-SKIP-UNTIL=6.000"));
    assert!(delta.contains("#EXT-X-SKIP:SKIPPED-SEGMENTS=4\n"), "{delta}");
    assert_eq!(pd.media_sequence, pf.media_sequence);
    assert_eq!(pd.segments.len(), 6);
    assert_eq!(pd.segments[0].uri, format!("seg-{}.m4s", m + 6));
    assert!(pd.segments[0].map.is_some(), "EXT-X-MAP repeated after the skip");
    assert!(!full.contains("EXT-X-SKIP"));
}

#[tokio::test(start_paused = true)]
async fn close_ends_the_playlist_answers_waiters_then_removes_the_stream() {
    let mut s = setup();
    let m = s.m;
    s.push_n(4);
    let playlist_waiter = s.spawn_get(&format!("/hls/r-1/index.m3u8?_HLS_msn={}&_HLS_part=1", m + 1));
    let part_waiter = s.spawn_get(&format!("/hls/r-1/part-{}.1.m4s", m + 1));
    assert_still_waiting(&playlist_waiter).await;
    s.store.close("r-1");
    let r = playlist_waiter.await.unwrap();
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text().ends_with("#EXT-X-ENDLIST\n"));
    assert!(!r.text().contains("PRELOAD-HINT"));
    assert_eq!(part_waiter.await.unwrap().status, StatusCode::NOT_FOUND);
    let pl = parse_playlist(s.get("/hls/r-1/index.m3u8").await.text());
    assert!(pl.end_list);
    assert_eq!(pl.segments.len(), 2, "the segment in progress was closed");
    // the grace period (5 s here) ends
    tokio::time::sleep(Duration::from_secs(6)).await;
    let r = s.get("/hls/r-1/index.m3u8").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.error(), "stream_not_found");
    assert!(s.store.stats("r-1").is_none());
}

#[tokio::test(start_paused = true)]
async fn stream_without_media_is_starting() {
    let store = HlsStore::new();
    let w = store.open("r-9", config());
    let app = hls_out::routes(store.clone());
    let r = request(&app, Method::GET, "/hls/r-9/index.m3u8").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.error(), "stream_starting");
    assert_eq!(r.header(header::RETRY_AFTER), "1");
    // a blocking request for the first part waits for it
    w.init(Bytes::from_static(INIT));
    let m = w.stats().next_msn;
    let uri = format!("/hls/r-9/index.m3u8?_HLS_msn={m}&_HLS_part=0");
    let h = tokio::spawn({
        let app = app.clone();
        async move { request(&app, Method::GET, &uri).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!h.is_finished());
    w.push_part(Part { data: Bytes::from_static(b"p0"), duration: Duration::from_millis(333), independent: true, segment_start: true });
    let r = h.await.unwrap();
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text().contains(&format!("part-{m}.0.m4s")));
}

#[tokio::test]
async fn numbering_continues_across_compositor_restart() {
    let mut s = setup();
    let m = s.m;
    s.push_n(4);
    s.w.discontinuity();
    s.w.init(Bytes::from_static(b"other init"));
    s.pushed = 0;
    s.push_n(4);
    let r = s.get("/hls/r-1/index.m3u8").await;
    let pl = parse_playlist(r.text());
    let uris: Vec<String> = pl.segments.iter().map(|s| s.uri.clone()).collect();
    assert_eq!(uris, [format!("seg-{m}.m4s"), format!("seg-{}.m4s", m + 1), format!("seg-{}.m4s", m + 2)]);
    assert!(pl.segments[2].discontinuity);
    let new_init = pl.segments[2].map.as_ref().unwrap().uri.clone();
    assert_ne!(new_init, pl.segments[0].map.as_ref().unwrap().uri);
    assert_eq!(&s.get(&format!("/hls/r-1/{new_init}")).await.body[..], b"other init");
    assert_eq!(&s.get(&format!("/hls/r-1/init-{m}.mp4")).await.body[..], INIT, "old init still served");
}

/// Hundreds of viewers blocked on the next part over real HTTP connections are all released
/// by one push.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_waiting_viewers_released_by_one_part() {
    const VIEWERS: usize = 200;
    // Real time here: a 5 s target duration gives waiters 15 s before their blocking reload
    // times out, so a slow machine opening 200 connections does not time the first ones out.
    let mut s = setup_with(PackagerConfig { segment_target: Duration::from_secs(5), ..config() });
    let m = s.m;
    s.push_n(2);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = s.app.clone();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/hls/r-1/index.m3u8?_HLS_msn={m}&_HLS_part=2");
    let tasks: Vec<_> = (0..VIEWERS)
        .map(|_| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move {
                let r = client.get(url).send().await.unwrap();
                (r.status(), r.text().await.unwrap())
            })
        })
        .collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while s.store.stats("r-1").unwrap().waiting_requests < VIEWERS {
        assert!(std::time::Instant::now() < deadline, "viewers never all waited");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pushed_at = std::time::Instant::now();
    s.push();
    for t in tasks {
        let (status, body) = t.await.unwrap();
        assert_eq!(status, reqwest::StatusCode::OK);
        assert!(body.contains(&format!("part-{m}.2.m4s")));
    }
    // One wake-up releases everyone (not one timeout each): well under the 15 s timeout.
    assert!(pushed_at.elapsed() < Duration::from_secs(5), "released in {:?}", pushed_at.elapsed());
    assert_eq!(s.store.stats("r-1").unwrap().waiting_requests, 0);
}
