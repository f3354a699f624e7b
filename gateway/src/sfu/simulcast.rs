//! Simulcast: a publisher sends the same camera in several layers (rids, lowest first, e.g.
//! `q` 180p, `h` 360p, `f` 720p); each consumer gets one layer, the highest that fits the
//! height its tile is shown at (`layer_preference`), and switches only at a keyframe of the new
//! layer so its decoder never sees a broken reference. Pure: the room feeds packets and time.

use std::time::{Duration, Instant};

/// A layer that sent nothing for this long is not chosen (e.g. the browser stopped sending its
/// top layer for lack of CPU or bandwidth, which Chrome does within a second or two of
/// starting on a busy host). Short, because whoever follows that layer sees nothing until it
/// is noticed, plus a keyframe of the next one; at 5 fps or more a live layer sends a frame
/// every 200 ms.
pub const LAYER_IDLE: Duration = Duration::from_millis(600);

/// How long a layer's bitrate is measured over.
const BITRATE_WINDOW: Duration = Duration::from_secs(1);

/// What the producer knows about one layer.
#[derive(Debug, Clone)]
pub struct Layer {
    pub rid: str0m::media::Rid,
    /// Frame height from the layer's last keyframe.
    pub height: Option<u32>,
    pub last_packet: Option<Instant>,
    /// Measured over the last whole window; 0 until one has passed.
    pub bitrate_bps: u64,
    window: Option<(Instant, u64)>,
}

impl Layer {
    pub fn new(rid: str0m::media::Rid) -> Self {
        Self { rid, height: None, last_packet: None, bitrate_bps: 0, window: None }
    }

    /// One packet of `bytes` payload arrived on this layer.
    pub fn on_packet(&mut self, bytes: usize, now: Instant) {
        self.last_packet = Some(now);
        let (start, sum) = self.window.get_or_insert((now, 0));
        *sum += bytes as u64;
        let dt = now.saturating_duration_since(*start);
        if dt >= BITRATE_WINDOW {
            self.bitrate_bps = (*sum as f64 * 8.0 / dt.as_secs_f64()) as u64;
            self.window = Some((now, 0));
        }
    }

    fn active(&self, now: Instant) -> bool {
        self.last_packet.is_some_and(|t| now.saturating_duration_since(t) < LAYER_IDLE)
    }
}

/// The layer to send a consumer whose tile is `max_height` pixels high: the tallest active
/// layer that fits, else the lowest active one; `None` when paused (`max_height` 0) or when
/// no layer is sending. Layers of unknown height count as fitting only if nothing known does.
pub fn choose_layer(layers: &[Layer], max_height: u32, now: Instant) -> Option<usize> {
    if max_height == 0 {
        return None;
    }
    // Called per packet for compositor legs: no allocation, layers are few (≤ 3).
    let active = |i: &usize| layers[*i].active(now);
    let fitting =
        (0..layers.len()).filter(active).filter(|&i| layers[i].height.is_some_and(|h| h <= max_height)).max_by_key(|&i| layers[i].height);
    if fitting.is_some() {
        return fitting;
    }
    // Nothing known fits: the lowest active layer by known height, else by SDP order.
    (0..layers.len()).filter(active).min_by_key(|&i| (layers[i].height.unwrap_or(u32::MAX), i))
}

/// Whether `layer` is no taller than `target` (both heights known from their keyframes), so a
/// consumer that shows nothing yet may start on it ([`LayerFollower::on_packet`]).
pub fn starts_below_target(layers: &[Layer], layer: usize, target: Option<usize>) -> bool {
    let Some(t) = target else { return false };
    if layer == t {
        return true;
    }
    match (layers.get(layer).and_then(|l| l.height), layers.get(t).and_then(|l| l.height)) {
        (Some(h), Some(ht)) => h <= ht,
        _ => false,
    }
}

/// Like [`choose_layer`], within a bandwidth budget: the tallest fitting layer whose measured
/// bitrate fits `budget_bps`, else the lowest active layer (a subscriber always gets some video
/// while it shows the tile; the lowest layer is the floor).
pub fn choose_layer_within(layers: &[Layer], max_height: u32, budget_bps: u64, now: Instant) -> Option<usize> {
    let ideal = choose_layer(layers, max_height, now)?;
    let ideal_height = layers[ideal].height;
    let affordable = (0..layers.len())
        .filter(|&i| layers[i].active(now) && layers[i].bitrate_bps <= budget_bps)
        .filter(|&i| i == ideal || (layers[i].height.is_some() && layers[i].height <= ideal_height))
        .max_by_key(|&i| (layers[i].height, layers[i].bitrate_bps));
    affordable.or_else(|| (0..layers.len()).filter(|&i| layers[i].active(now)).min_by_key(|&i| (layers[i].height.unwrap_or(u32::MAX), i)))
}

