//! The two PeerConnections of a participant, each one str0m `Rtc` with its own UDP socket on
//! 127.0.0.1, driven by a tokio task: poll output until `Timeout`, then wait for whichever
//! comes first of a datagram, a command, or the deadline (fed back as `Input::Timeout`).
//!
//! The task is the only owner of the `Rtc`; everything else talks to it through commands.
//! What is specific to each side lives in a [`PeerHandler`]: [`PublishHandler`] offers
//! sendonly audio+video (VP8 or H.264) and writes encoded frames; [`SubscribeHandler`]
//! answers the server's offers (VP8 and H.264 accepted, like a browser) and feeds received
//! frames to decoders made for the codec each track turns out to carry.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::{Codec, PayloadParams};
use str0m::media::{Direction, Frequency, KeyframeRequestKind, MediaKind, MediaTime, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc, RtcConfig};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::media::{Decoder, DecoderStats, EncodedFrame, KeyframeForcer, VideoCodec, VideoState};
use super::signaling::{Kind, Pc, TrackInfo};
use super::tracks::{diff_tracks, FrameClass, KeyframeDetector, KeyframeGate};

/// Least time between two keyframe requests for one received track (a browser does about this).
const KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_millis(500);

/// Longest wait without looking at the Rtc (its "nothing to do" deadline is far away).
const MAX_IDLE: Duration = Duration::from_secs(1);

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) enum PeerCommand {
    CreateOffer { reply: oneshot::Sender<Result<String>> },
    AcceptAnswer { sdp: String, reply: oneshot::Sender<Result<()>> },
    AcceptOffer { sdp: String, tracks: Vec<TrackInfo>, reply: oneshot::Sender<Result<String>> },
    RemoteCandidate(String),
    Frame(EncodedFrame),
    Close,
}

/// Connection state of one PeerConnection, as its task last saw it.
#[derive(Debug, Clone, Default)]
pub struct PeerStatus {
    pub local_addr: Option<SocketAddr>,
    pub ice_state: Option<String>,
    pub connected_at: Option<Instant>,
    pub closed: bool,
    pub last_error: Option<String>,
    /// RTP packets received, by payload type (read from the SRTP header, which is in clear),
    /// whether or not str0m accepts them: shows what the far side sends, negotiated or not.
    pub rtp_packets_by_pt: BTreeMap<u8, u64>,
}

/// The payload type of an RTP datagram (RFC 7983 demultiplexing: first byte 128–191; RTCP,
/// whose second byte is 192–223 under rtcp-mux, is not RTP).
pub fn rtp_payload_type(datagram: &[u8]) -> Option<u8> {
    let (&b0, &b1) = (datagram.first()?, datagram.get(1)?);
    ((128..=191).contains(&b0) && !(192..=223).contains(&b1) && datagram.len() >= 12).then_some(b1 & 0x7f)
}

/// Side-specific behaviour of a PeerConnection.
pub(crate) trait PeerHandler: Send + 'static {
    fn create_offer(&mut self, _rtc: &mut Rtc) -> Result<(SdpOffer, SdpPendingOffer)> {
        bail!("this PeerConnection does not make offers")
    }
    fn answer_accepted(&mut self, _rtc: &mut Rtc) {}
    fn offer_accepted(&mut self, _rtc: &mut Rtc, _tracks: &[TrackInfo]) {}
    fn event(&mut self, rtc: &mut Rtc, event: Event);
    fn frame(&mut self, _rtc: &mut Rtc, _frame: EncodedFrame) {}
}

/// Sends commands to a peer task; cheap to clone (encoder callbacks hold one).
#[derive(Clone)]
pub(crate) struct PeerSender(mpsc::UnboundedSender<PeerCommand>);

impl PeerSender {
    pub(crate) fn send_frame(&self, frame: EncodedFrame) {
        let _ = self.0.send(PeerCommand::Frame(frame));
    }

