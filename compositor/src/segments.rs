//! Where the output's keyframes go: the first frame of every segment, by running time.
//!
//! Each HLS segment is one CMAF fragment, and the muxer (`isofmp4mux`) can close a fragment,
//! and so publish its last part, only once the next keyframe has arrived. x264's own keyframe
//! interval counts frames (`key-int-max`), which is one segment at the nominal frame rate. On
//! a starved host the mixer makes fewer frames (it skips those already late, see `catchup`),
//! and 30 frames then spanned 1.5–5.6 s of stream time: seen in the on-air runs with 3 HD
//! Chromium publishers on 2 cores, the newest keyframe was 4 s old and no part came out for 6 s.
//! So the encoder is told to make a keyframe at the first frame of each segment whatever the
//! frame count: a segment is then one segment long however many frames it has.

/// Follows the frames going into the encoder; says which one must be a keyframe.
#[derive(Debug, Clone)]
pub struct SegmentKeyframes {
    segment_ns: u64,
    /// The segment of the last frame seen.
    current: Option<u64>,
}

impl SegmentKeyframes {
    pub fn new(segment_ns: u64) -> Self {
        Self { segment_ns: segment_ns.max(1), current: None }
    }

    /// A frame with running time `rt_ns` is about to be encoded. `Some(boundary)`: it is the
    /// first frame of a new segment (the one starting at running time `boundary`) and must be
    /// a keyframe. The very first frame is one anyway (the encoder starts with one).
    pub fn frame(&mut self, rt_ns: u64) -> Option<u64> {
        let segment = rt_ns / self.segment_ns;
        match self.current {
            Some(p) if segment <= p => None,
            Some(_) => {
                self.current = Some(segment);
                Some(segment * self.segment_ns)
            }
            None => {
                self.current = Some(segment);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn at_the_nominal_rate_every_thirtieth_frame_starts_a_segment() {
        let mut k = SegmentKeyframes::new(1000 * MS);
        // As the mixer stamps frame i at 30 fps: i × 1 s / 30, rounded down.
        let keys: Vec<u64> = (0..91).filter(|&i| k.frame(i * 1_000_000_000 / 30).is_some()).collect();
        assert_eq!(keys, vec![30, 60, 90]);
    }

    #[test]
    fn a_starved_mixer_that_skips_frames_still_gets_one_keyframe_per_segment() {
        // 7 frames a second, unevenly, with a 1.4 s jump (the mixer caught up).
        let mut k = SegmentKeyframes::new(1000 * MS);
        let rts = [0, 140, 290, 430, 570, 710, 850, 990, 1130, 1270, 2670, 2810, 2950, 3090];
        let keys: Vec<(u64, u64)> = rts.iter().filter_map(|&t| k.frame(t * MS).map(|b| (t, b / MS))).collect();
        assert_eq!(keys, vec![(1130, 1000), (2670, 2000), (3090, 3000)]);
    }

    #[test]
    fn the_first_frame_and_repeats_within_a_segment_ask_for_nothing() {
        let mut k = SegmentKeyframes::new(1000 * MS);
        assert_eq!(k.frame(5_400 * MS), None, "the encoder starts with a keyframe anyway");
        assert_eq!(k.frame(5_900 * MS), None);
        assert_eq!(k.frame(5_800 * MS), None, "a frame from the past changes nothing");
        assert_eq!(k.frame(6_000 * MS), Some(6_000 * MS));
    }
}
