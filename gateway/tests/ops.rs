//! Ops API, health, metrics and the `roomcast ops` CLI over real HTTP, against an in-process
//! gateway. The compositor binary is made unfindable on purpose: a broadcast then goes
//! restarting → failed, which is still a listed pipeline with a last error.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use roomcast::auth::role::Role;

use roomcast::auth::token::TokenKeys;
use serde_json::{json, Value};

const SECRET: &str = "ops-test-secret-0123456789abcdef-xyz";
const API_KEY: &str = "ops-test-api-key";

struct Env {
    server: Option<roomcast::RunningServer>,
    base: String,
    http: reqwest::Client,
    keys: TokenKeys,
    _dir: tempfile::TempDir,
}

async fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let mut config = roomcast::Config::for_tests(dir.path());
    config.jwt_secret = Some(SECRET.into());
    config.api_key = Some(API_KEY.into());
    config.compositor_bin = Some(dir.path().join("no-such-compositor"));
    config.max_compositor_restarts = 1;
    let server = roomcast::start(config).await.unwrap();
    let base = format!("http://{}", server.http_addr);
    Env { server: Some(server), base, http: reqwest::Client::new(), keys: TokenKeys::from_secret(SECRET.as_bytes()), _dir: dir }
}

impl Env {
    fn ops_token(&self) -> String {
        self.keys.mint("*", "p-ops", "Ops", Role::Ops, Duration::from_secs(600))
    }

