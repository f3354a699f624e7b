//! Simulcast within each subscriber's bandwidth: the estimate (str0m's TWCC BWE) is shared
//! among the videos it receives, biggest tiles first, and the estimator is told what the ideal
//! layers would need so it probes for that much.

use std::collections::HashMap;
use std::time::Instant;

use str0m::bwe::Bitrate;
use str0m::media::MediaKind;

use super::super::negotiation::ConsumerState;
use super::super::simulcast::{allocate, Layer};
use super::Router;

impl Router {
    /// Shares each subscriber's bandwidth estimate among the simulcast videos it receives
    /// (biggest tiles first), and tells its BWE what the ideal layers would need so it probes
    /// for that much.
    pub(super) fn allocate_bandwidth(&mut self, now: Instant) {
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
}
