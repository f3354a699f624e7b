use std::time::Duration;

use clap::Parser;
use roomcast_compositor::{controller, pipeline::Settings};

/// Composite a room's RTP legs into one grid and write framed fMP4/CMAF to stdout.
/// Control: newline-delimited JSON on stdin (see compositor/PROTOCOL.md). Logs go to stderr.
#[derive(Parser, Debug)]
#[command(name = "roomcast-compositor", version)]
struct Args {
    #[arg(long, default_value_t = 1280)]
    width: u32,
    #[arg(long, default_value_t = 720)]
    height: u32,
    #[arg(long, default_value_t = 30)]
    fps: u32,
    /// CMAF chunk (LL-HLS part) duration.
    #[arg(long, default_value_t = 200)]
    part_ms: u64,
    /// CMAF fragment (HLS segment) duration; every segment starts with a keyframe.
    #[arg(long, default_value_t = 1000)]
    segment_ms: u64,
    /// x264 speed preset (ultrafast, superfast, veryfast, faster, fast, medium, …).
    #[arg(long, default_value = "ultrafast")]
    preset: String,
    #[arg(long, default_value_t = 2500)]
    bitrate_kbps: u32,
    /// x264 threads (0 = automatic).
    #[arg(long, default_value_t = 2)]
    encoder_threads: u32,
    /// RTP jitter buffer latency per input.
    #[arg(long, default_value_t = 150)]
    jitter_ms: u32,
    /// An input silent this long is reported as stalled.
    #[arg(long, default_value_t = 1000)]
    stall_ms: u64,
    /// A frozen tile shows its last frame this long, then the placeholder. Long enough to
    /// cover a browser switching simulcast layers under load (the leg waits for the new
    /// layer's keyframe): a short freeze looks better than the name card flashing.
    #[arg(long, default_value_t = 1500)]
    repeat_ms: u64,
    /// Interval of `stats` events.
    #[arg(long, default_value_t = 2000)]
    stats_interval_ms: u64,
    /// Load GStreamer, build the pipeline, then wait for a `start` line (a spare the gateway
    /// keeps ahead of need; see compositor/PROTOCOL.md).
    #[arg(long)]
    standby: bool,
}

fn main() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let a = Args::parse();
    let problems = [
        (a.width < 64 || a.width > 7680 || a.width % 2 != 0, "--width must be even, 64..=7680"),
        (a.height < 64 || a.height > 4320 || a.height % 2 != 0, "--height must be even, 64..=4320"),
        (a.fps == 0 || a.fps > 120, "--fps must be 1..=120"),
        (a.part_ms == 0 || a.part_ms > a.segment_ms, "--part-ms must be 1..=--segment-ms"),
        (a.segment_ms < 100 || a.segment_ms > 60_000, "--segment-ms must be 100..=60000"),
    ];
    for (bad, why) in problems {
        if bad {
            eprintln!("roomcast-compositor: {why}");
            std::process::exit(2);
        }
    }
    let settings = Settings {
        width: a.width,
        height: a.height,
        fps: a.fps,
        part_ms: a.part_ms,
        segment_ms: a.segment_ms,
        preset: a.preset,
        bitrate_kbps: a.bitrate_kbps,
        x264_threads: a.encoder_threads,
        jitter_ms: a.jitter_ms,
        stall_ms: a.stall_ms,
        repeat_ms: a.repeat_ms,
    };
    match controller::run(settings, Duration::from_millis(a.stats_interval_ms.max(100)), a.standby) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            tracing::error!("{e:#}");
            std::process::exit(1);
        }
    }
}
