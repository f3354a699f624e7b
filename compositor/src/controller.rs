//! The process's event loop: control lines from stdin, bus messages, a stats tick; items out
//! to stdout through one writer thread (so frames never interleave).

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Result;
use gstreamer as gst;
use gstreamer::prelude::*;
use tracing::{debug, error, info, warn};

use crate::errors::{on_element_error, ErrorAction, Owner};
use crate::health::{InputHealth, Rebuild};
use crate::lipsync::{LipSync, Mapping, Update};
use crate::output::{write_item, Item};
use crate::pipeline::{Pipeline, Settings};
use crate::room::{Effect, Room};
use crate::standby::{wake, Wake};
use crate::timing::PartSilence;
use compositor_protocol::command::{self as control, Command, Kind, TrackSpec};
use compositor_protocol::{Event, Stats, Tile};

/// Longest control line accepted (bytes); longer ones are reported and skipped.
pub const MAX_LINE: usize = 64 * 1024;
/// How long a shutdown waits for cmafmux to drain before giving up.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

enum Msg {
    /// A control line and when the stdin thread read it.
    Line(Vec<u8>, Instant),
    StdinEof,
    Bus(gst::Message),
    Tick,
    OutputClosed,
    /// A track's RTCP sender report, mapped (see `lipsync`).
    Sync(String, Mapping),
}

struct Controller {
    room: Room,
    pipeline: Pipeline,
    items: mpsc::SyncSender<Item>,
    health: HashMap<String, InputHealth>,
    errors: u64,
    last_tick: Instant,
    last_frames: u64,
    last_frames_in: u64,
    /// Frames each video decoder dropped (its latest QoS message), by element path: the
    /// counts are per decoder, and decoders of removed or rebuilt inputs keep theirs.
    decoder_drops: HashMap<String, u64>,
    /// Per-participant A/V delays from the sender reports.
    lipsync: LipSync,
    /// Keyframe requests passed on to the gateway since the start.
    keyframe_requests: u64,
    shutting_down: Option<Instant>,
    /// The start-up's milestones; None once the first part's timeline has been logged.
    startup: Option<Startup>,
    part_silence: PartSilence,
    /// When the line being handled was read from stdin (an input's log line says how long
    /// it waited for this loop: a late tile's time is split between the processes).
    line_read_at: Instant,
}

/// When the run began, GStreamer was loaded, the pipeline was built and reached PLAYING.
/// A standby's run begins at its `start`, after GStreamer and the pipeline were ready.
#[derive(Clone, Copy)]
struct Startup {
    began: Instant,
    gst_ready: Instant,
    built: Instant,
    playing: Option<Instant>,
    /// How long the process waited in standby, ready, before its `start`.
    standby: Option<Duration>,
}

