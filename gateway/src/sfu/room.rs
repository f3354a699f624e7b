//! A room on an SFU worker (a mediasoup Router): its participants, their producers
//! (tracks they publish) and consumers (remote tracks they receive), and the routing between them.
//!
//! No sockets here: the worker hands in datagram-free events and drives the peers afterwards.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::bwe::{Bitrate, BweKind};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::{Codec, PayloadParams};
use str0m::media::{Direction, KeyframeRequestKind, MediaKind, Mid, Pt, Rid, Rids};
use str0m::rtp::{RtpPacket, RtpWrite};
use str0m::{Candidate, Event, IceConnectionState, Rtc};
use tokio::sync::mpsc::UnboundedSender;

use super::forward::{Decision, Forwarder};
use super::frame_size::keyframe_size;
use super::keyframe::{can_start_at, starts_keyframe, KeyframeRequests};
use super::leg::{layer_height_for_tile, Leg, PublisherClock};
use super::negotiation::{ConsumerState, OfferSlot};
use super::peer::Peer;
use super::quality::{QualityMeter, QualitySample};
use super::simulcast::{allocate, choose_layer, BudgetGate, Layer, LayerDecision, LayerFollower, TimestampRewriter};
use super::stats::WorkerStats;
use crate::outbox::Outbox;
use crate::protocol::{ErrorCode, MediaKindName, ParticipantInfo, PcRole, ProducerInfo, ServerMsg, TrackInfo};

pub struct Producer {
    pub id: String,
    pub mid: Mid,
    pub kind: MediaKind,
    params: Option<PayloadParams>,
    /// Keyframe requests per stream (index: simulcast layer, else 0), PLI then FIR.
    keyframes: [KeyframeRequests; MAX_STREAMS],
    /// str0m's cumulative NACK count at the last stats event (metrics count the growth).
    nacks: u64,
    /// Simulcast layers, lowest first as the publisher offered them; empty without simulcast.
    layers: Vec<Layer>,
    /// The publisher's last SR per stream (rid), for the legs' SRs.
    clocks: Vec<(Option<Rid>, PublisherClock)>,
    /// The whole producer's incoming bitrate (what a non-simulcast consumer costs).
    meter: Layer,
    /// Newest (extended) sequence number seen per stream (index: simulcast layer, else 0).
    newest_seq: [Option<u64>; MAX_STREAMS],
}

/// Streams tracked per producer: one, or one per simulcast layer (browsers send up to 3).
const MAX_STREAMS: usize = 4;

/// The per-stream slot of a packet or request (simulcast layer, or 0).
fn stream_slot(layer: Option<usize>) -> usize {
    layer.unwrap_or(0).min(MAX_STREAMS - 1)
}

pub struct Consumer {
    pub producer_id: String,
    pub producer_participant: String,
    pub kind: MediaKind,
    pub state: ConsumerState<Mid>,
    forwarder: Forwarder,
    /// The payload type this consumer receives the producer's codec on: `None` until the first
    /// packet, `Some(None)` when its answer did not accept that codec (nothing is sent).
    pt: Option<Option<Pt>>,
    nacks: u64,
    /// Height the subscriber shows this video at (`layer_preference`); 0 pauses it.
    max_height: u32,
    /// The layer the bandwidth allocation gave it (simulcast), until the next allocation;
    /// `None` before the first one, when the tile size alone decides.
    allocated: Option<Option<usize>>,
    /// Simulcast producers: which layer this consumer gets, and its continuous timestamps.
    layer: LayerFollower,
    timestamps: TimestampRewriter,
}

pub struct Participant {
    pub info: ParticipantInfo,
    out: Outbox,
    pub publish: Option<Peer>,
    pub subscribe: Peer,
    pub producers: Vec<Producer>,
    pub consumers: Vec<Consumer>,
    offer_slot: OfferSlot,
    pending_offer: Option<SdpPendingOffer>,
    renegotiate: bool,
    /// The client asked for an ICE restart of its subscribe connection (`ice_restart`).
    ice_restart: bool,
    /// Per connection (publish, subscribe): `None` until first connected, then whether ICE is
    /// connected now. A reconnect (an ICE restart, or the network back) asks for keyframes.
    ice_up: [Option<bool>; 2],
    pub ice_lost_since: Option<Instant>,
    /// The subscribe connection's bandwidth estimate (str0m's TWCC BWE), once there is one.
    pub bwe_bps: Option<u64>,
    /// Whether that estimate currently limits the simulcast layers.
    budget_gate: BudgetGate,
    next_producer: u32,
    /// Call quality, sampled for the store.
    pub quality: QualityMeter,
}

impl Participant {
    pub fn send(&self, msg: ServerMsg) {
        // A closed outbox means the session is ending (the worker hears `Leave` next); a full
        // one, that its client stopped reading (the session closes itself).
        let _ = self.out.send(msg);
    }

    pub fn peer_mut(&mut self, role: PcRole) -> Option<&mut Peer> {
        match role {
            PcRole::Publish => self.publish.as_mut(),
            PcRole::Subscribe => Some(&mut self.subscribe),
        }
    }

