//! An SFU worker: one thread owning one UDP socket and the rooms pinned to it, each a sans-IO
//! `Router`. This is the I/O edge: it hands each router its commands, datagrams and time, and
//! carries out what comes back (datagrams to the socket, messages to signaling sessions,
//! events to the broadcast, samples to the store).
//!
//! The loop: apply commands from signaling, wake the routers whose timers are due, then wait
//! for the next datagram no longer than the earliest of them.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use str0m::Candidate;
use tokio::sync::{mpsc::UnboundedSender, oneshot};

#[cfg(feature = "fault-injection")]
use super::netfault::Way;
use super::quality::QualitySample;
use super::router::{Input, LegEvent, Output, Router, RouterCommand, RouterConfig, HOUSEKEEPING_EVERY};
use super::slow_steps::{SlowSteps, SLOW_STEP};
use super::stats::WorkerStats;
use crate::clock::ThreadUsage;
use crate::outbox::Outbox;
use crate::protocol::{ClientMsg, ParticipantInfo, ProducerInfo};
use crate::store::StatsSample;

/// Longest wait for a datagram before commands are looked at again.
const COMMAND_LATENCY: Duration = Duration::from_millis(5);

pub enum Command {
    Join {
        room: String,
        info: ParticipantInfo,
        out: Outbox,
    },
    Signal {
        room: String,
        participant: String,
        msg: ClientMsg,
    },
    /// `done` is answered once the participant is gone and its last quality sample is queued,
    /// so the session's "left" record (which summarizes the samples) comes after it.
    Leave {
        room: String,
        participant: String,
        done: Option<oneshot::Sender<()>>,
    },
    /// The host (or the API key) removes a participant: it is told why, then dropped.
    /// `reply` says whether the participant was in the room.
    Remove {
        room: String,
        participant: String,
        reason: String,
        reply: oneshot::Sender<bool>,
    },
    Snapshot {
        room: String,
        reply: oneshot::Sender<RoomSnapshot>,
    },
    /// Start (or restart) sending the room's tracks to a broadcast; events say what to attach.
    StartBroadcast {
        room: String,
        events: UnboundedSender<LegEvent>,
    },
    StopBroadcast {
        room: String,
    },
    BroadcastState {
        room: String,
        state: String,
    },
    AttachLeg {
        room: String,
        producer_id: String,
        rtp_to: SocketAddr,
        rtcp_to: SocketAddr,
    },
    /// The compositor cannot decode this producer's leg and asks for a keyframe.
    LegNeedsKeyframe {
        room: String,
        producer_id: String,
    },
    /// The compositor draws this producer's video in a tile this many pixels high.
    LegTile {
        room: String,
        producer_id: String,
        height: u32,
    },
    /// Fault injection: the worker thread panics (tests of worker recovery).
    #[cfg(feature = "fault-injection")]
    Panic,
    /// Shutdown: the thread ends (see `WorkerHandle::stop`).
    Stop,
    /// Fault injection: drop a participant's UDP (both connections) until `until`, as if its
    /// network broke while signaling stays up. `reply`: whether it was found.
    /// `loss_per_mille` 1000 is a blackhole; less drops that share of the datagrams (NACK/RTX).
    #[cfg(feature = "fault-injection")]
    NetFault {
        room: String,
        participant: String,
        until: Instant,
        loss_per_mille: u16,
        only: Option<Way>,
        reply: oneshot::Sender<bool>,
    },
}

impl Command {
    /// The command's name, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Command::Join { .. } => "join",
            Command::Signal { .. } => "signal",
            Command::Leave { .. } => "leave",
            Command::Remove { .. } => "remove",
            Command::Snapshot { .. } => "snapshot",
            Command::StartBroadcast { .. } => "start_broadcast",
            Command::StopBroadcast { .. } => "stop_broadcast",
            Command::BroadcastState { .. } => "broadcast_state",
            Command::AttachLeg { .. } => "attach_leg",
            Command::LegNeedsKeyframe { .. } => "leg_needs_keyframe",
            Command::LegTile { .. } => "leg_tile",
            #[cfg(feature = "fault-injection")]
            Command::Panic => "panic",
            Command::Stop => "stop",
            #[cfg(feature = "fault-injection")]
            Command::NetFault { .. } => "net_fault",
        }
    }
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RoomSnapshot {
    pub participants: Vec<ParticipantInfo>,
    pub producers: Vec<ProducerInfo>,
}

