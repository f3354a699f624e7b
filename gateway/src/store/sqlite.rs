//! The embedded default store: one SQLite file (WAL mode) in the data directory.
//! rusqlite is blocking, so every call runs on tokio's blocking pool; one connection,
//! behind a mutex, serializes them (SQLite allows one writer at a time anyway).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::{
    summarize, BroadcastEnd, BroadcastRecord, NodeRecord, Result, RoomRecord, RoomSettings, Sample, SessionRecord, StatsSample,
    StatsSummary, Store, StoreError,
};

/// Bumped when the schema changes; `PRAGMA user_version` holds it.
const SCHEMA_VERSION: i64 = 3;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS rooms (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    settings TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    ended_at INTEGER
);
CREATE INDEX IF NOT EXISTS rooms_open ON rooms (ended_at, created_at);
CREATE TABLE IF NOT EXISTS sessions (
    room TEXT NOT NULL,
    participant TEXT NOT NULL,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    user_agent TEXT,
    joined_at INTEGER NOT NULL,
    left_at INTEGER,
    stats TEXT,
    PRIMARY KEY (room, participant)
);
CREATE INDEX IF NOT EXISTS sessions_participant ON sessions (participant);
CREATE TABLE IF NOT EXISTS stats_samples (
    room TEXT NOT NULL,
    participant TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    bitrate_bps INTEGER NOT NULL,
    loss REAL NOT NULL,
    rtt_ms REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS stats_samples_participant ON stats_samples (participant, at_ms);
CREATE TABLE IF NOT EXISTS broadcasts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    room TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    stopped_at INTEGER,
    restarts INTEGER NOT NULL DEFAULT 0,
    viewers_peak INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS broadcasts_room ON broadcasts (room, started_at);
CREATE TABLE IF NOT EXISTS nodes (
    id TEXT PRIMARY KEY,
    record TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS room_owners (
    room TEXT PRIMARY KEY,
    owner TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS invite_seats (
    invite TEXT NOT NULL,
    participant TEXT NOT NULL,
    at INTEGER NOT NULL,
    PRIMARY KEY (invite, participant)
);
";

pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
}

impl SqliteStore {
    /// Opens (or creates) the file, switches it to WAL and creates the schema.
    pub async fn open(path: &Path) -> Result<Self> {
        let owned: PathBuf = path.to_owned();
        let conn = tokio::task::spawn_blocking(move || open_connection(&owned))
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?
            .map_err(|source| StoreError::Open { path: path.to_owned(), source })?;
        Ok(Self { conn: Arc::new(Mutex::new(conn)) })
    }

    /// Runs `f` on the connection on the blocking pool.
    async fn call<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            // A panic in an earlier call poisons the lock; the connection itself is still fine.
            let mut conn = conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            f(&mut conn)
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
        .map_err(StoreError::from)
    }
}

fn open_connection(path: &Path) -> rusqlite::Result<Connection> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        // If this fails, opening the file fails with SQLite's own message.
        let _ = std::fs::create_dir_all(dir);
    }
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(path = %path.display(), mode, "SQLite store is not in WAL mode (the file system may not support it)");
    }
    conn.execute_batch("PRAGMA synchronous = NORMAL;")?;
    conn.execute_batch(SCHEMA)?;
    conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    Ok(conn)
}

fn to_json<T: serde::Serialize>(value: &T) -> rusqlite::Result<String> {
    serde_json::to_string(value).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

fn from_json<T: serde::de::DeserializeOwned>(row: &Row, idx: usize) -> rusqlite::Result<T> {
    let text: String = row.get(idx)?;
    serde_json::from_str(&text).map_err(|e| rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, Box::new(e)))
}

const ROOM_COLUMNS: &str = "id, name, settings, created_at, ended_at";

fn room_from_row(row: &Row) -> rusqlite::Result<RoomRecord> {
    Ok(RoomRecord {
        id: row.get(0)?,
        name: row.get(1)?,
        settings: from_json::<RoomSettings>(row, 2)?,
        created_at: row.get(3)?,
        ended_at: row.get(4)?,
    })
}

const SESSION_COLUMNS: &str = "room, participant, name, role, user_agent, joined_at, left_at, stats";

fn session_from_row(row: &Row) -> rusqlite::Result<SessionRecord> {
    let stats: Option<String> = row.get(7)?;
    Ok(SessionRecord {
        room: row.get(0)?,
        participant: row.get(1)?,
        name: row.get(2)?,
        role: row.get(3)?,
        user_agent: row.get(4)?,
        joined_at: row.get(5)?,
        left_at: row.get(6)?,
        stats: match stats {
            Some(_) => Some(from_json::<StatsSummary>(row, 7)?),
            None => None,
        },
    })
}