    fn producer_infos(&self) -> impl Iterator<Item = ProducerInfo> + '_ {
        self.producers.iter().map(|p| ProducerInfo { id: p.id.clone(), participant_id: self.info.id.clone(), kind: kind_name(p.kind) })
    }

    fn add_consumer(&mut self, producer: &ProducerInfo, kind: MediaKind) {
        self.consumers.push(Consumer {
            producer_id: producer.id.clone(),
            producer_participant: producer.participant_id.clone(),
            kind,
            state: ConsumerState::ToAdd,
            forwarder: Forwarder::new(kind == MediaKind::Video, rand::random()),
            pt: None,
            nacks: 0,
            max_height: u32::MAX,
            allocated: None,
            layer: LayerFollower::default(),
            timestamps: TimestampRewriter::default(),
        });
        self.renegotiate = true;
    }

    fn drop_consumers_of(&mut self, producer_id: &str) {
        self.consumers.retain_mut(|c| c.producer_id != producer_id || c.state.on_producer_gone());
        self.renegotiate = true;
    }

    /// Sends a new subscribe offer if consumers changed and no offer is in flight.
    pub fn negotiate_if_needed(&mut self, local_candidate: &Candidate) {
        if !self.renegotiate {
            return;
        }
        let any = self.ice_restart || self.consumers.iter().any(|c| c.state.needs_offer());
        if !self.offer_slot.can_offer(any) {
            self.renegotiate = self.offer_slot.in_flight() && any;
            return;
        }
        self.renegotiate = false;
        let mut change = self.subscribe.rtc.sdp_api();
        let restarting = std::mem::take(&mut self.ice_restart);
        if restarting {
            // Fresh ICE credentials; our one host candidate stays.
            change.ice_restart(true);
        }
        for c in &mut self.consumers {
            match c.state {
                ConsumerState::ToAdd => {
                    let mid = change.add_media(
                        c.kind,
                        Direction::SendOnly,
                        Some(c.producer_participant.clone()),
                        Some(c.producer_id.clone()),
                        None,
                    );
                    c.state = ConsumerState::Offered(mid);
                }
                ConsumerState::ToStop(mid) => {
                    // `inactive`, not stopped: an offer whose every m-line is stopped (the last
                    // producer left) makes Chrome tear the whole connection down.
                    change.set_direction(mid, Direction::Inactive);
                    c.state = ConsumerState::Stopping(mid);
                }
                _ => {}
            }
        }
        let Some((offer, pending)) = change.apply() else {
            return;
        };
        self.pending_offer = Some(pending);
        self.offer_slot.offered();
        self.subscribe.mark_dirty();
        let tracks = self
            .consumers
            .iter()
            .filter(|c| c.state.is_live())
            .filter_map(|c| {
                Some(TrackInfo {
                    mid: c.state.mid()?.to_string(),
                    producer_id: c.producer_id.clone(),
                    participant_id: c.producer_participant.clone(),
                    kind: kind_name(c.kind),
                })
            })
            .collect();
        let sdp = offer.to_sdp_string();
        let candidate = candidate_msg(PcRole::Subscribe, local_candidate, &sdp);
        self.send(ServerMsg::SubscribeOffer { sdp, tracks });
        self.send(candidate);
    }
}

/// What a live room tells its broadcast (the compositor's supervisor).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LegEvent {
    ParticipantJoined {
        id: String,
        name: String,
    },
    ParticipantLeft {
        id: String,
    },
    /// A producer whose codec is known: the supervisor allocates ports and attaches a leg.
    TrackAdded {
        producer_id: String,
        participant_id: String,
        kind: MediaKindName,
        codec: &'static str,
        payload_type: u8,
        clock_rate: u32,
    },
    TrackRemoved {
        producer_id: String,
    },
    /// The participant turned its camera off or on.
    VideoMuted {
        id: String,
        muted: bool,
    },
}

pub struct Room {
    pub id: String,
    pub participants: Vec<Participant>,
    broadcast: Option<UnboundedSender<LegEvent>>,
    legs: Vec<Leg>,
    /// Tile height per producer, as the compositor last laid it out (kept for legs attached later).
    leg_tiles: HashMap<String, u32>,
    /// Plain datagrams (RTP legs, RTCP SRs) for the worker to send.
    pub outbox: Vec<(SocketAddr, Vec<u8>)>,
    broadcast_state: String,
}

/// What the room asks of the worker after handling something.
#[derive(Default)]
pub struct Effects {
    /// Participants to remove (e.g. ICE lost too long); the worker tells their sessions.
    pub remove: Vec<(String, ServerMsg)>,
    /// Call-quality samples that came due, per participant id.
    pub samples: Vec<(String, QualitySample)>,
}

impl Room {
    pub fn new(id: String) -> Self {
        Self {
            id,
            participants: Vec::new(),
            broadcast: None,
            legs: Vec::new(),
            leg_tiles: HashMap::new(),
            outbox: Vec::new(),
            broadcast_state: "stopped".into(),
        }
    }

    /// Tells everyone in the room (and later joiners) the broadcast's state.
    pub fn set_broadcast_state(&mut self, state: String) {
        if self.broadcast_state != state {
            for p in &self.participants {
                p.send(ServerMsg::BroadcastState { state: state.clone() });
            }
            self.broadcast_state = state;
        }
    }

    pub fn is_broadcasting(&self) -> bool {
        self.broadcast.is_some()
    }

    fn tell_broadcast(&self, event: LegEvent) {
        if let Some(tx) = &self.broadcast {
            let _ = tx.send(event);
        }
    }

    /// Starts (or restarts, after a compositor restart) the broadcast: the supervisor hears
    /// about everyone present and every track whose codec is known; old legs are dropped.
    pub fn start_broadcast(&mut self, events: UnboundedSender<LegEvent>) {
        self.legs.clear();
        self.leg_tiles.clear();
        for p in &self.participants {
            let _ = events.send(LegEvent::ParticipantJoined { id: p.info.id.clone(), name: p.info.name.clone() });
            if p.info.video_muted {
                let _ = events.send(LegEvent::VideoMuted { id: p.info.id.clone(), muted: true });
            }
            for prod in &p.producers {
                if let Some(ev) = track_added(&p.info.id, prod) {
                    let _ = events.send(ev);
                }
            }
        }
        self.broadcast = Some(events);
    }

    pub fn stop_broadcast(&mut self) {
        self.broadcast = None;
        self.legs.clear();
        self.leg_tiles.clear();
    }

    /// Sends this producer's packets to the compositor's ports from its next keyframe on.
    pub fn attach_leg(&mut self, producer_id: &str, rtp_to: SocketAddr, rtcp_to: SocketAddr, now: Instant, stats: &WorkerStats) {
        let found = self.participants.iter().flat_map(|p| p.producers.iter()).find(|p| p.id == producer_id);
        let Some(prod) = found else { return };
        let Some(params) = &prod.params else { return };
        let is_video = prod.kind == MediaKind::Video;
        let mut leg = Leg::new(producer_id.to_owned(), rtp_to, rtcp_to, is_video, params.spec().clock_rate.get());
        if let Some(h) = self.leg_tiles.get(producer_id) {
            leg.max_height = layer_height_for_tile(*h);
        }
        self.legs.retain(|l| l.producer_id != producer_id);
        self.legs.push(leg);
        self.update_leg_clocks(producer_id);
        if is_video {
            self.request_keyframe(producer_id, None, now, Some(stats));
        }
    }

