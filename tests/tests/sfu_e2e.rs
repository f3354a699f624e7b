//! End-to-end through the real gateway: synthetic participants join one room over HTTP +
//! WebSocket + WebRTC, publish VP8 colours and Opus tones, and check what they decode.
//!
//! Run: `cargo test -p roomcast-e2e --test sfu_e2e -- --nocapture` (prints the timings).
//! `RUST_LOG=roomcast=debug,roomcast_e2e=debug` shows both sides' logs.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use roomcast_e2e::synthetic::{signaling, Colour, JoinOptions, ServerMessage, SyntheticParticipant, COLOUR_TOLERANCE};

struct Spec {
    name: &'static str,
    colour: Colour,
    tone_hz: f32,
}

const SPECS: [Spec; 3] = [
    Spec { name: "red", colour: Colour::RED, tone_hz: 440.0 },
    Spec { name: "green", colour: Colour::GREEN, tone_hz: 660.0 },
    Spec { name: "blue", colour: Colour::BLUE, tone_hz: 880.0 },
];
const LATE: Spec = Spec { name: "late", colour: Colour::YELLOW, tone_hz: 550.0 };

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_of_three_late_joiner_and_leaver() -> Result<()> {
    roomcast_e2e::init_test_logs();
    let dir = roomcast_e2e::scratch_dir("sfu")?;
    let server = roomcast::start(roomcast::Config::for_tests(&dir)).await?;
    let base = format!("http://{}", server.http_addr);
    let http = reqwest::Client::new();
    let room = signaling::create_room(&http, &base, "e2e").await?;

    // Phase 1: three publishers; each decodes the other two.
    let t0 = Instant::now();
    let mut people = vec![];
    for s in &SPECS {
        people.push(SyntheticParticipant::join(&base, &room, s.name, s.colour, s.tone_hz).await?);
    }
    let ids: Vec<String> = people.iter().map(|p| p.participant_id().to_owned()).collect();
    for (i, p) in people.iter().enumerate() {
        let others: Vec<(&str, Colour, f32)> =
            SPECS.iter().enumerate().filter(|(j, _)| *j != i).map(|(j, s)| (ids[j].as_str(), s.colour, s.tone_hz)).collect();
        p.wait_sees_and_hears(&others, Duration::from_secs(20)).await?;
    }
    println!("three participants see and hear each other {:?} after the first join", t0.elapsed());
    for p in &people {
        for (id, r) in p.remote() {
            println!(
                "  {} <- {:<6} colour {} tone {:?} Hz level {:?} dBFS, first frame {:?} after subscribing, {} frames",
                p.name(),
                r.name.clone().unwrap_or(id),
                r.mean_rgb.map(|c| c.to_string()).unwrap_or_default(),
                r.audio_freq_hz.map(|f| f.round()),
                r.audio_level.map(|l| l.round()),
                r.time_to_first_video_frame(),
                r.video_frames
            );
        }
    }

    let plis_before: Vec<u64> = people.iter().map(|p| p.snapshot().published.keyframe_requests).collect();

    // Phase 2: a late joiner that never asks for keyframes itself: the SFU must (PLI when a
    // consumer starts), or the first frame never comes (the publishers send keyframes only when asked).
    let late =
        SyntheticParticipant::join_with(&base, &room, JoinOptions::new(LATE.name, LATE.colour, LATE.tone_hz).request_keyframes(false))
            .await?;
    let everyone: Vec<(&str, Colour, f32)> = SPECS.iter().zip(&ids).map(|(s, id)| (id.as_str(), s.colour, s.tone_hz)).collect();
    let snap = late
        .wait_until(
            |s| everyone.iter().all(|(id, _, _)| s.remote(id).is_some_and(|r| r.first_video_frame_at.is_some())),
            Duration::from_secs(10),
        )
        .await?;
    let mut worst = Duration::ZERO;
    for (id, colour, _) in &everyone {
        let r = snap.remote(id).context("remote present")?;
        let took = r.time_to_first_video_frame().context("first frame and subscription known")?;
        println!(
            "late joiner: first decoded frame of {:?} {:?} after its subscribe answer (keyframes received {}, PLIs sent by us {})",
            r.name, took, r.video_keyframes_received, r.keyframe_requests_sent
        );
        assert!(r.shows(*colour, COLOUR_TOLERANCE) || r.video_frames <= 1, "{r:#?}");
        worst = worst.max(took);
    }
    println!("late joiner: slowest first frame {worst:?} after subscribing (limit 1 s)");
    for (p, before) in people.iter().zip(&plis_before) {
        let after = p.snapshot().published.keyframe_requests;
        println!("  {} received {} keyframe request(s) from the SFU for the late joiner", p.name(), after - before);
    }
    assert!(worst <= Duration::from_secs(1), "late joiner waited {worst:?} for a first frame");
    late.wait_sees_and_hears(&everyone, Duration::from_secs(10)).await?;
    for p in &people {
        p.wait_sees_and_hears(&[(late.participant_id(), LATE.colour, LATE.tone_hz)], Duration::from_secs(10)).await?;
    }

    // Phase 3: red leaves; everyone else's subscribe PeerConnection loses red's tracks.
    let red = people.remove(0);
    let red_id = red.participant_id().to_owned();
    let left_at = Instant::now();
    red.leave().await;
    let mut stayers: Vec<&SyntheticParticipant> = people.iter().collect();
    stayers.push(&late);
    for p in &stayers {
        let snap = p
            .wait_until(
                |s| {
                    !s.participants_in_latest_offer().contains(&red_id)
                        && s.remote(&red_id).is_some_and(|r| r.left && r.tracks_active == 0)
                        // The offer is recorded before its answer is sent: wait for both (the
                        // snapshot's offer is the one `latest_tracks` describes, read together).
                        && s.latest_offer.as_ref().is_some_and(|o| o.answered_at.is_some())
                },
                Duration::from_secs(10),
            )
            .await
            .with_context(|| format!("{} still has red's tracks", p.name()))?;
        let offer = snap.latest_offer.as_ref().context("an offer")?;
        let answered = offer.answered_at.context("the offer without red was answered")?;
        println!(
            "{}: red's tracks gone from the subscribe offer {:?} after leave (inactive mids now {:?})",
            p.name(),
            answered.saturating_duration_since(left_at),
            snap.latest_inactive_mids
        );
        let log = p.signaling_log();
        let after: Vec<&str> = log.iter().filter(|m| m.at >= left_at).map(|m| m.message.type_name()).collect();
        println!("{}: messages after red's leave: {after:?}", p.name());
        assert!(
            log.iter().any(|m| matches!(&m.message, ServerMessage::ParticipantLeft { participant_id } if participant_id == &red_id)),
            "{} got no participant_left for red",
            p.name()
        );
        // The m-lines that carried red are inactive (or reused for someone else).
        let red_mids: Vec<String> =
            p.track_views().iter().filter(|v| v.record.info.participant_id == red_id).map(|v| v.record.info.mid.clone()).collect();
        for mid in &red_mids {
            let reused = offer.tracks.iter().any(|t| &t.mid == mid);
            assert!(
                reused || offer.inactive_mids.contains(mid),
                "{}: red's mid {mid} is neither inactive nor reused in the latest offer: {}",
                p.name(),
                offer.sdp
            );
        }
    }

    // Red's media stops; everyone else keeps flowing.
    let before: BTreeMap<String, u64> =
        stayers.iter().map(|p| (p.name().to_owned(), p.remote().get(&red_id).map_or(0, |r| r.video_frames))).collect();
    tokio::time::sleep(Duration::from_millis(700)).await;
    for p in &stayers {
        let now = p.remote().get(&red_id).map_or(0, |r| r.video_frames);
        assert!(now <= before[p.name()] + 1, "{}: red's video still decoding ({} -> {now})", p.name(), before[p.name()]);
    }
    let green_id = ids[1].clone();
    let blue_id = ids[2].clone();
    late.wait_sees_and_hears(&[(&green_id, Colour::GREEN, 660.0), (&blue_id, Colour::BLUE, 880.0)], Duration::from_secs(5)).await?;
    let start = late.remote().get(&blue_id).map_or(0, |r| r.video_frames);
    late.wait_until(|s| s.remote(&blue_id).is_some_and(|r| r.video_frames >= start + 5), Duration::from_secs(5)).await?;

    for p in people.iter().chain([&late]) {
        let s = p.snapshot();
        assert!(s.errors.is_empty(), "{} saw signaling errors: {:?}", p.name(), s.errors);
        if !s.unknown_messages.is_empty() {
            println!("{}: messages this client does not know (protocol.md drift?): {:?}", p.name(), s.unknown_messages);
        }
    }
    for p in people {
        p.leave().await;
    }
    late.leave().await;
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// A receive-only participant (as benchmarks use) publishes nothing and decodes everyone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receive_only_participant_publishes_nothing_and_decodes_everyone() -> Result<()> {
    roomcast_e2e::init_test_logs();
    let dir = roomcast_e2e::scratch_dir("recvonly")?;
    let server = roomcast::start(roomcast::Config::for_tests(&dir)).await?;
    let base = format!("http://{}", server.http_addr);
    let room = signaling::create_room(&reqwest::Client::new(), &base, "e2e-recvonly").await?;

    let watcher = SyntheticParticipant::join_with(&base, &room, JoinOptions::receive_only("watcher")).await?;
    let a = SyntheticParticipant::join(&base, &room, "magenta", Colour::MAGENTA, 330.0).await?;
    let b = SyntheticParticipant::join(&base, &room, "cyan", Colour::CYAN, 990.0).await?;
    let expected = [(a.participant_id(), Colour::MAGENTA, 330.0), (b.participant_id(), Colour::CYAN, 990.0)];
    watcher.wait_sees_and_hears(&expected, Duration::from_secs(15)).await?;
    let s = watcher.snapshot();
    assert!(s.publish.is_none(), "a receive-only participant has no publish PeerConnection");
    assert_eq!(s.published.video_frames_sent + s.published.audio_frames_sent, 0);

    // The publishers see each other but get no track from the watcher.
    a.wait_sees_and_hears(&[(b.participant_id(), Colour::CYAN, 990.0)], Duration::from_secs(10)).await?;
    for p in [&a, &b] {
        let s = p.snapshot();
        assert!(
            !s.participants_in_latest_offer().contains(watcher.participant_id()),
            "{}: the watcher publishes nothing, yet the offer has tracks of it: {:?}",
            p.name(),
            s.latest_tracks
        );
        assert!(s.remote(watcher.participant_id()).is_none_or(|r| r.tracks_active == 0));
        assert!(s.errors.is_empty(), "{}: {:?}", p.name(), s.errors);
    }
    for (id, r) in watcher.remote() {
        println!("watcher <- {id}: first frame {:?} after subscribing", r.time_to_first_video_frame());
    }
    // A call long enough for the SFU's stats (str0m reports once a second) to be sampled.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let ids = [(a.participant_id().to_owned(), true), (b.participant_id().to_owned(), true), (watcher.participant_id().to_owned(), false)];
    watcher.leave().await;
    a.leave().await;
    b.leave().await;

    // Each session's call stats (sampled by the SFU) are summarized in the store on leave.
    // (The server ends each session a moment after the client closes its socket.)
    let store = server.state.rooms.store().context("the server has a store")?;
    let deadline = Instant::now() + Duration::from_secs(5);
    let sessions = loop {
        server.state.rooms.flush().await;
        let sessions = store.sessions(&room).await?;
        if sessions.iter().filter(|s| s.left_at.is_some()).count() >= 3 || Instant::now() > deadline {
            break sessions;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut rtts = Vec::new();
    for (who, publishes) in ids {
        let session = sessions.iter().find(|s| s.participant == who).context("a session record")?;
        let stats = session.stats.as_ref().with_context(|| format!("{who}: no call stats summary"))?;
        println!("{who}: {stats:?}");
        ensure!(session.left_at.is_some() && stats.samples >= 1, "{who}: {session:?}");
        if publishes {
            // Opus (~32 kbit/s) + VP8 of a flat colour from the synthetic participant.
            ensure!(stats.bitrate_avg_bps > 20_000, "{who} published, yet the sampled bitrate is {} bps", stats.bitrate_avg_bps);
        } else {
            ensure!(stats.bitrate_avg_bps == 0, "{who} publishes nothing, yet {} bps", stats.bitrate_avg_bps);
        }
        ensure!((0.0..=1.0).contains(&stats.loss_max), "{who}: loss {}", stats.loss_max);
        ensure!(stats.rtt_max_ms < 500.0, "{who}: RTT {} ms on loopback", stats.rtt_max_ms);
        rtts.push(stats.rtt_max_ms);
    }
    // Receiver reports give an RTT (sub-millisecond here); RTCP timing is randomized, so within
    // 2.5 s at least one participant's reports, not necessarily all, have come back.
    ensure!(rtts.iter().any(|r| *r > 0.0), "no RTT measured for anyone: {rtts:?}");
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Three join at the same moment: the server folds producer changes into later offers (never
/// two in flight) and everyone still ends up decoding everyone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_joins_converge() -> Result<()> {
    roomcast_e2e::init_test_logs();
    let dir = roomcast_e2e::scratch_dir("together")?;
    let server = roomcast::start(roomcast::Config::for_tests(&dir)).await?;
    let base = format!("http://{}", server.http_addr);
    let room = signaling::create_room(&reqwest::Client::new(), &base, "e2e-together").await?;

    let joins = SPECS.iter().map(|s| SyntheticParticipant::join(&base, &room, s.name, s.colour, s.tone_hz));
    let people: Vec<SyntheticParticipant> = futures_util::future::join_all(joins).await.into_iter().collect::<Result<_>>()?;
    let t0 = Instant::now();
    for (i, p) in people.iter().enumerate() {
        let others: Vec<(&str, Colour, f32)> = people
            .iter()
            .zip(&SPECS)
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, (q, s))| (q.participant_id(), s.colour, s.tone_hz))
            .collect();
        p.wait_sees_and_hears(&others, Duration::from_secs(15)).await?;
    }
    println!("simultaneous joins: everyone decodes everyone {:?} after the joins returned", t0.elapsed());
    for p in &people {
        let s = p.snapshot();
        println!("  {}: {} subscribe offer(s)", p.name(), s.offers_received);
        assert!(s.errors.is_empty(), "{}: {:?}", p.name(), s.errors);
        assert_eq!(s.latest_tracks.len(), 4, "{}: two tracks from each of the two others: {:?}", p.name(), s.latest_tracks);
    }
    for p in people {
        p.leave().await;
    }
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
