//! The GStreamer edge: builds the live pipeline and carries out `room::Effect`s on it.
//!
//! ```text
//! videotestsrc (live, alpha 0: drives the clock) ─┐
//! empty slots / placeholders (live solid + name) ─┤
//! per video track: udpsrc → rtpjitterbuffer →     ├─ compositor → x264enc ─┐
//!   depay → avdec (pad scales, keeps aspect)    ──┘                        ├─ cmafmux → appsink
//! audiotestsrc silence (live) ─┬─ audiomixer → avenc_aac ──────────────────┘
//! per audio track: udpsrc → rtpjitterbuffer → rtpopusdepay → opusdec ──┘
//! ```
//! Inputs are bins added and removed while PLAYING; the output never restarts.
//!
//! Lip sync: a track's RTCP sender reports go to its jitter buffer, whose `handle-sync`
//! signal gives the SR's running time; `lipsync` turns those into a delay per track, applied
//! as the jitter buffer's `ts-offset` (a later timestamp: the mixer holds the track back), as
//! rtpbin does. A queue after the jitter buffer is the room a delayed track waits in, up to
//! `MAX_DELAY_NS`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Instant;

use anyhow::{anyhow, Context, Result};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use crate::catchup;
use crate::cmaf::{Assembler, Flags};
use crate::drops::{rtp_ts_marker, DepayFrames};
use crate::layout::Rect;
use crate::lipsync::{ntp_to_ns, parse_sender_report, sr_running_time, Mapping, MAX_DELAY_NS};
use crate::output::Item;
use crate::room::{Scene, ZORDER_BACKGROUND, ZORDER_EMPTY_SLOT, ZORDER_PLACEHOLDER};
use crate::segments::SegmentKeyframes;
use crate::timing::FrameTiming;
use compositor_protocol::command::{Codec, Kind, TrackSpec};

/// Output and tuning settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub part_ms: u64,
    pub segment_ms: u64,
    pub preset: String,
    pub bitrate_kbps: u32,
    pub x264_threads: u32,
    pub jitter_ms: u32,
    pub stall_ms: u64,
    pub repeat_ms: u64,
}

/// Colours (ARGB) of the tiles.
const PLACEHOLDER_ARGB: u32 = 0xff2b_2f3a;
const EMPTY_SLOT_ARGB: u32 = 0xff1a_1c22;
/// Resolution placeholders are drawn at (the compositor pad scales them to the tile).
const PLACEHOLDER_W: i32 = 480;
const PLACEHOLDER_H: i32 = 270;

/// Extra aggregator latency of the muxer.
const MUX_LATENCY_MS: u64 = 200;

/// Receives each track's SR mappings (track id, mapping), on a streaming thread.
pub type SyncSink = Arc<dyn Fn(&str, Mapping) + Send + Sync>;

/// No SSRC seen yet (the RTP SSRC a track's SRs must match, see `add_track`).
const NO_SSRC: u64 = u64::MAX;

/// Counters shared with streaming threads.
#[derive(Debug, Default)]
pub struct Counters {
    pub frames_out: AtomicU64,
    /// Times the mixer was told it is behind the clock (it then skips late frames).
    pub mixer_catchups: AtomicU64,
    pub parts_out: AtomicU64,
    pub bytes_out: AtomicU64,
    pub stray_buffers: AtomicU64,
    /// Frames out of the video inputs' decoders (all video tracks).
    pub video_frames_in: AtomicU64,
    /// Compositor → encoder → part timing (encode times, part ages).
    pub timing: Mutex<FrameTiming>,
    /// The running time (ns) of the newest buffer at each stage of the output, to say where
    /// it stands when no part comes (see `Pipeline::output_path`).
    pub reached: [AtomicU64; Stage::COUNT],
}

/// The stages of the output chain whose progress is followed (`Counters::reached`). The
/// mixer's own probe notes `Composed`; `stage_probe` the others.
#[derive(Debug, Clone, Copy)]
pub enum Stage {
    Composed,
    Encoded,
    /// The newest keyframe out of the encoder (every segment starts with one).
    Keyframe,
    AudioMixed,
    AudioEncoded,
    MuxVideoIn,
    MuxAudioIn,
}

impl Stage {
    const ALL: [Stage; 7] =
        [Stage::Composed, Stage::Encoded, Stage::Keyframe, Stage::AudioMixed, Stage::AudioEncoded, Stage::MuxVideoIn, Stage::MuxAudioIn];
    pub const COUNT: usize = Stage::ALL.len();

    fn label(self) -> &'static str {
        match self {
            Stage::Composed => "composed",
            Stage::Encoded => "encoded",
            Stage::Keyframe => "keyframe",
            Stage::AudioMixed => "audio mixed",
            Stage::AudioEncoded => "AAC",
            Stage::MuxVideoIn => "muxer got video",
            Stage::MuxAudioIn => "muxer got audio",
        }
    }
}

/// Notes the running time of every buffer leaving `element`'s `pad` as `stage` reached.
fn stage_probe(element: &gst::Element, pad: &str, counters: &Arc<Counters>, stage: Stage) -> Result<()> {
    let c = counters.clone();
    element.static_pad(pad).ok_or_else(|| anyhow!("{} has no {pad} pad", element.name()))?.add_probe(
        gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST,
        move |pad, info| {
            let buf = match &info.data {
                Some(gst::PadProbeData::Buffer(b)) => Some(b.as_ref()),
                Some(gst::PadProbeData::BufferList(l)) => l.get(l.len().saturating_sub(1)),
                _ => None,
            };
            if let Some((rt, b)) = buf.and_then(|b| Some((running_time_ns(pad, b)?, b))) {
                c.reached[stage as usize].fetch_max(rt, Ordering::Relaxed);
                if matches!(stage, Stage::Encoded) && !b.flags().contains(gst::BufferFlags::DELTA_UNIT) {
                    c.reached[Stage::Keyframe as usize].fetch_max(rt, Ordering::Relaxed);
                }
            }
            gst::PadProbeReturn::Ok
        },
    );
    Ok(())
}

/// The running time of `buf`, from the segment last seen on `pad` (where it is being pushed).
/// Running time is the one timeline every element agrees on, whatever offset each puts on its
/// PTS (see `timing`).
fn running_time_ns(pad: &gst::Pad, buf: &gst::BufferRef) -> Option<u64> {
    let ev = pad.sticky_event::<gst::event::Segment>(0)?;
    let seg = ev.segment().downcast_ref::<gst::ClockTime>()?;
    seg.to_running_time(buf.pts()?).map(|t| t.nseconds())
}

