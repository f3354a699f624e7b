//! [`SyntheticParticipant`]: joins a room like a browser (HTTP join, WebSocket signaling,
//! a publish and a subscribe PeerConnection), publishes a solid colour (VP8, or H.264 with
//! [`JoinOptions::video_codec`]) and a sine tone (Opus), and decodes everyone else so a test
//! can ask which colours and tones arrive.
//!
//! ```no_run
//! # async fn demo(base: &str, room: &str) -> anyhow::Result<()> {
//! use roomcast_e2e::synthetic::{Colour, SyntheticParticipant};
//! use std::time::Duration;
//! let red = SyntheticParticipant::join(base, room, "red", Colour::RED, 440.0).await?;
//! let green = SyntheticParticipant::join(base, room, "green", Colour::GREEN, 660.0).await?;
//! let green_id = green.participant_id().to_owned();
//! red.wait_until(|s| s.remote(&green_id).is_some_and(|r| r.video_frames > 5), Duration::from_secs(10)).await?;
//! red.leave().await;
//! # Ok(()) }
//! ```

pub mod analysis;
pub mod media;
pub mod peer;
pub mod signaling;
pub mod tracks;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

pub use analysis::Colour;
pub use media::{AudioStats, FlipRecord, FramesSince, KeyframePolicy, VideoCodec, VideoStats};
pub use peer::{PeerStatus, PublishCounters, TrackRecord};
pub use signaling::{ClientMessage, Kind, Pc, ServerMessage, TrackInfo};

use media::{Encoder, KeyframeForcer};
use peer::{lock, Peer, PeerSender, PublishHandler, SubscribeHandler};

/// VP8/H.264 and the YUV round trip move a solid colour by a few levels; test colours differ by 255.
pub const COLOUR_TOLERANCE: u8 = 40;
/// How far a detected tone may be from the one sent.
pub const TONE_TOLERANCE_HZ: f32 = 15.0;

/// How a synthetic participant joins and what it sends.
#[derive(Debug, Clone)]
pub struct JoinOptions {
    pub name: String,
    pub colour: Colour,
    pub tone_hz: f32,
    pub publish_audio: bool,
    pub publish_video: bool,
    /// The codec of the published video; the publish offer names only this one for video.
    pub video_codec: VideoCodec,
    /// Video codecs the subscribe PeerConnection accepts, in order of preference. Default:
    /// VP8 and H.264 (constrained baseline, packetization-mode 1), as a browser.
    pub receive_video_codecs: Vec<VideoCodec>,
    /// Send a PLI when a received video track starts without a keyframe or has a gap, as a
    /// browser does. Turn off to check that the SFU asks for keyframes by itself.
    pub request_keyframes: bool,
    /// Decode what arrives (colours, tones). Off: only count received frames (cheap, for
    /// benchmarks with many receivers).
    pub decode: bool,
    /// Send our host candidates as `candidate` messages (then end-of-candidates) after each
    /// PeerConnection's first local description, as a browser does. They are also in the SDP.
    pub trickle: bool,
    /// How long to wait for `welcome` after the socket opens.
    pub welcome_timeout: Duration,
    /// When the video encoder sends keyframes. Default: only the first frame and when asked,
    /// as browsers do; a test that needs periodic keyframes says so.
    pub keyframes: KeyframePolicy,
}

impl JoinOptions {
    pub fn new(name: impl Into<String>, colour: Colour, tone_hz: f32) -> Self {
        JoinOptions {
            name: name.into(),
            colour,
            tone_hz,
            publish_audio: true,
            publish_video: true,
            video_codec: VideoCodec::Vp8,
            receive_video_codecs: vec![VideoCodec::Vp8, VideoCodec::H264],
            request_keyframes: true,
            decode: true,
            trickle: true,
            welcome_timeout: Duration::from_secs(5),
            keyframes: KeyframePolicy::OnRequest,
        }
    }

    /// A participant that only watches and listens (for benchmarks).
    pub fn receive_only(name: impl Into<String>) -> Self {
        JoinOptions { publish_audio: false, publish_video: false, ..Self::new(name, Colour::WHITE, 0.0) }
    }

    pub fn publish(mut self, audio: bool, video: bool) -> Self {
        self.publish_audio = audio;
        self.publish_video = video;
        self
    }

    /// Publish video in `codec` (VP8 by default).
    pub fn video_codec(mut self, codec: VideoCodec) -> Self {
        self.video_codec = codec;
        self
    }

    /// Accept only these video codecs on the subscribe PeerConnection.
    pub fn receive_video_codecs(mut self, codecs: &[VideoCodec]) -> Self {
        self.receive_video_codecs = codecs.to_vec();
        self
    }

    pub fn request_keyframes(mut self, yes: bool) -> Self {
        self.request_keyframes = yes;
        self
    }

    pub fn decode(mut self, yes: bool) -> Self {
        self.decode = yes;
        self
    }

    pub fn trickle(mut self, yes: bool) -> Self {
        self.trickle = yes;
        self
    }

    /// Keyframe policy of the published video (default: on request only, as a browser).
    pub fn keyframes(mut self, policy: KeyframePolicy) -> Self {
        self.keyframes = policy;
        self
    }
}

/// One signaling message as received.
#[derive(Debug, Clone)]
pub struct ReceivedMessage {
    pub at: Instant,
    pub message: ServerMessage,
}

/// The latest `subscribe_offer` and what became of it.
#[derive(Debug, Clone)]
pub struct SubscribeOfferRecord {
    pub received_at: Instant,
    pub sdp: String,
    pub tracks: Vec<TrackInfo>,
    /// Mids the SDP marks inactive (or rejects with port 0).
    pub inactive_mids: Vec<String>,
    /// When our answer went out; `None` if the offer could not be answered.
    pub answered_at: Option<Instant>,
    /// Our answer.
    pub answer_sdp: Option<String>,
    pub error: Option<String>,
}

