//! The LL-HLS edge (`deploy/nginx/roomcast-edge.conf`, run by Debian's nginx) in front of a
//! two-node cluster on SecantusDB: the edge's only origin is node A, the room lives on node B
//! (a real broadcast: the compositor's grid of an empty room), which answers through A.
//! Twenty viewers asking at once for the next blocking playlist reload and for one part cost
//! node B one request each (`proxy_cache_lock`), a repeat is a cache hit, and viewers still
//! count through their "watching" beacons. Then a synthetic participant joins through A and
//! publishes on B: its colour is on its tile, read through A.
//!
//! Needs nginx (`deploy/install-deps.sh --test`), the compositor binary and
//! ROOMCAST_TEST_MONGODB_URI (tests/run.sh sets both up). Off CI it skips without them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use roomcast_e2e::hls::grid::{close, describe, Hls};
use roomcast_e2e::synthetic::{Colour, JoinOptions, SyntheticParticipant};
use roomcast_e2e::{compositor_bin, nginx};
use serde_json::{json, Value};

const SECRET: &str = "edge-test-secret-0123456789abcdef0123";

fn on_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// The gateway tests' MongoDB helper (SecantusDB from tests/run.sh): a database of this run's
/// own, or `None` (skip) off CI.
#[path = "../../gateway/tests/support/mongo.rs"]
mod mongo;

async fn node(id: &str, store: &str, dir: &Path) -> Result<roomcast::RunningServer> {
    let mut config = roomcast::Config::for_tests(dir.join(id));
    config.store = Some(store.to_owned());
    config.node_id = Some(id.to_owned());
    config.jwt_secret = Some(SECRET.to_owned());
    config.compositor_bin = Some(compositor_bin()?);
    config.compositor_spares = 0;
    // A small picture: this test is about caching, not pixels.
    (config.broadcast_width, config.broadcast_height, config.broadcast_fps) = (320, 180, 15);
    roomcast::start(config).await
}

/// nginx with the shipped edge config: its origin list is node A only, its cache in the
/// test's directory; an access log line per request says what the cache did and which
/// upstream answered.
struct Edge {
    _nginx: nginx::Nginx,
    base: String,
    log: PathBuf,
}

