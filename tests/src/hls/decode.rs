//! Decodes the served fMP4 (init + parts, pushed as they arrive) with GStreamer and reports,
//! for every video frame, the mean colour of one patch of the picture and the part that
//! carried the frame (so a benchmark knows when that frame became available).
//!
//! `appsrc (bytes) → qtdemux → h264parse → avdec_h264 (1 thread: no frame delay) →
//!  videocrop (the patch) → videoconvert → RGBx → appsink`

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{anyhow, Context, Result};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;

use super::fmp4;
use super::playlist::PartId;
use crate::synthetic::analysis::{self, Colour};
use crate::synthetic::media;

/// A rectangle of the output picture, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Patch {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

/// One decoded frame.
#[derive(Debug, Clone)]
pub struct FrameEvent {
    /// The part whose bytes carried the frame.
    pub part: PartId,
    /// When that part's bytes had all arrived.
    pub part_received_at: Instant,
    pub decoded_at: Instant,
    /// Presentation time as demuxed.
    pub pts_ns: Option<u64>,
    /// Mean colour of the patch.
    pub colour: Option<Colour>,
}

struct PartTiming {
    part: PartId,
    received_at: Instant,
    /// Start of the part's video in ns of the track timeline (`tfdt`).
    start_ns: Option<u64>,
}

#[derive(Default)]
struct Attribution {
    parts: VecDeque<PartTiming>,
    /// Frame PTS minus `tfdt` time, learnt from the first frame (edit lists shift the PTS).
    offset_ns: Option<i128>,
}

impl Attribution {
    /// The part a frame with this PTS came in: the last one that starts at or before it.
    fn part_for(&mut self, pts_ns: Option<u64>) -> Option<(PartId, Instant)> {
        let first = self.parts.front()?;
        let (Some(pts), Some(_)) = (pts_ns, first.start_ns) else {
            return Some((first.part, first.received_at));
        };
        let offset = *self.offset_ns.get_or_insert_with(|| i128::from(pts) - i128::from(first.start_ns.unwrap_or(0)));
        let t = i128::from(pts) - offset + 1_000_000; // 1 ms slack for rounding
        let found = self.parts.iter().rev().find(|p| p.start_ns.is_some_and(|s| i128::from(s) <= t));
        found.map(|p| (p.part, p.received_at))
    }
}

type OnFrame = Arc<Mutex<Box<dyn FnMut(FrameEvent) + Send>>>;

