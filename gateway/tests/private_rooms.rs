//! Private rooms and viewer counting over real HTTP: viewer-token minting rights, the
//! hls-url endpoint for public and private rooms, signed HLS requests (missing → 401;
//! expired, tampered, another room's → 403; valid → the playlist and every URI it lists),
//! LL-HLS directives next to the signature, path tricks, and viewers counted on playlist
//! requests (the peak written to the store when the broadcast stops).
//!
//! The HLS stream is fed through hls-out's real writer (the compositor's input side) with
//! small synthetic parts, so no compositor is needed; the broadcast whose stop records the
//! peak runs with a compositor path that does not exist (it keeps restarting, which is
//! beside the point here). Run: `cargo test -p roomcast --test private_rooms`.

use std::time::{Duration, Instant};

use bytes::Bytes;
use roomcast::auth::hls_url::HlsUrls;
use roomcast::auth::role::Role;
use roomcast::auth::token::TokenKeys;
use roomcast::clock::unix_now;
use serde_json::{json, Value};

const KEY: &str = "private-rooms-test-api-key";
const SECRET: &str = "private-rooms-test-secret-0123456789";

struct Env {
    server: roomcast::RunningServer,
    base: String,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

async fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let mut config = roomcast::Config::for_tests(dir.path());
    config.api_key = Some(KEY.into());
    config.jwt_secret = Some(SECRET.into());
    config.compositor_bin = Some("/nonexistent/roomcast-compositor".into());
    config.max_compositor_restarts = 10_000;
    let server = roomcast::start(config).await.unwrap();
    let base = format!("http://{}", server.http_addr);
    Env { server, base, http: reqwest::Client::new(), _dir: dir }
}

struct Room {
    id: String,
    host: String,
    publisher: String,
}

impl Env {
    async fn send(&self, req: reqwest::RequestBuilder, bearer: Option<&str>) -> (u16, Value) {
        let req = match bearer {
            Some(b) => req.bearer_auth(b),
            None => req,
        };
        let r = req.send().await.unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, body: Option<Value>, bearer: Option<&str>) -> (u16, Value) {
        let mut req = self.http.post(format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.json(&b);
        }
        self.send(req, bearer).await
    }

    async fn get_json(&self, path: &str, bearer: Option<&str>) -> (u16, Value) {
        self.send(self.http.get(format!("{}{path}", self.base)), bearer).await
    }

    /// GET of an HLS path: status and body text.
    async fn hls(&self, path: &str, viewer: Option<&str>) -> (u16, String) {
        let mut req = self.http.get(format!("{}{path}", self.base));
        if let Some(v) = viewer {
            req = req.header("X-Roomcast-Viewer", v);
        }
        let r = req.send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    async fn room(&self, private: bool) -> Room {
        let (s, room) = self.post("/api/rooms", Some(json!({"name": "R", "private": private})), Some(KEY)).await;
        assert_eq!(s, 201, "{room}");
        let id = room["id"].as_str().unwrap().to_owned();
        let join = |host_key: Option<&str>| json!({"name": "N", "host_key": host_key});
        let (_, host) = self.post(&format!("/api/rooms/{id}/join"), Some(join(room["host_key"].as_str())), Some(KEY)).await;
        let (_, publisher) = self.post(&format!("/api/rooms/{id}/join"), Some(join(None)), Some(KEY)).await;
        Room { id, host: host["token"].as_str().unwrap().into(), publisher: publisher["token"].as_str().unwrap().into() }
    }

    /// Opens the room's HLS stream and publishes `segments` complete segments of 3 parts and
    /// one part of the next, through hls-out's writer.
    fn feed(&self, room: &str, segments: u64) -> hls_out::StreamWriter {
        let w = self.server.state.broadcasts.hls.open(
            room,
            hls_out::PackagerConfig {
                part_target: Duration::from_millis(334),
                segment_target: Duration::from_secs(1),
                window_segments: 10,
            },
        );
        w.init(Bytes::from_static(b"ftyp+moov of the test"));
        for i in 0..segments * 3 + 1 {
            w.push_part(hls_out::Part {
                data: Bytes::from(format!("part {i}")),
                duration: Duration::from_millis(333),
                independent: i % 3 == 0,
                segment_start: i % 3 == 0,
            });
        }
        w
    }
}

/// URIs a playlist lists: segment lines and URI="…" attributes.
fn uris(playlist: &str) -> Vec<String> {
    playlist
        .lines()
        .filter_map(|l| {
            if !l.starts_with('#') && !l.is_empty() {
                Some(l.to_owned())
            } else {
                l.split_once("URI=\"").map(|(_, r)| r.split('"').next().unwrap().to_owned())
            }
        })
        .collect()
}

#[tokio::test]
async fn viewer_tokens_are_minted_by_the_host_or_the_api_key() {
    let e = env().await;
    let r = e.room(true).await;
    let other = e.room(true).await;
    let path = format!("/api/rooms/{}/viewer-token", r.id);
    assert_eq!(e.post(&path, None, None).await.0, 401, "no credentials");
    let (s, err) = e.post(&path, None, Some(&r.publisher)).await;
    assert_eq!(s, 403, "a publisher may not mint: {err}");
    assert_eq!(err["error"], "forbidden");
    assert!(err["message"].as_str().unwrap().contains("host"), "{err}");
    assert_eq!(e.post(&path, None, Some(&other.host)).await.0, 403, "another room's host");
    assert_eq!(e.post(&path, None, Some("not-a-token")).await.0, 401);

    let (s, v) = e.post(&path, None, Some(&r.host)).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["expires_in"], 3600);
    let token = v["token"].as_str().unwrap();
    assert_eq!(v["watch_url"], format!("/watch/{}?token={token}", r.id));
    let claims = TokenKeys::from_secret(SECRET.as_bytes()).verify_for_room(token, &r.id).unwrap();
    assert_eq!(claims.role, Role::Viewer);

