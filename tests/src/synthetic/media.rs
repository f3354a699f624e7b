//! GStreamer at the edges: encoders that make what a camera and a microphone would send, and
//! decoders that turn received frames back into pictures and sound to measure.
//!
//! Publish: `videotestsrc` (one solid colour) → VP8, `audiotestsrc` (one sine) → Opus, each
//! into an appsink whose callback hands every encoded frame on.
//! Receive: per remote track `appsrc → decoder → appsink`; the appsink callback records
//! counts, timing, the mean colour of the latest frame and the dominant tone and level.

use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

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
    INIT.get_or_init(|| gst::init().map_err(|e| e.to_string()))
        .clone()
        .map_err(|e| anyhow!("gstreamer init failed: {e}"))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn launch(description: &str) -> Result<gst::Pipeline> {
    init()?;
    let element = gst::parse::launch(description)
        .with_context(|| format!("gst-launch syntax: {description}"))?;
    let pipeline = element
        .downcast::<gst::Pipeline>()
        .map_err(|_| anyhow!("not a pipeline: {description}"))?;
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
    pipeline
        .set_state(gst::State::Playing)
        .map(|_| ())
        .map_err(|e| anyhow!("pipeline would not start: {e}"))
}

/// A pipeline that is stopped (set to NULL) when dropped.
struct OwnedPipeline(gst::Pipeline);

