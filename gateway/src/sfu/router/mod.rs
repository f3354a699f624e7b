//! A room's media router (a mediasoup Router), sans-IO in the way str0m is: it owns the room's
//! participants, their producers (tracks they publish), consumers (remote tracks they receive)
//! and the compositor's legs, and it never touches a socket, a channel, an atomic, the clock or
//! a random source of its own.
//!
//! Inputs go in through [`Router::handle_input`]: a datagram with its addresses, a command from
//! signaling or the broadcast, or the passing of time. Outputs come out of
//! [`Router::poll_output`] until it says when it next wants to be woken: datagrams to send,
//! signaling messages per participant, events for the broadcast, call-quality samples and
//! departures. The worker thread (`sfu::worker`) is the only place with a socket; tests drive
//! the router in memory with str0m clients and simulated time.
//!
//! By concept: `membership` (join, leave, producers appearing and going), `signaling` (SDP and
//! candidates), `events` (what each str0m connection reports), `forwarding` (the per-packet
//! path and keyframe requests), `bandwidth` (simulcast layers within each subscriber's
//! estimate), `feed` (what the broadcast's compositor gets: events and plain-RTP legs).

mod bandwidth;
mod events;
mod feed;
mod forwarding;
mod membership;
mod participant;
mod signaling;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Rtc, RtcConfig};

pub use feed::LegEvent;
pub use participant::{Consumer, Participant, Producer};

use super::leg::Leg;
use super::quality::QualitySample;
use crate::protocol::{ClientMsg, ErrorCode, ParticipantInfo, PcRole, ServerMsg};

/// How often the router looks at bandwidth, legs' sender reports, quality and lost connections.
pub const HOUSEKEEPING_EVERY: Duration = Duration::from_millis(500);

/// Rounds of "drive the connections, handle their events" per input: forwarding queues RTP on
/// other connections, which are driven in the next round. A bound, never reached in practice.
const MAX_DRIVE_ROUNDS: usize = 64;

/// The str0m configuration of every connection: RTP mode (the router forwards packets, it
/// does not depacketize), Opus, VP8 and H.264, stats once a second for metrics.
pub fn rtc_config(ice_lite: bool) -> RtcConfig {
    Rtc::builder()
        .set_rtp_mode(true)
        .set_ice_lite(ice_lite)
        .clear_codecs()
        .enable_opus(true, false)
        .enable_vp8(true)
        .enable_h264(true)
        .set_stats_interval(Some(Duration::from_secs(1)))
}

/// What the router is told at creation (everything it would otherwise read from the world).
#[derive(Clone)]
pub struct RouterConfig {
    /// The worker's socket address, the destination of every datagram it hands in.
    pub local: SocketAddr,
    /// Our one ICE candidate (the announced address of that socket).
    pub candidate: Candidate,
    /// Answer as an ICE-lite agent; otherwise a full, controlled ICE agent.
    pub ice_lite: bool,
    /// Bandwidth estimation (TWCC) on subscribe connections.
    pub bwe: bool,
    /// A participant whose ICE stays disconnected this long is removed.
    pub ice_disconnect_timeout: Duration,
    /// Seeds the router's random numbers (consumers' first sequence numbers).
    pub seed: u64,
    /// Wall-clock seconds since the Unix epoch (chat timestamps).
    pub unix_now: fn() -> u64,
}

/// One input for the router.
pub enum Input<'a> {
    /// A datagram that arrived on the worker's socket at `at` from `source`.
    Datagram { at: Instant, source: SocketAddr, contents: &'a [u8] },
    /// A command from signaling or the broadcast, at `at`.
    Command { at: Instant, command: RouterCommand },
    /// Time passed: connections' timers, housekeeping.
    Timeout(Instant),
}

/// What signaling and the broadcast ask of a room.
pub enum RouterCommand {
    Join {
        info: ParticipantInfo,
    },
    /// A validated client message (the session answers some itself; those are ignored here).
    Signal {
        participant: String,
        msg: ClientMsg,
    },
    Leave {
        participant: String,
    },
    /// The host removes a participant: it is told why, then dropped.
    Remove {
        participant: String,
        reason: String,
    },
    /// Start (or restart) feeding the broadcast: it hears about everyone present.
    StartBroadcast,
    StopBroadcast,
    BroadcastState {
        state: String,
    },
    AttachLeg {
        producer_id: String,
        rtp_to: SocketAddr,
        rtcp_to: SocketAddr,
    },
    /// The compositor cannot decode this producer's leg and asks for a keyframe.
    LegNeedsKeyframe {
        producer_id: String,
    },
    /// The compositor draws this producer's video in a tile this many pixels high.
    LegTile {
        producer_id: String,
        height: u32,
    },
}

