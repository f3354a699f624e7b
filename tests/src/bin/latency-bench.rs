//! latency-bench: glass-to-glass latency of the broadcast (issue 6, "Latency benchmark").
//!
//! One gateway in-process with the real compositor; a room of synthetic participants; the
//! first one (top-left tile) changes its colour every couple of seconds (the flip's first
//! frame is a keyframe; the instant it leaves the encoder for the SFU is "sent"). Then:
//!
//! - a Rust LL-HLS client follows the playlist like a player (blocking reloads, preload
//!   hints, each part fetched as soon as it exists) and decodes the parts: **part** latency
//!   is sent → the part carrying the first new-colour frame fully received; **decoded** adds
//!   the decoder.
//! - unless `--no-browser`: headless Chromium opens `/watch/{id}` (hls.js, low-latency mode;
//!   with `--player shaka`, Shaka Player in low-latency mode on a bare page instead)
//!   and reads the tile colour from the video on every `requestVideoFrameCallback`
//!   (`tests/browser/latency.mjs`): **screen** latency is sent → the frame's expected display
//!   time.
//!
//! ```sh
//! cargo build --release -p roomcast-compositor -p roomcast-e2e --bins   # the compositor binary too
//! cargo run --release -p roomcast-e2e --bin latency-bench -- [--flips 24] [--interval-ms 2000]
//!     [--participants 3] [--no-browser] [--json out.json] [--part-ms 200] [--segment-ms 1000]
//! ```

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, ensure, Context, Result};
use roomcast_compositor::layout::layout;
use roomcast_e2e::bench::{self, Summary};
use roomcast_e2e::hls::{Follower, FrameEvent, HlsEvent, Patch, TileDecoder};
use roomcast_e2e::synthetic::{signaling, Colour, FlipRecord, JoinOptions, SyntheticParticipant};
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

/// Colours the flipper cycles through; each differs from the one before by 255 in some channel.
const PALETTE: [Colour; 6] = [Colour::GREEN, Colour::BLUE, Colour::YELLOW, Colour::MAGENTA, Colour::CYAN, Colour::RED];
const FIRST: Colour = Colour::RED;
/// H.264 at the compositor's bitrate moves a flat colour by a few levels; colours differ by 255.
const TOLERANCE: u8 = 70;
/// The patch averaged: 32x32 output pixels a quarter into the tile (clear of the name label).
const PATCH: u32 = 32;

struct Args {
    flips: usize,
    interval: Duration,
    participants: usize,
    browser: bool,
    json: Option<PathBuf>,
    part_ms: u64,
    segment_ms: u64,
    settle: Duration,
    /// The browser's player: `hlsjs` (the watch page) or `shaka` (Shaka Player on a bare page).
    player: String,
}

fn args() -> Result<Args> {
    let mut a = Args {
        flips: 24,
        interval: Duration::from_millis(2000),
        participants: 3,
        browser: true,
        json: None,
        part_ms: 200,
        segment_ms: 1000,
        settle: Duration::from_secs(6),
        player: "hlsjs".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--flips" => a.flips = value()?.parse()?,
            "--interval-ms" => a.interval = Duration::from_millis(value()?.parse()?),
            "--participants" => a.participants = value()?.parse()?,
            "--no-browser" => a.browser = false,
            "--json" => a.json = Some(value()?.into()),
            "--part-ms" => a.part_ms = value()?.parse()?,
            "--segment-ms" => a.segment_ms = value()?.parse()?,
            "--settle-s" => a.settle = Duration::from_secs(value()?.parse()?),
            "--player" => a.player = value()?,
            "-h" | "--help" => {
                println!("latency-bench [--flips N] [--interval-ms MS] [--participants N] [--no-browser] [--json FILE] [--part-ms MS] [--segment-ms MS] [--settle-s S] [--player hlsjs|shaka]");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other} (try --help)"),
        }
    }
    ensure!(a.participants >= 1, "--participants must be at least 1");
    ensure!(a.player == "hlsjs" || a.player == "shaka", "--player is hlsjs or shaka");
    Ok(a)
}

fn wall_ms(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64() * 1000.0).unwrap_or(0.0)
}

