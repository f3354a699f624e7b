//! Signaling with one participant: its publish offers (answered, producers made at once), the
//! answers to our subscribe offers (with rollback when one is refused), trickled candidates,
//! ICE restarts and the layer each remote video is shown at.

use std::time::Instant;

use str0m::change::{SdpAnswer, SdpOffer};
use str0m::media::{MediaKind, Mid, Rid, Rids};
use str0m::Candidate;

use super::super::negotiation::ConsumerState;
use super::super::peer::Peer;
use super::{rtc_config, Router};
use crate::protocol::{ErrorCode, PcRole, ServerMsg};

impl Router {
    /// `publish_offer`: create the publish connection on first use, answer the offer.
    pub(super) fn publish_offer(&mut self, participant: &str, sdp: &str, now: Instant) {
        let (ice_lite, local) = (self.config.ice_lite, self.config.candidate.clone());
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
        let peer = p.publish.get_or_insert_with(|| {
            let mut rtc = rtc_config(ice_lite).build(now);
            rtc.add_local_candidate(local.clone());
            Peer::new(rtc, now)
        });
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
                p.send(candidate_msg(PcRole::Publish, &local, sdp));
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

    pub(super) fn subscribe_answer(&mut self, participant: &str, sdp: &str, now: Instant) {
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
            self.request_keyframe(&producer_id, None, now);
        }
    }

    /// The client's subscribe connection lost media while signaling works: offer again with
    /// fresh ICE credentials (after any offer in flight is answered).
    pub(super) fn restart_subscribe_ice(&mut self, participant: &str) {
        if let Some(p) = self.get_mut(participant) {
            tracing::info!(participant, "ICE restart of the subscribe connection requested");
            p.ice_restart = true;
            p.renegotiate = true;
        }
    }

    /// The subscriber shows `producer_id` at most `max_height` pixels high (0: not at all).
    /// Unknown producers are ignored: the message may cross the producer's removal.
    pub(super) fn set_layer_preference(&mut self, participant: &str, producer_id: &str, max_height: u32) {
        if let Some(c) = self.get_mut(participant).and_then(|p| p.consumers.iter_mut().find(|c| c.producer_id == producer_id)) {
            c.max_height = max_height;
            // Act on it now; the next allocation round takes it into account.
            c.allocated = None;
        }
    }

    pub(super) fn add_remote_candidate(&mut self, participant: &str, role: PcRole, candidate: &str) {
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
}

/// Our one candidate serves the whole bundle: it names the first m-line of the connection's
/// SDP `sdp` (the publisher's offer, or our subscribe offer), as `addIceCandidate` needs.
pub(super) fn candidate_msg(pc: PcRole, c: &Candidate, sdp: &str) -> ServerMsg {
    let sdp_mid = crate::protocol::first_mid(sdp);
    ServerMsg::Candidate { pc, candidate: c.to_sdp_string(), sdp_mid, sdp_mline_index: 0 }
}