/// One subscriber's simulcast videos within its bandwidth estimate: `wants[i]` is a video's
/// layers and tile height; the biggest tiles are served first, each taking the best layer the
/// rest of the budget affords. Without an estimate, every video gets its ideal layer.
/// Returns each video's layer, and the bitrate the ideal layers would need (what BWE should
/// probe for).
pub fn allocate(budget_bps: Option<u64>, wants: &[(&[Layer], u32)], now: Instant) -> (Vec<Option<usize>>, u64) {
    let mut order: Vec<usize> = (0..wants.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(wants[i].1));
    let mut chosen = vec![None; wants.len()];
    let mut desired = 0u64;
    let mut left = budget_bps;
    for i in order {
        let (layers, max_height) = wants[i];
        if let Some(ideal) = choose_layer(layers, max_height, now) {
            desired += layers[ideal].bitrate_bps;
        }
        let pick = match left {
            None => choose_layer(layers, max_height, now),
            Some(b) => choose_layer_within(layers, max_height, b, now),
        };
        if let (Some(b), Some(p)) = (left.as_mut(), pick) {
            *b = b.saturating_sub(layers[p].bitrate_bps);
        }
        chosen[i] = pick;
    }
    (chosen, desired)
}

/// When a subscriber's bandwidth estimate limits its layers. An estimate is only trusted when
/// it says the network cannot carry what we send: while we send little (a paused tile, a
/// 180p layer) the estimator has nothing to measure and its figure stays low without meaning
/// anything. So the budget applies for [`BUDGET_HOLD`] after the estimate drops below 85 % of
/// what is being sent; then the ideal layers are tried again (an upgrade that probes).
#[derive(Debug, Clone, Default)]
pub struct BudgetGate {
    limited_until: Option<Instant>,
}

pub const BUDGET_HOLD: Duration = Duration::from_secs(10);

impl BudgetGate {
    /// The budget for this round: `Some(estimate)` while limited, else `None` (tile sizes decide).
    pub fn budget(&mut self, estimate: Option<u64>, sending_bps: u64, now: Instant) -> Option<u64> {
        let estimate = estimate?;
        if (estimate as f64) < sending_bps as f64 * 0.85 {
            self.limited_until = Some(now + BUDGET_HOLD);
        }
        match self.limited_until {
            Some(t) if now < t => Some(estimate),
            _ => {
                self.limited_until = None;
                None
            }
        }
    }
}

/// What to do with a packet of one layer, for one consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerDecision {
    /// Not the consumer's layer (or waiting for the target's keyframe): drop.
    Drop,
    /// Forward it.
    Forward,
    /// Forward it: the consumer switches to this layer here (re-anchor sequence numbers and
    /// timestamps).
    Switch,
}

/// One consumer's position in a simulcast producer.
#[derive(Debug, Clone, Default)]
pub struct LayerFollower {
    current: Option<usize>,
    target: Option<usize>,
}

impl LayerFollower {
    pub fn current(&self) -> Option<usize> {
        self.current
    }

    pub fn set_target(&mut self, target: Option<usize>) {
        self.target = target;
        if target.is_none() {
            // Paused: stop at once; resuming starts at a keyframe.
            self.current = None;
        }
    }

    /// Waiting for a keyframe of the target layer (the caller asks the publisher for one).
    pub fn wants_keyframe(&self) -> Option<usize> {
        self.target.filter(|t| Some(*t) != self.current)
    }

    pub fn target(&self) -> Option<usize> {
        self.target
    }

    /// `fits`: the packet's layer is no taller than the target ([`starts_below_target`]). One
    /// that shows nothing yet (a new leg or consumer, or one resuming) starts at the first
    /// keyframe of any such layer, then moves up at the target's own keyframe: under load,
    /// browsers keep the lowest layer flowing and send the upper ones at a few frames per
    /// second, so waiting for the target's keyframe left a tile empty for seconds after the
    /// lowest layer's keyframe had come.
    pub fn on_packet(&mut self, layer: usize, starts_keyframe: bool, fits: bool) -> LayerDecision {
        let starts_here = self.target == Some(layer) || (self.current.is_none() && self.target.is_some() && fits);
        if starts_keyframe && self.current != Some(layer) && starts_here {
            self.current = Some(layer);
            return LayerDecision::Switch;
        }
        if self.current == Some(layer) {
            LayerDecision::Forward
        } else {
            LayerDecision::Drop
        }
    }
}

