//! H.264 through the SFU: a synthetic participant publishes constrained-baseline H.264
//! (x264, Annex-B access units, packetization-mode 1 as browsers send it) next to a VP8
//! publisher in one room of the real in-process gateway; each decodes the other.
//!
//! Run: `cargo test -p roomcast-e2e --test h264_e2e -- --nocapture --test-threads 1` (prints
//! the negotiated codec of every track and the timings).
//! `RUST_LOG=roomcast=debug,roomcast_e2e=debug` shows both sides' logs.
//!
//! Two of these tests found gateway bugs, since fixed (see tests/README.md): the SFU started an
//! H.264 consumer at the IDR slice's packet without the SPS/PPS sent just before it
//! (`late_joiner_gets_an_h264_keyframe_promptly`), and sent H.264 to a receiver whose answer
//! has no H.264 (`vp8_only_receiver_in_a_room_with_an_h264_publisher`).

use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use roomcast_e2e::synthetic::{
    signaling, tracks, Colour, JoinOptions, RemoteMedia, SyntheticParticipant, VideoCodec, COLOUR_TOLERANCE, TONE_TOLERANCE_HZ,
};

// The codecs and the YUV round trip move a solid colour by a few levels; colours here differ by 255.

const H264_COLOUR: Colour = Colour::RED;
const H264_TONE: f32 = 440.0;
const VP8_COLOUR: Colour = Colour::GREEN;
const VP8_TONE: f32 = 660.0;

/// What `who` publishes and, per remote participant, the codec of each track it receives.
fn print_codecs(who: &SyntheticParticipant) {
    let s = who.snapshot();
    println!("  {} publishes video as {}", who.name(), s.published.video_codec.as_deref().unwrap_or("(nothing)"));
    for (id, r) in &s.remotes {
        println!(
            "  {} <- {}: video {}, audio {}; {} frames decoded, {} keyframes received ({} without SPS/PPS), {} PLIs sent",
            who.name(),
            r.name.clone().unwrap_or_else(|| id.clone()),
            r.video_codec.as_deref().unwrap_or("-"),
            r.audio_codec.as_deref().unwrap_or("-"),
            r.video_frames,
            r.video_keyframes_received,
            r.video_keyframes_without_parameter_sets,
            r.keyframe_requests_sent
        );
    }
}

fn is_h264(codec: Option<&str>) -> bool {
    codec.is_some_and(|c| c.starts_with("H264/90000") && c.contains("profile-level-id 42e01f") && c.contains("packetization-mode 1"))
}

fn is_vp8(codec: Option<&str>) -> bool {
    codec.is_some_and(|c| c.starts_with("VP8/90000"))
}

struct Room {
    server: roomcast::RunningServer,
    base: String,
    room: String,
    dir: std::path::PathBuf,
}

async fn start_room(tag: &str) -> Result<Room> {
    roomcast_e2e::init_test_logs();
    let dir = roomcast_e2e::scratch_dir(tag)?;
    let server = roomcast::start(roomcast::Config::for_tests(&dir)).await?;
    let base = format!("http://{}", server.http_addr);
    let room = signaling::create_room(&reqwest::Client::new(), &base, tag).await?;
    Ok(Room { server, base, room, dir })
}

impl Room {
    /// An H.264 publisher and a VP8 publisher that see and hear each other.
    async fn two_publishers(&self) -> Result<(SyntheticParticipant, SyntheticParticipant)> {
        let h264 = SyntheticParticipant::join_with(
            &self.base,
            &self.room,
            JoinOptions::new("h264", H264_COLOUR, H264_TONE).video_codec(VideoCodec::H264),
        )
        .await?;
        let vp8 = SyntheticParticipant::join_with(&self.base, &self.room, JoinOptions::new("vp8", VP8_COLOUR, VP8_TONE)).await?;
        let t0 = Instant::now();
        vp8.wait_sees_and_hears(&[(h264.participant_id(), H264_COLOUR, H264_TONE)], Duration::from_secs(20)).await?;
        h264.wait_sees_and_hears(&[(vp8.participant_id(), VP8_COLOUR, VP8_TONE)], Duration::from_secs(20)).await?;
        println!("H.264 and VP8 publishers see and hear each other {:?} after both joined", t0.elapsed());
        Ok((h264, vp8))
    }