    let (s, v) = e.post(&path, Some(json!({"ttl_seconds": 120})), Some(KEY)).await;
    assert_eq!((s, v["expires_in"].as_u64()), (200, Some(120)), "{v}");
    for bad in [json!({"ttl_seconds": 59}), json!({"ttl_seconds": 86_401}), json!({"ttl": 100})] {
        let (s, v) = e.post(&path, Some(bad.clone()), Some(KEY)).await;
        assert_eq!(s, 400, "{bad}: {v}");
        assert_eq!(v["error"], "bad_request");
    }
    assert_eq!(e.post("/api/rooms/r-nope/viewer-token", None, Some(KEY)).await.0, 404);
}

#[tokio::test]
async fn hls_url_for_public_and_private_rooms() {
    let e = env().await;
    let public = e.room(false).await;
    let private = e.room(true).await;
    let other = e.room(true).await;

    let (s, v) = e.get_json(&format!("/api/rooms/{}/hls-url", public.id), None).await;
    assert_eq!(s, 200);
    assert_eq!(v, json!({"hls_url": format!("/hls/{}/index.m3u8", public.id), "private": false}));

    let path = format!("/api/rooms/{}/hls-url", private.id);
    let (s, v) = e.get_json(&path, None).await;
    assert_eq!(s, 401, "{v}");
    assert_eq!(v["error"], "unauthorized");
    assert!(v["message"].as_str().unwrap().contains("private"), "{v}");

    let (_, minted) = e.post(&format!("/api/rooms/{}/viewer-token", private.id), None, Some(KEY)).await;
    let viewer = minted["token"].as_str().unwrap();
    let (s, v) = e.get_json(&path, Some(viewer)).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["private"], true);
    let url = v["hls_url"].as_str().unwrap();
    assert!(url.starts_with(&format!("/hls/{}/index.m3u8?exp=", private.id)) && url.contains("&sig="), "{url}");
    let exp = v["expires_at"].as_u64().unwrap();
    assert!(exp > unix_now() + 200 && exp <= unix_now() + 301, "{exp}");

    // other tokens of the room are fine; the API key too
    for t in [&private.host, &private.publisher, &KEY.to_owned()] {
        assert_eq!(e.get_json(&path, Some(t)).await.0, 200);
    }
    // another room's, expired, forged
    let (_, other_minted) = e.post(&format!("/api/rooms/{}/viewer-token", other.id), None, Some(KEY)).await;
    let (s, v) = e.get_json(&path, other_minted["token"].as_str()).await;
    assert_eq!(s, 403, "{v}");
    let keys = TokenKeys::from_secret(SECRET.as_bytes());
    let short = keys.mint(&private.id, "v-1", "viewer", Role::Viewer, Duration::from_secs(0));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (s, v) = e.get_json(&path, Some(&short)).await;
    assert!(s == 401 || s == 403, "expired token: {s} {v}");
    let forged = TokenKeys::from_secret(b"another-secret-another-secret-xxxx").mint(
        &private.id,
        "v-2",
        "viewer",
        Role::Viewer,
        Duration::from_secs(600),
    );
    assert_eq!(e.get_json(&path, Some(&forged)).await.0, 401);
    // a URL signed for a short-lived token lives no longer than the token
    let brief = keys.mint(&private.id, "v-3", "viewer", Role::Viewer, Duration::from_secs(30));
    let (_, v) = e.get_json(&path, Some(&brief)).await;
    assert!(v["expires_at"].as_u64().unwrap() <= unix_now() + 30, "{v}");
}