/// Keeps a consumer's RTP timestamps continuous across layer switches (each layer has its own
/// random timestamp base): after a switch, the new layer's clock continues from the last
/// timestamp sent plus the wall time since.
#[derive(Debug, Clone, Default)]
pub struct TimestampRewriter {
    offset: u32,
    last: Option<(u32, Instant)>,
}

impl TimestampRewriter {
    /// Call on a switch, before rewriting its first packet.
    pub fn rebase(&mut self, in_ts: u32, now: Instant, clock_rate: u32) {
        if let Some((last_out, at)) = self.last {
            let elapsed = (now.saturating_duration_since(at).as_secs_f64() * f64::from(clock_rate)) as u32;
            // At least one tick: a new frame never repeats the last timestamp.
            self.offset = last_out.wrapping_add(elapsed.max(1)).wrapping_sub(in_ts);
        }
    }

    pub fn rewrite(&mut self, in_ts: u32, now: Instant) -> u32 {
        let out = in_ts.wrapping_add(self.offset);
        self.last = Some((out, now));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layers(now: Instant, heights: &[Option<u32>]) -> Vec<Layer> {
        heights
            .iter()
            .enumerate()
            .map(|(i, h)| Layer {
                rid: ["q", "h", "f"][i].into(),
                height: *h,
                last_packet: Some(now),
                bitrate_bps: [150_000, 500_000, 1_500_000][i],
                window: None,
            })
            .collect()
    }

    #[test]
    fn the_estimate_limits_only_after_it_shows_congestion_and_then_for_a_while() {
        let t0 = Instant::now();
        let mut g = BudgetGate::default();
        assert_eq!(g.budget(None, 2_000_000, t0), None, "no estimate yet");
        // Paused (sending little), low estimate: meaningless, not applied.
        assert_eq!(g.budget(Some(200_000), 40_000, t0), None);
        // Sending 2 Mbit/s, estimate 1 Mbit/s: congestion, the budget applies...
        assert_eq!(g.budget(Some(1_000_000), 2_000_000, t0), Some(1_000_000));
        // ...also once we send less because of it...
        assert_eq!(g.budget(Some(900_000), 700_000, t0 + Duration::from_secs(5)), Some(900_000));
        // ...until the hold ends: then the ideal layers are tried again.
        assert_eq!(g.budget(Some(900_000), 700_000, t0 + BUDGET_HOLD + Duration::from_millis(1)), None);
    }

    #[test]
    fn measures_each_layer_bitrate_over_a_second() {
        let t0 = Instant::now();
        let mut l = Layer::new("q".into());
        for k in 0..=10 {
            l.on_packet(1250, t0 + Duration::from_millis(100 * k));
        }
        // 11 packets of 1250 bytes over 1 s.
        assert_eq!(l.bitrate_bps, 110_000);
    }

    #[test]
    fn the_budget_lowers_layers_biggest_tile_first() {
        let now = Instant::now();
        let a = layers(now, &[Some(180), Some(360), Some(720)]);
        let b = layers(now, &[Some(180), Some(360), Some(720)]);
        // Plenty: both ideal (720 tile and 360 tile); desired is what the ideals need.
        let (c, desired) = allocate(Some(10_000_000), &[(&a, 720), (&b, 360)], now);
        assert_eq!((c, desired), (vec![Some(2), Some(1)], 2_000_000));
        // 1.8 Mbit/s: the big tile keeps 720p (1.5), the small one drops to 180p (0.15).
        assert_eq!(allocate(Some(1_800_000), &[(&a, 720), (&b, 360)], now).0, vec![Some(2), Some(0)]);
        // 700 kbit/s: 360p for the big tile, 180p for the other.
        assert_eq!(allocate(Some(700_000), &[(&a, 720), (&b, 360)], now).0, vec![Some(1), Some(0)]);
        // Next to nothing: everyone at the floor, not paused.
        assert_eq!(allocate(Some(10_000), &[(&a, 720), (&b, 360)], now).0, vec![Some(0), Some(0)]);
        // No estimate yet: the tile sizes alone decide; a paused tile takes nothing.
        assert_eq!(allocate(None, &[(&a, 0), (&b, 360)], now).0, vec![None, Some(1)]);
    }

    #[test]
    fn picks_the_tallest_layer_that_fits_the_tile() {
        let now = Instant::now();
        let l = layers(now, &[Some(180), Some(360), Some(720)]);
        assert_eq!(choose_layer(&l, u32::MAX, now), Some(2));
        assert_eq!(choose_layer(&l, 720, now), Some(2));
        assert_eq!(choose_layer(&l, 500, now), Some(1));
        assert_eq!(choose_layer(&l, 360, now), Some(1));
        assert_eq!(choose_layer(&l, 200, now), Some(0));
        assert_eq!(choose_layer(&l, 90, now), Some(0), "at least the lowest layer");
        assert_eq!(choose_layer(&l, 0, now), None, "paused");
    }

    #[test]
    fn idle_layers_are_skipped_and_unknown_heights_fall_back_to_order() {
        let now = Instant::now();
        let mut l = layers(now, &[Some(180), Some(360), Some(720)]);
        l[2].last_packet = Some(now - LAYER_IDLE - Duration::from_millis(1));
        assert_eq!(choose_layer(&l, 1080, now), Some(1), "the top layer stopped: take the next");
        l[0].last_packet = None;
        l[1].last_packet = None;
        assert_eq!(choose_layer(&l, 1080, now), None, "nothing sending");
        let unknown = layers(now, &[None, None, None]);
        assert_eq!(choose_layer(&unknown, 1080, now), Some(0), "before any keyframe: the lowest");
    }

    #[test]
    fn switches_only_at_a_keyframe_of_the_target() {
        let mut f = LayerFollower::default();
        f.set_target(Some(2));
        assert_eq!(f.wants_keyframe(), Some(2));
        assert_eq!(f.on_packet(2, false, true), LayerDecision::Drop);
        assert_eq!(f.on_packet(0, true, false), LayerDecision::Drop, "not the target, and taller than it");
        assert_eq!(f.on_packet(2, true, true), LayerDecision::Switch);
        assert_eq!(f.on_packet(2, false, true), LayerDecision::Forward);
        assert_eq!(f.wants_keyframe(), None);
        // Down to layer 0: layer 2 keeps flowing until layer 0's keyframe.
        f.set_target(Some(0));
        assert_eq!(f.on_packet(2, false, true), LayerDecision::Forward);
        assert_eq!(f.on_packet(0, false, true), LayerDecision::Drop);
        assert_eq!(f.on_packet(0, true, true), LayerDecision::Switch);
        assert_eq!(f.on_packet(2, false, true), LayerDecision::Drop);
        // Paused: nothing, at once.
        f.set_target(None);
        assert_eq!(f.on_packet(0, false, true), LayerDecision::Drop);
        assert_eq!(f.current(), None);
    }

    #[test]
    fn a_consumer_showing_nothing_starts_at_any_keyframe_no_taller_than_its_target() {
        let now = Instant::now();
        let l = layers(now, &[Some(180), Some(360), Some(720)]);
        let fits = |layer| starts_below_target(&l, layer, Some(1));
        assert!(fits(0) && fits(1) && !fits(2));
        let mut f = LayerFollower::default();
        f.set_target(Some(1));
        // 360p wanted; 180p's keyframe comes first (the browser is starved): start there...
        assert_eq!(f.on_packet(2, true, fits(2)), LayerDecision::Drop, "never taller than the target");
        assert_eq!(f.on_packet(0, true, fits(0)), LayerDecision::Switch);
        assert_eq!(f.on_packet(0, false, fits(0)), LayerDecision::Forward);
        // ...keep asking for the target...
        assert_eq!(f.wants_keyframe(), Some(1));
        assert_eq!(f.on_packet(1, false, fits(1)), LayerDecision::Drop);
        // ...and move up at its keyframe; a later lower keyframe does not pull it back down.
        assert_eq!(f.on_packet(1, true, fits(1)), LayerDecision::Switch);
        assert_eq!(f.on_packet(0, true, fits(0)), LayerDecision::Drop);
        assert_eq!(f.wants_keyframe(), None);
        // Unknown heights: only the target itself.
        let unknown = layers(now, &[None, Some(360), None]);
        assert!(!starts_below_target(&unknown, 0, Some(1)));
        assert!(starts_below_target(&unknown, 1, Some(1)));
        assert!(!starts_below_target(&l, 0, None), "paused");
    }

    #[test]
    fn timestamps_continue_across_a_switch() {
        let t0 = Instant::now();
        let mut ts = TimestampRewriter::default();
        assert_eq!(ts.rewrite(1000, t0), 1000, "the first layer passes through");
        assert_eq!(ts.rewrite(4000, t0 + Duration::from_millis(33)), 4000);
        // Another layer with an unrelated base, 33 ms later: continues 33 ms (2970 ticks) on.
        let t1 = t0 + Duration::from_millis(66);
        ts.rebase(u32::MAX - 10, t1, 90_000);
        let out = ts.rewrite(u32::MAX - 10, t1);
        assert_eq!(out, 4000 + 2970);
        assert_eq!(ts.rewrite((u32::MAX - 10).wrapping_add(3000), t1 + Duration::from_millis(33)), out.wrapping_add(3000), "wraps cleanly");
    }
}
