//! Lip sync per participant from RTCP sender reports (what `rtpbin` does, as plain logic).
//!
//! Every track's sender report (SR) says "RTP timestamp R was captured at NTP time N" on the
//! publisher's capture clock, which audio and video of one participant share. The track's
//! jitter buffer maps R to a pipeline running time (`sr_running_time`, from its `handle-sync`
//! signal). So per track we know `offset = running − ntp`: how far behind capture that track
//! is presented. A track that arrives later (more network or SFU delay) has a larger offset.
//! Delaying each track by `max(offset) − offset` makes all of a participant's tracks present
//! the same capture instant at the same running time; the delay is applied as the jitter
//! buffer's `ts-offset` (see `pipeline`).
//!
//! Tracks without an SR are left alone (delay 0) and do not count; a participant with fewer
//! than two synced tracks has nothing to align. Delays above `MAX_DELAY_NS` mean the
//! mappings are inconsistent (a bogus SR, clocks that are not shared): the update is ignored.
//! A track's delay only moves when the wanted one differs by `HYSTERESIS_NS` or more, so SR
//! jitter does not make the output jitter.
//!
//! A track's offset moves only when three SRs in a row say it moved (by `HYSTERESIS_NS` or
//! more, the same way); it then takes their median. On a starved host the jitter buffer's own
//! timing jumps (its skew estimate follows packets read late) by 150–800 ms for one or two SRs
//! and comes back: followed SR by SR, a participant's delays changed about twice a second, each
//! change held back or dropped frames, and the gradual `ts-offset` adjustment never even
//! reached a delay before it reversed.

use std::collections::{BTreeMap, HashMap};

/// Largest delay applied; a larger one is treated as bogus.
pub const MAX_DELAY_NS: u64 = 1_000_000_000;
/// A track's delay changes only when the wanted delay differs by at least this much.
pub const HYSTERESIS_NS: u64 = 15_000_000;
/// SRs in a row that must agree before a track's offset moves.
pub const CONFIRMING_SRS: usize = 3;

/// The fields of an RTCP sender report that matter here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderReport {
    pub ssrc: u32,
    /// 64-bit NTP timestamp (seconds since 1900 in the high 32 bits, fraction in the low).
    pub ntp: u64,
    pub rtp_time: u32,
}

/// The SR at the start of an RTCP (compound) packet, if it is one (version 2, type 200, at
/// least the 28 bytes of header + sender info).
pub fn parse_sender_report(data: &[u8]) -> Option<SenderReport> {
    if data.len() < 28 || data[0] >> 6 != 2 || data[1] != 200 {
        return None;
    }
    let words = u16::from_be_bytes([data[2], data[3]]) as usize;
    if (words + 1) * 4 < 28 {
        return None;
    }
    let u32_at = |i: usize| u32::from_be_bytes([data[i], data[i + 1], data[i + 2], data[i + 3]]);
    Some(SenderReport { ssrc: u32_at(4), ntp: ((u32_at(8) as u64) << 32) | u32_at(12) as u64, rtp_time: u32_at(16) })
}

/// A 64-bit NTP timestamp in nanoseconds (since 1900).
pub fn ntp_to_ns(ntp: u64) -> u64 {
    ((ntp as u128 * 1_000_000_000) >> 32) as u64
}

/// The running time the jitter buffer gives RTP timestamp `sr_ext_rtptime` (extended, the
/// SR's), from its sync values (`handle-sync`: `base-rtptime`, `base-time`, `clock-rate`):
/// `base_time + (sr_ext_rtptime − base_rtptime) / clock_rate`, as `gst_rtp_bin_associate`
/// computes it. None when a value is missing (the jitter buffer passes −1 = u64::MAX) or the
/// result would be negative.
pub fn sr_running_time(base_rtptime: u64, base_time: u64, clock_rate: u32, sr_ext_rtptime: u64) -> Option<u64> {
    if [base_rtptime, base_time, sr_ext_rtptime].contains(&u64::MAX) || clock_rate == 0 {
        return None;
    }
    let diff = sr_ext_rtptime as i128 - base_rtptime as i128;
    let rt = base_time as i128 + diff * 1_000_000_000 / clock_rate as i128;
    u64::try_from(rt).ok()
}

/// One SR, mapped: the capture instant `ntp_ns` is presented at running time `running_ns`
/// (before any delay of ours).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapping {
    pub ntp_ns: u64,
    pub running_ns: u64,
}

impl Mapping {
    fn offset(&self) -> i128 {
        self.running_ns as i128 - self.ntp_ns as i128
    }
}

/// A delay that has to be applied to a track's jitter buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DelayChange {
    pub track_id: String,
    pub delay_ns: u64,
}

