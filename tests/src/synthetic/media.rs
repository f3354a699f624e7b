//! GStreamer at the edges: encoders that make what a camera and a microphone would send, and
//! decoders that turn received frames back into pictures and sound to measure.
//!
//! Publish: `videotestsrc` (one solid colour) → VP8 or H.264 ([`VideoCodec`]), `audiotestsrc`
//! (one sine) → Opus, each into an appsink whose callback hands every encoded frame on.
//! Receive: per remote track `appsrc → decoder → appsink` (`vp8dec`, `h264parse ! avdec_h264`,
//! `opusdec`); the appsink callback records counts, timing, the mean colour of the latest
//! frame and the dominant tone and level.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{anyhow, Context, Result};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;

use super::analysis::{self, Colour};
use super::signaling::Kind;

/// Sample rate the audio decoder produces (and Opus' RTP clock rate).
pub const AUDIO_RATE: u32 = 48_000;
/// Samples the tone detector looks at: 100 ms.
const AUDIO_WINDOW: usize = (AUDIO_RATE / 10) as usize;
/// Below this level there is no tone to report.
const MIN_TONE_DBFS: f32 = -50.0;

/// Initializes GStreamer once per process.
pub fn init() -> Result<()> {
    static INIT: OnceLock<Result<(), String>> = OnceLock::new();
    INIT.get_or_init(|| gst::init().map_err(|e| e.to_string())).clone().map_err(|e| anyhow!("gstreamer init failed: {e}"))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn launch(description: &str) -> Result<gst::Pipeline> {
    init()?;
    let element = gst::parse::launch(description).with_context(|| format!("gst-launch syntax: {description}"))?;
    let pipeline = element.downcast::<gst::Pipeline>().map_err(|_| anyhow!("not a pipeline: {description}"))?;
    // Nobody pops the bus: log what matters and drop every message so none pile up.
    if let Some(bus) = pipeline.bus() {
        let name = description.split_whitespace().next().unwrap_or("pipeline").to_owned();
        bus.set_sync_handler(move |_, msg| {
            match msg.view() {
                gst::MessageView::Error(e) => {
                    tracing::warn!(pipeline = %name, error = %e.error(), debug = ?e.debug(), "gstreamer error")
                }
                gst::MessageView::Warning(w) => {
                    tracing::debug!(pipeline = %name, warning = %w.error(), "gstreamer warning")
                }
                _ => {}
            }
            gst::BusSyncReply::Drop
        });
    }
    Ok(pipeline)
}

fn by_name<T: IsA<gst::Element>>(pipeline: &gst::Pipeline, name: &str) -> Result<T> {
    pipeline
        .by_name(name)
        .ok_or_else(|| anyhow!("pipeline has no element {name}"))?
        .downcast::<T>()
        .map_err(|_| anyhow!("element {name} has the wrong type"))
}

fn play(pipeline: &gst::Pipeline) -> Result<()> {
    pipeline.set_state(gst::State::Playing).map(|_| ()).map_err(|e| anyhow!("pipeline would not start: {e}"))
}

/// A pipeline that is stopped (set to NULL) when dropped.
struct OwnedPipeline(gst::Pipeline);

impl Drop for OwnedPipeline {
    fn drop(&mut self) {
        let _ = self.0.set_state(gst::State::Null);
    }
}

/// The video codec a synthetic participant publishes (and can decode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub enum VideoCodec {
    #[default]
    Vp8,
    /// Constrained baseline, Annex-B access units (x264 `tune=zerolatency`), sent with
    /// packetization-mode 1 (STAP-A / FU-A) as browsers do.
    H264,
}

impl VideoCodec {
    pub const ALL: [VideoCodec; 2] = [VideoCodec::Vp8, VideoCodec::H264];

    /// The SDP encoding name.
    pub fn name(self) -> &'static str {
        match self {
            VideoCodec::Vp8 => "VP8",
            VideoCodec::H264 => "H264",
        }
    }
}

impl std::fmt::Display for VideoCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One encoded frame as it leaves an encoder.
#[derive(Debug, Clone)]
pub struct EncodedFrame {
    pub kind: Kind,
    pub data: Vec<u8>,
    /// Presentation time from the start of the encoder's stream.
    pub pts: Duration,
    pub keyframe: bool,
}

/// Asks a video encoder for a keyframe; cheap to clone, usable from any thread.
#[derive(Clone)]
pub struct KeyframeForcer {
    sink: gst_app::AppSink,
}

impl KeyframeForcer {
    /// Sends `GstForceKeyUnit` upstream from the appsink to the encoder.
    pub fn force(&self) -> bool {
        let event = gst_video::UpstreamForceKeyUnitEvent::builder().all_headers(true).build();
        self.sink.send_event(event)
    }
}

