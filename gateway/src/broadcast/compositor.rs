//! The `roomcast-compositor` child process: control lines to its stdin, framed CMAF items
//! from its stdout (`u32 BE header length, JSON header, u32 BE body length, body`; see
//! compositor/PROTOCOL.md). Its stderr (logs) is passed through.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

const MAX_HEADER: u32 = 1 << 20;
const MAX_BODY: u32 = 64 << 20;

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
    Part { data: Bytes, independent: bool, segment_start: bool, duration: Duration },
    Event(serde_json::Value),
}

#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Header {
    Init,
    Part { independent: bool, segment_start: bool, duration_ns: u64 },
    Event,
}

/// Turns one framed header + body into an item (pure; unit-tested).
pub fn decode_item(header: &[u8], body: Bytes) -> Result<Item, String> {
    let value: serde_json::Value = serde_json::from_slice(header).map_err(|e| format!("bad header JSON: {e}"))?;
    match serde_json::from_value::<Header>(value.clone()).map_err(|e| format!("bad header: {e}"))? {
        Header::Init => Ok(Item::Init(body)),
        Header::Part { independent, segment_start, duration_ns } => {
            Ok(Item::Part { data: body, independent, segment_start, duration: Duration::from_nanos(duration_ns) })
        }
        Header::Event => Ok(Item::Event(value)),
    }
}

pub struct Compositor {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Compositor {
    pub fn spawn(bin: &Path, format: &OutputFormat, room: &str) -> std::io::Result<Self> {
        let mut child = Command::new(bin)
            .arg("--width").arg(format.width.to_string())
            .arg("--height").arg(format.height.to_string())
            .arg("--fps").arg(format.fps.to_string())
            .arg("--part-ms").arg(format.part.as_millis().to_string())
            .arg("--segment-ms").arg(format.segment.as_millis().to_string())
            .env("ROOMCAST_ROOM", room)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()?;
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = BufReader::with_capacity(256 * 1024, child.stdout.take().expect("piped stdout"));
        Ok(Self { child, stdin, stdout })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    pub async fn send(&mut self, command: &serde_json::Value) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(command).expect("JSON serializes");
        line.push(b'\n');
        self.stdin.write_all(&line).await?;
        self.stdin.flush().await
    }

    /// The next output item; `Ok(None)` when the process closed its output.
    pub async fn next_item(&mut self) -> std::io::Result<Option<Item>> {
        let header_len = match self.stdout.read_u32().await {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        };
        if header_len > MAX_HEADER {
            return Err(invalid(format!("header of {header_len} bytes")));
        }
        let mut header = vec![0u8; header_len as usize];
        self.stdout.read_exact(&mut header).await?;
        let body_len = self.stdout.read_u32().await?;
        if body_len > MAX_BODY {
            return Err(invalid(format!("body of {body_len} bytes")));
        }
        let mut body = vec![0u8; body_len as usize];
        self.stdout.read_exact(&mut body).await?;
        decode_item(&header, Bytes::from(body)).map(Some).map_err(invalid)
    }

    /// Asks for a clean stop, then kills the process if it does not exit in time.
    pub async fn shutdown(mut self) {
        let _ = self.send(&serde_json::json!({"op": "shutdown"})).await;
        drop(self.stdin);
        if tokio::time::timeout(Duration::from_secs(3), self.child.wait()).await.is_err() {
            let _ = self.child.kill().await;
        }
    }

    pub async fn kill(mut self) {
        let _ = self.child.kill().await;
    }
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
        assert_eq!(decode_item(br#"{"kind":"init"}"#, Bytes::from_static(b"ftyp")).unwrap(), Item::Init(Bytes::from_static(b"ftyp")));
        let part = decode_item(br#"{"kind":"part","independent":true,"segment_start":true,"pts_ns":5,"duration_ns":333000000}"#, Bytes::new()).unwrap();
        assert_eq!(part, Item::Part { data: Bytes::new(), independent: true, segment_start: true, duration: Duration::from_millis(333) });
        assert!(matches!(decode_item(br#"{"kind":"event","event":"stats","fps_out":30}"#, Bytes::new()).unwrap(), Item::Event(_)));
        assert!(decode_item(b"{", Bytes::new()).is_err());
        assert!(decode_item(br#"{"kind":"mystery"}"#, Bytes::new()).is_err());
    }
}
