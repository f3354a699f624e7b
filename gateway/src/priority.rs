//! The gateway's CPU priority on its host.
//!
//! Media is real-time work: a compositor that gets too little CPU falls behind by seconds (no
//! part for up to 11 s, a late joiner's tile empty for 30 s on the 2-core test host with four
//! Chromium publishers beside it), and nothing the gateway decides afterwards wins that time
//! back. Media servers therefore run above other work on their host (FreeSWITCH `-rp`,
//! Asterisk `-p`); so does Roomcast: `serve` raises its priority (`--nice`, default −5) before
//! any thread starts, so the SFU workers and every compositor it spawns inherit it.
//!
//! Two knobs, because Linux shares CPU between groups before it looks at nice values:
//! - the process's own nice value (threads and children inherit it): what counts under systemd,
//!   whose unit (`Nice=`, `CPUWeight=`) also sets it;
//! - the session's scheduling group (autogroup, `/proc/self/autogroup`): a desktop kernel gives
//!   each session an equal share whatever its processes' nice values, so a browser session
//!   with a dozen busy processes gets as much as the gateway. Changed only when the gateway
//!   leads its own session (a supervisor started it so), never a terminal's it shares.
//!
//! Raising priority needs CAP_SYS_NICE (root, or the systemd unit); without it the gateway runs
//! as it is and says so.

/// What the host is like, as far as the decision goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facts {
    /// The process's nice value now (−20 highest … 19 lowest).
    pub nice: i32,
    /// The kernel groups processes by session (`kernel.sched_autogroup_enabled`).
    pub autogroups: bool,
    /// The gateway leads its own session (so its group holds only the gateway and its children).
    pub session_leader: bool,
    /// The session group's nice value now, where there is one.
    pub group_nice: Option<i32>,
}

/// What to change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Plan {
    pub process_nice: Option<i32>,
    pub group_nice: Option<i32>,
}

/// The changes that give the process priority `wanted` (0: leave everything as it is). A value
/// that is already at least as high (a unit's `Nice=-10`) is kept, never lowered.
pub fn plan(wanted: i32, facts: Facts) -> Plan {
    if wanted == 0 {
        return Plan::default();
    }
    let wanted = wanted.clamp(-20, 0);
    let process_nice = (facts.nice > wanted).then_some(wanted);
    let group_nice = match facts.group_nice {
        Some(g) if facts.autogroups && facts.session_leader && g > wanted => Some(wanted),
        _ => None,
    };
    Plan { process_nice, group_nice }
}

/// What happened, for the log and `/readyz`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `--nice 0`, or already at least that high.
    Unchanged {
        nice: i32,
    },
    Raised {
        nice: i32,
        group: bool,
    },
    /// Not permitted (no CAP_SYS_NICE): runs at `nice`.
    NotPermitted {
        nice: i32,
        wanted: i32,
    },
}

/// Raises the calling process's priority to `wanted`. Call from `main` before any thread is
/// started: on Linux a nice value belongs to a thread, and new threads and child processes
/// take their creator's.
#[cfg(target_os = "linux")]
pub fn raise(wanted: i32) -> Outcome {
    let facts = read_facts();
    let p = plan(wanted, facts);
    if p == Plan::default() {
        return Outcome::Unchanged { nice: facts.nice };
    }
    let mut ok = true;
    if let Some(n) = p.process_nice {
        // SAFETY: setpriority only reads its arguments; who = 0 is the calling thread.
        ok &= unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, n) } == 0;
    }
    let mut group = false;
    if let Some(n) = p.group_nice {
        group = std::fs::write("/proc/self/autogroup", n.to_string()).is_ok();
        ok &= group;
    }
    let nice = read_facts().nice;
    if ok {
        Outcome::Raised { nice, group }
    } else {
        Outcome::NotPermitted { nice, wanted }
    }
}

#[cfg(not(target_os = "linux"))]
pub fn raise(_wanted: i32) -> Outcome {
    Outcome::Unchanged { nice: 0 }
}

#[cfg(target_os = "linux")]
fn read_facts() -> Facts {
    // SAFETY: plain syscalls without pointers; errno is cleared first because −1 is a valid
    // nice value.
    let nice = unsafe {
        *libc::__errno_location() = 0;
        libc::getpriority(libc::PRIO_PROCESS, 0)
    };
    let session_leader = unsafe { libc::getsid(0) == libc::getpid() };
    let autogroups = std::fs::read_to_string("/proc/sys/kernel/sched_autogroup_enabled").is_ok_and(|s| s.trim() == "1");
    // "/autogroup-578 nice 0"
    let group_nice =
        std::fs::read_to_string("/proc/self/autogroup").ok().and_then(|s| s.split_whitespace().last().and_then(|n| n.parse().ok()));
    Facts { nice, autogroups, session_leader, group_nice }
}

/// Logs what [`raise`] did, with what to do about it.
pub fn log(outcome: &Outcome) {
    match outcome {
        Outcome::Unchanged { nice } => tracing::debug!(nice, "CPU priority left as it is"),
        Outcome::Raised { nice, group } => {
            tracing::info!(nice, session_group = group, "CPU priority raised: media (SFU, compositors) goes before other work on this host")
        }
        Outcome::NotPermitted { nice, wanted } => tracing::warn!(
            nice,
            wanted,
            "could not raise the CPU priority (needs CAP_SYS_NICE): on a busy host the broadcast falls behind; run from deploy/systemd/roomcast.service (Nice=, CPUWeight=) or pass --nice 0 to keep the default priority without this warning"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(nice: i32, group: Option<i32>, leader: bool) -> Facts {
        Facts { nice, autogroups: group.is_some(), session_leader: leader, group_nice: group }
    }

    #[test]
    fn raises_the_process_and_its_own_session_group() {
        assert_eq!(plan(-5, facts(0, Some(0), true)), Plan { process_nice: Some(-5), group_nice: Some(-5) });
    }

    #[test]
    fn never_touches_a_session_it_shares_or_a_kernel_without_groups() {
        // Started from a terminal: the group is the terminal's (the shell, an editor, …).
        assert_eq!(plan(-5, facts(0, Some(0), false)), Plan { process_nice: Some(-5), group_nice: None });
        // systemd: a service has its own cgroup; no autogroups.
        assert_eq!(plan(-5, facts(0, None, true)), Plan { process_nice: Some(-5), group_nice: None });
    }

    #[test]
    fn keeps_a_priority_that_is_already_higher_and_zero_means_leave_it() {
        assert_eq!(plan(-5, facts(-10, Some(-10), true)), Plan::default(), "a unit's Nice=-10 stays");
        assert_eq!(plan(0, facts(5, Some(5), true)), Plan::default());
        assert_eq!(plan(-40, facts(0, None, false)).process_nice, Some(-20), "clamped to the kernel's range");
        assert_eq!(plan(-5, facts(10, Some(0), true)), Plan { process_nice: Some(-5), group_nice: Some(-5) });
    }
}
