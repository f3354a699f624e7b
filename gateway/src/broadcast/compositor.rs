//! The `roomcast-compositor` child process: control lines to its stdin, framed CMAF items
//! from its stdout (`u32 BE header length, JSON header, u32 BE body length, body`; see
//! compositor/PROTOCOL.md). Its stderr (logs) is passed through.

use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use bytes::Bytes;
use compositor_protocol::frame::{check_body_len, check_header_len, Header};
use compositor_protocol::Event;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdout, Command};
use tokio::sync::mpsc;

#[derive(Debug, Clone)]
pub struct OutputFormat {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub part: Duration,
    pub segment: Duration,
}

/// One item of the compositor's output.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Init(Bytes),
    /// `composed_at`: when the part's last frame was composed (the compositor reports the
    /// part's age as it writes it), for the part publish delay.
    Part {
        data: Bytes,
        independent: bool,
        segment_start: bool,
        duration: Duration,
        composed_at: Option<Instant>,
    },
    Event(Event),
}

/// Turns one framed header + body, read at `received`, into an item (pure; unit-tested).
pub fn decode_item(header: &[u8], body: Bytes, received: Instant) -> Result<Item, String> {
    match serde_json::from_slice::<Header>(header).map_err(|e| format!("bad header: {e}"))? {
        Header::Init => Ok(Item::Init(body)),
        Header::Part { independent, segment_start, duration_ns, age_us, .. } => Ok(Item::Part {
            data: body,
            independent,
            segment_start,
            duration: Duration::from_nanos(duration_ns),
            composed_at: age_us.and_then(|us| received.checked_sub(Duration::from_micros(us))),
        }),
        Header::Event => Event::from_header(header).map(Item::Event).map_err(|e| format!("bad event: {e}")),
    }
}

/// What a compositor event asks of the SFU for one of this run's legs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LegAction {
    /// `applied` add_track: the ports are bound, start the leg.
    Attach { producer_id: String },
    /// `layout`: the track is drawn this many pixels high (its leg takes the layer that fits).
    Tile { producer_id: String, height: u32 },
    /// `keyframe_request`: the decoder lacks a picture (it has no RTCP path to the publisher).
    Keyframe { producer_id: String },
}

/// The leg actions in a compositor event, for tracks `known` to this run (pure; unit-tested).
pub fn leg_actions(ev: &Event, known: impl Fn(&str) -> bool) -> Vec<LegAction> {
    let known_id = |id: &str| known(id).then(|| id.to_owned());
    match ev {
        Event::Applied { op, id: Some(id) } if op == "add_track" => {
            known_id(id).map(|producer_id| LegAction::Attach { producer_id }).into_iter().collect()
        }
        Event::KeyframeRequest { track_id, .. } => {
            known_id(track_id).map(|producer_id| LegAction::Keyframe { producer_id }).into_iter().collect()
        }
        Event::Layout { tiles } => tiles
            .iter()
            .filter(|(id, _)| known(id))
            .map(|(id, tile)| LegAction::Tile { producer_id: id.clone(), height: tile.height })
            .collect(),
        _ => Vec::new(),
    }
}

pub struct Compositor {
    /// None: an in-memory compositor, whose other end is a test's ([`Compositor::in_memory`]).
    child: Option<Child>,
    stdin: Box<dyn AsyncWrite + Send + Unpin>,
    /// Items read by a task of their own: the supervisor waits on this in a `select!` next to
    /// other work, and a channel receive is cancel-safe where a half-read frame is not (a
    /// dropped read would lose bytes and desync the framing).
    items: mpsc::Receiver<std::io::Result<Option<Item>>>,
    /// The process's stdout (read by the items task), to see whether output waits unread.
    stdout_fd: Option<RawFd>,
}

/// How many items may wait unread (parts are ~1/3 s each; events are small).
const ITEM_QUEUE: usize = 64;