    /// The compositor drew the producer's video in a tile `tile_height` pixels high: its leg
    /// follows the simulcast layer that fits (switching at that layer's next keyframe).
    pub fn set_leg_tile(&mut self, producer_id: &str, tile_height: u32) {
        self.leg_tiles.insert(producer_id.to_owned(), tile_height);
        for leg in self.legs.iter_mut().filter(|l| l.producer_id == producer_id) {
            leg.max_height = layer_height_for_tile(tile_height);
        }
    }

    /// The compositor cannot decode the producer's leg (a keyframe was lost, or never came):
    /// asks the publisher for a keyframe of the layer the leg forwards. The compositor has no
    /// RTCP path back, so this is its PLI.
    pub fn leg_needs_keyframe(&mut self, producer_id: &str, now: Instant, stats: &WorkerStats) {
        let Some(leg) = self.legs.iter().find(|l| l.producer_id == producer_id) else { return };
        let layer = leg.layer.current();
        tracing::debug!(room = %self.id, producer = producer_id, ?layer, "the compositor asks for a keyframe");
        self.request_keyframe(producer_id, layer, now, Some(stats));
    }

    /// Gives the producer's legs the publisher's SR of the stream each one forwards (a
    /// simulcast leg: the layer it follows now).
    fn update_leg_clocks(&mut self, producer_id: &str) {
        let Some(prod) = self.participants.iter().flat_map(|p| p.producers.iter()).find(|p| p.id == producer_id) else { return };
        for leg in self.legs.iter_mut().filter(|l| l.producer_id == producer_id) {
            let rid = match prod.layers.is_empty() {
                true => None,
                false => match leg.layer.current().and_then(|i| prod.layers.get(i)) {
                    Some(layer) => Some(layer.rid),
                    None => continue,
                },
            };
            if let Some((_, clock)) = prod.clocks.iter().find(|(r, _)| *r == rid) {
                leg.publisher_report(*clock);
            }
        }
    }

    fn index_of(&self, participant: &str) -> Option<usize> {
        self.participants.iter().position(|p| p.info.id == participant)
    }

    pub fn get(&self, participant: &str) -> Option<&Participant> {
        self.participants.iter().find(|p| p.info.id == participant)
    }

    pub fn get_mut(&mut self, participant: &str) -> Option<&mut Participant> {
        self.participants.iter_mut().find(|p| p.info.id == participant)
    }

    pub fn snapshot(&self) -> (Vec<ParticipantInfo>, Vec<ProducerInfo>) {
        (self.participants.iter().map(|p| p.info.clone()).collect(), self.participants.iter().flat_map(|p| p.producer_infos()).collect())
    }

    pub fn join(&mut self, info: ParticipantInfo, out: Outbox, subscribe: Rtc, now: Instant) {
        let (participants, producers) = self.snapshot();
        let _ = out.send(ServerMsg::Welcome {
            protocol: crate::protocol::PROTOCOL_VERSION,
            room_id: self.id.clone(),
            participant_id: info.id.clone(),
            participants,
            producers,
            broadcast: self.broadcast_state.clone(),
        });
        let mut me = Participant {
            info: info.clone(),
            out,
            publish: None,
            subscribe: Peer::new(subscribe, now),
            producers: Vec::new(),
            consumers: Vec::new(),
            offer_slot: OfferSlot::default(),
            pending_offer: None,
            renegotiate: false,
            ice_restart: false,
            ice_up: [None, None],
            ice_lost_since: None,
            bwe_bps: None,
            budget_gate: BudgetGate::default(),
            next_producer: 0,
            quality: QualityMeter::new(now),
        };
        self.tell_broadcast(LegEvent::ParticipantJoined { id: info.id.clone(), name: info.name.clone() });
        for other in &self.participants {
            other.send(ServerMsg::ParticipantJoined { participant: info.clone() });
            for p in &other.producers {
                let pi = ProducerInfo { id: p.id.clone(), participant_id: other.info.id.clone(), kind: kind_name(p.kind) };
                me.add_consumer(&pi, p.kind);
            }
        }
        self.participants.push(me);
    }

    pub fn remove(&mut self, participant: &str) -> Option<Participant> {
        let idx = self.index_of(participant)?;
        let mut gone = self.participants.remove(idx);
        for p in &gone.producers {
            self.legs.retain(|l| l.producer_id != p.id);
            self.tell_broadcast(LegEvent::TrackRemoved { producer_id: p.id.clone() });
            for other in &mut self.participants {
                other.drop_consumers_of(&p.id);
                other.send(ServerMsg::ProducerRemoved { producer_id: p.id.clone(), participant_id: gone.info.id.clone() });
            }
        }
        for other in &self.participants {
            other.send(ServerMsg::ParticipantLeft { participant_id: gone.info.id.clone() });
        }
        self.tell_broadcast(LegEvent::ParticipantLeft { id: gone.info.id.clone() });
        if let Some(p) = gone.publish.as_mut() {
            p.rtc.disconnect();
        }
        gone.subscribe.rtc.disconnect();
        Some(gone)
    }

    /// `publish_offer`: create the publish transport on first use, answer the offer.
    pub fn publish_offer(&mut self, participant: &str, sdp: &str, make_rtc: impl FnOnce() -> Rtc, local: &Candidate, now: Instant) {
        let Some(p) = self.get_mut(participant) else { return };
        let offer = match SdpOffer::from_sdp_string(sdp) {
            Ok(o) => o,
            Err(e) => {
                return p.send(ServerMsg::error(
                    ErrorCode::BadSdp,
                    format!("publish_offer: the SDP did not parse ({e}); send a complete offer from createOffer()"),
                ))
            }
        };
        let fresh = p.publish.is_none();
        let peer = p.publish.get_or_insert_with(|| Peer::new(make_rtc(), now));
        match peer.rtc.sdp_api().accept_offer(offer) {
            Ok(answer) => {
                peer.mark_dirty();
                // str0m tells `MediaAdded` only once DTLS is up (up to seconds later on a busy
                // host); the negotiation already says what will come, so the producers (and
                // the broadcast's inputs for them) are made now.
                let incoming: Vec<(Mid, MediaKind, Vec<Rid>)> = crate::protocol::media_mids(sdp)
                    .iter()
                    .filter_map(|m| peer.rtc.media(Mid::from(m.as_str())))
                    .filter(|m| m.direction().is_receiving())
                    .map(|m| {
                        (
                            m.mid(),
                            m.kind(),
                            match m.rids_rx() {
                                Rids::Specific(r) => r.clone(),
                                _ => Vec::new(),
                            },
                        )
                    })
                    .collect();
                p.send(ServerMsg::PublishAnswer { sdp: answer.to_sdp_string() });
                p.send(candidate_msg(PcRole::Publish, local, sdp));
                for (mid, kind, rids) in incoming {
                    self.add_producer(participant, mid, kind, rids);
                }
            }
            Err(e) => {
                if fresh {
                    p.publish = None;
                }
                p.send(ServerMsg::error(
                    ErrorCode::BadSdp,
                    format!("publish_offer: the offer was refused ({e}); offer sendonly Opus/VP8/H264 tracks"),
                ));
            }
        }
    }

