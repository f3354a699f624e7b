//! What a decoded frame or a stretch of decoded audio contains: mean colour, dominant tone, level.
//!
//! Plain functions over plain buffers, so the recognisers are tested without GStreamer.

/// An sRGB colour, 8 bits per channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Colour {
    pub r: u8,
    pub g: u8,
    pub b: u8,
}

impl Colour {
    pub const RED: Colour = Colour { r: 255, g: 0, b: 0 };
    pub const GREEN: Colour = Colour { r: 0, g: 255, b: 0 };
    pub const BLUE: Colour = Colour { r: 0, g: 0, b: 255 };
    pub const WHITE: Colour = Colour { r: 255, g: 255, b: 255 };
    pub const YELLOW: Colour = Colour { r: 255, g: 255, b: 0 };
    pub const MAGENTA: Colour = Colour { r: 255, g: 0, b: 255 };
    pub const CYAN: Colour = Colour { r: 0, g: 255, b: 255 };

    pub const fn new(r: u8, g: u8, b: u8) -> Self {
        Colour { r, g, b }
    }

    /// `0xAARRGGBB` with full alpha, the format of `videotestsrc foreground-color`.
    pub fn argb(self) -> u32 {
        0xFF00_0000 | (u32::from(self.r) << 16) | (u32::from(self.g) << 8) | u32::from(self.b)
    }

    /// The largest per-channel difference.
    pub fn distance(self, other: Colour) -> u8 {
        let d = |a: u8, b: u8| a.abs_diff(b);
        d(self.r, other.r).max(d(self.g, other.g)).max(d(self.b, other.b))
    }

    /// True when every channel is within `tolerance` of `other` (VP8 and the YUV round trip
    /// move a solid colour by a few levels).
    pub fn is_close_to(self, other: Colour, tolerance: u8) -> bool {
        self.distance(other) <= tolerance
    }
}

impl std::fmt::Display for Colour {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{:02x}{:02x}{:02x}", self.r, self.g, self.b)
    }
}

/// Mean colour of a packed image with `bytes_per_pixel` >= 3 whose first three bytes per pixel
/// are R, G, B (RGB, RGBx, RGBA). `stride` is the length of one row in bytes.
/// `None` if the buffer is too short for the stated geometry or the image is empty.
pub fn mean_colour(data: &[u8], width: usize, height: usize, stride: usize, bytes_per_pixel: usize) -> Option<Colour> {
    if width == 0 || height == 0 || bytes_per_pixel < 3 || stride < width * bytes_per_pixel {
        return None;
    }
    let needed = stride * (height - 1) + width * bytes_per_pixel;
    if data.len() < needed {
        return None;
    }
    let mut sum = [0u64; 3];
    for row in 0..height {
        let line = &data[row * stride..row * stride + width * bytes_per_pixel];
        for px in line.chunks_exact(bytes_per_pixel) {
            sum[0] += u64::from(px[0]);
            sum[1] += u64::from(px[1]);
            sum[2] += u64::from(px[2]);
        }
    }
    let n = (width * height) as u64;
    let avg = |s: u64| ((s + n / 2) / n) as u8;
    Some(Colour::new(avg(sum[0]), avg(sum[1]), avg(sum[2])))
}

/// Root-mean-square level in dBFS (full-scale sine ≈ -3 dBFS). Silence gives `-inf`-like -120.
pub fn level_dbfs(samples: &[f32]) -> f32 {
    if samples.is_empty() {
        return -120.0;
    }
    let energy: f64 = samples.iter().map(|s| f64::from(*s) * f64::from(*s)).sum();
    let rms = (energy / samples.len() as f64).sqrt();
    if rms <= 1e-6 {
        -120.0
    } else {
        (20.0 * rms.log10()) as f32
    }
}

