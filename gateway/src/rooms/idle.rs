//! When a broadcast stops and when a room ends by themselves (pure: no clock, no I/O).
//!
//! A broadcast lives only while it has an audience of publishers: once its room has had no
//! participant with a producer for the broadcast limit, it stops. A room with nobody in it
//! for the room limit ends (its broadcast, if any, stops with it). The lifecycle task
//! (`rooms::lifecycle`) observes every room once a tick and does what [`RoomIdle::tick`] says.

use std::time::{Duration, Instant};

/// How long a broadcast may go without a publisher and a room without anybody; `None`: for ever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdleLimits {
    pub broadcast: Option<Duration>,
    pub room: Option<Duration>,
}

impl IdleLimits {
    /// From the flags' seconds (`--broadcast-idle-stop-secs`, `--room-idle-end-secs`); 0 is never.
    pub fn from_secs(broadcast: u64, room: u64) -> Self {
        let limit = |secs| (secs > 0).then(|| Duration::from_secs(secs));
        Self { broadcast: limit(broadcast), room: limit(room) }
    }

    pub fn never() -> Self {
        Self { broadcast: None, room: None }
    }
}

/// What a room looks like at one observation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Occupancy {
    /// Participants with a signaling session in the room.
    pub participants: usize,
    pub broadcast: BroadcastSeen,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BroadcastSeen {
    /// The room has no broadcast.
    None,
    /// It has one (running or failed), and this many participants publish at least one track.
    Publishers(usize),
    /// It has one, but who publishes is unknown now (the room's SFU worker did not answer, e.g.
    /// while it is being replaced): the broadcast's idle clock neither starts nor stops.
    Unknown,
}

/// What is due now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Stop the room's broadcast: it has had no publisher for `idle`.
    StopBroadcast { idle: Duration },
    /// End the room, stopping its broadcast if it has one: nobody has been in it for `empty`.
    EndRoom { empty: Duration },
}

/// When the actions are due if nothing changes (`None`: not scheduled).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Deadlines {
    pub stop_broadcast: Option<Instant>,
    pub end_room: Option<Instant>,
}

/// One room's idle clocks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoomIdle {
    /// Since when the room's broadcast has had no publisher (`None`: it has one, or no broadcast).
    no_publisher_since: Option<Instant>,
    /// Since when nobody has been in the room.
    empty_since: Option<Instant>,
}

impl RoomIdle {
    /// Takes one observation: a clock starts at the first observation of its idle condition and
    /// is cleared by the first observation without it.
    pub fn observe(&mut self, seen: Occupancy, now: Instant) {
        match seen.broadcast {
            BroadcastSeen::None => self.no_publisher_since = None,
            BroadcastSeen::Publishers(0) => {
                self.no_publisher_since.get_or_insert(now);
            }
            BroadcastSeen::Publishers(_) => self.no_publisher_since = None,
            BroadcastSeen::Unknown => {}
        }
        if seen.participants == 0 {
            self.empty_since.get_or_insert(now);
        } else {
            self.empty_since = None;
        }
    }

    pub fn deadlines(&self, limits: IdleLimits) -> Deadlines {
        Deadlines {
            stop_broadcast: self.no_publisher_since.zip(limits.broadcast).map(|(since, limit)| since + limit),
            end_room: self.empty_since.zip(limits.room).map(|(since, limit)| since + limit),
        }
    }

    /// The action due at `now`, if any; ending the room comes first (it stops the broadcast
    /// too). The answered action's clock is cleared, so it is not repeated: if it did not take
    /// effect, the next observation starts its clock again.
    pub fn due(&mut self, limits: IdleLimits, now: Instant) -> Option<Action> {
        let d = self.deadlines(limits);
        if let (Some(at), Some(since)) = (d.end_room, self.empty_since) {
            if now >= at {
                self.empty_since = None;
                self.no_publisher_since = None;
                return Some(Action::EndRoom { empty: now.saturating_duration_since(since) });
            }
        }
        if let (Some(at), Some(since)) = (d.stop_broadcast, self.no_publisher_since) {
            if now >= at {
                self.no_publisher_since = None;
                return Some(Action::StopBroadcast { idle: now.saturating_duration_since(since) });
            }
        }
        None
    }