async fn edge(dir: &Path, origin: SocketAddr) -> Result<Edge> {
    let http = format!(
        "  log_format edge '$request_uri $status cache=$upstream_cache_status upstream=$upstream_addr';\n  access_log {{dir}}/logs/access.log edge;\n{}",
        nginx::edge_config(origin, &dir.join("cache"))?
    );
    let nginx = nginx::start(dir, "worker_processes 1;\nevents { worker_connections 1024; }", &http)?;
    let e = Edge { base: format!("http://{}", nginx.addr), log: dir.join("logs/access.log"), _nginx: nginx };
    let deadline = Instant::now() + Duration::from_secs(10);
    while reqwest::get(format!("{}/healthz", e.base)).await.map(|r| r.status().is_success()).ok() != Some(true) {
        ensure!(
            Instant::now() < deadline,
            "the edge does not reach node A; {}",
            std::fs::read_to_string(dir.join("logs/error.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(e)
}

impl Edge {
    /// The access log lines for `uri`.
    fn lines_for(&self, uri: &str) -> Vec<String> {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        log.lines().filter(|l| l.split(' ').next() == Some(uri)).map(str::to_owned).collect()
    }
}

/// The in-progress segment's msn and how many of its parts are out, and the last part's URI.
fn next_part(playlist: &str) -> Option<(u64, usize, String)> {
    let mut msn: u64 = playlist.lines().find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))?.trim().parse().ok()?;
    let mut parts = 0;
    let mut last_part = None;
    for l in playlist.lines() {
        if l.starts_with("#EXTINF") {
            msn += 1;
            parts = 0;
        } else if let Some(attrs) = l.strip_prefix("#EXT-X-PART:") {
            parts += 1;
            last_part = attrs.split("URI=\"").nth(1).and_then(|r| r.split('"').next()).map(str::to_owned);
        }
    }
    Some((msn, parts, last_part?))
}

/// HLS requests a node has answered so far (its `/metrics`).
async fn hls_requests(http: &reqwest::Client, node: &str) -> Result<u64> {
    let text = http.get(format!("http://{node}/metrics")).send().await?.text().await?;
    Ok(text
        .lines()
        .filter(|l| l.starts_with("roomcast_http_requests_total{") && l.contains("route=\"hls\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64)
}

/// A response header as text ("" when absent).
fn header(r: &reqwest::Response, name: &str) -> String {
    r.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

/// `n` viewers GET `url` at the same moment: every answer's status and body.
async fn together(url: &str, n: usize) -> Vec<(u16, Vec<u8>)> {
    let tries = (0..n).map(|_| {
        let url = url.to_owned();
        tokio::spawn(async move {
            let r = reqwest::get(&url).await.unwrap();
            let status = r.status().as_u16();
            (status, r.bytes().await.unwrap().to_vec())
        })
    });
    futures_util::future::join_all(tries).await.into_iter().map(Result::unwrap).collect()
}

/// A private room on node B through the same edge: without a signed URL the viewer is
/// refused (the origin's 401, passed on), with one it plays, and nothing of it is kept in the
/// shared cache (`Cache-Control: private`): each viewer's request reaches B, so a URL that
/// expires or is revoked stops working at once, also behind the edge.
async fn private_room_through_the_edge(http: &reqwest::Client, a_url: &str, b_addr: &str, edge: &Edge) -> Result<()> {
    let b_url = format!("http://{b_addr}");
    let deadline = Instant::now() + Duration::from_secs(15);
    let (room, host_key) = loop {
        let v: Value =
            http.post(format!("{a_url}/api/rooms")).json(&json!({"name": "Private", "private": true})).send().await?.json().await?;
        if v["node_url"].as_str() == Some(b_url.as_str()) {
            break (v["id"].as_str().context("room id")?.to_owned(), v["host_key"].as_str().context("host key")?.to_owned());
        }
        ensure!(Instant::now() < deadline, "no private room was placed on node B: {v}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let r = http.post(format!("{a_url}/api/rooms/{room}/broadcast")).json(&json!({})).send().await?;
    ensure!(r.status().as_u16() == 202, "private broadcast start: {} {}", r.status(), r.text().await?);
    // The host's token (joined through A) is a token of the room: it gets a signed URL.
    let joined: Value = http
        .post(format!("{a_url}/api/rooms/{room}/join"))
        .json(&json!({"name": "Host", "host_key": host_key}))
        .send()
        .await?
        .json()
        .await?;
    let token = joined["token"].as_str().with_context(|| format!("host join: {joined}"))?;
    let signed: Value = http.get(format!("{a_url}/api/rooms/{room}/hls-url")).bearer_auth(token).send().await?.json().await?;
    let playlist = signed["hls_url"].as_str().with_context(|| format!("hls-url: {signed}"))?.to_owned();
    ensure!(playlist.contains("sig="), "a signed URL: {playlist}");

    let unsigned = http.get(format!("{}/hls/{room}/index.m3u8", edge.base)).send().await?;
    ensure!(unsigned.status().as_u16() == 401, "unsigned through the edge: {}", unsigned.status());
    let deadline = Instant::now() + Duration::from_secs(40);
    let part_uri = loop {
        let r = http.get(format!("{}{playlist}", edge.base)).send().await?;
        let status = r.status().as_u16();
        let cache = header(&r, "cache-control");
        let text = r.text().await?;
        // 503 `stream_starting` until the compositor's first part, as at the origin.
        ensure!(status == 200 || status == 503, "signed playlist through the edge: {status} {text}");
        if let Some((_, _, uri)) = next_part(&text) {
            ensure!(cache.starts_with("private"), "a private playlist says so to caches: {cache:?}");
            break uri;
        }
        ensure!(Instant::now() < deadline, "no part of the private room through the edge in 40 s: {status} {text}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    ensure!(part_uri.contains("sig="), "the playlist signs its parts: {part_uri}");

    let part = format!("{}/hls/{room}/{part_uri}", edge.base);
    let before = hls_requests(http, b_addr).await?;
    for _ in 0..3 {
        let r = http.get(&part).send().await?;
        let (cache_status, cache) = (header(&r, "x-cache-status"), header(&r, "cache-control"));
        ensure!(r.status().as_u16() == 200 && !r.bytes().await?.is_empty(), "a signed part through the edge");
        ensure!(cache_status != "HIT", "a private part is never answered from the shared cache");
        ensure!(cache.starts_with("private"), "a private part says so to caches: {cache:?}");
    }
    let reached_b = hls_requests(http, b_addr).await? - before;
    println!("private room: 3 requests for one signed part through the edge, {reached_b} reached node B");
    ensure!(reached_b == 3, "each request for a private part reaches the room's node: {reached_b}");
    // A tampered signature is refused through the edge, as at the origin.
    let forged = part.replace("sig=", "sig=x");
    let r = http.get(&forged).send().await?;
    ensure!(r.status().as_u16() == 403, "a forged signature through the edge: {}", r.status());
    Ok(())
}

/// A synthetic participant (VP8 + Opus over real WebRTC, a colour and a tone) joins through
/// node A the room that lives on node B: the join through A names B's signaling, its media
/// goes to B, and its colour is on its tile in the broadcast, read through A (B answers
/// through A) like a player and decoded with ffmpeg.
async fn a_participant_joins_through_a_and_publishes_on_b(http: &reqwest::Client, a_url: &str, room: &str, dir: &Path) -> Result<()> {
    let opts = JoinOptions::new("red", Colour::RED, 440.0).decode(false);
    let red = SyntheticParticipant::join_with(a_url, room, opts).await?;
    let r = http.get(format!("{a_url}/api/rooms/{room}")).send().await?;
    ensure!(header(&r, "x-roomcast-node") == "n-edge-b", "the room's node answers: {:?}", r.headers());
    let view: Value = r.json().await?;
    ensure!(view["participants"].as_array().is_some_and(|p| p.len() == 1), "the participant is in the room on B: {view}");
    let hls = Hls { http: http.clone(), base: a_url.to_owned(), room: room.to_owned() };
    let joined = Instant::now();
    let mut msn = hls.wait_segment(0, Duration::from_secs(30)).await?.segments.last().context("a segment")?.0;
    loop {
        let pl = hls.wait_segment(msn, Duration::from_secs(20)).await?;
        let tiles = hls.frames(&pl, msn, dir).await?.last().tiles(1);
        if close(Colour::RED, tiles[0]) {
            break;
        }
        ensure!(joined.elapsed() < Duration::from_secs(40), "the participant never showed on its tile: {}", describe(&tiles));
        msn += 1;
    }
    println!("a participant joined through node A for a room on node B: on its tile (read through A) {:?} after joining", joined.elapsed());
    drop(red);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_edge_serves_a_room_on_another_node_with_one_origin_request_per_object() -> Result<()> {
    let Some(roomcast::store::Location::Mongo(store)) = mongo::mongodb_location() else { return Ok(()) };
    if nginx::binary().is_none() {
        ensure!(!on_ci(), "nginx is missing: deploy/install-deps.sh --test installs it");
        eprintln!("skipped: needs nginx");
        return Ok(());
    }
    roomcast_e2e::init_test_logs();
    let dir = roomcast_e2e::scratch_dir("hls-edge")?;
    let a = node("n-edge-a", &store, &dir).await?;
    let b = node("n-edge-b", &store, &dir).await?;
    let (a_url, b_addr) = (format!("http://{}", a.http_addr), b.http_addr.to_string());
    let http = reqwest::Client::new();
    // A room that lives on B (placement alternates once the nodes see each other).
    let deadline = Instant::now() + Duration::from_secs(15);
    let room = loop {
        let v: Value = http.post(format!("{a_url}/api/rooms")).json(&json!({"name": "Edge"})).send().await?.json().await?;
        if v["node_url"].as_str() == Some(&format!("http://{b_addr}")) {
            break v["id"].as_str().context("room id")?.to_owned();
        }
        ensure!(Instant::now() < deadline, "no room was placed on node B: {v}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    // Started through A (a 307 to B, the body kept), as an operator's script would.
    let r = http.post(format!("{a_url}/api/rooms/{room}/broadcast")).json(&json!({})).send().await?;
    ensure!(r.status().as_u16() == 202, "broadcast start through A: {} {}", r.status(), r.text().await?);

    let edge = edge(&dir.join("edge"), a.http_addr).await?;
    let playlist_url = format!("{}/hls/{room}/index.m3u8", edge.base);
    let deadline = Instant::now() + Duration::from_secs(40);
    let (msn, parts, part_uri) = loop {
        let r = http.get(&playlist_url).send().await?;
        let status = r.status().as_u16();
        let text = r.text().await?;
        ensure!(status != 307, "the viewer saw a redirect");
        if status == 200 {
            if let Some(next) = next_part(&text) {
                break next;
            }
        }
        if Instant::now() > deadline {
            bail!("no part through the edge in 40 s: {status} {text}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };

    // Twenty viewers ask for the next part's blocking reload at once.
    let b_before = hls_requests(&http, &b_addr).await?;
    let blocking = format!("/hls/{room}/index.m3u8?_HLS_msn={msn}&_HLS_part={parts}");
    let answers = together(&format!("{}{blocking}", edge.base), 20).await;
    ensure!(answers.iter().all(|(s, _)| *s == 200), "statuses: {:?}", answers.iter().map(|a| a.0).collect::<Vec<_>>());
    ensure!(answers.iter().all(|(_, b)| *b == answers[0].1), "every viewer got the same playlist");
    let b_after_playlists = hls_requests(&http, &b_addr).await?;
    // And twenty ask for one part at once, then one more asks again.
    let part = format!("/hls/{room}/{part_uri}");
    let answers = together(&format!("{}{part}", edge.base), 20).await;
    ensure!(answers.iter().all(|(s, b)| *s == 200 && !b.is_empty() && *b == answers[0].1), "every viewer got the part");
    let again = http.get(format!("{}{part}", edge.base)).send().await?;
    ensure!(header(&again, "x-cache-status") == "HIT", "a repeat is a cache hit: {:?}", again.headers());
    let b_after_parts = hls_requests(&http, &b_addr).await?;

    tokio::time::sleep(Duration::from_millis(300)).await; // the log line of the last request
    let reached_b = [b_after_playlists - b_before, b_after_parts - b_after_playlists];
    for (uri, at_b) in [(&blocking, reached_b[0]), (&part, reached_b[1])] {
        let lines = edge.lines_for(uri);
        let misses = lines.iter().filter(|l| l.contains("cache=MISS")).count();
        println!(
            "{uri}: {} viewer requests, {misses} cache misses, {at_b} reached node B; {:?}",
            lines.len(),
            lines.iter().take(3).collect::<Vec<_>>()
        );
        ensure!(lines.len() >= 20, "{lines:?}");
        ensure!(
            misses == 1 && at_b == 1,
            "one request for {uri} reached the origins, and the room's node; not {misses} / {at_b}: {lines:#?}"
        );
    }

    // Viewer counts behind the cache: the origin saw one request per object, so it cannot
    // count viewers from them; each viewer's "watching" beacon (a POST, never cached) can.
    for i in 0..12 {
        let r = http
            .post(format!("{}/hls/{room}/watching", edge.base))
            .header("x-roomcast-viewer", format!("edge-viewer-{i:04}"))
            .send()
            .await?;
        ensure!(r.status().as_u16() == 204, "beacon through the edge: {}", r.status());
    }
    let status: Value = http.get(format!("{a_url}/api/rooms/{room}/broadcast")).send().await?.json().await?;
    let viewers = status["viewers"].as_u64().unwrap_or(0);
    println!("viewers counted behind the edge: {viewers} (12 beacons, plus the test's own playlist requests)");
    ensure!(viewers >= 12, "each beacon counts a viewer: {status}");

    private_room_through_the_edge(&http, &a_url, &b_addr, &edge).await?;
    a_participant_joins_through_a_and_publishes_on_b(&http, &a_url, &room, &dir).await?;

    drop(edge);
    a.shutdown().await;
    b.shutdown().await;
    Ok(())
}