/// Why a participant is no longer in the room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Departure {
    Left,
    RemovedByHost,
    /// Its media connection was lost too long, or failed.
    ConnectionLost,
}

/// One output of the router.
#[derive(Debug)]
pub enum Output {
    /// A datagram for the worker's socket.
    Transmit { to: SocketAddr, contents: Vec<u8> },
    /// A signaling message for one participant's session.
    Signal { participant: String, msg: ServerMsg },
    /// An event for the room's broadcast (only while one is fed).
    Feed(LegEvent),
    /// A call-quality sample that came due.
    Sample { participant: String, sample: QualitySample },
    /// A participant is gone (its last signaling messages came before this), with its last
    /// partial quality sample.
    Departed { participant: String, why: Departure, sample: Option<QualitySample> },
    /// Nothing more now: hand in `Input::Timeout` at this instant at the latest.
    Timeout(Instant),
}

/// Counters the router adds to as it works; the worker moves them into its shared metrics.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Counters {
    pub rtp_packets_in: u64,
    pub rtp_bytes_in: u64,
    pub rtp_packets_out: u64,
    pub rtp_bytes_out: u64,
    pub leg_packets_out: u64,
    /// Keyframe requests sent to publishers (PLI or FIR), and of those the FIRs.
    pub keyframe_requests: u64,
    pub keyframe_requests_fir: u64,
    pub nacks_sent: u64,
    pub nacks_received: u64,
    /// Worst incoming loss reported since the last `take_counters`, parts per million.
    pub ingress_loss_ppm: u64,
    /// Worst round-trip time since the last `take_counters`, µs.
    pub rtt_max_us: u64,
}

/// Random numbers from a seed (splitmix64): enough for sequence-number starts, reproducible
/// in tests.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

pub struct Router {
    pub id: String,
    config: RouterConfig,
    participants: Vec<Participant>,
    /// Whether the broadcast is fed (`Output::Feed`).
    broadcasting: bool,
    legs: Vec<Leg>,
    /// Tile height per producer, as the compositor last laid it out (kept for legs attached later).
    leg_tiles: HashMap<String, u32>,
    broadcast_state: String,
    /// Outputs not yet polled (signaling messages wait in their participant until polled).
    out: VecDeque<Output>,
    counters: Counters,
    rng: Rng,
    /// Where a datagram source was last seen: which participant's which connection.
    routes: HashMap<SocketAddr, (String, PcRole)>,
    next_housekeeping: Instant,
    /// Reused per drive round: (participant, connection, event).
    events: Vec<(usize, PcRole, str0m::Event)>,
    scratch: Vec<str0m::Event>,
}

impl Router {
    /// A router made at `now` (its first housekeeping is due one interval later).
    pub fn new(id: String, config: RouterConfig, now: Instant) -> Self {
        let rng = Rng(config.seed);
        Self {
            id,
            config,
            participants: Vec::new(),
            broadcasting: false,
            legs: Vec::new(),
            leg_tiles: HashMap::new(),
            broadcast_state: "stopped".into(),
            out: VecDeque::new(),
            counters: Counters::default(),
            rng,
            routes: HashMap::new(),
            next_housekeeping: now + HOUSEKEEPING_EVERY,
            events: Vec::new(),
            scratch: Vec::new(),
        }
    }

    /// Handles one input. A datagram that belongs to none of this room's connections is
    /// refused (`false`): the worker tries it on another room.
    pub fn handle_input(&mut self, input: Input) -> bool {
        let now = match &input {
            Input::Datagram { at, .. } | Input::Command { at, .. } => *at,
            Input::Timeout(now) => *now,
        };
        let accepted = match input {
            Input::Datagram { at, source, contents } => self.receive(at, source, contents),
            Input::Command { at, command } => {
                self.command(at, command);
                true
            }
            Input::Timeout(now) => {
                if now >= self.next_housekeeping {
                    self.next_housekeeping = now + HOUSEKEEPING_EVERY;
                    self.housekeeping(now);
                }
                true
            }
        };
        if accepted {
            self.drive(now);
        }
        accepted
    }