    async fn call(&self, method: reqwest::Method, path: &str, bearer: Option<&str>) -> (u16, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(b) = bearer {
            req = req.bearer_auth(b);
        }
        if path.starts_with("/api/rooms") {
            req = req.header("content-type", "application/json").body("{}");
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> (u16, String, String) {
        let r = self.http.get(format!("{}{path}", self.base)).send().await.unwrap();
        let status = r.status().as_u16();
        let ct = r.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
        (status, ct, r.text().await.unwrap())
    }

    async fn room(&self) -> String {
        // With --api-key set, creating rooms is a server-to-server call.
        let (s, v) = self.call(reqwest::Method::POST, "/api/rooms", Some(API_KEY)).await;
        assert_eq!(s, 201, "{v}");
        v["id"].as_str().unwrap().to_owned()
    }

    async fn start_broadcast(&self, room: &str) {
        let (s, v) = self.call(reqwest::Method::POST, &format!("/api/rooms/{room}/broadcast"), Some(API_KEY)).await;
        assert_eq!(s, 202, "{v}");
    }

    async fn pipelines(&self) -> Value {
        let (s, v) = self.call(reqwest::Method::GET, "/api/ops/pipelines", Some(&self.ops_token())).await;
        assert_eq!(s, 200, "{v}");
        v
    }

    /// Waits until the room's pipeline is in `state`; returns it.
    async fn wait_state(&self, room: &str, state: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let list = self.pipelines().await;
            let p = list["pipelines"].as_array().unwrap().iter().find(|p| p["room"] == room).cloned();
            if let Some(p) = p.filter(|p| p["state"] == state) {
                return p;
            }
            assert!(Instant::now() < deadline, "pipeline of {room} never got to {state}: {list}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test]
async fn ops_endpoints_need_an_ops_token_or_the_api_key() {
    let env = env().await;
    let room = env.room().await;
    let (_, join) = env.call(reqwest::Method::POST, &format!("/api/rooms/{room}/join"), Some(API_KEY)).await;
    let publisher = join["token"].as_str().unwrap().to_owned();
    let ops_for_one_room = env.keys.mint(&room, "p-x", "Ops", Role::Ops, Duration::from_secs(600));
    let host_for_all = env.keys.mint("*", "p-y", "Host", Role::Host, Duration::from_secs(600));
    let foreign =
        TokenKeys::from_secret(b"another-secret-another-secret-xxxx").mint("*", "p-z", "Ops", Role::Ops, Duration::from_secs(600));
    let ops = env.ops_token();

    let endpoints = [
        (reqwest::Method::GET, "/api/ops/pipelines".to_owned()),
        (reqwest::Method::POST, format!("/api/ops/pipelines/{room}/restart")),
        (reqwest::Method::POST, "/api/ops/drain".to_owned()),
        (reqwest::Method::DELETE, "/api/ops/drain".to_owned()),
    ];
    for (method, path) in &endpoints {
        for (bearer, want) in [(None, 401), (Some("garbage"), 401), (Some(foreign.as_str()), 401), (Some("wrong-api-key"), 401)] {
            let (s, v) = env.call(method.clone(), path, bearer).await;
            assert_eq!(s, want, "{method} {path} with {bearer:?}: {v}");
            assert_eq!(v["error"], "unauthorized", "{v}");
        }
        for bearer in [&publisher, &ops_for_one_room, &host_for_all] {
            let (s, v) = env.call(method.clone(), path, Some(bearer)).await;
            assert_eq!(s, 403, "{method} {path}: {v}");
            assert_eq!(v["error"], "forbidden", "{v}");
            assert!(v["message"].as_str().unwrap().contains("role ops and room '*'"), "{v}");
        }
    }
    // A participant's token cannot restart pipelines, even its own room's.
    env.start_broadcast(&room).await;
    let (s, _) = env.call(reqwest::Method::POST, &format!("/api/ops/pipelines/{room}/restart"), Some(&publisher)).await;
    assert_eq!(s, 403);

    let (s, v) = env.call(reqwest::Method::GET, "/api/ops/pipelines", Some(&ops)).await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = env.call(reqwest::Method::GET, "/api/ops/pipelines", Some(API_KEY)).await;
    assert_eq!(s, 200, "{v}");
}

#[tokio::test]
async fn pipelines_list_a_failed_broadcast_with_its_error_and_restart_it() {
    let env = env().await;
    let idle = env.room().await;
    let room = env.room().await;
    assert_eq!(env.pipelines().await, json!({"draining": false, "pipelines": []}));
    env.start_broadcast(&room).await;

    let p = env.wait_state(&room, "failed").await;
    assert_eq!(p["restarts"], 2, "{p}");
    assert!(p["last_error"].as_str().unwrap().contains("no-such-compositor"), "{p}");
    assert_eq!(p["legs"], 0);
    assert_eq!(p["parts"], 0);
    assert!(p["pid"].is_null());
    assert!(p["uptime_secs"].as_f64().unwrap() >= 0.0);
    assert!(p["worker"].as_u64().is_some(), "{p}");
    assert_eq!(p["participants"], 0, "{p}");
    // The failed broadcast's playlist was ended; its stream is kept for the grace period.
    assert_eq!(p["hls"]["ended"], true, "{p}");
    for key in ["media_sequence", "next_msn", "parts_published", "waiting_requests", "discontinuity_sequence"] {
        assert!(p["hls"][key].is_u64(), "hls.{key} missing: {p}");
    }
    let list = env.pipelines().await;
    let rooms: Vec<&str> = list["pipelines"].as_array().unwrap().iter().map(|p| p["room"].as_str().unwrap()).collect();
    assert_eq!(rooms, vec![room.as_str()], "a room without a broadcast is no pipeline");

    let ops = env.ops_token();
    let (s, v) = env.call(reqwest::Method::POST, &format!("/api/ops/pipelines/{idle}/restart"), Some(&ops)).await;
    assert_eq!((s, v["error"].as_str()), (409, Some("conflict")), "{v}");
    let (s, v) = env.call(reqwest::Method::POST, "/api/ops/pipelines/r-nope/restart", Some(&ops)).await;
    assert_eq!((s, v["error"].as_str()), (404, Some("room_not_found")), "{v}");

    // Restarting a failed pipeline starts it again: a fresh retry budget, then failed again.
    let (s, v) = env.call(reqwest::Method::POST, &format!("/api/ops/pipelines/{room}/restart"), Some(&ops)).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["restarted"], true);
    let p = env.wait_state(&room, "failed").await;
    assert_eq!(p["restarts"], 2, "a new broadcast counts its own restarts: {p}");
}

#[tokio::test]
async fn drain_refuses_new_rooms_stops_broadcasts_and_undrain_resumes() {
    let env = env().await;
    let room = env.room().await;
    env.start_broadcast(&room).await;
    env.wait_state(&room, "failed").await;
    let (s, _, _) = env.get("/readyz").await;
    assert_eq!(s, 200);

    let ops = env.ops_token();
    let (s, v) = env.call(reqwest::Method::POST, "/api/ops/drain", Some(&ops)).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["draining"], true);
    assert_eq!(v["already_draining"], false);
    assert_eq!(v["stopped"], json!([room]));
    // The store's broadcast record is closed, as a DELETE would close it.
    let rooms = &env.server.as_ref().unwrap().state.rooms;
    rooms.flush().await;
    let records = rooms.store().expect("embedded store").broadcasts(&room).await.unwrap();
    assert_eq!(records.len(), 1, "{records:?}");
    assert!(records[0].stopped_at.is_some() && records[0].restarts == 2, "{records:?}");

    // (The caller is checked first: without the key a draining node says 401, like any other.)
    let (s, v) = env.call(reqwest::Method::POST, "/api/rooms", Some(API_KEY)).await;
    assert_eq!(s, 503, "{v}");
    assert_eq!(v["error"], "draining");
    assert!(v["message"].as_str().unwrap().contains("draining"), "{v}");
    let (s, v) = env.call(reqwest::Method::POST, &format!("/api/rooms/{room}/join"), Some(API_KEY)).await;
    assert_eq!(s, 503, "{v}");
    assert_eq!(v["error"], "draining");
    let (s, _) = env.call(reqwest::Method::POST, &format!("/api/rooms/{room}/broadcast"), None).await;
    assert_eq!(s, 503);
    // Reading still works.
    let (s, v) = env.call(reqwest::Method::GET, &format!("/api/rooms/{room}"), None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["broadcast"], "stopped");
    let (s, _, body) = env.get("/readyz").await;
    assert_eq!(s, 503);
    assert!(body.contains("draining"), "{body}");
    let (s, _, _) = env.get("/healthz").await;
    assert_eq!(s, 200);
    assert_eq!(env.pipelines().await, json!({"draining": true, "pipelines": []}));
    let (s, v) = env.call(reqwest::Method::POST, "/api/ops/drain", Some(&ops)).await;
    assert_eq!((s, &v["already_draining"]), (200, &json!(true)));

    let (s, v) = env.call(reqwest::Method::DELETE, "/api/ops/drain", Some(&ops)).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["was_draining"], true);
    env.room().await;
    let (s, _, _) = env.get("/readyz").await;
    assert_eq!(s, 200);
}

/// With the real compositor (when it is built next to the test binary): an ops restart
/// replaces the process, the room's HLS stream goes on (MSN never back, new parts soon).
#[tokio::test]
async fn ops_restart_of_a_live_pipeline_replaces_the_compositor() {
    let bin = roomcast::broadcast::compositor::locate(None);
    if !bin.is_file() {
        eprintln!("skipped: no roomcast-compositor next to the test binary (build it with `cargo build -p roomcast-compositor`)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut config = roomcast::Config::for_tests(dir.path());
    config.jwt_secret = Some(SECRET.into());
    config.compositor_bin = Some(bin);
    config.broadcast_width = 320;
    config.broadcast_height = 180;
    config.broadcast_fps = 15;
    let server = roomcast::start(config).await.unwrap();
    let env = Env {
        base: format!("http://{}", server.http_addr),
        server: Some(server),
        http: reqwest::Client::new(),
        keys: TokenKeys::from_secret(SECRET.as_bytes()),
        _dir: dir,
    };
    let room = env.room().await;
    env.start_broadcast(&room).await;
    let before = env.wait_state(&room, "live").await;
    let old_pid = before["pid"].as_u64().unwrap();

    let (s, v) = env.call(reqwest::Method::POST, &format!("/api/ops/pipelines/{room}/restart"), Some(&env.ops_token())).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["how"], "compositor replaced");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last_msn = before["hls"]["next_msn"].as_u64().unwrap();
    loop {
        let list = env.pipelines().await;
        let p = &list["pipelines"][0];
        let msn = p["hls"]["next_msn"].as_u64().unwrap();
        assert!(msn >= last_msn, "MSN went back: {last_msn} → {msn}");
        last_msn = msn;
        let replaced = p["pid"].as_u64().is_some_and(|pid| pid != old_pid) && p["restarts"].as_u64() >= Some(1);
        if replaced
            && p["state"] == "live"
            && p["hls"]["parts_published"].as_u64() > before["hls"]["parts_published"].as_u64().map(|n| n + 3)
        {
            assert_eq!(p["hls"]["ended"], false, "{p}");
            break;
        }
        assert!(Instant::now() < deadline, "no new compositor publishing parts: {list}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A parsed sample: name, labels, value.
type Sample = (String, Vec<(String, String)>, f64);

/// One sample line of the text format: `name{label="value",...} value`.
fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line.find(['{', ' ']).ok_or("no value")?;
    let name = &line[..name_end];
    if name.is_empty()
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
        || name.starts_with(|c: char| c.is_ascii_digit())
    {
        return Err(format!("bad metric name {name:?}"));
    }
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(r) = rest.strip_prefix('{') {
        rest = r;
        loop {
            if let Some(r) = rest.strip_prefix('}') {
                rest = r;
                break;
            }
            let eq = rest.find("=\"").ok_or("label without =\"")?;
            let key = rest[..eq].to_owned();
            rest = &rest[eq + 2..];
            let mut value = String::new();
            let mut chars = rest.char_indices();
            let end = loop {
                match chars.next().ok_or("unterminated label value")? {
                    (_, '\\') => value.push(chars.next().ok_or("bad escape")?.1),
                    (i, '"') => break i,
                    (_, c) => value.push(c),
                }
            };
            labels.push((key, value));
            rest = &rest[end + 1..];
            rest = rest.strip_prefix(',').unwrap_or(rest);
        }
    }
    let value = rest.strip_prefix(' ').ok_or("no space before the value")?;
    let value: f64 = value.split(' ').next().unwrap().parse().map_err(|e| format!("value: {e}"))?;
    Ok((name.to_owned(), labels, value))
}

#[tokio::test]
async fn metrics_parse_as_prometheus_text_and_have_the_names() {
    let env = env().await;
    let room = env.room().await;
    env.start_broadcast(&room).await;
    env.wait_state(&room, "failed").await;
    let (s, _, _) = env.get("/readyz").await;
    assert_eq!(s, 200);

    let (s, ct, text) = env.get("/metrics").await;
    assert_eq!(s, 200);
    assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
    assert_eq!(text.lines().last(), Some("# EOF"), "{text}");
    let mut names = BTreeSet::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(meta) = line.strip_prefix("# ") {
            let kind = meta.split(' ').next().unwrap();
            assert!(["HELP", "TYPE", "UNIT", "EOF"].contains(&kind), "bad comment line {line:?}");
            continue;
        }
        let sample = parse_sample(line).unwrap_or_else(|e| panic!("line {line:?}: {e}"));
        names.insert(sample.0.clone());
        samples.push(sample);
    }
    for name in [
        "roomcast_sfu_worker_up",
        "roomcast_sfu_rooms",
        "roomcast_sfu_participants",
        "roomcast_sfu_producers",
        "roomcast_sfu_consumers",
        "roomcast_sfu_legs",
        "roomcast_sfu_rtp_packets_in_total",
        "roomcast_sfu_rtp_bytes_in_total",
        "roomcast_sfu_rtp_packets_out_total",
        "roomcast_sfu_rtp_bytes_out_total",
        "roomcast_sfu_leg_packets_out_total",
        "roomcast_sfu_keyframe_requests_total",
        "roomcast_sfu_datagrams_in_total",
        "roomcast_sfu_datagrams_unrouted_total",
        "roomcast_broadcasts",
        "roomcast_broadcast_restarts_total",
        "roomcast_broadcast_parts_total",
        "roomcast_broadcast_legs",
        "roomcast_broadcast_fps_in",
        "roomcast_broadcast_fps_out",
        "roomcast_broadcast_frames_dropped_total",
        "roomcast_broadcast_packets_lost_total",
        "roomcast_broadcast_mixer_catchups_total",
        "roomcast_sfu_rtt_max_seconds",
        "roomcast_hls_part_publish_delay_seconds_bucket",
        "roomcast_hls_part_publish_delay_seconds_count",
        "roomcast_hls_part_publish_delay_seconds_sum",
        "roomcast_rtp_ports_in_use",
        "roomcast_rtp_ports_capacity",
        "roomcast_compositor_spares",
        "roomcast_hls_waiting_requests",
        "roomcast_hls_parts_published_total",
        "roomcast_http_requests_total",
        "roomcast_draining",
    ] {
        assert!(names.contains(name), "{name} missing from /metrics:\n{text}");
    }
    let value = |name: &str, labels: &[(&str, &str)]| -> Option<f64> {
        samples.iter().find(|(n, l, _)| n == name && labels.iter().all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v))).map(|s| s.2)
    };
    assert_eq!(value("roomcast_broadcasts", &[("state", "failed")]), Some(1.0), "{text}");
    assert_eq!(value("roomcast_broadcasts", &[("state", "live")]), Some(0.0), "{text}");
    assert_eq!(value("roomcast_broadcast_restarts_total", &[("room", &room)]), Some(2.0), "{text}");
    assert_eq!(value("roomcast_sfu_worker_up", &[("worker", "0")]), Some(1.0), "{text}");
    assert_eq!(value("roomcast_sfu_worker_up", &[("worker", "1")]), Some(1.0), "{text}");
    assert_eq!(value("roomcast_sfu_rooms", &[]).map(|_| ()), Some(()));
    assert!(value("roomcast_http_requests_total", &[("route", "rooms"), ("method", "POST"), ("status", "201")]).unwrap() >= 1.0, "{text}");
    assert!(value("roomcast_http_requests_total", &[("route", "health"), ("method", "GET"), ("status", "200")]).unwrap() >= 1.0, "{text}");
    assert_eq!(value("roomcast_draining", &[]), Some(0.0));
    // A compositor that never ran published no parts: an empty histogram, +Inf bucket last.
    assert_eq!(value("roomcast_hls_part_publish_delay_seconds_count", &[("room", &room)]), Some(0.0), "{text}");
    assert_eq!(value("roomcast_hls_part_publish_delay_seconds_bucket", &[("room", &room), ("le", "+Inf")]), Some(0.0), "{text}");
}

#[tokio::test]
async fn shutdown_tells_participants_stops_broadcasts_workers_and_ends_playlists() {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
    use tokio_tungstenite::tungstenite::Message;

    let mut env = env().await;
    let room = env.room().await;
    env.start_broadcast(&room).await;
    env.wait_state(&room, "failed").await;
    // A participant in the room, its signaling socket open (the welcome read).
    let token = env.keys.mint(&room, "p-1", "Ada", Role::Publisher, Duration::from_secs(600));
    let ws_url = format!("{}/ws?token={token}", env.base.replacen("http", "ws", 1));
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url).await.expect("signaling socket");
    let first = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.expect("welcome").unwrap().unwrap();
    assert!(first.to_text().unwrap().contains("\"welcome\""), "{first:?}");

    // The client reads (and so answers the close handshake) while the server shuts down.
    let reader = tokio::spawn(async move {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(frame))) => return frame,
                Some(Ok(_)) => continue,
                other => panic!("socket ended without a close frame: {other:?}"),
            }
        }
    });
    let server = env.server.take().unwrap();
    let state = server.state.clone();
    let began = Instant::now();
    tokio::time::timeout(Duration::from_secs(20), server.shutdown()).await.expect("shutdown finishes");
    // Shutdown returned only after the session had closed, so the process may exit now.
    assert_eq!(state.node.open_sessions(), 0, "signaling sessions still open after shutdown");
    // The participant was told (1012: service restart, so clients re-join), not cut off; and
    // the open socket did not hold shutdown up for the 10 s grace period.
    let close = tokio::time::timeout(Duration::from_secs(5), reader).await.expect("a close frame").unwrap().expect("a close code");
    assert_eq!(close.code, CloseCode::Restart, "{close:?}");
    assert!(close.reason.contains("restarting"), "{close:?}");
    assert!(began.elapsed() < Duration::from_secs(8), "shutdown took {:?}", began.elapsed());
    assert!(state.node.is_draining());
    assert!(state.broadcasts.rooms().is_empty());
    assert_eq!(state.broadcasts.hls.stats(&room).map(|s| s.ended), Some(true));
    assert!(env.http.get(format!("{}/healthz", env.base)).send().await.is_err(), "the HTTP server is down");
    // The SFU worker threads end, and the monitor does not bring them back.
    let deadline = Instant::now() + Duration::from_secs(5);
    while state.workers.iter().any(|w| w.is_alive()) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(state.workers.iter().all(|w| !w.is_alive()), "SFU workers still running after shutdown");
}

