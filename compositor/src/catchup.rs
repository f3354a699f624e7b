//! Keeping the mixer live when the host cannot give it the CPU it needs.
//!
//! The video mixer makes one frame per output interval, each once the clock reaches its time
//! plus the pipeline latency. On a starved host a frame can take 100–200 ms to make instead of
//! a few: the mixer then runs further and further behind the clock, every input waits in its
//! queue behind it (seconds of frames), and a participant who just joined appears only when
//! the backlog is through. Nothing downstream tells it (the output sink does not sync to the
//! clock), so the compositor tells the mixer itself, the way a video sink would: a QoS event
//! saying how late its last frame was. The mixer then skips making the frames already too
//! late (it drops them without compositing) and is back at the live edge at once.

/// How late a frame may be before the mixer is told to skip: two frames at 30 fps. Less would
/// make it skip on ordinary scheduling jitter.
pub const TOLERANCE_NS: u64 = 66_000_000;

/// The lateness to report for a frame the mixer just pushed: its running time `frame_rt`, the
/// pipeline's running time `now_rt` when it came out, and the latency the mixer works with.
/// `None` while it is on time (within [`TOLERANCE_NS`]).
pub fn lateness(frame_rt: u64, now_rt: u64, latency_ns: u64) -> Option<u64> {
    let due = frame_rt.saturating_add(latency_ns);
    let late = now_rt.saturating_sub(due);
    (late > TOLERANCE_NS).then_some(late)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn a_frame_made_within_the_latency_is_on_time() {
        // Made for 10 s, latency 233 ms, out at 10.2 s: early enough.
        assert_eq!(lateness(10_000 * MS, 10_200 * MS, 233 * MS), None);
        // Out just before its due time.
        assert_eq!(lateness(10_000 * MS, 10_233 * MS, 233 * MS), None);
    }

    #[test]
    fn scheduling_jitter_is_tolerated() {
        assert_eq!(lateness(10_000 * MS, 10_233 * MS + TOLERANCE_NS, 233 * MS), None);
    }

    #[test]
    fn a_mixer_seconds_behind_is_told_how_far() {
        // The starved case from the on-air runs: output for 3.37 s made at 6.73 s.
        assert_eq!(lateness(3_370 * MS, 6_730 * MS, 233 * MS), Some(3_127 * MS));
    }

    #[test]
    fn a_clock_that_has_not_reached_the_frame_is_never_late() {
        assert_eq!(lateness(10_000 * MS, 9_000 * MS, 233 * MS), None);
    }
}