    /// The next output; `Output::Timeout` when there is nothing more for now.
    pub fn poll_output(&mut self) -> Output {
        if let Some(o) = self.out.pop_front() {
            return o;
        }
        for p in &mut self.participants {
            if let Some(msg) = p.signals.pop_front() {
                return Output::Signal { participant: p.info.id.clone(), msg };
            }
        }
        Output::Timeout(self.next_timeout())
    }

    /// The counters since the last call.
    pub fn take_counters(&mut self) -> Counters {
        std::mem::take(&mut self.counters)
    }

    /// No participants and no broadcast: the room can be dropped.
    pub fn is_idle(&self) -> bool {
        self.participants.is_empty() && !self.broadcasting
    }

    pub fn contains(&self, participant: &str) -> bool {
        self.index_of(participant).is_some()
    }

    pub fn participants(&self) -> &[Participant] {
        &self.participants
    }

    pub fn leg_count(&self) -> usize {
        self.legs.len()
    }

    fn next_timeout(&self) -> Instant {
        let peers = self.participants.iter().flat_map(|p| p.publish.iter().chain(std::iter::once(&p.subscribe)));
        peers.filter(|peer| peer.rtc.is_alive()).map(|peer| peer.deadline()).fold(self.next_housekeeping, Instant::min)
    }

    fn command(&mut self, now: Instant, command: RouterCommand) {
        match command {
            RouterCommand::Join { info } => {
                // The subscribe connection estimates its bandwidth (TWCC), so simulcast layers
                // can be chosen to fit; it starts at 1 Mbit/s and probes upward.
                let mut config = rtc_config(self.config.ice_lite);
                if self.config.bwe {
                    config = config.enable_bwe(Some(str0m::bwe::Bitrate::kbps(1000)));
                }
                let mut rtc = config.build(now);
                rtc.add_local_candidate(self.config.candidate.clone());
                tracing::info!(room = %self.id, participant = %info.id, "participant joined");
                self.join(info, rtc, now);
            }
            RouterCommand::Signal { participant, msg } => match msg {
                ClientMsg::PublishOffer { sdp } => self.publish_offer(&participant, &sdp, now),
                ClientMsg::SubscribeAnswer { sdp } => self.subscribe_answer(&participant, &sdp, now),
                ClientMsg::Candidate { pc, candidate, .. } => self.add_remote_candidate(&participant, pc, &candidate),
                ClientMsg::Chat { .. } | ClientMsg::Reaction { .. } | ClientMsg::MediaState { .. } => self.relay(&participant, &msg),
                ClientMsg::LayerPreference { producer_id, max_height } => self.set_layer_preference(&participant, &producer_id, max_height),
                ClientMsg::IceRestart => self.restart_subscribe_ice(&participant),
                // Answered by the signaling session itself.
                ClientMsg::RefreshToken | ClientMsg::RemoveParticipant { .. } => {}
                ClientMsg::Leave => self.depart(&participant, Departure::Left, now),
            },
            RouterCommand::Leave { participant } => self.depart(&participant, Departure::Left, now),
            RouterCommand::Remove { participant, reason } => {
                if let Some(p) = self.get_mut(&participant) {
                    p.send(ServerMsg::Removed { reason });
                    tracing::info!(room = %self.id, participant = %participant, "participant removed by the host");
                    self.depart(&participant, Departure::RemovedByHost, now);
                }
            }
            RouterCommand::StartBroadcast => self.start_broadcast(),
            RouterCommand::StopBroadcast => self.stop_broadcast(),
            RouterCommand::BroadcastState { state } => self.set_broadcast_state(state),
            RouterCommand::AttachLeg { producer_id, rtp_to, rtcp_to } => self.attach_leg(&producer_id, rtp_to, rtcp_to, now),
            RouterCommand::LegNeedsKeyframe { producer_id } => self.leg_needs_keyframe(&producer_id, now),
            RouterCommand::LegTile { producer_id, height } => self.set_leg_tile(&producer_id, height),
        }
        self.negotiate();
    }