    async fn end(self, people: Vec<SyntheticParticipant>) {
        for p in people {
            p.leave().await;
        }
        self.server.shutdown().await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h264_and_vp8_publishers_see_and_hear_each_other() -> Result<()> {
    let room = start_room("h264-mixed").await?;
    let t0 = Instant::now();
    let (h264, vp8) = room.two_publishers().await?;
    for p in [&h264, &vp8] {
        print_codecs(p);
    }

    // Each side negotiated what it was meant to: H.264 constrained baseline with
    // packetization-mode 1 from the H.264 publisher (the only video codec it offered), VP8
    // from the other; the SFU forwards each as it came, on a payload type each receiver knows.
    let hs = h264.snapshot();
    let vs = vp8.snapshot();
    ensure!(is_h264(hs.published.video_codec.as_deref()), "h264 publishes {:?}", hs.published.video_codec);
    ensure!(is_vp8(vs.published.video_codec.as_deref()), "vp8 publishes {:?}", vs.published.video_codec);
    let vp8_sees = vs.remote(h264.participant_id()).context("vp8 knows h264")?;
    let h264_sees = hs.remote(vp8.participant_id()).context("h264 knows vp8")?;
    ensure!(is_h264(vp8_sees.video_codec.as_deref()), "vp8 receives h264's video as {:?}", vp8_sees.video_codec);
    ensure!(is_vp8(h264_sees.video_codec.as_deref()), "h264 receives vp8's video as {:?}", h264_sees.video_codec);
    for r in [vp8_sees, h264_sees] {
        ensure!(r.audio_codec.as_deref().is_some_and(|c| c.starts_with("opus/48000")), "audio {:?}", r.audio_codec);
    }
    ensure!(hs.published.video_keyframes_sent >= 1 && hs.published.video_frames_sent >= 5, "{:?}", hs.published);

    // A colour flip on the H.264 publisher (a forced IDR) reaches the VP8 publisher's decoder.
    let id = h264.set_colour(Colour::BLUE)?;
    let flip = h264.wait_flip_sent(id, Duration::from_secs(5)).await?;
    ensure!(flip.keyframe, "a flip is sent as an IDR");
    let seen = vp8
        .wait_until(|s| s.remote(h264.participant_id()).is_some_and(|r| r.shows(Colour::BLUE, COLOUR_TOLERANCE)), Duration::from_secs(10))
        .await?;
    let first_blue = vp8.first_video_in(h264.participant_id(), Colour::BLUE, COLOUR_TOLERANCE, t0).context("a first blue frame")?;
    println!(
        "H.264 colour flip: first blue frame decoded by vp8 {:?} after it left h264's encoder",
        first_blue.saturating_duration_since(flip.sent_at)
    );
    ensure!(seen.remote(h264.participant_id()).is_some_and(|r| r.video_codec.as_deref().is_some_and(|c| c.starts_with("H264"))));

    // Video keeps flowing both ways for a while, no signaling errors.
    let mark = Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let from_h264 = vp8.video_since(h264.participant_id(), mark).frames;
    let from_vp8 = h264.video_since(vp8.participant_id(), mark).frames;
    println!("frames decoded in 2 s: vp8 <- h264 {from_h264}, h264 <- vp8 {from_vp8} (15 fps sent)");
    ensure!(from_h264 >= 15 && from_vp8 >= 15, "video stalled: {from_h264} / {from_vp8} frames in 2 s");
    for p in [&h264, &vp8] {
        let s = p.snapshot();
        ensure!(s.errors.is_empty(), "{}: {:?}", p.name(), s.errors);
    }
    room.end(vec![h264, vp8]).await;
    Ok(())
}

/// One late joiner's first frames of one publisher.
struct FirstFrame {
    publisher: &'static str,
    codec: Option<String>,
    /// Subscribe answer → first keyframe received (decodable or not).
    first_keyframe: Option<Duration>,
    /// Subscribe answer → first keyframe a decoder can start from.
    first_decodable_keyframe: Option<Duration>,
    /// Subscribe answer → first decoded frame.
    first_frame: Option<Duration>,
    keyframes_without_parameter_sets: u64,
    /// H.264: NAL unit types of the first keyframe that arrived.
    first_keyframe_nals: Option<Vec<u8>>,
    plis_sent: u64,
}

impl FirstFrame {
    fn of(publisher: &'static str, r: &RemoteMedia) -> Self {
        let since = |t: Option<Instant>| Some(t?.saturating_duration_since(r.subscribed_at?));
        FirstFrame {
            publisher,
            codec: r.video_codec.clone(),
            first_keyframe: since(r.first_video_keyframe_at),
            first_decodable_keyframe: since(r.first_decodable_keyframe_at),
            first_frame: r.time_to_first_video_frame(),
            keyframes_without_parameter_sets: r.video_keyframes_without_parameter_sets,
            first_keyframe_nals: r.first_keyframe_nal_types.clone(),
            plis_sent: r.keyframe_requests_sent,
        }
    }

    fn print(&self, joiner: &str) {
        println!(
            "  {joiner}: {} ({}): first keyframe {:?} (NAL types {:?}), first decodable keyframe {:?}, first decoded frame {:?} after its subscribe answer; {} IDR(s) without SPS/PPS, {} PLI(s) sent by the joiner",
            self.publisher,
            self.codec.as_deref().unwrap_or("-"),
            self.first_keyframe,
            self.first_keyframe_nals,
            self.first_decodable_keyframe,
            self.first_frame,
            self.keyframes_without_parameter_sets,
            self.plis_sent
        );
    }
}

/// A late joiner that decodes both publishers; returns the first-frame figures (h264, vp8).
async fn late_join(
    room: &Room,
    opts: JoinOptions,
    h264: &SyntheticParticipant,
    vp8: &SyntheticParticipant,
) -> Result<(SyntheticParticipant, FirstFrame, FirstFrame)> {
    let name = opts.name.clone();
    let late = SyntheticParticipant::join_with(&room.base, &room.room, opts).await?;
    let ids = [h264.participant_id(), vp8.participant_id()];
    // Generous: without the SFU's keyframe request none comes at all (keyframes only on request).
    let snap = late
        .wait_until(|s| ids.iter().all(|id| s.remote(id).is_some_and(|r| r.first_video_frame_at.is_some())), Duration::from_secs(15))
        .await
        .with_context(|| format!("{name} decodes neither publisher's video"))?;
    let h = FirstFrame::of("h264", snap.remote(ids[0]).context("h264 present")?);
    let v = FirstFrame::of("vp8", snap.remote(ids[1]).context("vp8 present")?);
    h.print(&name);
    v.print(&name);
    late.wait_sees_and_hears(&[(ids[0], H264_COLOUR, H264_TONE), (ids[1], VP8_COLOUR, VP8_TONE)], Duration::from_secs(10)).await?;
    Ok((late, h, v))
}

/// A late joiner gets a keyframe of the H.264 publisher as promptly as of the VP8 one: the
/// SFU asks the publisher (PLI) when the consumer starts and starts forwarding at that
/// keyframe. A decoder can only start from an IDR whose SPS and PPS it has: str0m's
/// packetizer (and Chrome's, for an IDR too big to share their packet) sends them in a STAP-A
/// just before the IDR slice, so the SFU must not start the consumer after them.
///
/// Two late joiners: one that asks for keyframes like a browser (PLI when a track starts
/// without a usable keyframe), and one that never does, so only the SFU's own PLI can help
/// it (like `sfu_e2e`'s late joiner). Limit: 1 s from the subscribe answer to the first
/// decoded frame, as for VP8 in `sfu_e2e`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_joiner_gets_an_h264_keyframe_promptly() -> Result<()> {
    let room = start_room("h264-late").await?;
    let (h264, vp8) = room.two_publishers().await?;
    let plis_before = h264.snapshot().published.keyframe_requests;

    let (browser_like, bh, bv) = late_join(&room, JoinOptions::receive_only("late-pli"), &h264, &vp8).await?;
    let (no_pli, nh, nv) = late_join(&room, JoinOptions::receive_only("late-no-pli").request_keyframes(false), &h264, &vp8).await?;
    println!(
        "h264 received {} keyframe request(s) from the SFU for the two late joiners",
        h264.snapshot().published.keyframe_requests - plis_before
    );
    for p in [&browser_like, &no_pli] {
        print_codecs(p);
    }

    let limit = Duration::from_secs(1);
    for f in [&bh, &nh] {
        ensure!(is_h264(f.codec.as_deref()), "{:?}", f.codec);
    }
    for f in [&bv, &nv] {
        ensure!(is_vp8(f.codec.as_deref()), "{:?}", f.codec);
        ensure!(f.first_frame.is_some_and(|t| t <= limit), "VP8 control: first frame {:?} after subscribing", f.first_frame);
    }
    ensure!(
        bh.first_frame.is_some_and(|t| t <= limit),
        "late joiner that sends PLIs: first H.264 frame {:?} after subscribing (limit {limit:?})",
        bh.first_frame
    );
    // Without its own PLIs the joiner depends on the SFU: the keyframe the SFU asked for must
    // arrive whole. If the SFU starts the consumer at the IDR's packet and drops the
    // STAP-A with SPS/PPS sent just before it, that IDR is useless and the picture waits
    // for the encoder's next keyframe (which it sends only when asked).
    ensure!(
        nh.keyframes_without_parameter_sets == 0,
        "the first H.264 keyframe(s) forwarded to the late joiner came without SPS/PPS ({} IDR(s) undecodable; the first keyframe had NAL types {:?} \
         (the publisher sends SPS, PPS, IDR: [7, 8, 5]) {:?} after subscribing, the first decodable one {:?}): the SFU started the consumer at the IDR \
         slice's packet and dropped the STAP-A with SPS/PPS sent just before it in the same access unit (gateway/src/sfu/keyframe.rs starts_keyframe, \
         forward.rs Forwarder::decide)",
        nh.keyframes_without_parameter_sets,
        nh.first_keyframe_nals,
        nh.first_keyframe,
        nh.first_decodable_keyframe
    );
    ensure!(
        nh.first_frame.is_some_and(|t| t <= limit),
        "late joiner without PLIs: first H.264 frame {:?} after subscribing (limit {limit:?})",
        nh.first_frame
    );
    room.end(vec![browser_like, no_pli, h264, vp8]).await;
    Ok(())
}

/// A receiver that accepts only VP8 (a browser without H.264) in a room with an H.264
/// publisher. The SFU cannot transcode; the rest of the room must not suffer (it decodes the
/// VP8 publisher and hears both), and the SFU must not send RTP with a payload type the
/// receiver's answer does not have (RFC 3264 §5.1: media is sent only with the formats of the
/// answer): such packets cost the receiver's bandwidth and are dropped unseen. Instead the
/// receiver gets one `unsupported_codec` error naming the producer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vp8_only_receiver_in_a_room_with_an_h264_publisher() -> Result<()> {
    let room = start_room("h264-vp8only").await?;
    let (h264, vp8) = room.two_publishers().await?;
    let only = SyntheticParticipant::join_with(
        &room.base,
        &room.room,
        JoinOptions::receive_only("vp8-only").receive_video_codecs(&[VideoCodec::Vp8]),
    )
    .await?;
    only.wait_sees_and_hears(&[(vp8.participant_id(), VP8_COLOUR, VP8_TONE)], Duration::from_secs(15)).await?;
    only.wait_until(|s| s.remote(h264.participant_id()).is_some_and(|r| r.sounds(H264_TONE, TONE_TOLERANCE_HZ)), Duration::from_secs(10))
        .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    print_codecs(&only);
    let s = only.snapshot();
    let r = s.remote(h264.participant_id()).context("h264 known")?;
    let offer = s.latest_offer.as_ref().context("a subscribe offer")?;
    let offered = tracks::rtpmap(&offer.sdp);
    let accepted = tracks::rtpmap(offer.answer_sdp.as_deref().context("our answer")?);
    let received = &s.subscribe.rtp_packets_by_pt;
    let foreign: Vec<(u8, String, u64)> = received
        .iter()
        .filter(|(pt, _)| !accepted.contains_key(pt))
        .map(|(pt, n)| (*pt, offered.get(pt).cloned().unwrap_or_default(), *n))
        .collect();
    println!(
        "vp8-only <- h264: {} video track(s) in the offer, {} video frames received; the offer maps {:?}, our answer {:?}; RTP packets received by payload type {:?}",
        r.video_tracks_active, r.video_frames_received, offered, accepted, received
    );
    // The receiver is told, once, that this producer's codec is not in its answer (so a client
    // can say why the tile stays empty), and nothing else went wrong.
    let h264_video = format!("producer {}:", h264.participant_id());
    let unsupported: Vec<&String> =
        s.errors.iter().filter(|e| e.starts_with("unsupported_codec") && e.contains(&h264_video) && e.contains("H264")).collect();
    ensure!(unsupported.len() == 1 && s.errors.len() == 1, "expected one unsupported_codec error for the H.264 producer: {:?}", s.errors);
    ensure!(
        foreign.is_empty(),
        "the SFU sent RTP with payload types our answer does not have (pt, offered as, packets): {foreign:?}; it picks the consumer's payload type \
         from its own codec config (gateway/src/sfu/room.rs forward: `sub.rtc.codec_config().match_params(..)`), not from what the receiver accepted"
    );
    room.end(vec![only, h264, vp8]).await;
    Ok(())
}
