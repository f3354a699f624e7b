//! NACK/RTX through the SFU under real packet loss. The gateway runs with fault injection and
//! drops 5 % of the datagrams on one path (`POST /api/ops/faults/blackhole` with
//! `loss_percent` and `only`): first from the SFU to the viewer (the SFU answers the viewer's
//! NACKs from its RTX cache), then from the publisher to the SFU (the SFU NACKs the publisher).
//! The viewer keeps decoding through it; without NACK/RTX every lost packet breaks the picture
//! until a keyframe answers a PLI.
//!
//! Run: `cargo test -p roomcast-e2e --test packet_loss -- --nocapture` (prints the figures).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use roomcast_e2e::synthetic::{signaling, Colour, JoinOptions, SyntheticParticipant};

/// 5 % over 10 s: ~7 lost video packets a window. Repaired by RTX, the viewer's frames stay
/// contiguous (a PLI only when a retransmission is lost too, ~1 in 20); unrepaired, each loss
/// breaks the picture and the viewer asks for a keyframe (PLI).
const LOSS_PERCENT: u8 = 5;
const LOSS_FOR: Duration = Duration::from_secs(10);
/// The publisher's frame rate (tests/src/synthetic/media.rs).
const FPS: f64 = 15.0;

struct Window {
    decoded: u64,
    received: u64,
    keyframe_requests: u64,
    nacks_sent: u64,
    nacks_received: u64,
    longest_gap: Duration,
}

/// What the receiver got from `from` while `body` ran, and the SFU's NACK counters meanwhile.
async fn measure(
    server: &roomcast::RunningServer,
    rx: &SyntheticParticipant,
    from: &str,
    body: impl std::future::Future<Output = Result<()>>,
) -> Result<Window> {
    let nacks = |f: fn(&roomcast::sfu::WorkerStats) -> u64| server.state.workers.iter().map(|w| f(&w.stats)).sum::<u64>();
    let sent = |s: &roomcast::sfu::WorkerStats| s.nacks_sent.load(Ordering::Relaxed);
    let received = |s: &roomcast::sfu::WorkerStats| s.nacks_received.load(Ordering::Relaxed);
    let before = rx.snapshot().remote(from).cloned().context("the publisher is known")?;
    let (sent0, received0) = (nacks(sent), nacks(received));
    let start = Instant::now();
    body.await?;
    let after = rx.snapshot().remote(from).cloned().context("the publisher is known")?;
    // Decoded frames in the window, and the longest time without one (a frozen picture).
    let frames = rx.video_since(from, start);
    let mut times: Vec<Instant> = vec![start];
    times.extend(frames.times.iter().copied());
    times.push(Instant::now());
    let longest_gap = times.windows(2).map(|w| w[1].saturating_duration_since(w[0])).max().unwrap_or_default();
    Ok(Window {
        decoded: frames.frames,
        received: after.video_frames_received_total - before.video_frames_received_total,
        keyframe_requests: after.keyframe_requests_sent - before.keyframe_requests_sent,
        nacks_sent: nacks(sent) - sent0,
        nacks_received: nacks(received) - received0,
        longest_gap,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_percent_loss_is_repaired_by_nack_and_rtx() -> Result<()> {
    roomcast_e2e::init_test_logs();
    let dir = roomcast_e2e::scratch_dir("loss")?;
    let mut config = roomcast::Config::for_tests(&dir);
    config.fault_injection = true;
    let server = roomcast::start(config).await?;
    let base = format!("http://{}", server.http_addr);
    let http = reqwest::Client::new();
    let room = signaling::create_room(&http, &base, "loss").await?;

    let publisher = SyntheticParticipant::join_with(&base, &room, JoinOptions::new("red", Colour::RED, 440.0).publish(false, true)).await?;
    let viewer = SyntheticParticipant::join_with(&base, &room, JoinOptions::receive_only("viewer")).await?;
    let from = publisher.participant_id().to_owned();
    viewer
        .wait_until(|s| s.remote(&from).is_some_and(|r| r.video_frames >= 15 && r.shows(Colour::RED, 40)), Duration::from_secs(20))
        .await
        .context("the viewer decodes the publisher")?;

    let fault = |who: String, loss_percent: u8, only: &'static str| {
        let (http, base, room) = (http.clone(), base.clone(), room.clone());
        async move {
            let body = serde_json::json!({"room": room, "participant_id": who, "ms": LOSS_FOR.as_millis() as u64, "loss_percent": loss_percent, "only": only});
            let r = http.post(format!("{base}/api/ops/faults/blackhole")).json(&body).send().await?;
            ensure!(r.status().as_u16() == 204, "fault request: {} {}", r.status(), r.text().await.unwrap_or_default());
            tokio::time::sleep(LOSS_FOR).await;
            Ok(())
        }
    };
    // A bad share is refused clearly.
    let bad = http
        .post(format!("{base}/api/ops/faults/blackhole"))
        .json(&serde_json::json!({"room": room, "participant_id": from, "ms": 1000, "loss_percent": 0}))
        .send()
        .await?;
    ensure!(bad.status().as_u16() == 400, "loss_percent 0: {}", bad.status());

    let clean = measure(&server, &viewer, &from, async {
        tokio::time::sleep(LOSS_FOR).await;
        Ok(())
    })
    .await?;
    let down = measure(&server, &viewer, &from, fault(viewer.participant_id().to_owned(), LOSS_PERCENT, "to_participant")).await?;
    let up = measure(&server, &viewer, &from, fault(from.clone(), LOSS_PERCENT, "from_participant")).await?;

    let nominal = FPS * LOSS_FOR.as_secs_f64();
    for (what, w) in [("no loss", &clean), ("5 % loss SFU → viewer", &down), ("5 % loss publisher → SFU", &up)] {
        println!(
            "{what:<26} over {LOSS_FOR:?}: decoded {} / received {} frames ({:.0} % of {nominal:.0}), longest gap {:?}, viewer PLIs {}, SFU NACKs to publisher {}, NACKs from viewer {}",
            w.decoded,
            w.received,
            100.0 * w.decoded as f64 / nominal,
            w.longest_gap,
            w.keyframe_requests,
            w.nacks_sent,
            w.nacks_received
        );
    }
    // The viewer's lost packets were asked for again and resent from the SFU's RTX cache; the
    // publisher's lost packets were asked for by the SFU.
    ensure!(down.nacks_received > 0, "the viewer's NACKs never reached the SFU");
    ensure!(up.nacks_sent > 0, "the SFU never NACKed the publisher's lost packets");
    // Repaired, the picture stays whole: the viewer hardly ever needs a keyframe. Unrepaired, every
    // loss breaks it and the viewer sends a PLI (with the SFU's RTX cache switched off by hand:
    // 6 and 8 PLIs in two runs of the viewer-side window, against 0–1 with it).
    for (what, w) in [("viewer-side loss", &down), ("publisher-side loss", &up)] {
        ensure!(w.keyframe_requests <= 2, "{what}: the viewer asked for {} keyframes: losses were not repaired", w.keyframe_requests);
        ensure!(w.decoded as f64 >= 0.7 * clean.decoded as f64, "{what}: decoded {} frames vs {} without loss", w.decoded, clean.decoded);
        ensure!(w.longest_gap < Duration::from_secs(3), "{what}: the picture froze for {:?}", w.longest_gap);
    }
    Ok(())
}