/// Tells the frame timing (`timing.rs`) when each buffer passes `element`'s `pad`, by its
/// running time.
fn timing_probe(
    element: &gst::Element,
    pad: &str,
    counters: &Arc<Counters>,
    note: impl Fn(&mut FrameTiming, u64, Instant) + Send + Sync + 'static,
) -> Result<()> {
    let c = counters.clone();
    element.static_pad(pad).ok_or_else(|| anyhow!("{} has no {pad} pad", element.name()))?.add_probe(
        gst::PadProbeType::BUFFER,
        move |pad, info| {
            let now = Instant::now();
            if let Some(rt) = info.buffer().and_then(|b| running_time_ns(pad, b)) {
                note(&mut c.timing.lock().unwrap(), rt, now);
            }
            gst::PadProbeReturn::Ok
        },
    );
    Ok(())
}

/// One input bin and the mixer pad it feeds.
struct Input {
    bin: gst::Bin,
    mixer: gst::Element,
    mixer_pad: gst::Pad,
    /// RTP packets received (for input_resumed and stats), for tracks only.
    packets: Arc<AtomicU64>,
    /// The jitter buffer of a video track (its `stats` count lost packets).
    video_jitterbuffer: Option<gst::Element>,
    /// The jitter buffer of a track (lip sync sets its `ts-offset`).
    jitterbuffer: Option<gst::Element>,
    /// Frames a video track's depayloader discarded.
    depay: Option<Arc<Mutex<DepayFrames>>>,
    /// A video track's decoded frames and the keyframe requests its depayloader or decoder
    /// sent upstream (see `keyframes`).
    video: Option<VideoCounters>,
}

#[derive(Clone, Default)]
struct VideoCounters {
    frames: Arc<AtomicU64>,
    keyframe_asks: Arc<AtomicU64>,
}

/// Packets a jitter buffer gave up on (`num-lost`: never arrived in time). Not `num-late`:
/// a packet given up on that turns up later is counted there again.
fn jitterbuffer_lost(jb: &gst::Element) -> u64 {
    jb.property::<gst::Structure>("stats").get::<u64>("num-lost").unwrap_or(0)
}

/// The SR mapping in a jitter buffer's `handle-sync` structure: the SR's NTP time and the
/// running time the jitter buffer gives its RTP timestamp (see `lipsync::sr_running_time`).
/// None when the jitter buffer has no timing yet, or the SR is not of the RTP stream's SSRC.
fn sr_mapping(s: &gst::StructureRef, rtp_ssrc: &AtomicU64) -> Option<Mapping> {
    let buf = s.get::<gst::Buffer>("sr-buffer").ok()?;
    let map = buf.map_readable().ok()?;
    let sr = parse_sender_report(map.as_slice())?;
    if rtp_ssrc.load(Ordering::Relaxed) != sr.ssrc as u64 {
        tracing::debug!(ssrc = sr.ssrc, "SR of another SSRC: ignored");
        return None;
    }
    let running_ns = sr_running_time(
        s.get::<u64>("base-rtptime").ok()?,
        s.get::<u64>("base-time").ok()?,
        s.get::<u32>("clock-rate").ok()?,
        s.get::<u64>("sr-ext-rtptime").ok()?,
    )?;
    Some(Mapping { ntp_ns: ntp_to_ns(sr.ntp), running_ns })
}

/// Where an element belongs, found from a bus message's source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    Track(String),
    Placeholder(String),
    Output,
    /// Not (or no longer) in the pipeline: not fatal.
    Unknown,
}

pub struct Pipeline {
    settings: Settings,
    pipeline: gst::Pipeline,
    vmix: gst::Element,
    amix: gst::Element,
    placeholders: HashMap<String, Input>,
    empties: Vec<Input>,
    tracks: HashMap<String, Input>,
    /// bin name → owner, for bus messages (kept after removal: names are never reused, and
    /// late messages from a removed bin must not look like output errors).
    owners: HashMap<String, Owner>,
    next_id: u64,
    pub counters: Arc<Counters>,
    /// Packets lost (see `jitterbuffer_lost`) by video tracks already removed.
    retired_packets_lost: u64,
    /// Frames discarded by the depayloaders of video tracks already removed.
    retired_depay_drops: u64,
    /// Where tracks' SR mappings go (lip sync); None: SRs are not used for sync.
    sync_sink: Option<SyncSink>,
}

fn make(factory: &str, name: Option<&str>) -> Result<gst::Element> {
    let mut b = gst::ElementFactory::make(factory);
    if let Some(name) = name {
        b = b.name(name);
    }
    b.build().with_context(|| format!("creating element {factory} (is its plugin installed?)"))
}

/// The elements an input is made of (see `add_track`): made once and dropped, so their
/// plugins are loaded and their classes initialised before the first input needs them (a
/// standby's preparation; on a loaded host the first input otherwise pays for it).
pub fn preload_input_elements() {
    const INPUT_ELEMENTS: [&str; 11] = [
        "udpsrc",
        "rtpjitterbuffer",
        "rtpvp8depay",
        "rtph264depay",
        "h264parse",
        "avdec_vp8",
        "avdec_h264",
        "rtpopusdepay",
        "opusdec",
        "audioconvert",
        "audioresample",
    ];
    for factory in INPUT_ELEMENTS {
        if let Err(e) = gst::ElementFactory::make(factory).build() {
            tracing::debug!(factory, "not preloaded: {e}");
        }
    }
}

/// A queue (a thread boundary) bounded by time only: `max_ns` of buffers.
fn time_queue(name: &str, max_ns: u64) -> Result<gst::Element> {
    Ok(gst::ElementFactory::make("queue")
        .name(name)
        .property("max-size-buffers", 0u32)
        .property("max-size-bytes", 0u32)
        .property("max-size-time", max_ns)
        .build()?)
}

/// Latency the mixers plan for from the start, so RTP inputs (jitterbuffer + decoder) that
/// join later do not raise the pipeline latency (which would hiccup the output).
fn input_latency_ns(s: &Settings) -> u64 {
    (s.jitter_ms as u64 + 50) * 1_000_000
}

