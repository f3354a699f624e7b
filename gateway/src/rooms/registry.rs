//! The room registry: room ids and names, the worker a room is pinned to, and which
//! participants have a live signaling session (one session per join token's participant).
//! With a store, rooms are written through to it and loaded back at start, and session and
//! broadcast records go to it through its [`Writer`] (never blocking the caller).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::auth::token::{unix_now, JOIN_TOKEN_TTL};
use crate::store::{RoomRecord, RoomSettings, Store, StoreError, Write, Writer};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoomEntry {
    pub id: String,
    pub name: String,
    pub created_at: u64,
    #[serde(flatten)]
    pub settings: RoomSettings,
    #[serde(skip)]
    pub worker: usize,
}

#[derive(Default)]
struct RoomState {
    entry: Option<RoomEntry>,
    connected: HashSet<String>,
    ended: HashSet<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SessionError {
    #[error("no such room")]
    UnknownRoom,
    #[error("this participant is already connected; each join token allows one session")]
    AlreadyConnected,
    #[error("this participant already left the room; join again for a new token")]
    Ended,
}

struct Persistence {
    store: Arc<dyn Store>,
    writer: Writer,
}

pub struct Rooms {
    workers: usize,
    inner: Mutex<HashMap<String, RoomState>>,
    persistence: Option<Persistence>,
}

impl Rooms {
    /// Rooms in memory only (unit tests).
    pub fn new(workers: usize) -> Self {
        Self { workers: workers.max(1), inner: Mutex::new(HashMap::new()), persistence: None }
    }

    /// Rooms kept in `store`; call [`Rooms::load`] next. Needs a tokio runtime (the writer task).
    pub fn with_store(workers: usize, store: Arc<dyn Store>) -> Self {
        let writer = Writer::spawn(store.clone());
        Self { persistence: Some(Persistence { store, writer }), ..Self::new(workers) }
    }

    /// Loads the store's rooms that have not ended, so their links work after a restart, and
    /// the participants who left them recently, so their join tokens stay used up.
    /// Returns how many rooms were loaded.
    pub async fn load(&self) -> Result<usize, StoreError> {
        let Some(p) = &self.persistence else { return Ok(0) };
        let rooms = p.store.open_rooms().await?;
        let tokens_valid_since = unix_now().saturating_sub(JOIN_TOKEN_TTL.as_secs());
        for room in &rooms {
            let ended: HashSet<String> = p
                .store
                .sessions(&room.id)
                .await?
                .into_iter()
                .filter(|s| s.left_at.is_some() && s.joined_at >= tokens_valid_since)
                .map(|s| s.participant)
                .collect();
            let mut inner = self.inner.lock().expect("rooms lock");
            let worker = least_loaded_worker(&inner, self.workers);
            let entry = RoomEntry { id: room.id.clone(), name: room.name.clone(), created_at: room.created_at, settings: room.settings.clone(), worker };
            inner.insert(room.id.clone(), RoomState { entry: Some(entry), connected: HashSet::new(), ended });
        }
        Ok(rooms.len())
    }

    /// Creates a room in memory only; [`Rooms::create_stored`] also writes it to the store.
    pub fn create(&self, name: String, settings: RoomSettings) -> RoomEntry {
        let mut inner = self.inner.lock().expect("rooms lock");
        let worker = least_loaded_worker(&inner, self.workers);
        let entry = RoomEntry { id: new_id("r"), name, created_at: unix_now(), settings, worker };
        inner.insert(entry.id.clone(), RoomState { entry: Some(entry.clone()), ..Default::default() });
        entry
    }

    /// Creates a room and waits until the store has it; if the store fails, the room is not created.
    pub async fn create_stored(&self, name: String, settings: RoomSettings) -> Result<RoomEntry, StoreError> {
        let entry = self.create(name, settings);
        if let Some(p) = &self.persistence {
            if let Err(e) = p.store.create_room(&room_record(&entry)).await {
                self.inner.lock().expect("rooms lock").remove(&entry.id);
                return Err(e);
            }
        }
        Ok(entry)
    }

    /// The store, if there is one (for reads and awaited writes).
    pub fn store(&self) -> Option<&Arc<dyn Store>> {
        self.persistence.as_ref().map(|p| &p.store)
    }

    /// Queues a write to the store without waiting; a no-op without a store.
    pub fn record(&self, write: Write) {
        if let Some(p) = &self.persistence {
            p.writer.send(write);
        }
    }

    /// Waits until the writes queued so far are in the store.
    pub async fn flush(&self) {
        if let Some(p) = &self.persistence {
            p.writer.flush().await;
        }
    }

    pub fn get(&self, id: &str) -> Option<RoomEntry> {
        self.inner.lock().expect("rooms lock").get(id).and_then(|s| s.entry.clone())
    }

