//! Broadcast lifecycle end to end: a broadcast stops by itself once its room has had no
//! publisher for `--broadcast-idle-stop-secs` (the playlist ends, the compositor exits, its
//! ports are released, nothing is left in the ops list or /metrics), a room nobody is in for
//! `--room-idle-end-secs` ends (released from memory, the store records it) and comes back on
//! the next join, and an `auto_broadcast` room goes live again when someone publishes.
//!
//! Needs the compositor binary built (`cargo build -p roomcast-compositor`; tests/run.sh does).
//! Run: `cargo test -p roomcast-e2e --test broadcast_lifecycle -- --nocapture --test-threads=1`.

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use roomcast::auth::role::Role;
use roomcast_e2e::compositor_bin;
use roomcast_e2e::hls::grid::Hls;
use roomcast_e2e::synthetic::signaling::{self, ServerMessage};
use roomcast_e2e::synthetic::{Colour, JoinOptions, SyntheticParticipant};
use serde_json::{json, Value};

const BROADCAST_IDLE: Duration = Duration::from_secs(3);
const ROOM_IDLE: Duration = Duration::from_secs(5);
/// The lifecycle task looks once a second (an idle clock starts at the first look after the
/// leave); the rest is a loaded 2-core machine's slack.
const MARGIN: Duration = Duration::from_millis(2500);

struct Gateway {
    server: roomcast::RunningServer,
    base: String,
    http: reqwest::Client,
    ops_token: String,
    dir: std::path::PathBuf,
}

impl Gateway {
    async fn start(tag: &str) -> Result<Self> {
        roomcast_e2e::init_test_logs();
        let dir = roomcast_e2e::scratch_dir(tag)?;
        let mut config = roomcast::Config::for_tests(&dir);
        config.compositor_bin = Some(compositor_bin()?);
        // `--broadcast-idle-stop-secs 3 --room-idle-end-secs 5`.
        config.broadcast_idle_stop_secs = BROADCAST_IDLE.as_secs();
        config.room_idle_end_secs = ROOM_IDLE.as_secs();
        // A small picture: this test is about processes and ports, not pixels.
        (config.broadcast_width, config.broadcast_height, config.broadcast_fps) = (640, 360, 15);
        let server = roomcast::start(config).await?;
        let base = format!("http://{}", server.http_addr);
        let ops_token =
            server.state.tokens.mint(roomcast::auth::ops::OPS_ROOM, "ops-e2e", "lifecycle test", Role::Ops, Duration::from_secs(600));
        Ok(Self { server, base, http: reqwest::Client::new(), ops_token, dir })
    }

    async fn get_json(&self, path: &str) -> Result<Value> {
        let r = self.http.get(format!("{}{path}", self.base)).send().await?;
        ensure!(r.status().is_success(), "GET {path}: {}", r.status());
        Ok(r.json().await?)
    }

    async fn broadcast(&self, room: &str) -> Result<Value> {
        self.get_json(&format!("/api/rooms/{room}/broadcast")).await
    }

    /// What `roomcast ops list` prints, as JSON.
    async fn ops_pipelines(&self) -> Result<Vec<Value>> {
        let r = self.http.get(format!("{}/api/ops/pipelines", self.base)).bearer_auth(&self.ops_token).send().await?;
        ensure!(r.status().is_success(), "ops list: {}", r.status());
        let body: Value = r.json().await?;
        Ok(body["pipelines"].as_array().cloned().unwrap_or_default())
    }

