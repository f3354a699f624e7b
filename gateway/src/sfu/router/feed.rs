//! What the room gives its broadcast: events (who is here, which tracks, camera off/on) for
//! the compositor's supervisor, and per producer a leg, plain RTP to the compositor's ports
//! from a keyframe on, following the simulcast layer that fits its tile.

use std::net::SocketAddr;
use std::time::Instant;

use str0m::format::Codec;
use str0m::media::MediaKind;

use super::super::leg::{layer_height_for_tile, Leg};
use super::participant::{kind_name, Producer};
use super::{Output, Router};
use crate::protocol::{MediaKindName, ServerMsg};

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

impl Router {
    /// Tells everyone in the room (and later joiners) the broadcast's state.
    pub(super) fn set_broadcast_state(&mut self, state: String) {
        if self.broadcast_state != state {
            for p in &mut self.participants {
                p.send(ServerMsg::BroadcastState { state: state.clone() });
            }
            self.broadcast_state = state;
        }
    }

    /// Queues an event for the broadcast, if one is fed.
    pub(super) fn tell_broadcast(&mut self, event: LegEvent) {
        if self.broadcasting {
            self.out.push_back(Output::Feed(event));
        }
    }

    /// Starts (or restarts, after a compositor restart) the broadcast: the supervisor hears
    /// about everyone present and every track whose codec is known; old legs are dropped.
    pub(super) fn start_broadcast(&mut self) {
        self.legs.clear();
        self.leg_tiles.clear();
        self.broadcasting = true;
        for p in &self.participants {
            self.out.push_back(Output::Feed(LegEvent::ParticipantJoined { id: p.info.id.clone(), name: p.info.name.clone() }));
            if p.info.video_muted {
                self.out.push_back(Output::Feed(LegEvent::VideoMuted { id: p.info.id.clone(), muted: true }));
            }
            for prod in &p.producers {
                if let Some(ev) = track_added(&p.info.id, prod) {
                    self.out.push_back(Output::Feed(ev));
                }
            }
        }
    }

    pub(super) fn stop_broadcast(&mut self) {
        self.broadcasting = false;
        self.legs.clear();
        self.leg_tiles.clear();
    }

    /// Sends this producer's packets to the compositor's ports from its next keyframe on.
    pub(super) fn attach_leg(&mut self, producer_id: &str, rtp_to: SocketAddr, rtcp_to: SocketAddr, now: Instant) {
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
            self.request_keyframe(producer_id, None, now);
        }
    }

    /// The compositor drew the producer's video in a tile `tile_height` pixels high: its leg
    /// follows the simulcast layer that fits (switching at that layer's next keyframe).
    pub(super) fn set_leg_tile(&mut self, producer_id: &str, tile_height: u32) {
        self.leg_tiles.insert(producer_id.to_owned(), tile_height);
        for leg in self.legs.iter_mut().filter(|l| l.producer_id == producer_id) {
            leg.max_height = layer_height_for_tile(tile_height);
        }
    }

    /// The compositor cannot decode the producer's leg (a keyframe was lost, or never came):
    /// asks the publisher for a keyframe of the layer the leg forwards. The compositor has no
    /// RTCP path back, so this is its PLI.
    pub(super) fn leg_needs_keyframe(&mut self, producer_id: &str, now: Instant) {
        let Some(leg) = self.legs.iter().find(|l| l.producer_id == producer_id) else { return };
        let layer = leg.layer.current();
        tracing::debug!(room = %self.id, producer = producer_id, ?layer, "the compositor asks for a keyframe");
        self.request_keyframe(producer_id, layer, now);
    }

    /// Gives the producer's legs the publisher's SR of the stream each one forwards (a
    /// simulcast leg: the layer it follows now).
    pub(super) fn update_leg_clocks(&mut self, producer_id: &str) {
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
}

pub(super) fn track_added(participant: &str, p: &Producer) -> Option<LegEvent> {
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