/// One `reconnect` from the server and how it went.
#[derive(Debug, Clone)]
pub struct ReconnectRecord {
    pub at: Instant,
    pub reason: String,
    /// When the new `welcome` arrived.
    pub welcome_at: Option<Instant>,
    /// When the new publish offer went out.
    pub publish_offer_at: Option<Instant>,
}

#[derive(Debug, Default)]
struct SignalingState {
    room_id: Option<String>,
    welcomes: u64,
    reconnects: Vec<ReconnectRecord>,
    /// Messages of the old media session that arrived after `reconnect`, before the new
    /// `welcome` (ignored: they belong to PeerConnections that are gone).
    stale_messages: u64,
    names: BTreeMap<String, String>,
    left: BTreeSet<String>,
    log: Vec<ReceivedMessage>,
    offers_received: u64,
    latest_offer: Option<SubscribeOfferRecord>,
    errors: Vec<String>,
    unknown: Vec<String>,
    closed: Option<String>,
}

/// What one remote participant's media looks like from here.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RemoteMedia {
    pub participant_id: String,
    pub name: Option<String>,
    /// `participant_left` was received.
    pub left: bool,
    /// Tracks of this participant in the latest answered `subscribe_offer`.
    pub tracks_active: usize,
    pub audio_tracks_active: usize,
    pub video_tracks_active: usize,
    /// When the subscription to its video track was answered (set up).
    pub subscribed_at: Option<Instant>,
    pub audio_subscribed_at: Option<Instant>,
    /// Encoded video frames received / decoded on the current video track.
    pub video_frames_received: u64,
    /// Keyframes received (VP8 key frames; H.264 frames with an IDR slice, decodable or not).
    pub video_keyframes_received: u64,
    /// H.264 IDR frames received before any SPS/PPS on the track: no decoder can use them.
    pub video_keyframes_without_parameter_sets: u64,
    /// H.264: NAL unit types of the first keyframe of the current video track.
    pub first_keyframe_nal_types: Option<Vec<u8>>,
    /// The first keyframe of the current video track, and the first one a decoder can start from.
    pub first_video_keyframe_at: Option<Instant>,
    pub first_decodable_keyframe_at: Option<Instant>,
    /// The codec the current video track carries, as negotiated (e.g. `H264/90000 pt 106
    /// profile-level-id 42e01f packetization-mode 1`), once a frame has arrived.
    pub video_codec: Option<String>,
    pub audio_codec: Option<String>,
    pub video_frames: u64,
    /// Decoded / received video frames over every video track of this participant so far
    /// (continuous across renegotiations and reconnects).
    pub video_frames_total: u64,
    pub video_frames_received_total: u64,
    /// Video tracks of this participant subscribed so far (one more after each reconnect).
    pub video_subscriptions: usize,
    pub last_video_frame_received_at: Option<Instant>,
    pub first_video_frame_at: Option<Instant>,
    pub last_video_frame_at: Option<Instant>,
    /// Mean colour of the latest decoded frame.
    pub mean_rgb: Option<Colour>,
    pub keyframe_requests_sent: u64,
    pub audio_frames_received: u64,
    pub audio_buffers: u64,
    pub first_audio_at: Option<Instant>,
    pub audio_freq_hz: Option<f32>,
    pub audio_level: Option<f32>,
}

impl RemoteMedia {
    /// From setting up the video subscription to the first decoded frame.
    pub fn time_to_first_video_frame(&self) -> Option<Duration> {
        Some(self.first_video_frame_at?.saturating_duration_since(self.subscribed_at?))
    }

    /// Decoding the given colour (within `tolerance` per channel) right now.
    pub fn shows(&self, colour: Colour, tolerance: u8) -> bool {
        self.mean_rgb.is_some_and(|c| c.is_close_to(colour, tolerance))
    }

    /// Hearing a tone within `tolerance_hz` of `tone_hz` right now.
    pub fn sounds(&self, tone_hz: f32, tolerance_hz: f32) -> bool {
        self.audio_freq_hz.is_some_and(|f| analysis::tone_matches(f, tone_hz, tolerance_hz))
    }
}

/// A consistent picture of everything this participant receives.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub at: Instant,
    pub remotes: BTreeMap<String, RemoteMedia>,
    /// Tracks of the latest `subscribe_offer`.
    pub latest_tracks: Vec<TrackInfo>,
    pub latest_inactive_mids: Vec<String>,
    /// The latest `subscribe_offer` itself, read under the same lock as the figures above:
    /// its `answered_at` is set once our answer has been sent (a newer offer may be pending
    /// in the server, but this record and `latest_tracks` always describe the same offer).
    pub latest_offer: Option<SubscribeOfferRecord>,
    pub offers_received: u64,
    /// `welcome` messages received: 1, plus one per reconnect.
    pub welcomes: u64,
    /// `reconnect` messages received, oldest first.
    pub reconnects: Vec<ReconnectRecord>,
    pub stale_messages: u64,
    /// The current PeerConnections (new ones after a reconnect).
    pub publish: Option<PeerStatus>,
    pub subscribe: PeerStatus,
    pub published: PublishCounters,
    /// `error` messages from the server and server messages this client could not apply.
    pub errors: Vec<String>,
    /// Frames of a type (or shape) this client does not know; ignored, as a browser would.
    pub unknown_messages: Vec<String>,
    /// Why the signaling socket ended, once it has.
    pub signaling_closed: Option<String>,
}

