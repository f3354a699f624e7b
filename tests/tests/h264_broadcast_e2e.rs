//! Broadcast with H.264 publishers: synthetic participants publishing H.264 (x264,
//! constrained baseline) and VP8 in a live room → SFU plain-RTP legs → `roomcast-compositor`
//! (`rtph264depay ! h264parse ! avdec_h264` for H.264 tracks) → hls-out; the test reads the
//! playlist like a player, decodes segments with ffmpeg and checks each tile's colour.
//!
//! The publishers neither decode nor ask for keyframes themselves, so each compositor leg
//! starts only from the keyframe the SFU asks for when it attaches the leg (the path a lone
//! publisher, or one whose viewers' PLIs are answered, depends on).
//!
//! It found a gateway bug, since fixed (see tests/README.md): the SFU started an H.264
//! compositor leg at the IDR slice's packet without the SPS/PPS sent just before it, so the
//! tile waited for the encoder's next keyframe (the synthetic publishers, like browsers, send
//! one only when asked).
//!
//! Needs the compositor binary (`cargo build -p roomcast-compositor`; tests/run.sh does) and
//! ffmpeg. Run: `cargo test -p roomcast-e2e --test h264_broadcast_e2e -- --nocapture`.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use roomcast_e2e::compositor_bin;
use roomcast_e2e::hls::grid::{close, describe, Frame, Hls};
use roomcast_e2e::synthetic::{signaling, Colour, JoinOptions, SyntheticParticipant, VideoCodec};

/// Segments (1 s each) from a publisher's legs existing to its tile showing its colour, as
/// `broadcast_e2e` allows a VP8 publisher.
const TILE_LIMIT_SEGMENTS: u64 = 3;
/// How long to keep looking for a tile that missed its limit (to report how late it was; the
/// publishers send keyframes only when asked, so a tile may also never show), in segments.
const TILE_EVENTUALLY_SEGMENTS: u64 = 10;

/// Segment `msn`'s frames, once the playlist lists it.
async fn frames(hls: &Hls, msn: u64, dir: &std::path::Path) -> Result<Vec<Frame>> {
    let pl = hls.wait_segment(msn, Duration::from_secs(15)).await?;
    Ok(hls.frames(&pl, msn, dir).await?.frames)
}

struct Publisher {
    name: &'static str,
    colour: Colour,
    codec: VideoCodec,
}

const RED_H264: Publisher = Publisher { name: "red-h264", colour: Colour::RED, codec: VideoCodec::H264 };
const GREEN_VP8: Publisher = Publisher { name: "green-vp8", colour: Colour::GREEN, codec: VideoCodec::Vp8 };
const BLUE_H264: Publisher = Publisher { name: "blue-h264", colour: Colour::BLUE, codec: VideoCodec::H264 };
const YELLOW_VP8: Publisher = Publisher { name: "yellow-vp8", colour: Colour::YELLOW, codec: VideoCodec::Vp8 };

async fn join(base: &str, room: &str, p: &Publisher, tone: f32) -> Result<SyntheticParticipant> {
    let opts = JoinOptions::new(p.name, p.colour, tone).video_codec(p.codec).decode(false).request_keyframes(false);
    SyntheticParticipant::join_with(base, room, opts).await
}

/// From segment `from` on, the first segment whose last frame shows tile `slot` (of `n`) in
/// `colour`; gives up after `max` segments. Returns (msn, frame index of the first match).
async fn first_segment_showing(
    hls: &Hls,
    dir: &std::path::Path,
    from: u64,
    max: u64,
    n: usize,
    expect: &[Colour],
) -> Result<Option<(u64, usize)>> {
    for msn in from..from + max {
        let frames = frames(hls, msn, dir).await?;
        let last = frames.last().context("a frame")?.tiles(n);
        if expect.iter().zip(&last).all(|(e, t)| close(*e, *t)) {
            let first = frames.iter().position(|f| expect.iter().zip(f.tiles(n)).all(|(e, t)| close(*e, t))).unwrap_or(0);
            return Ok(Some((msn, first)));
        }
        println!("  segment {msn}: tiles {}", describe(&last));
    }
    Ok(None)
}

