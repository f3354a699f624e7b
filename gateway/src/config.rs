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
    /// Log as JSON lines instead of text.
    #[arg(long, env = "ROOMCAST_LOG_JSON", default_value_t = false)]
    pub log_json: bool,
}

impl Config {
    /// Loopback, ephemeral ports, two workers: for tests and benchmarks in one process.
    pub fn for_tests(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            listen: "127.0.0.1:0".parse().expect("valid address"),
            data_dir: data_dir.into(),
            api_key: None,
            store: None,
            udp_port: 0,
            media_ip: None,
            announce_ip: None,
            workers: Some(2),
            web_dir: PathBuf::from("web/dist"),
            jwt_secret: None,
            ice_disconnect_timeout_secs: 30,
            log_json: false,
        }
    }

    pub fn media_ip(&self) -> IpAddr {
        self.media_ip.unwrap_or(self.listen.ip())
    }

    pub fn announce_ip(&self) -> IpAddr {
        self.announce_ip.unwrap_or(self.media_ip())
    }

    pub fn worker_count(&self) -> usize {
        self.workers
            .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1))
            .max(1)
    }

    pub fn ice_disconnect_timeout(&self) -> Duration {
        Duration::from_secs(self.ice_disconnect_timeout_secs)
    }
}
