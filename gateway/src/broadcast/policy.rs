//! Pure decisions of the broadcast supervisor: its state, and when to restart a compositor.

use std::time::{Duration, Instant};

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BroadcastState {
    Stopped,
    Starting,
    Live,
    Restarting,
    Failed,
}

impl BroadcastState {
    /// What participants are told (signaling `broadcast_state`).
    pub fn as_str(self) -> &'static str {
        match self {
            BroadcastState::Stopped => "stopped",
            BroadcastState::Starting => "starting",
            BroadcastState::Live => "live",
            BroadcastState::Restarting => "restarting",
            BroadcastState::Failed => "failed",
        }
    }

    pub fn is_running(self) -> bool {
        matches!(self, BroadcastState::Starting | BroadcastState::Live | BroadcastState::Restarting)
    }
}

/// Exponential backoff: the first retry at once, then 0.5 s, 1 s, 2 s … capped; after
/// `max_restarts` consecutive failures the broadcast is marked failed instead of looping.
#[derive(Debug, Clone, Copy)]
pub struct RestartPolicy {
    pub max_restarts: u32,
    pub cap: Duration,
    /// No part for this many part durations means the compositor is stuck (watchdog).
    pub stall_parts: u32,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self { max_restarts: 5, cap: Duration::from_secs(30), stall_parts: 3 }
    }
}

/// How one compositor run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunEnd {
    /// The broadcast was stopped.
    Stopped,
    /// Ops asked for a new compositor: not a failure.
    RestartRequested,
    /// It died or stalled; `healthy`: it had published media for a while before.
    Died { healthy: bool },
}

/// What the supervisor does after a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// The broadcast is over.
    Finish,
    /// Start a new compositor now (the stream gets a discontinuity).
    StartNow,
    /// Start a new compositor after `delay` (restart number `attempt` in a row).
    RetryAfter { attempt: u32, delay: Duration },
    /// Too many failures in a row: the broadcast is failed (`attempts` restarts were tried).
    GiveUp { attempts: u32 },
}

/// The supervisor's restart decisions as a state machine: failures in a row back off (see
/// [`RestartPolicy::delay`]) until the budget is spent; a run that was healthy makes its death a
/// fresh first failure; a restart ops asked for never touches the budget.
#[derive(Debug, Clone)]
pub struct Restarts {
    policy: RestartPolicy,
    /// Failures in a row so far (0: the first start, or after a healthy run's restart).
    attempt: u32,
}

impl Restarts {
    pub fn new(policy: RestartPolicy) -> Self {
        Self { policy, attempt: 0 }
    }

    /// The state to show while the next compositor starts.
    pub fn starting_state(&self) -> BroadcastState {
        if self.attempt == 0 {
            BroadcastState::Starting
        } else {
            BroadcastState::Restarting
        }
    }

    pub fn after(&mut self, end: RunEnd) -> Next {
        match end {
            RunEnd::Stopped => Next::Finish,
            RunEnd::RestartRequested => Next::StartNow,
            RunEnd::Died { healthy } => {
                if healthy {
                    self.attempt = 0;
                }
                self.attempt += 1;
                match self.policy.delay(self.attempt) {
                    Some(delay) => Next::RetryAfter { attempt: self.attempt, delay },
                    None => Next::GiveUp { attempts: self.attempt - 1 },
                }
            }
        }
    }
}

/// A compositor that publishes nothing but keeps using CPU is behind (an overloaded host), not
/// stuck: it gets this many times the stall time before it is restarted anyway. A restart
/// costs more than waiting: every tile is a placeholder again until its next keyframe.
pub const BUSY_STALL_FACTOR: u32 = 6;

/// Did a process use CPU in about the last [`CPU_WINDOW`]? Fed the process's CPU time (clock
/// ticks) at each watchdog look. A stopped or deadlocked process uses none; on an overloaded
/// host a working one may get none for a while, so the window is two seconds, not one look.
#[derive(Debug, Clone, Default)]
pub struct CpuWindow {
    looks: Vec<(Instant, u64)>,
}

/// How far back [`CpuWindow`] looks for work. One second was too short: with three Chromium
/// publishers and a late joiner starting on 2 cores, a working compositor got no CPU tick for
/// over a second (its own 2 s stats came 3 s apart) and was killed, blanking every tile.
pub const CPU_WINDOW: Duration = Duration::from_secs(2);

