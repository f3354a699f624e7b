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
        let mut watch = RunWatch::new(self.policy, self.format.part, Instant::now());
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
                        watch.part(Instant::now());
                        self.hls.push_part_composed_at(hls_out::Part { data, duration, independent, segment_start }, composed_at);
                        self.set(|s| { s.state = BroadcastState::Live; s.parts += 1; });
                    }
                    Ok(Some(Item::Event(ev))) => {
                        tracing::debug!(room = %self.room, event = ?ev, "compositor event");
                        if let Event::Stats(stats) = &ev {
                            watch.frames(stats.frames_out, Instant::now());
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
                    if let Some(silent) = watch.look(Instant::now(), comp.pid().and_then(process_cpu_ticks)) {
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
        let deadline = Instant::now() + Duration::from_secs(10);
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
            if Instant::now() > deadline {
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

/// CPU time (user + system, in clock ticks) a process has used, from `/proc/PID/stat`.
fn process_cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) in parentheses.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split(' ');
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}