/// A worker slot. Holders keep one clone for the life of a room; when the worker thread dies,
/// `respawn_if_dead` starts a replacement on the same UDP address with the same counters, and
/// every clone talks to the replacement (its `generation` changes so holders can re-attach).
#[derive(Clone)]
pub struct WorkerHandle {
    pub index: usize,
    pub udp_addr: SocketAddr,
    pub stats: Arc<WorkerStats>,
    config: WorkerConfig,
    thread: Arc<RwLock<WorkerThread>>,
}

struct WorkerThread {
    tx: Sender<Command>,
    alive: Arc<AtomicBool>,
    generation: u64,
    /// Stopped on purpose (shutdown): not to be replaced.
    stopped: bool,
}

impl WorkerHandle {
    /// False if the worker thread is gone (the command is lost; the holder re-attaches later).
    pub fn send(&self, cmd: Command) -> bool {
        self.thread.read().expect("worker slot").tx.send(cmd).is_ok()
    }

    pub fn is_alive(&self) -> bool {
        self.thread.read().expect("worker slot").alive.load(Ordering::Relaxed)
    }

    /// Changes each time the worker thread is replaced.
    pub fn generation(&self) -> u64 {
        self.thread.read().expect("worker slot").generation
    }

    /// Replaces a dead worker thread; true if it did. Its rooms are gone with it: sessions and
    /// broadcasts notice the new generation and join again.
    pub fn respawn_if_dead(&self) -> bool {
        let mut slot = self.thread.write().expect("worker slot");
        if slot.stopped || slot.alive.load(Ordering::Relaxed) {
            return false;
        }
        let config = WorkerConfig { bind: self.udp_addr, ..self.config.clone() };
        match start_thread(self.index, config, self.stats.clone()) {
            Ok((_, tx, alive)) => {
                slot.tx = tx;
                slot.alive = alive;
                slot.generation += 1;
                tracing::warn!(
                    worker = self.index,
                    generation = slot.generation,
                    "SFU worker replaced after it died; its participants are rejoining"
                );
                true
            }
            Err(e) => {
                tracing::error!(worker = self.index, error = %e, "cannot restart SFU worker; will retry");
                false
            }
        }
    }

    /// Ends the worker thread for good (shutdown); the monitor does not replace it.
    pub fn stop(&self) {
        let mut slot = self.thread.write().expect("worker slot");
        slot.stopped = true;
        let _ = slot.tx.send(Command::Stop);
    }

    /// Fault injection for tests: makes the worker thread panic.
    #[cfg(feature = "fault-injection")]
    pub fn inject_panic(&self) {
        self.send(Command::Panic);
    }
}

pub type SampleSink = Arc<dyn Fn(Vec<StatsSample>) + Send + Sync>;

#[derive(Clone)]
pub struct WorkerConfig {
    pub bind: SocketAddr,
    pub announce_ip: IpAddr,
    pub ice_disconnect_timeout: Duration,
    /// Where call-quality samples go (the store's writer queue: never blocks); none in benches.
    pub samples: Option<SampleSink>,
    /// Bandwidth estimation on subscribe connections (`--bwe`).
    pub bwe: bool,
    /// Answer as an ICE-lite agent (`--ice-lite`); otherwise a full, controlled ICE agent.
    pub ice_lite: bool,
}

