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
//!
//! By concept: `output_chain` (mixers, encoders, muxer, the sink that hands out parts),
//! `inputs` (one bin per RTP track, its counters and lip-sync hooks), `tiles` (placeholders,
//! empty slots, where each tile goes), `probes` (what the output chain reached, for logs).

mod inputs;
mod output_chain;
mod probes;
mod tiles;

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, Context, Result};
use gstreamer as gst;
use gstreamer::prelude::*;

use crate::drops::DepayFrames;
use crate::errors::Owner;

pub use inputs::{preload_input_elements, SyncSink};
pub use probes::{Counters, Stage};
pub use tiles::markup_escape;

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

impl Input {
    /// A tile that is not a track (a placeholder, an empty slot): no counters, no jitter buffer.
    fn tile(bin: gst::Bin, mixer: gst::Element, mixer_pad: gst::Pad) -> Self {
        Input { bin, mixer, mixer_pad, packets: Arc::default(), video_jitterbuffer: None, jitterbuffer: None, depay: None, video: None }
    }
}

#[derive(Clone, Default)]
pub(super) struct VideoCounters {
    frames: Arc<AtomicU64>,
    keyframe_asks: Arc<AtomicU64>,
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

impl Pipeline {
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