/// A live test source and its encoder, delivering encoded frames to a callback.
pub struct Encoder {
    _pipeline: OwnedPipeline,
    sink: gst_app::AppSink,
    kind: Kind,
    /// Video only: the source (its colour can change) and the colour flips made so far.
    source: Option<gst::Element>,
    flips: Arc<Mutex<FlipState>>,
}

/// One change of the published colour, from the request to the first encoded frame that
/// shows it leaving the encoder (handed to the PeerConnection).
#[derive(Debug, Clone, PartialEq)]
pub struct FlipRecord {
    pub id: u64,
    pub colour: Colour,
    pub requested_at: Instant,
    /// Presentation time (in the encoder's stream) of the first frame in the new colour.
    pub pts: Duration,
    /// When that frame, encoded, was handed on to be sent.
    pub sent_at: Instant,
    /// The same instant by the wall clock, to compare with other processes (a browser).
    pub sent_wall: SystemTime,
    /// The frame was a keyframe (a flip forces one).
    pub keyframe: bool,
}

#[derive(Debug, Clone)]
struct PendingFlip {
    id: u64,
    colour: Colour,
    requested_at: Instant,
    /// Y, U, V of the last raw frame before the request: the first frame that differs is
    /// the first in the new colour.
    baseline: Option<[u8; 3]>,
    /// Set by the probe: the presentation time of the first raw frame in the new colour.
    pts: Option<gst::ClockTime>,
}

#[derive(Debug, Default)]
struct FlipState {
    next_id: u64,
    /// Y, U, V at the centre of the latest raw frame seen by the encoder.
    last_sample: Option<[u8; 3]>,
    pending: Vec<PendingFlip>,
    done: Vec<FlipRecord>,
}

/// A raw frame "differs" from a baseline when one of Y, U, V moved by more than this.
const FLIP_THRESHOLD: u8 = 24;

/// Y, U, V at the centre of a raw planar YUV frame (I420).
fn centre_yuv(buffer: &gst::BufferRef, info: &gst_video::VideoInfo) -> Option<[u8; 3]> {
    let map = buffer.map_readable().ok()?;
    let data = map.as_slice();
    let (w, h) = (info.width() as usize, info.height() as usize);
    let mut out = [0u8; 3];
    for (plane, value) in out.iter_mut().enumerate() {
        let (x, y) = if plane == 0 { (w / 2, h / 2) } else { (w / 4, h / 4) };
        let offset = *info.offset().get(plane)?;
        let stride = usize::try_from(*info.stride().get(plane)?).ok()?;
        *value = *data.get(offset + y * stride + x)?;
    }
    Some(out)
}

fn differs(a: [u8; 3], b: [u8; 3]) -> bool {
    a.iter().zip(b).any(|(x, y)| x.abs_diff(y) > FLIP_THRESHOLD)
}

/// When a synthetic video publisher sends keyframes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyframePolicy {
    /// Only the first frame and when asked (a PLI/FIR, or [`KeyframeForcer::force`]): what
    /// browsers do. Bugs in keyframe requests show up as frozen or missing video.
    #[default]
    OnRequest,
    /// Also one every this many frames (GStreamer's encoders' habit; hides keyframe bugs).
    Every(u32),
}

impl KeyframePolicy {
    /// The encoder's maximum keyframe distance, in frames.
    fn max_distance(self) -> u32 {
        match self {
            // About 18 hours at 15 fps: in practice never.
            KeyframePolicy::OnRequest => 1_000_000,
            KeyframePolicy::Every(n) => n.max(1),
        }
    }
}

/// `gst-launch` description of the VP8 video publisher (keyframes only on request).
pub fn video_encoder_description(colour: Colour) -> String {
    video_encoder_description_for(VideoCodec::Vp8, colour, KeyframePolicy::OnRequest)
}

/// `gst-launch` description of the video publisher: 320x240 at 15 fps, keyframes as `keyframes`
/// says, ~300 kbit/s, no frame delay in the encoder (a forced keyframe is the very next frame).
/// H.264: constrained baseline in Annex-B access units; x264 repeats SPS and PPS before every
/// IDR, as browsers' encoders do.
pub fn video_encoder_description_for(codec: VideoCodec, colour: Colour, keyframes: KeyframePolicy) -> String {
    let gop = keyframes.max_distance();
    let encoder = match codec {
        VideoCodec::Vp8 => format!(
            "vp8enc name=enc deadline=1 cpu-used=8 keyframe-max-dist={gop} lag-in-frames=0 \
               end-usage=cbr target-bitrate=300000 error-resilient=default"
        ),
        VideoCodec::H264 => format!(
            "x264enc name=enc tune=zerolatency speed-preset=ultrafast key-int-max={gop} bitrate=300 \
               byte-stream=true aud=false threads=1 \
             ! video/x-h264,profile=constrained-baseline,stream-format=byte-stream,alignment=au"
        ),
    };
    format!(
        "videotestsrc name=src pattern=solid-color foreground-color={:#010x} is-live=true \
         ! video/x-raw,format=I420,width=320,height=240,framerate=15/1 \
         ! {encoder} \
         ! appsink name=sink sync=false max-buffers=30 drop=true",
        colour.argb()
    )
}