impl CpuWindow {
    /// Records a look (`None`: the CPU time could not be read) and says whether the CPU time
    /// grew since the baseline: the newest look at least [`CPU_WINDOW`] old, or the oldest there
    /// is (so a watchdog that was itself descheduled for a while still compares with something).
    pub fn observe(&mut self, now: Instant, cpu: Option<u64>) -> bool {
        if let Some(i) = self.looks.iter().rposition(|(t, _)| now.saturating_duration_since(*t) >= CPU_WINDOW) {
            self.looks.drain(..i);
        }
        let busy = cpu.is_some_and(|c| self.looks.first().is_some_and(|(_, before)| c > *before));
        if let Some(c) = cpu {
            self.looks.push((now, c));
        }
        busy
    }
}

/// Publishing parts for this long makes a run healthy (its death then resets the retry budget).
pub const HEALTHY_RUN: Duration = Duration::from_secs(1);
/// A compositor that produces nothing this long after starting is stuck too.
pub const FIRST_PART_TIMEOUT: Duration = Duration::from_secs(15);

/// A compositor whose frame count (its `stats`) grew within this long is composing.
pub const COMPOSING_WINDOW: Duration = Duration::from_secs(5);
/// A compositor that keeps composing frames but publishes no part is replaced only after this
/// long. Seen with three Chromium publishers and a late joiner on 2 cores: 7 frames a second
/// composed and encoded, no part for 6 s, then a restart that blanked every tile for 15 s
/// more (a new process to start on the starved host, and a keyframe per tile). Waiting shows
/// every tile again as soon as the host lets the compositor catch up.
pub const COMPOSING_STALL: Duration = Duration::from_secs(20);

/// One compositor run as its watchdog sees it: when it started, when parts came, whether it
/// used CPU and composed frames. The supervisor's loop tells it what happened and asks it at
/// each look whether the run is stuck; nothing here reads a clock or a process.
#[derive(Debug, Clone)]
pub struct RunWatch {
    policy: RestartPolicy,
    part: Duration,
    spawned: Instant,
    first_part: Option<Instant>,
    last_part: Option<Instant>,
    cpu: CpuWindow,
    /// The newest frame count and when it last grew.
    frames: Option<(u64, Instant)>,
}

impl RunWatch {
    /// A run started at `spawned` that should publish a part every `part`.
    pub fn new(policy: RestartPolicy, part: Duration, spawned: Instant) -> Self {
        Self { policy, part, spawned, first_part: None, last_part: None, cpu: CpuWindow::default(), frames: None }
    }

    /// The compositor's stats at `now` say it has composed `frames_out` frames so far.
    pub fn frames(&mut self, frames_out: u64, now: Instant) {
        match self.frames {
            Some((n, _)) if frames_out <= n => {}
            _ => self.frames = Some((frames_out, now)),
        }
    }

    /// Did the frame count grow within [`COMPOSING_WINDOW`] of `now`? (The first count only
    /// says it started composing.)
    fn composing(&self, now: Instant) -> bool {
        self.frames.is_some_and(|(_, at)| now.saturating_duration_since(at) < COMPOSING_WINDOW)
    }

    /// A part was published at `now`.
    pub fn part(&mut self, now: Instant) {
        self.first_part.get_or_insert(now);
        self.last_part = Some(now);
    }

    /// The watchdog looks at `now` (`cpu`: the process's CPU time, if readable). `Some(silent)`:
    /// the run is stuck, silent that long, and must be replaced; `None`: let it run.
    pub fn look(&mut self, now: Instant, cpu: Option<u64>) -> Option<Duration> {
        let busy = self.cpu.observe(now, cpu);
        let silent = now.saturating_duration_since(self.last_part.unwrap_or(self.spawned));
        let stuck = match self.last_part {
            // A stopped or deadlocked process uses no CPU: its last frames do not save it.
            Some(_) if busy && self.composing(now) => silent > COMPOSING_STALL,
            Some(_) => self.policy.is_stalled(silent, self.part, busy),
            None => silent > FIRST_PART_TIMEOUT,
        };
        stuck.then_some(silent)
    }

    /// [`RunWatch::look`] at a process whose output may wait unread in its pipe: if it does
    /// (`output_waiting`, asked only when the run looks stuck), the process is blocked on the
    /// gateway, not stuck. On a starved host the gateway's reader may not run for seconds, and
    /// a compositor blocked on a full pipe uses no CPU, so by CPU alone it looked dead.
    pub fn look_unless_blocked(&mut self, now: Instant, cpu: Option<u64>, output_waiting: impl FnOnce() -> bool) -> Option<Duration> {
        self.look(now, cpu).filter(|_| !output_waiting())
    }

    /// How the run ended when it died: healthy if it published for at least [`HEALTHY_RUN`].
    pub fn died(&self) -> RunEnd {
        let healthy = matches!((self.first_part, self.last_part), (Some(a), Some(b)) if b.duration_since(a) >= HEALTHY_RUN);
        RunEnd::Died { healthy }
    }
}