/// A publisher joins the live broadcast: segments from its legs (and publish connection)
/// existing to its tile showing. Returns the count, or None if not within
/// [`TILE_EVENTUALLY_SEGMENTS`].
#[allow(clippy::too_many_arguments)] // a test helper: each argument is one part of the scene
async fn join_live(
    server: &roomcast::RunningServer,
    hls: &Hls,
    dir: &std::path::Path,
    base: &str,
    room: &str,
    p: &Publisher,
    tone: f32,
    expect: &[Colour],
    people: &mut Vec<SyntheticParticipant>,
) -> Result<Option<u64>> {
    let legs_before = server.state.broadcasts.status(room).context("broadcast status")?.legs;
    let joining = Instant::now();
    people.push(join(base, room, p, tone).await?);
    let me = people.last().context("joined")?;
    let (mut legs_at, mut connected_at) = (None, None);
    loop {
        let legs = server.state.broadcasts.status(room).context("broadcast status")?.legs;
        if legs >= legs_before + 2 {
            legs_at.get_or_insert_with(Instant::now);
        }
        connected_at = connected_at.or(me.snapshot().publish.and_then(|s| s.connected_at));
        if legs_at.is_some() && connected_at.is_some() {
            break;
        }
        ensure!(
            joining.elapsed() < Duration::from_secs(15),
            "{}: legs ({legs}, was {legs_before}) or publish connection missing 15 s after joining",
            p.name
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let last_before = hls.last_msn().await?;
    let s = me.snapshot();
    println!(
        "{} ({}) joins the live broadcast: publishing {}, legs {:?} after the join; counting from segment {last_before}",
        p.name,
        p.codec,
        s.published.video_codec.as_deref().unwrap_or("-"),
        legs_at.map(|t| t.saturating_duration_since(joining)),
    );
    let found = first_segment_showing(hls, dir, last_before + 1, TILE_EVENTUALLY_SEGMENTS, expect.len(), expect).await?;
    let s = me.snapshot();
    let after = found.map(|(msn, frame)| {
        println!(
            "{} tile in segment {msn} from frame {frame}: {} segment(s) after its legs (limit {TILE_LIMIT_SEGMENTS}); the SFU asked it for {} keyframe(s), it sent {}",
            p.name,
            msn - last_before,
            s.published.keyframe_requests,
            s.published.video_keyframes_sent
        );
        msn - last_before
    });
    if after.is_none() {
        println!("{}: no tile within {TILE_EVENTUALLY_SEGMENTS} segments of its legs", p.name);
    }
    Ok(after)
}

/// An H.264 publisher's tile shows its colour in the composited HLS output, next to a VP8
/// one; then an H.264 and a VP8 publisher join the live broadcast and each tile must show
/// within 3 segments of its legs, as for VP8 in `broadcast_e2e`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h264_tiles_in_the_broadcast() -> Result<()> {
    roomcast_e2e::init_test_logs();
    let dir = roomcast_e2e::scratch_dir("h264-broadcast")?;
    let mut config = roomcast::Config::for_tests(&dir);
    config.compositor_bin = Some(compositor_bin()?);
    let server = roomcast::start(config).await?;
    let base = format!("http://{}", server.http_addr);
    let http = reqwest::Client::new();
    let room = signaling::create_room(&http, &base, "h264-broadcast-e2e").await?;
    let hls = Hls { http: http.clone(), base: base.clone(), room: room.clone() };

    let mut people = vec![join(&base, &room, &RED_H264, 440.0).await?, join(&base, &room, &GREEN_VP8, 660.0).await?];
    // Both publishing before the broadcast starts.
    for p in &people {
        p.wait_until(|s| s.published.video_frames_sent >= 5, Duration::from_secs(10)).await?;
    }
    let started = Instant::now();
    let r = http.post(format!("{base}/api/rooms/{room}/broadcast")).send().await?;
    ensure!(r.status().as_u16() == 202, "start broadcast: {}", r.status());

    // The H.264 tile shows red (and the VP8 one green): the main requirement.
    let pl = hls.wait_segment(0, Duration::from_secs(30)).await?;
    let first_msn = pl.segments[0].0;
    let mut red_at = None;
    let mut green_at = None;
    let mut msn = first_msn;
    while msn < first_msn + 15 && (red_at.is_none() || green_at.is_none()) {
        let frames = frames(&hls, msn, &dir).await?;
        let tiles = frames.last().context("a frame")?.tiles(2);
        if close(tiles[0], RED_H264.colour) {
            red_at.get_or_insert(msn);
        }
        if close(tiles[1], GREEN_VP8.colour) {
            green_at.get_or_insert(msn);
        }
        println!("segment {msn}: tiles {}", describe(&tiles));
        msn += 1;
    }
    println!(
        "broadcast start: first segment {first_msn} {:?} after POST; red (H.264) tile from segment {red_at:?}, green (VP8) from {green_at:?}",
        started.elapsed()
    );
    ensure!(red_at.is_some(), "the H.264 publisher's tile never showed red within 15 segments");
    ensure!(green_at.is_some(), "the VP8 publisher's tile never showed green within 15 segments");

    // Publishers joining the live broadcast: H.264 first, then VP8 as the control.
    let blue = join_live(
        &server,
        &hls,
        &dir,
        &base,
        &room,
        &BLUE_H264,
        880.0,
        &[RED_H264.colour, GREEN_VP8.colour, BLUE_H264.colour],
        &mut people,
    )
    .await?;
    let yellow = join_live(
        &server,
        &hls,
        &dir,
        &base,
        &room,
        &YELLOW_VP8,
        550.0,
        &[RED_H264.colour, GREEN_VP8.colour, BLUE_H264.colour, YELLOW_VP8.colour],
        &mut people,
    )
    .await?;
    let published: Vec<String> =
        people.iter().map(|p| format!("{}: {}", p.name(), p.snapshot().published.video_codec.unwrap_or_default())).collect();
    println!("negotiated: {published:?}");

    let r = http.delete(format!("{base}/api/rooms/{room}/broadcast")).send().await?;
    ensure!(r.status().is_success(), "stop broadcast: {}", r.status());
    for p in people {
        p.leave().await;
    }
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);

    let yellow = yellow.context("the VP8 publisher that joined the live broadcast never got a tile")?;
    let blue = blue.context("the H.264 publisher that joined the live broadcast never got a tile")?;
    ensure!(yellow <= TILE_LIMIT_SEGMENTS, "VP8 control: tile {yellow} segments after its legs");
    ensure!(
        blue <= TILE_LIMIT_SEGMENTS,
        "the H.264 publisher's tile showed {blue} segments after its legs (VP8: {yellow}; limit {TILE_LIMIT_SEGMENTS}): the compositor leg \
         started at the IDR slice's packet without the SPS/PPS sent just before it, so the compositor could decode nothing until the \
         encoder's next keyframe (sent only when asked)"
    );
    Ok(())
}