/// `gst-launch` description of the audio publisher.
pub fn audio_encoder_description(tone_hz: f32) -> String {
    format!(
        "audiotestsrc wave=sine freq={tone_hz} volume=0.5 is-live=true samplesperbuffer=960 \
         ! audio/x-raw,format=S16LE,rate=48000,channels=1 \
         ! opusenc frame-size=20 bitrate=48000 \
         ! appsink name=sink sync=false max-buffers=50 drop=true"
    )
}

impl Encoder {
    /// Solid `colour`, 320x240 at 15 fps, VP8. The colour can change later ([`Encoder::set_colour`]).
    pub fn video(colour: Colour, on_frame: impl FnMut(EncodedFrame) + Send + 'static) -> Result<Self> {
        Self::video_with(VideoCodec::Vp8, colour, on_frame)
    }

    /// [`Encoder::video`] in `codec` (H.264: one Annex-B access unit per frame), keyframes
    /// only on request.
    pub fn video_with(codec: VideoCodec, colour: Colour, on_frame: impl FnMut(EncodedFrame) + Send + 'static) -> Result<Self> {
        Self::video_keyframes(codec, colour, KeyframePolicy::OnRequest, on_frame)
    }

    /// [`Encoder::video_with`] with an explicit keyframe policy.
    pub fn video_keyframes(
        codec: VideoCodec,
        colour: Colour,
        keyframes: KeyframePolicy,
        on_frame: impl FnMut(EncodedFrame) + Send + 'static,
    ) -> Result<Self> {
        Self::start(&video_encoder_description_for(codec, colour, keyframes), Kind::Video, on_frame)
    }

    /// A sine at `tone_hz`, mono 48 kHz, Opus in 20 ms frames.
    pub fn audio(tone_hz: f32, on_frame: impl FnMut(EncodedFrame) + Send + 'static) -> Result<Self> {
        Self::start(&audio_encoder_description(tone_hz), Kind::Audio, on_frame)
    }

    fn start(description: &str, kind: Kind, mut on_frame: impl FnMut(EncodedFrame) + Send + 'static) -> Result<Self> {
        let pipeline = launch(description)?;
        let sink: gst_app::AppSink = by_name(&pipeline, "sink")?;
        let flips = Arc::new(Mutex::new(FlipState::default()));
        let source = match kind {
            Kind::Video => {
                let source: gst::Element = by_name(&pipeline, "src")?;
                let enc: gst::Element = by_name(&pipeline, "enc")?;
                let pad = enc.static_pad("sink").context("the video encoder has no sink pad")?;
                let enc_src = enc.static_pad("src").context("the video encoder has no src pad")?.downgrade();
                let state = flips.clone();
                // Watches the raw frames going into the encoder: the first one that shows a
                // requested colour is made a keyframe (the encoder takes a force-key-unit
                // request on its src pad synchronously and applies it to the next frame: this one).
                pad.add_probe(gst::PadProbeType::BUFFER, move |pad, probe| {
                    let Some(buffer) = probe.buffer() else { return gst::PadProbeReturn::Ok };
                    let Some(info) = pad.current_caps().and_then(|c| gst_video::VideoInfo::from_caps(&c).ok()) else {
                        return gst::PadProbeReturn::Ok;
                    };
                    let Some(sample) = centre_yuv(buffer, &info) else { return gst::PadProbeReturn::Ok };
                    let mut st = lock(&state);
                    st.last_sample = Some(sample);
                    let mut force = false;
                    for p in st.pending.iter_mut().filter(|p| p.pts.is_none()) {
                        if p.baseline.is_none_or(|b| differs(b, sample)) {
                            p.pts = buffer.pts();
                            force = true;
                        }
                    }
                    drop(st);
                    if force {
                        if let Some(src) = enc_src.upgrade() {
                            src.send_event(gst_video::UpstreamForceKeyUnitEvent::builder().all_headers(true).build());
                        }
                    }
                    gst::PadProbeReturn::Ok
                });
                Some(source)
            }
            Kind::Audio => None,
        };
        let state = flips.clone();
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let Some(buffer) = sample.buffer() else {
                        return Ok(gst::FlowSuccess::Ok);
                    };
                    let Ok(map) = buffer.map_readable() else {
                        return Err(gst::FlowError::Error);
                    };
                    let keyframe = !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT);
                    on_frame(EncodedFrame {
                        kind,
                        data: map.as_slice().to_vec(),
                        pts: buffer.pts().map(|t| Duration::from_nanos(t.nseconds())).unwrap_or_default(),
                        keyframe,
                    });
                    if kind == Kind::Video {
                        let (sent_at, sent_wall) = (Instant::now(), SystemTime::now());
                        let mut st = lock(&state);
                        let pts = buffer.pts();
                        // A frame at or after the first new-colour frame completes the flip
                        // (the encoder may skip none here, but never count a later one early).
                        let (ready, waiting): (Vec<_>, Vec<_>) =
                            std::mem::take(&mut st.pending).into_iter().partition(|p| p.pts.is_some() && pts.is_some() && pts >= p.pts);
                        st.pending = waiting;
                        for p in ready {
                            st.done.push(FlipRecord {
                                id: p.id,
                                colour: p.colour,
                                requested_at: p.requested_at,
                                pts: Duration::from_nanos(pts.map(|t| t.nseconds()).unwrap_or_default()),
                                sent_at,
                                sent_wall,
                                keyframe,
                            });
                        }
                    }
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
        let owned = OwnedPipeline(pipeline);
        play(&owned.0)?;
        Ok(Encoder { _pipeline: owned, sink, kind, source, flips })
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    pub fn keyframe_forcer(&self) -> KeyframeForcer {
        KeyframeForcer { sink: self.sink.clone() }
    }