pub fn spawn(index: usize, config: WorkerConfig) -> anyhow::Result<WorkerHandle> {
    let stats = Arc::new(WorkerStats::default());
    let (local, tx, alive) = start_thread(index, config.clone(), stats.clone())?;
    Ok(WorkerHandle {
        index,
        udp_addr: local,
        stats,
        config,
        thread: Arc::new(RwLock::new(WorkerThread { tx, alive, generation: 0, stopped: false })),
    })
}

fn start_thread(
    index: usize,
    config: WorkerConfig,
    stats: Arc<WorkerStats>,
) -> anyhow::Result<(SocketAddr, Sender<Command>, Arc<AtomicBool>)> {
    let socket = UdpSocket::bind(config.bind)
        .map_err(|e| anyhow::anyhow!("SFU worker {index}: cannot bind UDP {}: {e}; pick another --udp-port", config.bind))?;
    let local = socket.local_addr()?;
    size_receive_buffer(index, &socket);
    let announced = SocketAddr::new(config.announce_ip, local.port());
    let candidate = Candidate::host(announced, "udp")?;
    let (tx, rx) = mpsc::channel();
    let alive = Arc::new(AtomicBool::new(true));
    let worker =
        Worker { stats, index, socket, local, candidate, rx, rooms: HashMap::new(), routes: HashMap::new(), config, housekeeping_turns: 0 };
    let flag = alive.clone();
    std::thread::Builder::new().name(format!("sfu-worker-{index}")).spawn(move || {
        let _alive = AliveGuard(flag);
        worker.run();
    })?;
    tracing::info!(worker = index, udp = %local, announced = %announced, "SFU worker started");
    Ok((local, tx, alive))
}

/// What the SFU socket's receive buffer should hold: about 2 s of a busy worker's ingress.
/// Every publisher's packets wait here while the worker thread is not running. With the
/// kernel's default (208 KiB, about 90 datagrams) a starved 2-core host dropped hundreds of
/// them per broadcast run (/proc/net/udp `drops`): each drop is a lost packet the compositor
/// waits for, then a frozen tile until the next keyframe.
pub const RECEIVE_BUFFER_BYTES: usize = 4 << 20;

/// Asks for [`RECEIVE_BUFFER_BYTES`]; the kernel caps it at `net.core.rmem_max`, which the log
/// names when it is too low.
fn size_receive_buffer(index: usize, socket: &UdpSocket) {
    let sock = socket2::SockRef::from(socket);
    let _ = sock.set_recv_buffer_size(RECEIVE_BUFFER_BYTES);
    // Linux reports twice the size asked for (its bookkeeping overhead).
    let got = sock.recv_buffer_size().unwrap_or(0) / 2;
    if got < RECEIVE_BUFFER_BYTES / 2 {
        tracing::warn!(
            worker = index,
            receive_buffer_bytes = got,
            wanted = RECEIVE_BUFFER_BYTES,
            "SFU socket receive buffer is small: packets will be dropped when the host is busy; raise it with `sysctl -w net.core.rmem_max={RECEIVE_BUFFER_BYTES}`"
        );
    } else {
        tracing::debug!(worker = index, receive_buffer_bytes = got, "SFU socket receive buffer");
    }
}

/// Clears the alive flag when the thread ends, also by panic.
struct AliveGuard(Arc<AtomicBool>);
impl Drop for AliveGuard {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Relaxed);
    }
}

/// A room on this worker: its router, and where the router's outputs for the world go.
struct Room {
    router: Router,
    /// When the router next wants `Input::Timeout`.
    wake: Instant,
    /// Each participant's signaling session.
    sessions: HashMap<String, Outbox>,
    /// The broadcast's supervisor, while the room is broadcast.
    feed: Option<UnboundedSender<LegEvent>>,
}

struct Worker {
    index: usize,
    socket: UdpSocket,
    local: SocketAddr,
    candidate: Candidate,
    rx: Receiver<Command>,
    rooms: HashMap<String, Room>,
    /// The room a datagram source was last routed to (shared, so the per-datagram lookup
    /// copies a pointer, not the room's id).
    routes: HashMap<SocketAddr, Arc<str>>,
    config: WorkerConfig,
    stats: Arc<WorkerStats>,
    housekeeping_turns: u64,
}

