//! A plain-RTP leg (mediasoup's PlainTransport): one producer's packets, unencrypted, to a local
//! port of the compositor, with RTCP sender reports on the next port so audio and video can be
//! lined up. The leg holds back until a keyframe, then rewrites sequence numbers like a consumer.
//!
//! The SRs carry the publisher's own NTP ↔ RTP mapping (from its SRs, i.e. its capture clock,
//! shared by its audio and video): that is what lip sync needs, since the two tracks may reach
//! us with different delays. Until the publisher's first SR the leg sends none (an SR on our
//! clock next to one on the publisher's would make the compositor line them up wrongly).

use std::net::SocketAddr;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use super::forward::{Decision, Forwarder};
use super::simulcast::{LayerFollower, TimestampRewriter};

/// The compositor's output height: until the compositor says how big the tile is, a simulcast
/// producer's leg takes the tallest layer up to it.
pub const LEG_MAX_HEIGHT: u32 = 720;

/// The tallest simulcast layer a leg should get for a tile `tile_height` pixels high: up to a
/// quarter taller than the tile (a 360p layer for a 356-pixel tile, 720p for a full frame),
/// since scaling a little down looks better than doubling a smaller layer, and decoding more
/// than the tile shows is wasted compositor CPU.
pub fn layer_height_for_tile(tile_height: u32) -> u32 {
    (tile_height + tile_height / 4).clamp(1, LEG_MAX_HEIGHT)
}

pub struct Leg {
    pub producer_id: String,
    pub rtp_to: SocketAddr,
    pub rtcp_to: SocketAddr,
    ssrc: u32,
    clock_rate: u32,
    forwarder: Forwarder,
    packets: u32,
    octets: u32,
    last_sr: Option<Instant>,
    /// Output minus input RTP time of the last forwarded packet (simulcast rewrites it).
    out_minus_in: Option<u32>,
    /// The publisher's last SR for the stream this leg forwards.
    publisher_clock: Option<PublisherClock>,
    /// Simulcast producers: the tallest layer wanted (from the tile size), the layer
    /// followed, with continuous timestamps across switches.
    pub max_height: u32,
    pub layer: LayerFollower,
    pub timestamps: TimestampRewriter,
}

impl Leg {
    pub fn new(producer_id: String, rtp_to: SocketAddr, rtcp_to: SocketAddr, is_video: bool, clock_rate: u32) -> Self {
        Self {
            producer_id,
            rtp_to,
            rtcp_to,
            ssrc: rand::random(),
            clock_rate,
            forwarder: Forwarder::new(is_video, rand::random()),
            packets: 0,
            octets: 0,
            last_sr: None,
            out_minus_in: None,
            publisher_clock: None,
            max_height: LEG_MAX_HEIGHT,
            layer: LayerFollower::default(),
            timestamps: TimestampRewriter::default(),
        }
    }

    pub fn started(&self) -> bool {
        self.forwarder.started()
    }

    /// A simulcast layer switch: re-anchor at this keyframe.
    pub fn switch_layer(&mut self, rtp_time: u32, now: Instant) {
        // Another layer is another RTP stream: its own timestamps and its own SRs.
        self.publisher_clock = None;
        self.out_minus_in = None;
        self.forwarder.resync();
        self.timestamps.rebase(rtp_time, now, self.clock_rate);
    }

    /// The datagram to send for one incoming packet, or why not. `rtp_time` is what the leg
    /// sends, `in_rtp_time` what the publisher sent (they differ when simulcast rewrites).
    #[allow(clippy::too_many_arguments)]
    pub fn packet(
        &mut self,
        in_seq: u64,
        starts_keyframe: bool,
        marker: bool,
        pt: u8,
        rtp_time: u32,
        in_rtp_time: u32,
        payload: &[u8],
    ) -> Result<Vec<u8>, Decision> {
        let seq = match self.forwarder.decide(in_seq, starts_keyframe) {
            Decision::Forward(seq) => seq,
            other => return Err(other),
        };
        self.packets = self.packets.wrapping_add(1);
        self.octets = self.octets.wrapping_add(payload.len() as u32);
        self.out_minus_in = Some(rtp_time.wrapping_sub(in_rtp_time));
        Ok(rtp_packet(marker, pt, seq as u16, rtp_time, self.ssrc, payload))
    }

    /// The publisher's SR for the stream this leg forwards arrived (at `received_at`).
    pub fn publisher_report(&mut self, clock: PublisherClock) {
        self.publisher_clock = Some(clock);
    }

    /// A sender report, at most once a second, once media has flowed and the publisher's SR
    /// for this stream has come: its mapping, carried forward to now and into our timestamps.
    pub fn sender_report_due(&mut self, now: Instant) -> Option<Vec<u8>> {
        let (clock, shift) = (self.publisher_clock?, self.out_minus_in?);
        if self.last_sr.is_some_and(|t| now.duration_since(t).as_millis() < 1000) {
            return None;
        }
        self.last_sr = Some(now);
        let elapsed = now.saturating_duration_since(clock.received_at);
        // RTP time wraps: compute wide, then truncate.
        let ticks = (elapsed.as_nanos() * u128::from(self.clock_rate) / 1_000_000_000) as u32;
        let rtp_now = clock.rtp_time.wrapping_add(ticks).wrapping_add(shift);
        Some(sender_report(self.ssrc, ntp_of(clock.ntp + elapsed), rtp_now, self.packets, self.octets))
    }
}

/// A publisher's sender report: its wallclock and RTP time of one instant, and when we got it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublisherClock {
    pub ntp: SystemTime,
    pub rtp_time: u32,
    pub received_at: Instant,
}

