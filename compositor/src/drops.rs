//! Counting the video frames an input's depayloader throws away (pure: the pipeline feeds it
//! from a probe on each side of the depayloader).
//!
//! After a lost packet, `rtpvp8depay`/`rtph264depay` (`wait-for-keyframe`) discard every frame
//! until the next keyframe, and GStreamer 1.22 exposes no counter for that. So: a frame is a
//! run of RTP packets with one RTP timestamp going into the depayloader, and the depayloader
//! pushes one buffer per frame it keeps (VP8; H.264 negotiates `alignment=au`). Both happen on
//! the input's one streaming thread, and the depayloader decides on a frame while it handles
//! the frame's marker packet, or, with the marker lost, the next frame's first packet. Once
//! that packet has been handled (the next packet comes in) the frame is *settled*: it came out
//! or it never will. Settled frames that did not come out were dropped.
//!
//! Every output seen by the time a frame is settled belongs to a settled frame, so the count
//! can be low for a moment (a depayloader pushing more than one buffer for a frame) but never
//! counts a frame that is still on its way. Frames before the first one out (the wait for the
//! first keyframe when an input starts) are not counted.

/// Depayloader bookkeeping of one video input.
#[derive(Debug, Default, Clone)]
pub struct DepayFrames {
    /// RTP timestamp of the newest frame.
    cur_ts: Option<u32>,
    cur_settled: bool,
    /// The frame before the newest one is not settled yet (its marker never came).
    prev_unsettled: bool,
    /// The packet being handled: (marker, first packet of its frame).
    packet: Option<(bool, bool)>,
    settled: u64,
    out: u64,
    /// Settled frames not counted (before the first frame out).
    base: Option<u64>,
    dropped: u64,
}

impl DepayFrames {
    pub fn new() -> DepayFrames {
        DepayFrames::default()
    }

    /// An RTP packet is about to go into the depayloader (so the previous one was handled).
    pub fn packet_in(&mut self, rtp_ts: u32, marker: bool) {
        self.packet_handled();
        let first = self.cur_ts != Some(rtp_ts);
        if first {
            self.prev_unsettled = self.cur_ts.is_some() && !self.cur_settled;
            self.cur_ts = Some(rtp_ts);
            self.cur_settled = false;
        }
        self.packet = Some((marker, first));
    }

    fn packet_handled(&mut self) {
        let Some((marker, first)) = self.packet.take() else {
            return;
        };
        if first && self.prev_unsettled {
            self.prev_unsettled = false;
            self.settled += 1;
        }
        if marker && !self.cur_settled {
            self.cur_settled = true;
            self.settled += 1;
        }
        if let Some(base) = self.base {
            let missing = self.settled.saturating_sub(base).saturating_sub(self.out);
            self.dropped = self.dropped.max(missing);
        }
    }

    /// The depayloader pushed a frame.
    pub fn frame_out(&mut self) {
        if self.base.is_none() {
            // The frames before this one are not counted. While a new frame's first packet
            // (no marker) is handled, the frame coming out is the previous one.
            let flushing_prev = self.packet == Some((false, true)) && self.prev_unsettled;
            self.base = Some(self.settled + u64::from(self.prev_unsettled && !flushing_prev));
        }
        self.out += 1;
    }

    /// Frames the depayloader pushed.
    pub fn out(&self) -> u64 {
        self.out
    }

