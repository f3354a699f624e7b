//! UDP port pairs for plain-RTP legs (even RTP port, RTCP on the next odd one), from a
//! configured range. Any number of legs up to the range size; ports come back when a leg ends.

use std::collections::BTreeSet;
use std::ops::Range;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("no free RTP port pair in {start}..{end} ({in_use} pairs in use); widen --rtp-ports or end a broadcast")]
pub struct PortsExhausted {
    pub start: u16,
    pub end: u16,
    pub in_use: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct PortPair {
    pub rtp: u16,
    pub rtcp: u16,
}

/// True if both ports of the pair can be bound on loopback now (no other process holds them).
pub fn pair_is_free(pair: PortPair) -> bool {
    let bind = |port| std::net::UdpSocket::bind((std::net::Ipv4Addr::LOCALHOST, port)).is_ok();
    bind(pair.rtp) && bind(pair.rtcp)
}

#[derive(Debug)]
pub struct PortAllocator {
    range: Range<u16>,
    in_use: BTreeSet<u16>,
    /// Where the next search starts, so a just-freed pair is not reused at once
    /// (late packets for the old leg must not reach a new one).
    cursor: u16,
}

impl PortAllocator {
    pub fn new(range: Range<u16>) -> Self {
        let start = range.start + (range.start % 2);
        Self { range: start..range.end, in_use: BTreeSet::new(), cursor: start }
    }

    pub fn allocate(&mut self) -> Result<PortPair, PortsExhausted> {
        self.allocate_where(|_| true)
    }

    /// Like `allocate`, skipping pairs `usable` refuses (e.g. ports another process holds).
    pub fn allocate_where(&mut self, usable: impl Fn(PortPair) -> bool) -> Result<PortPair, PortsExhausted> {
        let pairs = (self.range.end.saturating_sub(self.range.start)) / 2;
        for i in 0..pairs {
            let offset = (self.cursor - self.range.start) / 2;
            let rtp = self.range.start + ((offset + i) % pairs) * 2;
            if !self.in_use.contains(&rtp) && usable(PortPair { rtp, rtcp: rtp + 1 }) {
                self.in_use.insert(rtp);
                let next = rtp + 2;
                self.cursor = if next + 1 < self.range.end { next } else { self.range.start };
                return Ok(PortPair { rtp, rtcp: rtp + 1 });
            }
        }
        Err(PortsExhausted { start: self.range.start, end: self.range.end, in_use: self.in_use.len() })
    }

    pub fn release(&mut self, pair: PortPair) {
        self.in_use.remove(&pair.rtp);
    }

    pub fn in_use(&self) -> usize {
        self.in_use.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_even_odd_pairs_until_exhausted_then_reuses_released() {
        let mut a = PortAllocator::new(41001..41008); // rounds up to 41002: pairs 41002, 41004, 41006
        let p1 = a.allocate().unwrap();
        assert_eq!(p1, PortPair { rtp: 41002, rtcp: 41003 });
        let p2 = a.allocate().unwrap();
        let p3 = a.allocate().unwrap();
        assert_eq!((p2.rtp, p3.rtp), (41004, 41006));
        let err = a.allocate().unwrap_err();
        assert_eq!(err.in_use, 3);
        assert!(err.to_string().contains("widen --rtp-ports"));
        a.release(p2);
        assert_eq!(a.allocate().unwrap(), p2);
        assert_eq!(a.in_use(), 3);
    }

    #[test]
    fn released_pairs_are_not_reused_immediately_when_others_are_free() {
        let mut a = PortAllocator::new(50000..50010);
        let p1 = a.allocate().unwrap();
        a.release(p1);
        assert_ne!(a.allocate().unwrap(), p1);
    }

    #[test]
    fn pairs_refused_by_the_probe_are_skipped() {
        let mut a = PortAllocator::new(50000..50010);
        let p = a.allocate_where(|p| p.rtp != 50000 && p.rtp != 50002).unwrap();
        assert_eq!(p.rtp, 50004);
        assert!(a.allocate_where(|_| false).is_err());
    }

    #[test]
    fn many_legs() {
        let mut a = PortAllocator::new(20000..30000);
        let pairs: Vec<_> = (0..5000).map(|_| a.allocate().unwrap()).collect();
        assert_eq!(pairs.iter().collect::<BTreeSet<_>>().len(), 5000);
        assert!(a.allocate().is_err());
    }
}