    async fn request<T>(&self, make: impl FnOnce(oneshot::Sender<Result<T>>) -> PeerCommand) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        self.0.send(make(tx)).map_err(|_| anyhow!("the PeerConnection task has ended"))?;
        rx.await.map_err(|_| anyhow!("the PeerConnection task ended before replying"))?
    }

    pub(crate) async fn create_offer(&self) -> Result<String> {
        self.request(|reply| PeerCommand::CreateOffer { reply }).await
    }

    pub(crate) async fn accept_answer(&self, sdp: String) -> Result<()> {
        self.request(|reply| PeerCommand::AcceptAnswer { sdp, reply }).await
    }

    pub(crate) async fn accept_offer(&self, sdp: String, tracks: Vec<TrackInfo>) -> Result<String> {
        self.request(|reply| PeerCommand::AcceptOffer { sdp, tracks, reply }).await
    }

    pub(crate) fn add_remote_candidate(&self, candidate: String) {
        let _ = self.0.send(PeerCommand::RemoteCandidate(candidate));
    }

    pub(crate) fn close(&self) {
        let _ = self.0.send(PeerCommand::Close);
    }
}

pub(crate) struct PeerReceiver(mpsc::UnboundedReceiver<PeerCommand>);

pub(crate) fn channel() -> (PeerSender, PeerReceiver) {
    let (tx, rx) = mpsc::unbounded_channel();
    (PeerSender(tx), PeerReceiver(rx))
}

/// A running PeerConnection task.
pub(crate) struct Peer {
    pub(crate) sender: PeerSender,
    /// Our host candidate (`candidate:...`), for trickling it as a browser would.
    pub(crate) local_candidate: String,
    pub(crate) status: Arc<Mutex<PeerStatus>>,
    task: JoinHandle<()>,
}

/// H.264 as Chrome offers it first: constrained baseline, level 3.1, packetization-mode 1,
/// on Chrome's payload types (not str0m's defaults, so the SFU's payload-type mapping is
/// exercised too).
pub const H264_PROFILE_LEVEL_ID: u32 = 0x42e01f;
const H264_PT: u8 = 106;
const H264_RTX_PT: u8 = 107;

/// An `Rtc` configuration with Opus and the given video codecs, in order of preference.
pub(crate) fn rtc_config(video: &[VideoCodec]) -> RtcConfig {
    let mut config = Rtc::builder().clear_codecs().enable_opus(true, false);
    for codec in video {
        match codec {
            VideoCodec::Vp8 => config = config.enable_vp8(true),
            VideoCodec::H264 => config.codec_config().add_h264(H264_PT.into(), Some(H264_RTX_PT.into()), true, H264_PROFILE_LEVEL_ID),
        }
    }
    config
}

/// Our video codec for str0m's, if we have one.
pub fn video_codec_of(codec: Codec) -> Option<VideoCodec> {
    match codec {
        Codec::Vp8 => Some(VideoCodec::Vp8),
        Codec::H264 => Some(VideoCodec::H264),
        _ => None,
    }
}

/// Negotiated payload parameters in a line: `H264/90000 pt 106 profile-level-id 42e01f
/// packetization-mode 1`.
pub fn describe_params(p: &PayloadParams) -> String {
    let spec = p.spec();
    let mut out = format!("{}/{} pt {}", spec.codec, spec.clock_rate.get(), *p.pt());
    if let Some(id) = spec.format.profile_level_id {
        out.push_str(&format!(" profile-level-id {id:06x}"));
    }
    if let Some(mode) = spec.format.packetization_mode {
        out.push_str(&format!(" packetization-mode {mode}"));
    }
    out
}