    pub fn begin_session(&self, room: &str, participant: &str) -> Result<RoomEntry, SessionError> {
        let mut inner = self.inner.lock().expect("rooms lock");
        let state = inner.get_mut(room).ok_or(SessionError::UnknownRoom)?;
        let entry = state.entry.clone().ok_or(SessionError::UnknownRoom)?;
        if state.ended.contains(participant) {
            return Err(SessionError::Ended);
        }
        if !state.connected.insert(participant.to_owned()) {
            return Err(SessionError::AlreadyConnected);
        }
        Ok(entry)
    }

    /// Participants connected to the room now.
    pub fn connected(&self, room: &str) -> usize {
        self.inner.lock().expect("rooms lock").get(room).map_or(0, |s| s.connected.len())
    }

    /// Undo `begin_session` for a connection that never opened (the token stays usable).
    pub fn release_session(&self, room: &str, participant: &str) {
        if let Some(state) = self.inner.lock().expect("rooms lock").get_mut(room) {
            state.connected.remove(participant);
        }
    }

    pub fn end_session(&self, room: &str, participant: &str) {
        if let Some(state) = self.inner.lock().expect("rooms lock").get_mut(room) {
            state.connected.remove(participant);
            state.ended.insert(participant.to_owned());
        }
    }
}

/// New rooms go to the worker with the fewest rooms.
fn least_loaded_worker(rooms: &HashMap<String, RoomState>, workers: usize) -> usize {
    let mut load = vec![0usize; workers];
    for e in rooms.values().filter_map(|s| s.entry.as_ref()) {
        if let Some(n) = load.get_mut(e.worker) {
            *n += 1;
        }
    }
    (0..workers).min_by_key(|&w| load[w]).unwrap_or(0)
}

fn room_record(entry: &RoomEntry) -> RoomRecord {
    RoomRecord {
        id: entry.id.clone(),
        name: entry.name.clone(),
        settings: entry.settings.clone(),
        created_at: entry.created_at,
        ended_at: None,
    }
}

pub fn new_id(prefix: &str) -> String {
    let n: u64 = rand::random();
    format!("{prefix}-{:012x}", n & 0xffff_ffff_ffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_session_per_participant_and_no_rejoin_after_leave() {
        let rooms = Rooms::new(2);
        let r = rooms.create("Standup".into(), RoomSettings::default());
        assert_eq!(rooms.begin_session("r-nope", "p-1"), Err(SessionError::UnknownRoom));
        assert!(rooms.begin_session(&r.id, "p-1").is_ok());
        assert_eq!(rooms.begin_session(&r.id, "p-1"), Err(SessionError::AlreadyConnected));
        rooms.end_session(&r.id, "p-1");
        assert_eq!(rooms.begin_session(&r.id, "p-1"), Err(SessionError::Ended));
    }

    #[tokio::test]
    async fn load_restores_rooms_and_used_tokens() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store: Arc<dyn Store> = Arc::new(crate::store::sqlite::SqliteStore::open(&dir.path().join("s.sqlite3")).await.expect("open"));
        let before = Rooms::with_store(2, store.clone());
        let r = before.create_stored("Standup".into(), RoomSettings { auto_broadcast: true, private: true, ..Default::default() }).await.expect("stored");
        let gone = before.create_stored("Gone".into(), RoomSettings::default()).await.expect("stored");
        store.end_room(&gone.id, unix_now()).await.expect("end");
        let now = unix_now();
        let session = |p: &str| crate::store::SessionRecord {
            room: r.id.clone(), participant: p.into(), name: p.into(), role: "publisher".into(),
            user_agent: None, joined_at: now, left_at: None, stats: None,
        };
        before.record(Write::SessionJoined(Box::new(session("p-left"))));
        before.record(Write::SessionLeft { room: r.id.clone(), participant: "p-left".into(), at: now });
        before.record(Write::SessionJoined(Box::new(session("p-cut"))));
        before.flush().await;

        let after = Rooms::with_store(2, store);
        assert_eq!(after.load().await.expect("load"), 1);
        let loaded = after.get(&r.id).expect("room loaded");
        assert_eq!((loaded.name.as_str(), loaded.settings.auto_broadcast, loaded.settings.private, loaded.created_at), ("Standup", true, true, r.created_at));
        assert!(after.get(&gone.id).is_none(), "ended rooms stay ended");
        assert_eq!(after.begin_session(&r.id, "p-left"), Err(SessionError::Ended));
        assert!(after.begin_session(&r.id, "p-cut").is_ok(), "a session cut by the restart may reconnect");
    }

    #[test]
    fn rooms_spread_over_workers() {
        let rooms = Rooms::new(2);
        let a = rooms.create("a".into(), RoomSettings::default());
        let b = rooms.create("b".into(), RoomSettings::default());
        assert_ne!(a.worker, b.worker);
    }
}