    /// Video: changes the solid colour from the next frame on; that frame is a keyframe.
    /// Returns the flip's id; [`Encoder::flip`] tells when its first frame was sent.
    pub fn set_colour(&self, colour: Colour) -> Result<u64> {
        let source = self.source.as_ref().context("only a video encoder has a colour")?;
        let id = {
            let mut st = lock(&self.flips);
            st.next_id += 1;
            let id = st.next_id;
            let baseline = st.last_sample;
            st.pending.push(PendingFlip { id, colour, requested_at: Instant::now(), baseline, pts: None });
            id
        };
        source.set_property("foreground-color", colour.argb());
        Ok(id)
    }

    /// The flip `id` once its first frame has been sent.
    pub fn flip(&self, id: u64) -> Option<FlipRecord> {
        lock(&self.flips).done.iter().find(|f| f.id == id).cloned()
    }

    /// Every completed flip, oldest first.
    pub fn flips(&self) -> Vec<FlipRecord> {
        lock(&self.flips).done.clone()
    }
}

/// What a video decoder has produced so far.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VideoStats {
    pub frames: u64,
    pub first_frame_at: Option<Instant>,
    pub last_frame_at: Option<Instant>,
    /// Mean colour of the latest decoded frame.
    pub mean_colour: Option<Colour>,
}

/// What an audio decoder has produced so far.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AudioStats {
    /// Decoded buffers (about one per 20 ms Opus frame).
    pub buffers: u64,
    pub first_audio_at: Option<Instant>,
    pub last_audio_at: Option<Instant>,
    /// Dominant frequency over the last 100 ms, if there is a tone.
    pub frequency_hz: Option<f32>,
    /// RMS level over the last 100 ms.
    pub level_dbfs: Option<f32>,
}

/// Decoded video frames after some instant (see [`DecoderStats::video_since`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FramesSince {
    pub frames: u64,
    pub first_at: Option<Instant>,
    pub last_at: Option<Instant>,
    /// Mean colour of each of those frames, in order (frames whose colour could not be read
    /// are counted but not listed).
    pub colours: Vec<Colour>,
    /// When each of those frames was decoded, in order.
    pub times: Vec<Instant>,
}

impl FramesSince {
    /// Adds another track's frames (e.g. the same participant before and after a reconnect).
    pub fn merge(&mut self, other: FramesSince) {
        self.frames += other.frames;
        self.first_at = match (self.first_at, other.first_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.times.extend(other.times);
        self.times.sort_unstable();
        if other.last_at > self.last_at {
            self.last_at = other.last_at;
            self.colours.extend(other.colours);
        } else {
            let mut c = other.colours;
            c.extend(std::mem::take(&mut self.colours));
            self.colours = c;
        }
    }

    /// Colour of the latest frame.
    pub fn last_colour(&self) -> Option<Colour> {
        self.colours.last().copied()
    }
}

/// Decoded frames remembered per video decoder for [`DecoderStats::video_since`]
/// (68 s at 15 fps).
const VIDEO_HISTORY: usize = 1024;

/// A video decoder's figures and its recent frames.
#[derive(Debug, Default)]
pub struct VideoState {
    pub stats: VideoStats,
    history: VecDeque<(Instant, Option<Colour>)>,
}

impl VideoState {
    fn frame(&mut self, at: Instant, colour: Option<Colour>) {
        self.stats.frames += 1;
        self.stats.first_frame_at.get_or_insert(at);
        self.stats.last_frame_at = Some(at);
        if colour.is_some() {
            self.stats.mean_colour = colour;
        }
        if self.history.len() == VIDEO_HISTORY {
            self.history.pop_front();
        }
        self.history.push_back((at, colour));
    }