fn cli(args: &[&str]) -> std::process::Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_roomcast"));
    for var in ["ROOMCAST_URL", "ROOMCAST_OPS_TOKEN", "ROOMCAST_API_KEY", "ROOMCAST_DATA_DIR", "ROOMCAST_JWT_SECRET"] {
        cmd.env_remove(var);
    }
    cmd.args(args).output().unwrap()
}

#[tokio::test]
async fn cli_ops_list_restart_drain() {
    let env = env().await;
    let room = env.room().await;
    env.start_broadcast(&room).await;
    env.wait_state(&room, "failed").await;
    let ops = env.ops_token();
    let base = env.base.clone();

    let (out, json_out, forbidden, missing, by_key) = tokio::task::spawn_blocking({
        let (base, ops) = (base.clone(), ops.clone());
        let publisher = env.keys.mint(&room, "p-1", "Ada", Role::Publisher, Duration::from_secs(600));
        move || {
            (
                cli(&["ops", "list", "--url", &base, "--token", &ops]),
                cli(&["ops", "list", "--url", &base, "--token", &ops, "--json"]),
                cli(&["ops", "list", "--url", &base, "--token", &publisher]),
                cli(&["ops", "list", "--url", &base, "--data-dir", "/nonexistent-roomcast-dir"]),
                cli(&["ops", "--url", &base, "--api-key", API_KEY, "list"]),
            )
        }
    })
    .await
    .unwrap();

    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let header = stdout.lines().next().unwrap();
    for col in ["ROOM", "STATE", "UPTIME", "RESTARTS", "PARTS", "LEGS", "PID", "LAST ERROR"] {
        assert!(header.contains(col), "{stdout}");
    }
    let row = stdout.lines().find(|l| l.starts_with(&room)).unwrap_or_else(|| panic!("no row for {room}: {stdout}"));
    assert!(row.contains("failed") && row.contains("no-such-compositor"), "{row}");

    assert!(json_out.status.success());
    let v: Value = serde_json::from_slice(&json_out.stdout).unwrap();
    assert_eq!(v["pipelines"][0]["room"], room.as_str());

    assert!(!forbidden.status.success());
    let err = String::from_utf8_lossy(&forbidden.stderr);
    assert!(err.contains("403") && err.contains("role ops"), "{err}");
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("--token"));
    assert!(by_key.status.success(), "{}", String::from_utf8_lossy(&by_key.stderr));

    let (restart, drain) = tokio::task::spawn_blocking({
        let room = room.clone();
        move || (cli(&["ops", "restart", &room, "--url", &base, "--token", &ops]), cli(&["ops", "drain", "--url", &base, "--token", &ops]))
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&restart.stdout);
    assert!(restart.status.success(), "{stdout}{}", String::from_utf8_lossy(&restart.stderr));
    assert!(stdout.starts_with(&format!("{room}: ")), "{stdout}");
    let stdout = String::from_utf8_lossy(&drain.stdout);
    assert!(drain.status.success(), "{stdout}{}", String::from_utf8_lossy(&drain.stderr));
    assert!(stdout.contains("draining") && stdout.contains(&room), "{stdout}");
    let (s, _) = env.call(reqwest::Method::POST, "/api/rooms", Some(API_KEY)).await;
    assert_eq!(s, 503);
}