fn broadcast_from_row(row: &Row) -> rusqlite::Result<BroadcastRecord> {
    Ok(BroadcastRecord {
        room: row.get(0)?,
        started_at: row.get(1)?,
        stopped_at: row.get(2)?,
        restarts: row.get(3)?,
        viewers_peak: row.get(4)?,
    })
}

fn samples_of(conn: &Connection, participant: &str) -> rusqlite::Result<Vec<Sample>> {
    let mut stmt =
        conn.prepare_cached("SELECT at_ms, bitrate_bps, loss, rtt_ms FROM stats_samples WHERE participant = ?1 ORDER BY at_ms")?;
    let rows =
        stmt.query_map([participant], |r| Ok(Sample { at_ms: r.get(0)?, bitrate_bps: r.get(1)?, loss: r.get(2)?, rtt_ms: r.get(3)? }))?;
    rows.collect()
}

fn seats_of(conn: &Connection, invite: &str) -> rusqlite::Result<u32> {
    conn.query_row("SELECT COUNT(*) FROM invite_seats WHERE invite = ?1", [invite], |r| r.get(0))
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    async fn create_room(&self, room: &RoomRecord) -> Result<()> {
        let room = room.clone();
        self.call(move |c| {
            c.execute(
                "INSERT OR REPLACE INTO rooms (id, name, settings, created_at, ended_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![room.id, room.name, to_json(&room.settings)?, room.created_at, room.ended_at],
            )
            .map(drop)
        })
        .await
    }

    async fn end_room(&self, id: &str, at: u64) -> Result<()> {
        let id = id.to_owned();
        self.call(move |c| c.execute("UPDATE rooms SET ended_at = ?2 WHERE id = ?1 AND ended_at IS NULL", params![id, at]).map(drop)).await
    }

    async fn room(&self, id: &str) -> Result<Option<RoomRecord>> {
        let id = id.to_owned();
        self.call(move |c| c.query_row(&format!("SELECT {ROOM_COLUMNS} FROM rooms WHERE id = ?1"), [id], room_from_row).optional()).await
    }

    async fn open_rooms(&self) -> Result<Vec<RoomRecord>> {
        self.call(|c| {
            let mut stmt = c.prepare(&format!("SELECT {ROOM_COLUMNS} FROM rooms WHERE ended_at IS NULL ORDER BY created_at, id"))?;
            let rows = stmt.query_map([], room_from_row)?;
            rows.collect()
        })
        .await
    }

    async fn session_joined(&self, s: &SessionRecord) -> Result<()> {
        let s = s.clone();
        self.call(move |c| {
            let stats = s.stats.as_ref().map(to_json).transpose()?;
            c.execute(
                "INSERT INTO sessions (room, participant, name, role, user_agent, joined_at, left_at, stats)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (room, participant) DO UPDATE SET name = excluded.name, role = excluded.role,
                   user_agent = excluded.user_agent, joined_at = excluded.joined_at, left_at = excluded.left_at, stats = excluded.stats",
                params![s.room, s.participant, s.name, s.role, s.user_agent, s.joined_at, s.left_at, stats],
            )
            .map(drop)
        })
        .await
    }

    async fn session_left(&self, room: &str, participant: &str, at: u64) -> Result<()> {
        let (room, participant) = (room.to_owned(), participant.to_owned());
        self.call(move |c| {
            let tx = c.transaction()?;
            let stats = summarize(&samples_of(&tx, &participant)?).as_ref().map(to_json).transpose()?;
            tx.execute(
                "UPDATE sessions SET left_at = ?3, stats = ?4 WHERE room = ?1 AND participant = ?2",
                params![room, participant, at, stats],
            )?;
            tx.commit()
        })
        .await
    }

    async fn sessions(&self, room: &str) -> Result<Vec<SessionRecord>> {
        let room = room.to_owned();
        self.call(move |c| {
            let mut stmt = c.prepare(&format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE room = ?1 ORDER BY joined_at, participant"))?;
            let rows = stmt.query_map([room], session_from_row)?;
            rows.collect()
        })
        .await
    }

    async fn record_stats(&self, samples: &[StatsSample]) -> Result<()> {
        let samples = samples.to_vec();
        self.call(move |c| {
            let tx = c.transaction()?;
            {
                let mut stmt = tx.prepare_cached(
                    "INSERT INTO stats_samples (room, participant, at_ms, bitrate_bps, loss, rtt_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?;
                for s in &samples {
                    stmt.execute(params![s.room, s.participant, s.at_ms, s.bitrate_bps, s.loss, s.rtt_ms])?;
                }
            }
            tx.commit()
        })
        .await
    }

    async fn summary(&self, participant: &str) -> Result<Option<StatsSummary>> {
        let participant = participant.to_owned();
        self.call(move |c| Ok(summarize(&samples_of(c, &participant)?))).await
    }

    async fn broadcast_started(&self, room: &str, at: u64) -> Result<()> {
        let room = room.to_owned();
        self.call(move |c| {
            let tx = c.transaction()?;
            tx.execute("UPDATE broadcasts SET stopped_at = ?2 WHERE room = ?1 AND stopped_at IS NULL", params![room, at])?;
            tx.execute("INSERT INTO broadcasts (room, started_at) VALUES (?1, ?2)", params![room, at])?;
            tx.commit()
        })
        .await
    }

    async fn broadcast_stopped(&self, room: &str, end: &BroadcastEnd) -> Result<()> {
        let (room, end) = (room.to_owned(), *end);
        self.call(move |c| {
            c.execute(
                "UPDATE broadcasts SET stopped_at = ?2, restarts = ?3, viewers_peak = ?4 WHERE room = ?1 AND stopped_at IS NULL",
                params![room, end.stopped_at, end.restarts, end.viewers_peak],
            )
            .map(drop)
        })
        .await
    }

    async fn broadcasts(&self, room: &str) -> Result<Vec<BroadcastRecord>> {
        let room = room.to_owned();
        self.call(move |c| {
            let mut stmt = c.prepare(
                "SELECT room, started_at, stopped_at, restarts, viewers_peak FROM broadcasts WHERE room = ?1 ORDER BY started_at, id",
            )?;
            let rows = stmt.query_map([room], broadcast_from_row)?;
            rows.collect()
        })
        .await
    }

    async fn invite_use(&self, invite: &str, participant: &str, max_uses: Option<u32>, at: u64) -> Result<Option<u32>> {
        let (invite, participant) = (invite.to_owned(), participant.to_owned());
        self.call(move |c| {
            // One connection (behind the mutex), and the count and the insert in one transaction.
            let tx = c.transaction()?;
            let taken = seats_of(&tx, &invite)?;
            if max_uses.is_some_and(|max| taken >= max) {
                return Ok(None);
            }
            tx.execute(
                "INSERT OR IGNORE INTO invite_seats (invite, participant, at) VALUES (?1, ?2, ?3)",
                params![invite, participant, at],
            )?;
            let taken = seats_of(&tx, &invite)?;
            tx.commit()?;
            Ok(Some(taken))
        })
        .await
    }

    async fn invite_rejoin(&self, invite: &str, previous: &str, participant: &str, at: u64) -> Result<bool> {
        let (invite, previous, participant) = (invite.to_owned(), previous.to_owned(), participant.to_owned());
        self.call(move |c| {
            c.execute(
                "UPDATE invite_seats SET participant = ?3, at = ?4 WHERE invite = ?1 AND participant = ?2",
                params![invite, previous, participant, at],
            )
            .map(|changed| changed == 1)
        })
        .await
    }

    async fn invite_uses(&self, invite: &str) -> Result<u32> {
        let invite = invite.to_owned();
        self.call(move |c| seats_of(c, &invite)).await
    }

    async fn node_heartbeat(&self, node: &NodeRecord) -> Result<()> {
        let (id, record) = (node.id.clone(), to_json(node)?);
        self.call(move |c| c.execute("INSERT OR REPLACE INTO nodes (id, record) VALUES (?1, ?2)", params![id, record]).map(|_| ())).await
    }

    async fn nodes(&self) -> Result<Vec<NodeRecord>> {
        self.call(|c| {
            let mut stmt = c.prepare("SELECT record FROM nodes ORDER BY id")?;
            let rows = stmt.query_map([], |r| from_json(r, 0))?;
            rows.collect()
        })
        .await
    }

    async fn room_owner(&self, room: &str) -> Result<Option<String>> {
        let room = room.to_owned();
        self.call(move |c| c.query_row("SELECT owner FROM room_owners WHERE room = ?1", params![room], |r| r.get(0)).optional()).await
    }

    async fn claim_room(&self, room: &str, expected: Option<&str>, node: &str) -> Result<bool> {
        let (room, expected, node) = (room.to_owned(), expected.map(str::to_owned), node.to_owned());
        self.call(move |c| {
            // One statement each way, so the check and the write are one step.
            let changed = match expected {
                None => c.execute("INSERT OR IGNORE INTO room_owners (room, owner) VALUES (?1, ?2)", params![room, node])?,
                Some(old) => c.execute("UPDATE room_owners SET owner = ?2 WHERE room = ?1 AND owner = ?3", params![room, node, old])?,
            };
            Ok(changed == 1)
        })
        .await
    }
}
