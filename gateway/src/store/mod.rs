//! The store: what Roomcast remembers across restarts — rooms, participant sessions, call stats,
//! broadcasts, the uses of invite links, and (in a cluster) its nodes and who owns each room.
//! One contract ([`Store`]), two implementations: [`sqlite`] (the embedded default, in the data
//! directory) and [`mongo`] (chosen by a
//! `mongodb://` URI).
//!
//! Timestamps are Unix seconds (`*_at`), except stats samples, which carry milliseconds (`at_ms`).

pub mod mongo;
pub mod node;
pub mod sqlite;
pub mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use node::{NodeLoad, NodeRecord};
pub use writer::{Write, Writer};

/// The embedded store's file name inside the data directory.
pub const SQLITE_FILE: &str = "roomcast.sqlite3";

/// Room settings, kept as one value so a new setting needs no schema change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RoomSettings {
    /// Start the broadcast when someone first publishes.
    pub auto_broadcast: bool,
    /// Viewers need a `viewer` token, and HLS URLs a signed, expiring query parameter.
    pub private: bool,
    /// Media is end-to-end encrypted by the browsers: the SFU forwards it as usual, but the
    /// gateway cannot decode it, so the room cannot be broadcast.
    pub e2ee: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomRecord {
    pub id: String,
    pub name: String,
    pub settings: RoomSettings,
    pub created_at: u64,
    /// Set when the room was ended; ended rooms are not loaded at start.
    pub ended_at: Option<u64>,
}

/// One signaling session of one participant (one join token).
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRecord {
    pub room: String,
    pub participant: String,
    pub name: String,
    /// The token's role, lowercase (`publisher`, `host`, …).
    pub role: String,
    pub user_agent: Option<String>,
    pub joined_at: u64,
    pub left_at: Option<u64>,
    /// The participant's call stats, summarized when the session ended.
    pub stats: Option<StatsSummary>,
}

/// One call-quality sample of one participant.
#[derive(Debug, Clone, PartialEq)]
pub struct StatsSample {
    pub room: String,
    pub participant: String,
    pub at_ms: u64,
    pub bitrate_bps: u64,
    /// Fraction of packets lost, 0.0–1.0.
    pub loss: f64,
    pub rtt_ms: f64,
}

