//! Benchmark: the compositor vs ffmpeg doing the same grid composite.
//!
//! `cargo run --release -p roomcast-compositor --bin compositor-bench [-- --tiles 4,9,16 --seconds 20]`
//!
//! For each tile count N: N VP8 640x360@30 RTP inputs (a pre-encoded moving clip replayed
//! in real time, so the senders cost almost nothing) + one Opus tone go into a release
//! `roomcast-compositor` (1280x720@30, x264 `--preset`); then ffmpeg decodes the same clip N
//! times (`-re`), scales each copy into the same tile rectangles (`xstack` + `pad`), encodes
//! libx264 (same preset, tune, bitrate, GOP, threads) + AAC. CPU is the child's utime+stime
//! from /proc over the measured window (after a warm-up), in cores; the real-time ratio is
//! media produced / wall time over the same window.

use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use gstreamer as gst;
use gstreamer::prelude::*;
use roomcast_compositor::layout::layout;
use roomcast_compositor::output::read_frame;

#[derive(Parser, Debug)]
struct Args {
    /// Tile counts to run.
    #[arg(long, value_delimiter = ',', default_value = "4,9,16")]
    tiles: Vec<usize>,
    /// Length of each run (the first `--warmup` seconds are not measured).
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    #[arg(long, default_value_t = 4)]
    warmup: u64,
    #[arg(long, default_value = "ultrafast")]
    preset: String,
    /// Encoder threads for both x264enc and libx264.
    #[arg(long, default_value_t = 2)]
    threads: u32,
    /// Skip the ffmpeg side.
    #[arg(long)]
    no_ffmpeg: bool,
}

const W: u32 = 1280;
const H: u32 = 720;
const FPS: u32 = 30;

fn clock_ticks() -> f64 {
    // USER_HZ is 100 on every Linux we run on; `getconf CLK_TCK` to be sure.
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// utime + stime of a live process, seconds (children that were waited for included).
fn cpu_seconds(pid: u32, hz: f64) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    // fields after "comm": state(0) ppid … utime(11) stime(12) cutime(13) cstime(14)
    let t: f64 = [11, 12, 13, 14].iter().map(|i| f.get(*i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)).sum();
    Some(t / hz)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg").map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" ")).unwrap_or_default()
}

/// A 640x360@30 VP8 clip with motion, long enough for one run (cached).
fn make_clip(dir: &Path, seconds: u64) -> Result<PathBuf> {
    let path = dir.join(format!("clip-{seconds}s.webm"));
    if path.exists() {
        return Ok(path);
    }
    let tmp = dir.join("clip.tmp.webm");
    let frames = (seconds + 2) * FPS as u64;
    let desc = format!(
        "videotestsrc pattern=smpte horizontal-speed=4 num-buffers={frames} \
         ! video/x-raw,width=640,height=360,framerate={FPS}/1 ! timeoverlay font-desc=\"Sans 36\" \
         ! vp8enc deadline=1 cpu-used=8 keyframe-max-dist=60 target-bitrate=800000 \
         ! webmmux ! filesink location={}",
        tmp.display()
    );
    let p = gst::parse::launch(&desc)?;
    p.set_state(gst::State::Playing)?;
    let bus = p.bus().unwrap();
    let msg = bus.timed_pop_filtered(gst::ClockTime::from_seconds(300), &[gst::MessageType::Eos, gst::MessageType::Error]);
    p.set_state(gst::State::Null)?;
    match msg.as_ref().map(|m| m.view()) {
        Some(gst::MessageView::Eos(_)) => {}
        other => bail!("encoding the clip failed: {other:?}"),
    }
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}

fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Measured {
    cpu_cores: f64,
    realtime: f64,
    fps: f64,
}