    pub fn subscribe_answer(&mut self, participant: &str, sdp: &str, now: Instant) {
        let Some(p) = self.get_mut(participant) else { return };
        if !p.offer_slot.in_flight() {
            return p.send(ServerMsg::error(ErrorCode::BadState, "subscribe_answer: there is no subscribe_offer waiting for an answer"));
        }
        let answer = match SdpAnswer::from_sdp_string(sdp) {
            Ok(a) => a,
            Err(e) => {
                return p.send(ServerMsg::error(
                    ErrorCode::BadSdp,
                    format!("subscribe_answer: the SDP did not parse ({e}); answer the latest subscribe_offer"),
                ))
            }
        };
        let pending = p.pending_offer.take().expect("an offer in flight has its pending changes");
        p.offer_slot.answered();
        p.renegotiate = true;
        if let Err(e) = p.subscribe.rtc.sdp_api().accept_answer(pending, answer) {
            // Roll back to "needs an offer": the next offer carries the same changes again.
            for c in &mut p.consumers {
                c.state = match c.state {
                    ConsumerState::Offered(_) => ConsumerState::ToAdd,
                    ConsumerState::Stopping(m) => ConsumerState::ToStop(m),
                    s => s,
                };
            }
            return p
                .send(ServerMsg::error(ErrorCode::BadSdp, format!("subscribe_answer: the answer was refused ({e}); a new offer follows")));
        }
        p.subscribe.mark_dirty();
        p.consumers.retain_mut(|c| c.state.on_answer());
        // New video consumers need a keyframe to start.
        let wanted: Vec<String> = p
            .consumers
            .iter()
            .filter(|c| c.kind == MediaKind::Video && matches!(c.state, ConsumerState::Active(_)) && !c.forwarder.started())
            .map(|c| c.producer_id.clone())
            .collect();
        for producer_id in wanted {
            self.request_keyframe(&producer_id, None, now, None);
        }
    }

    /// The client's subscribe connection lost media while signaling works: offer again with
    /// fresh ICE credentials (after any offer in flight is answered).
    pub fn restart_subscribe_ice(&mut self, participant: &str) {
        if let Some(p) = self.get_mut(participant) {
            tracing::info!(participant, "ICE restart of the subscribe connection requested");
            p.ice_restart = true;
            p.renegotiate = true;
        }
    }

    /// The subscriber shows `producer_id` at most `max_height` pixels high (0: not at all).
    /// Unknown producers are ignored: the message may cross the producer's removal.
    pub fn set_layer_preference(&mut self, participant: &str, producer_id: &str, max_height: u32) {
        if let Some(c) = self.get_mut(participant).and_then(|p| p.consumers.iter_mut().find(|c| c.producer_id == producer_id)) {
            c.max_height = max_height;
            // Act on it now; the next allocation round takes it into account.
            c.allocated = None;
        }
    }

    /// Chat, reactions and mute state: relayed to the room as they are (already validated).
    pub fn relay(&mut self, participant: &str, msg: &crate::protocol::ClientMsg) {
        use crate::protocol::ClientMsg;
        let Some(p) = self.get_mut(participant) else { return };
        let (out, include_sender) = match msg {
            ClientMsg::Chat { text } => (
                ServerMsg::Chat {
                    participant_id: participant.to_owned(),
                    name: p.info.name.clone(),
                    text: text.clone(),
                    ts: crate::clock::unix_now(),
                },
                true,
            ),
            ClientMsg::Reaction { emoji } => (ServerMsg::Reaction { participant_id: participant.to_owned(), emoji: emoji.clone() }, true),
            ClientMsg::MediaState { audio_muted, video_muted } => {
                p.info.audio_muted = *audio_muted;
                let camera_changed = p.info.video_muted != *video_muted;
                p.info.video_muted = *video_muted;
                if camera_changed {
                    // The broadcast shows the named placeholder while the camera is off.
                    self.tell_broadcast(LegEvent::VideoMuted { id: participant.to_owned(), muted: *video_muted });
                }
                (
                    ServerMsg::MediaState { participant_id: participant.to_owned(), audio_muted: *audio_muted, video_muted: *video_muted },
                    false,
                )
            }
            _ => return,
        };
        for other in &self.participants {
            if include_sender || other.info.id != participant {
                other.send(out.clone());
            }
        }
    }

    pub fn add_remote_candidate(&mut self, participant: &str, role: PcRole, candidate: &str) {
        let Some(p) = self.get_mut(participant) else { return };
        let text = candidate.trim().trim_start_matches("a=");
        if text.is_empty() {
            return; // end of candidates
        }
        let parsed = match Candidate::from_sdp_string(text) {
            Ok(c) => c,
            Err(e) => return p.send(ServerMsg::error(ErrorCode::BadCandidate, format!("candidate: could not parse ({e})"))),
        };
        match p.peer_mut(role) {
            Some(peer) => {
                peer.rtc.add_remote_candidate(parsed);
                peer.mark_dirty();
            }
            None => p.send(ServerMsg::error(ErrorCode::BadState, "candidate: send publish_offer before publish candidates")),
        }
    }

    /// Milliseconds since a peer's first datagram (its first ICE check), for the join timeline in the log.
    fn since_first_datagram(&mut self, participant: &str, role: PcRole, now: Instant) -> Option<u128> {
        self.get_mut(participant)?.peer_mut(role)?.since_first_datagram(now).map(|d| d.as_millis())
    }