    /// When the first remembered frame whose colour satisfies `ok` was decoded.
    fn first_where(&self, ok: impl Fn(Colour) -> bool) -> Option<Instant> {
        self.history.iter().find(|(_, c)| c.is_some_and(&ok)).map(|(at, _)| *at)
    }

    fn since(&self, t: Instant) -> FramesSince {
        let mut out = FramesSince::default();
        for (at, colour) in self.history.iter().filter(|(at, _)| *at > t) {
            out.frames += 1;
            out.first_at.get_or_insert(*at);
            out.last_at = Some(*at);
            out.times.push(*at);
            out.colours.extend(*colour);
        }
        out
    }
}

/// Tone readings remembered per audio decoder for [`DecoderStats::first_tone_where`]
/// (about 80 s of 20 ms buffers).
const AUDIO_HISTORY: usize = 4096;

/// An audio decoder's figures and its recent tone readings.
#[derive(Debug, Default)]
pub struct AudioState {
    pub stats: AudioStats,
    /// (when, dominant frequency over the 100 ms up to then), one per decoded buffer.
    history: VecDeque<(Instant, Option<f32>)>,
}

impl AudioState {
    fn buffer(&mut self, at: Instant, level: f32, freq: Option<f32>) {
        self.stats.buffers += 1;
        self.stats.first_audio_at.get_or_insert(at);
        self.stats.last_audio_at = Some(at);
        self.stats.level_dbfs = Some(level);
        self.stats.frequency_hz = freq;
        if self.history.len() == AUDIO_HISTORY {
            self.history.pop_front();
        }
        self.history.push_back((at, freq));
    }
}

/// Live statistics of one decoder, shared with whoever wants to look.
#[derive(Debug, Clone)]
pub enum DecoderStats {
    Video(Arc<Mutex<VideoState>>),
    Audio(Arc<Mutex<AudioState>>),
}

impl DecoderStats {
    pub fn video(&self) -> Option<VideoStats> {
        match self {
            DecoderStats::Video(s) => Some(lock(s).stats.clone()),
            DecoderStats::Audio(_) => None,
        }
    }

    /// Video frames decoded after `t` (within the last 1024 frames).
    pub fn video_since(&self, t: Instant) -> Option<FramesSince> {
        match self {
            DecoderStats::Video(s) => Some(lock(s).since(t)),
            DecoderStats::Audio(_) => None,
        }
    }
    pub fn audio(&self) -> Option<AudioStats> {
        match self {
            DecoderStats::Audio(s) => Some(lock(s).stats.clone()),
            DecoderStats::Video(_) => None,
        }
    }

    /// Video: when the first frame whose mean colour satisfies `ok` was decoded (within the
    /// last 1024 frames). The event time as the decoder recorded it, not when someone looked.
    pub fn first_video_frame_where(&self, ok: impl Fn(Colour) -> bool) -> Option<Instant> {
        match self {
            DecoderStats::Video(s) => lock(s).first_where(ok),
            DecoderStats::Audio(_) => None,
        }
    }

    /// Audio: when the dominant tone first satisfied `ok` (within the last ~80 s).
    pub fn first_tone_where(&self, ok: impl Fn(f32) -> bool) -> Option<Instant> {
        match self {
            DecoderStats::Audio(s) => lock(s).history.iter().find(|(_, f)| f.is_some_and(&ok)).map(|(at, _)| *at),
            DecoderStats::Video(_) => None,
        }
    }
}

/// `appsrc → decoder → appsink` for one received track.
pub struct Decoder {
    _pipeline: OwnedPipeline,
    src: gst_app::AppSrc,
    stats: DecoderStats,
    pushed: u64,
}

/// `gst-launch` description of the VP8 video decoder.
pub fn video_decoder_description() -> &'static str {
    video_decoder_description_for(VideoCodec::Vp8)
}