/// Run one broadcast until shutdown. Returns the process exit code. With `standby`, the
/// pipeline is built and made ready first, then the process waits for `start` (see `standby`).
pub fn run(settings: Settings, stats_interval: Duration, standby: bool) -> Result<i32> {
    let mut began = Instant::now();
    let (ctl_tx, ctl_rx) = mpsc::channel::<Msg>();
    let (item_tx, item_rx) = mpsc::sync_channel::<Item>(1024);

    // stdout writer
    let tx = ctl_tx.clone();
    let writer = thread::Builder::new().name("stdout".into()).spawn(move || {
        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::with_capacity(256 * 1024, stdout.lock());
        for item in item_rx {
            if let Err(e) = write_item(&mut out, &item).and_then(|_| out.flush()) {
                warn!("stdout closed: {e}");
                let _ = tx.send(Msg::OutputClosed);
                break;
            }
            // `stopped` is always the last item (the muxer may still hold a sender).
            if matches!(&item, Item::Event(Event::Stopped { .. })) {
                break;
            }
        }
    })?;

    // Timed apart from building the pipeline: on a loaded host loading GStreamer and its
    // plugins is a visible part of a broadcast's start.
    gst::init()?;
    let gst_ready = Instant::now();
    let mut pipeline = match Pipeline::new(settings.clone(), item_tx.clone()) {
        Ok(p) => p,
        Err(e) => {
            error!("cannot build the pipeline: {e:#}");
            let _ = item_tx.send(Item::Event(Event::Fatal { message: format!("{e:#}") }));
            drop(item_tx);
            let _ = writer.join();
            return Ok(1);
        }
    };

    let built = Instant::now();

    // A spare: ready ahead of need, it waits here for its room (or to be let go).
    let mut first_line = None;
    let mut waited = None;
    if standby {
        crate::pipeline::preload_input_elements();
        if let Err(e) = pipeline.pause() {
            error!("cannot pause the pipeline ahead of its start: {e:#}");
            let _ = item_tx.send(Item::Event(Event::Fatal { message: format!("{e:#}") }));
            drop(item_tx);
            let _ = writer.join();
            return Ok(1);
        }
        info!(ready_ms = built.duration_since(began).as_millis() as u64, "compositor ready in standby");
        match wait_in_standby() {
            Wake::Quit => {
                // Nothing was written; the writer thread (the pipeline holds a sender to it)
                // ends with the process.
                info!("standby ended without a start");
                pipeline.stop();
                return Ok(0);
            }
            Wake::Start { room } => info!(room, "starting from standby"),
            Wake::StartWith(line) => first_line = Some(line),
        }
        waited = Some(built.elapsed());
        began = Instant::now();
    }

    // SR mappings arrive on streaming threads; the lip sync state lives here.
    let tx = Mutex::new(ctl_tx.clone());
    pipeline.set_sync_sink(Arc::new(move |track_id: &str, mapping: Mapping| {
        let _ = tx.lock().unwrap().send(Msg::Sync(track_id.to_string(), mapping));
    }));

    let tx = ctl_tx.clone();
    pipeline.bus().set_sync_handler(move |_, msg| {
        let _ = tx.send(Msg::Bus(msg.clone()));
        gst::BusSyncReply::Drop
    });

    // stdin reader
    let tx = ctl_tx.clone();
    thread::Builder::new().name("stdin".into()).spawn(move || {
        let stdin = std::io::stdin();
        let mut input = stdin.lock();
        loop {
            let mut line = Vec::new();
            match input.read_until(b'\n', &mut line) {
                Ok(0) => break,
                Ok(_) => {
                    if tx.send(Msg::Line(line, Instant::now())).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    warn!("stdin: {e}");
                    break;
                }
            }
        }
        let _ = tx.send(Msg::StdinEof);
    })?;

    // stats tick
    let tx = ctl_tx.clone();
    thread::Builder::new().name("tick".into()).spawn(move || loop {
        // 250 ms: keyframe requests (`keyframes`) must not wait long.
        thread::sleep(stats_interval.min(Duration::from_millis(250)));
        if tx.send(Msg::Tick).is_err() {
            return;
        }
    })?;
    drop(ctl_tx);

    let mut c = Controller {
        room: Room::new(settings.width, settings.height),
        pipeline,
        items: item_tx,
        health: HashMap::new(),
        errors: 0,
        last_tick: Instant::now(),
        last_frames: 0,
        last_frames_in: 0,
        decoder_drops: HashMap::new(),
        lipsync: LipSync::new(),
        keyframe_requests: 0,
        shutting_down: None,
        startup: Some(Startup { began, gst_ready, built, playing: None, standby: waited }),
        part_silence: PartSilence::default(),
        line_read_at: Instant::now(),
    };
    if let Err(e) = c.pipeline.apply_scene(&c.room.scene()).and_then(|_| c.pipeline.play()) {
        error!("cannot start the pipeline: {e:#}");
        c.emit(Item::Event(Event::Fatal { message: format!("{e:#}") }));
        c.pipeline.stop();
        drop(c);
        let _ = writer.join();
        return Ok(1);
    }
    info!(width = settings.width, height = settings.height, fps = settings.fps, "compositor started");
    c.emit(Item::Event(Event::Started {
        width: settings.width,
        height: settings.height,
        fps: settings.fps,
        part_ms: settings.part_ms,
        segment_ms: settings.segment_ms,
        preset: settings.preset.clone(),
        pid: std::process::id(),
    }));

    if let Some(line) = first_line {
        c.on_line(&line);
    }

    let mut code = 0;
    let mut last_stats = Instant::now();
    loop {
        let msg = match ctl_rx.recv_timeout(Duration::from_millis(200)) {
            Ok(m) => Some(m),
            Err(mpsc::RecvTimeoutError::Timeout) => None,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        match msg {
            Some(Msg::Line(line, read_at)) => {
                c.line_read_at = read_at;
                c.on_line(&line);
            }
            Some(Msg::StdinEof) => {
                info!("stdin closed: shutting down");
                c.begin_shutdown();
            }
            Some(Msg::Bus(m)) => match c.on_bus(&m) {
                BusOutcome::Continue => {}
                BusOutcome::Eos => {
                    info!("end of stream");
                    break;
                }
                BusOutcome::Fatal => {
                    code = 1;
                    break;
                }
            },
            Some(Msg::Tick) => {
                c.check_first_part();
                c.check_part_silence();
                c.check_resumed();
                c.check_keyframes();
                if last_stats.elapsed() >= stats_interval {
                    last_stats = Instant::now();
                    c.stats();
                }
            }
            Some(Msg::Sync(track_id, mapping)) => {
                debug!(track_id, ntp_ms = mapping.ntp_ns / 1_000_000, running_ms = mapping.running_ns / 1_000_000, "sender report");
                let update = c.lipsync.observe(&track_id, mapping);
                c.apply_sync(&track_id, update);
            }
            Some(Msg::OutputClosed) => {
                code = if c.shutting_down.is_some() { 0 } else { 1 };
                break;
            }
            None => {}
        }
        if let Some(t) = c.shutting_down {
            if t.elapsed() > SHUTDOWN_GRACE {
                warn!("no EOS after {SHUTDOWN_GRACE:?}; stopping anyway");
                break;
            }
        }
    }
    c.pipeline.stop();
    c.emit(Item::Event(Event::Stopped { code }));
    drop(c);
    let _ = writer.join();
    Ok(code)
}

/// Reads stdin until a line wakes the standby (see `standby::wake`).
fn wait_in_standby() -> Wake {
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    loop {
        let mut line = Vec::new();
        let read = match input.read_until(b'\n', &mut line) {
            Ok(0) => None,
            Ok(_) => Some(line.as_slice()),
            Err(e) => {
                warn!("stdin: {e}");
                None
            }
        };
        if let Some(wake) = wake(read) {
            return wake;
        }
    }
}

enum BusOutcome {
    Continue,
    Eos,
    Fatal,
}

impl Controller {
    fn emit(&self, item: Item) {
        let _ = self.items.send(item);
    }

    fn report_error(&mut self, code: &str, message: String, about: About) {
        self.errors += 1;
        let (mut op, mut track_id, mut participant_id) = (None, None, None);
        match about {
            About::Nothing => {}
            About::Op(o) => op = o,
            About::Track(t) => track_id = Some(t),
            About::Participant(p) => participant_id = Some(p),
        }
        self.emit(Item::Event(Event::Error { code: code.to_owned(), message, op, track_id, participant_id }));
    }

    fn on_line(&mut self, raw: &[u8]) {
        if raw.len() > MAX_LINE {
            warn!(len = raw.len(), "control line too long");
            self.report_error("too_long", format!("line of {} bytes (max {MAX_LINE})", raw.len()), About::Nothing);
            return;
        }
        let line = String::from_utf8_lossy(raw);
        let line = line.trim();
        if line.is_empty() {
            return;
        }
        let op = control::op_of(line);
        let result = control::parse_line(line).and_then(|cmd| {
            let target = target_of(&cmd);
            self.room.apply(cmd.clone()).map(|effects| (cmd, target, effects))
        });
        match result {
            Ok((cmd, target, effects)) => {
                debug!(?cmd, "control");
                let ok = self.execute(effects);
                if ok {
                    self.emit(Item::Event(Event::Applied { op: cmd.op().to_owned(), id: target }));
                }
            }
            Err(e) => {
                warn!(op = op.as_deref(), "bad control line: {e}");
                self.report_error(e.code(), e.to_string(), About::Op(op));
            }
        }
    }

    /// Carry out effects; false if one failed (it has been reported and rolled back).
    fn execute(&mut self, effects: Vec<Effect>) -> bool {
        for effect in effects {
            match effect {
                Effect::AddPlaceholder { participant_id, name } => {
                    if let Err(e) = self.pipeline.add_placeholder(&participant_id, &name) {
                        // The participant still gets a tile position; log and carry on.
                        error!("placeholder for {participant_id}: {e:#}");
                        self.report_error("placeholder", format!("{e:#}"), About::Participant(participant_id.clone()));
                    }
                }
                Effect::RemovePlaceholder { participant_id } => self.pipeline.remove_placeholder(&participant_id),
                Effect::AddInput(spec) => {
                    let building = Instant::now();
                    if let Err(e) = self.pipeline.add_track(&spec) {
                        error!(track_id = spec.track_id, "cannot add input: {e:#}");
                        self.report_error("input_failed", format!("{e:#}"), About::Track(spec.track_id.clone()));
                        // roll the room back so it matches the pipeline
                        if let Ok(more) = self.room.apply(Command::RemoveTrack { track_id: spec.track_id.clone() }) {
                            self.execute(more);
                        }
                        return false;
                    }
                    self.health.insert(spec.track_id.clone(), InputHealth::new(Instant::now(), 0));
                    self.lipsync.add_track(&spec.track_id, &spec.participant_id);
                    info!(
                        track_id = spec.track_id,
                        port = spec.rtp_port,
                        codec = ?spec.codec,
                        waited_ms = building.saturating_duration_since(self.line_read_at).as_millis() as u64,
                        build_ms = building.elapsed().as_millis() as u64,
                        "input added"
                    );
                }
                Effect::RemoveInput { track_id, kind } => {
                    self.pipeline.remove_track(&track_id);
                    self.health.remove(&track_id);
                    let update = self.lipsync.remove_track(&track_id);
                    self.apply_sync(&track_id, update);
                    info!(track_id, kind = kind.as_str(), "input removed");
                }
                Effect::Layout(scene) => {
                    if let Err(e) = self.pipeline.apply_scene(&scene) {
                        error!("layout: {e:#}");
                        self.report_error("layout", format!("{e:#}"), About::Nothing);
                    }
                    // Each video's tile size: the gateway sends each leg the simulcast layer
                    // that fits it (decoding 720p for a 360p tile is wasted work).
                    let tiles = scene
                        .videos
                        .iter()
                        .map(|(id, rect, _)| (id.clone(), Tile { width: rect.width.max(0) as u32, height: rect.height.max(0) as u32 }))
                        .collect();
                    self.emit(Item::Event(Event::Layout { tiles }));
                }
                Effect::Shutdown => self.begin_shutdown(),
            }
        }
        true
    }

    fn begin_shutdown(&mut self) {
        if self.shutting_down.is_none() {
            self.shutting_down = Some(Instant::now());
            self.pipeline.send_eos();
        }
    }

    fn on_bus(&mut self, msg: &gst::Message) -> BusOutcome {
        use gst::MessageView;
        match msg.view() {
            MessageView::Eos(_) => return BusOutcome::Eos,
            MessageView::Latency(_) => self.pipeline.recalculate_latency(),
            MessageView::Error(err) => {
                let owner = msg.src().map(|s| self.pipeline.owner_of(s)).unwrap_or(Owner::Output);
                let text = format!(
                    "{}: {} ({})",
                    msg.src().map(|s| s.path_string().to_string()).unwrap_or_default(),
                    err.error(),
                    err.debug().unwrap_or_default()
                );
                match on_element_error(owner, |t| self.room.track(t).is_some(), self.shutting_down.is_some()) {
                    ErrorAction::Ignore { why } => debug!("error {why}: {text}"),
                    ErrorAction::RebuildInput { track_id } => {
                        warn!(track_id, "input error: {text}");
                        self.report_error("input_error", text, About::Track(track_id.clone()));
                        self.restart_input(&track_id);
                    }
                    ErrorAction::ReportPlaceholder { participant_id } => {
                        warn!(participant_id, "placeholder error: {text}");
                        self.report_error("placeholder", text, About::Participant(participant_id));
                    }
                    ErrorAction::EndOfStream => {
                        warn!("error while shutting down: {text}");
                        return BusOutcome::Eos;
                    }
                    ErrorAction::Fatal => {
                        error!("fatal pipeline error: {text}");
                        self.errors += 1;
                        self.emit(Item::Event(Event::Fatal { message: text }));
                        return BusOutcome::Fatal;
                    }
                }
            }
            MessageView::Warning(w) => {
                warn!("{}: {}", msg.src().map(|s| s.path_string().to_string()).unwrap_or_default(), w.error());
            }
            // A video decoder dropped a frame (GstVideoDecoder posts a QoS message for each one it
            // drops, e.g. too late); the message's stats carry its running total of drops.
            MessageView::Qos(q) => {
                if let (Some(src), (_, gst::GenericFormattedValue::Buffers(Some(dropped)))) = (msg.src(), q.stats()) {
                    if let Owner::Track(track_id) = self.pipeline.owner_of(src) {
                        debug!(track_id, dropped = *dropped, "decoder dropped frames");
                        let n = self.decoder_drops.entry(src.path_string().to_string()).or_default();
                        *n = (*n).max(*dropped);
                    }
                }
            }
            MessageView::Element(e) if e.structure().map(|s| s.name() == "GstUDPSrcTimeout") == Some(true) => {
                if let Some(Owner::Track(track_id)) = msg.src().map(|s| self.pipeline.owner_of(s)) {
                    self.on_stall(&track_id);
                }
            }
            MessageView::StateChanged(s) if msg.src() == Some(self.pipeline.pipeline().upcast_ref::<gst::Object>()) => {
                debug!("pipeline {:?} → {:?}", s.old(), s.current());
                if let Some(Startup { playing: playing @ None, .. }) = &mut self.startup {
                    if s.current() == gst::State::Playing {
                        *playing = Some(Instant::now());
                    }
                }
            }
            _ => {}
        }
        BusOutcome::Continue
    }

    fn on_stall(&mut self, track_id: &str) {
        let packets = self.pipeline.packets(track_id).unwrap_or(0);
        if !self.health.get_mut(track_id).is_some_and(|h| h.silent(packets)) {
            return;
        }
        let pid = self.room.track(track_id).map(|t| t.participant_id.clone()).unwrap_or_default();
        warn!(track_id, "input stalled");
        self.emit(Item::Event(Event::InputStalled { track_id: track_id.to_owned(), participant_id: pid.to_owned() }));
    }

    /// Once: where the time from start to the first part went (a slow go-live is seen here).
    fn check_first_part(&mut self) {
        let Some(s) = self.startup else { return };
        let Some(stages) = self.pipeline.first_frame().describe(s.began) else { return };
        self.startup = None;
        let at = |t: Instant| format!("+{} ms", t.saturating_duration_since(s.began).as_millis());
        let playing = s.playing.map_or("never".to_string(), at);
        match s.standby {
            Some(waited) => {
                info!("first part out: from standby (ready {} ms before the start), playing {playing}, {stages}", waited.as_millis())
            }
            None => {
                info!("first part out: GStreamer loaded {}, pipeline built {}, playing {playing}, {stages}", at(s.gst_ready), at(s.built))
            }
        }
    }

    /// No part for a while (the muxer or something before it stopped): where the output
    /// chain stands, so the log shows which stage is behind.
    fn check_part_silence(&mut self) {
        let parts = self.pipeline.counters.parts_out.load(Ordering::Relaxed);
        if let Some(silent) = self.part_silence.observe(parts, Instant::now()) {
            warn!(silent_ms = silent.as_millis() as u64, path = self.pipeline.output_path(), "no part out for a while");
        }
    }

    fn check_resumed(&mut self) {
        let mut resumed = Vec::new();
        for (tid, h) in self.health.iter_mut() {
            if self.pipeline.packets(tid).is_some_and(|p| h.packets(p)) {
                resumed.push(tid.clone());
            }
        }
        for tid in resumed {
            info!(track_id = tid, "input resumed");
            self.emit(Item::Event(Event::InputResumed { track_id: tid.to_owned() }));
        }
    }

    /// Asks the gateway for a keyframe for each video input whose decoder needs one.
    fn check_keyframes(&mut self) {
        let now = Instant::now();
        let mut asks = Vec::new();
        for (track_id, h) in self.health.iter_mut() {
            let Some((packets, frames, upstream)) = self.pipeline.video_counters(track_id) else { continue };
            let (first_picture, ask) = h.video(now, packets, frames, upstream);
            if let Some(waited) = first_picture {
                let path = self.pipeline.video_path(track_id).unwrap_or_default();
                info!(track_id, after_ms = waited.as_millis() as u64, path, "first picture from this input");
            }
            if let Some(reason) = ask {
                asks.push((track_id.clone(), reason));
            }
        }
        for (track_id, reason) in asks {
            self.keyframe_requests += 1;
            let path = self.pipeline.video_path(&track_id).unwrap_or_default();
            info!(track_id, reason = reason.as_str(), path, "no picture from this input: asking the publisher for a keyframe");
            self.emit(Item::Event(Event::KeyframeRequest { track_id: track_id.to_owned(), reason: reason.as_str().to_owned() }));
        }
    }

    fn restart_input(&mut self, track_id: &str) {
        let Some(spec): Option<TrackSpec> = self.room.track(track_id).cloned() else {
            return;
        };
        let rebuild = self.health.get(track_id).map(|h| h.failed()).unwrap_or(Rebuild::Again { attempt: 1 });
        self.pipeline.remove_track(track_id);
        let attempt = match rebuild {
            Rebuild::Again { attempt } => attempt,
            Rebuild::GiveUp { restarts } => {
                warn!(track_id, "input failed {restarts} times: leaving it out");
                if let Ok(effects) = self.room.apply(Command::RemoveTrack { track_id: track_id.to_string() }) {
                    self.execute(effects);
                }
                self.emit(Item::Event(Event::InputRemoved { track_id: track_id.to_owned(), reason: "failed".into() }));
                return;
            }
        };
        // The rebuilt input starts without a delay: sync it again from its next SR.
        let update = self.lipsync.remove_track(track_id);
        self.apply_sync(track_id, update);
        match self.pipeline.add_track(&spec) {
            Ok(()) => {
                self.lipsync.add_track(track_id, &spec.participant_id);
                self.health.insert(track_id.to_string(), InputHealth::new(Instant::now(), attempt));
                let _ = self.pipeline.apply_scene(&self.room.scene());
                info!(track_id, "input restarted");
            }
            Err(e) => {
                self.report_error("input_failed", format!("{e:#}"), About::Track(track_id.to_owned()));
                if let Ok(effects) = self.room.apply(Command::RemoveTrack { track_id: track_id.to_string() }) {
                    self.execute(effects);
                }
            }
        }
    }

    /// Apply the delays lip sync asked for (`track_id`: the track the update came from).
    fn apply_sync(&mut self, track_id: &str, update: Update) {
        let pid = self.room.track(track_id).map(|t| t.participant_id.clone()).unwrap_or_default();
        if let Some(wanted) = update.bogus {
            warn!(
                track_id,
                participant_id = pid,
                wanted_ms = wanted / 1_000_000,
                "sender reports would need an A/V delay above {} ms: ignored",
                crate::lipsync::MAX_DELAY_NS / 1_000_000
            );
        }
        if update.changes.is_empty() {
            return;
        }
        for ch in &update.changes {
            self.pipeline.set_track_delay(&ch.track_id, ch.delay_ns);
        }
        let delays: Vec<String> = update.changes.iter().map(|ch| format!("{}={:.1}ms", ch.track_id, ch.delay_ns as f64 / 1e6)).collect();
        info!(participant_id = pid, "A/V sync delays: {}", delays.join(" "));
    }

    fn stats(&mut self) {
        let counters = &self.pipeline.counters;
        let frames = counters.frames_out.load(Ordering::Relaxed);
        let frames_in = counters.video_frames_in.load(Ordering::Relaxed);
        let dt = self.last_tick.elapsed().as_secs_f64();
        let rate = |now: u64, before: u64| {
            if dt > 0.0 {
                let fps = now.saturating_sub(before) as f64 / dt;
                (fps * 10.0).round() / 10.0
            } else {
                0.0
            }
        };
        let (fps, fps_in) = (rate(frames, self.last_frames), rate(frames_in, self.last_frames_in));
        let timing = counters.timing.lock().unwrap().take_interval();
        // 0.001 ms resolution is plenty (and keeps the line short)
        let round = |v: Option<f64>| v.map(|v| (v * 1000.0).round() / 1000.0);
        self.last_tick = Instant::now();
        self.last_frames = frames;
        self.last_frames_in = frames_in;
        let stalled: Vec<&String> = self.health.iter().filter(|(_, h)| h.is_stalled()).map(|(k, _)| k).collect();
        let av_sync_ms = self
            .lipsync
            .report()
            .into_iter()
            .map(|(pid, tracks)| (pid, tracks.into_iter().map(|(tid, ns)| (tid, (ns as f64 / 100_000.0).round() / 10.0)).collect()))
            .collect();
        let event = Item::Event(Event::Stats(Stats {
            fps_out: fps,
            fps_in,
            frames_out: frames,
            frames_dropped: self.pipeline.depay_drops() + self.decoder_drops.values().sum::<u64>(),
            packets_lost: self.pipeline.packets_lost(),
            encode_ms_avg: round(timing.encode_ms_avg()),
            encode_ms_max: round(timing.encode_ms_max()),
            part_age_ms_max: round(timing.part_age_ms_max()),
            parts_out: counters.parts_out.load(Ordering::Relaxed),
            bytes_out: counters.bytes_out.load(Ordering::Relaxed),
            participants: self.room.participants().len() as u64,
            video_inputs: self.room.count(Kind::Video) as u64,
            audio_inputs: self.room.count(Kind::Audio) as u64,
            stalled: stalled.into_iter().cloned().collect(),
            errors: self.errors,
            stray_buffers: counters.stray_buffers.load(Ordering::Relaxed),
            keyframe_requests: self.keyframe_requests,
            mixer_catchups: counters.mixer_catchups.load(Ordering::Relaxed),
            av_sync_ms,
        }));
        self.emit(event);
    }
}

/// What an `error` event is about, beside its code and message.
enum About {
    Nothing,
    /// A control line (its `op`, if it had one).
    Op(Option<String>),
    Track(String),
    Participant(String),
}

/// The id a command is about, for the `applied` acknowledgement.
fn target_of(cmd: &Command) -> Option<String> {
    match cmd {
        Command::AddParticipant { id, .. } | Command::RemoveParticipant { id } => Some(id.clone()),
        Command::AddTrack(t) => Some(t.track_id.clone()),
        Command::RemoveTrack { track_id } => Some(track_id.clone()),
        Command::SetVideoMuted { id, .. } => Some(id.clone()),
        Command::Shutdown | Command::Start { .. } => None,
    }
}
