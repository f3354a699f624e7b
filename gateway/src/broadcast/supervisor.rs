//! One live broadcast: runs its compositor process, keeps it told which participants and
//! tracks exist (allocating a port pair per track), pipes its CMAF output into hls-out, and
//! restarts it with backoff when it dies. The HLS timeline continues across restarts.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use compositor_protocol::{Codec, Command as Control, Event, Kind, TrackSpec};
use tokio::sync::{mpsc, oneshot};

use super::compositor::{leg_actions, Compositor, Item, LegAction, OutputFormat};
use super::policy::{BroadcastState, Next, RestartPolicy, Restarts, RunEnd, RunWatch};
use super::ports::{PortAllocator, PortPair};
use super::spares::Spares;
use super::Status;
use crate::protocol::MediaKindName;
use crate::sfu::{Command, LegEvent, WorkerHandle};

pub struct Supervisor {
    pub room: String,
    pub worker: WorkerHandle,
    pub hls: hls_out::StreamWriter,
    pub hls_store: Arc<hls_out::HlsStore>,
    pub ports: Arc<Mutex<PortAllocator>>,
    pub status: Arc<Mutex<Status>>,
    pub bin: PathBuf,
    pub format: OutputFormat,
    pub spares: Arc<Spares>,
    pub policy: RestartPolicy,
}

/// The tracks this compositor run has ports for (a restarted one hears everything again
/// from the worker, so nothing is replayed from here).
#[derive(Default)]
struct Roster {
    participants: Vec<String>,
    tracks: HashMap<String, PortPair>,
}