impl Drop for OwnedPipeline {
    fn drop(&mut self) {
        let _ = self.0.set_state(gst::State::Null);
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
}

/// `gst-launch` description of the video publisher.
pub fn video_encoder_description(colour: Colour) -> String {
    format!(
        "videotestsrc pattern=solid-color foreground-color={:#010x} is-live=true \
         ! video/x-raw,format=I420,width=320,height=240,framerate=15/1 \
         ! vp8enc deadline=1 cpu-used=8 keyframe-max-dist=60 lag-in-frames=0 \
           end-usage=cbr target-bitrate=300000 error-resilient=default \
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
    /// Solid `colour`, 320x240 at 15 fps, VP8.
    pub fn video(colour: Colour, on_frame: impl FnMut(EncodedFrame) + Send + 'static) -> Result<Self> {
        Self::start(&video_encoder_description(colour), Kind::Video, on_frame)
    }

    /// A sine at `tone_hz`, mono 48 kHz, Opus in 20 ms frames.
    pub fn audio(tone_hz: f32, on_frame: impl FnMut(EncodedFrame) + Send + 'static) -> Result<Self> {
        Self::start(&audio_encoder_description(tone_hz), Kind::Audio, on_frame)
    }

    fn start(
        description: &str,
        kind: Kind,
        mut on_frame: impl FnMut(EncodedFrame) + Send + 'static,
    ) -> Result<Self> {
        let pipeline = launch(description)?;
        let sink: gst_app::AppSink = by_name(&pipeline, "sink")?;
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
                    on_frame(EncodedFrame {
                        kind,
                        data: map.as_slice().to_vec(),
                        pts: buffer.pts().map(|t| Duration::from_nanos(t.nseconds())).unwrap_or_default(),
                        keyframe: !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT),
                    });
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
        let owned = OwnedPipeline(pipeline);
        play(&owned.0)?;
        Ok(Encoder { _pipeline: owned, sink, kind })
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    pub fn keyframe_forcer(&self) -> KeyframeForcer {
        KeyframeForcer { sink: self.sink.clone() }
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

/// Live statistics of one decoder, shared with whoever wants to look.
#[derive(Debug, Clone)]
pub enum DecoderStats {
    Video(Arc<Mutex<VideoStats>>),
    Audio(Arc<Mutex<AudioStats>>),
}

impl DecoderStats {
    pub fn video(&self) -> Option<VideoStats> {
        match self {
            DecoderStats::Video(s) => Some(lock(s).clone()),
            DecoderStats::Audio(_) => None,
        }
    }
    pub fn audio(&self) -> Option<AudioStats> {
        match self {
            DecoderStats::Audio(s) => Some(lock(s).clone()),
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

pub fn video_decoder_description() -> &'static str {
    "appsrc name=src is-live=true format=time do-timestamp=true caps=video/x-vp8 \
     ! vp8dec ! videoscale ! video/x-raw,width=32,height=24 \
     ! videoconvert ! video/x-raw,format=RGBx \
     ! appsink name=sink sync=false max-buffers=2 drop=true"
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

    pub fn video() -> Result<Self> {
        let pipeline = launch(video_decoder_description())?;
        let src: gst_app::AppSrc = by_name(&pipeline, "src")?;
        let sink: gst_app::AppSink = by_name(&pipeline, "sink")?;
        let stats = Arc::new(Mutex::new(VideoStats::default()));
        let shared = stats.clone();
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let now = Instant::now();
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let colour = sample_mean_colour(&sample);
                    let mut s = lock(&shared);
                    s.frames += 1;
                    s.first_frame_at.get_or_insert(now);
                    s.last_frame_at = Some(now);
                    if colour.is_some() {
                        s.mean_colour = colour;
                    }
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
        let stats = Arc::new(Mutex::new(AudioStats::default()));
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
                    window.extend(
                        map.as_slice()
                            .chunks_exact(4)
                            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
                    );
                    if window.len() > AUDIO_WINDOW {
                        window.drain(..window.len() - AUDIO_WINDOW);
                    }
                    let level = analysis::level_dbfs(&window);
                    let freq = analysis::dominant_frequency(&window, AUDIO_RATE, MIN_TONE_DBFS);
                    let mut s = lock(&shared);
                    s.buffers += 1;
                    s.first_audio_at.get_or_insert(now);
                    s.last_audio_at = Some(now);
                    s.level_dbfs = Some(level);
                    s.frequency_hz = freq;
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
        self.src
            .push_buffer(gst::Buffer::from_slice(frame.to_vec()))
            .map(|_| ())
            .map_err(|e| anyhow!("decoder refused a frame: {e:?}"))
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

    /// Encoder → frames → decoder in one process: the colour survives VP8.
    #[test]
    fn vp8_round_trip_keeps_the_colour() {
        for colour in [Colour::RED, Colour::GREEN, Colour::BLUE, Colour::new(200, 120, 40)] {
            let (tx, rx) = mpsc::channel();
            let enc = Encoder::video(colour, move |f| {
                let _ = tx.send(f);
            })
            .unwrap();
            let mut dec = Decoder::video().unwrap();
            let mut first = true;
            let got = wait_for("a decoded frame", Duration::from_secs(10), || {
                while let Ok(f) = rx.try_recv() {
                    if first {
                        assert!(f.keyframe, "the first VP8 frame is a keyframe");
                        first = false;
                    }
                    dec.push(&f.data).unwrap();
                }
                let s = dec.stats().video()?;
                (s.frames >= 3).then_some(s)
            });
            let mean = got.mean_colour.expect("a mean colour");
            assert!(mean.is_close_to(colour, 12), "sent {colour}, decoded {mean}");
            assert!(got.first_frame_at.is_some());
            drop(enc);
        }
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

    /// A keyframe request makes the encoder emit a keyframe long before its 60-frame GOP ends.
    #[test]
    fn force_keyframe_reaches_the_encoder() {
        let (tx, rx) = mpsc::channel();
        let enc = Encoder::video(Colour::BLUE, move |f| {
            let _ = tx.send(f);
        })
        .unwrap();
        // Let the first keyframe and a few delta frames pass.
        let mut seen = 0;
        while seen < 5 {
            rx.recv_timeout(Duration::from_secs(5)).expect("frames");
            seen += 1;
        }
        assert!(enc.keyframe_forcer().force());
        let mut after = 0;
        loop {
            let f = rx.recv_timeout(Duration::from_secs(5)).expect("frames");
            after += 1;
            if f.keyframe {
                break;
            }
            assert!(after < 10, "no keyframe within 10 frames of the request");
        }
    }
}
