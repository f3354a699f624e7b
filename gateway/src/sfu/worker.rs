//! An SFU worker: one thread owning one UDP socket and the rooms pinned to it.
//!
//! The loop: apply commands from signaling, drive every peer that has work (forwarding the
//! events they raise, which queues RTP on other peers, which are then driven in turn),
//! then wait for the next datagram no longer than the earliest peer deadline.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Input, Rtc, RtcConfig};
use tokio::sync::{mpsc::UnboundedSender, oneshot};

#[cfg(feature = "fault-injection")]
use super::netfault::{NetFault, Way};
use super::quality::QualitySample;
use super::room::{LegEvent, Room};
use super::stats::WorkerStats;
use crate::outbox::Outbox;
use crate::protocol::{ClientMsg, ParticipantInfo, PcRole, ProducerInfo, ServerMsg};
use crate::store::StatsSample;

/// Longest wait for a datagram before commands are looked at again.
const COMMAND_LATENCY: Duration = Duration::from_millis(5);
const HOUSEKEEPING_EVERY: Duration = Duration::from_millis(500);
/// A command that holds the worker this long is logged (media waits meanwhile).
const SLOW_COMMAND: Duration = Duration::from_millis(20);

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
    let worker = Worker {
        stats,
        index,
        socket,
        local,
        candidate,
        rx,
        rooms: HashMap::new(),
        routes: HashMap::new(),
        config,
        events: Vec::new(),
        housekeeping_turns: 0,
    };
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

/// Where a datagram source was last seen: (room, participant, which transport).
type Route = (String, String, PcRole);

struct Worker {
    index: usize,
    socket: UdpSocket,
    local: SocketAddr,
    candidate: Candidate,
    rx: Receiver<Command>,
    rooms: HashMap<String, Room>,
    routes: HashMap<SocketAddr, Route>,
    config: WorkerConfig,
    events: Vec<str0m::Event>,
    stats: Arc<WorkerStats>,
    housekeeping_turns: u64,
}

pub fn rtc_config(ice_lite: bool) -> RtcConfig {
    Rtc::builder()
        .set_rtp_mode(true)
        .set_ice_lite(ice_lite)
        .clear_codecs()
        .enable_opus(true, false)
        .enable_vp8(true)
        .enable_h264(true)
        // Per-stream stats (loss, NACKs) once a second, for metrics.
        .set_stats_interval(Some(Duration::from_secs(1)))
}

