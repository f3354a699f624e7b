//! Synthetic participants: clients that join a Roomcast room exactly as a browser does
//! (HTTP join, WebSocket signaling, two WebRTC PeerConnections), publish real encoded media
//! and decode what they receive, so tests and benchmarks can check what arrives; an LL-HLS
//! viewer that follows a live playlist part by part ([`hls`]); benchmark helpers ([`bench`]).

pub mod bench;
pub mod hls;
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
