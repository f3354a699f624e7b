//! What the output chain has reached: the running time of the newest buffer at each stage,
//! and the frame timing (compositor → encoder → part), noted by pad probes on streaming
//! threads and read by the controller's log lines.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{anyhow, Result};
use gstreamer as gst;
use gstreamer::prelude::*;

use super::Pipeline;
use crate::timing::FrameTiming;

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
pub(super) fn stage_probe(element: &gst::Element, pad: &str, counters: &Arc<Counters>, stage: Stage) -> Result<()> {
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
pub(super) fn running_time_ns(pad: &gst::Pad, buf: &gst::BufferRef) -> Option<u64> {
    let ev = pad.sticky_event::<gst::event::Segment>(0)?;
    let seg = ev.segment().downcast_ref::<gst::ClockTime>()?;
    seg.to_running_time(buf.pts()?).map(|t| t.nseconds())
}

/// Tells the frame timing (`timing.rs`) when each buffer passes `element`'s `pad`, by its
/// running time.
pub(super) fn timing_probe(
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

impl Pipeline {
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
}
