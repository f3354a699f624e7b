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

    /// Init + segment as one playable fMP4 file, decoded by ffmpeg to RGB frames.
    async fn frames(&self, pl: &Playlist, msn: u64, dir: &std::path::Path) -> Result<Segment> {
        let seg = pl.segments.iter().find(|s| s.0 == msn).context("segment in playlist")?;
        let mut file = self.get(&pl.map_uri).await?;
        file.extend(self.get(&seg.1).await?);
        let path = dir.join(format!("seg-{msn}.mp4"));
        std::fs::write(&path, &file)?;
        let probe = std::process::Command::new("ffprobe")
            .args(["-v", "error", "-show_entries", "stream=codec_type,codec_name,width,height", "-of", "compact"])
            .arg(&path)
            .output()
            .context("running ffprobe (apt-get install ffmpeg)")?;
        let streams = String::from_utf8_lossy(&probe.stdout).to_string();
        let out = std::process::Command::new("ffmpeg")
            .args(["-v", "error", "-i"])
            .arg(&path)
            .args(["-an", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
            .output()?;
        ensure!(out.status.success(), "ffmpeg: {}", String::from_utf8_lossy(&out.stderr));
        let size = (W * H * 3) as usize;
        ensure!(!out.stdout.is_empty() && out.stdout.len() % size == 0, "decoded {} bytes, not whole {W}x{H} RGB frames ({streams})", out.stdout.len());
        let frames = out.stdout.chunks(size).map(|c| Frame { rgb: c.to_vec() }).collect();
        let _ = std::fs::remove_file(&path);
        Ok(Segment { frames, streams })
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
    /// Mean colour of a 24x24 patch a quarter of the way into the tile (clear of the name label).
    fn tile_colour(&self, r: &Rect) -> Colour {
        let (cx, cy) = (r.x + r.width / 4, r.y + r.height / 4);
        let (mut sr, mut sg, mut sb, mut n) = (0u64, 0u64, 0u64, 0u64);
        for y in cy - 12..cy + 12 {
            for x in cx - 12..cx + 12 {
                let i = ((y as u32 * W + x as u32) * 3) as usize;
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

    // A fourth participant: within 3 segments the grid has four tiles, the fourth yellow.
    let last_before = hls.playlist().await?.context("playlist")?.segments.last().unwrap().0;
    people.push(SyntheticParticipant::join_with(&base, &room, opts("yellow", Colour::YELLOW, 550.0)).await?);
    let expected4 = [Colour::RED, Colour::GREEN, Colour::BLUE, Colour::YELLOW];
    let mut msn = last_before + 1;
    loop {
        let pl = hls.wait_segment(msn, Duration::from_secs(10)).await?;
        let seg = hls.frames(&pl, msn, &dir).await?;
        let tiles = seg.last().tiles(4);
        if expected4.iter().zip(&tiles).all(|(e, t)| close(*e, *t)) {
            let from = seg.first_matching(4, |t| expected4.iter().zip(t).all(|(e, t)| close(*e, *t)));
            println!("yellow tile in segment {msn} from frame {from:?}, {} segment(s) after the join", msn - last_before);
            break;
        }
        println!("segment {msn}: tiles {}", describe(&tiles));
        ensure!(msn < last_before + 3, "no yellow 4th tile within 3 segments of the join (last tiles {})", describe(&tiles));
        msn += 1;
    }

    // Red leaves: its tile goes away; the others move up in join order.
    let last_before = hls.playlist().await?.context("playlist")?.segments.last().unwrap().0;
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
        let last_before = hls.playlist().await?.context("playlist")?.segments.last().unwrap().0;
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