impl Peer {
    /// Binds a UDP socket on 127.0.0.1, adds it as the host candidate of a new `Rtc` (Opus and
    /// `video` codecs in that order of preference), and starts the task.
    pub(crate) async fn start<H: PeerHandler>(
        role: Pc,
        handler: H,
        (sender, receiver): (PeerSender, PeerReceiver),
        video: &[VideoCodec],
    ) -> Result<Peer> {
        let socket = UdpSocket::bind("127.0.0.1:0").await.context("binding a UDP socket")?;
        let local = socket.local_addr().context("UDP socket address")?;
        let mut rtc = rtc_config(video).build(Instant::now());
        let candidate = Candidate::host(local, "udp").map_err(|e| anyhow!("host candidate: {e}"))?;
        let local_candidate = candidate.to_sdp_string();
        rtc.add_local_candidate(candidate);
        let status = Arc::new(Mutex::new(PeerStatus { local_addr: Some(local), ..Default::default() }));
        let task = tokio::spawn(run(role, rtc, socket, local, receiver, handler, status.clone()));
        Ok(Peer { sender, local_candidate, status, task })
    }

    pub(crate) fn status(&self) -> PeerStatus {
        lock(&self.status).clone()
    }

    /// Asks the task to close and waits (bounded) for it to end.
    pub(crate) async fn close(self) {
        self.sender.close();
        let abort = self.task.abort_handle();
        if tokio::time::timeout(Duration::from_secs(2), self.task).await.is_err() {
            abort.abort();
        }
    }
}

async fn run<H: PeerHandler>(
    role: Pc,
    mut rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    mut commands: PeerReceiver,
    mut handler: H,
    status: Arc<Mutex<PeerStatus>>,
) {
    let mut buf = vec![0u8; 2048];
    let mut pending: Option<SdpPendingOffer> = None;
    let result: Result<()> = async {
        loop {
            let deadline = drain_output(role, &mut rtc, &socket, &mut handler, &status).await?;
            if !rtc.is_alive() {
                bail!("the Rtc is no longer alive");
            }
            let now = Instant::now();
            if deadline <= now {
                rtc.handle_input(Input::Timeout(now))?;
                continue;
            }
            tokio::select! {
                cmd = commands.0.recv() => {
                    match cmd {
                        None | Some(PeerCommand::Close) => {
                            rtc.disconnect();
                            // Let the disconnect go out.
                            let _ = drain_output(role, &mut rtc, &socket, &mut handler, &status).await;
                            return Ok(());
                        }
                        Some(cmd) => handle_command(role, &mut rtc, &mut handler, &mut pending, cmd),
                    }
                }
                received = socket.recv_from(&mut buf) => {
                    match received {
                        Ok((n, source)) => {
                            let now = Instant::now();
                            if let Some(pt) = rtp_payload_type(&buf[..n]) {
                                *lock(&status).rtp_packets_by_pt.entry(pt).or_default() += 1;
                            }
                            match buf[..n].try_into() {
                                Ok(contents) => {
                                    let input = Input::Receive(now, Receive {
                                        proto: Protocol::Udp,
                                        source,
                                        destination: local,
                                        contents,
                                    });
                                    // One bad datagram does not end the connection; a dead
                                    // Rtc is caught at the top of the loop.
                                    if rtc.accepts(&input) {
                                        if let Err(e) = rtc.handle_input(input) {
                                            tracing::debug!(?role, %source, "datagram refused: {e}");
                                        }
                                    }
                                }
                                Err(e) => tracing::debug!(?role, %source, "ignoring datagram: {e}"),
                            }
                        }
                        Err(e) => tracing::debug!(?role, "UDP receive: {e}"),
                    }
                }
                _ = tokio::time::sleep_until(deadline.min(now + MAX_IDLE).into()) => {}
            }
            // Time moves on after every input, so queued media leaves now, not at the next
            // deadline.
            rtc.handle_input(Input::Timeout(Instant::now()))?;
        }
    }
    .await;
    let mut s = lock(&status);
    s.closed = true;
    if let Err(e) = result {
        tracing::warn!(?role, "PeerConnection ended: {e:#}");
        s.last_error = Some(format!("{e:#}"));
    }
}