impl Worker {
    fn run(mut self) {
        let mut buf = vec![0u8; 2048];
        let mut next_gauges = Instant::now() + HOUSEKEEPING_EVERY;
        let mut slow = SlowSteps::new(Instant::now(), ThreadUsage::now());
        loop {
            WorkerStats::add(&self.stats.loop_turns, 1);
            loop {
                match self.rx.try_recv() {
                    Ok(Command::Stop) => {
                        tracing::info!(worker = self.index, rooms = self.rooms.len(), "SFU worker stopped (shutdown)");
                        return;
                    }
                    Ok(cmd) => {
                        // Media stops while a command runs: make slow ones visible.
                        let (kind, started, usage) = (cmd.kind(), Instant::now(), ThreadUsage::now());
                        self.handle_command(cmd);
                        let took = started.elapsed();
                        if took >= SLOW_STEP {
                            let used = ThreadUsage::now().since(usage);
                            tracing::warn!(
                                worker = self.index,
                                command = kind,
                                took_ms = took.as_millis() as u64,
                                cpu_ms = used.cpu_us / 1000,
                                waits = used.waits,
                                preemptions = used.preemptions,
                                why = used.verdict(took),
                                "SFU worker command was slow: no media was forwarded meanwhile"
                            );
                        }
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        tracing::info!(worker = self.index, "SFU worker stopping: the gateway is gone");
                        return;
                    }
                }
            }
            let now = Instant::now();
            self.wake_due(now);
            if now >= next_gauges {
                self.refresh_gauges();
                next_gauges = now + HOUSEKEEPING_EVERY;
                if let Some(s) = slow.report(now, ThreadUsage::now) {
                    tracing::warn!(
                        worker = self.index,
                        datagrams = s.count,
                        worst_ms = s.worst.as_millis() as u64,
                        waited_ms = s.total.as_millis() as u64,
                        window_ms = s.window.as_millis() as u64,
                        cpu_ms = s.used.cpu_us / 1000,
                        waits = s.used.waits,
                        preemptions = s.used.preemptions,
                        why = s.verdict(),
                        "SFU worker: datagrams took long to handle, media waited meanwhile; if starved, give the gateway more CPU (fewer processes on this host, or a higher priority)"
                    );
                }
            }

            let earliest = self.rooms.values().map(|r| r.wake).fold(now + COMMAND_LATENCY, Instant::min).min(next_gauges);
            let wait = earliest.saturating_duration_since(Instant::now()).max(Duration::from_micros(200));
            let _ = self.socket.set_read_timeout(Some(wait));
            match self.socket.recv_from(&mut buf) {
                Ok((n, source)) => {
                    let started = Instant::now();
                    self.route_datagram(&buf[..n], source, started);
                    slow.step(started.elapsed());
                }
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(e) => tracing::debug!(worker = self.index, error = %e, "UDP receive failed"),
            }
        }
    }

    fn new_router(&self, room: &str, now: Instant) -> Router {
        Router::new(
            room.to_owned(),
            RouterConfig {
                local: self.local,
                candidate: self.candidate.clone(),
                ice_lite: self.config.ice_lite,
                bwe: self.config.bwe,
                ice_disconnect_timeout: self.config.ice_disconnect_timeout,
                seed: rand::random(),
                unix_now: crate::clock::unix_now,
            },
            now,
        )
    }

    /// The room, made on first use.
    fn room(&mut self, room: &str) -> &mut Room {
        if !self.rooms.contains_key(room) {
            let now = Instant::now();
            let router = self.new_router(room, now);
            self.rooms.insert(room.to_owned(), Room { router, wake: now, sessions: HashMap::new(), feed: None });
        }
        self.rooms.get_mut(room).expect("just made")
    }