/// The outcome of an SR or a track removal.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Update {
    /// Delays to apply now (only tracks whose delay changed).
    pub changes: Vec<DelayChange>,
    /// The participant's mappings were inconsistent (a delay above `MAX_DELAY_NS`): the
    /// delays were left as they were. Carries the wanted delay, ns.
    pub bogus: Option<u64>,
}

#[derive(Debug, Default)]
struct Track {
    participant_id: String,
    offset: Option<i128>,
    /// The SRs since the last that agreed with `offset`, all off it the same way.
    moved: Vec<i128>,
    delay_ns: u64,
}

impl Track {
    /// An SR's offset: the first sets the track's offset; later ones move it once
    /// [`CONFIRMING_SRS`] in a row are off it the same way, to their median.
    fn observe(&mut self, o: i128) {
        let Some(current) = self.offset else {
            self.offset = Some(o);
            return;
        };
        if o.abs_diff(current) < HYSTERESIS_NS as u128 {
            self.moved.clear();
            return;
        }
        if self.moved.first().is_some_and(|m| (*m > current) != (o > current)) {
            self.moved.clear();
        }
        self.moved.push(o);
        if self.moved.len() >= CONFIRMING_SRS {
            self.moved.sort_unstable();
            self.offset = Some(self.moved[self.moved.len() / 2]);
            self.moved.clear();
        }
    }
}

/// The lip sync state of all participants.
#[derive(Debug, Default)]
pub struct LipSync {
    tracks: HashMap<String, Track>,
}

impl LipSync {
    pub fn new() -> LipSync {
        LipSync::default()
    }

    pub fn add_track(&mut self, track_id: &str, participant_id: &str) {
        self.tracks.insert(track_id.to_string(), Track { participant_id: participant_id.to_string(), ..Track::default() });
    }

    /// Forget a track; the rest of its participant is aligned again.
    pub fn remove_track(&mut self, track_id: &str) -> Update {
        match self.tracks.remove(track_id) {
            Some(t) => self.align(&t.participant_id),
            None => Update::default(),
        }
    }

    /// A new SR mapping for a track (unknown tracks are ignored).
    pub fn observe(&mut self, track_id: &str, mapping: Mapping) -> Update {
        let Some(t) = self.tracks.get_mut(track_id) else {
            return Update::default();
        };
        t.observe(mapping.offset());
        let pid = t.participant_id.clone();
        self.align(&pid)
    }

    /// The delay currently applied to a track, ns.
    pub fn delay_ns(&self, track_id: &str) -> Option<u64> {
        self.tracks.get(track_id).map(|t| t.delay_ns)
    }

    /// Participant → track → applied delay (ns), for participants with at least two tracks
    /// that have an SR (only those tracks).
    pub fn report(&self) -> BTreeMap<String, BTreeMap<String, u64>> {
        let mut out: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        for (tid, t) in &self.tracks {
            if t.offset.is_some() {
                out.entry(t.participant_id.clone()).or_default().insert(tid.clone(), t.delay_ns);
            }
        }
        out.retain(|_, tracks| tracks.len() >= 2);
        out
    }