async fn drain_output<H: PeerHandler>(
    role: Pc,
    rtc: &mut Rtc,
    socket: &UdpSocket,
    handler: &mut H,
    status: &Mutex<PeerStatus>,
) -> Result<Instant> {
    loop {
        match rtc.poll_output()? {
            Output::Timeout(t) => return Ok(t),
            Output::Transmit(t) => {
                if let Err(e) = socket.send_to(&t.contents, t.destination).await {
                    tracing::debug!(?role, dest = %t.destination, "UDP send: {e}");
                }
            }
            Output::Event(event) => {
                match &event {
                    Event::Connected => {
                        tracing::debug!(?role, "connected (ICE + DTLS)");
                        lock(status).connected_at.get_or_insert(Instant::now());
                    }
                    Event::IceConnectionStateChange(state) => {
                        tracing::debug!(?role, ?state, "ICE state");
                        lock(status).ice_state = Some(format!("{state:?}"));
                        if *state == IceConnectionState::Disconnected {
                            tracing::info!(?role, "ICE disconnected");
                        }
                    }
                    _ => {}
                }
                handler.event(rtc, event);
            }
        }
    }
}

fn handle_command<H: PeerHandler>(role: Pc, rtc: &mut Rtc, handler: &mut H, pending: &mut Option<SdpPendingOffer>, cmd: PeerCommand) {
    match cmd {
        PeerCommand::CreateOffer { reply } => {
            let result = handler.create_offer(rtc).map(|(offer, p)| {
                *pending = Some(p);
                offer.to_sdp_string()
            });
            let _ = reply.send(result);
        }
        PeerCommand::AcceptAnswer { sdp, reply } => {
            let result = (|| {
                let answer = SdpAnswer::from_sdp_string(&sdp).context("answer SDP did not parse")?;
                let p = pending.take().ok_or_else(|| anyhow!("an answer without an offer"))?;
                rtc.sdp_api().accept_answer(p, answer).context("answer rejected")?;
                handler.answer_accepted(rtc);
                Ok(())
            })();
            let _ = reply.send(result);
        }
        PeerCommand::AcceptOffer { sdp, tracks, reply } => {
            let result = (|| {
                let offer = SdpOffer::from_sdp_string(&sdp).context("offer SDP did not parse")?;
                let answer = rtc.sdp_api().accept_offer(offer).context("offer rejected")?;
                handler.offer_accepted(rtc, &tracks);
                Ok(answer.to_sdp_string())
            })();
            let _ = reply.send(result);
        }
        PeerCommand::RemoteCandidate(c) => {
            if c.trim().is_empty() {
                return; // end of candidates
            }
            let c = c.trim().trim_start_matches("a=");
            match Candidate::from_sdp_string(c) {
                Ok(candidate) => rtc.add_remote_candidate(candidate),
                Err(e) => tracing::warn!(?role, candidate = c, "server candidate did not parse: {e}"),
            }
        }
        PeerCommand::Frame(frame) => handler.frame(rtc, frame),
        PeerCommand::Close => {}
    }
}

/// Counters of the publish side.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishCounters {
    pub audio_frames_sent: u64,
    pub video_frames_sent: u64,
    pub video_keyframes_sent: u64,
    /// Frames that arrived before the connection was up (or had no negotiated codec).
    pub frames_dropped: u64,
    /// PLI/FIR received from the server.
    pub keyframe_requests: u64,
    pub first_keyframe_request_at: Option<Instant>,
    /// The video codec the publish answer settled on (see [`describe_params`]).
    pub video_codec: Option<String>,
}

struct SendTrack {
    mid: Mid,
    pt: Option<Pt>,
}