impl Snapshot {
    pub fn remote(&self, participant_id: &str) -> Option<&RemoteMedia> {
        self.remotes.get(participant_id)
    }

    /// When the latest `reconnect` arrived.
    pub fn last_reconnect_at(&self) -> Option<Instant> {
        self.reconnects.last().map(|r| r.at)
    }

    /// Producers (by participant) present in the latest subscribe offer.
    pub fn participants_in_latest_offer(&self) -> BTreeSet<String> {
        self.latest_tracks.iter().map(|t| t.participant_id.clone()).collect()
    }
}

/// Plain view of one track record with its decoder statistics read out.
#[derive(Debug, Clone)]
pub struct TrackView {
    pub record: TrackRecord,
    pub video: Option<VideoStats>,
    pub audio: Option<AudioStats>,
}

/// Per remote participant: the media of its current tracks (for each kind, the active track
/// subscribed most recently; a participant with no active track keeps its last figures).
pub fn summarize(views: &[TrackView], names: &BTreeMap<String, String>, left: &BTreeSet<String>) -> BTreeMap<String, RemoteMedia> {
    let mut out: BTreeMap<String, RemoteMedia> = BTreeMap::new();
    let mut ids: BTreeSet<&String> = names.keys().collect();
    ids.extend(views.iter().map(|v| &v.record.info.participant_id));
    for id in ids {
        let mine: Vec<&TrackView> = views.iter().filter(|v| &v.record.info.participant_id == id).collect();
        let active = |v: &&&TrackView| v.record.removed_at.is_none();
        let pick = |kind: Kind| {
            mine.iter()
                .filter(|v| v.record.info.kind == kind)
                .max_by_key(|v| (v.record.removed_at.is_none(), v.record.subscribed_at))
                .copied()
        };
        let mut r = RemoteMedia {
            participant_id: id.clone(),
            name: names.get(id).cloned(),
            left: left.contains(id),
            tracks_active: mine.iter().filter(active).count(),
            audio_tracks_active: mine.iter().filter(active).filter(|v| v.record.info.kind == Kind::Audio).count(),
            video_tracks_active: mine.iter().filter(active).filter(|v| v.record.info.kind == Kind::Video).count(),
            ..Default::default()
        };
        for v in mine.iter().filter(|v| v.record.info.kind == Kind::Video) {
            r.video_subscriptions += 1;
            r.video_frames_received_total += v.record.frames_received;
            r.video_frames_total += v.video.as_ref().map_or(0, |s| s.frames);
            r.last_video_frame_received_at = r.last_video_frame_received_at.max(v.record.last_frame_received_at);
        }
        if let Some(v) = pick(Kind::Video) {
            r.subscribed_at = Some(v.record.subscribed_at);
            r.video_frames_received = v.record.frames_received;
            r.video_keyframes_received = v.record.keyframes_received;
            r.video_keyframes_without_parameter_sets = v.record.keyframes_without_parameter_sets;
            r.first_keyframe_nal_types = v.record.first_keyframe_nal_types.clone();
            r.first_video_keyframe_at = v.record.first_keyframe_received_at;
            r.first_decodable_keyframe_at = v.record.first_decodable_keyframe_at;
            r.video_codec = v.record.codec.clone();
            r.keyframe_requests_sent = v.record.keyframe_requests_sent;
            if let Some(s) = &v.video {
                r.video_frames = s.frames;
                r.first_video_frame_at = s.first_frame_at;
                r.last_video_frame_at = s.last_frame_at;
                r.mean_rgb = s.mean_colour;
            }
        }
        if let Some(a) = pick(Kind::Audio) {
            r.audio_subscribed_at = Some(a.record.subscribed_at);
            r.audio_frames_received = a.record.frames_received;
            r.audio_codec = a.record.codec.clone();
            if let Some(s) = &a.audio {
                r.audio_buffers = s.buffers;
                r.first_audio_at = s.first_audio_at;
                r.audio_freq_hz = s.frequency_hz;
                r.audio_level = s.level_dbfs;
            }
        }
        out.insert(id.clone(), r);
    }
    out
}

/// The two PeerConnections of the current media session (replaced on `reconnect`).
#[derive(Default)]
struct Peers {
    publish: Option<Peer>,
    subscribe: Option<Peer>,
}

struct Shared {
    signaling: Mutex<SignalingState>,
    tracks: Arc<Mutex<Vec<TrackRecord>>>,
    published: Arc<Mutex<PublishCounters>>,
    peers: Mutex<Peers>,
    /// Where the encoders hand their frames: the current publish PeerConnection.
    publish_route: Arc<Mutex<Option<PeerSender>>>,
}

/// What it takes to (re)build the PeerConnections.
#[derive(Clone)]
struct MediaSetup {
    opts: JoinOptions,
    stream_id: String,
    forcer: Option<KeyframeForcer>,
}

impl MediaSetup {
    fn publishing(&self) -> bool {
        self.opts.publish_audio || self.opts.publish_video
    }

    /// Starts a subscribe and (when publishing) a publish PeerConnection and routes the
    /// encoders' frames to the new publish one.
    async fn start_peers(&self, shared: &Shared) -> Result<Peers> {
        let subscribe = Peer::start(
            Pc::Subscribe,
            SubscribeHandler::new(self.opts.request_keyframes, self.opts.decode, shared.tracks.clone()),
            peer::channel(),
            &self.opts.receive_video_codecs,
        )
        .await?;
        let publish = if self.publishing() {
            let (sender, receiver) = peer::channel();
            let handler = PublishHandler::new(
                self.stream_id.clone(),
                self.opts.publish_audio,
                self.opts.publish_video,
                self.opts.video_codec,
                self.forcer.clone(),
                shared.published.clone(),
            );
            let peer = Peer::start(Pc::Publish, handler, (sender.clone(), receiver), &[self.opts.video_codec]).await?;
            *lock(&shared.publish_route) = Some(sender);
            Some(peer)
        } else {
            None
        };
        Ok(Peers { publish, subscribe: Some(subscribe) })
    }
}