fn measure(child: &Child, warmup: Duration, window: Duration, media_ns: impl Fn() -> u64) -> Result<Measured> {
    let hz = clock_ticks();
    thread::sleep(warmup);
    let pid = child.id();
    let c0 = cpu_seconds(pid, hz).context("child exited during warm-up")?;
    let m0 = media_ns();
    let t0 = Instant::now();
    thread::sleep(window);
    let c1 = cpu_seconds(pid, hz).context("child exited during the run")?;
    let m1 = media_ns();
    let dt = t0.elapsed().as_secs_f64();
    let media = (m1 - m0) as f64 / 1e9;
    Ok(Measured { cpu_cores: (c1 - c0) / dt, realtime: media / dt, fps: media * FPS as f64 / dt })
}

fn run_compositor(exe: &Path, clip: &Path, n: usize, a: &Args) -> Result<Measured> {
    let mut child = Command::new(exe)
        .args(["--width", &W.to_string(), "--height", &H.to_string(), "--fps", &FPS.to_string()])
        .args(["--preset", &a.preset, "--encoder-threads", &a.threads.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("spawning {}", exe.display()))?;
    let media = Arc::new(AtomicU64::new(0));
    let m = media.clone();
    let stdout = child.stdout.take().unwrap();
    let reader = thread::spawn(move || {
        let mut r = BufReader::new(stdout);
        while let Ok(Some((h, _))) = read_frame(&mut r) {
            if h["kind"] == "part" {
                m.fetch_add(h["duration_ns"].as_u64().unwrap_or(0), Ordering::Relaxed);
            }
        }
    });
    let mut stdin = child.stdin.take().unwrap();
    let mut senders = Vec::new();
    for i in 0..n {
        let port = free_port();
        writeln!(stdin, r#"{{"op":"add_participant","id":"p{i}","name":"Bench {i}"}}"#)?;
        writeln!(
            stdin,
            r#"{{"op":"add_track","track_id":"p{i}:v","participant_id":"p{i}","kind":"video","codec":"VP8","payload_type":96,"rtp_port":{port}}}"#
        )?;
        stdin.flush()?;
        thread::sleep(Duration::from_millis(50));
        let desc =
            format!("filesrc location={} ! matroskademux ! rtpvp8pay pt=96 ! udpsink host=127.0.0.1 port={port} sync=true", clip.display());
        let p = gst::parse::launch(&desc)?;
        p.set_state(gst::State::Playing)?;
        senders.push(p);
    }
    let aport = free_port();
    writeln!(
        stdin,
        r#"{{"op":"add_track","track_id":"p0:a","participant_id":"p0","kind":"audio","codec":"opus","payload_type":111,"rtp_port":{aport}}}"#
    )?;
    stdin.flush()?;
    let p = gst::parse::launch(&format!(
        "audiotestsrc is-live=true freq=440 ! audio/x-raw,rate=48000,channels=2 ! opusenc \
         ! rtpopuspay pt=111 ! udpsink host=127.0.0.1 port={aport} sync=false"
    ))?;
    p.set_state(gst::State::Playing)?;
    senders.push(p);

    let window = Duration::from_secs(a.seconds.saturating_sub(a.warmup).max(1));
    let result = measure(&child, Duration::from_secs(a.warmup), window, || media.load(Ordering::Relaxed));
    writeln!(stdin, r#"{{"op":"shutdown"}}"#).ok();
    drop(stdin);
    for s in &senders {
        let _ = s.set_state(gst::State::Null);
    }
    let t0 = Instant::now();
    while child.try_wait()?.is_none() && t0.elapsed() < Duration::from_secs(10) {
        thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    let _ = reader.join();
    result
}

fn run_ffmpeg(clip: &Path, n: usize, a: &Args, dir: &Path) -> Result<Measured> {
    let grid = layout(n, W, H);
    let x0 = grid.slots.iter().map(|r| r.x).min().unwrap();
    let y0 = grid.slots.iter().map(|r| r.y).min().unwrap();
    let (tw, th) = (grid.slots[0].width, grid.slots[0].height);
    let mut filter = String::new();
    let mut stack_in = String::new();
    let mut positions = Vec::new();
    for (i, r) in grid.slots.iter().take(n).enumerate() {
        filter.push_str(&format!("[{i}:v]scale={tw}:{th},setsar=1[v{i}];"));
        stack_in.push_str(&format!("[v{i}]"));
        positions.push(format!("{}_{}", r.x - x0, r.y - y0));
    }
    filter.push_str(&format!(
        "{stack_in}xstack=inputs={n}:layout={}:fill=black,pad={W}:{H}:{x0}:{y0}:black,fps={FPS},format=yuv420p[vout]",
        positions.join("|")
    ));
    let progress = dir.join("ffmpeg-progress.txt");
    let _ = std::fs::remove_file(&progress);
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-hide_banner", "-loglevel", "error", "-nostdin"]);
    for _ in 0..n {
        cmd.args(["-re", "-i"]).arg(clip);
    }
    cmd.args(["-re", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-filter_complex", &filter])
        .args(["-map", "[vout]", "-map", &format!("{n}:a")])
        .args(["-c:v", "libx264", "-preset", &a.preset, "-tune", "zerolatency"])
        .args(["-b:v", "2500k", "-g", &FPS.to_string(), "-threads", &a.threads.to_string()])
        .args(["-c:a", "aac", "-b:a", "128k", "-ac", "2", "-ar", "48000"])
        .args(["-t", &a.seconds.to_string()])
        .args(["-progress"])
        .arg(&progress)
        .args(["-f", "mp4", "-movflags", "frag_keyframe+empty_moov+default_base_moof", "-y", "/dev/null"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().context("spawning ffmpeg")?;
    let prog = progress.clone();
    let media_ns = move || {
        std::fs::read_to_string(&prog)
            .ok()
            .and_then(|s| s.lines().rev().find_map(|l| l.strip_prefix("out_time_us=").and_then(|v| v.parse::<u64>().ok())))
            .unwrap_or(0)
            * 1000
    };
    let window = Duration::from_secs(a.seconds.saturating_sub(a.warmup + 1).max(1));
    let result = measure(&child, Duration::from_secs(a.warmup), window, media_ns);
    let _ = child.kill();
    let out = child.wait_with_output()?;
    if result.is_err() {
        bail!("ffmpeg failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    result
}

fn main() -> Result<()> {
    let a = Args::parse();
    gst::init()?;
    let exe = std::env::current_exe()?.parent().unwrap().join("roomcast-compositor");
    if !exe.exists() {
        bail!("{} not found: build it first (cargo build --release -p roomcast-compositor)", exe.display());
    }
    let dir = std::env::temp_dir().join("roomcast-compositor-bench");
    std::fs::create_dir_all(&dir)?;
    eprintln!("encoding the input clip …");
    let clip = make_clip(&dir, a.seconds + 5)?;
    println!(
        "{W}x{H}@{FPS}, x264 preset {}, {} encoder threads, {} s runs ({} s warm-up), {} cores here",
        a.preset,
        a.threads,
        a.seconds,
        a.warmup,
        thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );
    println!("{:>5}  {:>22}  {:>22}  {:>9}  loadavg", "tiles", "roomcast cpu / rt / fps", "ffmpeg cpu / rt / fps", "cpu ratio");
    for &n in &a.tiles {
        eprintln!("{n} tiles: roomcast-compositor …");
        let g = run_compositor(&exe, &clip, n, &a)?;
        let f = if a.no_ffmpeg {
            None
        } else {
            eprintln!("{n} tiles: ffmpeg …");
            Some(run_ffmpeg(&clip, n, &a, &dir)?)
        };
        let fmt = |m: &Measured| format!("{:.2} / {:.2} / {:.1}", m.cpu_cores, m.realtime, m.fps);
        println!(
            "{:>5}  {:>22}  {:>22}  {:>9}  {}",
            n,
            fmt(&g),
            f.as_ref().map(fmt).unwrap_or_else(|| "-".into()),
            f.as_ref().map(|f| format!("{:.2}x", g.cpu_cores / f.cpu_cores)).unwrap_or_else(|| "-".into()),
            loadavg()
        );
    }
    println!("cpu = cores used (utime+stime / wall); rt = media seconds per wall second; cpu ratio = roomcast / ffmpeg");
    Ok(())
}