    /// Hands a command to the room's router and carries out what it says.
    fn tell(&mut self, room: &str, now: Instant, command: RouterCommand) {
        if let Some(r) = self.rooms.get_mut(room) {
            r.router.handle_input(Input::Command { at: now, command });
        }
        self.carry_out(room);
    }

    fn handle_command(&mut self, cmd: Command) {
        let now = Instant::now();
        match cmd {
            Command::Join { room, info, out } => {
                self.room(&room).sessions.insert(info.id.clone(), out);
                self.tell(&room, now, RouterCommand::Join { info });
            }
            Command::Signal { room, participant, msg } => self.tell(&room, now, RouterCommand::Signal { participant, msg }),
            Command::Leave { room, participant, done } => {
                self.tell(&room, now, RouterCommand::Leave { participant });
                // Its last quality sample is queued by now.
                if let Some(done) = done {
                    let _ = done.send(());
                }
            }
            Command::Remove { room, participant, reason, reply } => {
                let found = self.rooms.get(&room).is_some_and(|r| r.router.contains(&participant));
                self.tell(&room, now, RouterCommand::Remove { participant, reason });
                let _ = reply.send(found);
            }
            Command::StartBroadcast { room, events } => {
                self.room(&room).feed = Some(events);
                self.tell(&room, now, RouterCommand::StartBroadcast);
            }
            Command::StopBroadcast { room } => {
                self.tell(&room, now, RouterCommand::StopBroadcast);
                if let Some(r) = self.rooms.get_mut(&room) {
                    r.feed = None;
                }
                self.drop_if_idle(&room);
            }
            Command::BroadcastState { room, state } => self.tell(&room, now, RouterCommand::BroadcastState { state }),
            Command::AttachLeg { room, producer_id, rtp_to, rtcp_to } => {
                self.tell(&room, now, RouterCommand::AttachLeg { producer_id, rtp_to, rtcp_to })
            }
            Command::LegNeedsKeyframe { room, producer_id } => self.tell(&room, now, RouterCommand::LegNeedsKeyframe { producer_id }),
            Command::LegTile { room, producer_id, height } => self.tell(&room, now, RouterCommand::LegTile { producer_id, height }),
            #[cfg(feature = "fault-injection")]
            Command::Panic => panic!("SFU worker {}: fault injected", self.index),
            // Handled by the run loop before dispatch.
            Command::Stop => {}
            #[cfg(feature = "fault-injection")]
            Command::NetFault { room, participant, until, loss_per_mille, only, reply } => {
                let found = self.rooms.get_mut(&room).is_some_and(|r| r.router.inject_net_fault(&participant, until, loss_per_mille, only));
                if found {
                    tracing::warn!(worker = self.index, room = %room, participant = %participant, loss_per_mille, "fault injection: dropping this participant's media");
                }
                let _ = reply.send(found);
            }
            Command::Snapshot { room, reply } => {
                let snap = self.rooms.get(&room).map(|r| {
                    let (participants, producers) = r.router.snapshot();
                    RoomSnapshot { participants, producers }
                });
                let _ = reply.send(snap.unwrap_or_default());
            }
        }
    }

    /// Drains the room's router: datagrams to the socket, messages to sessions, events to the
    /// broadcast, samples to the store; notes when it wants to be woken.
    fn carry_out(&mut self, room_id: &str) {
        let Some(room) = self.rooms.get_mut(room_id) else { return };
        let mut samples = Vec::new();
        loop {
            match room.router.poll_output() {
                Output::Transmit { to, contents } => {
                    if let Err(e) = self.socket.send_to(&contents, to) {
                        // A full socket buffer drops this datagram; NACK/RTX and keyframe requests repair it.
                        tracing::debug!(error = %e, %to, "UDP send failed");
                    }
                }
                Output::Signal { participant, msg } => {
                    // A closed outbox means the session is ending (its `Leave` comes next); a
                    // full one, that its client stopped reading (the session closes itself).
                    if let Some(out) = room.sessions.get(&participant) {
                        let _ = out.send(msg);
                    }
                }
                Output::Feed(event) => {
                    if let Some(feed) = &room.feed {
                        let _ = feed.send(event);
                    }
                }
                Output::Sample { participant, sample } => samples.push(stats_sample(room_id, &participant, sample)),
                Output::Departed { participant, sample, .. } => {
                    room.sessions.remove(&participant);
                    samples.extend(sample.map(|s| stats_sample(room_id, &participant, s)));
                }
                Output::Timeout(at) => {
                    room.wake = at;
                    break;
                }
            }
        }
        self.stats.absorb(&room.router.take_counters());
        self.send_samples(samples);
        self.drop_if_idle(room_id);
    }