/// Bilinear scaling without dithering for tiles: the default (cubic, generic C path) is the
/// most expensive part of compositing; bilinear runs on ORC and looks the same at tile sizes.
fn scaler_config() -> gst::Structure {
    use gstreamer_video::{VideoDitherMethod, VideoResamplerMethod};
    gst::Structure::builder("GstVideoConverter")
        .field("GstVideoConverter.resampler-method", VideoResamplerMethod::Linear)
        .field("GstVideoConverter.chroma-resampler-method", VideoResamplerMethod::Linear)
        .field("GstVideoConverter.dither-method", VideoDitherMethod::None)
        .build()
}

/// Escape a display name for textoverlay, which renders Pango markup.
pub fn markup_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

impl Pipeline {
    /// Build the pipeline (not yet playing). `items` receives init/part items from cmafmux.
    pub fn new(settings: Settings, items: mpsc::SyncSender<Item>) -> Result<Pipeline> {
        gst::init()?;
        gstfmp4::plugin_register_static().context("registering cmafmux")?;
        let s = &settings;
        let pipeline = gst::Pipeline::with_name("roomcast");

        // ---- video: background (drives the output), compositor, encoder
        let vmix = gst::ElementFactory::make("compositor")
            .name("vmix")
            .property_from_str("background", "black")
            .property("min-upstream-latency", input_latency_ns(s))
            .build()
            .context("creating compositor")?;
        let vcaps = gst::Caps::builder("video/x-raw")
            .field("format", "I420")
            .field("width", s.width as i32)
            .field("height", s.height as i32)
            .field("framerate", gst::Fraction::new(s.fps as i32, 1))
            .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
            .build();
        let vcapsf = gst::ElementFactory::make("capsfilter").property("caps", &vcaps).build()?;
        let vqueue = time_queue("venc-queue", 1_000_000_000u64)?;
        let segment_frames = ((s.segment_ms * s.fps as u64) / 1000).max(1) as u32;
        let x264 = gst::ElementFactory::make("x264enc")
            .name("x264")
            .property_from_str("speed-preset", &s.preset)
            .property_from_str("tune", "zerolatency")
            .property("bitrate", s.bitrate_kbps)
            // Keyframes come at each segment's first frame by running time (`segments`);
            // the encoder's own count is only a backstop.
            .property("key-int-max", segment_frames * 2)
            .property("threads", s.x264_threads)
            // no scene-cut keyframes: every segment starts on a keyframe, nothing else does
            .property("option-string", "scenecut=0")
            .build()
            .context("creating x264enc")?;
        let hcaps = gst::ElementFactory::make("capsfilter")
            .property("caps", gst::Caps::builder("video/x-h264").field("profile", "high").build())
            .build()?;
        let vmuxq = time_queue("vmux-queue", 2_000_000_000u64)?;

        // ---- audio: silence (keeps audio running), mixer, AAC
        let amix = gst::ElementFactory::make("audiomixer")
            .name("amix")
            .property("min-upstream-latency", input_latency_ns(s))
            .build()
            .context("creating audiomixer")?;
        let acaps = gst::Caps::builder("audio/x-raw")
            .field("format", "F32LE")
            .field("layout", "interleaved")
            .field("rate", 48_000i32)
            .field("channels", 2i32)
            .build();
        let acapsf = gst::ElementFactory::make("capsfilter").property("caps", &acaps).build()?;
        let aconv = make("audioconvert", None)?;
        // The fast coder: two thirds of the default (twoloop) one's CPU (1.1 s against 1.8 s
        // for 60 s of stereo), and audio is what a starved compositor cannot skip.
        let aac = match gst::ElementFactory::make("avenc_aac")
            .name("aac")
            .property("bitrate", 128_000i32)
            .property_from_str("aac-coder", "fast")
            .build()
        {
            Ok(e) => e,
            Err(_) => gst::ElementFactory::make("voaacenc")
                .name("aac")
                .property("bitrate", 128_000i32)
                .build()
                .context("creating an AAC encoder (avenc_aac or voaacenc)")?,
        };
        // The AAC encoder in a thread of its own: audio cannot skip like video (see `catchup`),
        // and on a starved host one thread mixing and encoding got too little CPU (runnable but
        // waiting 45–100 % of the time, audio 2–6 s behind the clock, which held every part back).
        let aencq = time_queue("aenc-queue", 1_000_000_000u64)?;
        let amuxq = time_queue("amux-queue", 2_000_000_000u64)?;

        // ---- mux + sink
        let mux = gst::ElementFactory::make("isofmp4mux")
            .name("mux")
            // Half a frame short of the segment: fmp4mux 0.14.5 only closes a fragment when the
            // next GOP starts strictly after the fragment end, so a keyframe landing exactly on
            // the boundary would double every fragment. Keyframes still come every segment.
            .property("fragment-duration", gst::ClockTime::from_nseconds(s.segment_ms * 1_000_000 - 500_000_000 / s.fps as u64))
            .property("chunk-duration", gst::ClockTime::from_mseconds(s.part_ms))
            // Slack for the audio path (mixer + AAC framing) so a live timeout never drains a
            // chunk before every stream has caught up (that breaks fragment boundaries).
            .property("latency", gst::ClockTime::from_mseconds(MUX_LATENCY_MS))
            .build()
            .context("creating isofmp4mux")?;
        let counters = Arc::new(Counters::default());
        let appsink = gst_app::AppSink::builder()
            .name("out")
            .sync(false)
            // live all the way: PLAYING at once, no preroll wait for the first chunk
            .async_(false)
            .buffer_list(true)
            .build();
        let assembler = Mutex::new(Assembler::new());
        let c = counters.clone();
        appsink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let mut asm = assembler.lock().unwrap();
                    let mut out = Vec::new();
                    let mut feed = |buf: &gst::BufferRef| {
                        let f = buf.flags();
                        let flags = Flags {
                            discont: f.contains(gst::BufferFlags::DISCONT),
                            header: f.contains(gst::BufferFlags::HEADER),
                            delta_unit: f.contains(gst::BufferFlags::DELTA_UNIT),
                            marker: f.contains(gst::BufferFlags::MARKER),
                        };
                        if let Ok(map) = buf.map_readable() {
                            if let Some(item) =
                                asm.push(flags, buf.pts().map(|t| t.nseconds()), buf.duration().map(|t| t.nseconds()), map.as_slice())
                            {
                                out.push(item);
                            }
                        }
                    };
                    if let Some(list) = sample.buffer_list() {
                        for buf in list.iter() {
                            feed(buf);
                        }
                    } else if let Some(buf) = sample.buffer() {
                        feed(buf);
                    }
                    c.stray_buffers.store(asm.stray, Ordering::Relaxed);
                    drop(asm);
                    // The muxer's PTSs are running time + 1000 h (its output segment starts
                    // there): back to running time, the timeline the frames were noted on.
                    let segment = sample.segment().and_then(|s| s.downcast_ref::<gst::ClockTime>().cloned());
                    for mut item in out {
                        if let Item::Part(p) = &mut item {
                            c.parts_out.fetch_add(1, Ordering::Relaxed);
                            c.bytes_out.fetch_add(p.data.len() as u64, Ordering::Relaxed);
                            let start = segment.as_ref().and_then(|s| s.to_running_time(gst::ClockTime::from_nseconds(p.pts_ns)));
                            if let Some(start) = start.map(|t| t.nseconds()) {
                                let end = start + p.duration_ns;
                                p.age_us =
                                    c.timing.lock().unwrap().part_written(start, end, Instant::now()).map(|age| age.as_micros() as u64);
                            }
                        }
                        if items.send(item).is_err() {
                            return Err(gst::FlowError::Eos);
                        }
                    }
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );

