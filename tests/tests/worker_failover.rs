//! SFU worker death (issue 7): the worker thread that hosts a room panics while three
//! synthetic participants are in it. The gateway replaces the worker, every session gets
//! `reconnect` and a new `welcome` on its socket, the participants open new PeerConnections,
//! publish again, and must be decoding each other (right colours, right tones) within 3 s of
//! the kill. A room on the other worker must not notice anything.
//!
//! Run: `cargo test -p roomcast-e2e --test worker_failover -- --nocapture` (prints the times).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use roomcast_e2e::synthetic::{signaling, Colour, JoinOptions, Snapshot, SyntheticParticipant, COLOUR_TOLERANCE, TONE_TOLERANCE_HZ};

/// Issue 7: "they are all receiving each other's media again within 3 s".
const RECOVERY_LIMIT: Duration = Duration::from_secs(3);

struct Member {
    p: SyntheticParticipant,
    colour: Colour,
    tone_hz: f32,
}

/// `s` shows `colour` and sounds `tone` from `id`, on tracks subscribed after `since`
/// (None: any tracks).
fn receives(s: &Snapshot, id: &str, colour: Colour, tone: Option<f32>, since: Option<Instant>) -> bool {
    s.remote(id).is_some_and(|r| {
        let fresh = |at: Option<Instant>| since.is_none_or(|t| at.is_some_and(|a| a > t));
        fresh(r.subscribed_at)
            && r.video_frames >= 3
            && r.shows(colour, COLOUR_TOLERANCE)
            && tone.is_none_or(|t| fresh(r.audio_subscribed_at) && r.sounds(t, TONE_TOLERANCE_HZ))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_panic_three_participants_recover_within_3s_other_room_undisturbed() -> Result<()> {
    roomcast_e2e::init_test_logs();
    let dir = roomcast_e2e::scratch_dir("failover")?;
    let server = roomcast::start(roomcast::Config::for_tests(&dir)).await?;
    let base = format!("http://{}", server.http_addr);
    let http = reqwest::Client::new();
    let room = signaling::create_room(&http, &base, "failover").await?;
    let other_room = signaling::create_room(&http, &base, "bystander").await?;
    let worker = server.state.rooms.get(&room).context("room in the registry")?.worker;
    let other_worker = server.state.rooms.get(&other_room).context("room in the registry")?.worker;
    ensure!(worker != other_worker, "the two rooms should be on different workers ({worker} and {other_worker})");

    // The room whose worker dies: red, green, blue, decoding everything.
    let mut members = vec![];
    for (name, colour, tone_hz) in [("red", Colour::RED, 440.0), ("green", Colour::GREEN, 660.0), ("blue", Colour::BLUE, 880.0)] {
        let p = SyntheticParticipant::join(&base, &room, name, colour, tone_hz).await?;
        members.push(Member { p, colour, tone_hz });
    }
    // The bystander room on the other worker: video only, decoded.
    let mut bystanders = vec![];
    for (name, colour) in [("yellow", Colour::YELLOW), ("cyan", Colour::CYAN)] {
        let p = SyntheticParticipant::join_with(&base, &other_room, JoinOptions::new(name, colour, 0.0).publish(false, true)).await?;
        bystanders.push(Member { p, colour, tone_hz: 0.0 });
    }

    let pairs = |group: &[Member]| -> Vec<(usize, usize)> {
        (0..group.len()).flat_map(|i| (0..group.len()).filter(move |&j| j != i).map(move |j| (i, j))).collect()
    };
    let all_receive = |group: &[Member], audio: bool, since: Option<Instant>| {
        pairs(group).into_iter().all(|(i, j)| {
            let q = &group[j];
            receives(&group[i].p.snapshot(), q.p.participant_id(), q.colour, audio.then_some(q.tone_hz), since)
        })
    };
    let t0 = Instant::now();
    while !(all_receive(&members, true, None) && all_receive(&bystanders, false, None)) {
        ensure!(
            t0.elapsed() < Duration::from_secs(20),
            "the rooms never got going: {:#?}",
            members.iter().map(|m| m.p.snapshot()).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "both rooms up {:?} after the first join (room {room} on worker {worker}, {other_room} on worker {other_worker})",
        t0.elapsed()
    );

    // Kill the room's worker.
    let handle = &server.state.workers[worker];
    let generation = handle.generation();
    let kill = Instant::now();
    handle.inject_panic();

    // Each (receiver, sender) pair has recovered when the receiver, on tracks subscribed after
    // its `reconnect`, has decoded a frame in the sender's colour and heard the sender's tone.
    // The time is taken from those events as the participant's decoders recorded them (the
    // later of the two), not from when this loop happened to look.
    let recovered_at = |i: usize, j: usize, since: Instant| -> Option<Instant> {
        let (p, q) = (&members[i].p, &members[j]);
        let video = p.first_video_in(q.p.participant_id(), q.colour, COLOUR_TOLERANCE, since)?;
        let audio = p.first_tone(q.p.participant_id(), q.tone_hz, TONE_TOLERANCE_HZ, since)?;
        Some(video.max(audio))
    };
    let mut recovered: BTreeMap<(usize, usize), Duration> = BTreeMap::new();
    let mut reconnected: BTreeMap<usize, (Duration, Option<Duration>, Option<Duration>)> = BTreeMap::new();
    let deadline = kill + Duration::from_secs(15);
    loop {
        let snaps: Vec<Snapshot> = members.iter().map(|m| m.p.snapshot()).collect();
        for (i, s) in snaps.iter().enumerate() {
            if let Some(r) = s.reconnects.last() {
                reconnected.insert(i, (r.at - kill, r.welcome_at.map(|t| t - kill), r.publish_offer_at.map(|t| t - kill)));
            }
        }
        for (i, j) in pairs(&members) {
            if let Some(since) = snaps[i].last_reconnect_at() {
                if let Some(at) = recovered_at(i, j, since) {
                    recovered.entry((i, j)).or_insert(at.saturating_duration_since(kill));
                }
            }
        }
        if recovered.len() == pairs(&members).len() || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let name = |i: usize| members[i].p.name().to_owned();
    for (i, (rc, welcome, offer)) in &reconnected {
        println!("{:<5}: reconnect {rc:?}, new welcome {welcome:?}, publish offer {offer:?} after the kill", name(*i));
    }
    for ((i, j), t) in &recovered {
        let snap = members[*i].p.snapshot();
        let r = snap.remote(members[*j].p.participant_id()).context("remote")?;
        let first = r.first_video_frame_at.map(|t| t.saturating_duration_since(kill));
        let audio = r.first_audio_at.map(|t| t.saturating_duration_since(kill));
        println!(
            "{:<5} <- {:<5}: right colour and tone again {t:?} after the kill (first new video frame {first:?}, first new audio {audio:?})",
            name(*i),
            name(*j)
        );
    }
    ensure!(
        handle.generation() == generation + 1 && handle.is_alive(),
        "worker {worker} was not replaced exactly once (generation {} -> {}, alive {})",
        generation,
        handle.generation(),
        handle.is_alive()
    );
    let missing: Vec<String> =
        pairs(&members).into_iter().filter(|k| !recovered.contains_key(k)).map(|(i, j)| format!("{} <- {}", name(i), name(j))).collect();
    ensure!(
        missing.is_empty(),
        "not receiving again 15 s after the kill: {missing:?}; snapshots: {:#?}",
        members.iter().map(|m| m.p.snapshot()).collect::<Vec<_>>()
    );
    let worst = recovered.values().max().copied().unwrap_or_default();
    println!("all three receive each other again {worst:?} after the worker was killed (limit {RECOVERY_LIMIT:?})");
    ensure!(worst <= RECOVERY_LIMIT, "recovery took {worst:?} (limit {RECOVERY_LIMIT:?})");

    // Not part of the timing: the new tracks keep decoding (>= 3 frames each) in the right
    // colours and tones.
    let since: Vec<Option<Instant>> = members.iter().map(|m| m.p.snapshot().last_reconnect_at()).collect();
    let steady = Instant::now();
    while !pairs(&members).into_iter().all(|(i, j)| {
        let q = &members[j];
        receives(&members[i].p.snapshot(), q.p.participant_id(), q.colour, Some(q.tone_hz), since[i])
    }) {
        ensure!(
            steady.elapsed() < Duration::from_secs(5),
            "not decoding 3 frames in the right colours and tones on the new tracks: {:#?}",
            members.iter().map(|m| m.p.snapshot()).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // New frames keep coming from both others, in the right colours, continuing the counts.
    let after = Instant::now();
    for (i, j) in pairs(&members) {
        let (p, q) = (&members[i].p, &members[j]);
        let mut since_after = p.video_since(q.p.participant_id(), after);
        while since_after.frames < 4 {
            ensure!(
                after.elapsed() < Duration::from_secs(2),
                "{} <- {}: only {} frames in the 2 s after recovery",
                p.name(),
                q.p.name(),
                since_after.frames
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
            since_after = p.video_since(q.p.participant_id(), after);
        }
        let since_kill = p.video_since(q.p.participant_id(), kill);
        let last = since_kill.last_colour().context("a decoded colour")?;
        ensure!(last.is_close_to(q.colour, COLOUR_TOLERANCE), "{} <- {}: shows {last}, expected {}", p.name(), q.p.name(), q.colour);
        let s = p.snapshot();
        let r = s.remote(q.p.participant_id()).context("remote")?;
        ensure!(
            r.video_subscriptions >= 2,
            "{} <- {}: {} video subscriptions (expected one before and one after)",
            p.name(),
            q.p.name(),
            r.video_subscriptions
        );
        ensure!(r.video_frames_total > r.video_frames, "{} <- {}: the total counts both tracks", p.name(), q.p.name());
    }
    println!("4 new frames from each other participant {:?} after recovery", after.elapsed());
    for m in &members {
        let s = m.p.snapshot();
        ensure!(s.reconnects.len() == 1 && s.welcomes == 2, "{}: {} reconnects, {} welcomes", m.p.name(), s.reconnects.len(), s.welcomes);
        ensure!(s.errors.is_empty(), "{}: server errors {:?}", m.p.name(), s.errors);
        ensure!(s.signaling_closed.is_none(), "{}: the signaling socket closed: {:?}", m.p.name(), s.signaling_closed);
    }

    // The other room: no reconnect, and frames never stopped.
    let window = kill.elapsed();
    for (i, j) in pairs(&bystanders) {
        let (p, q) = (&bystanders[i].p, &bystanders[j]);
        let s = p.snapshot();
        ensure!(s.reconnects.is_empty() && s.welcomes == 1, "{} (other worker) was told to reconnect", p.name());
        ensure!(s.errors.is_empty(), "{}: server errors {:?}", p.name(), s.errors);
        let f = p.video_since(q.p.participant_id(), kill);
        // 15 fps; at least half of them on a busy 2-core machine (a stop would lose far more).
        let expected = (window.as_secs_f64() * 15.0 * 0.5) as u64;
        ensure!(
            f.frames >= expected,
            "{} <- {}: {} frames in the {window:?} since the kill (expected >= {expected})",
            p.name(),
            q.p.name(),
            f.frames
        );
        let last = f.last_at.context("frames")?;
        ensure!(last.elapsed() < Duration::from_millis(1500), "{} <- {}: last frame {:?} ago", p.name(), q.p.name(), last.elapsed());
        ensure!(f.last_colour().is_some_and(|c| c.is_close_to(q.colour, COLOUR_TOLERANCE)), "{} <- {}: wrong colour", p.name(), q.p.name());
        println!("{} <- {} (other worker): {} frames in the {window:?} since the kill, no reconnect", p.name(), q.p.name(), f.frames);
    }

    for m in members.into_iter().chain(bystanders) {
        m.p.leave().await;
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
