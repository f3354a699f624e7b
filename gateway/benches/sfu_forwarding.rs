//! SFU forwarding benchmark over loopback UDP: one publisher to K subscribers.
//!
//!     cargo bench -p roomcast --bench sfu_forwarding -- [--subscribers 1,10,50,200] [--seconds 10]
//!
//! Clients are real WebRTC endpoints (str0m, ICE + DTLS + SRTP) that join through HTTP and
//! WebSocket like a browser. The publisher sends a VP8-shaped stream (30 fps, 4 packets of
//! 1100 bytes per frame, a keyframe every 2 s: ~1.1 Mbit/s). CPU is the SFU worker thread's own
//! (from /proc/self/task), so client cost is not counted against the SFU.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind};
use str0m::net::{Protocol, Receive};
use str0m::rtp::RtpWrite;
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio_tungstenite::tungstenite::Message;

const FPS: u64 = 30;
const PACKETS_PER_FRAME: u64 = 4;
const PAYLOAD_BYTES: usize = 1100;

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    received: AtomicU64,
    receiving_clients: AtomicU64,
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let ks: Vec<usize> = arg("--subscribers").unwrap_or("1,10,50,200".into()).split(',').map(|s| s.parse().expect("K")).collect();
    let seconds: u64 = arg("--seconds").map(|s| s.parse().expect("seconds")).unwrap_or(10);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    println!("SFU forwarding, 1 publisher -> K subscribers, {FPS} fps x {PACKETS_PER_FRAME} pkts x {PAYLOAD_BYTES} B, {seconds} s per run");
    println!("{:>5} {:>10} {:>12} {:>10} {:>16} {:>14} {:>16} {:>7}", "K", "sent pps", "fwd pps", "worker %", "fwd pps / core", "us / fwd pkt", "consumers/core", "loss %");
    for k in ks {
        let r = rt.block_on(run(k, seconds))?;
        println!(
            "{:>5} {:>10.0} {:>12.0} {:>10.1} {:>16.0} {:>14.2} {:>16.0} {:>7.2}",
            k, r.sent_pps, r.fwd_pps, r.cpu * 100.0, r.fwd_pps / r.cpu.max(1e-9), r.cpu * 1e6 / r.fwd_pps.max(1e-9), k as f64 / r.cpu.max(1e-9), r.loss * 100.0
        );
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

async fn run(k: usize, seconds: u64) -> anyhow::Result<RunResult> {
    let dir = std::env::temp_dir().join(format!("roomcast-bench-{}", std::process::id()));
    let mut config = roomcast::Config::for_tests(&dir);
    config.workers = Some(1);
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
        anyhow::ensure!(start.elapsed() < Duration::from_secs(60), "only {} of {k} subscribers receiving after 60 s", counters.receiving_clients.load(Ordering::Relaxed));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

    let (s0, r0, c0, t0) = (counters.sent.load(Ordering::Relaxed), counters.received.load(Ordering::Relaxed), worker_cpu_secs(), Instant::now());
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let (s1, r1, c1, t1) = (counters.sent.load(Ordering::Relaxed), counters.received.load(Ordering::Relaxed), worker_cpu_secs(), Instant::now());
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

/// A WebRTC client: joins, then publishes (one VP8-shaped video track) or only subscribes.
async fn client(base: String, room: String, publisher: bool, counters: Arc<Counters>) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let join: Value = http.post(format!("{base}/api/rooms/{room}/join")).json(&json!({"name": if publisher { "pub" } else { "sub" }})).send().await?.json().await?;
    let (mut ws, _) = tokio_tungstenite::connect_async(join["ws_url"].as_str().unwrap()).await?;
    let socket = UdpSocket::bind("127.0.0.1:0").await?;
    let local = socket.local_addr()?;
    let mut rtc = Rtc::builder().set_rtp_mode(true).clear_codecs().enable_vp8(true).enable_opus(true, false).build(Instant::now());
    rtc.add_local_candidate(Candidate::host(local, "udp")?);

    let mut pending = None;
    let mut mid = None;
    if publisher {
        let mut change = rtc.sdp_api();
        mid = Some(change.add_media(MediaKind::Video, Direction::SendOnly, None, None, None));
        let (offer, p) = change.apply().expect("an offer");
        pending = Some(p);
        ws.send(Message::Text(json!({"type": "publish_offer", "sdp": offer.to_sdp_string()}).to_string().into())).await?;
    }

    let mut buf = vec![0u8; 2048];
    let mut connected = false;
    let mut counted_receiving = false;
    let mut frame: u64 = 0;
    let mut seq: u64 = 1;
    let start = Instant::now();
    let mut next_frame = tokio::time::Instant::now();
    loop {
        let deadline = loop {
            match rtc.poll_output()? {
                Output::Transmit(t) => {
                    let _ = socket.send_to(&t.contents, t.destination).await;
                }
                Output::Timeout(t) => break t,
                Output::Event(Event::Connected) => connected = true,
                Output::Event(Event::RtpPacket(_)) => {
                    counters.received.fetch_add(1, Ordering::Relaxed);
                    if !counted_receiving {
                        counted_receiving = true;
                        counters.receiving_clients.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Output::Event(_) => {}
            }
        };
        let sleep_until = tokio::time::Instant::from_std(deadline);
        let publishing = publisher && connected;
        tokio::select! {
            r = socket.recv_from(&mut buf) => {
                let (n, source) = r?;
                if let Ok(contents) = buf[..n].try_into() {
                    rtc.handle_input(Input::Receive(Instant::now(), Receive { proto: Protocol::Udp, source, destination: local, contents }))?;
                }
            }
            _ = tokio::time::sleep_until(sleep_until) => rtc.handle_input(Input::Timeout(Instant::now()))?,
            _ = tokio::time::sleep_until(next_frame), if publishing => {
                next_frame += Duration::from_micros(1_000_000 / FPS);
                let pt = rtc.codec_config().find(|p| p.spec().codec == Codec::Vp8).map(|p| p.pt()).expect("VP8");
                let rtp_time = (start.elapsed().as_micros() as u64 * 90 / 1000) as u32;
                let key = frame % (2 * FPS) == 0;
                if let Some(tx) = rtc.direct_api().stream_tx_by_mid(mid.unwrap(), None) {
                    for i in 0..PACKETS_PER_FRAME {
                        let mut payload = vec![0u8; PAYLOAD_BYTES];
                        payload[0] = if i == 0 { 0x10 } else { 0x00 };
                        payload[1] = if key { 0x00 } else { 0x01 };
                        tx.write_rtp(RtpWrite::new(pt, seq.into(), rtp_time, Instant::now(), payload).marker(i == PACKETS_PER_FRAME - 1).nackable(true));
                        seq += 1;
                    }
                    counters.sent.fetch_add(PACKETS_PER_FRAME, Ordering::Relaxed);
                }
                frame += 1;
                rtc.handle_input(Input::Timeout(Instant::now()))?;
            }
            msg = ws.next() => {
                let Some(Ok(Message::Text(text))) = msg else { return Ok(()) };
                let v: Value = serde_json::from_str(&text)?;
                match v["type"].as_str() {
                    Some("publish_answer") => {
                        let answer = SdpAnswer::from_sdp_string(v["sdp"].as_str().unwrap())?;
                        rtc.sdp_api().accept_answer(pending.take().expect("pending offer"), answer)?;
                    }
                    Some("subscribe_offer") => {
                        let offer = SdpOffer::from_sdp_string(v["sdp"].as_str().unwrap())?;
                        let answer = rtc.sdp_api().accept_offer(offer)?;
                        ws.send(Message::Text(json!({"type": "subscribe_answer", "sdp": answer.to_sdp_string()}).to_string().into())).await?;
                    }
                    _ => {}
                }
            }
        }
    }
}