/// What the browser script reported.
#[derive(Debug, Clone, serde::Deserialize)]
struct BrowserEvent {
    event: String,
    #[serde(default)]
    display_wall: Option<f64>,
    #[serde(default)]
    wall: Option<f64>,
    #[serde(default)]
    rgb: Option<[u8; 3]>,
    #[serde(default)]
    latency: Option<f64>,
    #[serde(default)]
    target_latency: Option<f64>,
    #[serde(default)]
    rate: Option<f64>,
    /// Stalls (`waiting` once playing) so far, and their total time.
    #[serde(default)]
    stalls: Option<u64>,
    #[serde(default)]
    stalled_ms: Option<f64>,
    #[serde(default)]
    message: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
struct FlipResult {
    id: u64,
    colour: String,
    sent_wall_ms: f64,
    /// Sent → the part with the first new-colour frame fully received.
    part_ms: Option<f64>,
    /// Sent → that frame decoded.
    decoded_ms: Option<f64>,
    part: Option<String>,
    /// Sent → the frame's expected display time in Chromium (hls.js).
    screen_ms: Option<f64>,
}

#[derive(Serialize)]
struct Report {
    flips: usize,
    participants: usize,
    part_ms_config: u64,
    segment_ms_config: u64,
    interval_ms: u64,
    part: Option<Summary>,
    decoded: Option<Summary>,
    screen: Option<Summary>,
    hlsjs_latency_s_median: Option<f64>,
    hlsjs_target_latency_s: Option<f64>,
    /// Stalls of the Chromium player once it played, and their total time.
    stalls: Option<u64>,
    stalled_ms: Option<f64>,
    load_average_1m: Option<f64>,
    results: Vec<FlipResult>,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args = args()?;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();

    let dir = std::env::temp_dir().join(format!("roomcast-latency-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut config = roomcast::Config::for_tests(&dir);
    config.compositor_bin = Some(roomcast_e2e::compositor_bin()?);
    config.web_dir = bench::repo_root().join("web").join("dist");
    config.part_ms = args.part_ms;
    config.segment_ms = args.segment_ms;
    let (width, height) = (config.broadcast_width, config.broadcast_height);
    eprintln!("compositor: {}", config.compositor_bin.as_ref().map(|p| p.display().to_string()).unwrap_or_default());
    let server = roomcast::start(config).await?;
    let base = format!("http://{}", server.http_addr);
    let http = reqwest::Client::new();
    let room = signaling::create_room(&http, &base, "latency-bench").await?;

    // The flipper joins first: the top-left tile. The others only fill the grid.
    let mut people = vec![SyntheticParticipant::join_with(&base, &room, JoinOptions::new("flip", FIRST, 440.0).decode(false)).await?];
    let fillers = [Colour::WHITE, Colour::new(128, 128, 128), Colour::new(200, 120, 40)];
    for i in 1..args.participants {
        let c = fillers[(i - 1) % fillers.len()];
        people.push(
            SyntheticParticipant::join_with(&base, &room, JoinOptions::new(format!("p{i}"), c, 500.0 + 60.0 * i as f32).decode(false))
                .await?,
        );
    }
    let r = http.post(format!("{base}/api/rooms/{room}/broadcast")).send().await?;
    ensure!(r.status().as_u16() == 202, "POST broadcast: {} {}", r.status(), r.text().await.unwrap_or_default());

    let slot = layout(args.participants, width, height).slots[0];
    let patch = Patch {
        x: (slot.x + slot.width / 4) as u32 - PATCH / 2,
        y: (slot.y + slot.height / 4) as u32 - PATCH / 2,
        width: PATCH,
        height: PATCH,
    };

    // The Rust LL-HLS client and its decoder.
    let playlist_url = format!("{base}/hls/{room}/index.m3u8");
    let frames: Arc<Mutex<Vec<FrameEvent>>> = Arc::new(Mutex::new(vec![]));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut follower = Follower::new(reqwest::Client::new(), playlist_url.clone());
    let follow_task = tokio::spawn(async move {
        let r = follower.run(tx).await;
        (r, follower.stats.clone())
    });
    let sink = frames.clone();
    let decode_task = tokio::spawn(async move {
        let mut decoder = TileDecoder::new((width, height), patch, move |f| sink.lock().unwrap().push(f))?;
        while let Some(ev) = rx.recv().await {
            match ev {
                HlsEvent::Init { data, .. } => decoder.push_init(&data)?,
                HlsEvent::Part(p) => decoder.push_part(p.entry.id(), p.received_at, &p.data)?,
            }
        }
        anyhow::Ok(decoder.pipelines)
    });

    // Chromium with hls.js.
    let browser_events: Arc<Mutex<Vec<BrowserEvent>>> = Arc::new(Mutex::new(vec![]));
    let mut browser = None;
    if args.browser {
        let script = bench::repo_root().join("tests/browser/latency.mjs");
        let watch_url = format!("{base}/watch/{room}");
        let mut child = tokio::process::Command::new("node")
            .arg(&script)
            .args(["--url", &watch_url, "--patch", &format!("{},{},{},{}", patch.x, patch.y, patch.width, patch.height)])
            .args(["--player", &args.player])
            .current_dir(script.parent().context("script dir")?)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting node {}", script.display()))?;
        let stdout = child.stdout.take().context("node stdout")?;
        let events = browser_events.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                match serde_json::from_str::<BrowserEvent>(&line) {
                    Ok(ev) => {
                        if ev.event == "error" || ev.event == "log" {
                            eprintln!("browser: {}", ev.message.clone().unwrap_or_default());
                        }
                        events.lock().unwrap().push(ev);
                    }
                    Err(_) => eprintln!("browser: {line}"),
                }
            }
        });
        browser = Some(child);
    }