impl Worker {
    fn run(mut self) {
        let mut buf = vec![0u8; 2048];
        let mut next_housekeeping = Instant::now() + HOUSEKEEPING_EVERY;
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
                        let (kind, started) = (cmd.kind(), Instant::now());
                        self.handle_command(cmd);
                        let took = started.elapsed();
                        if took >= SLOW_COMMAND {
                            tracing::warn!(
                                worker = self.index,
                                command = kind,
                                took_ms = took.as_millis() as u64,
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
            if now >= next_housekeeping {
                self.housekeeping(now);
                next_housekeeping = now + HOUSEKEEPING_EVERY;
            }
            self.drive_all(now);

            let wake = self.earliest_deadline().min(now + COMMAND_LATENCY).min(next_housekeeping);
            let wait = wake.saturating_duration_since(Instant::now()).max(Duration::from_micros(200));
            let _ = self.socket.set_read_timeout(Some(wait));
            match self.socket.recv_from(&mut buf) {
                Ok((n, source)) => {
                    let started = Instant::now();
                    self.route_datagram(&buf[..n], source);
                    let took = started.elapsed();
                    if took >= SLOW_COMMAND {
                        tracing::warn!(worker = self.index, took_ms = took.as_millis() as u64, %source, "SFU worker: one datagram took long to handle (a DTLS handshake on a starved host?); media waited meanwhile");
                    }
                }
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(e) => tracing::debug!(worker = self.index, error = %e, "UDP receive failed"),
            }
        }
    }

    fn handle_command(&mut self, cmd: Command) {
        let now = Instant::now();
        match cmd {
            Command::Join { room, info, out } => {
                // The subscribe connection estimates its bandwidth (TWCC), so simulcast layers
                // can be chosen to fit; it starts at 1 Mbit/s and probes upward.
                let mut config = rtc_config(self.config.ice_lite);
                if self.config.bwe {
                    config = config.enable_bwe(Some(str0m::bwe::Bitrate::kbps(1000)));
                }
                let mut rtc = config.build(now);
                rtc.add_local_candidate(self.candidate.clone());
                tracing::info!(worker = self.index, room = %room, participant = %info.id, "participant joined");
                let r = self.rooms.entry(room.clone()).or_insert_with(|| Room::new(room.clone()));
                r.join(info, out, rtc, now);
                r.negotiate(&self.candidate);
            }
            Command::Signal { room, participant, msg } => {
                let Some(r) = self.rooms.get_mut(&room) else { return };
                match msg {
                    ClientMsg::PublishOffer { sdp } => {
                        let candidate = self.candidate.clone();
                        let ice_lite = self.config.ice_lite;
                        r.publish_offer(
                            &participant,
                            &sdp,
                            || {
                                let mut rtc = rtc_config(ice_lite).build(now);
                                rtc.add_local_candidate(candidate);
                                rtc
                            },
                            &self.candidate,
                            now,
                        )
                    }
                    ClientMsg::SubscribeAnswer { sdp } => r.subscribe_answer(&participant, &sdp, now),
                    ClientMsg::Candidate { pc, candidate, .. } => r.add_remote_candidate(&participant, pc, &candidate),
                    ClientMsg::Chat { .. } | ClientMsg::Reaction { .. } | ClientMsg::MediaState { .. } => r.relay(&participant, &msg),
                    ClientMsg::LayerPreference { producer_id, max_height } => {
                        r.set_layer_preference(&participant, &producer_id, max_height)
                    }
                    ClientMsg::IceRestart => r.restart_subscribe_ice(&participant),
                    // Answered by the signaling session itself.
                    ClientMsg::RefreshToken | ClientMsg::RemoveParticipant { .. } => {}
                    ClientMsg::Leave => {
                        self.remove_participant(&room, &participant);
                        return;
                    }
                }
                if let Some(r) = self.rooms.get_mut(&room) {
                    r.negotiate(&self.candidate);
                }
            }
            Command::Leave { room, participant, done } => {
                self.remove_participant(&room, &participant);
                if let Some(done) = done {
                    let _ = done.send(());
                }
            }
            Command::Remove { room, participant, reason, reply } => {
                let found = self.rooms.get(&room).and_then(|r| r.get(&participant)).map(|p| p.send(ServerMsg::Removed { reason }));
                if found.is_some() {
                    tracing::info!(worker = self.index, room = %room, participant = %participant, "participant removed by the host");
                    self.remove_participant(&room, &participant);
                }
                let _ = reply.send(found.is_some());
            }
            Command::StartBroadcast { room, events } => {
                self.rooms.entry(room.clone()).or_insert_with(|| Room::new(room.clone())).start_broadcast(events);
            }
            Command::StopBroadcast { room } => {
                if let Some(r) = self.rooms.get_mut(&room) {
                    r.stop_broadcast();
                    if r.participants.is_empty() {
                        self.rooms.remove(&room);
                    }
                }
            }
            Command::BroadcastState { room, state } => {
                if let Some(r) = self.rooms.get_mut(&room) {
                    r.set_broadcast_state(state);
                }
            }
            Command::AttachLeg { room, producer_id, rtp_to, rtcp_to } => {
                if let Some(r) = self.rooms.get_mut(&room) {
                    r.attach_leg(&producer_id, rtp_to, rtcp_to, now, &self.stats);
                }
            }
            Command::LegNeedsKeyframe { room, producer_id } => {
                if let Some(r) = self.rooms.get_mut(&room) {
                    r.leg_needs_keyframe(&producer_id, now, &self.stats);
                }
            }
            Command::LegTile { room, producer_id, height } => {
                if let Some(r) = self.rooms.get_mut(&room) {
                    r.set_leg_tile(&producer_id, height);
                }
            }
            #[cfg(feature = "fault-injection")]
            Command::Panic => panic!("SFU worker {}: fault injected", self.index),
            // Handled by the run loop before dispatch.
            Command::Stop => {}
            #[cfg(feature = "fault-injection")]
            Command::NetFault { room, participant, until, loss_per_mille, only, reply } => {
                let p = self.rooms.get_mut(&room).and_then(|r| r.get_mut(&participant));
                let found = p.is_some();
                if let Some(p) = p {
                    tracing::warn!(worker = self.index, room = %room, participant = %participant, loss_per_mille, "fault injection: dropping this participant's media");
                    p.subscribe.fault = Some(NetFault::loss(until, loss_per_mille, 0x5eed_0001).only(only));
                    if let Some(publish) = p.publish.as_mut() {
                        publish.fault = Some(NetFault::loss(until, loss_per_mille, 0x5eed_0002).only(only));
                    }
                }
                let _ = reply.send(found);
            }
            Command::Snapshot { room, reply } => {
                let snap = self.rooms.get(&room).map(|r| {
                    let (participants, producers) = r.snapshot();
                    RoomSnapshot { participants, producers }
                });
                let _ = reply.send(snap.unwrap_or_default());
            }
        }
    }

    fn remove_participant(&mut self, room: &str, participant: &str) {
        let Some(r) = self.rooms.get_mut(room) else { return };
        let mut last_sample = None;
        if let Some(mut gone) = r.remove(participant) {
            tracing::info!(worker = self.index, room, participant, "participant left");
            // The last partial interval, so short calls have a sample too.
            last_sample = gone.quality.sample(Instant::now(), true);
        }
        r.negotiate(&self.candidate);
        if r.participants.is_empty() && !r.is_broadcasting() {
            self.rooms.remove(room);
        }
        self.routes.retain(|_, (rm, p, _)| !(rm == room && p == participant));
        if let Some(s) = last_sample {
            self.send_samples(vec![stats_sample(room, participant, s)]);
        }
    }

    fn send_samples(&self, samples: Vec<StatsSample>) {
        if let (Some(sink), false) = (&self.config.samples, samples.is_empty()) {
            sink(samples);
        }
    }

    fn housekeeping(&mut self, now: Instant) {
        let timeout = self.config.ice_disconnect_timeout;
        let mut removals = Vec::new();
        let mut samples = Vec::new();
        for (id, room) in &mut self.rooms {
            let effects = room.housekeeping(now, timeout);
            samples.extend(effects.samples.into_iter().map(|(p, s)| stats_sample(id, &p, s)));
            for (participant, msg) in effects.remove {
                if let Some(p) = room.get_mut(&participant) {
                    p.send(msg);
                }
                removals.push((id.clone(), participant));
            }
        }
        self.flush_outboxes();
        self.refresh_gauges();
        self.send_samples(samples);
        for (room, participant) in removals {
            tracing::warn!(worker = self.index, room = %room, participant = %participant, "removing participant: media connection lost");
            self.remove_participant(&room, &participant);
        }
    }

    /// Drives every peer with work until none raises events any more.
    fn drive_all(&mut self, now: Instant) {
        let mut pending: Vec<(String, String, PcRole, str0m::Event)> = Vec::new();
        for _round in 0..64 {
            for (room_id, room) in &mut self.rooms {
                for p in &mut room.participants {
                    for role in [PcRole::Publish, PcRole::Subscribe] {
                        let Some(peer) = p.peer_mut(role) else { continue };
                        if !peer.needs_drive(now) {
                            continue;
                        }
                        peer.drive(now, &self.socket, &mut self.events);
                        for e in self.events.drain(..) {
                            pending.push((room_id.clone(), p.info.id.clone(), role, e));
                        }
                    }
                }
            }
            if pending.is_empty() {
                return;
            }
            for (room_id, participant, role, event) in pending.drain(..) {
                if let Some(room) = self.rooms.get_mut(&room_id) {
                    room.on_event(&participant, role, event, now, &self.stats);
                }
            }
            for room in self.rooms.values_mut() {
                room.negotiate(&self.candidate);
            }
            self.flush_outboxes();
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
        let participants = self.rooms.values().flat_map(|r| r.participants.iter());
        WorkerStats::set(&s.rooms, self.rooms.len() as u64);
        WorkerStats::set(&s.participants, participants.clone().count() as u64);
        WorkerStats::set(&s.producers, participants.clone().map(|p| p.producers.len() as u64).sum());
        WorkerStats::set(&s.consumers, participants.map(|p| p.consumers.len() as u64).sum());
        WorkerStats::set(&s.legs, self.rooms.values().map(|r| r.leg_count() as u64).sum());
    }

    fn flush_outboxes(&mut self) {
        for room in self.rooms.values_mut() {
            WorkerStats::add(&self.stats.leg_packets_out, room.outbox.len() as u64);
            for (to, datagram) in room.outbox.drain(..) {
                if let Err(e) = self.socket.send_to(&datagram, to) {
                    tracing::debug!(error = %e, %to, "plain RTP send failed");
                }
            }
        }
    }

    fn earliest_deadline(&self) -> Instant {
        let far = Instant::now() + Duration::from_secs(1);
        self.rooms
            .values()
            .flat_map(|r| r.participants.iter())
            .flat_map(|p| p.publish.iter().chain(std::iter::once(&p.subscribe)))
            .map(|peer| peer.deadline())
            .fold(far, Instant::min)
    }

    fn route_datagram(&mut self, bytes: &[u8], source: SocketAddr) {
        WorkerStats::add(&self.stats.datagrams_in, 1);
        let Ok(contents) = bytes.try_into() else { return };
        // One clock read per datagram: str0m's input and the (test-only) fault check share it.
        let now = Instant::now();
        let input = Input::Receive(now, Receive { proto: Protocol::Udp, source, destination: self.local, contents });

        // Fast path: the transport that last received from this address.
        if let Some((room, participant, role)) = self.routes.get(&source).cloned() {
            if let Some(peer) = self.rooms.get_mut(&room).and_then(|r| r.get_mut(&participant)).and_then(|p| p.peer_mut(role)) {
                if peer.rtc.accepts(&input) {
                    if !peer.fault_drops_incoming(now) {
                        peer.handle_datagram(input);
                    }
                    return;
                }
            }
        }
        // Slow path (new address, e.g. the first STUN binding request): ask every transport.
        for (room_id, room) in &mut self.rooms {
            for p in &mut room.participants {
                for role in [PcRole::Publish, PcRole::Subscribe] {
                    let Some(peer) = p.peer_mut(role) else { continue };
                    if peer.rtc.accepts(&input) {
                        if !peer.fault_drops_incoming(now) {
                            peer.handle_datagram(input);
                        }
                        self.routes.insert(source, (room_id.clone(), p.info.id.clone(), role));
                        return;
                    }
                }
            }
        }
        WorkerStats::add(&self.stats.datagrams_unrouted, 1);
        tracing::trace!(worker = self.index, %source, "datagram for no known transport dropped");
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