/// RFC 3550 RTP header (no CSRC, no extensions) + payload.
pub fn rtp_packet(marker: bool, pt: u8, seq: u16, timestamp: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(12 + payload.len());
    p.push(0x80);
    p.push((u8::from(marker) << 7) | (pt & 0x7f));
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&timestamp.to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// RFC 3550 sender report without report blocks (28 bytes).
pub fn sender_report(ssrc: u32, ntp: u64, rtp_time: u32, packets: u32, octets: u32) -> Vec<u8> {
    let mut p = Vec::with_capacity(28);
    p.push(0x80);
    p.push(200);
    p.extend_from_slice(&6u16.to_be_bytes()); // length in 32-bit words minus one
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&ntp.to_be_bytes());
    p.extend_from_slice(&rtp_time.to_be_bytes());
    p.extend_from_slice(&packets.to_be_bytes());
    p.extend_from_slice(&octets.to_be_bytes());
    p
}

/// A wallclock time as 64-bit NTP time (seconds since 1900 in the high word).
fn ntp_of(t: SystemTime) -> u64 {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() + 2_208_988_800;
    let frac = ((d.subsec_nanos() as u64) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn layer_fits_the_tile() {
        // 2x2 grid on 1280x720: 632x356 tiles take the 360p layer, not 720p (nor 180p).
        assert_eq!(layer_height_for_tile(356), 445);
        // One participant, the whole frame: 720p.
        assert_eq!(layer_height_for_tile(712), 720);
        // 3x3: 232-pixel tiles take 180p (not 360p).
        assert_eq!(layer_height_for_tile(232), 290);
        assert_eq!(layer_height_for_tile(0), 1);
    }

    #[test]
    fn rtp_header_layout() {
        let p = rtp_packet(true, 96, 0x1234, 0xdeadbeef, 7, &[9, 9]);
        assert_eq!(p, vec![0x80, 0x80 | 96, 0x12, 0x34, 0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 7, 9, 9]);
    }

    #[test]
    fn leg_waits_for_keyframe_and_reports() {
        let addr: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let mut leg = Leg::new("p:0".into(), addr, addr, true, 90_000);
        let now = Instant::now();
        assert!(leg.sender_report_due(now).is_none(), "no SR before media");
        assert_eq!(leg.packet(10, false, false, 96, 1000, 1000, &[1]).unwrap_err(), Decision::AwaitKeyframe);
        let first = leg.packet(11, true, false, 96, 1000, 1000, &[1, 2, 3]).unwrap();
        let second = leg.packet(12, false, true, 96, 1000, 1000, &[4]).unwrap();
        let s1 = u16::from_be_bytes([first[2], first[3]]);
        let s2 = u16::from_be_bytes([second[2], second[3]]);
        assert_eq!(s2, s1.wrapping_add(1));
        assert!(leg.sender_report_due(now).is_none(), "no SR before the publisher's");
        leg.publisher_report(PublisherClock { ntp: SystemTime::now(), rtp_time: 1000, received_at: now });
        let sr = leg.sender_report_due(now + std::time::Duration::from_millis(500)).unwrap();
        assert_eq!((sr.len(), sr[1]), (28, 200));
        assert_eq!(u32::from_be_bytes(sr[20..24].try_into().unwrap()), 2, "packet count");
        assert_eq!(u32::from_be_bytes(sr[24..28].try_into().unwrap()), 4, "octet count");
        let rtp_in_sr = u32::from_be_bytes(sr[16..20].try_into().unwrap());
        assert_eq!(rtp_in_sr, 1000 + 45_000, "carried forward by 0.5 s at 90 kHz");
        assert!(leg.sender_report_due(now + std::time::Duration::from_millis(900)).is_none(), "at most once a second");
    }

    fn ntp_secs(sr: &[u8]) -> f64 {
        let ntp = u64::from_be_bytes(sr[8..16].try_into().unwrap());
        (ntp >> 32) as f64 + (ntp & 0xffff_ffff) as f64 / 4_294_967_296.0
    }

    /// With the publisher's SR, the leg's SR says the publisher's wallclock for the same
    /// instant, carried forward, in the leg's (rewritten) timestamps; a layer switch drops it.
    #[test]
    fn reports_carry_the_publishers_clock() {
        let addr: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let mut leg = Leg::new("p:0".into(), addr, addr, false, 48_000);
        let now = Instant::now();
        // The leg sends timestamps 5000 above the publisher's.
        leg.packet(1, true, false, 111, 15_000, 10_000, &[1]).unwrap();
        // The publisher's clock is 20 s behind ours (another machine): its SR maps 9_040 to it.
        let publisher_ntp = SystemTime::now() - Duration::from_secs(20);
        leg.publisher_report(PublisherClock { ntp: publisher_ntp, rtp_time: 9_040, received_at: now });
        let sr = leg.sender_report_due(now + Duration::from_millis(250)).unwrap();
        let rtp = u32::from_be_bytes(sr[16..20].try_into().unwrap());
        assert_eq!(rtp, 9_040 + 12_000 + 5_000, "250 ms at 48 kHz later, in the leg's timestamps");
        let want = ntp_secs(&sender_report(0, ntp_of(publisher_ntp + Duration::from_millis(250)), 0, 0, 0));
        assert!((ntp_secs(&sr) - want).abs() < 1e-6, "the publisher's wallclock, not ours");

        leg.switch_layer(50_000, now);
        assert!(leg.sender_report_due(now + Duration::from_millis(1500)).is_none(), "none until the new layer's SR");
    }
}
