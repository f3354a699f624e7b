//! The output chain: the video mixer (a tiny live background drives its clock), x264, the
//! audio mixer (live silence keeps audio running), AAC, the CMAF muxer and the sink that cuts
//! its output into init/part items.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Instant;

use anyhow::{anyhow, Context, Result};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use super::probes::{running_time_ns, stage_probe, timing_probe};
use super::{input_latency_ns, make, time_queue, Counters, Pipeline, Settings, Stage};
use crate::catchup;
use crate::cmaf::{Assembler, Flags};
use crate::output::Item;
use crate::segments::SegmentKeyframes;
use crate::timing::FrameTiming;

/// Extra aggregator latency of the muxer.
const MUX_LATENCY_MS: u64 = 200;
/// Most composed video waiting for the encoder (six frames at 30 fps).
const ENCODER_QUEUE_NS: u64 = 200_000_000;

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
        // Short: a frame waiting here is a picture the audience sees that much later. When x264
        // cannot keep up (a starved host), a full queue holds the mixer back, which then skips
        // the frames it is late for (`catchup`) instead of feeding an encoder a second behind:
        // with 1 s here a late joiner's first frames waited up to 1 s before being encoded.
        let vqueue = time_queue("venc-queue", ENCODER_QUEUE_NS)?;
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
}