impl RestartPolicy {
    /// The watchdog's verdict on a compositor that published no part for `silent`: is it
    /// stuck? `busy`: it used CPU since the watchdog last looked (a stopped or deadlocked
    /// process uses none).
    pub fn is_stalled(&self, silent: Duration, part: Duration, busy: bool) -> bool {
        let stall_after = part * self.stall_parts;
        if busy {
            silent > stall_after * BUSY_STALL_FACTOR
        } else {
            silent > stall_after
        }
    }

    /// Delay before restart number `attempt` (1-based), or None: give up.
    pub fn delay(&self, attempt: u32) -> Option<Duration> {
        if attempt == 0 || attempt > self.max_restarts {
            return None;
        }
        if attempt == 1 {
            return Some(Duration::ZERO);
        }
        let ms = 500u64.saturating_mul(1u64 << (attempt - 2).min(20));
        Some(Duration::from_millis(ms).min(self.cap))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_starts_at_once_doubles_caps_and_gives_up() {
        let p = RestartPolicy { max_restarts: 10, cap: Duration::from_secs(30), ..Default::default() };
        let d: Vec<_> = (1..=10).map(|a| p.delay(a).unwrap().as_millis()).collect();
        assert_eq!(d, vec![0, 500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
        assert_eq!(p.delay(11), None);
        assert_eq!(p.delay(0), None);
    }

    #[test]
    fn restarts_back_off_reset_after_a_healthy_run_and_give_up() {
        let policy = RestartPolicy { max_restarts: 3, ..Default::default() };
        let mut r = Restarts::new(policy);
        let died = RunEnd::Died { healthy: false };
        assert_eq!(r.starting_state(), BroadcastState::Starting);
        assert_eq!(r.after(died), Next::RetryAfter { attempt: 1, delay: Duration::ZERO });
        assert_eq!(r.starting_state(), BroadcastState::Restarting);
        assert_eq!(r.after(died), Next::RetryAfter { attempt: 2, delay: Duration::from_millis(500) });
        // Ops asks for a new compositor: no failure, the budget stays where it is.
        assert_eq!(r.after(RunEnd::RestartRequested), Next::StartNow);
        assert_eq!(r.after(died), Next::RetryAfter { attempt: 3, delay: Duration::from_secs(1) });
        assert_eq!(r.after(died), Next::GiveUp { attempts: 3 });

        // A run that published for a while dies: a fresh first failure, retried at once.
        let mut r = Restarts::new(policy);
        r.after(died);
        r.after(died);
        assert_eq!(r.after(RunEnd::Died { healthy: true }), Next::RetryAfter { attempt: 1, delay: Duration::ZERO });
        assert_eq!(r.after(RunEnd::Stopped), Next::Finish);
    }

    #[test]
    fn cpu_window_sees_work_within_two_seconds_even_after_a_gap() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut w = CpuWindow::default();
        assert!(!w.observe(t0, Some(100)), "nothing to compare with yet");
        assert!(w.observe(t0 + ms(166), Some(103)));
        // Starved for a while (no tick of CPU since the last look), but it worked within 2 s.
        assert!(w.observe(t0 + ms(333), Some(103)));
        assert!(w.observe(t0 + ms(1500), Some(103)), "starved for 1.3 s: still working");
        // Stopped: nothing for over two seconds.
        assert!(w.observe(t0 + ms(2100), Some(103)), "the baseline is still the look at t0");
        assert!(!w.observe(t0 + ms(2400), Some(103)));
        // The watchdog itself was descheduled for 5 s: it still compares with its last look.
        let mut w = CpuWindow::default();
        w.observe(t0, Some(10));
        assert!(w.observe(t0 + ms(5000), Some(50)));
        assert!(!w.observe(t0 + ms(5200), None), "unreadable (the process is gone)");
    }

    #[test]
    fn a_busy_compositor_gets_longer_than_a_stuck_one() {
        let p = RestartPolicy::default();
        let part = Duration::from_millis(333);
        let ms = Duration::from_millis;
        // Stuck (no CPU): restarted after 3 parts.
        assert!(!p.is_stalled(ms(900), part, false));
        assert!(p.is_stalled(ms(1100), part, false));
        // Working but behind: tolerated up to 6 × as long, then restarted all the same.
        assert!(!p.is_stalled(ms(1100), part, true));
        assert!(!p.is_stalled(ms(5900), part, true));
        assert!(p.is_stalled(ms(6100), part, true));
    }
    #[test]
    fn a_run_is_stuck_when_it_never_publishes_or_falls_silent_and_healthy_after_a_second_of_parts() {
        let policy = RestartPolicy::default();
        let part = Duration::from_millis(333);
        let ms = Duration::from_millis;
        let t0 = Instant::now();

        // Never publishes: given FIRST_PART_TIMEOUT (startup, first keyframes), busy or not.
        let mut w = RunWatch::new(policy, part, t0);
        assert_eq!(w.look(t0 + ms(14_000), Some(1)), None);
        assert_eq!(w.look(t0 + ms(15_100), Some(2)), Some(ms(15_100)));
        assert_eq!(w.died(), RunEnd::Died { healthy: false });

        // Publishes, then goes silent without using CPU (stopped, deadlocked): 3 parts.
        let mut w = RunWatch::new(policy, part, t0);
        w.part(t0 + ms(2_000));
        assert_eq!(w.look(t0 + ms(2_500), Some(10)), None);
        assert_eq!(w.look(t0 + ms(2_900), Some(10)), None);
        assert_eq!(w.look(t0 + ms(3_100), Some(10)), Some(ms(1_100)));

        // Silent but working (a starved host): 6 × as long, then replaced all the same.
        let mut w = RunWatch::new(policy, part, t0);
        w.part(t0 + ms(2_000));
        let mut cpu = 10;
        let mut verdict = None;
        for look in (2_166..=8_500).step_by(166) {
            cpu += 1;
            verdict = w.look(t0 + ms(look), Some(cpu));
            if verdict.is_some() {
                assert!(look > 8_000, "replaced after only {look} ms");
                break;
            }
        }
        assert!(verdict.is_some(), "a compositor silent for 6.5 s is replaced even while busy");

        // Silent but still composing frames (its stats say so): 20 s, whatever the CPU time says.
        let mut w = RunWatch::new(policy, part, t0);
        w.part(t0 + ms(2_000));
        w.frames(100, t0 + ms(2_000));
        let mut replaced_at = None;
        for look in (2_166..=30_000).step_by(166) {
            if look % 2_000 < 166 {
                w.frames(100 + look / 150, t0 + ms(look)); // ~7 frames a second
            }
            if w.look(t0 + ms(look), Some(10 + look / 100)).is_some() {
                replaced_at = Some(look);
                break;
            }
        }
        let at = replaced_at.expect("a compositor silent for 28 s is replaced even while it composes");
        assert!(at > 22_000, "replaced after {at} ms while composing");
        // Its frames stop while it keeps using CPU: back to the busy rule (6 s of silence).
        let mut w = RunWatch::new(policy, part, t0);
        w.part(t0 + ms(2_000));
        w.frames(100, t0 + ms(2_000));
        assert_eq!(w.look(t0 + ms(2_100), Some(5)), None);
        w.frames(100, t0 + ms(4_000)); // no growth
        assert_eq!(w.look(t0 + ms(6_000), Some(10)), None, "composing: frames grew 4 s ago");
        assert_eq!(w.look(t0 + ms(7_900), Some(20)), None, "busy, silent under 6 s");
        assert_eq!(w.look(t0 + ms(8_100), Some(30)), Some(ms(6_100)), "busy, no longer composing: 6 s");
        // Stopped (no CPU) right after its last frames: replaced after 3 parts as before.
        let mut w = RunWatch::new(policy, part, t0);
        w.part(t0 + ms(2_000));
        w.frames(100, t0 + ms(2_000));
        assert_eq!(w.look(t0 + ms(2_500), Some(10)), None);
        assert_eq!(w.look(t0 + ms(3_100), Some(10)), Some(ms(1_100)));

        // Healthy: parts for a second or more before dying.
        let mut w = RunWatch::new(policy, part, t0);
        w.part(t0 + ms(1_000));
        w.part(t0 + ms(1_900));
        assert_eq!(w.died(), RunEnd::Died { healthy: false });
        w.part(t0 + ms(2_000));
        assert_eq!(w.died(), RunEnd::Died { healthy: true });
    }

    #[test]
    fn a_run_whose_output_waits_unread_is_blocked_on_us_not_stuck() {
        let ms = Duration::from_millis;
        let t0 = Instant::now();
        let mut w = RunWatch::new(RestartPolicy::default(), ms(333), t0);
        w.part(t0 + ms(2_000));
        assert_eq!(w.look_unless_blocked(t0 + ms(2_500), Some(10), || true), None);
        // Silent and idle for 1.1 s: stuck, unless its output waits in the pipe.
        assert_eq!(w.look_unless_blocked(t0 + ms(3_100), Some(10), || true), None);
        assert_eq!(w.look_unless_blocked(t0 + ms(3_150), Some(10), || false), Some(ms(1_150)));
        // Not asked while the run looks fine.
        let mut fine = RunWatch::new(RestartPolicy::default(), ms(333), t0);
        fine.part(t0 + ms(2_000));
        assert_eq!(fine.look_unless_blocked(t0 + ms(2_100), Some(10), || panic!("asked")), None);
    }
}