/// The publish offer (and our candidate, when trickling) to send after a `welcome`.
async fn publish_offer_messages(sender: &PeerSender, candidate: &str, trickle: bool) -> Result<Vec<ClientMessage>> {
    let offer = sender.create_offer().await.context("creating the publish offer")?;
    let mid = first_mid(&offer);
    let mut messages = vec![ClientMessage::PublishOffer { sdp: offer }];
    if trickle {
        messages.extend(trickle_messages(Pc::Publish, candidate, mid));
    }
    Ok(messages)
}

/// A client that joins a room exactly as the room page does. See the module docs.
///
/// On `reconnect` (the room's SFU worker was replaced) it closes both PeerConnections, opens
/// new ones, and after the new `welcome` publishes and subscribes again; per remote
/// participant the figures continue ([`RemoteMedia::video_frames_total`],
/// [`SyntheticParticipant::video_since`]).
pub struct SyntheticParticipant {
    participant_id: String,
    room_id: String,
    name: String,
    joined_at: Instant,
    shared: Arc<Shared>,
    outgoing: mpsc::UnboundedSender<ClientMessage>,
    encoders: Vec<Encoder>,
    signaling: Option<JoinHandle<()>>,
}

impl SyntheticParticipant {
    /// Joins `room_id` on the gateway at `base_url` (e.g. `http://127.0.0.1:8080`),
    /// publishing `colour` as video and a `tone_hz` sine as audio.
    pub async fn join(base_url: &str, room_id: &str, name: &str, colour: Colour, tone_hz: f32) -> Result<Self> {
        Self::join_with(base_url, room_id, JoinOptions::new(name, colour, tone_hz)).await
    }

    /// Joins with explicit options. Returns once `welcome` arrived and the publish offer (if
    /// any) is sent; media starts flowing when the PeerConnections connect.
    pub async fn join_with(base_url: &str, room_id: &str, opts: JoinOptions) -> Result<Self> {
        media::init()?;
        let http = reqwest::Client::new();
        let joined = signaling::join_room(&http, base_url, room_id, &opts.name).await?;
        let ws_url = signaling::resolve_ws_url(base_url, &joined.ws_url, &joined.token)?;
        tracing::debug!(name = %opts.name, participant_id = %joined.participant_id, %ws_url, "joined over HTTP");

        let shared = Arc::new(Shared {
            signaling: Mutex::new(SignalingState::default()),
            tracks: Arc::new(Mutex::new(vec![])),
            published: Arc::new(Mutex::new(PublishCounters::default())),
            peers: Mutex::new(Peers::default()),
            publish_route: Arc::new(Mutex::new(None)),
        });

        let mut encoders = vec![];
        let mut forcer = None;
        let route = |shared: &Arc<Shared>| {
            let route = shared.publish_route.clone();
            move |f| {
                if let Some(s) = lock(&route).as_ref() {
                    s.send_frame(f);
                }
            }
        };
        if opts.publish_video {
            let enc = Encoder::video_keyframes(opts.video_codec, opts.colour, opts.keyframes, route(&shared))?;
            forcer = Some(enc.keyframe_forcer());
            encoders.push(enc);
        }
        if opts.publish_audio {
            encoders.push(Encoder::audio(opts.tone_hz, route(&shared))?);
        }
        let setup = MediaSetup { opts: opts.clone(), stream_id: format!("{}-stream", joined.participant_id), forcer };
        let peers = setup.start_peers(&shared).await?;
        let publish_sender = peers.publish.as_ref().map(|p| p.sender.clone());
        let subscribe_sender = peers.subscribe.as_ref().map(|p| p.sender.clone()).context("a subscribe PeerConnection")?;
        let subscribe_candidate = peers.subscribe.as_ref().map(|p| p.local_candidate.clone());
        *lock(&shared.peers) = peers;

        let (ws, _) =
            tokio_tungstenite::connect_async(ws_url.as_str()).await.with_context(|| format!("opening the signaling socket {ws_url}"))?;
        let (out_tx, out_rx) = mpsc::unbounded_channel();
        let (welcome_tx, welcome_rx) = oneshot::channel();
        let task = tokio::spawn(run_signaling(
            ws,
            out_rx,
            SignalingCtx {
                name: opts.name.clone(),
                shared: shared.clone(),
                setup,
                publish: publish_sender,
                subscribe: subscribe_sender,
                subscribe_candidate: subscribe_candidate.filter(|_| opts.trickle),
                welcome: Some(welcome_tx),
                awaiting_welcome: false,
            },
        ));

        let welcome_id = match tokio::time::timeout(opts.welcome_timeout, welcome_rx).await {
            Ok(Ok(id)) => id,
            Ok(Err(_)) => {
                let sig = lock(&shared.signaling);
                bail!("no welcome: socket {:?}, errors {:?}", sig.closed, sig.errors);
            }
            Err(_) => bail!("no welcome within {:?}", opts.welcome_timeout),
        };
        if welcome_id != joined.participant_id {
            tracing::warn!(http = %joined.participant_id, ws = %welcome_id, "welcome names another participant id than the join response");
        }

        // The first publish offer. (After a reconnect the signaling task sends it.)
        let publish = lock(&shared.peers).publish.as_ref().map(|p| (p.sender.clone(), p.local_candidate.clone()));
        if let Some((sender, candidate)) = publish {
            for m in publish_offer_messages(&sender, &candidate, opts.trickle).await? {
                out_tx.send(m).map_err(|_| anyhow!("signaling ended before the publish offer"))?;
            }
        }

        Ok(SyntheticParticipant {
            participant_id: joined.participant_id,
            room_id: room_id.to_owned(),
            name: opts.name,
            joined_at: Instant::now(),
            shared,
            outgoing: out_tx,
            encoders,
            signaling: Some(task),
        })
    }