    /// Handles one str0m event from a participant's peer.
    pub fn on_event(&mut self, participant: &str, role: PcRole, event: Event, now: Instant, stats: &WorkerStats) {
        match event {
            Event::RtpPacket(pkt) if role == PcRole::Publish => {
                WorkerStats::add(&stats.rtp_packets_in, 1);
                WorkerStats::add(&stats.rtp_bytes_in, pkt.payload.len() as u64);
                let (packets, bytes) = self.forward(participant, pkt, now, stats);
                WorkerStats::add(&stats.rtp_packets_out, packets);
                WorkerStats::add(&stats.rtp_bytes_out, bytes);
            }
            Event::MediaAdded(m) if role == PcRole::Publish => {
                // The publisher's send layers (str0m may file them under send or recv).
                let rids: Vec<Rid> = m
                    .simulcast
                    .map(|s| if s.recv.is_empty() { s.send } else { s.recv })
                    .unwrap_or_default()
                    .into_iter()
                    .map(|l| l.rid)
                    .collect();
                self.add_producer(participant, m.mid, m.kind, rids)
            }
            Event::MediaChanged(m) if role == PcRole::Publish && !m.direction.is_receiving() => {
                self.remove_producer(participant, m.mid);
            }
            Event::KeyframeRequest(req) if role == PcRole::Subscribe => {
                let producer = self.get_mut(participant).and_then(|p| {
                    p.consumers.iter().find(|c| c.state.mid() == Some(req.mid)).map(|c| (c.producer_id.clone(), c.layer.current()))
                });
                if let Some((producer, layer)) = producer {
                    self.request_keyframe(&producer, layer, now, Some(stats));
                }
            }
            Event::SenderFeedback(fb) if role == PcRole::Publish => {
                // The publisher's SR: kept (audio SRs come only every few seconds, maybe before
                // a leg exists), and its legs' SRs carry its clock on (lip sync downstream).
                let Some(prod) = self.get_mut(participant).and_then(|p| p.producers.iter_mut().find(|x| x.mid == fb.mid)) else { return };
                let clock = PublisherClock {
                    ntp: fb.sender_info.ntp_time,
                    rtp_time: fb.sender_info.rtp_time.numer() as u32,
                    received_at: fb.received_at,
                };
                prod.clocks.retain(|(rid, _)| *rid != fb.rid);
                prod.clocks.push((fb.rid, clock));
                let producer_id = prod.id.clone();
                self.update_leg_clocks(&producer_id);
            }
            Event::MediaIngressStats(s) if role == PcRole::Publish => {
                if let Some(p) = self.get_mut(participant) {
                    p.quality.on_ingress((s.mid, s.rid), s.bytes, s.loss, s.rtt);
                }
                if let Some(prod) = self.get_mut(participant).and_then(|p| p.producers.iter_mut().find(|x| x.mid == s.mid)) {
                    WorkerStats::add(&stats.nacks_sent, s.nacks.saturating_sub(prod.nacks));
                    prod.nacks = s.nacks;
                }
                if let Some(loss) = s.loss {
                    stats.ingress_loss_ppm.fetch_max((loss.clamp(0.0, 1.0) * 1e6) as u64, std::sync::atomic::Ordering::Relaxed);
                }
                note_rtt(stats, s.rtt);
            }
            Event::MediaEgressStats(s) if role == PcRole::Subscribe => {
                if let Some(p) = self.get_mut(participant) {
                    p.quality.on_egress(s.loss, s.rtt);
                }
                note_rtt(stats, s.rtt);
                if let Some(c) = self.get_mut(participant).and_then(|p| p.consumers.iter_mut().find(|c| c.state.mid() == Some(s.mid))) {
                    WorkerStats::add(&stats.nacks_received, s.nacks.saturating_sub(c.nacks));
                    c.nacks = s.nacks;
                }
            }
            Event::EgressBitrateEstimate(BweKind::Twcc { estimate, .. }) if role == PcRole::Subscribe => {
                if let Some(p) = self.get_mut(participant) {
                    p.bwe_bps = Some(estimate.as_u64());
                }
            }
            Event::Connected => {
                let after_first_check_ms = self.since_first_datagram(participant, role, now);
                tracing::debug!(participant, ?role, ?after_first_check_ms, "DTLS connected: media can flow");
            }
            Event::IceConnectionStateChange(state) => {
                let after_first_check_ms = self.since_first_datagram(participant, role, now);
                tracing::debug!(participant, ?role, ?state, ?after_first_check_ms, "ICE state");
                let mut recovered = Vec::new();
                if let Some(p) = self.get_mut(participant) {
                    let slot = &mut p.ice_up[role as usize];
                    let up = matches!(state, IceConnectionState::Connected | IceConnectionState::Completed);
                    // Media is back after a gap (an ICE restart, or the network returning): the
                    // decoders on the far side lost references, so ask for keyframes now rather
                    // than waiting for their own requests.
                    let reconnected = up && *slot == Some(false);
                    let was_up = *slot == Some(true);
                    if up || slot.is_some() {
                        *slot = Some(up);
                    }
                    match state {
                        IceConnectionState::Disconnected => {
                            p.ice_lost_since.get_or_insert(now);
                            if was_up {
                                tracing::info!(participant, ?role, "ICE disconnected; removing the participant if it does not come back");
                            } else {
                                // Before the first connection this only means no pair works yet,
                                // e.g. a browser trickled its TCP candidate before its UDP ones.
                                tracing::debug!(participant, ?role, "no ICE candidate pair works yet; waiting for more candidates");
                            }
                        }
                        _ => p.ice_lost_since = None,
                    }
                    if reconnected {
                        tracing::info!(participant, ?role, "ICE reconnected; asking for keyframes");
                        recovered = match role {
                            // What it receives: the producers of its video consumers.
                            PcRole::Subscribe => p
                                .consumers
                                .iter()
                                .filter(|c| c.kind == MediaKind::Video)
                                .map(|c| (c.producer_id.clone(), c.layer.current()))
                                .collect(),
                            // What it sends: its own video, for everyone receiving it.
                            PcRole::Publish => {
                                p.producers.iter().filter(|x| x.kind == MediaKind::Video).map(|x| (x.id.clone(), None)).collect()
                            }
                        };
                    }
                }
                for (producer, layer) in recovered {
                    self.request_keyframe(&producer, layer, now, Some(stats));
                }
            }
            _ => {}
        }
    }

