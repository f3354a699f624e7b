//! Broadcast end to end: synthetic participants in a live room → SFU plain-RTP legs →
//! `roomcast-compositor` → hls-out → the test reads `/hls/{id}/index.m3u8` like a player,
//! decodes segments with ffmpeg and checks the picture tile by tile.
//!
//! Needs the compositor binary built (`cargo build -p roomcast-compositor`; tests/run.sh does)
//! and ffmpeg/ffprobe. Run: `cargo test -p roomcast-e2e --test broadcast_e2e -- --nocapture`.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use roomcast_e2e::compositor_bin;
use roomcast_e2e::hls::grid::{close, describe, is_placeholder, Hls};
use roomcast_e2e::synthetic::signaling::ClientMessage;
use roomcast_e2e::synthetic::{signaling, Colour, JoinOptions, SyntheticParticipant};

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
    ensure!(
        segment.streams.contains("codec_name=h264") && segment.streams.contains("width=1280") && segment.streams.contains("height=720"),
        "video stream: {}",
        segment.streams
    );
    ensure!(segment.streams.contains("codec_name=aac"), "audio stream: {}", segment.streams);
    ensure!((28..=32).contains(&segment.frames.len()), "a 1 s segment at 30 fps, got {} frames", segment.frames.len());
    let tiles = segment.last().tiles(3);
    ensure!(is_placeholder(tiles[3]), "the empty 4th slot shows a placeholder, got {}", tiles[3]);
    ensure!(pl.text.contains("#EXT-X-PART:"), "LL-HLS parts are listed");

    // Ops figures for the live pipeline: the compositor decodes the three inputs, encodes,
    // and every part reaches the playlist soon after its last frame was composed.
    let waiting = Instant::now();
    let figures = loop {
        let st = server.state.broadcasts.status(&room).context("broadcast status")?;
        let f = &st.figures;
        if f.fps_in.is_some_and(|v| v > 0.0) && f.encode_ms.is_some() && st.part_publish_delay_ms.is_some() {
            break st;
        }
        ensure!(
            waiting.elapsed() < Duration::from_secs(30),
            "no compositor figures yet: {:?}, part delay {:?}",
            st.figures,
            st.part_publish_delay_ms
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let part_delay_ms = figures.part_publish_delay_ms.unwrap_or_default();
    println!("pipeline figures: {:?}; last part publish delay {part_delay_ms:.1} ms", figures.figures);
    ensure!(figures.figures.encode_ms.is_some_and(|ms| ms > 0.0 && ms < 1000.0), "encode time {:?}", figures.figures.encode_ms);
    // One part's delay is one sample (a descheduled moment can make it long); the mean over
    // all parts below is the check.
    ensure!(part_delay_ms > 0.0, "part publish delay {part_delay_ms} ms");
    let metrics = http.get(format!("{base}/metrics")).send().await?.text().await?;
    let sample = |name: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with(name) && l.contains(&format!("room=\"{room}\"")))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
    };
    let (count, sum) = (sample("roomcast_hls_part_publish_delay_seconds_count"), sample("roomcast_hls_part_publish_delay_seconds_sum"));
    ensure!(count.is_some_and(|c| c >= 1.0), "part publish delay histogram count {count:?}");
    let mean = sum.unwrap_or(f64::NAN) / count.unwrap_or(f64::NAN);
    ensure!(mean > 0.0 && mean < 2.0, "mean part publish delay {mean} s");
    ensure!(sample("roomcast_broadcast_fps_in").is_some_and(|v| v > 0.0), "broadcast_fps_in in /metrics");
    println!("/metrics: {} parts, mean publish delay {:.1} ms", count.unwrap_or_default(), mean * 1000.0);

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
        ensure!(
            joining.elapsed() < Duration::from_secs(15),
            "yellow's legs ({legs}, was {legs_before}) or publish connection ({connected_at:?}) missing 15 s after joining"
        );
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
            println!(
                "yellow tile in segment {msn} from frame {from:?}, {} segment(s) after its legs and connection (limit 3)",
                msn - last_before
            );
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
                println!(
                    "camera {} → green tile {} in segment {m}, {} segment(s) later",
                    if muted { "off" } else { "on" },
                    if want_green { "back" } else { "a placeholder" },
                    m - last_before
                );
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
    println!(
        "segments {}..={}: durations {:?}",
        pl.media_sequence,
        complete.last().unwrap().0,
        complete.iter().map(|s| s.2).collect::<Vec<_>>()
    );

    // Lip sync end to end: the publishers' SRs (str0m sends audio's every few seconds) reach
    // the compositor through the legs, which then knows how to line up each participant's
    // audio and video.
    let waiting = Instant::now();
    let sync = loop {
        let st = server.state.broadcasts.status(&room).context("broadcast status")?;
        if let Some((who, tracks)) = st.figures.av_sync_ms.iter().find(|(_, t)| t.len() == 2) {
            break format!("{who}: {tracks:?}");
        }
        ensure!(
            waiting.elapsed() < Duration::from_secs(30),
            "no participant's audio and video were synced from SRs within 30 s: {:?}",
            st.figures.av_sync_ms
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    println!("lip sync from the publishers' SRs after {:?}: {sync} (ms held back per track)", waiting.elapsed());

    let r = http.delete(format!("{base}/api/rooms/{room}/broadcast")).send().await?;
    ensure!(r.status().is_success(), "stop broadcast: {}", r.status());
    for p in people {
        p.leave().await;
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