/// One GStreamer pipeline (one timeline).
struct Running {
    pipeline: gst::Pipeline,
    src: gst_app::AppSrc,
    attribution: Arc<Mutex<Attribution>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// A decoder for one stream. A new init segment starts a new pipeline; so does a jump in
/// the parts' timestamps (a compositor restart behind a discontinuity).
pub struct TileDecoder {
    frame_size: (u32, u32),
    patch: Patch,
    on_frame: OnFrame,
    running: Option<Running>,
    init: Vec<u8>,
    video: Option<fmp4::TrackMeta>,
    last_start_ns: Option<u64>,
    /// Pipelines started (1 + restarts at timestamp jumps and new inits).
    pub pipelines: u64,
}

/// A part whose video starts more than this after the previous part's start is a jump.
const MAX_FORWARD_NS: u64 = 5_000_000_000;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl TileDecoder {
    /// `frame_size`: the stream's picture size (for the crop); `patch`: what to average.
    /// Nothing runs until [`TileDecoder::push_init`].
    pub fn new(frame_size: (u32, u32), patch: Patch, on_frame: impl FnMut(FrameEvent) + Send + 'static) -> Result<Self> {
        media::init()?;
        Ok(TileDecoder {
            frame_size,
            patch,
            on_frame: Arc::new(Mutex::new(Box::new(on_frame))),
            running: None,
            init: vec![],
            video: None,
            last_start_ns: None,
            pipelines: 0,
        })
    }

    fn start(&self) -> Result<Running> {
        let (frame_size, patch) = (self.frame_size, self.patch);
        let (w, h) = frame_size;
        let even = |v: u32| v & !1;
        let (left, top) = (even(patch.x), even(patch.y));
        let right = even(w.saturating_sub(patch.x + patch.width));
        let bottom = even(h.saturating_sub(patch.y + patch.height));
        let description = format!(
            "appsrc name=src is-live=true format=bytes caps=video/quicktime \
             ! qtdemux name=demux \
             demux.video_0 ! queue max-size-buffers=0 max-size-bytes=0 max-size-time=0 \
               ! h264parse ! avdec_h264 max-threads=1 \
               ! videocrop left={left} right={right} top={top} bottom={bottom} \
               ! videoconvert ! video/x-raw,format=RGBx \
               ! appsink name=sink sync=false emit-signals=false \
             demux.audio_0 ! fakesink sync=false async=false"
        );
        let pipeline = gst::parse::launch(&description)
            .with_context(|| format!("gst-launch syntax: {description}"))?
            .downcast::<gst::Pipeline>()
            .map_err(|_| anyhow!("not a pipeline"))?;
        if let Some(bus) = pipeline.bus() {
            bus.set_sync_handler(|_, msg| {
                if let gst::MessageView::Error(e) = msg.view() {
                    tracing::warn!(error = %e.error(), debug = ?e.debug(), "HLS decoder error");
                }
                gst::BusSyncReply::Drop
            });
        }
        let src = pipeline.by_name("src").context("appsrc")?.downcast::<gst_app::AppSrc>().map_err(|_| anyhow!("src is not an appsrc"))?;
        let sink =
            pipeline.by_name("sink").context("appsink")?.downcast::<gst_app::AppSink>().map_err(|_| anyhow!("sink is not an appsink"))?;
        let attribution = Arc::new(Mutex::new(Attribution::default()));
        let attr = attribution.clone();
        let on_frame = self.on_frame.clone();
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let decoded_at = Instant::now();
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let pts_ns = sample.buffer().and_then(|b| b.pts()).map(|t| t.nseconds());
                    let colour = (|| {
                        let info = gst_video::VideoInfo::from_caps(sample.caps()?).ok()?;
                        let map = sample.buffer()?.map_readable().ok()?;
                        let stride = usize::try_from(*info.stride().first()?).ok()?;
                        analysis::mean_colour(map.as_slice(), info.width() as usize, info.height() as usize, stride, 4)
                    })();
                    let found = lock(&attr).part_for(pts_ns);
                    if let Some((part, part_received_at)) = found {
                        (lock(&on_frame))(FrameEvent { part, part_received_at, decoded_at, pts_ns, colour });
                    }
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
        pipeline.set_state(gst::State::Playing).map_err(|e| anyhow!("decoder would not start: {e}"))?;
        Ok(Running { pipeline, src, attribution })
    }

    /// A new init segment (or the same one again at a discontinuity): a fresh pipeline.
    pub fn push_init(&mut self, init: &[u8]) -> Result<()> {
        self.video = fmp4::video_track(init);
        if self.video.is_none() {
            tracing::warn!("the init segment has no video track");
        }
        self.init = init.to_vec();
        self.restart()
    }

    fn restart(&mut self) -> Result<()> {
        self.running = None;
        self.last_start_ns = None;
        let running = self.start()?;
        push(&running.src, &self.init)?;
        self.running = Some(running);
        self.pipelines += 1;
        Ok(())
    }

    /// A part, as it arrived at `received_at`.
    pub fn push_part(&mut self, part: PartId, received_at: Instant, data: &[u8]) -> Result<()> {
        let start_ns = self.video.as_ref().and_then(|v| {
            let info = fmp4::fragment_info(data, v.id);
            let t = info.first_decode_time?;
            Some((u128::from(t) * 1_000_000_000 / u128::from(v.timescale.max(1))) as u64)
        });
        let jumped = match (self.last_start_ns, start_ns) {
            (Some(prev), Some(now)) => now < prev || now - prev > MAX_FORWARD_NS,
            _ => false,
        };
        if jumped && !self.init.is_empty() {
            tracing::info!(%part, "timestamps jumped: restarting the decoder");
            self.restart()?;
        }
        self.last_start_ns = start_ns.or(self.last_start_ns);
        let Some(running) = &self.running else { return Ok(()) };
        {
            let mut a = lock(&running.attribution);
            a.parts.push_back(PartTiming { part, received_at, start_ns });
            while a.parts.len() > 64 {
                a.parts.pop_front();
            }
        }
        push(&running.src, data)
    }
}

fn push(src: &gst_app::AppSrc, data: &[u8]) -> Result<()> {
    src.push_buffer(gst::Buffer::from_slice(data.to_vec())).map(|_| ()).map_err(|e| anyhow!("decoder refused data: {e:?}"))
}