    fn add_producer(&mut self, participant: &str, mid: Mid, kind: MediaKind, rids: Vec<Rid>) {
        let Some(p) = self.get_mut(participant) else { return };
        if p.producers.iter().any(|x| x.mid == mid) {
            return;
        }
        let id = format!("{}:{}", p.info.id, p.next_producer);
        p.next_producer += 1;
        if rids.len() > 1 {
            tracing::info!(participant, producer = %id, layers = ?rids.iter().map(|r| r.to_string()).collect::<Vec<_>>(), "simulcast producer");
        }
        let layers = if rids.len() > 1 && kind == MediaKind::Video { rids.into_iter().map(Layer::new).collect() } else { Vec::new() };
        // The codec it will send is known from the negotiation: announcing the track now lets
        // the compositor's input and leg be ready for the publisher's very first keyframe
        // (a browser sends one unasked only then), instead of being built after it went by.
        let params = p.publish.as_ref().and_then(|peer| negotiated_params(&peer.rtc, mid));
        p.producers.push(Producer {
            id: id.clone(),
            mid,
            kind,
            params,
            keyframes: Default::default(),
            nacks: 0,
            layers,
            clocks: Vec::new(),
            meter: Layer::new("all".into()),
            newest_seq: [None; MAX_STREAMS],
        });
        let info = ProducerInfo { id, participant_id: participant.to_owned(), kind: kind_name(kind) };
        let announce = p.producers.last().and_then(|x| track_added(participant, x));
        tracing::info!(room = %self.id, participant, producer = %info.id, ?kind, "producer added");
        if let Some(ev) = announce {
            self.tell_broadcast(ev);
        }
        for other in &mut self.participants {
            if other.info.id != participant {
                other.add_consumer(&info, kind);
            }
            other.send(ServerMsg::ProducerAdded { producer: info.clone() });
        }
    }

    fn remove_producer(&mut self, participant: &str, mid: Mid) {
        let Some(p) = self.get_mut(participant) else { return };
        let Some(idx) = p.producers.iter().position(|x| x.mid == mid) else { return };
        let gone = p.producers.remove(idx);
        p.quality.stream_gone(mid);
        self.legs.retain(|l| l.producer_id != gone.id);
        self.leg_tiles.remove(&gone.id);
        self.tell_broadcast(LegEvent::TrackRemoved { producer_id: gone.id.clone() });
        for other in &mut self.participants {
            other.drop_consumers_of(&gone.id);
            other.send(ServerMsg::ProducerRemoved { producer_id: gone.id.clone(), participant_id: participant.to_owned() });
        }
    }

    /// Asks the producer's publisher for a keyframe of `layer` (simulcast; `None`: every
    /// layer), unless a request for that stream is already in flight (see `KeyframeRequests`).
    fn request_keyframe(&mut self, producer_id: &str, layer: Option<usize>, now: Instant, stats: Option<&WorkerStats>) {
        for p in &mut self.participants {
            let Some(prod) = p.producers.iter_mut().find(|x| x.id == producer_id) else { continue };
            let mid = prod.mid;
            // Simulcast: the layer asked for, or every layer when nobody said which. Called per
            // packet while someone waits, so no allocation, and an in-flight request returns early.
            let layers = match layer.filter(|l| *l < prod.layers.len()) {
                _ if prod.layers.is_empty() => 0..1,
                Some(l) => l..l + 1,
                None => 0..prod.layers.len(),
            };
            let Some(peer) = p.publish.as_mut() else { return };
            for l in layers {
                let slot = stream_slot(Some(l));
                if prod.keyframes[slot].in_flight(now) {
                    continue;
                }
                let rid = prod.layers.get(l).map(|x| x.rid);
                let mut api = peer.rtc.direct_api();
                let Some(rx) = api.stream_rx_by_mid(mid, rid) else { continue };
                let Some(kind) = prod.keyframes[slot].ask(now) else { continue };
                tracing::debug!(producer = producer_id, ?rid, ?kind, "keyframe request");
                rx.request_keyframe(kind);
                peer.mark_dirty();
                if let Some(stats) = stats {
                    WorkerStats::add(&stats.keyframe_requests, 1);
                    if kind == KeyframeRequestKind::Fir {
                        WorkerStats::add(&stats.keyframe_requests_fir, 1);
                    }
                }
            }
            return;
        }
    }