#[tokio::test]
async fn private_hls_needs_a_valid_signature_and_signs_everything_it_lists() {
    let e = env().await;
    let private = e.room(true).await;
    let other = e.room(true).await;
    let public = e.room(false).await;
    let writer = e.feed(&private.id, 3);
    e.feed(&other.id, 3);
    e.feed(&public.id, 3);
    let base = format!("/hls/{}", private.id);

    // public: as always
    let (s, text) = e.hls(&format!("/hls/{}/index.m3u8", public.id), None).await;
    assert_eq!(s, 200);
    assert!(!text.contains("sig="));

    // missing → 401 for every kind of file
    let (s, text) = e.hls(&format!("{base}/index.m3u8"), None).await;
    assert_eq!(s, 401, "{text}");
    let err: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(err["error"], "unauthorized");
    for file in ["init-0.mp4", "seg-1.m4s", "part-1.0.m4s", "index.m3u8?_HLS_msn=1"] {
        assert_eq!(e.hls(&format!("{base}/{file}"), None).await.0, 401, "{file}");
    }

    let urls = HlsUrls::from_token_secret(SECRET.as_bytes());
    let (_, v) = e.get_json(&format!("/api/rooms/{}/hls-url", private.id), Some(&private.host)).await;
    let signed = v["hls_url"].as_str().unwrap().to_owned();
    let query = signed.split_once('?').unwrap().1.to_owned();

    // expired, tampered, another room's → 403
    let expired = urls.playlist_url(&private.id, unix_now() - 1);
    let longer = signed.replace("exp=", "exp=9");
    let (head, sig) = signed.split_once("sig=").unwrap();
    let flipped = format!("{head}sig={}{}", if sig.starts_with('A') { 'B' } else { 'A' }, &sig[1..]);
    let (_, v) = e.get_json(&format!("/api/rooms/{}/hls-url", other.id), Some(KEY)).await;
    let foreign_query = v["hls_url"].as_str().unwrap().split_once('?').unwrap().1.to_owned();
    for (what, url) in [
        ("expired", expired),
        ("exp changed", longer),
        ("sig changed", flipped),
        ("another room's", format!("{base}/index.m3u8?{foreign_query}")),
    ] {
        let (s, text) = e.hls(&url, None).await;
        assert_eq!(s, 403, "{what}: {text}");
        assert!(!text.contains(sig), "{what}: the signature is not echoed");
    }

    // valid → the playlist, and every URI it lists is signed with the same query
    let (s, text) = e.hls(&signed, None).await;
    assert_eq!(s, 200, "{text}");
    let listed = uris(&text);
    assert!(listed.iter().all(|u| u.ends_with(&format!("?{query}"))), "{text}");
    let init = listed.iter().find(|u| u.starts_with("init-")).expect("EXT-X-MAP");
    let seg = listed.iter().find(|u| u.starts_with("seg-")).expect("a segment");
    let hint = text.lines().find_map(|l| l.strip_prefix("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"")).expect("preload hint");
    let part = listed.iter().find(|u| u.starts_with("part-") && !hint.starts_with(u.as_str())).expect("a published part");
    for u in [init, seg, part] {
        let (s, body) = e.hls(&format!("{base}/{u}"), None).await;
        assert_eq!(s, 200, "{u}: {body}");
        assert!(body.contains("ftyp") || body.contains("part "), "{u}: {body}");
        // the same file without the query: 401
        assert_eq!(e.hls(&format!("{base}/{}", u.split('?').next().unwrap()), None).await.0, 401);
    }
    // another room's media with this room's query: 403
    assert_eq!(e.hls(&format!("/hls/{}/{seg}", other.id), None).await.0, 403);

    // LL-HLS blocking reload and delta updates next to the signature
    let msn: u64 = part.trim_start_matches("part-").split('.').next().unwrap().parse().unwrap();
    let (s, text) = e.hls(&format!("{base}/index.m3u8?_HLS_msn={msn}&_HLS_part=0&{query}"), None).await;
    assert_eq!(s, 200, "{text}");
    assert!(uris(&text).iter().all(|u| u.ends_with(&query)));
    let (s, _) = e.hls(&format!("{base}/index.m3u8?{query}&_HLS_skip=YES"), None).await;
    assert_eq!(s, 200);
    // the preload-hinted part, signed, waits until it is published
    let hinted = hint.trim_end_matches('"').to_owned();
    assert!(hinted.ends_with(&query), "{hinted}");
    let waiter = {
        let url = format!("{}{base}/{hinted}", e.base);
        let http = e.http.clone();
        tokio::spawn(async move {
            let r = http.get(url).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!waiter.is_finished(), "the hinted part is not there yet");
    writer.push_part(hls_out::Part {
        data: Bytes::from_static(b"part hinted"),
        duration: Duration::from_millis(333),
        independent: false,
        segment_start: false,
    });
    assert_eq!(waiter.await.unwrap(), (200, "part hinted".to_owned()));

    // path tricks still fail cleanly, signed or not
    for path in [
        format!("{base}/../../etc/passwd"),
        format!("/hls/%2e%2e/%2e%2e/etc/passwd?{query}"),
        format!("{base}/..%2Findex.m3u8?{query}"),
        format!("{base}/%2e%2e%2f%2e%2e%2fetc%2fpasswd?{query}"),
    ] {
        let (s, body) = e.hls(&path, None).await;
        assert!(matches!(s, 400 | 401 | 404), "{path}: {s}");
        assert!(!body.contains("root:"), "{path} leaked a file");
    }
}

async fn status(e: &Env, room: &str) -> Value {
    e.get_json(&format!("/api/rooms/{room}/broadcast"), None).await.1
}

#[tokio::test]
async fn viewers_are_counted_and_the_peak_is_stored() {
    let e = env().await;
    let r = e.room(false).await;
    let (s, v) = e.post(&format!("/api/rooms/{}/broadcast", r.id), None, Some(KEY)).await;
    assert_eq!(s, 202, "{v}");
    let _w = e.feed(&r.id, 3);
    let playlist = format!("/hls/{}/index.m3u8", r.id);
    assert_eq!(status(&e, &r.id).await["viewers"], 0);

    // two viewers (per-tab ids) reload like players for a second
    for _ in 0..4 {
        assert_eq!(e.hls(&playlist, Some("tab-aaaaaaaaaaaa")).await.0, 200);
        assert_eq!(e.hls(&playlist, Some("tab-bbbbbbbbbbbb")).await.0, 200);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let st = status(&e, &r.id).await;
    assert_eq!((st["viewers"].as_u64(), st["viewers_peak"].as_u64()), (Some(2), Some(2)), "{st}");
    let metrics = e.http.get(format!("{}/metrics", e.base)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains(&format!("roomcast_hls_viewers{{room=\"{}\"}} 2", r.id)), "{metrics}");
    assert!(metrics.contains(&format!("roomcast_hls_viewers_peak{{room=\"{}\"}} 2", r.id)));

    // one stops; the other goes on past the window (3 target durations = 3 s)
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(3600) {
        e.hls(&playlist, Some("tab-aaaaaaaaaaaa")).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let st = status(&e, &r.id).await;
    assert_eq!((st["viewers"].as_u64(), st["viewers_peak"].as_u64()), (Some(1), Some(2)), "{st}");

    // stopping records the peak
    let (s, v) = e.send(e.http.delete(format!("{}/api/rooms/{}/broadcast", e.base, r.id)), Some(KEY)).await;
    assert_eq!(s, 200, "{v}");
    e.server.state.rooms.flush().await;
    let store = e.server.state.rooms.store().expect("a store");
    let records = store.broadcasts(&r.id).await.unwrap();
    assert_eq!(records.len(), 1, "{records:?}");
    assert!(records[0].stopped_at.is_some());
    assert_eq!(records[0].viewers_peak, 2, "{records:?}");
}
