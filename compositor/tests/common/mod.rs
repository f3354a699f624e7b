//! Shared by the integration tests: spawn the real binary, talk to it, collect its output.
#![allow(dead_code)]

use std::fs::File;
use std::io::{BufReader, Write};
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use roomcast_compositor::output::read_frame;
use serde_json::Value;

pub const W: u32 = 1280;
pub const H: u32 = 720;
pub const FPS: u32 = 15;

pub struct Received {
    pub header: Value,
    pub body: Vec<u8>,
    pub at: Instant,
}

pub struct Compositor {
    child: Child,
    stdin: Option<ChildStdin>,
    items: Arc<Mutex<Vec<Received>>>,
    reader: Option<thread::JoinHandle<()>>,
    pub log: PathBuf,
}

impl Compositor {
    pub fn start(dir: &Path) -> Compositor {
        Compositor::start_with(dir, &[])
    }

    /// `extra` arguments replace the defaults of the same name.
    pub fn start_with(dir: &Path, extra: &[&str]) -> Compositor {
        let log = dir.join("compositor.log");
        // defaults, unless `extra` sets them
        let (w, h, fps) = (W.to_string(), H.to_string(), FPS.to_string());
        let defaults = [
            ("--width", w.as_str()),
            ("--height", h.as_str()),
            ("--fps", fps.as_str()),
            ("--part-ms", "333"),
            ("--segment-ms", "1000"),
            ("--preset", "ultrafast"),
            ("--stats-interval-ms", "1000"),
        ];
        let mut args: Vec<&str> = Vec::new();
        for (k, v) in defaults {
            if !extra.contains(&k) {
                args.extend([k, v]);
            }
        }
        let mut child = Command::new(env!("CARGO_BIN_EXE_roomcast-compositor"))
            .args(&args)
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .expect("spawn roomcast-compositor");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().unwrap();
        let items = Arc::new(Mutex::new(Vec::new()));
        let sink = items.clone();
        let reader = thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            while let Ok(Some((header, body))) = read_frame(&mut r) {
                sink.lock().unwrap().push(Received { header, body, at: Instant::now() });
            }
        });
        Compositor { child, stdin, items, reader: Some(reader), log }
    }

    /// The compositor's process id (to freeze it, as a starved host does).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(line.as_bytes()).unwrap();
        stdin.write_all(b"\n").unwrap();
        stdin.flush().unwrap();
    }

    pub fn wait_for(&self, what: &str, timeout: Duration, pred: impl Fn(&[Received]) -> bool) {
        self.wait_find(what, timeout, |items| pred(items).then_some(()))
    }

    /// Polls the items until `find` returns something (panics after `timeout`).
    pub fn wait_find<R>(&self, what: &str, timeout: Duration, mut find: impl FnMut(&[Received]) -> Option<R>) -> R {
        let t0 = Instant::now();
        loop {
            if let Some(found) = find(&self.items.lock().unwrap()) {
                return found;
            }
            if t0.elapsed() >= timeout {
                panic!("timed out after {timeout:?} waiting for {what}; log:\n{}", self.log_text());
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// How many items have been received so far (an index into the item list).
    pub fn count(&self) -> usize {
        self.items.lock().unwrap().len()
    }

    /// Runs `f` over the items received so far (keep it short: the reader waits meanwhile).
    pub fn with_items<R>(&self, f: impl FnOnce(&[Received]) -> R) -> R {
        f(&self.items.lock().unwrap())
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn finish(mut self) -> (Vec<Received>, i32) {
        self.send(r#"{"op":"shutdown"}"#);
        drop(self.stdin.take());
        let t0 = Instant::now();
        let code = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status.code().unwrap_or(-1);
            }
            assert!(t0.elapsed() < Duration::from_secs(10), "compositor did not exit");
            thread::sleep(Duration::from_millis(50));
        };
        self.reader.take().unwrap().join().unwrap();
        let items = std::mem::take(&mut *self.items.lock().unwrap());
        (items, code)
    }
}

impl Drop for Compositor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A UDP port on 127.0.0.1 held open by the test until `release`, so that nothing else on a
/// busy machine (another test, the gateway's port allocator, an ephemeral bind) can take it
/// in the meantime. Release it right before the line that makes the compositor bind it: the
/// window left is the few milliseconds the compositor needs to get to that line.
pub struct ReservedPort(UdpSocket);

impl ReservedPort {
    pub fn new() -> ReservedPort {
        ReservedPort(UdpSocket::bind("127.0.0.1:0").expect("bind a probe socket"))
    }

    pub fn port(&self) -> u16 {
        self.0.local_addr().unwrap().port()
    }

    /// Closes the probe socket and hands out its port.
    pub fn release(self) -> u16 {
        self.port()
    }
}

pub fn parts(items: &[Received]) -> impl Iterator<Item = &Received> {
    items.iter().filter(|r| r.header["kind"] == "part")
}

pub fn events(items: &[Received]) -> Vec<&Value> {
    items.iter().filter(|r| r.header["kind"] == "event").map(|r| &r.header).collect()
}

pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("roomcast-compositor-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The parts follow each other on the media timeline: each (but the last, cut short by the
/// shutdown) lasts one part (`--part-ms` 333, give or take a frame), and each starts where the
/// previous one ended (within a frame). This is what "the output never stops" means for a
/// player; wall-clock arrival times only add the test machine's scheduling noise.
pub fn check_parts_continuous(parts: &[&Received]) {
    let frame_ns = 1_000_000_000 / FPS as i64;
    for p in &parts[..parts.len().saturating_sub(1)] {
        let d = p.header["duration_ns"].as_i64().unwrap();
        assert!((333_000_000 - frame_ns..=333_333_334 + frame_ns).contains(&d), "irregular part duration {d}: {}", p.header);
        assert!(!p.body.is_empty(), "empty part: {}", p.header);
    }
    for w in parts.windows(2) {
        let (a, b) = (&w[0].header, &w[1].header);
        let end = a["pts_ns"].as_i64().unwrap() + a["duration_ns"].as_i64().unwrap();
        let jump = b["pts_ns"].as_i64().unwrap() - end;
        assert!(jump.abs() <= frame_ns, "media timeline jumps by {jump} ns between parts {a} and {b}");
    }
}