/// Publish side: offers sendonly tracks, writes encoded frames, honours keyframe requests.
pub(crate) struct PublishHandler {
    stream_id: String,
    publish_audio: bool,
    publish_video: bool,
    video_codec: VideoCodec,
    audio: Option<SendTrack>,
    video: Option<SendTrack>,
    connected: bool,
    forcer: Option<KeyframeForcer>,
    counters: Arc<Mutex<PublishCounters>>,
}

impl PublishHandler {
    pub(crate) fn new(
        stream_id: String,
        publish_audio: bool,
        publish_video: bool,
        video_codec: VideoCodec,
        forcer: Option<KeyframeForcer>,
        counters: Arc<Mutex<PublishCounters>>,
    ) -> Self {
        PublishHandler {
            stream_id,
            publish_audio,
            publish_video,
            video_codec,
            audio: None,
            video: None,
            connected: false,
            forcer,
            counters,
        }
    }

    fn force_keyframe(&self) {
        if let Some(f) = &self.forcer {
            if !f.force() {
                tracing::debug!("force-key-unit event was not handled");
            }
        }
    }
}

/// RTP clock ticks for a presentation time, rounded to the nearest tick (GStreamer
/// timestamps of 15 fps frames are whole nanoseconds, 66_666_666 ns per frame).
pub fn rtp_ticks(pts: Duration, clock_rate: u32) -> u64 {
    ((pts.as_nanos() * u128::from(clock_rate) + 500_000_000) / 1_000_000_000) as u64
}

fn payload_params(rtc: &mut Rtc, mid: Mid, codec: Codec) -> Option<PayloadParams> {
    let writer = rtc.writer(mid)?;
    let params = writer.payload_params().find(|p| p.spec().codec == codec).copied();
    params
}

impl PeerHandler for PublishHandler {
    fn create_offer(&mut self, rtc: &mut Rtc) -> Result<(SdpOffer, SdpPendingOffer)> {
        let mut api = rtc.sdp_api();
        if self.publish_audio && self.audio.is_none() {
            let mid = api.add_media(
                MediaKind::Audio,
                Direction::SendOnly,
                Some(self.stream_id.clone()),
                Some(format!("{}-audio", self.stream_id)),
                None,
            );
            self.audio = Some(SendTrack { mid, pt: None });
        }
        if self.publish_video && self.video.is_none() {
            let mid = api.add_media(
                MediaKind::Video,
                Direction::SendOnly,
                Some(self.stream_id.clone()),
                Some(format!("{}-video", self.stream_id)),
                None,
            );
            self.video = Some(SendTrack { mid, pt: None });
        }
        api.apply().ok_or_else(|| anyhow!("nothing to offer"))
    }

    fn answer_accepted(&mut self, rtc: &mut Rtc) {
        if let Some(t) = &mut self.audio {
            t.pt = payload_params(rtc, t.mid, Codec::Opus).map(|p| p.pt());
            if t.pt.is_none() {
                tracing::warn!("the publish answer has no Opus for the audio m-line");
            }
        }
        if let Some(t) = &mut self.video {
            let codec = match self.video_codec {
                VideoCodec::Vp8 => Codec::Vp8,
                VideoCodec::H264 => Codec::H264,
            };
            let params = payload_params(rtc, t.mid, codec);
            t.pt = params.map(|p| p.pt());
            match params {
                Some(p) => {
                    tracing::debug!(mid = %t.mid, codec = %describe_params(&p), "publishing video");
                    lock(&self.counters).video_codec = Some(describe_params(&p));
                }
                None => tracing::warn!("the publish answer has no {} for the video m-line", self.video_codec),
            }
        }
    }

    fn event(&mut self, _rtc: &mut Rtc, event: Event) {
        match event {
            Event::Connected => {
                self.connected = true;
                // Start the SFU's copy of the stream with a keyframe.
                self.force_keyframe();
            }
            Event::KeyframeRequest(req) => {
                tracing::debug!(mid = %req.mid, kind = ?req.kind, "keyframe requested by the server");
                {
                    let mut c = lock(&self.counters);
                    c.keyframe_requests += 1;
                    c.first_keyframe_request_at.get_or_insert(Instant::now());
                }
                self.force_keyframe();
            }
            _ => {}
        }
    }

