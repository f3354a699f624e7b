//! Broadcast end to end: synthetic participants in a live room → SFU plain-RTP legs →
//! `roomcast-compositor` → hls-out → the test reads `/hls/{id}/index.m3u8` like a player,
//! decodes segments with ffmpeg and checks the picture tile by tile.
//!
//! Needs the compositor binary built (`cargo build -p roomcast-compositor`; tests/run.sh does)
//! and ffmpeg/ffprobe. Run: `cargo test -p roomcast-e2e --test broadcast_e2e -- --nocapture`.

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use roomcast_compositor::layout::{layout, Rect};
use roomcast_e2e::compositor_bin;
use roomcast_e2e::synthetic::signaling::ClientMessage;
use roomcast_e2e::synthetic::{signaling, Colour, JoinOptions, SyntheticParticipant};

const W: u32 = 1280;
const H: u32 = 720;
/// Decoded frames are scaled down by this factor for the checks (tile coordinates with them).
const SCALE: u32 = 4;
const DW: u32 = W / SCALE;
const DH: u32 = H / SCALE;

struct Hls {
    http: reqwest::Client,
    base: String,
    room: String,
}

struct Playlist {
    text: String,
    media_sequence: u64,
    map_uri: String,
    /// (msn, uri, duration seconds, discontinuity before it)
    segments: Vec<(u64, String, f32, bool)>,
}

