//! The open-file limit: every viewer's connection, participant's socket and compositor pipe is
//! a file descriptor. Linux starts most processes with a soft limit of 1 024 (and a hard limit
//! far above it): a node would refuse its 1 000th viewer with EMFILE. `serve` raises the soft
//! limit to the hard one at start (always permitted) and `/readyz` says when even that is low.

/// Below this many open files a node cannot take a few thousand viewers; `/readyz` says so.
pub const RECOMMENDED: u64 = 65_536;

/// The soft limit to set: the hard limit (capped at `ceiling`, what the kernel accepts), when
/// higher than the current one.
pub fn raised(soft: u64, hard: u64, ceiling: u64) -> Option<u64> {
    let target = hard.min(ceiling);
    (target > soft).then_some(target)
}

/// What `/readyz` adds about the limit, if anything (a warning, not a failure: the node works,
/// for fewer viewers).
pub fn readiness_note(soft: u64) -> Option<String> {
    (soft < RECOMMENDED).then(|| {
        format!("open-file limit {soft}: about that many viewers and participants at most; raise it (systemd LimitNOFILE={RECOMMENDED}, or ulimit -n)")
    })
}

/// The current soft and hard limits.
pub fn current() -> Option<(u64, u64)> {
    let mut l = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct we own.
    (unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) } == 0).then_some((l.rlim_cur, l.rlim_max))
}

/// Raises the soft limit as far as allowed (`/readyz` reads what is in force).
pub fn raise() {
    let Some((soft, hard)) = current() else { return };
    // The kernel refuses more than fs.nr_open.
    let ceiling = std::fs::read_to_string("/proc/sys/fs/nr_open").ok().and_then(|s| s.trim().parse().ok()).unwrap_or(1 << 20);
    if let Some(target) = raised(soft, hard, ceiling) {
        let l = libc::rlimit { rlim_cur: target, rlim_max: hard };
        // SAFETY: setrlimit reads the struct we own.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &l) } == 0 {
            tracing::info!(from = soft, to = target, "open-file limit raised");
        } else {
            tracing::warn!(soft, hard, "could not raise the open-file limit; viewers beyond it are refused");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raises_the_soft_limit_to_the_hard_one_within_the_kernels_ceiling() {
        assert_eq!(raised(1024, 524_288, 1 << 20), Some(524_288));
        assert_eq!(raised(1024, u64::MAX, 1 << 20), Some(1 << 20), "unlimited hard limit: the kernel's ceiling");
        assert_eq!(raised(65_536, 65_536, 1 << 20), None, "already there");
        assert_eq!(raised(4096, 1024, 1 << 20), None, "never lowered");
    }

    #[test]
    fn readyz_warns_only_below_the_recommended_limit() {
        assert!(readiness_note(1024).unwrap().contains("LimitNOFILE=65536"));
        assert_eq!(readiness_note(RECOMMENDED), None);
    }
}
