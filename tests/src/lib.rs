//! Synthetic participants: clients that join a Roomcast room exactly as a browser does
//! (HTTP join, WebSocket signaling, two WebRTC PeerConnections), publish real encoded media
//! and decode what they receive, so tests and benchmarks can check what arrives; an LL-HLS
//! viewer that follows a live playlist part by part ([`hls`]); benchmark helpers ([`bench`]);
//! a throwaway nginx and the shipped LL-HLS edge config ([`nginx`]).

pub mod bench;
pub mod hls;
pub mod nginx;
pub mod synthetic;

/// The `roomcast-compositor` binary of this build (tests give it to the in-process gateway).
/// `tests/run.sh` builds it; run `cargo build -p roomcast-compositor` before these tests by hand.
pub fn compositor_bin() -> anyhow::Result<std::path::PathBuf> {
    let exe = std::env::current_exe()?;
    for dir in exe.ancestors().skip(1).take(2) {
        let p = dir.join("roomcast-compositor");
        if p.is_file() {
            return Ok(p);
        }
    }
    anyhow::bail!("roomcast-compositor is not built next to {}; run `cargo build -p roomcast-compositor` first", exe.display())
}

/// Test logs at `warn` (or `RUST_LOG`), captured per test; safe to call from every test.
pub fn init_test_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
}

/// A fresh directory under the system temp dir, unique per process, tag and instant.
pub fn scratch_dir(tag: &str) -> anyhow::Result<std::path::PathBuf> {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_nanos();
    let dir = std::env::temp_dir().join(format!("roomcast-e2e-{tag}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
