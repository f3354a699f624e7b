//! Configuration: every flag has a `ROOMCAST_*` environment twin and a working default,
//! so `roomcast serve` alone is a demo.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// HTTP listen address (API, signaling, pages, HLS).
    #[arg(long, env = "ROOMCAST_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Where the token secret and the embedded store live.
    #[arg(long, env = "ROOMCAST_DATA_DIR", default_value = "roomcast-data")]
    pub data_dir: PathBuf,
    /// Server-to-server API key (`Authorization: Bearer KEY`).
    #[arg(long, env = "ROOMCAST_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Store: a path (embedded) or a mongodb:// URI.
    #[arg(long, env = "ROOMCAST_STORE")]
    pub store: Option<String>,
    /// Cluster (a mongodb:// store): where browsers and the other nodes reach this node
    /// (scheme, host, port). Default: http:// and the --listen address.
    #[arg(long, env = "ROOMCAST_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Cluster: this node's id. Default: one made at first start, kept in the data directory.
    #[arg(long, env = "ROOMCAST_NODE_ID")]
    pub node_id: Option<String>,
    /// Cluster: the cores this node may use for rooms (placement compares headroom). Default:
    /// the machine's.
    #[arg(long, env = "ROOMCAST_CAPACITY_CORES")]
    pub capacity_cores: Option<f64>,
    /// First UDP media port; SFU worker i binds port+i. 0 = any free port.
    #[arg(long, env = "ROOMCAST_UDP_PORT", default_value_t = 40000)]
    pub udp_port: u16,
    /// IP the SFU binds its UDP sockets to (default: the --listen IP).
    #[arg(long, env = "ROOMCAST_MEDIA_IP")]
    pub media_ip: Option<IpAddr>,
    /// IP announced in ICE candidates (default: the media bind IP); set it behind NAT.
    #[arg(long, env = "ROOMCAST_ANNOUNCE_IP")]
    pub announce_ip: Option<IpAddr>,
    /// Number of SFU workers (default: number of cores).
    #[arg(long, env = "ROOMCAST_WORKERS")]
    pub workers: Option<usize>,
    /// The built web app (web/dist).
    #[arg(long, env = "ROOMCAST_WEB_DIR", default_value = "web/dist")]
    pub web_dir: PathBuf,
    /// Token signing secret (at least 32 characters); generated into the data dir when absent.
    #[arg(long, env = "ROOMCAST_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// Seconds a participant's ICE may stay disconnected before it is removed.
    #[arg(long, env = "ROOMCAST_ICE_DISCONNECT_TIMEOUT", default_value_t = 30)]
    pub ice_disconnect_timeout_secs: u64,
    /// Seconds a private room's signed HLS URL lives (10 to 86400); the watch page fetches a
    /// fresh one before it expires, and a leaked URL dies at its expiry.
    #[arg(long, env = "ROOMCAST_HLS_URL_TTL", default_value_t = 300, value_parser = clap::value_parser!(u64).range(10..=86_400))]
    pub hls_url_ttl_secs: u64,
    /// The compositor binary (default: `roomcast-compositor` next to this executable).
    #[arg(long, env = "ROOMCAST_COMPOSITOR_BIN")]
    pub compositor_bin: Option<PathBuf>,
    /// Compositors kept started ahead of need (in standby: no CPU, about 60 MB each) once someone
    /// publishes: a broadcast goes live, and a failed compositor is replaced, without waiting
    /// for GStreamer to load and the pipeline to build. 0: start each one when needed.
    #[arg(long, env = "ROOMCAST_COMPOSITOR_SPARES", default_value_t = 1)]
    pub compositor_spares: usize,
    /// Local UDP ports for the RTP legs to compositors: first port of the range (below the
    /// kernel's ephemeral range, so no outgoing socket takes a port between check and bind).
    #[arg(long, env = "ROOMCAST_RTP_PORT_MIN", default_value_t = 20000)]
    pub rtp_port_min: u16,
    /// … and one past the last.
    #[arg(long, env = "ROOMCAST_RTP_PORT_MAX", default_value_t = 30000)]
    pub rtp_port_max: u16,
    /// Broadcast picture size and rate.
    #[arg(long, env = "ROOMCAST_BROADCAST_WIDTH", default_value_t = 1280)]
    pub broadcast_width: u32,
    #[arg(long, env = "ROOMCAST_BROADCAST_HEIGHT", default_value_t = 720)]
    pub broadcast_height: u32,
    #[arg(long, env = "ROOMCAST_BROADCAST_FPS", default_value_t = 30)]
    pub broadcast_fps: u32,
    /// LL-HLS part duration (200–1000 ms). Players stay PART-HOLD-BACK (3 parts) behind the
    /// live edge: 200 ms parts put the picture about 0.75 s behind the camera in hls.js, 333 ms
    /// about 1.15 s, at 5/3 the requests per viewer (see the README's benchmarks).
    #[arg(long, env = "ROOMCAST_PART_MS", default_value_t = 200, value_parser = clap::value_parser!(u64).range(200..=1000))]
    pub part_ms: u64,
    /// HLS segment duration (a whole number of parts is best).
    #[arg(long, env = "ROOMCAST_SEGMENT_MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(500..=6000))]
    pub segment_ms: u64,
    /// Bandwidth estimation (TWCC) on subscribe connections, so simulcast layers fit each
    /// subscriber's link under congestion. Costs SFU CPU per forwarded packet (see the README's
    /// forwarding benchmark); turn it off where links are known to be ample.
    #[arg(long, env = "ROOMCAST_BWE", default_value_t = true, action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new())]
    pub bwe: bool,
    /// Answer as an ICE-lite agent (no connectivity checks of our own), as mediasoup does. Off by
    /// default: Chrome nominates a pair to an ICE-lite answerer only on its next scheduled check
    /// of the selected pair (0.9–2.5 s later), and str0m sends nothing, DTLS included, before
    /// that nomination; as a full agent the gateway's own check completes it in a round trip.
    #[arg(long, env = "ROOMCAST_ICE_LITE", default_value_t = false, action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new())]
    pub ice_lite: bool,
    /// Tests only, never in production: enables `POST /api/ops/faults/blackhole` (drop a
    /// participant's media for a while) without authentication. Needs a build with the
    /// `fault-injection` feature (the test suite's); a release build refuses it.
    #[arg(long, env = "ROOMCAST_FAULT_INJECTION", value_parser = clap::builder::BoolishValueParser::new(), action = clap::ArgAction::SetTrue)]
    pub fault_injection: bool,
    /// Consecutive compositor restarts before a broadcast is marked failed.
    #[arg(long, env = "ROOMCAST_MAX_COMPOSITOR_RESTARTS", default_value_t = 5)]
    pub max_compositor_restarts: u32,
    /// Watchdog: a compositor that publishes no part for this many part durations while it
    /// used no CPU for 2 s is restarted (5 × 200 ms by default); one that is busy but behind gets
    /// 6 × as long, one still composing frames 20 s.
    #[arg(long, env = "ROOMCAST_STALL_PARTS", default_value_t = 5)]
    pub stall_parts: u32,
    /// A broadcast stops by itself once its room has had no publisher (nobody sending a track)
    /// for this many seconds; its playlist ends and its compositor and ports are released.
    /// 0: never. An `auto_broadcast` room starts again when someone publishes.
    #[arg(long, env = "ROOMCAST_BROADCAST_IDLE_STOP_SECS", default_value_t = 60)]
    pub broadcast_idle_stop_secs: u64,
    /// A room with nobody in it for this many seconds is ended: its broadcast stops and its
    /// state is released from memory (the stored room stays; joining it again brings it back).
    /// 0: never.
    #[arg(long, env = "ROOMCAST_ROOM_IDLE_END_SECS", default_value_t = 300)]
    pub room_idle_end_secs: u64,
    /// Browser origins allowed to call the API and open signaling sockets (comma-separated,
    /// e.g. https://app.example.com). Empty: same-origin pages and non-browser clients only.
    #[arg(long, env = "ROOMCAST_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,
    /// Most participants connected to one room at once.
    #[arg(long, env = "ROOMCAST_MAX_PARTICIPANTS", default_value_t = 50)]
    pub max_participants: usize,
    /// Joins per client IP per minute (0: unlimited).
    #[arg(long, env = "ROOMCAST_JOINS_PER_MINUTE", default_value_t = 120)]
    pub joins_per_minute: u32,
    /// Signaling messages per second per connection (bursts of twice that are allowed).
    #[arg(long, env = "ROOMCAST_MESSAGES_PER_SECOND", default_value_t = 50)]
    pub messages_per_second: u32,
    /// coturn `static-auth-secret`: join responses then carry time-limited TURN credentials.
    #[arg(long, env = "ROOMCAST_TURN_SECRET", hide_env_values = true)]
    pub turn_secret: Option<String>,
    /// TURN URLs for those credentials (comma-separated, e.g. turn:turn.example.com:3478).
    #[arg(long, env = "ROOMCAST_TURN_URLS", value_delimiter = ',')]
    pub turn_urls: Vec<String>,
    /// Log as JSON lines instead of text.
    #[arg(long, env = "ROOMCAST_LOG_JSON", default_value_t = false)]
    pub log_json: bool,
    /// CPU priority of the gateway and its compositors (a nice value, -20..=0): media goes
    /// before other work on the host. Needs CAP_SYS_NICE (root, or the systemd unit); 0 leaves
    /// the priority as started (see `priority`).
    #[arg(long, env = "ROOMCAST_NICE", default_value_t = -5, allow_negative_numbers = true, value_parser = clap::value_parser!(i32).range(-20..=0))]
    pub nice: i32,
}

