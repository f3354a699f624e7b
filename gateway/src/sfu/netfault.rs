//! Fault injection (tests only, `--fault-injection`): a participant's network made to drop all
//! datagrams (a blackhole, for ICE restart) or a share of them (loss, for NACK/RTX), for a while.
//! Pure: the worker asks `drops` for every datagram it would send to or accept from the peer.

use std::time::Instant;

/// Which way a datagram goes, seen from the participant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Way {
    /// From the SFU to the participant (its downlink).
    ToParticipant,
    /// From the participant to the SFU (its uplink).
    FromParticipant,
}

#[derive(Debug, Clone)]
pub struct NetFault {
    until: Instant,
    /// Only datagrams going this way are lost; `None`: both ways.
    only: Option<Way>,
    /// Datagrams dropped per 1000 (1000: all of them).
    loss_per_mille: u16,
    /// xorshift64 state: reproducible, and no `rand` dependency for a test feature.
    rng: u64,
}

impl NetFault {
    /// `loss_per_mille` of the datagrams (clamped to 0..=1000; 1000 is a blackhole) are dropped until `until`;
    /// `seed` picks which ones (different seeds for the two connections of a participant).
    pub fn loss(until: Instant, loss_per_mille: u16, seed: u64) -> Self {
        Self { until, only: None, loss_per_mille: loss_per_mille.min(1000), rng: seed.max(1) }
    }

    /// Loses datagrams going `way` only (the other way gets through).
    pub fn only(mut self, way: Option<Way>) -> Self {
        self.only = way;
        self
    }

    pub fn active(&self, now: Instant) -> bool {
        now < self.until
    }

    /// Whether this datagram, going `way`, is lost.
    pub fn drops(&mut self, now: Instant, way: Way) -> bool {
        if !self.active(now) || self.only.is_some_and(|only| only != way) {
            return false;
        }
        match self.loss_per_mille {
            0 => false,
            1000 => true,
            p => (self.next() % 1000) < u64::from(p),
        }
    }

    fn next(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn blackhole_drops_everything_until_it_ends() {
        let now = Instant::now();
        let mut f = NetFault::loss(now + Duration::from_secs(1), 1000, 3);
        assert!((0..100).all(|_| f.drops(now, Way::ToParticipant)));
        assert!(!f.drops(now + Duration::from_secs(1), Way::ToParticipant), "over at `until`");
    }

    #[test]
    fn loss_drops_about_its_share() {
        let now = Instant::now();
        let mut f = NetFault::loss(now + Duration::from_secs(1), 100, 7);
        let dropped = (0..10_000).filter(|_| f.drops(now, Way::ToParticipant)).count();
        assert!((800..=1200).contains(&dropped), "{dropped} of 10000 at 10 %");
        let mut none = NetFault::loss(now + Duration::from_secs(1), 0, 7);
        assert!(!(0..1000).any(|_| none.drops(now, Way::ToParticipant)));
    }

    #[test]
    fn loss_is_clamped_and_a_zero_seed_still_varies() {
        let now = Instant::now();
        let mut f = NetFault::loss(now + Duration::from_secs(1), 5000, 0);
        assert!((0..100).all(|_| f.drops(now, Way::ToParticipant)), "over 1000 per mille is everything");
        let mut g = NetFault::loss(now + Duration::from_secs(1), 500, 0);
        let dropped = (0..1000).filter(|_| g.drops(now, Way::FromParticipant)).count();
        assert!((350..=650).contains(&dropped), "{dropped}");
    }

    #[test]
    fn one_way_loss_spares_the_other_way() {
        let now = Instant::now();
        let mut f = NetFault::loss(now + Duration::from_secs(1), 1000, 9).only(Some(Way::ToParticipant));
        assert!(f.drops(now, Way::ToParticipant));
        assert!(!(0..100).any(|_| f.drops(now, Way::FromParticipant)));
    }
}
