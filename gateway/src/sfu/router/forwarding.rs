//! The per-packet path: one publisher's RTP to every consumer of it (each on its own sequence
//! numbers, simulcast layer and timestamps) and to the compositor's leg, and the keyframe
//! requests that a consumer or leg waiting to start sends the publisher (PLI, then FIR).

use std::time::Instant;

use str0m::media::{KeyframeRequestKind, MediaKind};
use str0m::rtp::{RtpPacket, RtpWrite};

use super::super::forward::Decision;
use super::super::frame_size::keyframe_size;
use super::super::keyframe::{can_start_at, starts_keyframe};
use super::super::negotiation::ConsumerState;
use super::super::simulcast::{choose_layer, starts_below_target, LayerDecision};
use super::feed::{track_added, LegEvent};
use super::participant::{stream_slot, MAX_STREAMS};
use super::{Output, Router};
use crate::protocol::{ErrorCode, ServerMsg};

impl Router {
    /// Asks the producer's publisher for a keyframe of `layer` (simulcast; `None`: every
    /// layer), unless a request for that stream is already in flight (see `KeyframeRequests`).
    pub(super) fn request_keyframe(&mut self, producer_id: &str, layer: Option<usize>, now: Instant) {
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
                self.counters.keyframe_requests += 1;
                if kind == KeyframeRequestKind::Fir {
                    self.counters.keyframe_requests_fir += 1;
                }
            }
            return;
        }
    }

    /// Forwards one RTP packet of a producer to every active consumer of it.
    /// Returns the packets and payload bytes sent to consumers.
    pub(super) fn forward(&mut self, participant: &str, pkt: RtpPacket, now: Instant) -> (u64, u64) {
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
                if self.broadcasting {
                    if before.is_some() {
                        self.out.push_back(Output::Feed(LegEvent::TrackRemoved { producer_id: producer.id.clone() }));
                    }
                    if let Some(ev) = track_added(participant, producer) {
                        self.out.push_back(Output::Feed(ev));
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
            let (signals, who) = (&mut other.signals, &other.info.id);
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
                        signals.push_back(ServerMsg::error(
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
                    let fits = keyframe && starts_below_target(layers, layer, c.layer.target());
                    match c.layer.on_packet(layer, keyframe, fits) {
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
                let fits = keyframe && starts_below_target(layers, layer, leg.layer.target());
                match leg.layer.on_packet(layer, keyframe, fits) {
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
                    self.counters.leg_packets_out += 1;
                    self.out.push_back(Output::Transmit { to: leg.rtp_to, contents: datagram })
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
                self.request_keyframe(&producer_id, layer, now);
            }
            for l in (0..MAX_STREAMS).filter(|l| wanted_layers & (1 << l) != 0) {
                self.request_keyframe(&producer_id, Some(l), now);
            }
        }
        (sent, sent * pkt.payload.len() as u64)
    }
}