    // Warm-up: both viewers show the first colour; then let hls.js settle at its live offset.
    let started = Instant::now();
    loop {
        let rust_ok = frames.lock().unwrap().iter().rev().take(5).any(|f| f.colour.is_some_and(|c| c.is_close_to(FIRST, TOLERANCE)));
        let browser_ok = !args.browser
            || browser_events
                .lock()
                .unwrap()
                .iter()
                .any(|e| e.event == "colour" && e.rgb.is_some_and(|c| Colour::new(c[0], c[1], c[2]).is_close_to(FIRST, TOLERANCE)));
        if rust_ok && browser_ok {
            break;
        }
        if follow_task.is_finished() || decode_task.is_finished() {
            bail!("the HLS client stopped: {:?}", follow_task.await);
        }
        ensure!(
            started.elapsed() < Duration::from_secs(60),
            "no {} tile within 60 s (Rust client ok: {rust_ok}, browser ok: {browser_ok}; last frames {:?})",
            FIRST,
            frames.lock().unwrap().iter().rev().take(3).map(|f| f.colour).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("live after {:?}; settling {:?}", started.elapsed(), args.settle);
    tokio::time::sleep(args.settle).await;

    // The flips. A small varying offset puts them at different phases of parts and segments.
    let flipper = &people[0];
    let mut flips: Vec<FlipRecord> = vec![];
    for k in 0..args.flips {
        let colour = PALETTE[k % PALETTE.len()];
        let id = flipper.set_colour(colour)?;
        let flip = flipper.wait_flip_sent(id, Duration::from_secs(2)).await?;
        eprintln!("flip {:>2}: {} sent", k + 1, colour);
        flips.push(flip);
        let jitter = Duration::from_millis(((k as u64 * 137) % 7) * args.part_ms / 7);
        tokio::time::sleep(args.interval + jitter).await;
    }
    tokio::time::sleep(Duration::from_secs(4)).await;

    // Match each flip with the first frame of its colour after it was sent.
    let frames_seen = frames.lock().unwrap().clone();
    let browser_seen = browser_events.lock().unwrap().clone();
    let mut results = vec![];
    for f in &flips {
        let rust = frames_seen.iter().find(|e| e.decoded_at > f.sent_at && e.colour.is_some_and(|c| c.is_close_to(f.colour, TOLERANCE)));
        let sent_wall = wall_ms(f.sent_wall);
        let screen = browser_seen.iter().find(|e| {
            e.event == "colour"
                && e.wall.is_some_and(|w| w >= sent_wall)
                && e.rgb.is_some_and(|c| Colour::new(c[0], c[1], c[2]).is_close_to(f.colour, TOLERANCE))
        });
        results.push(FlipResult {
            id: f.id,
            colour: f.colour.to_string(),
            sent_wall_ms: sent_wall,
            part_ms: rust.map(|e| bench::ms(e.part_received_at.saturating_duration_since(f.sent_at))),
            decoded_ms: rust.map(|e| bench::ms(e.decoded_at.saturating_duration_since(f.sent_at))),
            part: rust.map(|e| e.part.to_string()),
            screen_ms: screen.and_then(|e| e.display_wall.or(e.wall)).map(|w| w - sent_wall),
        });
    }
    let collect = |g: fn(&FlipResult) -> Option<f64>| -> Vec<Duration> {
        results.iter().filter_map(g).map(|ms| Duration::from_secs_f64(ms.max(0.0) / 1000.0)).collect()
    };
    let stats_browser: Vec<&BrowserEvent> = browser_seen.iter().filter(|e| e.event == "stats").collect();
    let mut lat: Vec<f64> = stats_browser.iter().filter_map(|e| e.latency).collect();
    lat.sort_by(f64::total_cmp);
    let report = Report {
        flips: flips.len(),
        participants: args.participants,
        part_ms_config: args.part_ms,
        segment_ms_config: args.segment_ms,
        interval_ms: args.interval.as_millis() as u64,
        part: Summary::of(&collect(|r| r.part_ms)),
        decoded: Summary::of(&collect(|r| r.decoded_ms)),
        screen: Summary::of(&collect(|r| r.screen_ms)),
        hlsjs_latency_s_median: bench::percentile(&lat, 50.0),
        hlsjs_target_latency_s: stats_browser.iter().rev().find_map(|e| e.target_latency),
        stalls: stats_browser.iter().rev().find_map(|e| e.stalls),
        stalled_ms: stats_browser.iter().rev().find_map(|e| e.stalled_ms),
        load_average_1m: bench::load_average(),
        results,
    };

    println!("\nflip  colour   sent→part   sent→decoded   sent→screen   part");
    for (i, r) in report.results.iter().enumerate() {
        let f = |v: Option<f64>| v.map(|v| format!("{v:>7.0} ms")).unwrap_or_else(|| "      -   ".into());
        println!(
            "{:>4}  {}  {}  {}     {}    {}",
            i + 1,
            r.colour,
            f(r.part_ms),
            f(r.decoded_ms),
            f(r.screen_ms),
            r.part.clone().unwrap_or_default()
        );
    }
    println!();
    let line = |what: &str, s: &Option<Summary>| match s {
        Some(s) => println!("{what:<44} {s}"),
        None => println!("{what:<44} no data"),
    };
    line("flip sent → part with it received (Rust)", &report.part);
    line("flip sent → frame decoded (Rust)", &report.decoded);
    let player = if args.player == "shaka" { "Shaka Player" } else { "hls.js" };
    line(&format!("flip sent → on screen (Chromium, {player})"), &report.screen);
    if let Some(l) = report.hlsjs_latency_s_median {
        println!(
            "{player} latency (its own estimate, median): {l:.2} s; target {:?} s; playback rate {:?}",
            report.hlsjs_target_latency_s,
            stats_browser.last().and_then(|e| e.rate)
        );
    }
    let rates: Vec<f64> = stats_browser.iter().filter_map(|e| e.rate).collect();
    if !rates.is_empty() {
        println!(
            "{player} playback rate: min {:.2} max {:.2}",
            rates.iter().copied().fold(f64::INFINITY, f64::min),
            rates.iter().copied().fold(0.0, f64::max)
        );
    }
    if let (Some(n), Some(ms)) = (report.stalls, report.stalled_ms) {
        println!("stalls while playing (Chromium): {n}, {ms:.0} ms in all");
    }
    println!("load average (1 min): {:?}", report.load_average_1m);
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
        println!("wrote {}", path.display());
    }

    // Tear down.
    if let Some(mut child) = browser {
        drop(child.stdin.take());
        if tokio::time::timeout(Duration::from_secs(10), child.wait()).await.is_err() {
            let _ = child.kill().await;
        }
    }
    let _ = http.delete(format!("{base}/api/rooms/{room}/broadcast")).send().await;
    follow_task.abort();
    let _ = decode_task.await;
    for p in people {
        p.leave().await;
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    let missing = report.results.iter().filter(|r| r.part_ms.is_none()).count();
    ensure!(missing == 0, "{missing} flip(s) never seen by the Rust client");
    Ok(())
}
