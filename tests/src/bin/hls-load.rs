//! hls-load: many LL-HLS viewers against one gateway (issue 6, "Load benchmark").
//!
//! The gateway runs in a child process (this binary, `serve` mode) so its CPU and memory can
//! be read from /proc apart from the clients'. Two synthetic participants publish from a
//! third process (`publish` mode, so the viewers' runtime cannot starve the room's media); the
//! broadcast runs with the real compositor (the gateway's child, counted separately). For each N:
//!
//! 1. **live**: N viewers, each on its own keep-alive connection, follow the stream like
//!    hls.js: a blocking playlist reload (`_HLS_msn`/`_HLS_part`) for the next part, then
//!    the part. Reported: gateway CPU (% of one core) and RSS, parts delivered, and the part
//!    delivery delay (a viewer has the part − the first moment anyone had it; the reference
//!    is a monitor client that asks for each part as the preload hint), p50/p99/max.
//! 2. **throughput, gateway** and 3. **throughput, nginx**: N connections in a closed loop
//!    (playlist, then one of the 6 newest parts, again and again) for a few seconds; requests
//!    and bytes per second and server CPU. nginx serves the same files, written to disk by
//!    the monitor as they arrive (parts, init, the playlist every 250 ms), same URLs.
//!
//! Clients and servers share one machine (2 cores here): past a point the client is what
//! saturates; the client's own CPU is printed so that shows.
//!
//! 4. **live, through the edge** (`--edge`): the same viewers follow the stream through
//!    Debian's nginx running the shipped edge config (`deploy/nginx/roomcast-edge.conf`, one
//!    worker), in front of the gateway. Reported as in 1 (the gateway is now the origin), plus
//!    the requests that reached the origin per part published (from the edge's log: a cache
//!    miss or a pass-through) and the edge's CPU.
//!
//! ```sh
//! cargo build --release -p roomcast-compositor -p roomcast-e2e --bins
//! /var/tmp/roomcast-target/release/hls-load [--viewers 1000,5000,10000] [--seconds 20]
//!     [--throughput-seconds 8] [--no-nginx] [--edge] [--json FILE]
//! ```
//! nginx is installed with apt-get when it is missing (root only).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, ensure, Context, Result};
use roomcast_e2e::bench::{self, ProcSample, Summary};
use roomcast_e2e::hls::{Follower, HlsEvent, PartId};
use roomcast_e2e::nginx::{self, Nginx};
use roomcast_e2e::synthetic::{signaling, Colour, JoinOptions, SyntheticParticipant};
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::watch;

/// Client sockets bind to 127.0.0.2..=127.0.0.(1+SOURCE_IPS): more source ports than one
/// address has, so tens of thousands of connections (and their TIME_WAITs) fit.
const SOURCE_IPS: u32 = 32;
/// How many of the newest parts the throughput loops rotate over.
const RECENT_PARTS: usize = 6;

struct Args {
    viewers: Vec<usize>,
    seconds: u64,
    throughput_seconds: u64,
    nginx: bool,
    /// Also follow the stream through an nginx edge (deploy/nginx/roomcast-edge.conf).
    edge: bool,
    json: Option<PathBuf>,
}

fn args() -> Result<Args> {
    let mut a = Args { viewers: vec![1000, 5000, 10000], seconds: 20, throughput_seconds: 8, nginx: true, edge: false, json: None };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--viewers" => a.viewers = value()?.split(',').map(|v| v.trim().parse()).collect::<Result<_, _>>()?,
            "--seconds" => a.seconds = value()?.parse()?,
            "--throughput-seconds" => a.throughput_seconds = value()?.parse()?,
            "--no-nginx" => a.nginx = false,
            "--edge" => a.edge = true,
            "--json" => a.json = Some(value()?.into()),
            "-h" | "--help" => {
                println!(
                    "hls-load [--viewers 1000,5000,10000] [--seconds 20] [--throughput-seconds 8] [--no-nginx] [--edge] [--json FILE]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other} (try --help)"),
        }
    }
    Ok(a)
}

// ---------------------------------------------------------------------------------------
// A minimal HTTP/1.1 client: one keep-alive connection, GET only. (reqwest costs several
// times more CPU per request, and here the client shares the machine with the server.)

struct Conn {
    addr: SocketAddr,
    local: IpAddr,
    host: String,
    stream: Option<BufReader<TcpStream>>,
    buf: Vec<u8>,
}

struct Response {
    status: u16,
    bytes: usize,
}

impl Conn {
    fn new(addr: SocketAddr, local: IpAddr) -> Conn {
        Conn { addr, local, host: addr.to_string(), stream: None, buf: vec![0u8; 16 * 1024] }
    }

    async fn connect(&mut self) -> Result<()> {
        let socket = TcpSocket::new_v4()?;
        socket.bind(SocketAddr::new(self.local, 0))?;
        let stream = socket.connect(self.addr).await.with_context(|| format!("connect {}", self.addr))?;
        stream.set_nodelay(true)?;
        self.stream = Some(BufReader::with_capacity(8 * 1024, stream));
        Ok(())
    }

    /// GET `path`; the body is kept in `body` if given, else only counted.
    async fn get(&mut self, path: &str, body: Option<&mut Vec<u8>>) -> Result<Response> {
        if self.stream.is_none() {
            self.connect().await?;
        }
        let result = self.get_once(path, body).await;
        if result.is_err() {
            self.stream = None;
        }
        result
    }

