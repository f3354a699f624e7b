//! One bin per RTP track (udpsrc → rtpjitterbuffer → sync queue → depayloader → decoder),
//! attached to its mixer while the pipeline plays, with the counters the controller reads
//! (packets, decoded frames, keyframe requests, losses) and the SR hook lip sync uses.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, Result};
use gstreamer as gst;
use gstreamer::prelude::*;

use super::{glib_value, make, time_queue, Input, Owner, Pipeline, VideoCounters};
use crate::drops::{rtp_ts_marker, DepayFrames};
use crate::lipsync::{ntp_to_ns, parse_sender_report, sr_running_time, Mapping, MAX_DELAY_NS};
use compositor_protocol::command::{Codec, Kind, TrackSpec};

/// Receives each track's SR mappings (track id, mapping), on a streaming thread.
pub type SyncSink = Arc<dyn Fn(&str, Mapping) + Send + Sync>;

/// No SSRC seen yet (the RTP SSRC a track's SRs must match, see `add_track`).
const NO_SSRC: u64 = u64::MAX;

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

/// Bilinear scaling without dithering for tiles: the default (cubic, generic C path) is the
/// most expensive part of compositing; bilinear runs on ORC and looks the same at tile sizes.
pub(super) fn scaler_config() -> gst::Structure {
    use gstreamer_video::{VideoDitherMethod, VideoResamplerMethod};
    gst::Structure::builder("GstVideoConverter")
        .field("GstVideoConverter.resampler-method", VideoResamplerMethod::Linear)
        .field("GstVideoConverter.chroma-resampler-method", VideoResamplerMethod::Linear)
        .field("GstVideoConverter.dither-method", VideoDitherMethod::None)
        .field("GstVideoConverter.resampler-taps", 2u32)
        .build()
}

impl Pipeline {
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

    /// RTP packets received so far on a track.
    pub fn packets(&self, track_id: &str) -> Option<u64> {
        self.tracks.get(track_id).map(|i| i.packets.load(Ordering::Relaxed))
    }
}