/// `gst-launch` description of a video decoder: frames in, 32x24 RGBx pictures out.
/// H.264: Annex-B access units; `h264parse` drops slices until it has seen SPS and PPS (as a
/// browser's decoder cannot use them either); one decoding thread (no frame-threading delay).
pub fn video_decoder_description_for(codec: VideoCodec) -> &'static str {
    match codec {
        VideoCodec::Vp8 => {
            "appsrc name=src is-live=true format=time do-timestamp=true caps=video/x-vp8 \
             ! vp8dec ! videoscale ! video/x-raw,width=32,height=24 \
             ! videoconvert ! video/x-raw,format=RGBx \
             ! appsink name=sink sync=false max-buffers=2 drop=true"
        }
        VideoCodec::H264 => {
            "appsrc name=src is-live=true format=time do-timestamp=true \
               caps=video/x-h264,stream-format=byte-stream,alignment=au \
             ! h264parse ! avdec_h264 max-threads=1 ! videoscale ! video/x-raw,width=32,height=24 \
             ! videoconvert ! video/x-raw,format=RGBx \
             ! appsink name=sink sync=false max-buffers=2 drop=true"
        }
    }
}

pub fn audio_decoder_description() -> &'static str {
    "appsrc name=src is-live=true format=time do-timestamp=true \
       caps=audio/x-opus,channel-mapping-family=0,channels=2,rate=48000 \
     ! opusdec ! audioconvert ! audioresample \
     ! audio/x-raw,format=F32LE,channels=1,rate=48000 \
     ! appsink name=sink sync=false max-buffers=10 drop=true"
}

impl Decoder {
    pub fn new(kind: Kind) -> Result<Self> {
        match kind {
            Kind::Video => Self::video(),
            Kind::Audio => Self::audio(),
        }
    }

    /// A VP8 decoder.
    pub fn video() -> Result<Self> {
        Self::video_for(VideoCodec::Vp8)
    }

    pub fn video_for(codec: VideoCodec) -> Result<Self> {
        Self::video_into(codec, Arc::new(Mutex::new(VideoState::default())))
    }

    /// A decoder for `codec` that records into `stats` (made before the codec was known:
    /// a received track's codec shows with its first frame).
    pub fn video_into(codec: VideoCodec, stats: Arc<Mutex<VideoState>>) -> Result<Self> {
        let pipeline = launch(video_decoder_description_for(codec))?;
        let src: gst_app::AppSrc = by_name(&pipeline, "src")?;
        let sink: gst_app::AppSink = by_name(&pipeline, "sink")?;
        let shared = stats.clone();
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let now = Instant::now();
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let colour = sample_mean_colour(&sample);
                    lock(&shared).frame(now, colour);
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
        let owned = OwnedPipeline(pipeline);
        play(&owned.0)?;
        Ok(Decoder { _pipeline: owned, src, stats: DecoderStats::Video(stats), pushed: 0 })
    }

    pub fn audio() -> Result<Self> {
        let pipeline = launch(audio_decoder_description())?;
        let src: gst_app::AppSrc = by_name(&pipeline, "src")?;
        let sink: gst_app::AppSink = by_name(&pipeline, "sink")?;
        let stats = Arc::new(Mutex::new(AudioState::default()));
        let shared = stats.clone();
        let mut window: Vec<f32> = Vec::with_capacity(AUDIO_WINDOW * 2);
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let now = Instant::now();
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let Some(buffer) = sample.buffer() else {
                        return Ok(gst::FlowSuccess::Ok);
                    };
                    let Ok(map) = buffer.map_readable() else {
                        return Err(gst::FlowError::Error);
                    };
                    window.extend(map.as_slice().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])));
                    if window.len() > AUDIO_WINDOW {
                        window.drain(..window.len() - AUDIO_WINDOW);
                    }
                    let level = analysis::level_dbfs(&window);
                    let freq = analysis::dominant_frequency(&window, AUDIO_RATE, MIN_TONE_DBFS);
                    lock(&shared).buffer(now, level, freq);
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
        let owned = OwnedPipeline(pipeline);
        play(&owned.0)?;
        Ok(Decoder { _pipeline: owned, src, stats: DecoderStats::Audio(stats), pushed: 0 })
    }

    /// Hands one encoded frame to the decoder (never blocks).
    pub fn push(&mut self, frame: &[u8]) -> Result<()> {
        self.pushed += 1;
        self.src.push_buffer(gst::Buffer::from_slice(frame.to_vec())).map(|_| ()).map_err(|e| anyhow!("decoder refused a frame: {e:?}"))
    }

    pub fn frames_pushed(&self) -> u64 {
        self.pushed
    }

    pub fn stats(&self) -> DecoderStats {
        self.stats.clone()
    }
}

