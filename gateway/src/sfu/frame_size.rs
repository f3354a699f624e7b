//! The picture size of a keyframe, read from its first RTP packet: simulcast layers are told
//! apart by height (the SFU picks the tallest one a subscriber's tile needs). VP8 carries the
//! size in the keyframe header; H.264 in the sequence parameter set sent with each IDR.

use str0m::format::Codec;

/// `(width, height)` when this packet starts a keyframe whose size it carries.
pub fn keyframe_size(codec: Codec, payload: &[u8]) -> Option<(u32, u32)> {
    match codec {
        Codec::Vp8 => vp8_keyframe_size(payload),
        Codec::H264 => h264_sps_size(payload),
        _ => None,
    }
}

/// Width and height of a VP8 keyframe from its first RTP packet (the payload descriptor, then
/// the frame tag, start code and the 14-bit dimensions), `None` for anything else.
pub fn vp8_keyframe_size(payload: &[u8]) -> Option<(u32, u32)> {
    let mut i = 0usize;
    let b0 = *payload.first()?;
    let extended = b0 & 0x80 != 0;
    let start = b0 & 0x10 != 0;
    let partition = b0 & 0x07;
    if !start || partition != 0 {
        return None;
    }
    i += 1;
    if extended {
        let x = *payload.get(i)?;
        i += 1;
        if x & 0x80 != 0 {
            // PictureID: 7 or 15 bits.
            let m = *payload.get(i)?;
            i += if m & 0x80 != 0 { 2 } else { 1 };
        }
        if x & 0x40 != 0 {
            i += 1; // TL0PICIDX
        }
        if x & 0x30 != 0 {
            i += 1; // TID/KEYIDX
        }
    }
    let frame = payload.get(i..i + 10)?;
    let is_key = frame[0] & 0x01 == 0;
    if !is_key || frame[3..6] != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let w = u32::from(u16::from_le_bytes([frame[6], frame[7]]) & 0x3fff);
    let h = u32::from(u16::from_le_bytes([frame[8], frame[9]]) & 0x3fff);
    Some((w, h))
}

/// The most macroblocks a frame may have at any H.264 level (6.2): a bound for bogus SPSs.
const MAX_FRAME_MBS: u32 = 139_264;

/// H.264 NAL unit types (RFC 6184): SPS, and the STAP-A aggregation packet.
const NAL_SPS: u8 = 7;
const NAL_STAP_A: u8 = 24;

/// Picture size from an SPS carried alone or in a STAP-A (how Chrome and str0m send it with
/// each IDR); `None` for any other packet or a malformed SPS.
pub fn h264_sps_size(payload: &[u8]) -> Option<(u32, u32)> {
    let nal_type = payload.first()? & 0x1f;
    match nal_type {
        NAL_SPS => parse_sps(&payload[1..]),
        NAL_STAP_A => {
            let mut rest = &payload[1..];
            while rest.len() >= 2 {
                let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
                let nal = rest.get(2..2 + len)?;
                if nal.first().is_some_and(|h| h & 0x1f == NAL_SPS) {
                    return parse_sps(&nal[1..]);
                }
                rest = &rest[2 + len..];
            }
            None
        }
        _ => None,
    }
}

