//! The broadcast as a player sees it, for the end-to-end tests: reads a room's HLS playlist
//! and segments, decodes segments with ffmpeg (ffprobe for their streams) into small RGB
//! frames, and reads each grid tile's colour (tile rectangles from the compositor's own
//! layout function).

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use roomcast_compositor::layout::{layout, Rect};

use crate::synthetic::Colour;

/// The broadcast picture (the gateway's default 720p).
pub const W: u32 = 1280;
pub const H: u32 = 720;
/// Decoded frames are scaled down by this factor for the checks (tile coordinates with them).
pub const SCALE: u32 = 4;
const DW: u32 = W / SCALE;
const DH: u32 = H / SCALE;

/// Reads one room's broadcast like a player: `/hls/{room}/index.m3u8`, the init segment and
/// whole segments.
pub struct Hls {
    pub http: reqwest::Client,
    pub base: String,
    pub room: String,
}

/// The media playlist as read (parsed with m3u8-rs).
pub struct Playlist {
    pub text: String,
    pub media_sequence: u64,
    pub map_uri: String,
    /// (msn, uri, duration seconds, discontinuity before it)
    pub segments: Vec<(u64, String, f32, bool)>,
}

impl Hls {
    pub async fn playlist(&self) -> Result<Option<Playlist>> {
        let r = self.http.get(format!("{}/hls/{}/index.m3u8", self.base, self.room)).send().await?;
        if !r.status().is_success() {
            return Ok(None);
        }
        let ct = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        ensure!(ct.contains("mpegurl"), "playlist content type {ct}");
        let text = r.text().await?;
        let pl = match m3u8_rs::parse_media_playlist_res(text.as_bytes()) {
            Ok(pl) => pl,
            Err(e) => bail!("playlist does not parse: {e:?}\n{text}"),
        };
        let map_uri = pl.segments.iter().find_map(|s| s.map.as_ref().map(|m| m.uri.clone())).unwrap_or_default();
        let segments = pl
            .segments
            .iter()
            .enumerate()
            .map(|(i, s)| (pl.media_sequence + i as u64, s.uri.clone(), s.duration, s.discontinuity))
            .collect();
        Ok(Some(Playlist { text, media_sequence: pl.media_sequence, map_uri, segments }))
    }

    pub async fn get(&self, uri: &str) -> Result<Vec<u8>> {
        let url = if uri.starts_with('/') { format!("{}{uri}", self.base) } else { format!("{}/hls/{}/{uri}", self.base, self.room) };
        let r = self.http.get(&url).send().await?;
        ensure!(r.status().is_success(), "GET {url}: {}", r.status());
        Ok(r.bytes().await?.to_vec())
    }