    /// Forwards one RTP packet of a producer to every active consumer of it.
    /// Returns the packets and payload bytes sent to consumers.
    fn forward(&mut self, participant: &str, pkt: RtpPacket, now: Instant, stats: &WorkerStats) -> (u64, u64) {
        let none = (0, 0);
        let Some(from) = self.index_of(participant) else { return none };
        // Split borrows (publisher / everyone else / legs) so the per-packet path reads the
        // producer in place instead of cloning its id and layers for every packet.
        let (before, rest) = self.participants.split_at_mut(from);
        let Some((publisher, after)) = rest.split_first_mut() else { return none };
        let Some(peer) = publisher.publish.as_mut() else { return none };
        let Some((mid, rid)) = peer.rtc.direct_api().stream_rx(&pkt.header.ssrc).map(|s| (s.mid(), s.rid())) else { return none };
        let Some(producer) = publisher.producers.iter_mut().find(|p| p.mid == mid) else { return none };
        if producer.params.as_ref().is_none_or(|p| p.pt() != pkt.header.payload_type) {
            let before = producer.params.as_ref().map(|p| p.spec().codec);
            producer.params = peer.rtc.codec_config().find(|p| p.pt() == pkt.header.payload_type).cloned();
            let now_codec = producer.params.as_ref().map(|p| p.spec().codec);
            // Announced at negotiation with another codec (or not at all): the compositor's
            // input is made again for what really arrives.
            if now_codec.is_some() && now_codec != before {
                tracing::debug!(producer = %producer.id, ?before, now = ?now_codec, "producer's codec differs from the announced one");
                if let Some(tx) = &self.broadcast {
                    if before.is_some() {
                        let _ = tx.send(LegEvent::TrackRemoved { producer_id: producer.id.clone() });
                    }
                    if let Some(ev) = track_added(participant, producer) {
                        let _ = tx.send(ev);
                    }
                }
            }
        }
        let Some(params) = producer.params.as_ref() else { return none };
        let is_video = producer.kind == MediaKind::Video;
        let keyframe = starts_keyframe(params.spec().codec, &pkt.payload);
        producer.meter.on_packet(pkt.payload.len(), now);
        // Simulcast: which layer this packet is, and what each layer looks like now.
        let layer = match (producer.layers.is_empty(), rid) {
            (true, _) => None,
            (false, Some(rid)) => match producer.layers.iter().position(|l| l.rid == rid) {
                Some(i) => Some(i),
                None => return none,
            },
            // A simulcast producer's packet without a rid cannot be placed.
            (false, None) => return none,
        };
        if let Some(i) = layer {
            let l = &mut producer.layers[i];
            l.on_packet(pkt.payload.len(), now);
            if keyframe {
                if let Some((_, h)) = keyframe_size(params.spec().codec, &pkt.payload) {
                    l.height = Some(h);
                }
            }
        }
        let slot = stream_slot(layer);
        let newest_before = producer.newest_seq[slot];
        producer.newest_seq[slot] = Some(newest_before.map_or(*pkt.seq_no, |n| n.max(*pkt.seq_no)));
        // Where a waiting consumer or leg may start (or switch layers): a keyframe's first
        // packet, and the newest of its stream (see `can_start_at`).
        let keyframe = is_video && can_start_at(keyframe, *pkt.seq_no, newest_before);
        if keyframe {
            // The request was answered: whoever needs one next asks again at once.
            producer.keyframes[slot].answered();
        }
        let producer = &*producer;
        let producer_id = producer.id.as_str();
        let layers = producer.layers.as_slice();
        let clock_rate = params.spec().clock_rate.get();
        // Simulcast layers a consumer or leg waits to switch to (bit per layer).
        let mut wanted_layers = 0u32;
        let mut ext = pkt.header.ext_vals.clone();
        ext.mid = None;
        ext.rid = None;
        ext.rid_repair = None;

        let mut needs_keyframe = false;
        let mut sent = 0u64;
        let room_id = &self.id;
        for other in before.iter_mut().chain(after.iter_mut()) {
            let sub = &mut other.subscribe;
            let (out, who) = (&other.out, &other.info.id);
            for c in other.consumers.iter_mut().filter(|c| c.producer_id == producer_id) {
                let ConsumerState::Active(out_mid) = c.state else { continue };
                let pt = *c.pt.get_or_insert_with(|| {
                    // Only a payload type the receiver's answer accepted for this m-line: one that
                    // left the codec out (a VP8-only client and an H.264 publisher) gets nothing,
                    // and is told once, rather than packets it silently drops.
                    let pt = sub.rtc.codec_config().match_params(*params).map(|p| p.pt());
                    let accepted = pt.filter(|pt| sub.rtc.media(out_mid).is_some_and(|m| m.remote_pts().contains(pt)));
                    if accepted.is_none() {
                        let codec = params.spec().codec;
                        tracing::warn!(room = %room_id, participant = %who, producer = %producer_id, ?codec, "the subscriber did not accept this codec; its tile stays empty");
                        let _ = out.send(ServerMsg::error(
                            ErrorCode::UnsupportedCodec,
                            format!("producer {producer_id} sends {codec:?}, which this client did not accept in its answer; it cannot be shown here"),
                        ));
                    }
                    accepted
                });
                let Some(pt) = pt else { continue };
                let mut timestamp = pkt.header.timestamp;
                if let Some(layer) = layer {
                    c.layer.set_target(c.allocated.unwrap_or_else(|| choose_layer(layers, c.max_height, now)));
                    match c.layer.on_packet(layer, keyframe) {
                        LayerDecision::Drop => {
                            if let Some(t) = c.layer.wants_keyframe() {
                                wanted_layers |= 1 << stream_slot(Some(t));
                            }
                            continue;
                        }
                        LayerDecision::Switch => {
                            // New layer: its own sequence numbers and timestamp base, re-anchored
                            // so the consumer sees one continuous stream.
                            c.forwarder.resync();
                            c.timestamps.rebase(pkt.header.timestamp, now, clock_rate);
                        }
                        LayerDecision::Forward => {}
                    }
                    timestamp = c.timestamps.rewrite(pkt.header.timestamp, now);
                } else if c.max_height == 0 && is_video {
                    continue;
                }
                match c.forwarder.decide(*pkt.seq_no, keyframe) {
                    Decision::Forward(seq) => {
                        if let Some(tx) = sub.rtc.direct_api().stream_tx_by_mid(out_mid, None) {
                            tx.write_rtp(
                                RtpWrite::new(pt, seq.into(), timestamp, pkt.timestamp, pkt.payload.clone())
                                    .marker(pkt.header.marker)
                                    .ext_vals(ext.clone())
                                    .nackable(is_video),
                            );
                            sub.mark_dirty();
                            sent += 1;
                        }
                    }
                    Decision::AwaitKeyframe => needs_keyframe = true,
                    Decision::TooOld => {}
                }
            }
        }
        for leg in self.legs.iter_mut().filter(|l| l.producer_id == producer_id) {
            let mut timestamp = pkt.header.timestamp;
            if let Some(layer) = layer {
                leg.layer.set_target(choose_layer(layers, leg.max_height, now));
                match leg.layer.on_packet(layer, keyframe) {
                    LayerDecision::Drop => {
                        if let Some(t) = leg.layer.wants_keyframe() {
                            wanted_layers |= 1 << stream_slot(Some(t));
                        }
                        continue;
                    }
                    LayerDecision::Switch => {
                        tracing::debug!(room = %room_id, producer = %producer_id, layer, height = ?layers[layer].height, "compositor leg switches layer");
                        leg.switch_layer(pkt.header.timestamp, now);
                        // The new layer's own SR, if one came already.
                        if let Some((_, clock)) = producer.clocks.iter().find(|(r, _)| *r == rid) {
                            leg.publisher_report(*clock);
                        }
                    }
                    LayerDecision::Forward => {}
                }
                timestamp = leg.timestamps.rewrite(pkt.header.timestamp, now);
            }
            let was_started = leg.started();
            match leg.packet(
                *pkt.seq_no,
                keyframe,
                pkt.header.marker,
                *pkt.header.payload_type,
                timestamp,
                pkt.header.timestamp,
                &pkt.payload,
            ) {
                Ok(datagram) => {
                    if !was_started {
                        tracing::debug!(room = %room_id, producer = %producer_id, ?layer, "compositor leg starts at a keyframe");
                    }
                    self.outbox.push((leg.rtp_to, datagram))
                }
                Err(Decision::AwaitKeyframe) => needs_keyframe = true,
                Err(_) => {}
            }
        }
        // Rare (a consumer or leg waits for a keyframe): only then is the id copied, to end
        // the borrow of the publisher. Each stream has its own request state, so a consumer's
        // wait on this layer and a leg's on another are both asked for.
        if needs_keyframe || wanted_layers != 0 {
            let producer_id = producer_id.to_owned();
            if needs_keyframe {
                self.request_keyframe(&producer_id, layer, now, Some(stats));
            }
            for l in (0..MAX_STREAMS).filter(|l| wanted_layers & (1 << l) != 0) {
                self.request_keyframe(&producer_id, Some(l), now, Some(stats));
            }
        }
        (sent, sent * pkt.payload.len() as u64)
    }

