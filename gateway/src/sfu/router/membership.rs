//! Who is in the room and what they publish: joins, departures, producers appearing and
//! going (every other participant gets a consumer of each), and what is relayed to everyone
//! (chat, reactions, mute state).

use std::time::Instant;

use str0m::format::PayloadParams;
use str0m::media::{MediaKind, Mid, Rid};
use str0m::Rtc;

use super::super::negotiation::OfferSlot;
use super::super::peer::Peer;
use super::super::quality::QualityMeter;
use super::super::simulcast::{BudgetGate, Layer};
use super::feed::{track_added, LegEvent};
use super::participant::{kind_name, Participant, Producer, MAX_STREAMS};
use super::{Departure, Output, Router};
use crate::protocol::{ClientMsg, ParticipantInfo, ProducerInfo, ServerMsg};

impl Router {
    pub(super) fn index_of(&self, participant: &str) -> Option<usize> {
        self.participants.iter().position(|p| p.info.id == participant)
    }

    pub fn get(&self, participant: &str) -> Option<&Participant> {
        self.participants.iter().find(|p| p.info.id == participant)
    }

    pub(super) fn get_mut(&mut self, participant: &str) -> Option<&mut Participant> {
        self.participants.iter_mut().find(|p| p.info.id == participant)
    }

    pub fn snapshot(&self) -> (Vec<ParticipantInfo>, Vec<ProducerInfo>) {
        (self.participants.iter().map(|p| p.info.clone()).collect(), self.participants.iter().flat_map(|p| p.producer_infos()).collect())
    }

    /// A participant joins with its subscribe connection: it is welcomed with who is here and
    /// what they publish, and gets a consumer of every producer.
    pub(super) fn join(&mut self, info: ParticipantInfo, subscribe: Rtc, now: Instant) {
        let (participants, producers) = self.snapshot();
        let welcome = ServerMsg::Welcome {
            protocol: crate::protocol::PROTOCOL_VERSION,
            room_id: self.id.clone(),
            participant_id: info.id.clone(),
            participants,
            producers,
            broadcast: self.broadcast_state.clone(),
        };
        let mut me = Participant {
            info: info.clone(),
            signals: [welcome].into(),
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
        for other in &mut self.participants {
            other.send(ServerMsg::ParticipantJoined { participant: info.clone() });
            for p in &other.producers {
                let pi = ProducerInfo { id: p.id.clone(), participant_id: other.info.id.clone(), kind: kind_name(p.kind) };
                me.add_consumer(&pi, p.kind, self.rng.next_u64() as u16);
            }
        }
        self.participants.push(me);
    }

    /// A participant leaves (or is removed): the others and the broadcast are told, its
    /// last signaling messages and its last partial quality sample go out, then `Departed`.
    pub(super) fn depart(&mut self, participant: &str, why: Departure, now: Instant) {
        let Some(idx) = self.index_of(participant) else { return };
        let mut gone = self.participants.remove(idx);
        self.routes.retain(|_, (p, _)| p != participant);
        for p in &gone.producers {
            self.legs.retain(|l| l.producer_id != p.id);
            self.tell_broadcast(LegEvent::TrackRemoved { producer_id: p.id.clone() });
            for other in &mut self.participants {
                other.drop_consumers_of(&p.id);
                other.send(ServerMsg::ProducerRemoved { producer_id: p.id.clone(), participant_id: gone.info.id.clone() });
            }
        }
        for other in &mut self.participants {
            other.send(ServerMsg::ParticipantLeft { participant_id: gone.info.id.clone() });
        }
        self.tell_broadcast(LegEvent::ParticipantLeft { id: gone.info.id.clone() });
        if let Some(p) = gone.publish.as_mut() {
            p.rtc.disconnect();
        }
        gone.subscribe.rtc.disconnect();
        for msg in gone.signals.drain(..) {
            self.out.push_back(Output::Signal { participant: participant.to_owned(), msg });
        }
        if why == Departure::Left {
            tracing::info!(room = %self.id, participant, "participant left");
        }
        // The last partial interval, so short calls have a sample too.
        let sample = gone.quality.sample(now, true);
        self.out.push_back(Output::Departed { participant: participant.to_owned(), why, sample });
    }

    /// Chat, reactions and mute state: relayed to the room as they are (already validated).
    pub(super) fn relay(&mut self, participant: &str, msg: &ClientMsg) {
        let unix_now = self.config.unix_now;
        let Some(p) = self.get_mut(participant) else { return };
        let (out, include_sender) = match msg {
            ClientMsg::Chat { text } => (
                ServerMsg::Chat { participant_id: participant.to_owned(), name: p.info.name.clone(), text: text.clone(), ts: unix_now() },
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
        for other in &mut self.participants {
            if include_sender || other.info.id != participant {
                other.send(out.clone());
            }
        }
    }

    /// A producer is known from the negotiation (or str0m's `MediaAdded`): everyone else gets
    /// a consumer of it, and the broadcast hears of it.
    pub(super) fn add_producer(&mut self, participant: &str, mid: Mid, kind: MediaKind, rids: Vec<Rid>) {
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
                other.add_consumer(&info, kind, self.rng.next_u64() as u16);
            }
            other.send(ServerMsg::ProducerAdded { producer: info.clone() });
        }
    }

    pub(super) fn remove_producer(&mut self, participant: &str, mid: Mid) {
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
}

/// The codec a publisher will send on `mid`: the first payload type of its negotiated list
/// (the remote's order of preference) that we accept.
pub(super) fn negotiated_params(rtc: &str0m::Rtc, mid: Mid) -> Option<PayloadParams> {
    let media = rtc.media(mid)?;
    media.remote_pts().iter().find_map(|pt| rtc.codec_config().find(|p| p.pt() == *pt).cloned())
}