    /// Frames discarded since the first frame came out (never decreases).
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

/// The RTP timestamp and marker bit of a packet; None if it is not an RTP v2 packet.
pub fn rtp_ts_marker(packet: &[u8]) -> Option<(u32, bool)> {
    if packet.len() < 12 || packet[0] >> 6 != 2 {
        return None;
    }
    let ts = u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]);
    Some((ts, packet[1] & 0x80 != 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feed frames `(rtp_ts, packets, kept)`: marker on the last packet; a kept frame comes
    /// out while its marker packet is handled.
    fn feed(d: &mut DepayFrames, frames: &[(u32, usize, bool)]) {
        for &(ts, packets, kept) in frames {
            for i in 0..packets {
                let last = i == packets - 1;
                d.packet_in(ts, last);
                if kept && last {
                    d.frame_out();
                }
            }
        }
    }

    #[test]
    fn nothing_lost_counts_nothing() {
        let mut d = DepayFrames::new();
        let frames: Vec<_> = (0..100).map(|i| (i * 6000, 1 + (i % 3) as usize, true)).collect();
        feed(&mut d, &frames);
        assert_eq!(d.dropped(), 0);
    }

    #[test]
    fn the_wait_for_the_first_keyframe_is_not_counted() {
        for keyframe_packets in [1, 3] {
            let mut d = DepayFrames::new();
            feed(&mut d, &[(0, 2, false), (3000, 1, false), (6000, keyframe_packets, true)]);
            feed(&mut d, &[(9000, 1, true), (12000, 2, true), (15000, 1, true)]);
            assert_eq!(d.dropped(), 0, "keyframe of {keyframe_packets} packets");
        }
    }

    #[test]
    fn discarded_frames_count_once_settled() {
        let mut d = DepayFrames::new();
        feed(&mut d, &[(0, 1, true), (3000, 1, true)]);
        // a packet was lost: three frames discarded until the keyframe
        feed(&mut d, &[(6000, 2, false), (9000, 1, false), (12000, 1, false)]);
        // frame 12000's marker packet is handled only once the next packet comes
        assert_eq!(d.dropped(), 2);
        feed(&mut d, &[(15000, 3, true)]);
        assert_eq!(d.dropped(), 3);
        feed(&mut d, &[(18000, 1, true), (21000, 1, true)]);
        assert_eq!(d.dropped(), 3);
        // a single-packet frame lost later
        feed(&mut d, &[(24000, 1, false), (27000, 1, true), (30000, 1, true)]);
        assert_eq!(d.dropped(), 4);
    }

    #[test]
    fn frames_without_marker_are_settled_by_the_next_frame() {
        // the marker packet of every frame is lost; the depayloader pushes a frame when the
        // next frame's first packet comes
        let mut d = DepayFrames::new();
        for i in 0..50u32 {
            d.packet_in(i * 3000, false);
            if i > 0 {
                d.frame_out(); // frame i-1
            }
            d.packet_in(i * 3000, false);
        }
        assert_eq!(d.dropped(), 0);
        // ... or drops it
        d.packet_in(50 * 3000, false); // frame 49 is not pushed
        d.packet_in(51 * 3000, false);
        d.frame_out(); // frame 50
        d.packet_in(52 * 3000, false);
        assert_eq!(d.dropped(), 1);
    }

    #[test]
    fn first_frame_out_on_the_next_frames_first_packet() {
        let mut d = DepayFrames::new();
        d.packet_in(0, false); // waiting for a keyframe
        d.packet_in(3000, false); // the keyframe, its marker lost
        d.packet_in(6000, false);
        d.frame_out(); // the keyframe
        feed(&mut d, &[(6000, 1, true), (9000, 1, true), (12000, 1, true)]);
        assert_eq!(d.dropped(), 0);
        feed(&mut d, &[(15000, 1, false), (18000, 1, true), (21000, 1, true)]);
        assert_eq!(d.dropped(), 1);
    }

    #[test]
    fn never_decreases_nor_counts_extra_outputs_as_frames() {
        let mut d = DepayFrames::new();
        feed(&mut d, &[(0, 1, true), (1, 1, false), (2, 1, false), (3, 1, true)]);
        feed(&mut d, &[(4, 1, true)]);
        assert_eq!(d.dropped(), 2);
        // more outputs than frames (a depayloader splitting a frame) do not undo drops
        d.frame_out();
        d.frame_out();
        feed(&mut d, &[(5, 1, true), (6, 1, true)]);
        assert_eq!(d.dropped(), 2);
    }

    #[test]
    fn rtp_header() {
        let mut p = vec![0x80, 0xe0, 0, 1, 0x12, 0x34, 0x56, 0x78, 0, 0, 0, 1];
        assert_eq!(rtp_ts_marker(&p), Some((0x1234_5678, true)));
        p[1] = 0x60;
        assert_eq!(rtp_ts_marker(&p), Some((0x1234_5678, false)));
        p[0] = 0x40; // version 1
        assert_eq!(rtp_ts_marker(&p), None);
        assert_eq!(rtp_ts_marker(&[0x80; 11]), None);
    }
}