/// Reads an SPS (after its NAL header) far enough for the cropped picture size (ITU-T H.264
/// 7.3.2.1.1).
fn parse_sps(rbsp_with_emulation: &[u8]) -> Option<(u32, u32)> {
    let rbsp = strip_emulation_prevention(rbsp_with_emulation);
    let mut r = BitReader::new(&rbsp);
    let profile_idc = r.bits(8)?;
    r.bits(16)?; // constraint flags, level_idc
    r.ue()?; // seq_parameter_set_id
    let mut chroma_format_idc = 1;
    if matches!(profile_idc, 100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135) {
        chroma_format_idc = r.ue()?;
        if chroma_format_idc == 3 {
            r.bits(1)?; // separate_colour_plane_flag
        }
        r.ue()?; // bit_depth_luma_minus8
        r.ue()?; // bit_depth_chroma_minus8
        r.bits(1)?; // qpprime_y_zero_transform_bypass_flag
        if r.bits(1)? == 1 {
            // seq_scaling_matrix_present_flag: skip the scaling lists.
            let lists = if chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..lists {
                if r.bits(1)? == 1 {
                    skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                }
            }
        }
    }
    r.ue()?; // log2_max_frame_num_minus4
    match r.ue()? {
        0 => {
            r.ue()?; // log2_max_pic_order_cnt_lsb_minus4
        }
        1 => {
            r.bits(1)?; // delta_pic_order_always_zero_flag
            r.se()?; // offset_for_non_ref_pic
            r.se()?; // offset_for_top_to_bottom_field
            for _ in 0..r.ue()? {
                r.se()?; // offset_for_ref_frame[i]
            }
        }
        _ => {}
    }
    r.ue()?; // max_num_ref_frames
    r.bits(1)?; // gaps_in_frame_num_value_allowed_flag
                // Untrusted sizes: anything past the largest level's frame (139 264 macroblocks) is bogus,
                // and the arithmetic below must not overflow on it.
    let width_mbs = r.ue()?.checked_add(1).filter(|&n| n <= MAX_FRAME_MBS)?;
    let height_map_units = r.ue()?.checked_add(1).filter(|&n| n <= MAX_FRAME_MBS)?;
    let frame_mbs_only = r.bits(1)?;
    if frame_mbs_only == 0 {
        r.bits(1)?; // mb_adaptive_frame_field_flag
    }
    r.bits(1)?; // direct_8x8_inference_flag
    let (mut crop_x, mut crop_y) = (0u32, 0u32);
    if r.bits(1)? == 1 {
        let (left, right, top, bottom) = (r.ue()?, r.ue()?, r.ue()?, r.ue()?);
        // Crop units: chroma samples (4:2:0 halves both ways, 4:2:2 only across), and
        // field pairs when the stream may be interlaced.
        let (sub_w, sub_h) = match chroma_format_idc {
            0 | 3 => (1, 1),
            2 => (2, 1),
            _ => (2, 2),
        };
        crop_x = left.checked_add(right)?.checked_mul(sub_w)?;
        crop_y = top.checked_add(bottom)?.checked_mul(sub_h * (2 - frame_mbs_only))?;
    }
    let width = (width_mbs * 16).checked_sub(crop_x)?;
    let height = ((2 - frame_mbs_only) * height_map_units * 16).checked_sub(crop_y)?;
    (width > 0 && height > 0).then_some((width, height))
}

fn skip_scaling_list(r: &mut BitReader, size: u32) -> Option<()> {
    let (mut last, mut next) = (8i64, 8i64);
    for _ in 0..size {
        if next != 0 {
            next = (last + i64::from(r.se()?) + 256) % 256;
        }
        if next != 0 {
            last = next;
        }
    }
    Some(())
}