    /// [`observe`](Self::observe), then [`due`](Self::due).
    pub fn tick(&mut self, seen: Occupancy, limits: IdleLimits, now: Instant) -> Option<Action> {
        self.observe(seen, now);
        self.due(limits, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: IdleLimits = IdleLimits { broadcast: Some(Duration::from_secs(60)), room: Some(Duration::from_secs(300)) };

    fn at(t0: Instant, secs: u64) -> Instant {
        t0 + Duration::from_secs(secs)
    }

    fn seen(participants: usize, broadcast: BroadcastSeen) -> Occupancy {
        Occupancy { participants, broadcast }
    }

    /// Runs observations (second, occupancy) and collects what fired at which second.
    fn run(steps: &[(u64, Occupancy)], limits: IdleLimits) -> Vec<(u64, Action)> {
        let t0 = Instant::now();
        let mut idle = RoomIdle::default();
        let mut fired = Vec::new();
        for &(s, o) in steps {
            if let Some(a) = idle.tick(o, limits, at(t0, s)) {
                fired.push((s, a));
            }
        }
        fired
    }

    /// Observations every second from `from` to `to` (inclusive) of the same occupancy.
    fn every_second(from: u64, to: u64, o: Occupancy) -> Vec<(u64, Occupancy)> {
        (from..=to).map(|s| (s, o)).collect()
    }

    #[test]
    fn limits_from_flags_zero_is_never() {
        assert_eq!(IdleLimits::from_secs(60, 300), LIMITS);
        assert_eq!(IdleLimits::from_secs(0, 0), IdleLimits::never());
        assert_eq!(IdleLimits::from_secs(0, 5).broadcast, None);
    }

    #[test]
    fn broadcast_stops_after_the_last_publisher_has_been_gone_for_the_limit() {
        let mut steps = every_second(0, 10, seen(2, BroadcastSeen::Publishers(2)));
        // The publishers leave at 11; a subscriber stays.
        steps.extend(every_second(11, 80, seen(1, BroadcastSeen::Publishers(0))));
        assert_eq!(run(&steps, LIMITS), vec![(71, Action::StopBroadcast { idle: Duration::from_secs(60) })]);
    }

    #[test]
    fn a_publisher_coming_back_resets_the_clock() {
        let mut steps = every_second(0, 50, seen(1, BroadcastSeen::Publishers(0)));
        steps.push((51, seen(1, BroadcastSeen::Publishers(1))));
        steps.extend(every_second(52, 111, seen(1, BroadcastSeen::Publishers(0))));
        assert_eq!(run(&steps, LIMITS), vec![], "60 s from 52 is 112");
        steps.push((112, seen(1, BroadcastSeen::Publishers(0))));
        assert_eq!(run(&steps, LIMITS), vec![(112, Action::StopBroadcast { idle: Duration::from_secs(60) })]);
    }

    #[test]
    fn a_broadcast_started_before_anyone_publishes_gets_the_whole_limit() {
        // The room exists for a while without a broadcast; the clock starts with the broadcast.
        let mut steps = every_second(0, 30, seen(1, BroadcastSeen::None));
        steps.extend(every_second(31, 95, seen(1, BroadcastSeen::Publishers(0))));
        assert_eq!(run(&steps, LIMITS), vec![(91, Action::StopBroadcast { idle: Duration::from_secs(60) })]);
    }

    #[test]
    fn unknown_publishers_neither_start_nor_stop_the_clock() {
        let t0 = Instant::now();
        let mut idle = RoomIdle::default();
        idle.observe(seen(1, BroadcastSeen::Publishers(0)), t0);
        idle.observe(seen(1, BroadcastSeen::Unknown), at(t0, 30));
        assert_eq!(idle.deadlines(LIMITS).stop_broadcast, Some(at(t0, 60)), "an unknown count keeps a running clock");
        let mut fresh = RoomIdle::default();
        fresh.observe(seen(1, BroadcastSeen::Unknown), t0);
        assert_eq!(fresh.deadlines(LIMITS).stop_broadcast, None, "and starts none");
    }

    #[test]
    fn stop_fires_once_then_waits_for_a_new_idle_period() {
        let t0 = Instant::now();
        let mut idle = RoomIdle::default();
        idle.observe(seen(1, BroadcastSeen::Publishers(0)), t0);
        assert_eq!(idle.due(LIMITS, at(t0, 60)), Some(Action::StopBroadcast { idle: Duration::from_secs(60) }));
        assert_eq!(idle.due(LIMITS, at(t0, 61)), None, "not repeated");
        // The stop took effect: no broadcast any more, nothing scheduled.
        assert_eq!(idle.tick(seen(1, BroadcastSeen::None), LIMITS, at(t0, 62)), None);
        assert_eq!(idle.deadlines(LIMITS).stop_broadcast, None);
        // Had it not (still a broadcast without publisher), a new period starts.
        idle.observe(seen(1, BroadcastSeen::Publishers(0)), at(t0, 63));
        assert_eq!(idle.deadlines(LIMITS).stop_broadcast, Some(at(t0, 123)));
    }

    #[test]
    fn room_ends_after_nobody_has_been_in_it_for_the_limit() {
        let mut steps = every_second(0, 9, seen(1, BroadcastSeen::None));
        steps.extend(every_second(10, 400, seen(0, BroadcastSeen::None)));
        assert_eq!(run(&steps, LIMITS), vec![(310, Action::EndRoom { empty: Duration::from_secs(300) })]);
    }

    #[test]
    fn someone_joining_keeps_the_room() {
        let mut steps = every_second(0, 299, seen(0, BroadcastSeen::None));
        steps.push((300, seen(1, BroadcastSeen::None)));
        steps.extend(every_second(301, 500, seen(0, BroadcastSeen::None)));
        assert_eq!(run(&steps, LIMITS), vec![], "300 s from 301 is 601");
    }

    #[test]
    fn empty_room_stops_its_broadcast_first_then_ends() {
        // Everyone leaves at 10 while the broadcast runs: it stops at 70, the room ends at 310.
        let mut steps = every_second(0, 9, seen(1, BroadcastSeen::Publishers(1)));
        steps.extend(every_second(10, 70, seen(0, BroadcastSeen::Publishers(0))));
        steps.extend(every_second(71, 400, seen(0, BroadcastSeen::None)));
        assert_eq!(
            run(&steps, LIMITS),
            vec![(70, Action::StopBroadcast { idle: Duration::from_secs(60) }), (310, Action::EndRoom { empty: Duration::from_secs(300) })]
        );
    }

    #[test]
    fn ending_the_room_comes_first_when_both_are_due() {
        // Without a broadcast limit the room's end stops the broadcast.
        let limits = IdleLimits { broadcast: None, room: Some(Duration::from_secs(5)) };
        assert_eq!(
            run(&every_second(0, 10, seen(0, BroadcastSeen::Publishers(0))), limits),
            vec![(5, Action::EndRoom { empty: Duration::from_secs(5) })]
        );
        // Both due in the same tick (the observations were late): one action, the end.
        let limits = IdleLimits { broadcast: Some(Duration::from_secs(3)), room: Some(Duration::from_secs(5)) };
        assert_eq!(
            run(&[(0, seen(0, BroadcastSeen::Publishers(0))), (9, seen(0, BroadcastSeen::Publishers(0)))], limits),
            vec![(9, Action::EndRoom { empty: Duration::from_secs(9) })]
        );
    }

    #[test]
    fn never_means_never() {
        let steps = every_second(0, 100_000 / 100, seen(0, BroadcastSeen::Publishers(0)));
        assert_eq!(run(&steps, IdleLimits::never()), vec![]);
        let mut idle = RoomIdle::default();
        idle.observe(seen(0, BroadcastSeen::Publishers(0)), Instant::now());
        assert_eq!(idle.deadlines(IdleLimits::never()), Deadlines::default());
    }

    #[test]
    fn deadlines_say_when() {
        let t0 = Instant::now();
        let mut idle = RoomIdle::default();
        idle.observe(seen(0, BroadcastSeen::Publishers(0)), t0);
        idle.observe(seen(0, BroadcastSeen::Publishers(0)), at(t0, 20));
        assert_eq!(idle.deadlines(LIMITS), Deadlines { stop_broadcast: Some(at(t0, 60)), end_room: Some(at(t0, 300)) });
    }
}