    fn frame(&mut self, rtc: &mut Rtc, frame: EncodedFrame) {
        let (track, rate) = match frame.kind {
            Kind::Audio => (&self.audio, Frequency::FORTY_EIGHT_KHZ),
            Kind::Video => (&self.video, Frequency::NINETY_KHZ),
        };
        let (Some(SendTrack { mid, pt: Some(pt) }), true) = (track, self.connected) else {
            lock(&self.counters).frames_dropped += 1;
            return;
        };
        let (mid, pt) = (*mid, *pt);
        let rtp_time = MediaTime::new(rtp_ticks(frame.pts, rate.get()), rate);
        let Some(writer) = rtc.writer(mid) else {
            lock(&self.counters).frames_dropped += 1;
            return;
        };
        match writer.write(pt, Instant::now(), rtp_time, frame.data) {
            Ok(()) => {
                let mut c = lock(&self.counters);
                match frame.kind {
                    Kind::Audio => c.audio_frames_sent += 1,
                    Kind::Video => {
                        c.video_frames_sent += 1;
                        if frame.keyframe {
                            c.video_keyframes_sent += 1;
                        }
                    }
                }
            }
            Err(e) => {
                tracing::warn!(%mid, "writing a frame failed: {e}");
                lock(&self.counters).frames_dropped += 1;
            }
        }
    }
}

/// One m-line of the subscribe PeerConnection, as seen by the test.
#[derive(Debug, Clone)]
pub struct TrackRecord {
    pub info: TrackInfo,
    /// When the answer that set this track up was made (just before it was sent).
    pub subscribed_at: Instant,
    /// When a later offer took it away.
    pub removed_at: Option<Instant>,
    pub frames_received: u64,
    /// Video: frames holding a keyframe (VP8 key frame, H.264 IDR slice), decodable or not.
    pub keyframes_received: u64,
    /// H.264: IDR frames that came before this track had seen SPS and PPS (undecodable).
    pub keyframes_without_parameter_sets: u64,
    /// H.264: the NAL unit types of the first keyframe received (7 SPS, 8 PPS, 5 IDR ...).
    pub first_keyframe_nal_types: Option<Vec<u8>>,
    pub first_frame_received_at: Option<Instant>,
    /// Video: when the first keyframe arrived (decodable or not) and the first decodable one.
    pub first_keyframe_received_at: Option<Instant>,
    pub first_decodable_keyframe_at: Option<Instant>,
    pub last_frame_received_at: Option<Instant>,
    pub keyframe_requests_sent: u64,
    /// The codec of the received frames (see [`describe_params`]), from the first frame on.
    pub codec: Option<String>,
    pub decoder: Option<DecoderStats>,
    pub decoder_error: Option<String>,
}

struct Receiver {
    record: usize,
    kind: Kind,
    decoder: Option<Decoder>,
    /// Video: where the decoder (made at the first frame, for its codec) records.
    video_stats: Option<Arc<Mutex<VideoState>>>,
    /// Video: made at the first frame, for its codec.
    detector: Option<KeyframeDetector>,
    /// The payload type the track's frames came with (a change makes a new decoder).
    pt: Option<Pt>,
    gate: KeyframeGate,
}

/// Subscribe side: answers offers, runs one decoder per active m-line.
pub(crate) struct SubscribeHandler {
    request_keyframes: bool,
    decode: bool,
    tracks: Vec<TrackInfo>,
    receivers: HashMap<String, Receiver>,
    records: Arc<Mutex<Vec<TrackRecord>>>,
    unknown_frames: u64,
}

