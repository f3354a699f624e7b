//! What each str0m connection reports, and what the router does about it: RTP to forward,
//! producers appearing (str0m's `MediaAdded`) or going, keyframe requests from subscribers,
//! publishers' sender reports, stats, bandwidth estimates, ICE and DTLS state.

use std::time::{Duration, Instant};

use str0m::bwe::BweKind;
use str0m::media::{MediaKind, Rid};
use str0m::{Event, IceConnectionState};

use super::super::leg::PublisherClock;
use super::{Counters, Router};
use crate::protocol::PcRole;

impl Router {
    /// Milliseconds since a peer's first datagram (its first ICE check), for the join timeline in the log.
    fn since_first_datagram(&mut self, participant: &str, role: PcRole, now: Instant) -> Option<u128> {
        self.get_mut(participant)?.peer_mut(role)?.since_first_datagram(now).map(|d| d.as_millis())
    }

    /// Handles one str0m event from a participant's peer.
    pub(super) fn on_event(&mut self, participant: &str, role: PcRole, event: Event, now: Instant) {
        match event {
            Event::RtpPacket(pkt) if role == PcRole::Publish => {
                self.counters.rtp_packets_in += 1;
                self.counters.rtp_bytes_in += pkt.payload.len() as u64;
                let (packets, bytes) = self.forward(participant, pkt, now);
                self.counters.rtp_packets_out += packets;
                self.counters.rtp_bytes_out += bytes;
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
                    self.request_keyframe(&producer, layer, now);
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
                if let Some(prod) = self
                    .participants
                    .iter_mut()
                    .find(|p| p.info.id == participant)
                    .and_then(|p| p.producers.iter_mut().find(|x| x.mid == s.mid))
                {
                    self.counters.nacks_sent += s.nacks.saturating_sub(prod.nacks);
                    prod.nacks = s.nacks;
                }
                if let Some(loss) = s.loss {
                    let ppm = (loss.clamp(0.0, 1.0) * 1e6) as u64;
                    self.counters.ingress_loss_ppm = self.counters.ingress_loss_ppm.max(ppm);
                }
                note_rtt(&mut self.counters, s.rtt);
            }
            Event::MediaEgressStats(s) if role == PcRole::Subscribe => {
                if let Some(p) = self.get_mut(participant) {
                    p.quality.on_egress(s.loss, s.rtt);
                }
                note_rtt(&mut self.counters, s.rtt);
                if let Some(c) = self
                    .participants
                    .iter_mut()
                    .find(|p| p.info.id == participant)
                    .and_then(|p| p.consumers.iter_mut().find(|c| c.state.mid() == Some(s.mid)))
                {
                    self.counters.nacks_received += s.nacks.saturating_sub(c.nacks);
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
                    self.request_keyframe(&producer, layer, now);
                }
            }
            _ => {}
        }
    }
}

/// Keeps the worst RTT of the stats window for `/metrics`.
fn note_rtt(counters: &mut Counters, rtt: Option<Duration>) {
    if let Some(rtt) = rtt {
        let us = u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX);
        counters.rtt_max_us = counters.rtt_max_us.max(us);
    }
}
