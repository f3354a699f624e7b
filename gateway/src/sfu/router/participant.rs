//! A participant as the router keeps it: its two connections, the producers it publishes and
//! the consumers it receives, and its subscribe offers (one in flight at a time).

use std::collections::VecDeque;
use std::time::Instant;

use str0m::change::SdpPendingOffer;
use str0m::format::PayloadParams;
use str0m::media::{Direction, MediaKind, Mid, Pt, Rid};
use str0m::Candidate;

use super::super::forward::Forwarder;
use super::super::keyframe::KeyframeRequests;
use super::super::leg::PublisherClock;
use super::super::negotiation::{ConsumerState, OfferSlot};
use super::super::peer::Peer;
use super::super::quality::QualityMeter;
use super::super::simulcast::{BudgetGate, Layer, LayerFollower, TimestampRewriter};
use super::signaling::candidate_msg;
use crate::protocol::{MediaKindName, ParticipantInfo, PcRole, ProducerInfo, ServerMsg, TrackInfo};

/// A track a participant publishes (a mediasoup Producer).
pub struct Producer {
    pub id: String,
    pub mid: Mid,
    pub kind: MediaKind,
    pub(super) params: Option<PayloadParams>,
    /// Keyframe requests per stream (index: simulcast layer, else 0), PLI then FIR.
    pub(super) keyframes: [KeyframeRequests; MAX_STREAMS],
    /// str0m's cumulative NACK count at the last stats event (metrics count the growth).
    pub(super) nacks: u64,
    /// Simulcast layers, lowest first as the publisher offered them; empty without simulcast.
    pub(super) layers: Vec<Layer>,
    /// The publisher's last SR per stream (rid), for the legs' SRs.
    pub(super) clocks: Vec<(Option<Rid>, PublisherClock)>,
    /// The whole producer's incoming bitrate (what a non-simulcast consumer costs).
    pub(super) meter: Layer,
    /// Newest (extended) sequence number seen per stream (index: simulcast layer, else 0).
    pub(super) newest_seq: [Option<u64>; MAX_STREAMS],
}

/// Streams tracked per producer: one, or one per simulcast layer (browsers send up to 3).
pub(super) const MAX_STREAMS: usize = 4;

/// The per-stream slot of a packet or request (simulcast layer, or 0).
pub(super) fn stream_slot(layer: Option<usize>) -> usize {
    layer.unwrap_or(0).min(MAX_STREAMS - 1)
}

/// A remote track a participant receives (a mediasoup Consumer).
pub struct Consumer {
    pub producer_id: String,
    pub producer_participant: String,
    pub kind: MediaKind,
    pub state: ConsumerState<Mid>,
    pub(super) forwarder: Forwarder,
    /// The payload type this consumer receives the producer's codec on: `None` until the first
    /// packet, `Some(None)` when its answer did not accept that codec (nothing is sent).
    pub(super) pt: Option<Option<Pt>>,
    pub(super) nacks: u64,
    /// Height the subscriber shows this video at (`layer_preference`); 0 pauses it.
    pub(super) max_height: u32,
    /// The layer the bandwidth allocation gave it (simulcast), until the next allocation;
    /// `None` before the first one, when the tile size alone decides.
    pub(super) allocated: Option<Option<usize>>,
    /// Simulcast producers: which layer this consumer gets, and its continuous timestamps.
    pub(super) layer: LayerFollower,
    pub(super) timestamps: TimestampRewriter,
}

pub struct Participant {
    pub info: ParticipantInfo,
    /// Signaling messages for this participant, until the router's owner polls them.
    pub(super) signals: VecDeque<ServerMsg>,
    pub publish: Option<Peer>,
    pub subscribe: Peer,
    pub producers: Vec<Producer>,
    pub consumers: Vec<Consumer>,
    pub(super) offer_slot: OfferSlot,
    pub(super) pending_offer: Option<SdpPendingOffer>,
    pub(super) renegotiate: bool,
    /// The client asked for an ICE restart of its subscribe connection (`ice_restart`).
    pub(super) ice_restart: bool,
    /// Per connection (publish, subscribe): `None` until first connected, then whether ICE is
    /// connected now. A reconnect (an ICE restart, or the network back) asks for keyframes.
    pub(super) ice_up: [Option<bool>; 2],
    pub ice_lost_since: Option<Instant>,
    /// The subscribe connection's bandwidth estimate (str0m's TWCC BWE), once there is one.
    pub bwe_bps: Option<u64>,
    /// Whether that estimate currently limits the simulcast layers.
    pub(super) budget_gate: BudgetGate,
    pub(super) next_producer: u32,
    /// Call quality, sampled for the store.
    pub quality: QualityMeter,
}

impl Participant {
    /// Queues a signaling message for this participant (see `Router::poll_output`).
    pub fn send(&mut self, msg: ServerMsg) {
        self.signals.push_back(msg);
    }

    pub fn peer_mut(&mut self, role: PcRole) -> Option<&mut Peer> {
        match role {
            PcRole::Publish => self.publish.as_mut(),
            PcRole::Subscribe => Some(&mut self.subscribe),
        }
    }

    pub(super) fn producer_infos(&self) -> impl Iterator<Item = ProducerInfo> + '_ {
        self.producers.iter().map(|p| ProducerInfo { id: p.id.clone(), participant_id: self.info.id.clone(), kind: kind_name(p.kind) })
    }

    pub(super) fn add_consumer(&mut self, producer: &ProducerInfo, kind: MediaKind, first_seq: u16) {
        self.consumers.push(Consumer {
            producer_id: producer.id.clone(),
            producer_participant: producer.participant_id.clone(),
            kind,
            state: ConsumerState::ToAdd,
            forwarder: Forwarder::new(kind == MediaKind::Video, first_seq),
            pt: None,
            nacks: 0,
            max_height: u32::MAX,
            allocated: None,
            layer: LayerFollower::default(),
            timestamps: TimestampRewriter::default(),
        });
        self.renegotiate = true;
    }

    pub(super) fn drop_consumers_of(&mut self, producer_id: &str) {
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

pub fn kind_name(kind: MediaKind) -> MediaKindName {
    match kind {
        MediaKind::Audio => MediaKindName::Audio,
        MediaKind::Video => MediaKindName::Video,
    }
}