impl SubscribeHandler {
    pub(crate) fn new(request_keyframes: bool, decode: bool, records: Arc<Mutex<Vec<TrackRecord>>>) -> Self {
        SubscribeHandler { request_keyframes, decode, tracks: vec![], receivers: HashMap::new(), records, unknown_frames: 0 }
    }
}

impl PeerHandler for SubscribeHandler {
    fn offer_accepted(&mut self, _rtc: &mut Rtc, tracks: &[TrackInfo]) {
        let now = Instant::now();
        let diff = diff_tracks(&self.tracks, tracks);
        let mut records = lock(&self.records);
        for gone in &diff.removed {
            if let Some(r) = self.receivers.remove(&gone.mid) {
                if let Some(rec) = records.get_mut(r.record) {
                    rec.removed_at = Some(now);
                }
            }
        }
        for new in &diff.added {
            // Audio is Opus; a video track's codec shows with its first frame (the server
            // offers every codec it has on each m-line), so its decoder is made then.
            let (decoder, video_stats, error) = match (self.decode, new.kind) {
                (false, _) => (None, None, None),
                (true, Kind::Video) => (None, Some(Arc::new(Mutex::new(VideoState::default()))), None),
                (true, Kind::Audio) => match Decoder::audio() {
                    Ok(d) => (Some(d), None, None),
                    Err(e) => {
                        tracing::warn!(mid = %new.mid, "no decoder: {e:#}");
                        (None, None, Some(format!("{e:#}")))
                    }
                },
            };
            let stats = match (&decoder, &video_stats) {
                (Some(d), _) => Some(d.stats()),
                (None, Some(v)) => Some(DecoderStats::Video(v.clone())),
                (None, None) => None,
            };
            records.push(TrackRecord {
                info: new.clone(),
                subscribed_at: now,
                removed_at: None,
                frames_received: 0,
                keyframes_received: 0,
                keyframes_without_parameter_sets: 0,
                first_keyframe_nal_types: None,
                first_frame_received_at: None,
                first_keyframe_received_at: None,
                first_decodable_keyframe_at: None,
                last_frame_received_at: None,
                keyframe_requests_sent: 0,
                codec: None,
                decoder: stats,
                decoder_error: error,
            });
            self.receivers.insert(
                new.mid.clone(),
                Receiver {
                    record: records.len() - 1,
                    kind: new.kind,
                    decoder,
                    video_stats,
                    detector: None,
                    pt: None,
                    gate: KeyframeGate::new(self.request_keyframes, KEYFRAME_REQUEST_INTERVAL),
                },
            );
        }
        self.tracks = tracks.to_vec();
    }