    /// Drops a room with nobody in it and no broadcast.
    fn drop_if_idle(&mut self, room: &str) {
        if self.rooms.get(room).is_some_and(|r| r.router.is_idle()) {
            self.rooms.remove(room);
            self.routes.retain(|_, r| &**r != room);
        }
    }

    /// Gives time to every room whose router asked to be woken by now.
    fn wake_due(&mut self, now: Instant) {
        let due: Vec<String> = self.rooms.iter().filter(|(_, r)| r.wake <= now).map(|(id, _)| id.clone()).collect();
        for id in due {
            if let Some(r) = self.rooms.get_mut(&id) {
                r.router.handle_input(Input::Timeout(now));
            }
            self.carry_out(&id);
        }
    }

    fn send_samples(&self, samples: Vec<StatsSample>) {
        if let (Some(sink), false) = (&self.config.samples, samples.is_empty()) {
            sink(samples);
        }
    }

    fn refresh_gauges(&mut self) {
        // The loss and RTT gauges are the worst seen in a 5 s window (stats arrive once a second).
        self.housekeeping_turns += 1;
        if self.housekeeping_turns.is_multiple_of(10) {
            WorkerStats::set(&self.stats.ingress_loss_ppm, 0);
            WorkerStats::set(&self.stats.rtt_max_us, 0);
        }
        let s = &self.stats;
        let participants = self.rooms.values().flat_map(|r| r.router.participants().iter());
        WorkerStats::set(&s.rooms, self.rooms.len() as u64);
        WorkerStats::set(&s.participants, participants.clone().count() as u64);
        WorkerStats::set(&s.producers, participants.clone().map(|p| p.producers.len() as u64).sum());
        WorkerStats::set(&s.consumers, participants.map(|p| p.consumers.len() as u64).sum());
        WorkerStats::set(&s.legs, self.rooms.values().map(|r| r.router.leg_count() as u64).sum());
    }

    fn route_datagram(&mut self, bytes: &[u8], source: SocketAddr, now: Instant) {
        WorkerStats::add(&self.stats.datagrams_in, 1);
        let input = || Input::Datagram { at: now, source, contents: bytes };
        // Fast path: the room that last took a datagram from this address.
        if let Some(room) = self.routes.get(&source).cloned() {
            if self.rooms.get_mut(&*room).is_some_and(|r| r.router.handle_input(input())) {
                self.carry_out(&room);
                return;
            }
        }
        // Slow path (a new address, e.g. the first STUN binding request): ask every room.
        let found = self.rooms.iter_mut().find_map(|(id, r)| r.router.handle_input(input()).then(|| id.clone()));
        match found {
            Some(room) => {
                self.carry_out(&room);
                self.routes.insert(source, room.into());
            }
            None => {
                WorkerStats::add(&self.stats.datagrams_unrouted, 1);
                tracing::trace!(worker = self.index, %source, "datagram for no known transport dropped");
            }
        }
    }
}

/// A room's quality sample as the store keeps it (wall-clock milliseconds).
fn stats_sample(room: &str, participant: &str, s: QualitySample) -> StatsSample {
    let at_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    StatsSample {
        room: room.to_owned(),
        participant: participant.to_owned(),
        at_ms,
        bitrate_bps: s.bitrate_bps,
        loss: s.loss,
        rtt_ms: s.rtt_ms,
    }
}