impl Compositor {
    /// Starts a compositor in standby (`--standby`): GStreamer loaded and its pipeline built,
    /// it waits for [`Compositor::start`] (see `spares`).
    pub fn spawn(bin: &Path, format: &OutputFormat) -> std::io::Result<Self> {
        let mut child = Command::new(bin)
            .arg("--standby")
            .arg("--width")
            .arg(format.width.to_string())
            .arg("--height")
            .arg(format.height.to_string())
            .arg("--fps")
            .arg(format.fps.to_string())
            .arg("--part-ms")
            .arg(format.part.as_millis().to_string())
            .arg("--segment-ms")
            .arg(format.segment.as_millis().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()?;
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let stdout_fd = Some(stdout.as_raw_fd());
        let (tx, items) = mpsc::channel(ITEM_QUEUE);
        tokio::spawn(read_items(BufReader::with_capacity(256 * 1024, stdout), tx));
        Ok(Self { child: Some(child), stdin: Box::new(stdin), items, stdout_fd })
    }

    /// A compositor without a process: the test on the other end reads its control lines
    /// and writes its items (the supervisor's loop driven in simulated time).
    #[cfg(test)]
    pub fn in_memory() -> (Self, Remote) {
        let (ours, theirs) = tokio::io::duplex(64 * 1024);
        let (items_tx, items) = mpsc::channel(ITEM_QUEUE);
        let remote = Remote { lines: tokio::io::AsyncBufReadExt::lines(BufReader::new(theirs)), items: items_tx };
        (Self { child: None, stdin: Box::new(ours), items, stdout_fd: None }, remote)
    }

    /// Ends the standby: the compositor runs for `room` from now on.
    pub async fn start(&mut self, room: &str) -> std::io::Result<()> {
        self.send(&compositor_protocol::Command::Start { room: room.to_owned() }).await
    }

    /// The process has not exited (a spare that died waiting is not handed out).
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_none_or(|c| matches!(c.try_wait(), Ok(None)))
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref()?.id()
    }

    pub async fn send(&mut self, command: &compositor_protocol::Command) -> std::io::Result<()> {
        let mut line = command.to_line().into_bytes();
        line.push(b'\n');
        self.stdin.write_all(&line).await?;
        self.stdin.flush().await
    }

    /// Whether output the process wrote waits unread in its stdout pipe: then it is blocked on
    /// us (the gateway was itself descheduled, so the items task has not read it yet), not
    /// stuck, whatever its CPU time says. False for an in-memory compositor, or once the
    /// items task has ended (the pipe is closed then, and its number may have been reused).
    pub fn output_waiting(&self) -> bool {
        let Some(fd) = self.stdout_fd.filter(|_| !self.items.is_closed()) else { return false };
        let mut unread: libc::c_int = 0;
        // SAFETY: FIONREAD writes one c_int through a pointer to a live local; the fd is the
        // child's stdout, open while the items task holds it (checked just above).
        let ok = unsafe { libc::ioctl(fd, libc::FIONREAD, &mut unread as *mut libc::c_int) } == 0;
        ok && unread > 0
    }

    /// The next output item; `Ok(None)` when the process closed its output. Cancel-safe.
    pub async fn next_item(&mut self) -> std::io::Result<Option<Item>> {
        self.items.recv().await.unwrap_or(Ok(None))
    }

    /// Asks for a clean stop, then kills the process if it does not exit in time.
    pub async fn shutdown(mut self) {
        let _ = self.send(&compositor_protocol::Command::Shutdown).await;
        drop(self.stdin);
        let Some(mut child) = self.child else { return };
        if tokio::time::timeout(Duration::from_secs(3), child.wait()).await.is_err() {
            let _ = child.kill().await;
        }
    }

    pub async fn kill(mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill().await;
        }
    }
}