    /// Hands a datagram to the connection it belongs to; false if none of ours takes it.
    fn receive(&mut self, at: Instant, source: SocketAddr, contents: &[u8]) -> bool {
        let Ok(contents) = contents.try_into() else { return false };
        let input = str0m::Input::Receive(at, Receive { proto: Protocol::Udp, source, destination: self.config.local, contents });
        // Fast path: the connection that last received from this address.
        if let Some((participant, role)) = self.routes.get(&source) {
            let role = *role;
            if let Some(peer) = self.participants.iter_mut().find(|p| p.info.id == *participant).and_then(|p| p.peer_mut(role)) {
                if peer.rtc.accepts(&input) {
                    if !peer.fault_drops_incoming(at) {
                        peer.handle_datagram(input);
                    }
                    return true;
                }
            }
        }
        // Slow path (a new address, e.g. the first STUN binding request): ask every connection.
        for p in &mut self.participants {
            for role in [PcRole::Publish, PcRole::Subscribe] {
                let Some(peer) = p.peer_mut(role) else { continue };
                if peer.rtc.accepts(&input) {
                    if !peer.fault_drops_incoming(at) {
                        peer.handle_datagram(input);
                    }
                    self.routes.insert(source, (p.info.id.clone(), role));
                    return true;
                }
            }
        }
        false
    }

    /// Drives every connection with work until none raises events any more.
    fn drive(&mut self, now: Instant) {
        let mut events = std::mem::take(&mut self.events);
        for _round in 0..MAX_DRIVE_ROUNDS {
            let out = &mut self.out;
            let mut transmit = |to, contents| out.push_back(Output::Transmit { to, contents });
            for (i, p) in self.participants.iter_mut().enumerate() {
                for role in [PcRole::Publish, PcRole::Subscribe] {
                    let Some(peer) = p.peer_mut(role) else { continue };
                    if !peer.needs_drive(now) {
                        continue;
                    }
                    peer.drive(now, &mut transmit, &mut self.scratch);
                    events.extend(self.scratch.drain(..).map(|e| (i, role, e)));
                }
            }
            if events.is_empty() {
                break;
            }
            for (i, role, event) in events.drain(..) {
                // Indices stay valid within a round: nobody joins or leaves while events are
                // handled (a lost connection is removed by housekeeping).
                let Some(id) = self.participants.get(i).map(|p| p.info.id.clone()) else { continue };
                self.on_event(&id, role, event, now);
            }
            self.negotiate();
        }
        self.events = events;
    }

    /// Periodic checks: bandwidth shares, legs' sender reports, quality samples, and
    /// participants whose ICE stayed lost too long or whose connections died.
    fn housekeeping(&mut self, now: Instant) {
        self.allocate_bandwidth(now);
        for leg in &mut self.legs {
            if let Some(sr) = leg.sender_report_due(now) {
                self.out.push_back(Output::Transmit { to: leg.rtcp_to, contents: sr });
            }
        }
        for p in &mut self.participants {
            if let Some(sample) = p.quality.sample(now, false) {
                self.out.push_back(Output::Sample { participant: p.info.id.clone(), sample });
            }
        }
        let timeout = self.config.ice_disconnect_timeout;
        let mut lost_ones = Vec::new();
        for p in &mut self.participants {
            let lost = p.ice_lost_since.is_some_and(|t| now.duration_since(t) >= timeout);
            let dead = !p.subscribe.rtc.is_alive() || p.publish.as_ref().is_some_and(|x| !x.rtc.is_alive());
            if lost || dead {
                let why = if lost { "the media connection was lost for too long" } else { "the media connection failed" };
                p.send(ServerMsg::fatal(ErrorCode::RoomClosed, format!("{why}; join the room again")));
                lost_ones.push(p.info.id.clone());
            }
        }
        for participant in lost_ones {
            tracing::warn!(room = %self.id, participant = %participant, "removing participant: media connection lost");
            self.depart(&participant, Departure::ConnectionLost, now);
        }
    }

    /// Sends a new subscribe offer to everyone whose consumers changed (one offer in flight each).
    fn negotiate(&mut self) {
        for p in &mut self.participants {
            p.negotiate_if_needed(&self.config.candidate);
        }
    }

    /// Fault injection (tests): loses this participant's datagrams (both connections) until
    /// `until`, all or `loss_per_mille` of them, one way or both. False if it is not here.
    #[cfg(feature = "fault-injection")]
    pub fn inject_net_fault(&mut self, participant: &str, until: Instant, loss_per_mille: u16, only: Option<super::netfault::Way>) -> bool {
        use super::netfault::NetFault;
        let Some(p) = self.get_mut(participant) else { return false };
        p.subscribe.fault = Some(NetFault::loss(until, loss_per_mille, 0x5eed_0001).only(only));
        if let Some(publish) = p.publish.as_mut() {
            publish.fault = Some(NetFault::loss(until, loss_per_mille, 0x5eed_0002).only(only));
        }
        true
    }
}

#[cfg(test)]
mod tests;