    /// Waits until the playlist lists a complete segment numbered at least `msn`.
    pub async fn wait_segment(&self, msn: u64, timeout: Duration) -> Result<Playlist> {
        let start = Instant::now();
        loop {
            if let Some(pl) = self.playlist().await? {
                if pl.segments.last().is_some_and(|s| s.0 >= msn) {
                    return Ok(pl);
                }
            }
            ensure!(start.elapsed() < timeout, "no segment {msn} within {timeout:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Init + segment as one playable fMP4 file, decoded by ffmpeg to RGB frames scaled down
    /// by [`SCALE`]. ffprobe and ffmpeg run as child processes awaited through tokio, so the
    /// runtime threads (shared with the gateway and the participants) are never blocked.
    pub async fn frames(&self, pl: &Playlist, msn: u64, dir: &std::path::Path) -> Result<Segment> {
        let seg = pl.segments.iter().find(|s| s.0 == msn).context("segment in playlist")?;
        let mut file = self.get(&pl.map_uri).await?;
        file.extend(self.get(&seg.1).await?);
        let path = dir.join(format!("seg-{msn}.mp4"));
        tokio::fs::write(&path, &file).await?;
        let probe = tokio::process::Command::new("ffprobe")
            .args(["-v", "error", "-show_entries", "stream=codec_type,codec_name,width,height", "-of", "compact"])
            .arg(&path)
            .kill_on_drop(true)
            .output()
            .await
            .context("running ffprobe (apt-get install ffmpeg)")?;
        let streams = String::from_utf8_lossy(&probe.stdout).to_string();
        // One decoding thread (the compositor's encoder needs the cores more than we do) and
        // small RGB frames: a 1 s segment is ~5 MB through the pipe instead of ~83 MB.
        let out = tokio::process::Command::new("ffmpeg")
            .args(["-v", "error", "-threads", "1", "-i"])
            .arg(&path)
            .args(["-an", "-vf", &format!("scale={DW}:{DH}:flags=area"), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
            .kill_on_drop(true)
            .output()
            .await
            .context("running ffmpeg")?;
        let _ = tokio::fs::remove_file(&path).await;
        ensure!(out.status.success(), "ffmpeg: {}", String::from_utf8_lossy(&out.stderr));
        let size = (DW * DH * 3) as usize;
        ensure!(
            !out.stdout.is_empty() && out.stdout.len() % size == 0,
            "decoded {} bytes, not whole {DW}x{DH} RGB frames ({streams})",
            out.stdout.len()
        );
        let frames = out.stdout.chunks(size).map(|c| Frame { rgb: c.to_vec() }).collect();
        Ok(Segment { frames, streams })
    }

    /// The number of the newest complete segment listed now.
    pub async fn last_msn(&self) -> Result<u64> {
        let pl = self.playlist().await?.context("playlist")?;
        pl.segments.last().map(|s| s.0).context("a segment in the playlist")
    }
}

/// One decoded segment.
pub struct Segment {
    pub frames: Vec<Frame>,
    /// What ffprobe says about its streams (codec, size).
    pub streams: String,
}

impl Segment {
    /// What a viewer sees at the end of the segment.
    pub fn last(&self) -> &Frame {
        self.frames.last().expect("at least one frame")
    }

    /// Index of the first frame whose tiles match, for the log.
    pub fn first_matching(&self, n: usize, ok: impl Fn(&[Colour]) -> bool) -> Option<usize> {
        self.frames.iter().position(|f| ok(&f.tiles(n)))
    }
}

/// One decoded frame, scaled down by [`SCALE`], RGB.
pub struct Frame {
    rgb: Vec<u8>,
}

impl Frame {
    /// Mean colour of a 24x24 patch (6x6 in the scaled-down frame) a quarter of the way into
    /// the tile (clear of the name label).
    pub fn tile_colour(&self, r: &Rect) -> Colour {
        let s = SCALE as i32;
        let (cx, cy) = ((r.x + r.width / 4) / s, (r.y + r.height / 4) / s);
        let half = 12 / s;
        let (mut sr, mut sg, mut sb, mut n) = (0u64, 0u64, 0u64, 0u64);
        for y in cy - half..cy + half {
            for x in cx - half..cx + half {
                let i = ((y as u32 * DW + x as u32) * 3) as usize;
                sr += self.rgb[i] as u64;
                sg += self.rgb[i + 1] as u64;
                sb += self.rgb[i + 2] as u64;
                n += 1;
            }
        }
        Colour { r: (sr / n) as u8, g: (sg / n) as u8, b: (sb / n) as u8 }
    }

    pub fn tiles(&self, n: usize) -> Vec<Colour> {
        layout(n, W, H).slots.iter().map(|r| self.tile_colour(r)).collect()
    }
}

/// Two tile colours match (codec and scaling move a solid colour by a few levels).
pub fn close(a: Colour, b: Colour) -> bool {
    let d = |x: u8, y: u8| (x as i32 - y as i32).abs();
    d(a.r, b.r) < 60 && d(a.g, b.g) < 60 && d(a.b, b.b) < 60
}

/// A placeholder or empty slot: dark and grey, nobody's colour.
pub fn is_placeholder(c: Colour) -> bool {
    c.r < 90 && c.g < 90 && c.b < 90
}

pub fn describe(tiles: &[Colour]) -> String {
    tiles.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(" ")
}