    pub fn leg_count(&self) -> usize {
        self.legs.len()
    }

    /// Shares each subscriber's bandwidth estimate among the simulcast videos it receives
    /// (biggest tiles first), and tells its BWE what the ideal layers would need so it probes
    /// for that much.
    fn allocate_bandwidth(&mut self, now: Instant) {
        // Producer id -> (layers, bitrate of the whole producer).
        let producers: HashMap<String, (Vec<Layer>, u64)> = self
            .participants
            .iter()
            .flat_map(|p| p.producers.iter())
            .map(|x| (x.id.clone(), (x.layers.clone(), x.meter.bitrate_bps)))
            .collect();
        for p in &mut self.participants {
            let mut fixed = 0u64; // audio and non-simulcast video: not adjustable here
            let mut wants: Vec<(usize, &[Layer], u32)> = Vec::new();
            for (i, c) in p.consumers.iter().enumerate() {
                let Some((layers, bitrate)) = producers.get(&c.producer_id) else { continue };
                if !matches!(c.state, ConsumerState::Active(_)) {
                    continue;
                }
                if layers.is_empty() {
                    if c.kind == MediaKind::Audio || c.max_height > 0 {
                        fixed += bitrate;
                    }
                } else {
                    wants.push((i, layers.as_slice(), c.max_height));
                }
            }
            if wants.is_empty() {
                continue;
            }
            // What we send this subscriber now: fixed streams plus the layers it currently gets.
            let sending = fixed
                + wants
                    .iter()
                    .filter_map(|(i, layers, _)| p.consumers[*i].layer.current().and_then(|l| layers.get(l)).map(|l| l.bitrate_bps))
                    .sum::<u64>();
            let budget = p.budget_gate.budget(p.bwe_bps, sending, now).map(|b| b.saturating_sub(fixed));
            let pairs: Vec<(&[Layer], u32)> = wants.iter().map(|(_, l, h)| (*l, *h)).collect();
            let (chosen, desired) = allocate(budget, &pairs, now);
            let targets: Vec<(usize, Option<usize>)> = wants.iter().map(|(i, _, _)| *i).zip(chosen).collect();
            for (i, layer) in targets {
                p.consumers[i].allocated = Some(layer);
            }
            if p.bwe_bps.is_some() {
                let want = desired + fixed;
                p.subscribe.rtc.bwe().set_bitrate(Bitrate::bps(want / 2), Bitrate::bps(want.max(300_000)));
                p.subscribe.mark_dirty();
            }
        }
    }

    /// Periodic checks: participants whose ICE stayed lost too long, or whose transports died.
    pub fn housekeeping(&mut self, now: Instant, ice_timeout: Duration) -> Effects {
        let mut effects = Effects::default();
        self.allocate_bandwidth(now);
        for leg in &mut self.legs {
            if let Some(sr) = leg.sender_report_due(now) {
                self.outbox.push((leg.rtcp_to, sr));
            }
        }
        for p in &mut self.participants {
            if let Some(s) = p.quality.sample(now, false) {
                effects.samples.push((p.info.id.clone(), s));
            }
        }
        for p in &self.participants {
            let lost = p.ice_lost_since.is_some_and(|t| now.duration_since(t) >= ice_timeout);
            let dead = !p.subscribe.rtc.is_alive() || p.publish.as_ref().is_some_and(|x| !x.rtc.is_alive());
            if lost || dead {
                let why = if lost { "the media connection was lost for too long" } else { "the media connection failed" };
                effects.remove.push((p.info.id.clone(), ServerMsg::fatal(ErrorCode::RoomClosed, format!("{why}; join the room again"))));
            }
        }
        effects
    }

    pub fn negotiate(&mut self, local: &Candidate) {
        for p in &mut self.participants {
            p.negotiate_if_needed(local);
        }
    }
}

/// Keeps the worst RTT of the stats window for `/metrics`.
fn note_rtt(stats: &WorkerStats, rtt: Option<Duration>) {
    if let Some(rtt) = rtt {
        let us = u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX);
        stats.rtt_max_us.fetch_max(us, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The codec a publisher will send on `mid`: the first payload type of its negotiated list
/// (the remote's order of preference) that we accept.
fn negotiated_params(rtc: &str0m::Rtc, mid: Mid) -> Option<PayloadParams> {
    let media = rtc.media(mid)?;
    media.remote_pts().iter().find_map(|pt| rtc.codec_config().find(|p| p.pt() == *pt).cloned())
}

fn track_added(participant: &str, p: &Producer) -> Option<LegEvent> {
    let params = p.params.as_ref()?;
    let codec = match params.spec().codec {
        Codec::Vp8 => "VP8",
        Codec::H264 => "H264",
        Codec::Opus => "opus",
        _ => return None,
    };
    Some(LegEvent::TrackAdded {
        producer_id: p.id.clone(),
        participant_id: participant.to_owned(),
        kind: kind_name(p.kind),
        codec,
        payload_type: *params.pt(),
        clock_rate: params.spec().clock_rate.get(),
    })
}

pub fn kind_name(kind: MediaKind) -> MediaKindName {
    match kind {
        MediaKind::Audio => MediaKindName::Audio,
        MediaKind::Video => MediaKindName::Video,
    }
}

/// Our one candidate serves the whole bundle: it names the first m-line of the connection's
/// SDP `sdp` (the publisher's offer, or our subscribe offer), as `addIceCandidate` needs.
fn candidate_msg(pc: PcRole, c: &Candidate, sdp: &str) -> ServerMsg {
    let sdp_mid = crate::protocol::first_mid(sdp);
    ServerMsg::Candidate { pc, candidate: c.to_sdp_string(), sdp_mid, sdp_mline_index: 0 }
}