impl Config {
    /// Loopback, ephemeral ports, two workers: for tests and benchmarks in one process.
    pub fn for_tests(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            listen: "127.0.0.1:0".parse().expect("valid address"),
            data_dir: data_dir.into(),
            api_key: None,
            store: None,
            public_url: None,
            node_id: None,
            capacity_cores: None,
            udp_port: 0,
            media_ip: None,
            announce_ip: None,
            workers: Some(2),
            web_dir: PathBuf::from("web/dist"),
            jwt_secret: None,
            ice_disconnect_timeout_secs: 30,
            hls_url_ttl_secs: 300,
            fault_injection: false,
            bwe: true,
            ice_lite: false,
            compositor_bin: None,
            compositor_spares: 1,
            rtp_port_min: 20000,
            rtp_port_max: 30000,
            broadcast_width: 1280,
            broadcast_height: 720,
            broadcast_fps: 30,
            part_ms: 200,
            segment_ms: 1000,
            max_compositor_restarts: 5,
            stall_parts: 5,
            broadcast_idle_stop_secs: 60,
            room_idle_end_secs: 300,
            allowed_origins: Vec::new(),
            max_participants: 50,
            joins_per_minute: 0,
            messages_per_second: 50,
            turn_secret: None,
            turn_urls: Vec::new(),
            log_json: false,
            nice: 0,
        }
    }

    pub fn media_ip(&self) -> IpAddr {
        self.media_ip.unwrap_or(self.listen.ip())
    }

    pub fn announce_ip(&self) -> IpAddr {
        self.announce_ip.unwrap_or(self.media_ip())
    }

    pub fn worker_count(&self) -> usize {
        self.workers.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)).max(1)
    }

    pub fn output_format(&self) -> crate::broadcast::compositor::OutputFormat {
        crate::broadcast::compositor::OutputFormat {
            width: self.broadcast_width,
            height: self.broadcast_height,
            fps: self.broadcast_fps,
            part: Duration::from_millis(self.part_ms),
            segment: Duration::from_millis(self.segment_ms),
        }
    }

    pub fn hls_url_ttl(&self) -> Duration {
        Duration::from_secs(self.hls_url_ttl_secs)
    }

    pub fn idle_limits(&self) -> crate::rooms::idle::IdleLimits {
        crate::rooms::idle::IdleLimits::from_secs(self.broadcast_idle_stop_secs, self.room_idle_end_secs)
    }

    pub fn ice_disconnect_timeout(&self) -> Duration {
        Duration::from_secs(self.ice_disconnect_timeout_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Serve {
        #[command(flatten)]
        config: Config,
    }

    #[test]
    fn idle_limits_from_flags() {
        let defaults = Serve::try_parse_from(["roomcast"]).expect("defaults parse").config.idle_limits();
        assert_eq!((defaults.broadcast, defaults.room), (Some(Duration::from_secs(60)), Some(Duration::from_secs(300))));
        let set = Serve::try_parse_from(["roomcast", "--broadcast-idle-stop-secs", "3", "--room-idle-end-secs", "0"])
            .expect("parse")
            .config
            .idle_limits();
        assert_eq!((set.broadcast, set.room), (Some(Duration::from_secs(3)), None), "0 is never");
    }
}