fn sample_mean_colour(sample: &gst::Sample) -> Option<Colour> {
    let caps = sample.caps()?;
    let info = gst_video::VideoInfo::from_caps(caps).ok()?;
    let buffer = sample.buffer()?;
    let map = buffer.map_readable().ok()?;
    let stride = usize::try_from(*info.stride().first()?).ok()?;
    analysis::mean_colour(map.as_slice(), info.width() as usize, info.height() as usize, stride, 4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
        let end = Instant::now() + timeout;
        loop {
            if let Some(v) = f() {
                return v;
            }
            assert!(Instant::now() < end, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Encoder → frames → decoder in one process: the colour survives VP8 and H.264.
    #[test]
    fn video_round_trip_keeps_the_colour() {
        for codec in VideoCodec::ALL {
            for colour in [Colour::RED, Colour::GREEN, Colour::BLUE, Colour::new(200, 120, 40)] {
                let (tx, rx) = mpsc::channel();
                let enc = Encoder::video_with(codec, colour, move |f| {
                    let _ = tx.send(f);
                })
                .unwrap();
                let mut dec = Decoder::video_for(codec).unwrap();
                let mut first = true;
                let got = wait_for("a decoded frame", Duration::from_secs(10), || {
                    while let Ok(f) = rx.try_recv() {
                        if first {
                            assert!(f.keyframe, "the first {codec} frame is a keyframe");
                            if codec == VideoCodec::H264 {
                                let nals = crate::synthetic::tracks::h264_nal_types(&f.data);
                                assert!(nals.contains(&7) && nals.contains(&8) && nals.contains(&5), "SPS, PPS and IDR: {nals:?}");
                            }
                            first = false;
                        }
                        dec.push(&f.data).unwrap();
                    }
                    let s = dec.stats().video()?;
                    (s.frames >= 3).then_some(s)
                });
                let mean = got.mean_colour.expect("a mean colour");
                assert!(mean.is_close_to(colour, 12), "{codec}: sent {colour}, decoded {mean}");
                assert!(got.first_frame_at.is_some());
                drop(enc);
            }
        }
    }

    /// An H.264 decoder that starts at an IDR whose SPS and PPS it never got shows nothing
    /// until a keyframe that carries them (what a receiver sees when an SFU forwards from the
    /// IDR's own packet and drops the parameter sets sent just before it).
    #[test]
    fn h264_idr_without_parameter_sets_does_not_decode() {
        use crate::synthetic::tracks::h264_nal_types;
        let (tx, rx) = mpsc::channel();
        let enc = Encoder::video_with(VideoCodec::H264, Colour::CYAN, move |f| {
            let _ = tx.send(f);
        })
        .unwrap();
        let mut dec = Decoder::video_for(VideoCodec::H264).unwrap();
        // Skip the first keyframe, then force one and strip SPS/PPS from it.
        for _ in 0..3 {
            rx.recv_timeout(Duration::from_secs(5)).expect("frames");
        }
        while rx.try_recv().is_ok() {}
        assert!(enc.keyframe_forcer().force());
        let key = loop {
            let f = rx.recv_timeout(Duration::from_secs(5)).expect("frames");
            if f.keyframe {
                break f;
            }
        };
        let stripped = strip_h264_nals(&key.data, &[7, 8]);
        assert_eq!(h264_nal_types(&stripped), vec![5], "only the IDR slice is left");
        dec.push(&stripped).unwrap();
        let mut pushed = 1;
        // The delta frames that follow: still no picture.
        while pushed < 8 {
            let f = rx.recv_timeout(Duration::from_secs(5)).expect("frames");
            assert!(!f.keyframe);
            dec.push(&f.data).unwrap();
            pushed += 1;
        }
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(dec.stats().video().unwrap().frames, 0, "no picture without SPS/PPS");
        // A complete keyframe (with its parameter sets) starts the picture.
        assert!(enc.keyframe_forcer().force());
        let got = wait_for("a decoded frame after a full keyframe", Duration::from_secs(10), || {
            while let Ok(f) = rx.try_recv() {
                dec.push(&f.data).unwrap();
            }
            let s = dec.stats().video()?;
            (s.frames >= 1).then_some(s)
        });
        assert!(got.mean_colour.is_some_and(|c| c.is_close_to(Colour::CYAN, 12)), "{got:?}");
    }

    /// The access unit without the NAL units of the given types.
    fn strip_h264_nals(au: &[u8], types: &[u8]) -> Vec<u8> {
        let mut out = vec![];
        for nal in crate::synthetic::tracks::h264_nal_units(au) {
            if !types.contains(&(nal[0] & 0x1f)) {
                out.extend_from_slice(&[0, 0, 0, 1]);
                out.extend_from_slice(nal);
            }
        }
        out
    }

    /// Opus at 440 Hz comes out at 440 Hz, 880 at 880.
    #[test]
    fn opus_round_trip_keeps_the_tone() {
        for tone in [440.0f32, 880.0] {
            let (tx, rx) = mpsc::channel();
            let _enc = Encoder::audio(tone, move |f| {
                let _ = tx.send(f);
            })
            .unwrap();
            let mut dec = Decoder::audio().unwrap();
            let got = wait_for("decoded audio", Duration::from_secs(10), || {
                while let Ok(f) = rx.try_recv() {
                    dec.push(&f.data).unwrap();
                }
                let s = dec.stats().audio()?;
                (s.buffers >= 15).then_some(s)
            });
            let f = got.frequency_hz.expect("a tone");
            assert!(analysis::tone_matches(f, tone, 5.0), "sent {tone} Hz, heard {f} Hz");
            let level = got.level_dbfs.expect("a level");
            assert!(level > -20.0 && level < 0.0, "level {level} dBFS");
        }
    }

    /// `set_colour`: the flip record names the first encoded frame in the new colour: it
    /// decodes to the new colour and the frame before it to the old one.
    #[test]
    fn colour_flip_names_the_first_frame_in_the_new_colour() {
        for codec in VideoCodec::ALL {
            colour_flip_in(codec);
        }
    }

    fn colour_flip_in(codec: VideoCodec) {
        let (tx, rx) = mpsc::channel();
        let enc = Encoder::video_with(codec, Colour::RED, move |f| {
            let _ = tx.send(f);
        })
        .unwrap();
        let mut dec = Decoder::video_for(codec).unwrap();
        let mut decode = |f: &EncodedFrame| {
            let before = dec.stats().video().unwrap().frames;
            dec.push(&f.data).unwrap();
            wait_for("the frame decoded", Duration::from_secs(5), || {
                let s = dec.stats().video().unwrap();
                (s.frames > before).then_some(s.mean_colour)
            })
            .unwrap_or_else(|| panic!("frame {:?} decoded without a readable colour", f.pts))
        };
        for _ in 0..5 {
            let f = rx.recv_timeout(Duration::from_secs(5)).unwrap();
            assert!(decode(&f).is_close_to(Colour::RED, 12));
        }
        let id = enc.set_colour(Colour::GREEN).unwrap();
        let mut last_red = None;
        let flip = loop {
            let f = rx.recv_timeout(Duration::from_secs(5)).expect("frames");
            let colour = decode(&f);
            if let Some(flip) = enc.flip(id) {
                assert_eq!(flip.pts, f.pts, "the flip is recorded as its frame leaves the encoder");
                assert!(colour.is_close_to(Colour::GREEN, 12), "the flip frame decodes as {colour}");
                assert!(flip.keyframe, "a flip forces a keyframe");
                break flip;
            }
            assert!(colour.is_close_to(Colour::RED, 12), "a frame before the flip decodes as {colour}");
            last_red = Some(f.pts);
        };
        assert!(last_red.is_some_and(|p| p < flip.pts));
        assert!(flip.sent_at >= flip.requested_at && flip.sent_at - flip.requested_at < Duration::from_millis(500));
        assert_eq!(flip.colour, Colour::GREEN);
        assert_eq!(enc.flips().len(), 1);
    }

    /// A keyframe request makes the encoder emit a keyframe at once (it sends none by itself).
    #[test]
    fn force_keyframe_reaches_the_encoder() {
        for codec in VideoCodec::ALL {
            force_keyframe_in(codec);
        }
    }

    fn force_keyframe_in(codec: VideoCodec) {
        let (tx, rx) = mpsc::channel();
        let enc = Encoder::video_with(codec, Colour::BLUE, move |f| {
            let _ = tx.send(f);
        })
        .unwrap();
        // Let the first keyframe and a few delta frames pass.
        let mut seen = 0;
        while seen < 5 {
            rx.recv_timeout(Duration::from_secs(5)).expect("frames");
            seen += 1;
        }
        // Frames encoded before the request (queued here while we counted) do not count
        // towards the limit below.
        while rx.try_recv().is_ok() {}
        assert!(enc.keyframe_forcer().force());
        let mut after = 0;
        loop {
            let f = rx.recv_timeout(Duration::from_secs(5)).expect("frames");
            after += 1;
            if f.keyframe {
                if codec == VideoCodec::H264 {
                    let nals = crate::synthetic::tracks::h264_nal_types(&f.data);
                    assert!(nals.starts_with(&[7, 8]) && nals.contains(&5), "a forced IDR repeats SPS and PPS: {nals:?}");
                }
                break;
            }
            assert!(after < 10, "no {codec} keyframe within 10 frames of the request");
        }
    }
}
