//! One live broadcast: runs its compositor process, keeps it told which participants and
//! tracks exist (allocating a port pair per track), pipes its CMAF output into hls-out, and
//! restarts it with backoff when it dies. The HLS timeline continues across restarts.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::{mpsc, oneshot};

use super::compositor::{Compositor, Item, OutputFormat};
use super::policy::{BroadcastState, RestartPolicy};
use super::ports::{PortAllocator, PortPair};
use super::Status;
use crate::sfu::{Command, LegEvent, WorkerHandle};

/// Gives the compositor time to bind a new track's port before packets (and the keyframe) arrive.
const ATTACH_DELAY: Duration = Duration::from_millis(300);

pub struct Supervisor {
    pub room: String,
    pub worker: WorkerHandle,
    pub hls: hls_out::StreamWriter,
    pub hls_store: Arc<hls_out::HlsStore>,
    pub ports: Arc<Mutex<PortAllocator>>,
    pub status: Arc<Mutex<Status>>,
    pub bin: PathBuf,
    pub format: OutputFormat,
    pub policy: RestartPolicy,
}

/// The tracks this compositor run has ports for (a restarted one hears everything again
/// from the worker, so nothing is replayed from here).
#[derive(Default)]
struct Roster {
    tracks: HashMap<String, PortPair>,
}

enum Exit {
    Stopped,
    Died(String),
}

impl Supervisor {
    pub async fn run(self, mut stop: oneshot::Receiver<()>) {
        let mut attempt = 0u32;
        loop {
            self.set(|s| s.state = if attempt == 0 { BroadcastState::Starting } else { BroadcastState::Restarting });
            let started = Instant::now();
            let exit = match Compositor::spawn(&self.bin, &self.format, &self.room) {
                Ok(c) => self.run_once(c, &mut stop).await,
                Err(e) => Exit::Died(format!("cannot start {}: {e}", self.bin.display())),
            };
            match exit {
                Exit::Stopped => break,
                Exit::Died(why) => {
                    // A compositor that ran a while earns a fresh retry budget.
                    if started.elapsed() > Duration::from_secs(30) {
                        attempt = 0;
                    }
                    attempt += 1;
                    self.set(|s| {
                        s.restarts += 1;
                        s.last_error = Some(why.clone());
                    });
                    let Some(delay) = self.policy.delay(attempt) else {
                        tracing::error!(room = %self.room, error = %why, attempts = attempt - 1, "compositor keeps failing; broadcast marked failed. Check the compositor logs above, then stop and start the broadcast");
                        self.set(|s| s.state = BroadcastState::Failed);
                        self.worker.send(Command::StopBroadcast { room: self.room.clone() });
                        // Viewers get an ended playlist rather than waiting on a dead stream.
                        self.hls_store.close(&self.room);
                        let _ = stop.await;
                        break;
                    };
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

    async fn run_once(&self, mut comp: Compositor, stop: &mut oneshot::Receiver<()>) -> Exit {
        self.set(|s| s.pid = comp.pid());
        let (events_tx, mut events) = mpsc::unbounded_channel();
        // The worker replays everyone present and every known track, and drops old legs.
        if !self.worker.send(Command::StartBroadcast { room: self.room.clone(), events: events_tx }) {
            comp.kill().await;
            return Exit::Died("the room's SFU worker is down".into());
        }
        let mut roster = Roster::default();
        let (attach_tx, mut attach_rx) = mpsc::unbounded_channel::<String>();
        let exit = loop {
            tokio::select! {
                _ = &mut *stop => {
                    comp.shutdown().await;
                    break Exit::Stopped;
                }
                ev = events.recv() => {
                    let Some(ev) = ev else { break Exit::Died("the SFU worker stopped sending room events".into()) };
                    if let Err(e) = self.on_event(&mut comp, &mut roster, ev, &attach_tx).await {
                        break Exit::Died(format!("control channel: {e}"));
                    }
                }
                Some(producer_id) = attach_rx.recv() => {
                    if let Some(pair) = roster.tracks.get(&producer_id) {
                        let to = |port| SocketAddr::from((Ipv4Addr::LOCALHOST, port));
                        self.worker.send(Command::AttachLeg { room: self.room.clone(), producer_id, rtp_to: to(pair.rtp), rtcp_to: to(pair.rtcp) });
                    }
                }
                item = comp.next_item() => match item {
                    Ok(Some(Item::Init(data))) => self.hls.init(data),
                    Ok(Some(Item::Part { data, independent, segment_start, duration })) => {
                        self.hls.push_part(hls_out::Part { data, duration, independent, segment_start });
                        self.set(|s| { s.state = BroadcastState::Live; s.parts += 1; });
                    }
                    Ok(Some(Item::Event(ev))) => {
                        tracing::debug!(room = %self.room, event = %ev, "compositor event");
                        if ev["event"] == "error" {
                            self.set(|s| s.last_error = ev["message"].as_str().map(str::to_owned));
                        }
                    }
                    Ok(None) => break Exit::Died("the compositor exited".into()),
                    Err(e) => break Exit::Died(e.to_string()),
                }
            }
        };
        let mut ports = self.ports.lock().expect("ports lock");
        for (_, pair) in roster.tracks.drain() {
            ports.release(pair);
        }
        self.set(|s| s.legs = 0);
        exit
    }

    async fn on_event(&self, comp: &mut Compositor, roster: &mut Roster, ev: LegEvent, attach: &mpsc::UnboundedSender<String>) -> std::io::Result<()> {
        match ev {
            LegEvent::ParticipantJoined { id, name } => {
                comp.send(&json!({"op": "add_participant", "id": id, "name": name})).await?;
            }
            LegEvent::ParticipantLeft { id } => {
                comp.send(&json!({"op": "remove_participant", "id": id})).await?;
            }
            LegEvent::TrackAdded { producer_id, participant_id, kind, codec, payload_type, clock_rate } => {
                let pair = match self.ports.lock().expect("ports lock").allocate() {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::error!(room = %self.room, producer = %producer_id, error = %e, "track left out of the broadcast");
                        self.set(|s| s.last_error = Some(e.to_string()));
                        return Ok(());
                    }
                };
                let cmd = json!({"op": "add_track", "track_id": producer_id, "participant_id": participant_id, "kind": kind,
                    "codec": codec, "payload_type": payload_type, "clock_rate": clock_rate, "rtp_port": pair.rtp, "rtcp_port": pair.rtcp});
                comp.send(&cmd).await?;
                roster.tracks.insert(producer_id.clone(), pair);
                self.set(|s| s.legs = roster.tracks.len());
                let attach = attach.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(ATTACH_DELAY).await;
                    let _ = attach.send(producer_id);
                });
            }
            LegEvent::TrackRemoved { producer_id } => {
                if let Some(pair) = roster.tracks.remove(&producer_id) {
                    comp.send(&json!({"op": "remove_track", "track_id": producer_id})).await?;
                    self.ports.lock().expect("ports lock").release(pair);
                    self.set(|s| s.legs = roster.tracks.len());
                }
            }
        }
        Ok(())
    }
}
