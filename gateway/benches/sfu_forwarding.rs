//! SFU forwarding benchmark over loopback UDP: one publisher to K subscribers.
//!
//!     cargo bench -p roomcast --bench sfu_forwarding -- [--subscribers 1,10,50,200] [--seconds 10]
//!
//! Each K runs with bandwidth estimation on the subscribe connections (the default) and
//! without, so the cost of TWCC/BWE is measured against a baseline from the same machine and
//! build; `--bwe on|off` runs one variant only (one process each gives the cleanest numbers).
//!
//! Clients are real WebRTC endpoints (str0m, ICE + DTLS + SRTP) that join through HTTP and
//! WebSocket like a browser. The publisher sends a VP8-shaped stream (30 fps, 4 packets of
//! 1100 bytes per frame, a keyframe every 2 s: ~1.1 Mbit/s). CPU is the SFU worker thread's own
//! (from /proc/self/task), so client cost is not counted against the SFU.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

#[path = "../tests/support/rtc_client.rs"]
mod rtc_client;
use rtc_client::{client, Counters, FPS, PACKETS_PER_FRAME, PAYLOAD_BYTES};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let ks: Vec<usize> = arg("--subscribers").unwrap_or("1,10,50,200".into()).split(',').map(|s| s.parse().expect("K")).collect();
    let seconds: u64 = arg("--seconds").map(|s| s.parse().expect("seconds")).unwrap_or(10);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    println!("SFU forwarding, 1 publisher -> K subscribers, {FPS} fps x {PACKETS_PER_FRAME} pkts x {PAYLOAD_BYTES} B, {seconds} s per run");
    println!(
        "{:>5} {:>10} {:>12} {:>10} {:>16} {:>14} {:>16} {:>7}",
        "K", "sent pps", "fwd pps", "worker %", "fwd pps / core", "us / fwd pkt", "consumers/core", "loss %"
    );
    // `--bwe on|off` runs one variant (one process per variant keeps the runs independent).
    let variants: Vec<bool> = match arg("--bwe").as_deref() {
        Some("on") => vec![true],
        Some("off") => vec![false],
        _ => vec![true, false],
    };
    for bwe in variants {
        println!("-- bandwidth estimation on subscribe connections: {}", if bwe { "on (default)" } else { "off" });
        for &k in &ks {
            let r = rt.block_on(run(k, seconds, bwe))?;
            println!(
                "{:>5} {:>10.0} {:>12.0} {:>10.1} {:>16.0} {:>14.2} {:>16.0} {:>7.2}",
                k,
                r.sent_pps,
                r.fwd_pps,
                r.cpu * 100.0,
                r.fwd_pps / r.cpu.max(1e-9),
                r.cpu * 1e6 / r.fwd_pps.max(1e-9),
                k as f64 / r.cpu.max(1e-9),
                r.loss * 100.0
            );
        }
    }
    Ok(())
}

struct RunResult {
    sent_pps: f64,
    fwd_pps: f64,
    /// Fraction of one core used by the SFU worker.
    cpu: f64,
    loss: f64,
}

async fn run(k: usize, seconds: u64, bwe: bool) -> anyhow::Result<RunResult> {
    let dir = std::env::temp_dir().join(format!("roomcast-bench-{}", std::process::id()));
    let mut config = roomcast::Config::for_tests(&dir);
    config.workers = Some(1);
    config.bwe = bwe;
    config.max_participants = k + 10;
    let server = roomcast::start(config).await?;
    let base = format!("http://{}", server.http_addr);
    let http = reqwest::Client::new();
    let room: Value = http.post(format!("{base}/api/rooms")).json(&json!({"name": "bench"})).send().await?.json().await?;
    let room = room["id"].as_str().unwrap().to_owned();
    let counters = Arc::new(Counters::default());

    for _ in 0..k {
        tokio::spawn(client(base.clone(), room.clone(), false, counters.clone()));
    }
    tokio::spawn(client(base.clone(), room.clone(), true, counters.clone()));

    let start = Instant::now();
    while counters.receiving_clients.load(Ordering::Relaxed) < k as u64 {
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(60),
            "only {} of {k} subscribers receiving after 60 s",
            counters.receiving_clients.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

    let (s0, r0, c0, t0) =
        (counters.sent.load(Ordering::Relaxed), counters.received.load(Ordering::Relaxed), worker_cpu_secs(), Instant::now());
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let (s1, r1, c1, t1) =
        (counters.sent.load(Ordering::Relaxed), counters.received.load(Ordering::Relaxed), worker_cpu_secs(), Instant::now());
    let wall = (t1 - t0).as_secs_f64();
    let sent = (s1 - s0) as f64;
    let fwd = (r1 - r0) as f64;
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    // Let the last run's clients notice and stop before the next run.
    tokio::time::sleep(Duration::from_millis(500)).await;
    Ok(RunResult { sent_pps: sent / wall, fwd_pps: fwd / wall, cpu: (c1 - c0) / wall, loss: (1.0 - fwd / (sent * k as f64)).max(0.0) })
}

/// CPU seconds used so far by the threads named `sfu-worker-*` in this process.
fn worker_cpu_secs() -> f64 {
    let ticks = 100.0; // USER_HZ on Linux
    let mut total = 0.0;
    for task in std::fs::read_dir("/proc/self/task").into_iter().flatten().flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if !comm.starts_with("sfu-worker") {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        // Fields after the ")" of the comm: state is field 3; utime 14, stime 15.
        if let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) {
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ut: f64 = f.get(11).and_then(|s| s.parse().ok()).unwrap_or(0.0);
            let st: f64 = f.get(12).and_then(|s| s.parse().ok()).unwrap_or(0.0);
            total += (ut + st) / ticks;
        }
    }
    total
}