/// The test's end of an in-memory compositor: the control lines it was sent (ending when the
/// supervisor lets it go), and where its output items go.
#[cfg(test)]
pub struct Remote {
    pub lines: tokio::io::Lines<BufReader<tokio::io::DuplexStream>>,
    pub items: mpsc::Sender<std::io::Result<Option<Item>>>,
}

/// Reads items until the output ends or fails (the last thing sent says which), or until
/// nobody listens any more.
async fn read_items(mut stdout: BufReader<ChildStdout>, tx: mpsc::Sender<std::io::Result<Option<Item>>>) {
    loop {
        let item = read_item(&mut stdout).await;
        let last = !matches!(item, Ok(Some(_)));
        if tx.send(item).await.is_err() || last {
            return;
        }
    }
}

/// One framed item from the stream; `Ok(None)` at a clean end.
async fn read_item(stdout: &mut BufReader<ChildStdout>) -> std::io::Result<Option<Item>> {
    let header_len = match stdout.read_u32().await {
        Ok(n) => n,
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut header = vec![0u8; check_header_len(header_len).map_err(|e| invalid(e.to_string()))?];
    stdout.read_exact(&mut header).await?;
    let body_len = stdout.read_u32().await?;
    let mut body = vec![0u8; check_body_len(body_len).map_err(|e| invalid(e.to_string()))?];
    stdout.read_exact(&mut body).await?;
    decode_item(&header, Bytes::from(body), Instant::now()).map(Some).map_err(invalid)
}

fn invalid(msg: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, format!("compositor output: {msg}"))
}