    /// The sum of a metric's samples (all label sets); `None` if absent.
    async fn metric(&self, name: &str) -> Result<Option<f64>> {
        let text = self.http.get(format!("{}/metrics", self.base)).send().await?.text().await?;
        let values: Vec<f64> = text
            .lines()
            .filter(|l| l.strip_prefix(name).is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{')))
            .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
            .collect();
        Ok((!values.is_empty()).then(|| values.iter().sum()))
    }

    /// Waits until a metric (summed over its label sets) has this value.
    async fn wait_metric(&self, name: &str, value: f64, timeout: Duration) -> Result<()> {
        let start = Instant::now();
        loop {
            let now = self.metric(name).await?;
            if now == Some(value) {
                return Ok(());
            }
            ensure!(start.elapsed() < timeout, "{name} is {now:?}, not {value}, after {timeout:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn playlist_text(&self, room: &str) -> Result<String> {
        let r = self.http.get(format!("{}/hls/{room}/index.m3u8", self.base)).send().await?;
        ensure!(r.status().is_success(), "playlist: {}", r.status());
        Ok(r.text().await?)
    }

    async fn start_broadcast(&self, room: &str) -> Result<()> {
        let r = self.http.post(format!("{}/api/rooms/{room}/broadcast", self.base)).send().await?;
        ensure!(r.status().as_u16() == 202, "start broadcast: {}", r.status());
        Ok(())
    }

    /// Waits until the broadcast is live with parts published; returns its status.
    async fn wait_live(&self, room: &str, timeout: Duration) -> Result<Value> {
        let start = Instant::now();
        loop {
            let st = self.broadcast(room).await?;
            if st["state"] == "live" && st["parts"].as_u64().is_some_and(|p| p >= 3) {
                return Ok(st);
            }
            ensure!(start.elapsed() < timeout, "broadcast not live with parts within {timeout:?}: {st}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the broadcast's state is `stopped`; returns when that was seen.
    async fn wait_stopped(&self, room: &str, timeout: Duration) -> Result<Instant> {
        let start = Instant::now();
        loop {
            let st = self.broadcast(room).await?;
            if st["state"] == "stopped" {
                return Ok(Instant::now());
            }
            ensure!(start.elapsed() < timeout, "broadcast still {} after {timeout:?}", st["state"]);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until nothing of a broadcast is left: no pipeline in the ops list, no RTP port
    /// pair in use, the compositor process gone.
    async fn wait_released(&self, pid: u32, timeout: Duration) -> Result<()> {
        let start = Instant::now();
        loop {
            let pipelines = self.ops_pipelines().await?;
            let ports = self.metric("roomcast_rtp_ports_in_use").await?;
            let alive = pid_alive(pid);
            if pipelines.is_empty() && ports == Some(0.0) && !alive {
                return Ok(());
            }
            if start.elapsed() > timeout {
                bail!("after {timeout:?}: ops pipelines {pipelines:?}, rtp ports in use {ports:?}, compositor {pid} alive: {alive}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until `GET /api/rooms/{id}` says the room has ended.
    async fn wait_room_ended(&self, room: &str, timeout: Duration) -> Result<Instant> {
        let start = Instant::now();
        loop {
            let r = self.get_json(&format!("/api/rooms/{room}")).await?;
            if r["ended_at"].is_u64() {
                return Ok(Instant::now());
            }
            ensure!(start.elapsed() < timeout, "room not ended after {timeout:?}: {r}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn create_room(&self, name: &str, auto_broadcast: bool) -> Result<String> {
        let r = self
            .http
            .post(format!("{}/api/rooms", self.base))
            .json(&json!({"name": name, "auto_broadcast": auto_broadcast}))
            .send()
            .await?;
        ensure!(r.status().as_u16() == 201, "create room: {}", r.status());
        let body: Value = r.json().await?;
        body["id"].as_str().map(str::to_owned).context("room id")
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn pid_alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Clock ticks since boot now: the start time of a thread started for the purpose, in the
/// unit of a process's start time (`/proc/.../stat`, field 22).
fn uptime_ticks() -> Result<u64> {
    std::thread::spawn(|| start_ticks(&std::fs::read_to_string("/proc/thread-self/stat")?)).join().expect("thread")
}

/// When a process started, in clock ticks since boot.
fn process_start_ticks(pid: u32) -> Result<u64> {
    start_ticks(&std::fs::read_to_string(format!("/proc/{pid}/stat"))?)
}

fn start_ticks(stat: &str) -> Result<u64> {
    // Fields after the command name (which may contain spaces) in parentheses.
    let rest = &stat[stat.rfind(')').context("stat")? + 2..];
    Ok(rest.split(' ').nth(19).context("starttime")?.parse()?)
}

fn publisher(name: &str, colour: Colour, tone: f32) -> JoinOptions {
    JoinOptions::new(name, colour, tone).decode(false)
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_broadcast_stops_and_empty_room_ends() -> Result<()> {
    let gw = Gateway::start("lifecycle-idle").await?;
    let room = signaling::create_room(&gw.http, &gw.base, "lifecycle").await?;
    let red = SyntheticParticipant::join_with(&gw.base, &room, publisher("red", Colour::RED, 440.0)).await?;
    // Someone who only watches stays in the room: no publisher, but not empty.
    let watcher = SyntheticParticipant::join_with(&gw.base, &room, JoinOptions::receive_only("watcher").decode(false)).await?;

    // Red publishes: the node readies a spare compositor (`--compositor-spares 1`), and the
    // broadcast takes it instead of starting one.
    gw.wait_metric("roomcast_compositor_spares", 1.0, Duration::from_secs(30)).await?;
    // Ticks are 10 ms: a compositor started for the request would start at least 5 ticks
    // after `asked`; the spare (counted from its spawn) started at `asked` at the latest.
    let asked = uptime_ticks()?;
    tokio::time::sleep(Duration::from_millis(50)).await;
    gw.start_broadcast(&room).await?;
    let hls = Hls { http: gw.http.clone(), base: gw.base.clone(), room: room.clone() };
    hls.wait_segment(0, Duration::from_secs(30)).await?;
    let live = gw.wait_live(&room, Duration::from_secs(20)).await?;
    let pid = live["pid"].as_u64().context("a live broadcast has a compositor pid")? as u32;
    ensure!(pid_alive(pid), "compositor {pid} runs");
    let started = process_start_ticks(pid)?;
    ensure!(started <= asked, "the broadcast runs the spare, started before it was asked for ({started} vs {asked} ticks)");
    ensure!(gw.metric("roomcast_compositor_spares").await? == Some(0.0), "the spare was taken (its replacement comes later)");
    ensure!(gw.ops_pipelines().await?.len() == 1, "one pipeline in the ops list");
    ensure!(gw.metric("roomcast_rtp_ports_in_use").await?.is_some_and(|n| n >= 2.0), "red's audio and video legs have ports");
    println!("live: compositor {pid}, {} parts", live["parts"]);

    // The last publisher leaves; the watcher stays.
    let left = Instant::now();
    red.leave().await;
    let stopped = gw.wait_stopped(&room, BROADCAST_IDLE + MARGIN + Duration::from_secs(2)).await?;
    let after = stopped.duration_since(left);
    println!("broadcast stopped {} after the last publisher left (limit {})", secs(after), secs(BROADCAST_IDLE));
    ensure!(after >= BROADCAST_IDLE - Duration::from_millis(100), "stopped too early: {}", secs(after));
    ensure!(after <= BROADCAST_IDLE + MARGIN, "stopped too late: {}", secs(after));
    let pl = gw.playlist_text(&room).await?;
    ensure!(pl.contains("#EXT-X-ENDLIST"), "the stopped stream's playlist ends:\n{pl}");

    gw.wait_released(pid, Duration::from_secs(6)).await?;
    println!("released {} after the last publisher left: compositor {pid} gone, 0 RTP ports, ops list empty", secs(left.elapsed()));
    // The supervisor announces `stopped` as it ends, after the compositor exits: allow the
    // message a moment to cross the worker, the session and the socket (a busy CI machine).
    let told_by = Instant::now() + Duration::from_secs(5);
    loop {
        let told =
            watcher.signaling_log().iter().any(|m| matches!(&m.message, ServerMessage::BroadcastState { state } if state == "stopped"));
        if told {
            break;
        }
        ensure!(Instant::now() < told_by, "the watcher is told the broadcast stopped (within 5 s of the release)");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let store = gw.server.state.rooms.store().context("a store")?.clone();
    gw.server.state.rooms.flush().await;
    let records = store.broadcasts(&room).await?;
    ensure!(records.len() == 1 && records[0].stopped_at.is_some(), "the store closed the broadcast record: {records:?}");
    ensure!(gw.metric("roomcast_rooms").await? == Some(1.0), "the room stays while the watcher is in it");

    // Now nobody is in the room.
    let left = Instant::now();
    watcher.leave().await;
    let ended = gw.wait_room_ended(&room, ROOM_IDLE + MARGIN + Duration::from_secs(2)).await?;
    let after = ended.duration_since(left);
    println!("room ended {} after the last participant left (limit {})", secs(after), secs(ROOM_IDLE));
    ensure!(after >= ROOM_IDLE - Duration::from_millis(100), "ended too early: {}", secs(after));
    ensure!(after <= ROOM_IDLE + MARGIN, "ended too late: {}", secs(after));
    ensure!(gw.metric("roomcast_rooms").await? == Some(0.0), "the ended room is released from memory");
    ensure!(gw.metric("roomcast_sfu_rooms").await? == Some(0.0), "no room left on the SFU workers");
    gw.server.state.rooms.flush().await;
    ensure!(store.room(&room).await?.context("the room's record stays")?.ended_at.is_some(), "the store records the end");
    // Viewers still get the final playlist for hls-out's grace period.
    ensure!(gw.playlist_text(&room).await?.contains("#EXT-X-ENDLIST"), "the ended playlist is still served");

    // The taken spare was replaced 2 s after the broadcast took it.
    gw.wait_metric("roomcast_compositor_spares", 1.0, Duration::from_secs(15)).await?;

    // The link still works: joining brings the room back.
    let back = SyntheticParticipant::join_with(&gw.base, &room, JoinOptions::receive_only("back").decode(false)).await?;
    let r = gw.get_json(&format!("/api/rooms/{room}")).await?;
    ensure!(r["ended_at"].is_null() && r["participants"].as_array().is_some_and(|p| p.len() == 1), "the room is back: {r}");
    ensure!(store.room(&room).await?.context("record")?.ended_at.is_none(), "and open again in the store");
    back.leave().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_broadcast_room_goes_live_again_when_someone_publishes() -> Result<()> {
    let gw = Gateway::start("lifecycle-auto").await?;
    let room = gw.create_room("auto lifecycle", true).await?;
    let watcher = SyntheticParticipant::join_with(&gw.base, &room, JoinOptions::receive_only("watcher").decode(false)).await?;

    let red = SyntheticParticipant::join_with(&gw.base, &room, publisher("red", Colour::RED, 440.0)).await?;
    let first = gw.wait_live(&room, Duration::from_secs(30)).await?;
    let first_pid = first["pid"].as_u64().context("pid")? as u32;
    let left = Instant::now();
    red.leave().await;
    let stopped = gw.wait_stopped(&room, BROADCAST_IDLE + MARGIN + Duration::from_secs(2)).await?;
    println!("auto broadcast stopped {} after red left", secs(stopped.duration_since(left)));
    gw.wait_released(first_pid, Duration::from_secs(6)).await?;

    // A publisher comes back: the room (still there, the watcher is in it) goes live again.
    let joining = Instant::now();
    let green = SyntheticParticipant::join_with(&gw.base, &room, publisher("green", Colour::GREEN, 660.0)).await?;
    let again = gw.wait_live(&room, Duration::from_secs(30)).await?;
    let pid = again["pid"].as_u64().context("pid")? as u32;
    ensure!(pid != first_pid && pid_alive(pid), "a new compositor runs ({pid}, was {first_pid})");
    let pl = gw.playlist_text(&room).await?;
    ensure!(!pl.contains("#EXT-X-ENDLIST"), "the stream is live again:\n{pl}");
    println!("live again {} after green joined (compositor {pid})", secs(joining.elapsed()));
    let states: Vec<String> = watcher
        .signaling_log()
        .into_iter()
        .filter_map(|m| match m.message {
            ServerMessage::BroadcastState { state } => Some(state),
            _ => None,
        })
        .collect();
    ensure!(
        states.iter().filter(|s| *s == "live").count() >= 2 && states.contains(&"stopped".to_owned()),
        "the watcher saw live, stopped, live: {states:?}"
    );

    // Everyone leaves: the broadcast stops, the room ends; a publisher joining the ended room
    // brings it back and starts its broadcast again.
    let left = Instant::now();
    green.leave().await;
    watcher.leave().await;
    gw.wait_room_ended(&room, ROOM_IDLE + MARGIN + Duration::from_secs(2)).await?;
    println!("room ended {} after everyone left", secs(left.elapsed()));
    gw.wait_released(pid, Duration::from_secs(6)).await?;
    let blue = SyntheticParticipant::join_with(&gw.base, &room, publisher("blue", Colour::BLUE, 880.0)).await?;
    let start = Instant::now();
    loop {
        let st = gw.broadcast(&room).await?;
        if st["state"] == "starting" || st["state"] == "live" {
            println!("the reopened room's broadcast is {} {} after blue joined", st["state"], secs(start.elapsed()));
            break;
        }
        ensure!(start.elapsed() < Duration::from_secs(15), "the reopened auto_broadcast room did not start its broadcast: {st}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = gw.http.delete(format!("{}/api/rooms/{room}/broadcast", gw.base)).send().await?;
    ensure!(r.status().is_success(), "stop broadcast: {}", r.status());
    blue.leave().await;
    Ok(())
}