    fn video_encoder(&self) -> Result<&Encoder> {
        self.encoders.iter().find(|e| e.kind() == Kind::Video).context("this participant publishes no video")
    }

    /// Changes the published colour from the next frame on and forces a keyframe; returns
    /// the flip's id (see [`SyntheticParticipant::wait_flip_sent`]).
    pub fn set_colour(&self, colour: Colour) -> Result<u64> {
        self.video_encoder()?.set_colour(colour)
    }

    /// Waits until the first frame of flip `id` has been handed to the publish PeerConnection.
    pub async fn wait_flip_sent(&self, id: u64, timeout: Duration) -> Result<FlipRecord> {
        let end = Instant::now() + timeout;
        loop {
            if let Some(f) = self.video_encoder()?.flip(id) {
                return Ok(f);
            }
            if Instant::now() >= end {
                bail!("{}: flip {id} not sent within {timeout:?}", self.name);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Every colour flip sent so far.
    pub fn flips(&self) -> Vec<FlipRecord> {
        self.encoders.iter().find(|e| e.kind() == Kind::Video).map(Encoder::flips).unwrap_or_default()
    }

    /// Video frames decoded from `participant_id` after `t`, over all of its video tracks
    /// (across renegotiations and reconnects; the last 1024 frames of each track).
    pub fn video_since(&self, participant_id: &str, t: Instant) -> FramesSince {
        let mut out = FramesSince::default();
        for r in lock(&self.shared.tracks).iter() {
            if r.info.participant_id == participant_id && r.info.kind == Kind::Video {
                if let Some(f) = r.decoder.as_ref().and_then(|d| d.video_since(t)) {
                    out.merge(f);
                }
            }
        }
        out
    }

    /// When the first video frame of `participant_id` decoded in `colour` (within `tolerance`
    /// per channel), on a video track subscribed after `subscribed_after`: the decoder's own
    /// timestamp, however late the caller looks.
    pub fn first_video_in(&self, participant_id: &str, colour: Colour, tolerance: u8, subscribed_after: Instant) -> Option<Instant> {
        self.first_event(participant_id, Kind::Video, subscribed_after, |d| d.first_video_frame_where(|c| c.is_close_to(colour, tolerance)))
    }

    /// When `participant_id`'s audio first sounded `tone_hz` (within `tolerance_hz`), on an
    /// audio track subscribed after `subscribed_after` (the decoder's own timestamp).
    pub fn first_tone(&self, participant_id: &str, tone_hz: f32, tolerance_hz: f32, subscribed_after: Instant) -> Option<Instant> {
        self.first_event(participant_id, Kind::Audio, subscribed_after, |d| {
            d.first_tone_where(|f| analysis::tone_matches(f, tone_hz, tolerance_hz))
        })
    }

    fn first_event(
        &self,
        participant_id: &str,
        kind: Kind,
        subscribed_after: Instant,
        event: impl Fn(&media::DecoderStats) -> Option<Instant>,
    ) -> Option<Instant> {
        lock(&self.shared.tracks)
            .iter()
            .filter(|r| r.info.participant_id == participant_id && r.info.kind == kind && r.subscribed_at > subscribed_after)
            .filter_map(|r| r.decoder.as_ref().and_then(&event))
            .min()
    }

    pub fn participant_id(&self) -> &str {
        &self.participant_id
    }

    pub fn room_id(&self) -> &str {
        &self.room_id
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn joined_at(&self) -> Instant {
        self.joined_at
    }

    /// Every track record of the subscribe PeerConnection, with live decoder figures.
    pub fn track_views(&self) -> Vec<TrackView> {
        lock(&self.shared.tracks)
            .iter()
            .map(|r| TrackView {
                record: r.clone(),
                video: r.decoder.as_ref().and_then(|d| d.video()),
                audio: r.decoder.as_ref().and_then(|d| d.audio()),
            })
            .collect()
    }

    pub fn snapshot(&self) -> Snapshot {
        let views = self.track_views();
        let sig = lock(&self.shared.signaling);
        let mut names = sig.names.clone();
        names.remove(&self.participant_id);
        let mut remotes = summarize(&views, &names, &sig.left);
        remotes.remove(&self.participant_id);
        let (latest_tracks, latest_inactive_mids) = match &sig.latest_offer {
            Some(o) => (o.tracks.clone(), o.inactive_mids.clone()),
            None => (vec![], vec![]),
        };
        let peers = lock(&self.shared.peers);
        Snapshot {
            at: Instant::now(),
            remotes,
            latest_tracks,
            latest_inactive_mids,
            latest_offer: sig.latest_offer.clone(),
            offers_received: sig.offers_received,
            welcomes: sig.welcomes,
            reconnects: sig.reconnects.clone(),
            stale_messages: sig.stale_messages,
            publish: peers.publish.as_ref().map(Peer::status),
            subscribe: peers.subscribe.as_ref().map(Peer::status).unwrap_or_default(),
            published: lock(&self.shared.published).clone(),
            errors: sig.errors.clone(),
            unknown_messages: sig.unknown.clone(),
            signaling_closed: sig.closed.clone(),
        }
    }

    /// Remote participants' media, by participant id.
    pub fn remote(&self) -> BTreeMap<String, RemoteMedia> {
        self.snapshot().remotes
    }

    /// Every signaling message received so far.
    pub fn signaling_log(&self) -> Vec<ReceivedMessage> {
        lock(&self.shared.signaling).log.clone()
    }

    /// Waits until this participant decodes each of `others` (participant id, colour, tone) in
    /// the right colour, at least 5 frames, and hears its tone.
    pub async fn wait_sees_and_hears(&self, others: &[(&str, Colour, f32)], timeout: Duration) -> Result<()> {
        self.wait_until(
            |s| {
                others.iter().all(|(id, colour, tone)| {
                    s.remote(id)
                        .is_some_and(|r| r.video_frames >= 5 && r.shows(*colour, COLOUR_TOLERANCE) && r.sounds(*tone, TONE_TOLERANCE_HZ))
                })
            },
            timeout,
        )
        .await
        .with_context(|| format!("{} does not see and hear everyone", self.name))?;
        Ok(())
    }

    /// Polls the snapshot every 20 ms until `cond` holds; on timeout the error shows the last
    /// snapshot.
    pub async fn wait_until(&self, mut cond: impl FnMut(&Snapshot) -> bool, timeout: Duration) -> Result<Snapshot> {
        let end = Instant::now() + timeout;
        loop {
            let s = self.snapshot();
            if cond(&s) {
                return Ok(s);
            }
            if Instant::now() >= end {
                bail!("{}: condition not met within {timeout:?}; last snapshot: {s:#?}", self.name);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends an arbitrary client message (for protocol tests).
    pub fn send(&self, message: ClientMessage) -> Result<()> {
        self.outgoing.send(message).map_err(|_| anyhow!("signaling has ended"))
    }

    /// Sends `leave`, closes the socket and both PeerConnections, stops the encoders.
    pub async fn leave(mut self) {
        let _ = self.outgoing.send(ClientMessage::Leave);
        if let Some(task) = self.signaling.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(2), task).await.is_err() {
                abort.abort();
            }
        }
        self.encoders.clear();
        let peers = std::mem::take(&mut *lock(&self.shared.peers));
        for p in [peers.publish, peers.subscribe].into_iter().flatten() {
            p.close().await;
        }
    }
}

impl Drop for SyntheticParticipant {
    fn drop(&mut self) {
        if let Some(task) = self.signaling.take() {
            task.abort();
        }
        let peers = lock(&self.shared.peers);
        for p in peers.publish.iter().chain(peers.subscribe.iter()) {
            p.sender.close();
        }
    }
}

/// The first `a=mid:` of an SDP.
fn first_mid(sdp: &str) -> Option<String> {
    tracks::parse_mlines(sdp).into_iter().find_map(|m| m.mid)
}

/// Our candidate, then end-of-candidates, for one PeerConnection.
pub fn trickle_messages(pc: Pc, candidate: &str, sdp_mid: Option<String>) -> Vec<ClientMessage> {
    vec![
        ClientMessage::Candidate { pc, candidate: candidate.to_owned(), sdp_mid: sdp_mid.clone() },
        ClientMessage::Candidate { pc, candidate: String::new(), sdp_mid },
    ]
}

struct SignalingCtx {
    name: String,
    shared: Arc<Shared>,
    setup: MediaSetup,
    publish: Option<PeerSender>,
    subscribe: PeerSender,
    /// Set until our subscribe candidate has been trickled (after the first answer).
    subscribe_candidate: Option<String>,
    welcome: Option<oneshot::Sender<String>>,
    /// Between `reconnect` and the new `welcome`.
    awaiting_welcome: bool,
}

impl SignalingCtx {
    /// `reconnect`: the old PeerConnections are dead on the server's side. Close them (in
    /// the background), mark their tracks removed, and start new ones for the new `welcome`.
    async fn reconnect(&mut self, reason: &str) {
        let now = Instant::now();
        tracing::info!(name = %self.name, %reason, "reconnecting: new PeerConnections");
        self.awaiting_welcome = true;
        for r in lock(&self.shared.tracks).iter_mut() {
            r.removed_at.get_or_insert(now);
        }
        *lock(&self.shared.publish_route) = None;
        let old = std::mem::take(&mut *lock(&self.shared.peers));
        for p in [old.publish, old.subscribe].into_iter().flatten() {
            tokio::spawn(p.close());
        }
        match self.setup.start_peers(&self.shared).await {
            Ok(peers) => {
                self.publish = peers.publish.as_ref().map(|p| p.sender.clone());
                if let Some(s) = &peers.subscribe {
                    self.subscribe = s.sender.clone();
                    self.subscribe_candidate = self.setup.opts.trickle.then(|| s.local_candidate.clone());
                }
                *lock(&self.shared.peers) = peers;
            }
            Err(e) => {
                tracing::warn!(name = %self.name, "reconnect: {e:#}");
                lock(&self.shared.signaling).errors.push(format!("reconnect: {e:#}"));
            }
        }
    }

    /// After the `welcome` that follows a `reconnect`: publish again.
    async fn republish(&mut self) -> Vec<ClientMessage> {
        self.awaiting_welcome = false;
        let offer = {
            let peers = lock(&self.shared.peers);
            peers.publish.as_ref().map(|p| (p.sender.clone(), p.local_candidate.clone()))
        };
        let Some((sender, candidate)) = offer else { return vec![] };
        match publish_offer_messages(&sender, &candidate, self.setup.opts.trickle).await {
            Ok(messages) => {
                if let Some(r) = lock(&self.shared.signaling).reconnects.last_mut() {
                    r.publish_offer_at = Some(Instant::now());
                }
                messages
            }
            Err(e) => {
                tracing::warn!(name = %self.name, "reconnect: {e:#}");
                lock(&self.shared.signaling).errors.push(format!("reconnect: {e:#}"));
                vec![]
            }
        }
    }
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn run_signaling(ws: Ws, mut outgoing: mpsc::UnboundedReceiver<ClientMessage>, mut ctx: SignalingCtx) {
    let (mut sink, mut stream) = ws.split();
    let reason: String = loop {
        tokio::select! {
            out = outgoing.recv() => {
                let Some(msg) = out else { break "participant dropped".into() };
                let leaving = msg == ClientMessage::Leave;
                let text = match serde_json::to_string(&msg) {
                    Ok(t) => t,
                    Err(e) => { tracing::warn!("serializing {msg:?}: {e}"); continue; }
                };
                if let Err(e) = sink.send(Message::text(text)).await {
                    break format!("sending failed: {e}");
                }
                if leaving {
                    let _ = sink.close().await;
                    break "left".into();
                }
            }
            incoming = stream.next() => {
                let text = match incoming {
                    None => break "server closed the socket".into(),
                    Some(Err(e)) => break format!("socket error: {e}"),
                    Some(Ok(Message::Text(t))) => t.to_string(),
                    Some(Ok(Message::Close(frame))) => break format!("server closed the socket: {frame:?}"),
                    Some(Ok(Message::Binary(_))) => {
                        tracing::warn!(name = %ctx.name, "server sent a binary frame; the protocol has none");
                        continue;
                    }
                    Some(Ok(_)) => continue,
                };
                match signaling::parse_server_message(&text) {
                    Ok(msg) => {
                        let mut failed = None;
                        for reply in handle_server_message(&mut ctx, &msg).await {
                            match serde_json::to_string(&reply) {
                                Ok(t) => {
                                    if let Err(e) = sink.send(Message::text(t)).await {
                                        failed = Some(format!("sending failed: {e}"));
                                        break;
                                    }
                                    if let ClientMessage::SubscribeAnswer { .. } = reply {
                                        let mut sig = lock(&ctx.shared.signaling);
                                        if let Some(o) = &mut sig.latest_offer {
                                            o.answered_at = Some(Instant::now());
                                        }
                                    }
                                }
                                Err(e) => tracing::warn!("serializing the reply: {e}"),
                            }
                        }
                        if let Some(reason) = failed {
                            break reason;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(name = %ctx.name, "{e:#}");
                        lock(&ctx.shared.signaling).unknown.push(format!("{e:#}"));
                    }
                }
            }
        }
    };
    tracing::debug!(name = %ctx.name, %reason, "signaling ended");
    lock(&ctx.shared.signaling).closed = Some(reason);
}

/// Applies one server message; returns the messages to send back, in order.
async fn handle_server_message(ctx: &mut SignalingCtx, msg: &ServerMessage) -> Vec<ClientMessage> {
    let now = Instant::now();
    tracing::debug!(name = %ctx.name, kind = msg.type_name(), "signaling message");
    {
        let mut sig = lock(&ctx.shared.signaling);
        sig.log.push(ReceivedMessage { at: now, message: msg.clone() });
        match msg {
            ServerMessage::Welcome { room_id, participant_id, participants, protocol, .. } => {
                if *protocol != signaling::PROTOCOL_VERSION {
                    tracing::warn!(protocol, "server speaks another protocol version");
                }
                sig.welcomes += 1;
                if ctx.awaiting_welcome {
                    if let Some(r) = sig.reconnects.last_mut() {
                        r.welcome_at = Some(now);
                    }
                }
                sig.room_id = Some(room_id.clone());
                for p in participants {
                    sig.names.insert(p.id.clone(), p.name.clone());
                }
                if let Some(tx) = ctx.welcome.take() {
                    let _ = tx.send(participant_id.clone());
                }
            }
            ServerMessage::ParticipantJoined { participant } => {
                sig.names.insert(participant.id.clone(), participant.name.clone());
                sig.left.remove(&participant.id);
            }
            ServerMessage::ParticipantLeft { participant_id } => {
                sig.left.insert(participant_id.clone());
            }
            ServerMessage::Error { code, message, fatal } => {
                tracing::warn!(name = %ctx.name, %code, %message, fatal, "server reported an error");
                sig.errors.push(format!("{code}: {message}"));
                if *fatal {
                    // A fatal error before `welcome` fails the join at once.
                    ctx.welcome.take();
                }
            }
            ServerMessage::Reconnect { reason } => {
                sig.reconnects.push(ReconnectRecord { at: now, reason: reason.clone(), welcome_at: None, publish_offer_at: None });
            }
            ServerMessage::PublishAnswer { .. } | ServerMessage::SubscribeOffer { .. } | ServerMessage::Candidate { .. }
                if ctx.awaiting_welcome =>
            {
                tracing::debug!(name = %ctx.name, kind = msg.type_name(), "ignoring a message of the media session before the reconnect");
                sig.stale_messages += 1;
                return vec![];
            }
            _ => {}
        }
    }
    match msg {
        ServerMessage::Reconnect { reason } => {
            ctx.reconnect(reason).await;
            vec![]
        }
        ServerMessage::Welcome { .. } if ctx.awaiting_welcome => ctx.republish().await,
        ServerMessage::PublishAnswer { sdp } => {
            let Some(p) = &ctx.publish else {
                lock(&ctx.shared.signaling).errors.push("publish_answer without a publish offer".into());
                return vec![];
            };
            if let Err(e) = p.accept_answer(sdp.clone()).await {
                tracing::warn!(name = %ctx.name, "publish answer: {e:#}");
                lock(&ctx.shared.signaling).errors.push(format!("publish answer: {e:#}"));
            }
            vec![]
        }
        ServerMessage::SubscribeOffer { sdp, tracks } => {
            let inactive = tracks::inactive_mids(sdp);
            let result = ctx.subscribe.accept_offer(sdp.clone(), tracks.clone()).await;
            let mut sig = lock(&ctx.shared.signaling);
            sig.offers_received += 1;
            let error = result.as_ref().err().map(|e| format!("{e:#}"));
            if let Some(e) = &error {
                tracing::warn!(name = %ctx.name, "subscribe offer: {e}");
                sig.errors.push(format!("subscribe offer: {e}"));
            }
            sig.latest_offer = Some(SubscribeOfferRecord {
                received_at: now,
                sdp: sdp.clone(),
                tracks: tracks.clone(),
                inactive_mids: inactive,
                answered_at: None,
                answer_sdp: result.as_ref().ok().cloned(),
                error,
            });
            drop(sig);
            let Ok(answer) = result else {
                return vec![];
            };
            let mid = first_mid(&answer);
            let mut out = vec![ClientMessage::SubscribeAnswer { sdp: answer }];
            if let Some(c) = ctx.subscribe_candidate.take() {
                out.extend(trickle_messages(Pc::Subscribe, &c, mid));
            }
            out
        }
        ServerMessage::Candidate { pc, candidate, .. } => {
            match pc {
                Pc::Publish => {
                    if let Some(p) = &ctx.publish {
                        p.add_remote_candidate(candidate.clone());
                    }
                }
                Pc::Subscribe => ctx.subscribe.add_remote_candidate(candidate.clone()),
            }
            vec![]
        }
        _ => vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(mid: &str, pid: &str, kind: Kind, at: Instant, removed: bool) -> TrackRecord {
        TrackRecord {
            info: TrackInfo { mid: mid.into(), producer_id: format!("{pid}:{mid}"), participant_id: pid.into(), kind },
            subscribed_at: at,
            removed_at: removed.then_some(at),
            frames_received: 10,
            keyframes_received: 1,
            keyframes_without_parameter_sets: 0,
            first_keyframe_nal_types: None,
            first_frame_received_at: Some(at),
            first_keyframe_received_at: Some(at),
            first_decodable_keyframe_at: Some(at),
            last_frame_received_at: Some(at),
            keyframe_requests_sent: 0,
            codec: Some(format!("VP8/90000 pt 96 ({mid})")),
            decoder: None,
            decoder_error: None,
        }
    }

    #[test]
    fn trickle_is_candidate_then_end_of_candidates() {
        let sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:a0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:v1\r\n";
        let msgs = trickle_messages(Pc::Publish, "candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host", first_mid(sdp));
        assert_eq!(
            serde_json::to_value(&msgs).unwrap(),
            serde_json::json!([
                {"type": "candidate", "pc": "publish", "candidate": "candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host", "sdp_mid": "a0"},
                {"type": "candidate", "pc": "publish", "candidate": "", "sdp_mid": "a0"}
            ])
        );
    }

    #[test]
    fn summary_prefers_active_and_recent_tracks() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(1);
        let video =
            |frames, colour| Some(VideoStats { frames, first_frame_at: Some(t1), last_frame_at: Some(t1), mean_colour: Some(colour) });
        let views = vec![
            TrackView { record: record("0", "p-a", Kind::Video, t0, true), video: video(5, Colour::BLUE), audio: None },
            TrackView { record: record("1", "p-a", Kind::Video, t1, false), video: video(7, Colour::RED), audio: None },
            TrackView {
                record: record("2", "p-a", Kind::Audio, t0, false),
                video: None,
                audio: Some(AudioStats { buffers: 3, frequency_hz: Some(440.0), level_dbfs: Some(-9.0), ..Default::default() }),
            },
            TrackView { record: record("3", "p-b", Kind::Video, t0, true), video: video(2, Colour::GREEN), audio: None },
        ];
        let names = BTreeMap::from([("p-a".to_owned(), "Ada".to_owned()), ("p-c".to_owned(), "Cy".to_owned())]);
        let left = BTreeSet::from(["p-b".to_owned()]);
        let s = summarize(&views, &names, &left);
        let a = &s["p-a"];
        assert_eq!(a.tracks_active, 2);
        assert_eq!((a.audio_tracks_active, a.video_tracks_active), (1, 1));
        assert_eq!(a.video_frames, 7);
        assert_eq!((a.video_frames_total, a.video_subscriptions), (12, 2), "totals count every video track");
        assert_eq!(a.video_frames_received_total, 20);
        assert!(a.shows(Colour::RED, 0));
        assert!(a.sounds(440.0, 1.0));
        assert_eq!(a.subscribed_at, Some(t1));
        assert_eq!(a.time_to_first_video_frame(), Some(Duration::ZERO));
        assert_eq!(a.name.as_deref(), Some("Ada"));
        assert_eq!(a.video_codec.as_deref(), Some("VP8/90000 pt 96 (1)"), "the codec of the current video track");
        let b = &s["p-b"];
        assert!(b.left);
        assert_eq!(b.tracks_active, 0);
        assert_eq!(b.video_frames, 2, "a gone participant keeps its last figures");
        let c = &s["p-c"];
        assert_eq!(c.tracks_active, 0);
        assert_eq!(c.video_frames, 0);
    }
}