/// Where the compositor binary is: configured, or next to this executable (or one level up,
/// for test binaries in target/*/deps).
pub fn locate(configured: Option<&Path>) -> PathBuf {
    if let Some(p) = configured {
        return p.to_path_buf();
    }
    let name = "roomcast-compositor";
    if let Ok(exe) = std::env::current_exe() {
        for dir in exe.ancestors().skip(1).take(2) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_each_kind_and_rejects_garbage() {
        let now = Instant::now();
        assert_eq!(decode_item(br#"{"kind":"init"}"#, Bytes::from_static(b"ftyp"), now).unwrap(), Item::Init(Bytes::from_static(b"ftyp")));
        let part = decode_item(
            br#"{"kind":"part","independent":true,"segment_start":true,"pts_ns":5,"duration_ns":333000000}"#,
            Bytes::new(),
            now,
        )
        .unwrap();
        assert_eq!(
            part,
            Item::Part {
                data: Bytes::new(),
                independent: true,
                segment_start: true,
                duration: Duration::from_millis(333),
                composed_at: None
            }
        );
        // The part's age as written: its last frame was composed that long before it was read.
        let aged = decode_item(
            br#"{"kind":"part","independent":false,"segment_start":false,"pts_ns":5,"duration_ns":333000000,"age_us":45000}"#,
            Bytes::new(),
            now,
        )
        .unwrap();
        assert!(matches!(aged, Item::Part { composed_at: Some(at), .. } if now - at == Duration::from_millis(45)), "{aged:?}");
        assert!(matches!(
            decode_item(br#"{"kind":"event","event":"stats","fps_out":30}"#, Bytes::new(), now).unwrap(),
            Item::Event(Event::Stats(_))
        ));
        assert!(
            decode_item(br#"{"kind":"event","event":"layout","tiles":7}"#, Bytes::new(), now).is_err(),
            "a known event with bad fields"
        );
        assert!(decode_item(b"{", Bytes::new(), now).is_err());
        assert!(decode_item(br#"{"kind":"mystery"}"#, Bytes::new(), now).is_err());
    }

    #[test]
    fn leg_actions_name_only_this_runs_tracks() {
        let known = |id: &str| id.starts_with("p-1:");
        let ev = |json: &str| Event::from_header(json.as_bytes()).unwrap();
        assert_eq!(
            leg_actions(&ev(r#"{"kind":"event","event":"applied","op":"add_track","id":"p-1:0"}"#), known),
            vec![LegAction::Attach { producer_id: "p-1:0".into() }]
        );
        assert_eq!(leg_actions(&ev(r#"{"kind":"event","event":"applied","op":"add_participant","id":"p-1:0"}"#), known), vec![]);
        assert_eq!(
            leg_actions(&ev(r#"{"kind":"event","event":"keyframe_request","track_id":"p-1:0","reason":"no_picture"}"#), known),
            vec![LegAction::Keyframe { producer_id: "p-1:0".into() }]
        );
        assert_eq!(
            leg_actions(&ev(r#"{"kind":"event","event":"keyframe_request","track_id":"p-9:0","reason":"decoder"}"#), known),
            vec![],
            "a track this run has no ports for"
        );
        let layout =
            ev(r#"{"kind":"event","event":"layout","tiles":{"p-1:0":{"width":632,"height":356},"p-9:0":{"width":1,"height":356}}}"#);
        assert_eq!(leg_actions(&layout, known), vec![LegAction::Tile { producer_id: "p-1:0".into(), height: 356 }]);
        assert_eq!(leg_actions(&Event::Stats(Default::default()), known), vec![]);
    }

    /// Output written but not yet read (the gateway's items task has not run) is seen as
    /// waiting; a process that wrote nothing is not.
    #[tokio::test(flavor = "current_thread")]
    async fn output_left_in_the_pipe_is_seen_as_waiting() {
        let dir = tempfile::tempdir().unwrap();
        let format = OutputFormat { width: 64, height: 36, fps: 30, part: Duration::from_millis(333), segment: Duration::from_secs(1) };
        let script = |name: &str, body: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
            path
        };
        let writer = Compositor::spawn(&script("writer", "printf 'abcd'; sleep 5"), &format).unwrap();
        let silent = Compositor::spawn(&script("silent", "sleep 5"), &format).unwrap();
        // Blocking this (only) runtime thread: the items tasks cannot read meanwhile.
        std::thread::sleep(Duration::from_millis(500));
        assert!(writer.output_waiting(), "4 bytes wait in the pipe");
        assert!(!silent.output_waiting());
        let (mem, _remote) = Compositor::in_memory();
        assert!(!mem.output_waiting());
    }

    /// The supervisor polls `next_item` in a `select!` that other branches win all the time;
    /// items written in small pieces must still all arrive intact (a cancelled half-read used
    /// to desync the framing: "header of 4077241568 bytes").
    #[tokio::test]
    async fn items_survive_a_select_that_keeps_cancelling_the_read() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("fake-compositor");
        // 40 event frames, each written in 3-byte pieces with pauses between them.
        std::fs::write(
            &fake,
            r#"#!/usr/bin/env python3
import json, struct, sys, time
out = sys.stdout.buffer
for i in range(40):
    h = json.dumps({"kind": "event", "event": "input_resumed", "track_id": str(i)}).encode()
    frame = struct.pack(">I", len(h)) + h + struct.pack(">I", 0)
    for k in range(0, len(frame), 3):
        out.write(frame[k:k + 3]); out.flush(); time.sleep(0.0005)
"#,
        )
        .unwrap();
        std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let format = OutputFormat { width: 64, height: 36, fps: 30, part: Duration::from_millis(333), segment: Duration::from_secs(1) };
        let mut comp = Compositor::spawn(&fake, &format).unwrap();
        let mut tick = tokio::time::interval(Duration::from_micros(200));
        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            tokio::select! {
                item = comp.next_item() => match item.expect("the framing stays intact") {
                    Some(Item::Event(Event::InputResumed { track_id })) => seen.push(track_id.parse::<u64>().unwrap()),
                    Some(other) => panic!("unexpected {other:?}"),
                    None => break,
                },
                _ = tick.tick() => assert!(tokio::time::Instant::now() < deadline, "only {} items", seen.len()),
            }
        }
        assert_eq!(seen, (0..40).collect::<Vec<_>>());
    }
}
