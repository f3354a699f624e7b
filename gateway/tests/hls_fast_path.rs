//! The HLS fast path (`api::hls_fast_path`) answers as the router does. One gateway state is
//! served two ways over real HTTP: by the gateway as it runs (HLS files skip the router) and
//! by a second listener serving only the router (as every request was served before). The
//! same requests go to both: public and private rooms, every kind of file, LL-HLS directives,
//! malformed names and queries, unknown rooms, an Origin header. Status, every header but
//! `date`, and the body must match; and the request counter counts both alike.
//!
//! The streams are fed through hls-out's real writer, so no compositor is needed.
//! Run: `cargo test -p roomcast --test hls_fast_path`.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};

const KEY: &str = "fast-path-test-api-key";
const SECRET: &str = "fast-path-test-secret-0123456789abcdef";

struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Bytes,
}

async fn get(http: &reqwest::Client, url: &str, headers: &[(&str, &str)]) -> Answer {
    let mut req = http.get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let mut headers: Vec<(String, String)> = r
        .headers()
        .iter()
        .filter(|(k, _)| k.as_str() != "date")
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("<binary>").to_owned()))
        .collect();
    headers.sort();
    Answer { status, headers, body: r.bytes().await.unwrap() }
}

fn feed(server: &roomcast::RunningServer, room: &str) -> hls_out::StreamWriter {
    let w = server.state.broadcasts.hls.open(
        room,
        hls_out::PackagerConfig { part_target: Duration::from_millis(200), segment_target: Duration::from_secs(1), window_segments: 10 },
    );
    w.init(Bytes::from_static(b"ftyp+moov of the test"));
    for i in 0..16u32 {
        w.push_part(hls_out::Part {
            data: Bytes::from(format!("part {i}")),
            duration: Duration::from_millis(200),
            independent: i % 5 == 0,
            segment_start: i % 5 == 0,
        });
    }
    w
}

fn hls_requests(metrics: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("roomcast_http_requests_total{") && l.contains("route=\"hls\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test]
async fn the_fast_path_answers_as_the_router_does() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = roomcast::Config::for_tests(dir.path());
    config.api_key = Some(KEY.into());
    config.jwt_secret = Some(SECRET.into());
    let server = roomcast::start(config).await.unwrap();
    let fast = format!("http://{}", server.http_addr);

    // The router alone, on the same state, served as before the fast path.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let routed = format!("http://{}", listener.local_addr().unwrap());
    let router = roomcast::api::router(server.state.clone());
    tokio::spawn(async move {
        axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>()).await.unwrap();
    });

    let http = reqwest::Client::new();
    let create = |private: bool| {
        let http = http.clone();
        let fast = fast.clone();
        async move {
            let r = http
                .post(format!("{fast}/api/rooms"))
                .bearer_auth(KEY)
                .json(&json!({"name": "R", "private": private}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
            r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned()
        }
    };
    let public = create(false).await;
    let private = create(true).await;
    let _w1 = feed(&server, &public);
    let _w2 = feed(&server, &private);
    let signed: Value =
        http.get(format!("{fast}/api/rooms/{private}/hls-url")).bearer_auth(KEY).send().await.unwrap().json().await.unwrap();
    let query = signed["hls_url"].as_str().unwrap().split_once('?').unwrap().1.to_owned();
    let (head, sig) = query.split_once("sig=").unwrap();
    let tampered = format!("{head}sig={}{}", if sig.starts_with('A') { 'B' } else { 'A' }, &sig[1..]);

    let mut paths: Vec<String> = [
        "index.m3u8",
        "index.m3u8?_HLS_skip=YES",
        "index.m3u8?_HLS_msn=2&_HLS_part=0",
        "index.m3u8?_HLS_msn=1",
        "index.m3u8?_HLS_part=1",
        "index.m3u8?_HLS_msn=x",
        "index.m3u8?_HLS_msn=1&_HLS_msn=1",
        "index.m3u8?%zz",
        "index.m3u8?other=1",
        "init-0.mp4",
        "init-7.mp4",
        "seg-1.m4s",
        "seg-01.m4s",
        "part-2.0.m4s",
        "part-0.9.m4s",
        "seg-abc.m4s",
        "nope",
    ]
    .iter()
    .map(|f| format!("/hls/{public}/{f}"))
    .collect();
    paths.extend([
        "/hls/r-unknown/index.m3u8".to_owned(),
        "/hls/BAD!room/index.m3u8".to_owned(),
        format!("/hls/{private}/index.m3u8"),
        format!("/hls/{private}/index.m3u8?{query}"),
        format!("/hls/{private}/part-2.0.m4s?{query}"),
        format!("/hls/{private}/index.m3u8?{tampered}"),
        format!("/hls/{private}/seg-1.m4s"),
    ]);
    let before = hls_requests(&http.get(format!("{fast}/metrics")).send().await.unwrap().text().await.unwrap());
    let mut fast_count = 0;
    for path in &paths {
        for headers in [&[][..], &[("origin", "http://player.test"), ("x-roomcast-viewer", "tab-0123456789")][..]] {
            let a = get(&http, &format!("{fast}{path}"), headers).await;
            let b = get(&http, &format!("{routed}{path}"), headers).await;
            fast_count += 1;
            assert_eq!(a.status, b.status, "{path} {headers:?}: status");
            assert_eq!(a.headers, b.headers, "{path} {headers:?}: headers");
            assert_eq!(a.body, b.body, "{path} {headers:?}: body");
            assert!(a.status != 0);
        }
    }
    // Both ways are counted (the router's own way counts in the same metrics).
    let after = hls_requests(&http.get(format!("{fast}/metrics")).send().await.unwrap().text().await.unwrap());
    assert_eq!(after - before, 2 * fast_count, "every request counted once, either way");
    // And the cases were not all errors: the stream and the signed URL were served.
    let ok = get(&http, &format!("{fast}/hls/{public}/index.m3u8"), &[]).await;
    assert_eq!(ok.status, 200);
    assert!(std::str::from_utf8(&ok.body).unwrap().contains("#EXT-X-PART:"));
    assert_eq!(get(&http, &format!("{fast}/hls/{private}/index.m3u8?{query}"), &[]).await.status, 200);
}
