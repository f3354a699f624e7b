//! Wall-clock time as the tokens, invites, signed URLs and the store count it, and the
//! calling thread's own CPU time (to tell a busy thread from a starved or blocked one).

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since 1970 (0 if the clock is before it).
pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Milliseconds since 1970 (0 if the clock is before it): cluster heartbeats.
pub fn unix_now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// What the calling thread has used so far: CPU time and context switches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ThreadUsage {
    pub cpu_us: u64,
    /// Times it gave up the CPU to wait (a lock, I/O, a full pipe).
    pub waits: u64,
    /// Times the scheduler took the CPU away while it could run (a starved host).
    pub preemptions: u64,
}

impl ThreadUsage {
    /// The calling thread's usage (zero where the OS does not report it).
    pub fn now() -> Self {
        // SAFETY: getrusage only writes the struct we pass.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        if unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) } != 0 {
            return Self::default();
        }
        let us = |t: libc::timeval| (t.tv_sec as u64) * 1_000_000 + t.tv_usec as u64;
        Self { cpu_us: us(ru.ru_utime) + us(ru.ru_stime), waits: ru.ru_nvcsw as u64, preemptions: ru.ru_nivcsw as u64 }
    }

    /// What was used since `earlier`.
    pub fn since(self, earlier: Self) -> Self {
        Self {
            cpu_us: self.cpu_us.saturating_sub(earlier.cpu_us),
            waits: self.waits.saturating_sub(earlier.waits),
            preemptions: self.preemptions.saturating_sub(earlier.preemptions),
        }
    }

    /// In words, for a log line: where a slow step's wall time went.
    pub fn verdict(self, wall: std::time::Duration) -> &'static str {
        let wall_us = wall.as_micros() as u64;
        if self.cpu_us * 2 >= wall_us {
            Verdict::Busy.text()
        } else if self.waits > 0 && self.waits >= self.preemptions {
            Verdict::Blocked.text()
        } else {
            Verdict::Starved.text()
        }
    }
}

/// Where a thread's slow time went; one wording for every log line that says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// It used the CPU itself (over half of the time).
    Busy,
    /// It waited for something: a lock, a full pipe, the disk.
    Blocked,
    /// It could run, but the host gave the CPU to others.
    Starved,
}

impl Verdict {
    pub fn text(self) -> &'static str {
        match self {
            Verdict::Busy => "busy: the thread itself used the CPU; if it lasts, spread the rooms over more workers",
            Verdict::Blocked => "blocked: the thread waited (a lock, a full pipe or disk)",
            Verdict::Starved => "starved: the thread could run but the host gave its CPU to others",
        }
    }
}

/// CPU time (user + system, in clock ticks: [`clock_ticks_per_second`]) a process has used,
/// from `/proc/PID/stat`.
pub fn process_cpu_ticks(pid: u32) -> Option<u64> {
    parse_process_cpu_ticks(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

fn parse_process_cpu_ticks(stat: &str) -> Option<u64> {
    // Fields after the command name (which may contain spaces) in parentheses.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let mut fields = rest.split(' ');
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// The kernel's clock ticks per second (`USER_HZ`), the unit of `/proc/PID/stat` times.
pub fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf only reads a constant of the running system.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 {
        hz as u64
    } else {
        100
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_spinning_thread_counts_cpu_and_a_sleeping_one_counts_a_wait() {
        // Spin until the thread's own clock shows 20 ms of CPU (however busy the host), with a
        // wall-clock bound in case the counter never moves.
        let start = ThreadUsage::now();
        let give_up = std::time::Instant::now() + Duration::from_secs(10);
        let mut x = 0u64;
        let spun = loop {
            for _ in 0..10_000 {
                x = x.wrapping_add(1);
            }
            let used = ThreadUsage::now().since(start);
            if used.cpu_us >= 20_000 || std::time::Instant::now() > give_up {
                break used;
            }
        };
        std::hint::black_box(x);
        assert!(spun.cpu_us >= 20_000, "a spinning thread's CPU time did not grow: {spun:?}");
        let before = ThreadUsage::now();
        std::thread::sleep(Duration::from_millis(20));
        let slept = ThreadUsage::now().since(before);
        assert!(slept.waits >= 1 && slept.cpu_us < 10_000, "{slept:?}");
    }

    #[test]
    fn verdicts_name_where_the_time_went() {
        let wall = Duration::from_millis(100);
        assert!(ThreadUsage { cpu_us: 80_000, waits: 0, preemptions: 3 }.verdict(wall).starts_with("busy"));
        assert!(ThreadUsage { cpu_us: 1_000, waits: 2, preemptions: 1 }.verdict(wall).starts_with("blocked"));
        assert!(ThreadUsage { cpu_us: 1_000, waits: 0, preemptions: 5 }.verdict(wall).starts_with("starved"));
        assert!(ThreadUsage { cpu_us: 1_000, waits: 0, preemptions: 0 }.verdict(wall).starts_with("starved"));
    }

    #[test]
    fn process_cpu_is_user_plus_system_ticks_after_the_command_name() {
        let stat = "42 (my (odd) name) S 1 42 42 0 -1 4194560 100 0 0 0 25 7 0 0 20 0 1 0 100 1000 10";
        assert_eq!(parse_process_cpu_ticks(stat), Some(32));
        assert_eq!(parse_process_cpu_ticks("42 (x) S 1"), None);
        assert!(process_cpu_ticks(std::process::id()).is_some(), "this process");
    }
}