impl Supervisor {
    pub async fn run(self, mut stop: oneshot::Receiver<()>, mut restart: mpsc::UnboundedReceiver<()>) {
        let mut restarts = Restarts::new(self.policy);
        loop {
            let starting = restarts.starting_state();
            self.set(|s| s.state = starting);
            // A spare (see `spares`) has GStreamer and its pipeline ready: seconds sooner on air.
            let comp = match self.spares.take() {
                Some(spare) => Ok(spare),
                None => Compositor::spawn(&self.bin, &self.format),
            };
            let (end, why) = match comp {
                Ok(c) => self.run_once(c, &mut stop, &mut restart).await,
                Err(e) => (RunEnd::Died { healthy: false }, Some(format!("cannot start {}: {e}", self.bin.display()))),
            };
            if let Some(why) = &why {
                self.set(|s| {
                    s.restarts += 1;
                    s.last_error = Some(why.clone());
                });
            }
            let why = why.unwrap_or_default();
            match restarts.after(end) {
                Next::Finish => break,
                Next::StartNow => {
                    tracing::info!(room = %self.room, "compositor restarted on request");
                    self.set(|s| s.restarts += 1);
                    self.hls.discontinuity();
                }
                Next::GiveUp { attempts } => {
                    tracing::error!(room = %self.room, error = %why, attempts, "compositor keeps failing; broadcast marked failed. Check the compositor logs above, then stop and start the broadcast");
                    self.set(|s| s.state = BroadcastState::Failed);
                    self.worker.send(Command::StopBroadcast { room: self.room.clone() });
                    // Viewers get an ended playlist rather than waiting on a dead stream.
                    self.hls_store.close(&self.room);
                    let _ = stop.await;
                    break;
                }
                Next::RetryAfter { attempt, delay } => {
                    tracing::warn!(room = %self.room, error = %why, attempt, delay_ms = delay.as_millis() as u64, "compositor died; restarting it");
                    self.hls.discontinuity();
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = &mut stop => break,
                    }
                }
            }
        }
        self.worker.send(Command::StopBroadcast { room: self.room.clone() });
        self.set(|s| {
            s.state = BroadcastState::Stopped;
            s.pid = None;
            s.legs = 0;
        });
        tracing::info!(room = %self.room, "broadcast stopped");
    }

    /// Updates the status; a change of state is announced to the room.
    fn set(&self, f: impl FnOnce(&mut Status)) {
        let (before, after) = {
            let mut s = self.status.lock().expect("status lock");
            let before = s.state;
            f(&mut s);
            if s.state != before {
                s.since = Instant::now();
            }
            (before, s.state)
        };
        if before != after {
            self.worker.send(Command::BroadcastState { room: self.room.clone(), state: after.as_str().to_owned() });
        }
    }

    /// Runs one compositor process until it ends; says how it ended and, if it died, why.
    async fn run_once(
        &self,
        mut comp: Compositor,
        stop: &mut oneshot::Receiver<()>,
        restart: &mut mpsc::UnboundedReceiver<()>,
    ) -> (RunEnd, Option<String>) {
        self.set(|s| {
            s.pid = comp.pid();
            s.figures.new_process();
        });
        if let Err(e) = comp.start(&self.room).await {
            comp.kill().await;
            return (RunEnd::Died { healthy: false }, Some(format!("control channel: {e}")));
        }
        let (events_tx, mut events) = mpsc::unbounded_channel();
        // The worker replays everyone present and every known track, and drops old legs.
        if !self.worker.send(Command::StartBroadcast { room: self.room.clone(), events: events_tx }) {
            comp.kill().await;
            return (RunEnd::Died { healthy: false }, Some("the room's SFU worker is down".into()));
        }
        let mut roster = Roster::default();
        let mut watch = RunWatch::new(self.policy, self.format.part, now());
        let mut watchdog = tokio::time::interval(self.format.part / 2);
        let died = |why: String| Err::<RunEnd, _>(why);
        let ended = loop {
            tokio::select! {
                // Biased: output already waiting is taken before the watchdog looks, so a gateway
                // that was itself descheduled does not mistake its backlog for a stall.
                biased;
                _ = &mut *stop => {
                    comp.shutdown().await;
                    break Ok(RunEnd::Stopped);
                }
                Some(()) = restart.recv() => {
                    comp.kill().await;
                    break Ok(RunEnd::RestartRequested);
                }
                ev = events.recv() => {
                    let Some(ev) = ev else {
                        // The SFU worker died: keep the compositor (placeholders, never a stall),
                        // forget the old legs, and attach to the replacement worker.
                        match self.reattach(&mut comp, &mut roster).await {
                            Ok(new_events) => { events = new_events; continue; }
                            Err(why) => break died(why),
                        }
                    };
                    if let Err(e) = self.on_event(&mut comp, &mut roster, ev).await {
                        break died(format!("control channel: {e}"));
                    }
                }
                item = comp.next_item() => match item {
                    Ok(Some(Item::Init(data))) => self.hls.init(data),
                    Ok(Some(Item::Part { data, independent, segment_start, duration, composed_at })) => {
                        watch.part(now());
                        self.hls.push_part_composed_at(hls_out::Part { data, duration, independent, segment_start }, composed_at);
                        self.set(|s| { s.state = BroadcastState::Live; s.parts += 1; });
                    }
                    Ok(Some(Item::Event(ev))) => {
                        tracing::debug!(room = %self.room, event = ?ev, "compositor event");
                        if let Event::Stats(stats) = &ev {
                            watch.frames(stats.frames_out, now());
                            self.set(|s| s.figures.apply_stats(stats));
                        }
                        for action in leg_actions(&ev, |id| roster.tracks.contains_key(id)) {
                            self.worker.send(match action {
                                LegAction::Attach { producer_id } => {
                                    // The compositor has bound the track's ports: start the leg now, so
                                    // the keyframe the SFU asks for on attach lands on a listening socket.
                                    let pair = roster.tracks[&producer_id];
                                    let to = |port| SocketAddr::from((Ipv4Addr::LOCALHOST, port));
                                    Command::AttachLeg { room: self.room.clone(), producer_id, rtp_to: to(pair.rtp), rtcp_to: to(pair.rtcp) }
                                }
                                LegAction::Tile { producer_id, height } => Command::LegTile { room: self.room.clone(), producer_id, height },
                                LegAction::Keyframe { producer_id } => Command::LegNeedsKeyframe { room: self.room.clone(), producer_id },
                            });
                        }
                        if let Event::Error { message, .. } = ev {
                            self.set(|s| s.last_error = Some(message));
                        }
                    }
                    Ok(None) => break died("the compositor exited".into()),
                    Err(e) => break died(e.to_string()),
                },
                _ = watchdog.tick() => {
                    let cpu = comp.pid().and_then(crate::clock::process_cpu_ticks);
                    if let Some(silent) = watch.look_unless_blocked(now(), cpu, || comp.output_waiting()) {
                        comp.kill().await;
                        break died(format!("stalled: no part for {} ms", silent.as_millis()));
                    }
                }
            }
        };
        let mut ports = self.ports.lock().expect("ports lock");
        for (_, pair) in roster.tracks.drain() {
            ports.release(pair);
        }
        self.set(|s| s.legs = 0);
        match ended {
            Ok(end) => (end, None),
            Err(why) => (watch.died(), Some(why)),
        }
    }

    async fn reattach(&self, comp: &mut Compositor, roster: &mut Roster) -> Result<mpsc::UnboundedReceiver<LegEvent>, String> {
        tracing::warn!(room = %self.room, "SFU worker lost; the broadcast shows placeholders until participants are back");
        for (producer_id, pair) in roster.tracks.drain() {
            comp.send(&Control::RemoveTrack { track_id: producer_id }).await.map_err(|e| format!("control channel: {e}"))?;
            self.ports.lock().expect("ports lock").release(pair);
        }
        for id in roster.participants.drain(..) {
            comp.send(&Control::RemoveParticipant { id }).await.map_err(|e| format!("control channel: {e}"))?;
        }
        self.set(|s| s.legs = 0);
        let deadline = now() + Duration::from_secs(10);
        loop {
            if self.worker.is_alive() {
                let (tx, rx) = mpsc::unbounded_channel();
                if self.worker.send(Command::StartBroadcast { room: self.room.clone(), events: tx }) {
                    // Participants rejoin the new worker; their state reaches the compositor as they do.
                    self.worker.send(Command::BroadcastState {
                        room: self.room.clone(),
                        state: self.status.lock().expect("status").state.as_str().to_owned(),
                    });
                    return Ok(rx);
                }
            }
            if now() > deadline {
                return Err("the SFU worker did not come back within 10 s".into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn on_event(&self, comp: &mut Compositor, roster: &mut Roster, ev: LegEvent) -> std::io::Result<()> {
        match ev {
            LegEvent::ParticipantJoined { id, name } => {
                comp.send(&Control::AddParticipant { id: id.clone(), name }).await?;
                roster.participants.push(id);
            }
            LegEvent::ParticipantLeft { id } => {
                roster.participants.retain(|p| *p != id);
                comp.send(&Control::RemoveParticipant { id }).await?;
            }
            LegEvent::TrackAdded { producer_id, participant_id, kind, codec, payload_type, clock_rate } => {
                let Some(codec) = Codec::parse(codec) else {
                    tracing::warn!(room = %self.room, producer = %producer_id, codec, "a codec the compositor does not take; track left out of the broadcast");
                    return Ok(());
                };
                let pair = match self.ports.lock().expect("ports lock").allocate_where(super::ports::pair_is_free) {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::error!(room = %self.room, producer = %producer_id, error = %e, "track left out of the broadcast");
                        self.set(|s| s.last_error = Some(e.to_string()));
                        return Ok(());
                    }
                };
                let kind = match kind {
                    MediaKindName::Audio => Kind::Audio,
                    MediaKindName::Video => Kind::Video,
                };
                let spec = TrackSpec {
                    track_id: producer_id.clone(),
                    participant_id,
                    kind,
                    codec,
                    payload_type,
                    clock_rate,
                    rtp_port: pair.rtp,
                    rtcp_port: Some(pair.rtcp),
                };
                comp.send(&Control::AddTrack(spec)).await?;
                roster.tracks.insert(producer_id.clone(), pair);
                self.set(|s| s.legs = roster.tracks.len());
                // The leg starts when the compositor says `applied` (see run_once).
            }
            LegEvent::TrackRemoved { producer_id } => {
                if let Some(pair) = roster.tracks.remove(&producer_id) {
                    comp.send(&Control::RemoveTrack { track_id: producer_id }).await?;
                    self.ports.lock().expect("ports lock").release(pair);
                    self.set(|s| s.legs = roster.tracks.len());
                }
            }
            LegEvent::VideoMuted { id, muted } => {
                if roster.participants.contains(&id) {
                    comp.send(&Control::SetVideoMuted { id, muted }).await?;
                }
            }
        }
        Ok(())
    }
}

/// The supervisor's clock: tokio's, so its tests run it in simulated time (`start_paused`).
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// The supervisor's loop in simulated time: in-memory compositors (the test writes their
/// output and reads their control lines), a real SFU worker with an empty room, real hls-out.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::broadcast::compositor::Remote;
    use crate::broadcast::spares::{Spares, REFILL_AFTER};
    use crate::broadcast::Status;
    use bytes::Bytes;

    const PART: Duration = Duration::from_millis(333);

    struct Harness {
        status: Arc<Mutex<Status>>,
        hls: Arc<hls_out::HlsStore>,
        worker: WorkerHandle,
        stop: oneshot::Sender<()>,
        restart: mpsc::UnboundedSender<()>,
        task: tokio::task::JoinHandle<()>,
    }

    /// A supervisor whose compositors are `n` in-memory ones, handed out in order (then the
    /// binary is missing: a start fails).
    fn start(n: usize, max_restarts: u32) -> (Harness, Vec<Remote>) {
        let format = OutputFormat { width: 64, height: 36, fps: 30, part: PART, segment: Duration::from_secs(1) };
        let missing = PathBuf::from("/nonexistent/roomcast-compositor");
        let spares = Spares::new(missing.clone(), format.clone(), 0, REFILL_AFTER);
        let mut remotes = Vec::new();
        for _ in 0..n {
            let (comp, remote) = Compositor::in_memory();
            spares.offer(comp);
            remotes.push(remote);
        }
        let worker = crate::sfu::worker::spawn(
            0,
            crate::sfu::WorkerConfig {
                bind: "127.0.0.1:0".parse().unwrap(),
                announce_ip: Ipv4Addr::LOCALHOST.into(),
                ice_disconnect_timeout: Duration::from_secs(30),
                samples: None,
                bwe: false,
                ice_lite: false,
            },
        )
        .unwrap();
        let hls = hls_out::HlsStore::new();
        let status = Arc::new(Mutex::new(Status::starting()));
        let sup = Supervisor {
            room: "r-sim".into(),
            worker: worker.clone(),
            hls: hls.open("r-sim", hls_out::PackagerConfig { part_target: PART, segment_target: format.segment, window_segments: 12 }),
            hls_store: hls.clone(),
            ports: Arc::new(Mutex::new(PortAllocator::new(40_000..40_100))),
            status: status.clone(),
            bin: missing,
            format,
            spares,
            policy: RestartPolicy { max_restarts, stall_parts: 3, ..Default::default() },
        };
        let (stop, stop_rx) = oneshot::channel();
        let (restart, restart_rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(sup.run(stop_rx, restart_rx));
        (Harness { status, hls, worker, stop, restart, task }, remotes)
    }

    impl Harness {
        fn state(&self) -> (BroadcastState, u32) {
            let s = self.status.lock().unwrap();
            (s.state, s.restarts)
        }
        fn parts_published(&self) -> u64 {
            self.hls.stats("r-sim").map_or(0, |s| s.parts_published)
        }
        /// Stops the broadcast, waits for its supervisor to end; its final state.
        async fn finish(self) -> (BroadcastState, u32) {
            let Harness { status, worker, stop, task, .. } = self;
            let _ = stop.send(());
            task.await.unwrap();
            worker.send(crate::sfu::Command::Stop);
            let s = status.lock().unwrap();
            (s.state, s.restarts)
        }
    }

    fn part() -> Item {
        Item::Part { data: Bytes::from_static(b"moof"), independent: true, segment_start: true, duration: PART, composed_at: None }
    }

    /// Reads control lines until `op`; panics if the supervisor lets the compositor go first.
    async fn expect_op(remote: &mut Remote, op: &str) -> String {
        while let Some(line) = remote.lines.next_line().await.unwrap() {
            if line.contains(&format!("\"op\":\"{op}\"")) {
                return line;
            }
        }
        panic!("the supervisor let the compositor go before sending {op}");
    }

    /// Waits until the supervisor lets the compositor go (its control channel closes).
    async fn let_go(remote: &mut Remote) {
        while remote.lines.next_line().await.unwrap().is_some() {}
    }

    /// Publishes `n` parts, one per part duration.
    async fn publish(remote: &Remote, n: usize) {
        for _ in 0..n {
            remote.items.send(Ok(Some(part()))).await.unwrap();
            tokio::time::sleep(PART).await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_compositor_is_replaced_after_three_part_durations() {
        let (h, mut remotes) = start(2, 5);
        let mut second = remotes.pop().unwrap();
        let mut first = remotes.pop().unwrap();
        assert!(expect_op(&mut first, "start").await.contains("r-sim"));
        first.items.send(Ok(Some(Item::Init(Bytes::from_static(b"ftyp"))))).await.unwrap();
        publish(&first, 6).await;
        assert_eq!(h.state(), (BroadcastState::Live, 0));
        // Silence (a process that uses no CPU: an in-memory one has no pid to read).
        let last_part = tokio::time::Instant::now() - PART;
        let_go(&mut first).await;
        let silent = last_part.elapsed();
        assert!(silent > PART * 3 && silent <= PART * 3 + PART, "replaced after {silent:?} of silence");
        // The first restart is at once, with the next compositor.
        let restarted = tokio::time::Instant::now();
        expect_op(&mut second, "start").await;
        assert!(restarted.elapsed() < Duration::from_millis(50), "restarted after {:?}", restarted.elapsed());
        second.items.send(Ok(Some(Item::Init(Bytes::from_static(b"ftyp"))))).await.unwrap();
        publish(&second, 3).await;
        assert_eq!(h.state(), (BroadcastState::Live, 1));
        assert_eq!(h.parts_published(), 9, "one timeline across the two runs");
        // A stop asks the compositor to shut down, then lets it go.
        let stopping = tokio::spawn(h.finish());
        expect_op(&mut second, "shutdown").await;
        let_go(&mut second).await;
        assert_eq!(stopping.await.unwrap(), (BroadcastState::Stopped, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn ops_restart_is_immediate_and_repeated_deaths_fail_the_broadcast() {
        let (h, mut remotes) = start(3, 2);
        let mut third = remotes.pop().unwrap();
        let mut second = remotes.pop().unwrap();
        let mut first = remotes.pop().unwrap();
        expect_op(&mut first, "start").await;
        publish(&first, 3).await;
        // Ops asks for a restart: at once, not counted against the budget.
        h.restart.send(()).unwrap();
        let_go(&mut first).await;
        expect_op(&mut second, "start").await;
        // It dies (its output ends) before publishing: the first retry is at once...
        second.items.send(Ok(None)).await.unwrap();
        let died = tokio::time::Instant::now();
        expect_op(&mut third, "start").await;
        assert!(died.elapsed() < Duration::from_millis(50));
        // ... and the next one dies too: the budget of 2 is spent on a start that fails
        // (no more compositors: the binary is missing), then the broadcast fails.
        third.items.send(Ok(None)).await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while h.state().0 != BroadcastState::Failed {
            assert!(tokio::time::Instant::now() < deadline, "still {:?}", h.state());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let error = h.status.lock().unwrap().last_error.clone().unwrap_or_default();
        assert!(error.contains("cannot start"), "{error}");
        assert!(h.hls.stats("r-sim").is_some(), "the ended stream is still served for its grace period");
        let (state, _) = h.finish().await;
        assert_eq!(state, BroadcastState::Stopped);
    }
}
