//! A private room's live broadcast end to end: the real compositor (an empty room: the grid
//! of placeholders), hls-out behind the gateway's access hook. A viewer token buys a signed
//! playlist URL; the playlist, its EXT-X-MAP init section, a segment and a part fetched with
//! the signed URIs the playlist lists are real fMP4 (ffprobe reads init + segment as H.264
//! 1280x720); unsigned requests get 401 and another room's signature 403; two viewers
//! following the playlist are counted, and the peak lands in the store when the broadcast
//! stops.
//!
//! Needs the compositor binary (`cargo build -p roomcast-compositor`) and ffprobe.
//! Run: `cargo test -p roomcast-e2e --test private_hls -- --nocapture`.

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use roomcast_e2e::{compositor_bin, init_test_logs, scratch_dir};
use serde_json::{json, Value};

struct Env {
    http: reqwest::Client,
    base: String,
}

impl Env {
    async fn call(&self, method: reqwest::Method, path: &str, bearer: Option<&str>, body: Option<Value>) -> Result<(u16, Value)> {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(b) = bearer {
            req = req.bearer_auth(b);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await?;
        Ok((r.status().as_u16(), r.json().await.unwrap_or(Value::Null)))
    }

    async fn get(&self, path: &str, viewer: Option<&str>) -> Result<(u16, Vec<u8>)> {
        let mut req = self.http.get(format!("{}{path}", self.base));
        if let Some(v) = viewer {
            req = req.header("X-Roomcast-Viewer", v);
        }
        let r = req.send().await?;
        Ok((r.status().as_u16(), r.bytes().await?.to_vec()))
    }

    /// A private room with a running broadcast: (id, host token).
    async fn private_broadcast(&self) -> Result<(String, String)> {
        let (s, room) = self.call(reqwest::Method::POST, "/api/rooms", None, Some(json!({"name": "private", "private": true}))).await?;
        ensure!(s == 201, "create: {s} {room}");
        let id = room["id"].as_str().context("id")?.to_owned();
        let (_, host) = self
            .call(
                reqwest::Method::POST,
                &format!("/api/rooms/{id}/join"),
                None,
                Some(json!({"name": "Host", "host_key": room["host_key"]})),
            )
            .await?;
        let host = host["token"].as_str().context("host token")?.to_owned();
        let (s, v) = self.call(reqwest::Method::POST, &format!("/api/rooms/{id}/broadcast"), Some(&host), None).await?;
        ensure!(s == 202, "broadcast: {s} {v}");
        Ok((id, host))
    }

    /// The signed playlist URL for a viewer token of the room.
    async fn signed_url(&self, room: &str, host: &str) -> Result<String> {
        let (s, v) = self.call(reqwest::Method::POST, &format!("/api/rooms/{room}/viewer-token"), Some(host), None).await?;
        ensure!(s == 200, "viewer-token: {s} {v}");
        let viewer = v["token"].as_str().context("token")?.to_owned();
        let (s, v) = self.call(reqwest::Method::GET, &format!("/api/rooms/{room}/hls-url"), Some(&viewer), None).await?;
        ensure!(s == 200 && v["private"] == true, "hls-url: {s} {v}");
        Ok(v["hls_url"].as_str().context("hls_url")?.to_owned())
    }
}

fn uris(playlist: &str) -> Vec<String> {
    playlist
        .lines()
        .filter_map(|l| {
            if !l.starts_with('#') && !l.is_empty() {
                Some(l.to_owned())
            } else {
                l.split_once("URI=\"").map(|(_, r)| r.split('"').next().unwrap_or("").to_owned())
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_broadcast_is_served_signed_and_counts_viewers() -> Result<()> {
    init_test_logs();
    let dir = scratch_dir("private-hls")?;
    let mut config = roomcast::Config::for_tests(&dir);
    config.compositor_bin = Some(compositor_bin()?);
    let server = roomcast::start(config).await?;
    let env = Env { http: reqwest::Client::new(), base: format!("http://{}", server.http_addr) };

    let (room, host) = env.private_broadcast().await?;
    let (other, other_host) = env.private_broadcast().await?;
    let signed = env.signed_url(&room, &host).await?;
    let query = signed.split_once('?').context("query")?.1.to_owned();
    let foreign = env.signed_url(&other, &other_host).await?;
    let foreign_query = foreign.split_once('?').context("query")?.1.to_owned();

    // Wait for two complete segments (as viewer A: every playlist request counts someone).
    let started = Instant::now();
    let playlist = loop {
        let (s, body) = env.get(&signed, Some("viewer-aaaaaaaa")).await?;
        let text = String::from_utf8_lossy(&body).into_owned();
        if s == 200 && uris(&text).iter().filter(|u| u.starts_with("seg-")).count() >= 2 {
            break text;
        }
        ensure!(s == 200 || s == 503 || s == 404, "signed playlist: {s} {text}");
        if started.elapsed() > Duration::from_secs(30) {
            bail!("no two segments within 30 s; last answer {s}: {text}");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    println!("signed playlist after {:?}", started.elapsed());
    let listed = uris(&playlist);
    ensure!(listed.iter().all(|u| u.ends_with(&format!("?{query}"))), "unsigned URI in\n{playlist}");
    let base = format!("/hls/{room}");
    let init = listed.iter().find(|u| u.starts_with("init-")).context("EXT-X-MAP")?;
    let seg = listed.iter().rfind(|u| u.starts_with("seg-")).context("segment")?;
    let hint = playlist.lines().find_map(|l| l.strip_prefix("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"")).unwrap_or("");
    let part = listed.iter().rfind(|u| u.starts_with("part-") && !hint.starts_with(u.as_str())).context("part")?;

    let mut media = Vec::new();
    for u in [init, seg, part] {
        let (s, body) = env.get(&format!("{base}/{u}"), None).await?;
        ensure!(s == 200, "{u}: {s}");
        ensure!(body.windows(4).any(|w| w == b"ftyp" || w == b"moof"), "{u} is not fMP4");
        let bare = u.split('?').next().unwrap_or_default();
        let (s, _) = env.get(&format!("{base}/{bare}"), None).await?;
        ensure!(s == 401, "{bare} without the signature: {s}");
        let (s, _) = env.get(&format!("{base}/{bare}?{foreign_query}"), None).await?;
        ensure!(s == 403, "{bare} with another room's signature: {s}");
        media.push(body);
    }
    // init + segment is a playable file
    let file = dir.join("seg.mp4");
    std::fs::write(&file, [&media[0][..], &media[1][..]].concat())?;
    let probe = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v", "-show_entries", "stream=codec_name,width,height", "-of", "csv=p=0"])
        .arg(&file)
        .output()
        .context("running ffprobe (apt-get install ffmpeg)")?;
    let streams = String::from_utf8_lossy(&probe.stdout).trim().to_owned();
    ensure!(streams == "h264,1280,720", "ffprobe: {streams:?} {}", String::from_utf8_lossy(&probe.stderr));

    // Two viewers follow the playlist with blocking reloads for ~2 s.
    let follow = |viewer: &'static str| {
        let http = env.http.clone();
        let url = format!("{}{signed}", env.base);
        tokio::spawn(async move {
            let until = Instant::now() + Duration::from_secs(2);
            while Instant::now() < until {
                let _ = http.get(&url).header("X-Roomcast-Viewer", viewer).send().await.and_then(|r| r.error_for_status());
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        })
    };
    let (a, b) = (follow("viewer-aaaaaaaa"), follow("viewer-bbbbbbbb"));
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (_, st) = env.call(reqwest::Method::GET, &format!("/api/rooms/{room}/broadcast"), None, None).await?;
    println!("broadcast status with two viewers: {st}");
    ensure!(st["viewers"] == 2 && st["viewers_peak"] == 2, "{st}");
    a.await?;
    b.await?;

    let (s, v) = env.call(reqwest::Method::DELETE, &format!("/api/rooms/{room}/broadcast"), Some(&host), None).await?;
    ensure!(s == 200, "stop: {s} {v}");
    server.state.rooms.flush().await;
    let records = server.state.rooms.store().context("store")?.broadcasts(&room).await?;
    ensure!(records.len() == 1 && records[0].viewers_peak == 2, "{records:?}");
    let _ = env.call(reqwest::Method::DELETE, &format!("/api/rooms/{other}/broadcast"), Some(&other_host), None).await;
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