/// Power of one frequency in `samples` (Goertzel), normalised so that a full-scale sine at
/// `freq_hz` gives about 0.25 whatever the length.
pub fn goertzel_power(samples: &[f32], sample_rate: u32, freq_hz: f32) -> f32 {
    if samples.is_empty() || sample_rate == 0 {
        return 0.0;
    }
    let w = 2.0 * std::f64::consts::PI * f64::from(freq_hz) / f64::from(sample_rate);
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for x in samples {
        let s0 = f64::from(*x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    let n = samples.len() as f64;
    (power / (n * n)) as f32
}

/// The frequency of the dominant tone, from the spacing of rising zero crossings
/// (interpolated between samples). Made for clean single tones such as `audiotestsrc wave=sine`
/// after an Opus round trip; `None` when the signal is below `min_dbfs` or has fewer than two
/// rising crossings.
pub fn dominant_frequency(samples: &[f32], sample_rate: u32, min_dbfs: f32) -> Option<f32> {
    if sample_rate == 0 || level_dbfs(samples) < min_dbfs {
        return None;
    }
    // Hysteresis: a crossing counts only after the signal went below -h, so noise around zero
    // does not add crossings.
    let peak = samples.iter().fold(0.0f32, |m, s| m.max(s.abs()));
    let h = peak * 0.1;
    let mut armed = false;
    let mut first: Option<f64> = None;
    let mut last = 0.0f64;
    let mut count = 0usize;
    for i in 1..samples.len() {
        let (a, b) = (samples[i - 1], samples[i]);
        if b < -h {
            armed = true;
        }
        if armed && a < 0.0 && b >= 0.0 {
            let t = (i - 1) as f64 + f64::from(-a) / f64::from(b - a);
            if first.is_none() {
                first = Some(t);
            }
            last = t;
            count += 1;
            armed = false;
        }
    }
    let first = first?;
    if count < 2 || last <= first {
        return None;
    }
    let period = (last - first) / (count - 1) as f64;
    Some((f64::from(sample_rate) / period) as f32)
}

/// True when `freq_hz` is within `tolerance_hz` of `expected_hz`.
pub fn tone_matches(freq_hz: f32, expected_hz: f32, tolerance_hz: f32) -> bool {
    (freq_hz - expected_hz).abs() <= tolerance_hz
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(freq: f32, amp: f32, rate: u32, n: usize) -> Vec<f32> {
        (0..n).map(|i| amp * (2.0 * std::f32::consts::PI * freq * i as f32 / rate as f32).sin()).collect()
    }

    #[test]
    fn argb_matches_videotestsrc_format() {
        assert_eq!(Colour::RED.argb(), 0xFFFF_0000);
        assert_eq!(Colour::new(0x12, 0x34, 0x56).argb(), 0xFF12_3456);
        assert_eq!(Colour::GREEN.to_string(), "#00ff00");
    }

    #[test]
    fn mean_colour_respects_stride_and_padding() {
        // 2x2 RGBx with 4 padding bytes per row, padding full of junk.
        let mut data = vec![];
        for _ in 0..2 {
            data.extend_from_slice(&[200, 10, 20, 99, 100, 30, 40, 99]);
            data.extend_from_slice(&[255, 255, 255, 255]);
        }
        assert_eq!(mean_colour(&data, 2, 2, 12, 4), Some(Colour::new(150, 20, 30)));
        assert_eq!(mean_colour(&data[..10], 2, 2, 12, 4), None);
        assert_eq!(mean_colour(&data, 0, 2, 12, 4), None);
        assert_eq!(mean_colour(&data, 2, 2, 4, 4), None, "stride shorter than a row");
    }

    #[test]
    fn colour_tolerance() {
        assert!(Colour::new(250, 3, 0).is_close_to(Colour::RED, 10));
        assert!(!Colour::new(250, 30, 0).is_close_to(Colour::RED, 10));
        assert_eq!(Colour::RED.distance(Colour::BLUE), 255);
    }

    #[test]
    fn tone_detector_tells_440_from_880() {
        for f in [440.0f32, 660.0, 880.0] {
            let s = sine(f, 0.5, 48_000, 4800);
            let got = dominant_frequency(&s, 48_000, -60.0).expect("a tone");
            assert!(tone_matches(got, f, 2.0), "expected {f}, got {got}");
        }
        let s = sine(440.0, 0.5, 48_000, 4800);
        assert!(goertzel_power(&s, 48_000, 440.0) > 100.0 * goertzel_power(&s, 48_000, 880.0));
    }

    #[test]
    fn tone_detector_survives_noise_and_ignores_silence() {
        // Deterministic pseudo-noise at -30 dB relative to the tone.
        let mut x: u32 = 12345;
        let noisy: Vec<f32> = sine(880.0, 0.5, 48_000, 4800)
            .into_iter()
            .map(|s| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                s + ((x >> 16) as f32 / 65536.0 - 0.5) * 0.03
            })
            .collect();
        let got = dominant_frequency(&noisy, 48_000, -60.0).expect("a tone");
        assert!(tone_matches(got, 880.0, 5.0), "got {got}");
        assert_eq!(dominant_frequency(&vec![0.0; 4800], 48_000, -60.0), None);
        assert_eq!(dominant_frequency(&sine(440.0, 0.0001, 48_000, 4800), 48_000, -60.0), None);
    }

    #[test]
    fn level_of_half_scale_sine() {
        let s = sine(440.0, 0.5, 48_000, 48_000);
        let db = level_dbfs(&s);
        assert!((db - (-9.03)).abs() < 0.1, "got {db}");
        assert_eq!(level_dbfs(&[]), -120.0);
    }
}