    async fn get_once(&mut self, path: &str, mut body: Option<&mut Vec<u8>>) -> Result<Response> {
        let s = self.stream.as_mut().context("not connected")?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: hls-load\r\n\r\n", self.host);
        s.get_mut().write_all(request.as_bytes()).await?;
        let mut line = String::new();
        s.read_line(&mut line).await?;
        let status: u16 = line.split_whitespace().nth(1).context("status line")?.parse()?;
        let (mut length, mut chunked, mut close) = (None, false, false);
        loop {
            line.clear();
            if s.read_line(&mut line).await? == 0 {
                bail!("connection closed in headers");
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            let Some((k, v)) = l.split_once(':') else { continue };
            let v = v.trim();
            if k.eq_ignore_ascii_case("content-length") {
                length = Some(v.parse::<usize>()?);
            } else if k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked") {
                chunked = true;
            } else if k.eq_ignore_ascii_case("connection") && v.eq_ignore_ascii_case("close") {
                close = true;
            }
        }
        if let Some(b) = body.as_deref_mut() {
            b.clear();
        }
        let mut total = 0usize;
        let buf = &mut self.buf;
        let mut read_exact_n = async |s: &mut BufReader<TcpStream>, mut n: usize, body: &mut Option<&mut Vec<u8>>| -> Result<()> {
            while n > 0 {
                let want = n.min(buf.len());
                let got = s.read(&mut buf[..want]).await?;
                if got == 0 {
                    bail!("connection closed in body");
                }
                if let Some(b) = body.as_deref_mut() {
                    b.extend_from_slice(&buf[..got]);
                }
                n -= got;
            }
            Ok(())
        };
        if chunked {
            loop {
                line.clear();
                s.read_line(&mut line).await?;
                let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or("0"), 16)?;
                if size == 0 {
                    line.clear();
                    s.read_line(&mut line).await?; // trailer end
                    break;
                }
                read_exact_n(s, size, &mut body).await?;
                total += size;
                line.clear();
                s.read_line(&mut line).await?; // CRLF after the chunk
            }
        } else if let Some(n) = length {
            read_exact_n(s, n, &mut body).await?;
            total = n;
        } else {
            close = true;
        }
        if close {
            self.stream = None;
        }
        Ok(Response { status, bytes: total })
    }
}

fn source_ip(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 0, 0, 2)) + (i as u32 % SOURCE_IPS)))
}

// ---------------------------------------------------------------------------------------
// The gateway child.

async fn serve_child() -> Result<()> {
    let mut it = std::env::args().skip(2);
    let (mut data_dir, mut compositor) = (None, None);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--data-dir" => data_dir = it.next(),
            "--compositor" => compositor = it.next(),
            other => bail!("serve: unknown argument {other}"),
        }
    }
    let mut config = roomcast::Config::for_tests(data_dir.context("--data-dir")?);
    config.compositor_bin = compositor.map(PathBuf::from);
    let server = roomcast::start(config).await?;
    println!("LISTENING {}", server.http_addr);
    // Until the parent closes our stdin.
    let mut stdin = tokio::io::stdin();
    let mut sink = vec![0u8; 64];
    while stdin.read(&mut sink).await.unwrap_or(0) > 0 {}
    drop(server);
    Ok(())
}

/// The publishers, in their own process: under load the viewers' runtime must not starve
/// the room's media (the compositor would see stalled inputs).
async fn publish_child() -> Result<()> {
    let mut it = std::env::args().skip(2);
    let (mut base, mut room) = (None, None);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--base" => base = it.next(),
            "--room" => room = it.next(),
            other => bail!("publish: unknown argument {other}"),
        }
    }
    let (base, room) = (base.context("--base")?, room.context("--room")?);
    let mut people = vec![];
    for (name, colour, tone) in [("red", Colour::RED, 440.0), ("green", Colour::GREEN, 660.0)] {
        people.push(SyntheticParticipant::join_with(&base, &room, JoinOptions::new(name, colour, tone).decode(false)).await?);
    }
    println!("JOINED");
    let mut stdin = tokio::io::stdin();
    let mut sink = vec![0u8; 64];
    while stdin.read(&mut sink).await.unwrap_or(0) > 0 {}
    for p in people {
        p.leave().await;
    }
    Ok(())
}

/// Raises the open-file limit of this process (children inherit it); without the right to
/// raise the hard limit (a container), the soft limit goes up to the hard one.
fn raise_nofile(n: u64) {
    let pid = std::process::id().to_string();
    let set = |v: &str| {
        std::process::Command::new("prlimit")
            .args(["--pid", &pid, &format!("--nofile={v}")])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let hard = std::fs::read_to_string("/proc/self/limits")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(4).map(str::to_owned))
        .unwrap_or_default();
    let ok = set(&format!("{n}:{n}")) || set(&format!("{hard}:"));
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let line = limits.lines().find(|l| l.starts_with("Max open files")).unwrap_or("").to_owned();
    eprintln!(
        "open-file limit{}: {}",
        if ok { "" } else { " (prlimit failed)" },
        line.split_whitespace().skip(3).take(2).collect::<Vec<_>>().join(" / ")
    );
}

fn open_file_limit() -> u64 {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024)
}

// ---------------------------------------------------------------------------------------
// The monitor: follows the stream (preload hints), notes when each part first arrived,
// mirrors everything to disk for nginx.

#[derive(Default)]
struct Monitor {
    first_seen: HashMap<PartId, Instant>,
    recent: Vec<String>,
    latest: Option<PartId>,
}