/// Drops the 0x03 of every `00 00 03` (emulation prevention) to get the raw bits.
fn strip_emulation_prevention(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut zeros = 0;
    for &b in data {
        if zeros >= 2 && b == 0x03 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

/// MSB-first bit reader with Exp-Golomb codes; `None` past the end.
struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> BitReader<'a> {
    fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    fn bits(&mut self, n: u32) -> Option<u32> {
        let mut v = 0u32;
        for _ in 0..n {
            let byte = *self.data.get(self.pos / 8)?;
            v = (v << 1) | u32::from((byte >> (7 - self.pos % 8)) & 1);
            self.pos += 1;
        }
        Some(v)
    }

    fn ue(&mut self) -> Option<u32> {
        let mut zeros = 0;
        while self.bits(1)? == 0 {
            zeros += 1;
            if zeros > 31 {
                return None;
            }
        }
        Some((1u32 << zeros) - 1 + self.bits(zeros)?)
    }

    fn se(&mut self) -> Option<i32> {
        let k = self.ue()?;
        let magnitude = k.div_ceil(2) as i32;
        Some(if k % 2 == 1 { magnitude } else { -magnitude })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    #[test]
    fn reads_vp8_keyframe_dimensions() {
        // Extended descriptor with a 15-bit PictureID, S=1 PID=0; keyframe tag, start code,
        // 640x360 (little endian, 14 bits, scaling bits set to check they are masked).
        let pkt = [0x90, 0x80, 0x81, 0x23, 0x50, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x42, 0x68, 0x41];
        assert_eq!(vp8_keyframe_size(&pkt), Some((640, 360)));
        // A delta frame, a continuation packet and garbage: none.
        let mut delta = pkt;
        delta[4] |= 0x01;
        assert_eq!(vp8_keyframe_size(&delta), None);
        assert_eq!(vp8_keyframe_size(&[0x00, 0x50]), None);
        assert_eq!(vp8_keyframe_size(&[0x10, 0x50, 0x02]), None);
        assert_eq!(vp8_keyframe_size(&[]), None);
    }

    /// SPSs from x264 (`gst-launch-1.0 videotestsrc num-buffers=1 ! video/x-raw,width=W,height=H
    /// ! x264enc ! video/x-h264,profile=P ! h264parse ! …byte-stream`): high, main and baseline
    /// profiles; 360 and 180 are cropped from whole macroblocks, the baseline one carries an
    /// emulation-prevention byte.
    #[test]
    fn reads_h264_sps_dimensions() {
        for (sps, size) in [
            ("6764001eacd940a02ff97016a0c0c0d4a0000003002000000791e2c5b2c0", (640, 360)),
            ("6742c01fd9005005bb016a02020280000003008000001e478c1924", (1280, 720)),
            ("674d4015eca0a0cfcf80b5060606a50000030001000003003c8f162d96", (320, 180)),
            ("67640028acd940780227e5c05a808080a0000003002000000791e30632c0", (1920, 1080)),
        ] {
            assert_eq!(h264_sps_size(&hex(sps)), Some(size), "{sps}");
            assert_eq!(keyframe_size(Codec::H264, &hex(sps)), Some(size));
        }
    }

    #[test]
    fn finds_the_sps_in_a_stap_a_and_ignores_other_packets() {
        let sps = hex("6742c01fd9005005bb016a02020280000003008000001e478c1924");
        let pps = [0x68, 0xce, 0x3c, 0x80];
        let mut stap = vec![0x78];
        for nal in [&sps[..], &pps[..]] {
            stap.extend_from_slice(&(nal.len() as u16).to_be_bytes());
            stap.extend_from_slice(nal);
        }
        assert_eq!(h264_sps_size(&stap), Some((1280, 720)));
        assert_eq!(h264_sps_size(&[0x78, 0x00, 0x04, 0x68, 0xce, 0x3c, 0x80]), None, "STAP-A without an SPS");
        assert_eq!(h264_sps_size(&[0x65, 0x88, 0x84]), None, "an IDR slice");
        assert_eq!(h264_sps_size(&[0x78, 0x00, 0x40, 0x67]), None, "a truncated STAP-A");
        assert_eq!(h264_sps_size(&sps[..6]), None, "a truncated SPS");
        assert_eq!(h264_sps_size(&[]), None);
        assert_eq!(keyframe_size(Codec::Opus, &sps), None);
    }

    /// Whatever a publisher sends, parsing never panics (a worker thread would die).
    #[test]
    fn garbage_and_huge_sizes_never_panic() {
        // A baseline SPS whose width and crop offsets are the largest Exp-Golomb value a u32
        // holds (2^32 - 2): width_mbs_minus1 + 1 overflowed before.
        let mut bits = String::from("01000010"); // profile_idc 66
        bits += "0000000000011111"; // constraints, level
        bits += "1"; // sps id 0
        bits += "1"; // log2_max_frame_num_minus4 0
        bits += "010"; // pic_order_cnt_type 1
        bits += "1"; // delta_pic_order_always_zero_flag
        bits += "1"; // offset_for_non_ref_pic 0
        bits += "1"; // offset_for_top_to_bottom_field 0
        bits += "1"; // num_ref_frames_in_pic_order_cnt_cycle 0
        bits += "1"; // max_num_ref_frames 0
        bits += "0"; // gaps flag
        let huge = format!("{}1{}", "0".repeat(31), "1".repeat(31)); // ue = 2^32 - 2
        bits += &huge; // width
        bits += "1"; // height 0 → 1 map unit
        bits += "1"; // frame_mbs_only
        bits += "1"; // direct_8x8
        bits += "1"; // cropping
        bits += &huge;
        bits += &huge;
        bits += "11";
        while bits.len() % 8 != 0 {
            bits.push('0');
        }
        let mut sps = vec![0x67];
        sps.extend((0..bits.len()).step_by(8).map(|i| u8::from_str_radix(&bits[i..i + 8], 2).unwrap()));
        assert_eq!(h264_sps_size(&sps), None, "a width beyond any level is refused");
        // Random bytes after an SPS header: no panic, whatever the answer.
        let mut seed = 0x9e37_79b9_u32;
        for _ in 0..20_000 {
            let len = (seed % 40) as usize;
            let mut p = vec![0x67];
            for _ in 0..len {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                p.push(seed as u8);
            }
            let _ = h264_sps_size(&p);
            p[0] = 0x78;
            let _ = h264_sps_size(&p);
        }
    }

    #[test]
    fn exp_golomb_codes() {
        // 1 → 0; 010 → 1; 011 → 2 (ue); 00100 → 3 (ue) = +2 (se), 00101 → 4 = -2
        let data = [0b1010_0110, 0b0100_0000];
        let mut r = BitReader::new(&data);
        assert_eq!(r.ue(), Some(0));
        assert_eq!(r.ue(), Some(1));
        assert_eq!(r.ue(), Some(2));
        assert_eq!(r.se(), Some(2));
        let mut r = BitReader::new(&[0b0010_1000]);
        assert_eq!(r.se(), Some(-2));
        assert_eq!(strip_emulation_prevention(&[0, 0, 3, 1, 0, 0, 3]), [0, 0, 1, 0, 0]);
    }
}