        pipeline.add_many([&vmix, &vcapsf, &vqueue, &x264, &hcaps, &vmuxq, &amix, &acapsf, &aconv, &aencq, &aac, &amuxq, &mux])?;
        pipeline.add(appsink.upcast_ref::<gst::Element>())?;
        gst::Element::link_many([&vmix, &vcapsf, &vqueue, &x264, &hcaps, &vmuxq])?;
        gst::Element::link_many([&amix, &acapsf, &aconv, &aencq, &aac, &amuxq])?;
        vmuxq.link(&mux)?;
        amuxq.link(&mux)?;
        mux.link(&appsink)?;

        // Frame timing (see `timing`): out of the compositor, into and out of x264. With
        // tune=zerolatency x264 encodes in its sink pad's chain call: one frame out per frame
        // in, in order.
        // Also where the mixer learns it is behind the clock (see `catchup`).
        let c = counters.clone();
        // The latency the mixer reports (and waits for): its min-upstream-latency plus one
        // output frame.
        let mixer_latency = input_latency_ns(s) + 1_000_000_000 / s.fps.max(1) as u64;
        vmix.static_pad("src").ok_or_else(|| anyhow!("compositor has no src pad"))?.add_probe(
            gst::PadProbeType::BUFFER,
            move |pad, info| {
                let now = Instant::now();
                let first = c.frames_out.fetch_add(1, Ordering::Relaxed) == 0;
                if let Some(rt) = info.buffer().and_then(|b| running_time_ns(pad, b)) {
                    let now_rt = pad.parent_element().and_then(|e| e.current_running_time()).map(|n| n.nseconds());
                    c.reached[Stage::Composed as usize].fetch_max(rt, Ordering::Relaxed);
                    {
                        let mut timing = c.timing.lock().unwrap();
                        timing.composed(rt, now);
                        if first {
                            timing.first_composed_late(now_rt.map_or(0, |n| n.saturating_sub(rt)));
                        }
                    }
                    if let Some(late) = now_rt.and_then(|n| catchup::lateness(rt, n, mixer_latency)) {
                        c.mixer_catchups.fetch_add(1, Ordering::Relaxed);
                        let qos = gst::event::Qos::new(gst::QOSType::Underflow, 1.0, late as i64, gst::ClockTime::from_nseconds(rt));
                        pad.send_event(qos);
                    }
                }
                gst::PadProbeReturn::Ok
            },
        );
        // Every segment starts with a keyframe, however few frames the mixer made (`segments`).
        let keyframes = Mutex::new(SegmentKeyframes::new(s.segment_ms * 1_000_000));
        let encoder_sink = x264.static_pad("sink").ok_or_else(|| anyhow!("x264enc has no sink pad"))?;
        vqueue.static_pad("src").ok_or_else(|| anyhow!("queue has no src pad"))?.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
            if let Some(boundary) = info.buffer().and_then(|b| running_time_ns(pad, b)).and_then(|rt| keyframes.lock().unwrap().frame(rt)) {
                let ev = gstreamer_video::DownstreamForceKeyUnitEvent::builder()
                    .running_time(gst::ClockTime::from_nseconds(boundary))
                    .all_headers(true)
                    .build();
                encoder_sink.send_event(ev);
            }
            gst::PadProbeReturn::Ok
        });
        stage_probe(&x264, "src", &counters, Stage::Encoded)?;
        stage_probe(&amix, "src", &counters, Stage::AudioMixed)?;
        stage_probe(&aac, "src", &counters, Stage::AudioEncoded)?;
        stage_probe(&vmuxq, "src", &counters, Stage::MuxVideoIn)?;
        stage_probe(&amuxq, "src", &counters, Stage::MuxAudioIn)?;
        timing_probe(&x264, "sink", &counters, FrameTiming::encode_started)?;
        timing_probe(&x264, "src", &counters, |t, rt, now| {
            t.encoded(rt, now);
        })?;

        let mut p = Pipeline {
            settings,
            pipeline,
            vmix,
            amix,
            placeholders: HashMap::new(),
            empties: Vec::new(),
            tracks: HashMap::new(),
            owners: HashMap::new(),
            next_id: 0,
            counters,
            retired_packets_lost: 0,
            retired_depay_drops: 0,
            sync_sink: None,
        };
        p.add_background()?;
        p.add_silence()?;
        Ok(p)
    }

    /// Where the SR mappings of tracks added from now on go (see `lipsync`).
    pub fn set_sync_sink(&mut self, sink: SyncSink) {
        self.sync_sink = Some(sink);
    }

    /// Delay a track's media by `delay_ns` (lip sync): its jitter buffer's `ts-offset`, as
    /// rtpbin does. (A pad offset after the jitter buffer was tried and had no effect on the
    /// mixers.) Known cost: a delayed track also waits that much longer for a lost packet.
    pub fn set_track_delay(&self, track_id: &str, delay_ns: u64) {
        if let Some(jb) = self.tracks.get(track_id).and_then(|i| i.jitterbuffer.as_ref()) {
            jb.set_property("ts-offset", delay_ns.min(MAX_DELAY_NS) as i64);
        }
    }

    pub fn bus(&self) -> gst::Bus {
        self.pipeline.bus().expect("a pipeline has a bus")
    }

    pub fn pipeline(&self) -> &gst::Pipeline {
        &self.pipeline
    }

    /// Everything a state change can do before the clock runs (`standby`): elements open
    /// and their threads start, so PLAYING at the start is quick.
    pub fn pause(&self) -> Result<()> {
        self.pipeline.set_state(gst::State::Paused).context("setting the pipeline to PAUSED")?;
        Ok(())
    }

    pub fn play(&self) -> Result<()> {
        self.pipeline.set_state(gst::State::Playing).context("setting the pipeline to PLAYING")?;
        Ok(())
    }

    /// Drop every RTP input, then ask the remaining (test) sources to end; the bus gets EOS
    /// once the muxer drained its last chunk. (EOS sent into live RTP branches does not
    /// reliably reach the mixers, so they go first.)
    pub fn send_eos(&mut self) {
        let ids: Vec<String> = self.tracks.keys().cloned().collect();
        for id in ids {
            self.remove_track(&id);
        }
        self.pipeline.send_event(gst::event::Eos::new());
    }

    pub fn stop(&self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }

    /// When the output's first frame was composed, encoded and sent in a part.
    pub fn first_frame(&self) -> crate::timing::FirstFrame {
        self.counters.timing.lock().unwrap().first_frame()
    }

    pub fn recalculate_latency(&self) {
        let _ = self.pipeline.recalculate_latency();
    }

    fn fresh_name(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}-{}", self.next_id)
    }

    fn video_src_caps(&self, width: i32, height: i32) -> gst::Caps {
        gst::Caps::builder("video/x-raw")
            .field("format", "I420")
            .field("width", width)
            .field("height", height)
            .field("framerate", gst::Fraction::new(self.settings.fps as i32, 1))
            .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
            .build()
    }

    /// A live solid-colour source at the output frame rate, optionally with a centred label.
    fn solid_bin(&mut self, name: &str, argb: u32, w: i32, h: i32, label: Option<&str>) -> Result<gst::Bin> {
        let bin = gst::Bin::with_name(name);
        let src = gst::ElementFactory::make("videotestsrc")
            .property("is-live", true)
            .property_from_str("pattern", "solid-color")
            .property("foreground-color", argb)
            .build()?;
        let caps = gst::ElementFactory::make("capsfilter").property("caps", self.video_src_caps(w, h)).build()?;
        bin.add_many([&src, &caps])?;
        src.link(&caps)?;
        let mut last = caps;
        if let Some(label) = label {
            let text = gst::ElementFactory::make("textoverlay")
                .property("text", markup_escape(label))
                .property_from_str("valignment", "center")
                .property_from_str("halignment", "center")
                .property("font-desc", "Sans Bold 26")
                .property("shaded-background", false)
                .build()
                .context("creating textoverlay (package gstreamer1.0-x)")?;
            bin.add(&text)?;
            last.link(&text)?;
            last = text;
        }
        let pad = last.static_pad("src").unwrap();
        bin.add_pad(&gst::GhostPad::with_target(&pad)?)?;
        Ok(bin)
    }

    /// Add `bin` to the pipeline, link it to a new pad of `mixer`, start it.
    fn attach(&self, bin: &gst::Bin, mixer: &gst::Element, props: &[(&str, glib_value::Value)]) -> Result<gst::Pad> {
        // READY on its own first: sockets are bound here, so a port that is taken fails
        // before the bin touches the running pipeline (a child failing a state change inside
        // the pipeline can wedge the pipeline's own state).
        if bin.set_state(gst::State::Ready).is_err() {
            let _ = bin.set_state(gst::State::Null);
            return Err(anyhow!("cannot open {} (port in use?)", bin.name()));
        }
        self.pipeline.add(bin)?;
        let pad = mixer.request_pad_simple("sink_%u").ok_or_else(|| anyhow!("no request pad on {}", mixer.name()))?;
        for (k, v) in props {
            pad.set_property_from_value(k, v);
        }
        let linked = bin
            .static_pad("src")
            .ok_or_else(|| anyhow!("bin without src pad"))
            .and_then(|src| src.link(&pad).map_err(|e| anyhow!("linking {}: {e:?}", bin.name())));
        if let Err(e) = linked {
            mixer.release_request_pad(&pad);
            let _ = self.pipeline.remove(bin);
            return Err(e);
        }
        if let Err(e) = bin.sync_state_with_parent() {
            let _ = bin.set_state(gst::State::Null);
            mixer.release_request_pad(&pad);
            let _ = self.pipeline.remove(bin);
            return Err(anyhow!("starting {}: {e}", bin.name()));
        }
        Ok(pad)
    }

    /// Stop an input, unlink it and give its mixer pad back.
    fn detach(&self, input: Input) {
        // NULL first: its streaming threads stop (the mixer consumes what they were pushing
        // within a frame), so no buffer races the pad release and nothing posts not-linked.
        let _ = input.bin.set_state(gst::State::Null);
        if let Some(src) = input.bin.static_pad("src") {
            let _ = src.unlink(&input.mixer_pad);
        }
        input.mixer.release_request_pad(&input.mixer_pad);
        let _ = self.pipeline.remove(&input.bin);
    }

    fn add_background(&mut self) -> Result<()> {
        // Transparent, tiny: it only guarantees the compositor always has a live input.
        let bin = self.solid_bin("background", 0xff00_0000, 16, 16, None)?;
        let pad = self.attach(&bin, &self.vmix.clone(), &[("zorder", ZORDER_BACKGROUND.to_value()), ("alpha", 0.0f64.to_value())])?;
        let _ = pad;
        Ok(())
    }

    fn add_silence(&mut self) -> Result<()> {
        let bin = gst::Bin::with_name("silence");
        let src = gst::ElementFactory::make("audiotestsrc")
            .property("is-live", true)
            .property_from_str("wave", "silence")
            .property("samplesperbuffer", 960i32)
            .build()?;
        let caps = gst::ElementFactory::make("capsfilter")
            .property(
                "caps",
                gst::Caps::builder("audio/x-raw")
                    .field("format", "F32LE")
                    .field("layout", "interleaved")
                    .field("rate", 48_000i32)
                    .field("channels", 2i32)
                    .build(),
            )
            .build()?;
        bin.add_many([&src, &caps])?;
        src.link(&caps)?;
        bin.add_pad(&gst::GhostPad::with_target(&caps.static_pad("src").unwrap())?)?;
        self.attach(&bin, &self.amix.clone(), &[])?;
        Ok(())
    }

    pub fn add_placeholder(&mut self, participant_id: &str, name: &str) -> Result<()> {
        let bin_name = self.fresh_name("ph");
        let bin = self.solid_bin(&bin_name, PLACEHOLDER_ARGB, PLACEHOLDER_W, PLACEHOLDER_H, Some(name))?;
        self.owners.insert(bin_name, Owner::Placeholder(participant_id.to_string()));
        let pad = self.attach(&bin, &self.vmix.clone(), &[("zorder", ZORDER_PLACEHOLDER.to_value()), ("alpha", 0.0f64.to_value())])?;
        self.placeholders.insert(
            participant_id.to_string(),
            Input {
                bin,
                mixer: self.vmix.clone(),
                mixer_pad: pad,
                packets: Arc::default(),
                video_jitterbuffer: None,
                jitterbuffer: None,
                depay: None,
                video: None,
            },
        );
        Ok(())
    }

    pub fn remove_placeholder(&mut self, participant_id: &str) {
        if let Some(input) = self.placeholders.remove(participant_id) {
            self.detach(input);
        }
    }

    fn rtp_caps(spec: &TrackSpec) -> gst::Caps {
        gst::Caps::builder("application/x-rtp")
            .field("media", spec.kind.as_str())
            .field("encoding-name", spec.codec.encoding_name())
            .field("clock-rate", spec.clock_rate as i32)
            .field("payload", spec.payload_type as i32)
            .build()
    }

    pub fn add_track(&mut self, spec: &TrackSpec) -> Result<()> {
        let bin_name = self.fresh_name("in");
        let s = &self.settings;
        let bin = gst::Bin::with_name(&bin_name);
        let udpsrc = gst::ElementFactory::make("udpsrc")
            .name(format!("{bin_name}-rtp"))
            .property("address", "127.0.0.1")
            .property("port", spec.rtp_port as i32)
            .property("caps", Self::rtp_caps(spec))
            .property("timeout", s.stall_ms * 1_000_000)
            .property("buffer-size", 1i32 << 20)
            .build()?;
        // Not `drop-on-latency`: when the compositor falls behind (a starved host), packets
        // pile up here, and dropping them breaks the decoder's chain of references: the
        // depayloader then discards every frame until a keyframe, which a browser sends only
        // when asked (see `keyframes`). A late frame is better dropped after decoding, by the
        // mixer. Lip sync delay changes (`ts-offset`) are spread out, at most 2 ms per buffer,
        // so a new SR never makes a track jump.
        let jb = gst::ElementFactory::make("rtpjitterbuffer")
            .name(format!("{bin_name}-jitterbuffer"))
            .property("latency", s.jitter_ms)
            .property("do-lost", true)
            .property("max-ts-offset-adjustment", 2_000_000u64)
            .build()?;
        // Holds what the mixer pad is not ready for while lip sync delays this track.
        let syncq = time_queue(&format!("{bin_name}-syncqueue"), MAX_DELAY_NS + 1_000_000_000)?;
        bin.add_many([&udpsrc, &jb, &syncq])?;
        udpsrc.link(&jb)?;
        jb.link(&syncq)?;
        // The SSRC of the RTP packets, to match the SRs against.
        let ssrc = Arc::new(AtomicU64::new(NO_SSRC));
        if let Some(rtcp_port) = spec.rtcp_port {
            // Sender reports go to the jitterbuffer (clock skew / NTP mapping); also keeps
            // the port bound so the gateway's RTCP has somewhere to land.
            let rtcp = gst::ElementFactory::make("udpsrc")
                .name(format!("{bin_name}-rtcp"))
                .property("address", "127.0.0.1")
                .property("port", rtcp_port as i32)
                .property("caps", gst::Caps::new_empty_simple("application/x-rtcp"))
                .build()?;
            bin.add(&rtcp)?;
            let sink = jb.request_pad_simple("sink_rtcp").ok_or_else(|| anyhow!("rtpjitterbuffer has no sink_rtcp"))?;
            rtcp.static_pad("src").unwrap().link(&sink)?;
            if let Some(sync_sink) = self.sync_sink.clone() {
                let track_id = spec.track_id.clone();
                let ssrc = ssrc.clone();
                jb.connect("handle-sync", false, move |args| {
                    let s = args.get(1).and_then(|v| v.get::<gst::Structure>().ok());
                    if let Some(mapping) = s.and_then(|s| sr_mapping(&s, &ssrc)) {
                        sync_sink(&track_id, mapping);
                    }
                    None
                });
            }
        }
        let chain: Vec<gst::Element> = match spec.codec {
            // After a loss the depayloader waits for a keyframe and asks upstream for one
            // (`request-keyframe`), as the decoder does for a frame it cannot decode; those
            // requests are counted below and passed on to the gateway (`keyframes`).
            // `qos=false`: the mixer picks the frame for each output time itself, and its
            // catch-up QoS events (see `catchup`) reach every input; a decoder that obeyed
            // them dropped every frame stamped before the mixer's late output time, which on
            // a starved host was seconds of one participant's video (a placeholder tile
            // until a keyframe request was answered).
            Codec::Vp8 => vec![
                gst::ElementFactory::make("rtpvp8depay").property("wait-for-keyframe", true).property("request-keyframe", true).build()?,
                gst::ElementFactory::make("avdec_vp8")
                    .property("qos", false)
                    .property("max-threads", 1i32)
                    .property("output-corrupt", false)
                    .property("automatic-request-sync-points", true)
                    .build()
                    .or_else(|_| gst::ElementFactory::make("vp8dec").property("qos", false).build())?,
            ],
            Codec::H264 => vec![
                gst::ElementFactory::make("rtph264depay").property("wait-for-keyframe", true).property("request-keyframe", true).build()?,
                make("h264parse", None)?,
                gst::ElementFactory::make("avdec_h264")
                    .property("qos", false)
                    .property("max-threads", 1i32)
                    .property("output-corrupt", false)
                    .property("automatic-request-sync-points", true)
                    .build()?,
            ],
            Codec::Opus => vec![
                make("rtpopusdepay", None)?,
                gst::ElementFactory::make("opusdec").property("plc", true).build()?,
                make("audioconvert", None)?,
                make("audioresample", None)?,
            ],
        };
        for (i, e) in chain.iter().enumerate() {
            e.set_property("name", format!("{bin_name}-{i}{}", e.factory().map(|f| f.name().to_string()).unwrap_or_default()));
        }
        bin.add_many(&chain)?;
        let mut prev = syncq.clone();
        for e in &chain {
            prev.link(e)?;
            prev = e.clone();
        }
        bin.add_pad(&gst::GhostPad::with_target(&prev.static_pad("src").unwrap())?)?;

        let packets = Arc::new(AtomicU64::new(0));
        let c = packets.clone();
        let ssrc_seen = ssrc.clone();
        udpsrc.static_pad("src").unwrap().add_probe(gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST, move |_, info| {
            c.fetch_add(1, Ordering::Relaxed);
            let buf = match &info.data {
                Some(gst::PadProbeData::Buffer(b)) => Some(b.as_ref()),
                Some(gst::PadProbeData::BufferList(l)) => l.get(0),
                _ => None,
            };
            let mut head = [0u8; 12];
            if let Some(buf) = buf {
                if buf.copy_to_slice(0, &mut head).is_ok() && head[0] >> 6 == 2 {
                    let s = u32::from_be_bytes([head[8], head[9], head[10], head[11]]);
                    ssrc_seen.store(s as u64, Ordering::Relaxed);
                }
            }
            gst::PadProbeReturn::Ok
        });

        let video = (spec.kind == Kind::Video).then(VideoCounters::default);
        if let Some(v) = &video {
            // Upstream keyframe requests reach the jitter buffer through the sync queue.
            let asks = v.keyframe_asks.clone();
            syncq.static_pad("src").unwrap().add_probe(gst::PadProbeType::EVENT_UPSTREAM, move |_, info| {
                if let Some(gst::PadProbeData::Event(e)) = &info.data {
                    if e.structure().is_some_and(|s| s.name() == "GstForceKeyUnit") {
                        asks.fetch_add(1, Ordering::Relaxed);
                    }
                }
                gst::PadProbeReturn::Ok
            });
        }
        let depay = (spec.kind == Kind::Video).then(|| {
            let c = self.counters.clone();
            let frames = video.as_ref().map(|v| v.frames.clone()).unwrap_or_default();
            prev.static_pad("src").unwrap().add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                c.video_frames_in.fetch_add(1, Ordering::Relaxed);
                frames.fetch_add(1, Ordering::Relaxed);
                gst::PadProbeReturn::Ok
            });
            // The depayloader (chain[0]): RTP packets in, frames out (see `drops`).
            let depay = Arc::new(Mutex::new(DepayFrames::new()));
            let d = depay.clone();
            chain[0].static_pad("sink").unwrap().add_probe(gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST, move |_, info| {
                let note = |buf: &gst::BufferRef| {
                    let mut head = [0u8; 12];
                    if buf.copy_to_slice(0, &mut head).is_ok() {
                        if let Some((ts, marker)) = rtp_ts_marker(&head) {
                            d.lock().unwrap().packet_in(ts, marker);
                        }
                    }
                };
                match &info.data {
                    Some(gst::PadProbeData::Buffer(b)) => note(b),
                    Some(gst::PadProbeData::BufferList(l)) => l.iter().for_each(note),
                    _ => {}
                }
                gst::PadProbeReturn::Ok
            });
            let d = depay.clone();
            chain[0].static_pad("src").unwrap().add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                d.lock().unwrap().frame_out();
                gst::PadProbeReturn::Ok
            });
            depay
        });

        let (mixer, props): (gst::Element, Vec<(&str, glib_value::Value)>) = match spec.kind {
            Kind::Video => (
                self.vmix.clone(),
                vec![("alpha", 0.0f64.to_value()), ("max-last-buffer-repeat", (self.settings.repeat_ms * 1_000_000).to_value())],
            ),
            Kind::Audio => (self.amix.clone(), vec![]),
        };
        // Known before it starts: a bin that fails to start still posts its error on the bus,
        // and that must be attributed to the track, not to the output.
        self.owners.insert(bin_name, Owner::Track(spec.track_id.clone()));
        let pad = self.attach(&bin, &mixer, &props)?;
        if spec.kind == Kind::Video {
            pad.set_property_from_str("sizing-policy", "keep-aspect-ratio");
            pad.set_property("converter-config", scaler_config());
        }
        self.tracks.insert(
            spec.track_id.clone(),
            Input {
                bin,
                mixer,
                mixer_pad: pad,
                packets,
                video_jitterbuffer: (spec.kind == Kind::Video).then(|| jb.clone()),
                jitterbuffer: Some(jb),
                depay,
                video,
            },
        );
        Ok(())
    }

    pub fn remove_track(&mut self, track_id: &str) {
        if let Some(input) = self.tracks.remove(track_id) {
            if let Some(jb) = &input.video_jitterbuffer {
                self.retired_packets_lost += jitterbuffer_lost(jb);
            }
            if let Some(d) = &input.depay {
                self.retired_depay_drops += d.lock().unwrap().dropped();
            }
            self.detach(input);
        }
    }

    /// Frames the video tracks' depayloaders discarded since the start (see `drops`),
    /// removed tracks included.
    pub fn depay_drops(&self) -> u64 {
        self.retired_depay_drops + self.tracks.values().filter_map(|i| i.depay.as_ref()).map(|d| d.lock().unwrap().dropped()).sum::<u64>()
    }

    /// RTP packets the video tracks' jitter buffers gave up on since the start (lost, or too
    /// late), removed tracks included.
    pub fn packets_lost(&self) -> u64 {
        self.retired_packets_lost + self.tracks.values().filter_map(|i| i.video_jitterbuffer.as_ref()).map(jitterbuffer_lost).sum::<u64>()
    }

    /// A video track's totals: RTP packets received, frames decoded, keyframe requests its
    /// depayloader or decoder sent upstream. `None` for audio and unknown tracks.
    pub fn video_counters(&self, track_id: &str) -> Option<(u64, u64, u64)> {
        let input = self.tracks.get(track_id)?;
        let v = input.video.as_ref()?;
        Some((input.packets.load(Ordering::Relaxed), v.frames.load(Ordering::Relaxed), v.keyframe_asks.load(Ordering::Relaxed)))
    }

    /// Where a video input's frames stop, for the log when it has no picture: each stage's
    /// count from the socket to the decoder, and the jitter buffer's lip sync offset.
    pub fn video_path(&self, track_id: &str) -> Option<String> {
        let input = self.tracks.get(track_id)?;
        let v = input.video.as_ref()?;
        let jb = input.jitterbuffer.as_ref()?;
        let st = jb.property::<gst::Structure>("stats");
        let n = |k: &str| st.get::<u64>(k).unwrap_or(0);
        let depay = input.depay.as_ref().map(|d| d.lock().unwrap().out()).unwrap_or(0);
        let (queued, queued_ms) = input
            .bin
            .by_name(&format!("{}-syncqueue", input.bin.name()))
            .map(|q| (q.property::<u32>("current-level-buffers"), q.property::<u64>("current-level-time") / 1_000_000))
            .unwrap_or_default();
        Some(format!(
            "packets {} → jitter buffer pushed {} (lost {}, late {}, ts-offset {} ms) → queued {} ({} ms) → depayloader frames {} → decoded {}",
            input.packets.load(Ordering::Relaxed),
            n("num-pushed"),
            n("num-lost"),
            n("num-late"),
            jb.property::<i64>("ts-offset") / 1_000_000,
            queued,
            queued_ms,
            depay,
            v.frames.load(Ordering::Relaxed),
        ))
    }

    /// Where the output chain stands: each stage's newest running time relative to the
    /// pipeline clock's, and the fill of the queues between them, e.g. "clock 12.300 s;
    /// composed −0.25 s, encoded −0.27 s, …; queues: encoder 3 frames (100 ms), …".
    pub fn output_path(&self) -> String {
        let now = self.pipeline.current_running_time().map(|t| t.nseconds());
        let stages: Vec<String> = Stage::ALL
            .iter()
            .map(|&st| match (self.counters.reached[st as usize].load(Ordering::Relaxed), now) {
                (0, _) => format!("{} nothing", st.label()),
                (rt, Some(now)) => format!("{} {:+.2} s", st.label(), (rt as f64 - now as f64) / 1e9),
                (rt, None) => format!("{} {:.2} s", st.label(), rt as f64 / 1e9),
            })
            .collect();
        let queues: Vec<String> =
            [("venc-queue", "encoder"), ("vmux-queue", "video mux"), ("aenc-queue", "AAC"), ("amux-queue", "audio mux")]
                .iter()
                .filter_map(|(name, label)| {
                    let q = self.pipeline.by_name(name)?;
                    Some(format!(
                        "{label} {} ({} ms)",
                        q.property::<u32>("current-level-buffers"),
                        q.property::<u64>("current-level-time") / 1_000_000
                    ))
                })
                .collect();
        // The latency each mixer works with (upstream latency as its src pad answers it).
        let latency = |e: &gst::Element| {
            let mut q = gst::query::Latency::new();
            e.query(&mut q).then_some(()).map_or("?".to_string(), |_| {
                let (live, min, _) = q.result();
                format!("{}{} ms", if live { "" } else { "not live, " }, min.mseconds())
            })
        };
        format!(
            "clock {:.2} s; {}; queues: {}; latency: pipeline {} ms, video mixer {}, audio mixer {}",
            now.unwrap_or(0) as f64 / 1e9,
            stages.join(", "),
            queues.join(", "),
            self.pipeline.latency().map_or(0, |l| l.mseconds()),
            latency(&self.vmix),
            latency(&self.amix),
        )
    }

    /// RTP packets received so far on a track.
    pub fn packets(&self, track_id: &str) -> Option<u64> {
        self.tracks.get(track_id).map(|i| i.packets.load(Ordering::Relaxed))
    }

    fn place(pad: &gst::Pad, rect: Rect, zorder: u32) {
        pad.set_property("xpos", rect.x);
        pad.set_property("ypos", rect.y);
        pad.set_property("width", rect.width);
        pad.set_property("height", rect.height);
        pad.set_property("zorder", zorder);
        pad.set_property("alpha", 1.0f64);
    }

    /// Move every tile to where `scene` says; grow the pool of empty-slot tiles as needed
    /// and hide (alpha 0) the ones not used.
    pub fn apply_scene(&mut self, scene: &Scene) -> Result<()> {
        while self.empties.len() < scene.empty_slots.len() {
            let name = self.fresh_name("empty");
            let bin = self.solid_bin(&name, EMPTY_SLOT_ARGB, 32, 18, None)?;
            let pad = self.attach(&bin, &self.vmix.clone(), &[("zorder", ZORDER_EMPTY_SLOT.to_value()), ("alpha", 0.0f64.to_value())])?;
            self.empties.push(Input {
                bin,
                mixer: self.vmix.clone(),
                mixer_pad: pad,
                packets: Arc::default(),
                video_jitterbuffer: None,
                jitterbuffer: None,
                depay: None,
                video: None,
            });
        }
        for (i, input) in self.empties.iter().enumerate() {
            match scene.empty_slots.get(i) {
                Some(rect) => Self::place(&input.mixer_pad, *rect, ZORDER_EMPTY_SLOT),
                None => input.mixer_pad.set_property("alpha", 0.0f64),
            }
        }
        for (pid, rect) in &scene.placeholders {
            if let Some(input) = self.placeholders.get(pid) {
                Self::place(&input.mixer_pad, *rect, ZORDER_PLACEHOLDER);
            }
        }
        for (tid, rect, zorder) in &scene.videos {
            if let Some(input) = self.tracks.get(tid) {
                Self::place(&input.mixer_pad, *rect, *zorder);
            }
        }
        // Video inputs the scene leaves out (a camera turned off) are hidden, not removed:
        // turning the camera back on shows them at once.
        for (tid, input) in &self.tracks {
            if input.mixer == self.vmix && !scene.videos.iter().any(|(v, _, _)| v == tid) {
                input.mixer_pad.set_property("alpha", 0.0f64);
            }
        }
        Ok(())
    }

    /// Which input (if any) an element belongs to. Elements of an input bin are named
    /// `<bin>-<role>`, so they stay attributable after the bin let go of them.
    pub fn owner_of(&self, obj: &gst::Object) -> Owner {
        let mut cur = Some(obj.clone());
        while let Some(o) = cur {
            let name = o.name();
            if let Some(owner) = self.owners.get(name.as_str()) {
                return owner.clone();
            }
            if let Some((bin, _role)) = name.rsplit_once('-') {
                if let Some(owner) = self.owners.get(bin) {
                    return owner.clone();
                }
            }
            // a direct child of the pipeline that is no input: the output chain
            if o.parent().as_ref() == Some(self.pipeline.upcast_ref::<gst::Object>()) {
                return Owner::Output;
            }
            cur = o.parent();
        }
        Owner::Unknown
    }
}

/// `glib::Value` re-exported under a name that reads well above.
mod glib_value {
    pub use gstreamer::glib::Value;
}