async fn run_monitor(base: String, room: String, mirror: PathBuf, state: Arc<Mutex<Monitor>>) -> Result<()> {
    let dir = mirror.join("hls").join(&room);
    std::fs::create_dir_all(&dir)?;
    let playlist_url = format!("{base}/hls/{room}/index.m3u8");
    // The playlist, for nginx, rewritten atomically every 250 ms.
    let (pl_url, pl_dir) = (playlist_url.clone(), dir.clone());
    tokio::spawn(async move {
        let http = reqwest::Client::new();
        loop {
            if let Ok(r) = http.get(&pl_url).send().await {
                if let Ok(text) = r.text().await {
                    let tmp = pl_dir.join(".index.m3u8.tmp");
                    if std::fs::write(&tmp, text).is_ok() {
                        let _ = std::fs::rename(&tmp, pl_dir.join("index.m3u8"));
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    });
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut follower = Follower::new(reqwest::Client::new(), playlist_url);
    tokio::spawn(async move {
        if let Err(e) = follower.run(tx).await {
            eprintln!("monitor: {e:#}");
        }
    });
    while let Some(ev) = rx.recv().await {
        match ev {
            HlsEvent::Init { uri, data, .. } => std::fs::write(dir.join(uri), data)?,
            HlsEvent::Part(p) => {
                std::fs::write(dir.join(&p.entry.uri), &p.data)?;
                let mut m = state.lock().unwrap();
                m.first_seen.entry(p.entry.id()).or_insert(p.received_at);
                m.latest = Some(m.latest.map_or(p.entry.id(), |l| l.max(p.entry.id())));
                m.recent.push(p.entry.uri.clone());
                let n = m.recent.len();
                if n > RECENT_PARTS {
                    m.recent.drain(..n - RECENT_PARTS);
                }
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Live viewers.

#[derive(Default)]
struct ViewerResult {
    parts: Vec<(PartId, Instant)>,
    requests: u64,
    bytes: u64,
    errors: u64,
    timeouts: u64,
    resyncs: u64,
}

/// What a viewer does with the playlist its blocking reload for `want` returned.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// The part is listed: fetch it, then reload for the one after.
    Fetch(PartId),
    /// Not listed yet: reload for it (the reload waits until it is).
    Wait(PartId),
    /// Neither it nor its segment is in the playlist (fell out of its window): start again at
    /// the live edge.
    Resync,
}

/// The viewer's rule, as hls.js's (`base-playlist-controller.ts`): when the playlist closed
/// `want`'s segment without it, the next segment's first part, fetched at once if the same
/// playlist lists it already, not after one more reload. Looked up in the text, not parsed:
/// thousands of viewers share the client's two threads.
fn next_step(playlist: &str, want: PartId) -> Step {
    let listed = |p: PartId| playlist.contains(&format!("part-{}.{}.m4s", p.msn, p.index));
    if listed(want) {
        return Step::Fetch(want);
    }
    if !playlist.contains(&format!("seg-{}.m4s", want.msn)) {
        return Step::Resync;
    }
    let next = PartId { msn: want.msn + 1, index: 0 };
    if listed(next) {
        Step::Fetch(next)
    } else {
        Step::Wait(next)
    }
}

async fn live_viewer(addr: SocketAddr, i: usize, room: Arc<str>, start: PartId, mut stop: watch::Receiver<bool>) -> ViewerResult {
    let mut r = ViewerResult::default();
    let mut conn = Conn::new(addr, source_ip(i));
    let mut want = start;
    let mut body = Vec::with_capacity(4096);
    loop {
        if *stop.borrow() {
            break;
        }
        let path = format!("/hls/{room}/index.m3u8?_HLS_msn={}&_HLS_part={}", want.msn, want.index);
        let res = tokio::select! {
            res = conn.get(&path, Some(&mut body)) => res,
            _ = stop.changed() => break,
        };
        r.requests += 1;
        let status = match res {
            Ok(res) => {
                r.bytes += res.bytes as u64;
                res.status
            }
            Err(_) => {
                r.errors += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        match status {
            200 => {}
            503 => {
                r.timeouts += 1;
                continue;
            }
            _ => {
                r.errors += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        }
        let text = String::from_utf8_lossy(&body);
        match next_step(&text, want) {
            Step::Fetch(part) => {
                let part_path = format!("/hls/{room}/part-{}.{}.m4s", part.msn, part.index);
                let res = tokio::select! {
                    res = conn.get(&part_path, None) => res,
                    _ = stop.changed() => break,
                };
                r.requests += 1;
                want = part;
                match res {
                    Ok(res) if res.status == 200 => {
                        r.bytes += res.bytes as u64;
                        r.parts.push((part, Instant::now()));
                        want.index += 1;
                    }
                    _ => r.errors += 1,
                }
            }
            Step::Wait(part) => want = part,
            Step::Resync => {
                r.resyncs += 1;
                match roomcast_e2e::hls::playlist::parse(&text) {
                    Ok(pl) => match pl.last_part() {
                        Some(p) => want = pl.successor(p.id()),
                        None => tokio::time::sleep(Duration::from_millis(100)).await,
                    },
                    Err(_) => r.errors += 1,
                }
            }
        }
    }
    r
}

#[derive(Debug, Clone, Serialize)]
struct ServerUse {
    cpu_percent: f64,
    rss_max_mb: f64,
    threads: u64,
}

#[derive(Debug, Clone, Serialize)]
struct LiveResult {
    viewers: usize,
    seconds: f64,
    gateway: ServerUse,
    compositor_cpu_percent: Option<f64>,
    client_cpu_percent: f64,
    /// All cores, every process (other work on the machine included).
    machine_busy_percent: f64,
    parts_published: usize,
    parts_delivered: u64,
    parts_per_viewer_expected: usize,
    /// Viewer × part pairs published in the window that a viewer did not get in it.
    missed_fraction: f64,
    requests_per_s: f64,
    mbytes_per_s: f64,
    delay: Option<Summary>,
    errors: u64,
    timeouts: u64,
    resyncs: u64,
    connected_fraction: f64,
    /// The measured window in UNIX seconds (to match the edge's log).
    #[serde(skip)]
    window_unix: (f64, f64),
}

#[derive(Debug, Clone, Serialize)]
struct ThroughputResult {
    server: String,
    connections: usize,
    seconds: f64,
    requests_per_s: f64,
    mbytes_per_s: f64,
    server_cpu_percent: f64,
    server_rss_max_mb: f64,
    client_cpu_percent: f64,
    machine_busy_percent: f64,
    request_latency: Option<Summary>,
    errors: u64,
}

#[derive(Debug, Clone, Serialize)]
struct EdgeResult {
    live: LiveResult,
    edge: ServerUse,
    /// HLS requests the edge sent to the origin during the run, and the parts published then.
    origin_requests: OriginRequests,
    parts: usize,
}

/// Requests that reached the origin through the edge, by what they asked for.
#[derive(Debug, Clone, Copy, Default, Serialize)]
struct OriginRequests {
    parts: u64,
    /// Blocking playlist reloads (`_HLS_msn`), one object per part published.
    blocking_playlists: u64,
    /// Playlists without `_HLS_msn` (a player's first load; `no-cache`, always passed on).
    plain_playlists: u64,
    other: u64,
}

impl OriginRequests {
    fn total(&self) -> u64 {
        self.parts + self.blocking_playlists + self.plain_playlists + self.other
    }
}

#[derive(Serialize)]
struct Report {
    load_average_1m_start: Option<f64>,
    load_average_1m_end: Option<f64>,
    open_file_limit: u64,
    live: Vec<LiveResult>,
    edge: Vec<EdgeResult>,
    throughput: Vec<ThroughputResult>,
}

/// CPU and memory of a set of processes over a run, sampled every 500 ms. A process that
/// ends during the run counts up to its last sample.
struct Usage {
    first: HashMap<u32, ProcSample>,
    last: HashMap<u32, ProcSample>,
    rss_max: u64,
    threads: u64,
}

impl Usage {
    fn start(pids: Vec<u32>) -> Usage {
        let first: HashMap<u32, ProcSample> = pids.iter().filter_map(|p| Some((*p, ProcSample::read(*p).ok()?))).collect();
        let rss_max = first.values().map(|s| s.rss_bytes).sum();
        Usage { last: first.clone(), first, rss_max, threads: 0 }
    }

    fn sample(&mut self) {
        for (pid, last) in self.last.iter_mut() {
            if let Ok(s) = ProcSample::read(*pid) {
                *last = s;
            }
        }
        self.rss_max = self.rss_max.max(self.last.values().map(|s| s.rss_bytes).sum());
        self.threads = self.last.values().map(|s| s.threads).sum();
    }

    fn finish(mut self) -> ServerUse {
        self.sample();
        let cpu: f64 = self.first.iter().map(|(pid, a)| self.last[pid].cpu_percent_since(a)).sum();
        ServerUse { cpu_percent: cpu, rss_max_mb: self.rss_max as f64 / 1e6, threads: self.threads }
    }
}

/// Busy time of all cores from /proc/stat: (busy, total) jiffies.
fn machine_jiffies() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<u64> = stat.lines().next().unwrap_or("").split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

/// % of the whole machine (all cores) busy between two readings.
fn machine_busy(a: (u64, u64), b: (u64, u64)) -> f64 {
    let total = b.1.saturating_sub(a.1);
    if total == 0 {
        0.0
    } else {
        100.0 * b.0.saturating_sub(a.0) as f64 / total as f64
    }
}

/// Child processes of `pid` (e.g. the compositor of the gateway, nginx's workers).
fn children_of(pid: u32) -> Vec<u32> {
    let mut out = vec![];
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(p) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else { continue };
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else { continue };
        if rest.split_whitespace().nth(1).and_then(|v| v.parse::<u32>().ok()) == Some(pid) {
            out.push(p);
        }
    }
    out
}

async fn live_run(gw: SocketAddr, gw_pid: u32, room: &str, n: usize, seconds: u64, monitor: &Arc<Mutex<Monitor>>) -> Result<LiveResult> {
    let latest = monitor.lock().unwrap().latest.context("the monitor has no part yet")?;
    let start = PartId { msn: latest.msn, index: latest.index + 1 };
    let (stop_tx, stop_rx) = watch::channel(false);
    let room: Arc<str> = Arc::from(room);
    // Ramp up over ~1 s per 2000 viewers.
    let mut tasks = Vec::with_capacity(n);
    let ramp = Duration::from_millis((n as u64 / 2).max(200));
    let t_ramp = Instant::now();
    for i in 0..n {
        tasks.push(tokio::spawn(live_viewer(gw, i, room.clone(), start, stop_rx.clone())));
        if i % 100 == 99 {
            let due = t_ramp + ramp.mul_f64((i + 1) as f64 / n as f64);
            tokio::time::sleep_until(due.into()).await;
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let compositor = children_of(gw_pid);
    let mut gw_use = Usage::start(vec![gw_pid]);
    let comp_use = Usage::start(compositor.clone());
    let client_start = ProcSample::read(std::process::id())?;
    let machine_start = machine_jiffies();
    let window_start = Instant::now();
    let unix_now = || SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
    let window_unix_start = unix_now();
    let window_end = window_start + Duration::from_secs(seconds);
    while Instant::now() < window_end {
        tokio::time::sleep(Duration::from_millis(500)).await;
        gw_use.sample();
    }
    let client_cpu = ProcSample::read(std::process::id())?.cpu_percent_since(&client_start);
    let machine = machine_busy(machine_start, machine_jiffies());
    let gateway = gw_use.finish();
    let compositor_cpu = (!compositor.is_empty()).then(|| comp_use.finish().cpu_percent);
    let _ = stop_tx.send(true);
    let mut results = vec![];
    for t in tasks {
        if let Ok(r) = tokio::time::timeout(Duration::from_secs(10), t).await {
            results.push(r?);
        }
    }
    let window = window_start..window_end;
    // Parts that were first delivered (to anyone) inside the window.
    let first_seen: HashMap<PartId, Instant> = {
        let m = monitor.lock().unwrap();
        m.first_seen.clone()
    };
    let mut earliest: HashMap<PartId, Instant> = first_seen;
    for r in &results {
        for (p, t) in &r.parts {
            earliest.entry(*p).and_modify(|e| *e = (*e).min(*t)).or_insert(*t);
        }
    }
    let published: Vec<PartId> = earliest.iter().filter(|(_, t)| window.contains(*t)).map(|(p, _)| *p).collect();
    let mut delays = vec![];
    let mut delivered = 0u64;
    let mut connected = 0usize;
    for r in &results {
        if !r.parts.is_empty() {
            connected += 1;
        }
        for (p, t) in &r.parts {
            if window.contains(t) {
                delivered += 1;
            }
            if let Some(e) = earliest.get(p) {
                if window.contains(e) {
                    delays.push(t.saturating_duration_since(*e));
                }
            }
        }
    }
    if std::env::var_os("HLS_LOAD_DEBUG").is_some() {
        let mut ps = published.clone();
        ps.sort();
        for p in ps {
            let got = results.iter().filter(|r| r.parts.iter().any(|(q, _)| *q == p)).count();
            let mon = monitor.lock().unwrap().first_seen.get(&p).map(|t| t.saturating_duration_since(window_start));
            eprintln!(
                "part {p}: {got}/{n} viewers; monitor at {mon:?}, earliest {:?}",
                earliest[&p].saturating_duration_since(window_start)
            );
        }
    }
    let expected = published.len() * n;
    let secs = seconds as f64;
    let bytes: u64 = results.iter().map(|r| r.bytes).sum();
    let requests: u64 = results.iter().map(|r| r.requests).sum();
    Ok(LiveResult {
        viewers: n,
        seconds: secs,
        gateway,
        compositor_cpu_percent: compositor_cpu,
        client_cpu_percent: client_cpu,
        machine_busy_percent: machine,
        parts_published: published.len(),
        parts_delivered: delivered,
        parts_per_viewer_expected: published.len(),
        missed_fraction: if expected == 0 { 0.0 } else { 1.0 - (delays.len() as f64 / expected as f64) },
        // Over the whole run (ramp included), as an indication.
        requests_per_s: requests as f64 / (secs + 2.0 + ramp.as_secs_f64()),
        mbytes_per_s: bytes as f64 / 1e6 / (secs + 2.0 + ramp.as_secs_f64()),
        delay: Summary::of(&delays),
        errors: results.iter().map(|r| r.errors).sum(),
        timeouts: results.iter().map(|r| r.timeouts).sum(),
        resyncs: results.iter().map(|r| r.resyncs).sum(),
        connected_fraction: connected as f64 / n as f64,
        window_unix: (window_unix_start, window_unix_start + seconds as f64),
    })
}

// ---------------------------------------------------------------------------------------
// Closed-loop throughput.

async fn throughput_run(
    server: &str,
    addr: SocketAddr,
    pids: Vec<u32>,
    room: &str,
    n: usize,
    seconds: u64,
    monitor: &Arc<Mutex<Monitor>>,
) -> Result<ThroughputResult> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let requests = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let recent = Arc::new(Mutex::new(monitor.lock().unwrap().recent.clone()));
    ensure!(!recent.lock().unwrap().is_empty(), "no parts to fetch");
    // Keep the list of parts fresh (both servers have the newest ones).
    let (m, r) = (monitor.clone(), recent.clone());
    let refresher = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let now = m.lock().unwrap().recent.clone();
            *r.lock().unwrap() = now;
        }
    });
    let measuring = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = vec![];
    for i in 0..n {
        let (mut stop, room) = (stop_rx.clone(), room.to_owned());
        let (requests, bytes, errors, recent, measuring) =
            (requests.clone(), bytes.clone(), errors.clone(), recent.clone(), measuring.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::new(addr, source_ip(i + 7));
            let mut lat: Vec<u32> = vec![];
            let mut k = i;
            let playlist = format!("/hls/{room}/index.m3u8");
            loop {
                k += 1;
                let path = if k % 2 == 0 {
                    playlist.clone()
                } else {
                    let r = recent.lock().unwrap();
                    format!("/hls/{room}/{}", r[(k / 2) % r.len()])
                };
                let t = Instant::now();
                let res = tokio::select! {
                    res = conn.get(&path, None) => res,
                    _ = stop.changed() => break,
                };
                let counting = measuring.load(Ordering::Relaxed);
                match res {
                    Ok(res) if res.status == 200 => {
                        if counting {
                            requests.fetch_add(1, Ordering::Relaxed);
                            bytes.fetch_add(res.bytes as u64, Ordering::Relaxed);
                            lat.push(t.elapsed().as_micros() as u32);
                        }
                    }
                    _ => {
                        if counting {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
            lat
        }));
        if i % 200 == 199 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut use_ = Usage::start(pids);
    let client_start = ProcSample::read(std::process::id())?;
    let machine_start = machine_jiffies();
    measuring.store(true, Ordering::Relaxed);
    let t0 = Instant::now();
    let end = t0 + Duration::from_secs(seconds);
    while Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(500)).await;
        use_.sample();
    }
    measuring.store(false, Ordering::Relaxed);
    let elapsed = t0.elapsed().as_secs_f64();
    let client_cpu = ProcSample::read(std::process::id())?.cpu_percent_since(&client_start);
    let machine = machine_busy(machine_start, machine_jiffies());
    let server_use = use_.finish();
    let _ = stop_tx.send(true);
    refresher.abort();
    let mut lat: Vec<Duration> = vec![];
    for t in tasks {
        if let Ok(Ok(l)) = tokio::time::timeout(Duration::from_secs(10), t).await {
            lat.extend(l.into_iter().map(|us| Duration::from_micros(u64::from(us))));
        }
    }
    Ok(ThroughputResult {
        server: server.to_owned(),
        connections: n,
        seconds: elapsed,
        requests_per_s: requests.load(Ordering::Relaxed) as f64 / elapsed,
        mbytes_per_s: bytes.load(Ordering::Relaxed) as f64 / 1e6 / elapsed,
        server_cpu_percent: server_use.cpu_percent,
        server_rss_max_mb: server_use.rss_max_mb,
        client_cpu_percent: client_cpu,
        machine_busy_percent: machine,
        request_latency: Summary::of(&lat),
        errors: errors.load(Ordering::Relaxed),
    })
}

// ---------------------------------------------------------------------------------------
// nginx.

/// nginx's path; installed with apt-get when missing (root only).
fn ensure_nginx() -> Result<PathBuf> {
    if let Some(p) = nginx::binary() {
        return Ok(p);
    }
    eprintln!("nginx is missing: apt-get install -y nginx-light || nginx");
    let ok = std::process::Command::new("sh")
        .args(["-c", "DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nginx-light || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nginx)"])
        .status()?
        .success();
    ensure!(ok, "could not install nginx (run as root, or install it)");
    nginx::binary().context("nginx is still missing after apt-get")
}

/// Big enough for tens of thousands of client connections.
const NGINX_MAIN: &str = "worker_rlimit_nofile 200000;\nevents { worker_connections 40000; multi_accept on; }";

/// nginx serving the monitor's mirror of the stream from disk (the throughput baseline).
fn start_nginx(root: &Path, workers: usize) -> Result<Nginx> {
    ensure_nginx()?;
    let dir = std::env::temp_dir().join(format!("hls-load-nginx-{}", std::process::id()));
    let http = format!(
        "  access_log off;
  sendfile on; tcp_nopush on; tcp_nodelay on;
  keepalive_timeout 120s; keepalive_requests 10000000;
  types {{ application/vnd.apple.mpegurl m3u8; video/mp4 mp4; video/iso.segment m4s; }}
  server {{
    listen {{listen}} backlog=4096;
    root {root};
    location ~ \\.m3u8$ {{ add_header Cache-Control no-cache; }}
  }}",
        root = root.display(),
    );
    nginx::start(&dir, &format!("worker_processes {workers};\n{NGINX_MAIN}"), &http)
}

/// nginx with the shipped edge config in front of `origin`: one worker, its cache and logs in
/// a scratch directory, an access log line per request with what reached the origin.
fn start_edge(origin: SocketAddr) -> Result<(Nginx, PathBuf)> {
    ensure_nginx()?;
    let dir = std::env::temp_dir().join(format!("hls-load-edge-{}", std::process::id()));
    let http = format!(
        "  log_format edge '$msec $upstream_cache_status $upstream_addr $request_uri';
  access_log {{dir}}/logs/access.log edge buffer=256k flush=1s;
  keepalive_timeout 120s; keepalive_requests 10000000;
{}",
        nginx::edge_config(origin, &dir.join("cache"))?
    );
    let edge = nginx::start(&dir, &format!("worker_processes 1;\n{NGINX_MAIN}"), &http)?;
    Ok((edge, dir.join("logs/access.log")))
}

/// Requests in the edge's access log that went to the origin (everything but cache hits) and
/// ended inside `window` (UNIX seconds). Not after it: when the viewers hang up, nginx gives up
/// the origin requests they waited on, and each waiter in turn asks the origin again.
fn origin_requests_logged(log: &Path, window: (f64, f64)) -> OriginRequests {
    let mut r = OriginRequests::default();
    for l in std::fs::read_to_string(log).unwrap_or_default().lines() {
        let mut f = l.split(' ');
        let (Some(at), Some(upstream), Some(uri)) = (f.next().and_then(|t| t.parse::<f64>().ok()), f.nth(1), f.next()) else { continue };
        if upstream == "-" || at < window.0 || at > window.1 {
            continue;
        }
        if uri.contains("/part-") {
            r.parts += 1;
        } else if uri.contains(".m3u8") && uri.contains("_HLS_msn=") {
            r.blocking_playlists += 1;
        } else if uri.contains(".m3u8") {
            r.plain_playlists += 1;
        } else {
            r.other += 1;
        }
    }
    r
}

// ---------------------------------------------------------------------------------------

fn main() -> Result<()> {
    match std::env::args().nth(1).as_deref() {
        Some("serve") => return tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(serve_child()),
        Some("publish") => return tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(publish_child()),
        _ => {}
    }
    raise_nofile(200_000);
    // Two runtime threads for the clients (the machine has two cores; the server gets its own).
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?.block_on(bench_main())
}

async fn bench_main() -> Result<()> {
    let args = args()?;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
    let load_start = bench::load_average();

    let dir = std::env::temp_dir().join(format!("hls-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mirror = dir.join("www");
    std::fs::create_dir_all(&mirror)?;
    let compositor = roomcast_e2e::compositor_bin()?;
    let mut gw = tokio::process::Command::new(std::env::current_exe()?)
        .args(["serve", "--data-dir", &dir.join("data").to_string_lossy(), "--compositor", &compositor.to_string_lossy()])
        .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let gw_pid = gw.id().context("gateway pid")?;
    let mut lines = BufReader::new(gw.stdout.take().context("stdout")?).lines();
    let addr: SocketAddr = loop {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await??.context("the gateway exited")?;
        if let Some(a) = line.strip_prefix("LISTENING ") {
            break a.trim().parse()?;
        }
    };
    let base = format!("http://{addr}");
    eprintln!("gateway pid {gw_pid} on {base}");

    let http = reqwest::Client::new();
    let room = signaling::create_room(&http, &base, "hls-load").await?;
    let mut publishers = tokio::process::Command::new(std::env::current_exe()?)
        .args(["publish", "--base", &base, "--room", &room])
        .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let mut plines = BufReader::new(publishers.stdout.take().context("stdout")?).lines();
    while tokio::time::timeout(Duration::from_secs(30), plines.next_line()).await??.context("the publishers exited")? != "JOINED" {}
    let r = http.post(format!("{base}/api/rooms/{room}/broadcast")).send().await?;
    ensure!(r.status().as_u16() == 202, "POST broadcast: {}", r.status());
    let monitor = Arc::new(Mutex::new(Monitor::default()));
    tokio::spawn(run_monitor(base.clone(), room.clone(), mirror.clone(), monitor.clone()));
    let t0 = Instant::now();
    while monitor.lock().unwrap().recent.len() < RECENT_PARTS {
        ensure!(t0.elapsed() < Duration::from_secs(60), "the broadcast did not go live");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("live; measuring");
    let nginx = if args.nginx { Some(start_nginx(&mirror, 2)?) } else { None };
    let nginx_pids = nginx.as_ref().map(|n| {
        let mut p = vec![n.child.id()];
        p.extend(children_of(n.child.id()));
        p
    });

    let mut report = Report {
        load_average_1m_start: load_start,
        load_average_1m_end: None,
        open_file_limit: open_file_limit(),
        live: vec![],
        edge: vec![],
        throughput: vec![],
    };
    let edge = if args.edge { Some(start_edge(addr)?) } else { None };
    let edge_pids = edge.as_ref().map(|(n, _)| {
        let mut p = vec![n.child.id()];
        p.extend(children_of(n.child.id()));
        p
    });
    for &n in &args.viewers {
        eprintln!("--- {n} viewers: live LL-HLS ({} s)", args.seconds);
        let live = live_run(addr, gw_pid, &room, n, args.seconds, &monitor).await?;
        print_live(&live);
        report.live.push(live);
        tokio::time::sleep(Duration::from_secs(2)).await;
        if let (Some((ng, log)), Some(pids)) = (&edge, &edge_pids) {
            eprintln!("--- {n} viewers: live LL-HLS through the nginx edge ({} s)", args.seconds);
            let edge_use = Usage::start(pids.clone());
            let live = live_run(ng.addr, gw_pid, &room, n, args.seconds, &monitor).await?;
            let edge_cpu = edge_use.finish();
            tokio::time::sleep(Duration::from_millis(1500)).await; // the log's flush
            let origin_requests = origin_requests_logged(log, live.window_unix);
            let parts = live.parts_published;
            print_live(&live);
            eprintln!("    edge: {:.0}% CPU; {origin_requests:?} reached the origin for {parts} parts", edge_cpu.cpu_percent);
            report.edge.push(EdgeResult { live, edge: edge_cpu, origin_requests, parts });
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        eprintln!("--- {n} connections: throughput, gateway ({} s)", args.throughput_seconds);
        let t = throughput_run("gateway", addr, vec![gw_pid], &room, n, args.throughput_seconds, &monitor).await?;
        print_throughput(&t);
        report.throughput.push(t);
        if let (Some(ng), Some(pids)) = (&nginx, &nginx_pids) {
            tokio::time::sleep(Duration::from_secs(2)).await;
            eprintln!("--- {n} connections: throughput, nginx ({} s)", args.throughput_seconds);
            let t = throughput_run("nginx", ng.addr, pids.clone(), &room, n, args.throughput_seconds, &monitor).await?;
            print_throughput(&t);
            report.throughput.push(t);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    report.load_average_1m_end = bench::load_average();

    println!("\n== live LL-HLS viewers (blocking reload + part), gateway in its own process ==");
    println!("viewers  gw CPU%  gw RSS MB  compositor CPU%  client CPU%  machine busy  parts/viewer  missed  delay p50 / p99 / max (ms)  errors  timeouts  resyncs");
    for l in &report.live {
        let d = l.delay.map(|d| format!("{:>6.0} / {:>6.0} / {:>6.0}", d.p50_ms, d.p99_ms, d.max_ms)).unwrap_or_else(|| "-".into());
        println!(
            "{:>7}  {:>6.0}  {:>9.0}  {:>15.0}  {:>11.0}  {:>11.0}%  {:>12}  {:>5.1}%  {:>26}  {:>6}  {:>8}  {:>7}",
            l.viewers,
            l.gateway.cpu_percent,
            l.gateway.rss_max_mb,
            l.compositor_cpu_percent.unwrap_or(0.0),
            l.client_cpu_percent,
            l.machine_busy_percent,
            l.parts_per_viewer_expected,
            l.missed_fraction * 100.0,
            d,
            l.errors,
            l.timeouts,
            l.resyncs
        );
    }
    if !report.edge.is_empty() {
        println!("\n== live LL-HLS viewers through the nginx edge (deploy/nginx/roomcast-edge.conf, 1 worker) ==");
        println!("viewers  origin CPU%  edge CPU%  origin requests / part (part + blocking reload + plain playlist + other)  missed  delay p50 / p99 / max (ms)  errors  timeouts");
        for e in &report.edge {
            let l = &e.live;
            let d = l.delay.map(|d| format!("{:>6.0} / {:>6.0} / {:>6.0}", d.p50_ms, d.p99_ms, d.max_ms)).unwrap_or_else(|| "-".into());
            println!(
                "{:>7}  {:>11.0}  {:>9.0}  {:>22}  {:>5.1}%  {:>26}  {:>6}  {:>8}",
                l.viewers,
                l.gateway.cpu_percent,
                e.edge.cpu_percent,
                {
                    let per = |n: u64| n as f64 / e.parts.max(1) as f64;
                    let o = e.origin_requests;
                    format!(
                        "{:.2} ({:.2} + {:.2} + {:.2} + {:.2})",
                        per(o.total()),
                        per(o.parts),
                        per(o.blocking_playlists),
                        per(o.plain_playlists),
                        per(o.other)
                    )
                },
                l.missed_fraction * 100.0,
                d,
                l.errors,
                l.timeouts
            );
        }
    }
    println!("\n== closed-loop throughput (playlist + one of the newest parts, repeated) ==");
    println!("server    conns    req/s     MB/s  server CPU%  CPU µs/req  server RSS MB  client CPU%  machine busy  latency p50 / p99 (ms)  errors");
    for t in &report.throughput {
        let d = t.request_latency.map(|d| format!("{:>6.1} / {:>7.1}", d.p50_ms, d.p99_ms)).unwrap_or_else(|| "-".into());
        println!(
            "{:<8}  {:>5}  {:>7.0}  {:>7.1}  {:>11.0}  {:>10.1}  {:>13.0}  {:>11.0}  {:>11.0}%  {:>22}  {:>6}",
            t.server,
            t.connections,
            t.requests_per_s,
            t.mbytes_per_s,
            t.server_cpu_percent,
            t.server_cpu_percent * 1e4 / t.requests_per_s.max(1.0),
            t.server_rss_max_mb,
            t.client_cpu_percent,
            t.machine_busy_percent,
            d,
            t.errors
        );
    }
    println!(
        "load average (1 min): {:?} at start, {:?} at the end; open-file limit {}",
        report.load_average_1m_start, report.load_average_1m_end, report.open_file_limit
    );
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
        println!("wrote {}", path.display());
    }

    drop(nginx);
    drop(edge);
    let _ = http.delete(format!("{base}/api/rooms/{room}/broadcast")).send().await;
    drop(publishers.stdin.take());
    if tokio::time::timeout(Duration::from_secs(10), publishers.wait()).await.is_err() {
        let _ = publishers.kill().await;
    }
    drop(gw.stdin.take());
    if tokio::time::timeout(Duration::from_secs(10), gw.wait()).await.is_err() {
        let _ = gw.kill().await;
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn print_live(l: &LiveResult) {
    eprintln!(
        "    gateway {:.0}% CPU, {:.0} MB; {} parts published, {:.1}% missed; delay {}; errors {} timeouts {} resyncs {}; client {:.0}% CPU",
        l.gateway.cpu_percent,
        l.gateway.rss_max_mb,
        l.parts_published,
        l.missed_fraction * 100.0,
        l.delay.map(|d| d.to_string()).unwrap_or_default(),
        l.errors,
        l.timeouts,
        l.resyncs,
        l.client_cpu_percent
    );
}

fn print_throughput(t: &ThroughputResult) {
    eprintln!(
        "    {}: {:.0} req/s, {:.1} MB/s, server {:.0}% CPU, client {:.0}% CPU, errors {}",
        t.server, t.requests_per_s, t.mbytes_per_s, t.server_cpu_percent, t.client_cpu_percent, t.errors
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(msn: u64, index: u32) -> PartId {
        PartId { msn, index }
    }

    #[test]
    fn a_listed_part_is_fetched() {
        let pl = "#EXTINF:1.0,\nseg-4.m4s\n#EXT-X-PART:DURATION=0.2,URI=\"part-5.0.m4s\"\n#EXT-X-PART:DURATION=0.2,URI=\"part-5.1.m4s\"\n";
        assert_eq!(next_step(pl, id(5, 1)), Step::Fetch(id(5, 1)));
    }

    #[test]
    fn past_a_closed_segment_the_next_segments_first_part_without_another_reload() {
        // Asked for 4.5; segment 4 closed with 5 parts and 5.0 is out: fetch 5.0 now.
        let pl = "#EXTINF:1.0,\nseg-4.m4s\n#EXT-X-PART:DURATION=0.2,URI=\"part-5.0.m4s\"\n";
        assert_eq!(next_step(pl, id(4, 5)), Step::Fetch(id(5, 0)));
        // Segment 4 closed, 5.0 not out yet: wait for it.
        assert_eq!(next_step("#EXTINF:1.0,\nseg-4.m4s\n", id(4, 5)), Step::Wait(id(5, 0)));
    }

    #[test]
    fn a_part_out_of_the_window_starts_again_at_the_live_edge() {
        let pl = "#EXTINF:1.0,\nseg-9.m4s\n#EXT-X-PART:DURATION=0.2,URI=\"part-10.0.m4s\"\n";
        assert_eq!(next_step(pl, id(2, 3)), Step::Resync);
    }
}