    fn event(&mut self, rtc: &mut Rtc, event: Event) {
        let Event::MediaData(data) = event else {
            return;
        };
        let now = Instant::now();
        let Some(rx) = self.receivers.get_mut(&*data.mid) else {
            self.unknown_frames += 1;
            if self.unknown_frames == 1 || self.unknown_frames.is_multiple_of(100) {
                tracing::warn!(mid = %data.mid, count = self.unknown_frames, "media on an m-line that no track names");
            }
            return;
        };
        let new_codec = rx.pt != Some(data.pt);
        let mut decoder_error = None;
        if new_codec {
            // The first frame (or a new payload type): the track's codec is known now.
            rx.pt = Some(data.pt);
            if rx.kind == Kind::Video {
                let codec = video_codec_of(data.params.spec().codec);
                rx.detector = codec.map(KeyframeDetector::new);
                rx.gate = KeyframeGate::new(self.request_keyframes, KEYFRAME_REQUEST_INTERVAL);
                rx.decoder = None;
                match (codec, &rx.video_stats) {
                    (Some(c), Some(stats)) => match Decoder::video_into(c, stats.clone()) {
                        Ok(d) => rx.decoder = Some(d),
                        Err(e) => decoder_error = Some(format!("{e:#}")),
                    },
                    (None, _) => decoder_error = Some(format!("no decoder for {}", data.params.spec().codec)),
                    (Some(_), None) => {}
                }
            }
        }
        let class = match &mut rx.detector {
            Some(d) if rx.kind == Kind::Video => d.classify(&data.data),
            _ => FrameClass::Delta,
        };
        let is_key = class != FrameClass::Delta;
        let action = match rx.kind {
            Kind::Video => rx.gate.on_frame(class == FrameClass::Keyframe, data.contiguous, now),
            Kind::Audio => super::tracks::FrameAction { decode: true, request_keyframe: false },
        };
        {
            let mut records = lock(&self.records);
            if let Some(rec) = records.get_mut(rx.record) {
                if new_codec {
                    let codec = describe_params(&data.params);
                    tracing::debug!(mid = %data.mid, producer = %rec.info.producer_id, %codec, "track codec");
                    rec.codec = Some(codec);
                    if let Some(e) = decoder_error {
                        tracing::warn!(mid = %data.mid, "no decoder: {e}");
                        rec.decoder_error = Some(e);
                    }
                }
                if rec.frames_received < 3 || is_key {
                    tracing::debug!(
                        mid = %data.mid, producer = %rec.info.producer_id, n = rec.frames_received,
                        ?class, contiguous = data.contiguous, seq = ?data.seq_range,
                        since_subscribe = ?now.saturating_duration_since(rec.subscribed_at),
                        "received frame"
                    );
                }
                rec.frames_received += 1;
                rec.first_frame_received_at.get_or_insert(now);
                rec.last_frame_received_at = Some(now);
                if is_key {
                    rec.keyframes_received += 1;
                    rec.first_keyframe_received_at.get_or_insert(now);
                    if rec.first_keyframe_nal_types.is_none() && rx.detector.as_ref().is_some_and(|d| d.codec() == VideoCodec::H264) {
                        rec.first_keyframe_nal_types = Some(super::tracks::h264_nal_types(&data.data));
                    }
                }
                match class {
                    FrameClass::Keyframe => {
                        rec.first_decodable_keyframe_at.get_or_insert(now);
                    }
                    FrameClass::KeyframeWithoutParameterSets => rec.keyframes_without_parameter_sets += 1,
                    FrameClass::Delta => {}
                }
                if action.request_keyframe {
                    rec.keyframe_requests_sent += 1;
                }
            }
        }
        if action.request_keyframe {
            if let Some(mut w) = rtc.writer(data.mid) {
                if let Err(e) = w.request_keyframe(data.rid, KeyframeRequestKind::Pli) {
                    tracing::debug!(mid = %data.mid, "keyframe request failed: {e}");
                }
            }
        }
        if action.decode {
            if let Some(d) = &mut rx.decoder {
                if let Err(e) = d.push(&data.data) {
                    tracing::debug!(mid = %data.mid, "{e:#}");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtp_payload_type_from_the_clear_header() {
        let mut rtp = vec![0x80, 0x80 | 108, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1];
        assert_eq!(rtp_payload_type(&rtp), Some(108), "marker bit set");
        rtp[1] = 96;
        assert_eq!(rtp_payload_type(&rtp), Some(96));
        rtp[1] = 201; // RTCP receiver report
        assert_eq!(rtp_payload_type(&rtp), None);
        assert_eq!(rtp_payload_type(&[0x00, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]), None, "STUN");
        assert_eq!(rtp_payload_type(&[22, 0xfe, 0xfd]), None, "DTLS");
        assert_eq!(rtp_payload_type(&rtp[..4]), None, "too short");
    }

    #[test]
    fn rtp_ticks_at_both_clock_rates() {
        assert_eq!(rtp_ticks(Duration::from_millis(20), 48_000), 960);
        assert_eq!(rtp_ticks(Duration::from_secs(1) / 15, 90_000), 6000);
        assert_eq!(rtp_ticks(Duration::from_secs(3600), 90_000), 324_000_000);
    }
}