impl Hls {
    async fn playlist(&self) -> Result<Option<Playlist>> {
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

    async fn get(&self, uri: &str) -> Result<Vec<u8>> {
        let url = if uri.starts_with('/') { format!("{}{uri}", self.base) } else { format!("{}/hls/{}/{uri}", self.base, self.room) };
        let r = self.http.get(&url).send().await?;
        ensure!(r.status().is_success(), "GET {url}: {}", r.status());
        Ok(r.bytes().await?.to_vec())
    }

    /// Waits until the playlist lists a complete segment numbered at least `msn`.
    async fn wait_segment(&self, msn: u64, timeout: Duration) -> Result<Playlist> {
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
    async fn frames(&self, pl: &Playlist, msn: u64, dir: &std::path::Path) -> Result<Segment> {
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
        ensure!(!out.stdout.is_empty() && out.stdout.len() % size == 0, "decoded {} bytes, not whole {DW}x{DH} RGB frames ({streams})", out.stdout.len());
        let frames = out.stdout.chunks(size).map(|c| Frame { rgb: c.to_vec() }).collect();
        Ok(Segment { frames, streams })
    }

    /// The number of the newest complete segment listed now.
    async fn last_msn(&self) -> Result<u64> {
        let pl = self.playlist().await?.context("playlist")?;
        pl.segments.last().map(|s| s.0).context("a segment in the playlist")
    }
}

/// One decoded segment.
struct Segment {
    frames: Vec<Frame>,
    streams: String,
}

impl Segment {
    /// What a viewer sees at the end of the segment.
    fn last(&self) -> &Frame {
        self.frames.last().expect("at least one frame")
    }

    /// Index of the first frame whose tiles match, for the log.
    fn first_matching(&self, n: usize, ok: impl Fn(&[Colour]) -> bool) -> Option<usize> {
        self.frames.iter().position(|f| ok(&f.tiles(n)))
    }
}

struct Frame {
    rgb: Vec<u8>,
}

impl Frame {
    /// Mean colour of a 24x24 patch (6x6 in the scaled-down frame) a quarter of the way into
    /// the tile (clear of the name label).
    fn tile_colour(&self, r: &Rect) -> Colour {
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

    fn tiles(&self, n: usize) -> Vec<Colour> {
        layout(n, W, H).slots.iter().map(|r| self.tile_colour(r)).collect()
    }
}

fn close(a: Colour, b: Colour) -> bool {
    let d = |x: u8, y: u8| (x as i32 - y as i32).abs();
    d(a.r, b.r) < 60 && d(a.g, b.g) < 60 && d(a.b, b.b) < 60
}

/// A placeholder or empty slot: dark and grey, nobody's colour.
fn is_placeholder(c: Colour) -> bool {
    c.r < 90 && c.g < 90 && c.b < 90
}

fn describe(tiles: &[Colour]) -> String {
    tiles.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(" ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_room_grid_with_join_and_leave() -> Result<()> {
    roomcast_e2e::init_test_logs();
    let dir = roomcast_e2e::scratch_dir("broadcast")?;
    let mut config = roomcast::Config::for_tests(&dir);
    config.compositor_bin = Some(compositor_bin()?);
    let server = roomcast::start(config).await?;
    let base = format!("http://{}", server.http_addr);
    let http = reqwest::Client::new();
    let room = signaling::create_room(&http, &base, "broadcast-e2e").await?;
    let hls = Hls { http: http.clone(), base: base.clone(), room: room.clone() };

    // Three publishers. They don't decode each other (saves CPU; the SFU test covers that).
    let opts = |name: &str, colour, tone| JoinOptions::new(name, colour, tone).decode(false);
    let mut people = vec![
        SyntheticParticipant::join_with(&base, &room, opts("red", Colour::RED, 440.0)).await?,
        SyntheticParticipant::join_with(&base, &room, opts("green", Colour::GREEN, 660.0)).await?,
        SyntheticParticipant::join_with(&base, &room, opts("blue", Colour::BLUE, 880.0)).await?,
    ];

    let started = Instant::now();
    let r = http.post(format!("{base}/api/rooms/{room}/broadcast")).send().await?;
    ensure!(r.status().as_u16() == 202, "start broadcast: {}", r.status());
    let again = http.post(format!("{base}/api/rooms/{room}/broadcast")).send().await?;
    ensure!(again.status().as_u16() == 409, "second start must conflict");

    // Wait for a segment that shows all three colours (legs start at each publisher's next keyframe).
    let mut pl = hls.wait_segment(0, Duration::from_secs(30)).await?;
    let first_msn = pl.segments[0].0;
    let mut msn = first_msn;
    let expected3 = [Colour::RED, Colour::GREEN, Colour::BLUE];
    let segment = loop {
        pl = hls.wait_segment(msn, Duration::from_secs(20)).await?;
        let seg = hls.frames(&pl, msn, &dir).await?;
        let tiles = seg.last().tiles(3);
        if expected3.iter().zip(&tiles).all(|(e, t)| close(*e, *t)) {
            break seg;
        }
        println!("segment {msn}: tiles {} (waiting for all three)", describe(&tiles));
        ensure!(msn < first_msn + 15, "three colours never appeared; last tiles {}", describe(&tiles));
        msn += 1;
    };
    println!("all three colours in segment {msn}, {:?} after POST broadcast", started.elapsed());
    ensure!(segment.streams.contains("codec_name=h264") && segment.streams.contains("width=1280") && segment.streams.contains("height=720"), "video stream: {}", segment.streams);
    ensure!(segment.streams.contains("codec_name=aac"), "audio stream: {}", segment.streams);
    ensure!((28..=32).contains(&segment.frames.len()), "a 1 s segment at 30 fps, got {} frames", segment.frames.len());
    let tiles = segment.last().tiles(3);
    ensure!(is_placeholder(tiles[3]), "the empty 4th slot shows a placeholder, got {}", tiles[3]);
    ensure!(pl.text.contains("#EXT-X-PART:"), "LL-HLS parts are listed");

    // A fourth participant: within 3 segments of its media reaching the broadcast the grid
    // has four tiles, the fourth yellow. The clock starts when yellow's legs exist (the
    // supervisor has added both tracks to the compositor) and its publish PeerConnection is
    // connected, not at the join: HTTP, signaling, ICE and DTLS are not the broadcast's doing.
    let legs_before = server.state.broadcasts.status(&room).context("broadcast status")?.legs;
    println!("legs before yellow joins: {legs_before}");
    let joining = Instant::now();
    people.push(SyntheticParticipant::join_with(&base, &room, opts("yellow", Colour::YELLOW, 550.0)).await?);
    let yellow = people.last().context("yellow")?;
    let mut legs_at = None;
    let mut connected_at = None;
    loop {
        let legs = server.state.broadcasts.status(&room).context("broadcast status")?.legs;
        if legs >= legs_before + 2 {
            legs_at.get_or_insert_with(Instant::now);
        }
        connected_at = connected_at.or(yellow.snapshot().publish.and_then(|p| p.connected_at));
        if legs_at.is_some() && connected_at.is_some() {
            break;
        }
        ensure!(joining.elapsed() < Duration::from_secs(15), "yellow's legs ({legs}, was {legs_before}) or publish connection ({connected_at:?}) missing 15 s after joining");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let last_before = hls.last_msn().await?;
    println!(
        "yellow: publish connected {:?}, legs {:?} after the join started; counting from segment {last_before}",
        connected_at.map(|t| t.saturating_duration_since(joining)),
        legs_at.map(|t| t.saturating_duration_since(joining))
    );
    let expected4 = [Colour::RED, Colour::GREEN, Colour::BLUE, Colour::YELLOW];
    let mut msn = last_before + 1;
    loop {
        let pl = hls.wait_segment(msn, Duration::from_secs(10)).await?;
        let seg = hls.frames(&pl, msn, &dir).await?;
        let tiles = seg.last().tiles(4);
        if expected4.iter().zip(&tiles).all(|(e, t)| close(*e, *t)) {
            let from = seg.first_matching(4, |t| expected4.iter().zip(t).all(|(e, t)| close(*e, *t)));
            println!("yellow tile in segment {msn} from frame {from:?}, {} segment(s) after its legs and connection (limit 3)", msn - last_before);
            break;
        }
        println!("segment {msn}: tiles {}", describe(&tiles));
        ensure!(msn < last_before + 3, "no yellow 4th tile within 3 segments of its legs existing (last tiles {})", describe(&tiles));
        msn += 1;
    }

    // Red leaves: its tile goes away; the others move up in join order.
    let last_before = hls.last_msn().await?;
    people.remove(0).leave().await;
    let expected_after = [Colour::GREEN, Colour::BLUE, Colour::YELLOW];
    let mut msn = last_before + 1;
    loop {
        let pl = hls.wait_segment(msn, Duration::from_secs(10)).await?;
        let tiles = hls.frames(&pl, msn, &dir).await?.last().tiles(3);
        if expected_after.iter().zip(&tiles).all(|(e, t)| close(*e, *t)) && is_placeholder(tiles[3]) {
            println!("red gone in segment {msn}, {} segment(s) after leaving", msn - last_before);
            break;
        }
        ensure!(msn < last_before + 4, "red's tile did not go away (tiles {})", describe(&tiles));
        msn += 1;
    }

    // Green turns its camera off (its media keeps flowing): the broadcast shows its named
    // placeholder instead; camera on again brings green back.
    for (muted, want_green) in [(true, false), (false, true)] {
        let last_before = hls.last_msn().await?;
        people[0].send(ClientMessage::MediaState { audio_muted: false, video_muted: muted })?;
        let mut m = last_before + 1;
        loop {
            let pl = hls.wait_segment(m, Duration::from_secs(10)).await?;
            let tiles = hls.frames(&pl, m, &dir).await?.last().tiles(3);
            let green_shown = close(Colour::GREEN, tiles[0]);
            if green_shown == want_green && (want_green || is_placeholder(tiles[0])) && close(Colour::BLUE, tiles[1]) {
                println!("camera {} → green tile {} in segment {m}, {} segment(s) later", if muted { "off" } else { "on" }, if want_green { "back" } else { "a placeholder" }, m - last_before);
                break;
            }
            ensure!(m < last_before + 3, "camera {}: tiles {}", if muted { "off" } else { "on" }, describe(&tiles));
            m += 1;
        }
        msn = m;
    }

    // Regular segment durations, contiguous numbering, no discontinuity through join and leave.
    let pl = hls.wait_segment(msn + 1, Duration::from_secs(10)).await?;
    let complete: Vec<_> = pl.segments.iter().collect();
    for w in complete.windows(2) {
        ensure!(w[1].0 == w[0].0 + 1, "MSN gap: {} then {}", w[0].0, w[1].0);
    }
    for (n, _, d, disc) in &complete {
        ensure!(!disc, "no discontinuity expected (segment {n})");
        ensure!((0.8..=1.25).contains(d), "segment {n} lasts {d} s (target 1 s)\n{}", pl.text);
    }
    println!("segments {}..={}: durations {:?}", pl.media_sequence, complete.last().unwrap().0, complete.iter().map(|s| s.2).collect::<Vec<_>>());

    let r = http.delete(format!("{base}/api/rooms/{room}/broadcast")).send().await?;
    ensure!(r.status().is_success(), "stop broadcast: {}", r.status());
    for p in people {
        p.leave().await;
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