    fn align(&mut self, participant_id: &str) -> Update {
        let mine = || self.tracks.iter().filter(move |(_, t)| t.participant_id == participant_id);
        let offsets: Vec<i128> = mine().filter_map(|(_, t)| t.offset).collect();
        let max = offsets.iter().copied().max();
        let synced = offsets.len() >= 2;
        // wanted delay per track of the participant
        let mut wanted: Vec<(String, u64)> = Vec::new();
        for (tid, t) in mine() {
            let want = match (synced, t.offset, max) {
                (true, Some(o), Some(m)) => (m - o) as u64,
                _ => 0,
            };
            wanted.push((tid.clone(), want));
        }
        let mut update = Update::default();
        if let Some(worst) = wanted.iter().map(|(_, w)| *w).max() {
            if worst > MAX_DELAY_NS {
                update.bogus = Some(worst);
                return update;
            }
        }
        wanted.sort();
        for (tid, want) in wanted {
            let t = self.tracks.get_mut(&tid).expect("a track of the participant");
            // Back to 0 (no longer synced) always applies; otherwise only real changes.
            let moved = want.abs_diff(t.delay_ns) >= HYSTERESIS_NS || (want == 0 && t.delay_ns > 0);
            if moved {
                t.delay_ns = want;
                update.changes.push(DelayChange { track_id: tid, delay_ns: want });
            }
        }
        update
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn sr(ssrc: u32, ntp: u64, rtp: u32) -> Vec<u8> {
        let mut b = vec![0x80, 200, 0, 6];
        b.extend(ssrc.to_be_bytes());
        b.extend(ntp.to_be_bytes());
        b.extend(rtp.to_be_bytes());
        b.extend(10u32.to_be_bytes()); // packets
        b.extend(1000u32.to_be_bytes()); // octets
        b
    }

    /// capture instant `ntp_ms` presented at `running_ms`
    fn m(ntp_ms: u64, running_ms: u64) -> Mapping {
        Mapping { ntp_ns: 3_900_000_000_000_000_000 + ntp_ms * MS, running_ns: running_ms * MS }
    }

    fn delays(ls: &LipSync, ids: &[&str]) -> Vec<u64> {
        ids.iter().map(|t| ls.delay_ns(t).unwrap() / MS).collect()
    }

    /// Participant "p" with audio "a" and video "v", each with a first SR at NTP 0 mapped to
    /// these running times.
    fn audio_and_video(audio_running_ms: u64, video_running_ms: u64) -> LipSync {
        let mut ls = LipSync::new();
        ls.add_track("a", "p");
        ls.add_track("v", "p");
        ls.observe("a", m(0, audio_running_ms));
        ls.observe("v", m(0, video_running_ms));
        ls
    }

    #[test]
    fn parses_a_plain_sender_report_and_a_compound_one() {
        let ntp = (3_900_000_000u64 << 32) | 0x8000_0000;
        let want = SenderReport { ssrc: 0xdead_beef, ntp, rtp_time: 123_456 };
        assert_eq!(parse_sender_report(&sr(0xdead_beef, ntp, 123_456)), Some(want));
        let mut compound = sr(0xdead_beef, ntp, 123_456);
        compound.extend([0x81, 202, 0, 2, 0xde, 0xad, 0xbe, 0xef, 1, 1, b'x', 0]);
        assert_eq!(parse_sender_report(&compound), Some(want));
        // a receiver report, a truncated SR, version 1
        let mut rr = sr(1, ntp, 0);
        rr[1] = 201;
        assert_eq!(parse_sender_report(&rr), None);
        assert_eq!(parse_sender_report(&sr(1, ntp, 0)[..27]), None);
        let mut v1 = sr(1, ntp, 0);
        v1[0] = 0x40;
        assert_eq!(parse_sender_report(&v1), None);
        assert_eq!(ntp_to_ns(ntp), 3_900_000_000 * 1_000_000_000 + 500_000_000);
    }

    #[test]
    fn running_time_of_the_sr_follows_the_jitterbuffer_mapping() {
        // base: RTP 90000 at 10 s; the SR's RTP 135000 is half a second later
        assert_eq!(sr_running_time(90_000, 10_000 * MS, 90_000, 135_000), Some(10_500 * MS));
        // an SR from before the base
        assert_eq!(sr_running_time(96_000, 10_000 * MS, 48_000, 48_000), Some(9_000 * MS));
        assert_eq!(sr_running_time(u64::MAX, 10, 48_000, 5), None);
        assert_eq!(sr_running_time(1, u64::MAX, 48_000, 5), None);
        assert_eq!(sr_running_time(1, 10, 48_000, u64::MAX), None);
        assert_eq!(sr_running_time(1, 10, 0, 5), None);
        assert_eq!(sr_running_time(96_000, 0, 48_000, 0), None);
    }

    #[test]
    fn the_later_track_sets_the_pace_the_others_wait_for_it() {
        let mut ls = LipSync::new();
        ls.add_track("a", "p");
        ls.add_track("v", "p");
        // only audio has an SR: nothing to align
        assert_eq!(ls.observe("a", m(1000, 5050)), Update::default());
        assert!(ls.report().is_empty());
        // video shows the same capture instant 300 ms later: audio waits 300 ms
        let u = ls.observe("v", m(1000, 5350));
        assert_eq!(u.changes, vec![DelayChange { track_id: "a".into(), delay_ns: 300 * MS }]);
        assert_eq!(delays(&ls, &["a", "v"]), [300, 0]);
        let report = ls.report();
        assert_eq!(report["p"]["a"], 300 * MS);
        assert_eq!(report["p"]["v"], 0);
        // later SRs describe other instants: only offsets matter
        assert!(ls.observe("a", m(6000, 10_050)).changes.is_empty());
        // video gets faster (three SRs say so): audio waits less
        assert!(ls.observe("v", m(7000, 11_150)).changes.is_empty());
        assert!(ls.observe("v", m(7500, 11_650)).changes.is_empty());
        let u = ls.observe("v", m(8000, 12_150));
        assert_eq!(u.changes[0].delay_ns, 100 * MS);
        // audio becomes the later one (in three SRs): video waits, audio's delay goes
        ls.observe("a", m(8000, 12_250));
        ls.observe("a", m(9000, 13_250));
        let u = ls.observe("a", m(10_000, 14_250));
        assert_eq!(delays(&ls, &["a", "v"]), [0, 100]);
        assert_eq!(u.changes.len(), 2);
    }

    #[test]
    fn small_changes_are_ignored() {
        let mut ls = audio_and_video(1000, 1200);
        assert_eq!(delays(&ls, &["a", "v"]), [200, 0]);
        for (i, jitter) in [10u64, 0, 14, 3, 9].into_iter().enumerate() {
            let u = ls.observe("v", m(i as u64 * 1000, i as u64 * 1000 + 1200 + jitter));
            assert!(u.changes.is_empty(), "jitter {jitter}: {u:?}");
        }
        assert_eq!(delays(&ls, &["a", "v"]), [200, 0]);
        assert!(ls.observe("v", m(9000, 10_216)).changes.is_empty());
        assert!(ls.observe("v", m(10_000, 11_216)).changes.is_empty());
        let u = ls.observe("v", m(11_000, 12_216));
        assert_eq!(u.changes[0].delay_ns, 216 * MS, "16 ms more in three SRs in a row");
    }

    #[test]
    fn a_jump_of_one_or_two_srs_is_not_followed_a_lasting_one_is() {
        // What a starved jitter buffer does: video's timing jumps 600 ms for two SRs.
        let mut ls = audio_and_video(1000, 1050);
        assert_eq!(delays(&ls, &["a", "v"]), [50, 0]);
        for i in 1..=2 {
            let u = ls.observe("v", m(i * 1000, i * 1000 + 1650));
            assert!(u.changes.is_empty(), "SR {i} of the jump: {u:?}");
        }
        assert!(ls.observe("v", m(3000, 4050)).changes.is_empty(), "back");
        // A lasting change: followed at its third SR.
        assert!(ls.observe("v", m(4000, 5350)).changes.is_empty());
        assert!(ls.observe("v", m(5000, 6350)).changes.is_empty());
        let u = ls.observe("v", m(6000, 7350));
        assert_eq!(u.changes, vec![DelayChange { track_id: "a".into(), delay_ns: 350 * MS }]);
    }

    #[test]
    fn bogus_delays_are_ignored() {
        let mut ls = audio_and_video(1000, 1100);
        assert_eq!(delays(&ls, &["a", "v"]), [100, 0]);
        // one video SR 5 s off: filtered out
        let u = ls.observe("v", m(0, 6000));
        assert_eq!(u, Update::default());
        // three: reported as bogus, the delays left as they were
        ls.observe("v", m(0, 6000));
        let u = ls.observe("v", m(0, 6000));
        assert_eq!(u.changes, vec![]);
        assert_eq!(u.bogus, Some(5000 * MS));
        assert_eq!(delays(&ls, &["a", "v"]), [100, 0]);
        // sane ones again
        for _ in 0..3 {
            ls.observe("v", m(0, 1150));
        }
        let u = ls.observe("v", m(0, 1150));
        assert_eq!(u.bogus, None);
        assert_eq!(delays(&ls, &["a", "v"]), [150, 0]);
    }

    #[test]
    fn participants_are_separate_and_removed_tracks_forgotten() {
        let mut ls = LipSync::new();
        ls.add_track("a1", "p1");
        ls.add_track("v1", "p1");
        ls.add_track("s1", "p1"); // a screen share without SRs
        ls.add_track("a2", "p2");
        ls.add_track("v2", "p2");
        ls.observe("a1", m(0, 1000));
        ls.observe("v1", m(0, 1300));
        // p2's clock is unrelated to p1's
        ls.observe("a2", m(50_000, 2000));
        ls.observe("v2", m(50_000, 1900));
        assert_eq!(delays(&ls, &["a1", "v1", "s1", "a2", "v2"]), [300, 0, 0, 0, 100]);
        let report = ls.report();
        assert_eq!(report.len(), 2);
        assert_eq!(report["p1"].len(), 2, "no SR, not reported: {report:?}");
        // p1's video goes: its audio has nothing to wait for
        let u = ls.remove_track("v1");
        assert_eq!(u.changes, vec![DelayChange { track_id: "a1".into(), delay_ns: 0 }]);
        assert_eq!(ls.delay_ns("v1"), None);
        assert_eq!(ls.report().keys().collect::<Vec<_>>(), ["p2"]);
        // SRs of tracks that are gone (or never were) change nothing
        assert_eq!(ls.observe("v1", m(0, 5000)), Update::default());
        assert_eq!(ls.remove_track("zz"), Update::default());
    }

    #[test]
    fn a_single_track_is_never_delayed() {
        let mut ls = LipSync::new();
        ls.add_track("a", "p");
        assert!(ls.observe("a", m(0, 1000)).changes.is_empty());
        assert!(ls.observe("a", m(0, 1500)).changes.is_empty());
        assert_eq!(ls.delay_ns("a"), Some(0));
        assert!(ls.report().is_empty());
    }
}