/// Samples without the ids, as they are read back for summarizing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub at_ms: u64,
    pub bitrate_bps: u64,
    pub loss: f64,
    pub rtt_ms: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatsSummary {
    pub samples: u64,
    pub first_at_ms: u64,
    pub last_at_ms: u64,
    pub bitrate_avg_bps: u64,
    pub bitrate_max_bps: u64,
    pub loss_avg: f64,
    pub loss_max: f64,
    pub rtt_avg_ms: f64,
    pub rtt_max_ms: f64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BroadcastRecord {
    pub room: String,
    pub started_at: u64,
    pub stopped_at: Option<u64>,
    /// Compositor restarts during the broadcast.
    pub restarts: u32,
    pub viewers_peak: u32,
}

/// How a broadcast ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BroadcastEnd {
    pub stopped_at: u64,
    pub restarts: u32,
    pub viewers_peak: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store at {path}: {source}; check --data-dir (or --store) permissions and free space")]
    Open { path: PathBuf, source: rusqlite::Error },
    #[error("cannot use MongoDB at {uri}: {source}; check --store (ROOMCAST_STORE) and that the server is running and reachable")]
    Connect { uri: String, source: mongodb::error::Error },
    #[error("the SQLite store failed: {0}; check the disk under --data-dir")]
    Sqlite(#[from] rusqlite::Error),
    #[error("the MongoDB store failed: {0}; check that the server in --store is reachable")]
    Mongo(#[from] mongodb::error::Error),
    #[error("a stored record is malformed ({0}); was the store written by another program?")]
    Malformed(String),
    #[error("a store task failed: {0}")]
    Task(String),
    #[error("room {0}'s owner kept changing while this node looked it up (nodes claiming it at once); retry")]
    OwnerChanging(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// The contract both stores keep (checked by `gateway/tests/store_contract.rs`).
/// Writes of a record that already exists replace it (session joins, room creation), so a
/// retried write is harmless.
#[async_trait::async_trait]
pub trait Store: Send + Sync {
    /// `sqlite` or `mongodb`, for logs.
    fn kind(&self) -> &'static str;

    async fn create_room(&self, room: &RoomRecord) -> Result<()>;
    async fn end_room(&self, id: &str, at: u64) -> Result<()>;
    async fn room(&self, id: &str) -> Result<Option<RoomRecord>>;
    /// Rooms not ended, oldest first.
    async fn open_rooms(&self) -> Result<Vec<RoomRecord>>;

    async fn session_joined(&self, session: &SessionRecord) -> Result<()>;
    /// Marks the session left and stores the summary of the participant's call stats.
    async fn session_left(&self, room: &str, participant: &str, at: u64) -> Result<()>;
    /// A room's sessions, in join order.
    async fn sessions(&self, room: &str) -> Result<Vec<SessionRecord>>;

    async fn record_stats(&self, samples: &[StatsSample]) -> Result<()>;
    /// The participant's samples so far, summarized; `None` without samples.
    async fn summary(&self, participant: &str) -> Result<Option<StatsSummary>>;

    /// Opens a broadcast record; a record the room left open (a crash) is closed at `at`.
    async fn broadcast_started(&self, room: &str, at: u64) -> Result<()>;
    /// Closes the room's open broadcast record, if any.
    async fn broadcast_stopped(&self, room: &str, end: &BroadcastEnd) -> Result<()>;
    /// A room's broadcasts, oldest first.
    async fn broadcasts(&self, room: &str) -> Result<Vec<BroadcastRecord>>;

    /// Invite links: one seat per person who joined with the invite `invite` (its id). Takes a
    /// seat for `participant` if fewer than `max_uses` (`None`: no limit) are taken, atomically:
    /// the number of seats taken now, or `None` when the invite is used up.
    async fn invite_use(&self, invite: &str, participant: &str, max_uses: Option<u32>, at: u64) -> Result<Option<u32>>;
    /// A rejoin: moves the seat `previous` holds to `participant` (no new use). False when
    /// `previous` holds no seat of the invite (never had one, or already moved it on).
    async fn invite_rejoin(&self, invite: &str, previous: &str, participant: &str, at: u64) -> Result<bool>;
    /// How many seats of the invite are taken (0 for an invite never used).
    async fn invite_uses(&self, invite: &str) -> Result<u32>;

    /// Cluster: a node's heartbeat, its record as it is now (inserted or replaced).
    async fn node_heartbeat(&self, node: &NodeRecord) -> Result<()>;
    /// Every node that has heartbeated, by id (liveness is the caller's judgement, from
    /// `heartbeat_at_ms`).
    async fn nodes(&self) -> Result<Vec<NodeRecord>>;
    /// The node that owns a room, if one has claimed it.
    async fn room_owner(&self, room: &str) -> Result<Option<String>>;
    /// Makes `node` the room's owner if its owner is still `expected` (`None`: nobody), as one
    /// atomic step: two nodes that both saw the same owner die cannot both take its room.
    /// True if this call made the claim.
    async fn claim_room(&self, room: &str, expected: Option<&str>, node: &str) -> Result<bool>;
}

/// Where the store lives, from `--store` and `--data-dir`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Sqlite(PathBuf),
    Mongo(String),
}

impl Location {
    /// No `--store`: SQLite in the data directory. A `mongodb://` (or `mongodb+srv://`) URI:
    /// MongoDB. Any other value is a SQLite path; a directory gets the default file name.
    pub fn from_config(store: Option<&str>, data_dir: &Path) -> Self {
        match store.map(str::trim).filter(|s| !s.is_empty()) {
            None => Location::Sqlite(data_dir.join(SQLITE_FILE)),
            Some(uri) if uri.starts_with("mongodb://") || uri.starts_with("mongodb+srv://") => Location::Mongo(uri.to_owned()),
            Some(path) if Path::new(path).is_dir() => Location::Sqlite(Path::new(path).join(SQLITE_FILE)),
            Some(path) => Location::Sqlite(PathBuf::from(path)),
        }
    }

    /// For logs and errors: a MongoDB URI without its password.
    pub fn display(&self) -> String {
        match self {
            Location::Sqlite(path) => path.display().to_string(),
            Location::Mongo(uri) => redact(uri),
        }
    }
}

/// Opens the store and creates its schema and indexes (idempotent).
pub async fn open(location: &Location) -> Result<Arc<dyn Store>> {
    Ok(match location {
        Location::Sqlite(path) => Arc::new(sqlite::SqliteStore::open(path).await?),
        Location::Mongo(uri) => Arc::new(mongo::MongoStore::connect(uri).await?),
    })
}

/// `mongodb://user:secret@host/db` → `mongodb://user:***@host/db`.
pub fn redact(uri: &str) -> String {
    let Some((scheme, rest)) = uri.split_once("://") else { return uri.to_owned() };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => {
            let user = rest[..at].split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***@{}", &rest[at + 1..])
        }
        None => uri.to_owned(),
    }
}

/// Summarizes samples (any order); `None` for none.
pub fn summarize(samples: &[Sample]) -> Option<StatsSummary> {
    let n = samples.len();
    if n == 0 {
        return None;
    }
    let mut s = StatsSummary {
        samples: n as u64,
        first_at_ms: u64::MAX,
        last_at_ms: 0,
        bitrate_avg_bps: 0,
        bitrate_max_bps: 0,
        loss_avg: 0.0,
        loss_max: 0.0,
        rtt_avg_ms: 0.0,
        rtt_max_ms: 0.0,
    };
    let mut bitrate_sum: u128 = 0;
    for x in samples {
        s.first_at_ms = s.first_at_ms.min(x.at_ms);
        s.last_at_ms = s.last_at_ms.max(x.at_ms);
        bitrate_sum += u128::from(x.bitrate_bps);
        s.bitrate_max_bps = s.bitrate_max_bps.max(x.bitrate_bps);
        s.loss_avg += x.loss;
        s.loss_max = s.loss_max.max(x.loss);
        s.rtt_avg_ms += x.rtt_ms;
        s.rtt_max_ms = s.rtt_max_ms.max(x.rtt_ms);
    }
    s.bitrate_avg_bps = (bitrate_sum / n as u128) as u64;
    s.loss_avg /= n as f64;
    s.rtt_avg_ms /= n as f64;
    Some(s)
}

/// Stored integers are i64 in both stores; u64 values above i64::MAX never occur in practice
/// (seconds, milliseconds, bits per second) and are clamped.
pub(crate) fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(crate) fn to_u64(v: i64, what: &str) -> Result<u64> {
    u64::try_from(v).map_err(|_| StoreError::Malformed(format!("{what} is negative: {v}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_from_config() {
        let dir = Path::new("/var/lib/roomcast");
        assert_eq!(Location::from_config(None, dir), Location::Sqlite(dir.join(SQLITE_FILE)));
        assert_eq!(Location::from_config(Some(" "), dir), Location::Sqlite(dir.join(SQLITE_FILE)));
        assert_eq!(Location::from_config(Some("/srv/rc.db"), dir), Location::Sqlite("/srv/rc.db".into()));
        assert_eq!(Location::from_config(Some("/tmp"), dir), Location::Sqlite(Path::new("/tmp").join(SQLITE_FILE)));
        assert_eq!(Location::from_config(Some("mongodb://db:27017/rc"), dir), Location::Mongo("mongodb://db:27017/rc".into()));
    }

    #[test]
    fn redacts_passwords_only() {
        assert_eq!(redact("mongodb://u:pw@h:1/db?x=y"), "mongodb://u:***@h:1/db?x=y");
        assert_eq!(redact("mongodb://h:1/db"), "mongodb://h:1/db");
        assert_eq!(redact("mongodb://h:1/a@b"), "mongodb://h:1/a@b");
    }

    #[test]
    fn summarize_samples() {
        assert_eq!(summarize(&[]), None);
        let s = summarize(&[
            Sample { at_ms: 2000, bitrate_bps: 1_000_000, loss: 0.0, rtt_ms: 20.0 },
            Sample { at_ms: 1000, bitrate_bps: 3_000_000, loss: 0.1, rtt_ms: 40.0 },
        ])
        .expect("two samples");
        assert_eq!((s.samples, s.first_at_ms, s.last_at_ms), (2, 1000, 2000));
        assert_eq!((s.bitrate_avg_bps, s.bitrate_max_bps), (2_000_000, 3_000_000));
        assert!((s.loss_avg - 0.05).abs() < 1e-9 && (s.loss_max - 0.1).abs() < 1e-9);
        assert!((s.rtt_avg_ms - 30.0).abs() < 1e-9 && (s.rtt_max_ms - 40.0).abs() < 1e-9);
    }
}
