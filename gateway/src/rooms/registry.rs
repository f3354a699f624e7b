//! The room registry: room ids and names, the worker a room is pinned to, and which
//! participants have a live signaling session (one session per join token's participant).
//! With a store, rooms are written through to it and loaded back at start, and session and
//! broadcast records go to it through its [`Writer`] (never blocking the caller).
//!
//! A room left empty is ended ([`Rooms::end_if_empty`], by the lifecycle task): it leaves
//! memory and its stored record gets `ended_at`. The record stays, so the room's link keeps
//! working: the next join brings it back ([`Rooms::reopen`]) with its name and settings.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::clock::unix_now;

use crate::auth::token::JOIN_TOKEN_TTL;
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

struct RoomState {
    entry: Option<RoomEntry>,
    connected: HashSet<String>,
    ended: HashSet<String>,
    /// Set when the room leaves this node for another (`Rooms::evict`): its sessions close.
    moved: tokio::sync::watch::Sender<bool>,
}

impl Default for RoomState {
    fn default() -> Self {
        Self { entry: None, connected: HashSet::new(), ended: HashSet::new(), moved: tokio::sync::watch::Sender::new(false) }
    }
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
    /// Rooms ended lately and their settings: a private room's final playlist is served for a
    /// grace period after its broadcast stops, and must stay private until it is gone.
    recently_ended: Mutex<HashMap<String, (RoomSettings, Instant)>>,
    persistence: Option<Persistence>,
}

/// How long an ended room's settings are remembered: longer than hls-out keeps a stopped
/// stream (its broadcast stopped at the latest when the room ended).
const RECENTLY_ENDED_KEEP: Duration = Duration::from_secs(hls_out::store::DEFAULT_GRACE.as_secs() * 2);

impl Rooms {
    /// Rooms in memory only (unit tests).
    pub fn new(workers: usize) -> Self {
        Self { workers: workers.max(1), inner: Mutex::new(HashMap::new()), recently_ended: Mutex::new(HashMap::new()), persistence: None }
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
        for room in &rooms {
            let ended = used_tokens(p.store.as_ref(), &room.id).await?;
            let mut inner = self.inner.lock().expect("rooms lock");
            let worker = least_loaded_worker(&inner, self.workers);
            let entry = RoomEntry {
                id: room.id.clone(),
                name: room.name.clone(),
                created_at: room.created_at,
                settings: room.settings.clone(),
                worker,
            };
            inner.insert(room.id.clone(), RoomState { entry: Some(entry), ended, ..Default::default() });
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

    /// A room another node of the cluster will hold: its record, in the store only.
    pub async fn create_record(&self, name: String, settings: RoomSettings) -> Result<RoomRecord, StoreError> {
        let record = RoomRecord { id: new_id("r"), name, settings, created_at: unix_now(), ended_at: None };
        if let Some(p) = &self.persistence {
            p.store.create_room(&record).await?;
        }
        Ok(record)
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

    /// The rooms in memory (not ended).
    pub fn ids(&self) -> Vec<String> {
        self.inner.lock().expect("rooms lock").keys().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.inner.lock().expect("rooms lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A room in memory, or else an ended one from the store (`ended_at` set), without bringing
    /// it back. `None`: no such room.
    pub async fn find(&self, id: &str) -> Result<Option<RoomRecord>, StoreError> {
        if let Some(entry) = self.get(id) {
            return Ok(Some(room_record(&entry)));
        }
        match &self.persistence {
            Some(p) => p.store.room(id).await,
            None => Ok(None),
        }
    }

    /// The room, brought back into memory from the store if it had ended (someone joins it
    /// again): same id, name and settings, a fresh SFU room, and its record open again.
    /// `None`: no such room.
    pub async fn reopen(&self, id: &str) -> Result<Option<RoomEntry>, StoreError> {
        if let Some(entry) = self.get(id) {
            return Ok(Some(entry));
        }
        let Some(p) = &self.persistence else { return Ok(None) };
        // The room's last writes (its end, the sessions that left) go first.
        p.writer.flush().await;
        let Some(mut record) = p.store.room(id).await? else { return Ok(None) };
        let ended = used_tokens(p.store.as_ref(), id).await?;
        let was_ended_at = record.ended_at.take();
        p.store.create_room(&record).await?;
        let mut inner = self.inner.lock().expect("rooms lock");
        if let Some(entry) = inner.get(id).and_then(|s| s.entry.clone()) {
            // Another request brought it back meanwhile.
            return Ok(Some(entry));
        }
        let worker = least_loaded_worker(&inner, self.workers);
        let entry = RoomEntry { id: record.id, name: record.name, created_at: record.created_at, settings: record.settings, worker };
        inner.insert(id.to_owned(), RoomState { entry: Some(entry.clone()), ended, ..Default::default() });
        drop(inner);
        self.recently_ended.lock().expect("ended rooms lock").remove(id);
        tracing::info!(room = id, worker, ended_at = ?was_ended_at, "room reopened: someone joins it again");
        Ok(Some(entry))
    }

    /// Ends the room if nobody is connected to it: it leaves memory, and the store records the
    /// end. Returns the ended room, or `None` if it is unknown or someone is in it.
    pub fn end_if_empty(&self, id: &str) -> Option<RoomEntry> {
        let entry = {
            let mut inner = self.inner.lock().expect("rooms lock");
            if inner.get(id).is_none_or(|s| !s.connected.is_empty()) {
                return None;
            }
            inner.remove(id)?.entry?
        };
        let now = Instant::now();
        let mut ended = self.recently_ended.lock().expect("ended rooms lock");
        ended.retain(|_, (_, at)| now.duration_since(*at) < RECENTLY_ENDED_KEEP);
        ended.insert(id.to_owned(), (entry.settings.clone(), now));
        drop(ended);
        self.record(Write::RoomEnded { room: id.to_owned(), at: unix_now() });
        Some(entry)
    }

    /// The room belongs to another node now (a cluster: it was claimed there while this node
    /// could not heartbeat): it leaves memory without a word to the store, whose records are
    /// the new owner's now, and its signaling sessions close (`moved`), so its participants
    /// join again and reach the owner. Returns whether the room was here.
    pub fn evict(&self, id: &str) -> bool {
        let Some(state) = self.inner.lock().expect("rooms lock").remove(id) else { return false };
        state.moved.send_replace(true);
        true
    }

    /// Resolves when the room leaves this node (`evict`); never for a room not here.
    pub fn moved(&self, id: &str) -> impl std::future::Future<Output = ()> + Send + 'static {
        let rx = self.inner.lock().expect("rooms lock").get(id).map(|s| s.moved.subscribe());
        async move {
            match rx {
                Some(mut rx) => {
                    let _ = rx.wait_for(|moved| *moved).await;
                }
                None => std::future::pending().await,
            }
        }
    }

    /// The room's settings for access checks: a room in memory, or one that ended lately
    /// (whose final playlist may still be served).
    pub fn settings_for_access(&self, id: &str) -> Option<RoomSettings> {
        if let Some(entry) = self.get(id) {
            return Some(entry.settings);
        }
        let ended = self.recently_ended.lock().expect("ended rooms lock");
        ended.get(id).filter(|(_, at)| at.elapsed() < RECENTLY_ENDED_KEEP).map(|(settings, _)| settings.clone())
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

/// Participants who left the room while their join token may still be valid: their tokens
/// stay used up.
async fn used_tokens(store: &dyn Store, room: &str) -> Result<HashSet<String>, StoreError> {
    let tokens_valid_since = unix_now().saturating_sub(JOIN_TOKEN_TTL.as_secs());
    Ok(store
        .sessions(room)
        .await?
        .into_iter()
        .filter(|s| s.left_at.is_some() && s.joined_at >= tokens_valid_since)
        .map(|s| s.participant)
        .collect())
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

pub fn room_record(entry: &RoomEntry) -> RoomRecord {
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

    #[tokio::test]
    async fn an_evicted_room_leaves_and_its_sessions_hear_of_it() {
        let rooms = Rooms::new(1);
        let r = rooms.create("Standup".into(), RoomSettings::default());
        assert!(rooms.begin_session(&r.id, "p-1").is_ok());
        let moved = rooms.moved(&r.id);
        let other = rooms.create("Other".into(), RoomSettings::default());
        let other_moved = rooms.moved(&other.id);
        assert!(rooms.evict(&r.id));
        tokio::time::timeout(Duration::from_secs(1), moved).await.expect("the session hears the room moved");
        assert!(rooms.get(&r.id).is_none(), "it left memory");
        assert!(!rooms.evict(&r.id), "only once");
        assert!(rooms.get(&other.id).is_some(), "the other room stays");
        assert!(tokio::time::timeout(Duration::from_millis(50), other_moved).await.is_err(), "and its sessions hear nothing");
        assert!(tokio::time::timeout(Duration::from_millis(50), rooms.moved("r-nope")).await.is_err(), "a room not here never moves");
    }

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
        let r = before
            .create_stored("Standup".into(), RoomSettings { auto_broadcast: true, private: true, ..Default::default() })
            .await
            .expect("stored");
        let gone = before.create_stored("Gone".into(), RoomSettings::default()).await.expect("stored");
        store.end_room(&gone.id, unix_now()).await.expect("end");
        let now = unix_now();
        let session = |p: &str| crate::store::SessionRecord {
            room: r.id.clone(),
            participant: p.into(),
            name: p.into(),
            role: "publisher".into(),
            user_agent: None,
            joined_at: now,
            left_at: None,
            stats: None,
        };
        before.record(Write::SessionJoined(Box::new(session("p-left"))));
        before.record(Write::SessionLeft { room: r.id.clone(), participant: "p-left".into(), at: now });
        before.record(Write::SessionJoined(Box::new(session("p-cut"))));
        before.flush().await;

        let after = Rooms::with_store(2, store);
        assert_eq!(after.load().await.expect("load"), 1);
        let loaded = after.get(&r.id).expect("room loaded");
        assert_eq!(
            (loaded.name.as_str(), loaded.settings.auto_broadcast, loaded.settings.private, loaded.created_at),
            ("Standup", true, true, r.created_at)
        );
        assert!(after.get(&gone.id).is_none(), "ended rooms stay ended");
        assert_eq!(after.begin_session(&r.id, "p-left"), Err(SessionError::Ended));
        assert!(after.begin_session(&r.id, "p-cut").is_ok(), "a session cut by the restart may reconnect");
    }

    #[tokio::test]
    async fn an_ended_room_leaves_memory_and_comes_back_on_reopen() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store: Arc<dyn Store> = Arc::new(crate::store::sqlite::SqliteStore::open(&dir.path().join("s.sqlite3")).await.expect("open"));
        let rooms = Rooms::with_store(2, store.clone());
        let settings = RoomSettings { auto_broadcast: true, private: true, ..Default::default() };
        let r = rooms.create_stored("Standup".into(), settings.clone()).await.expect("stored");
        rooms.begin_session(&r.id, "p-1").expect("session");
        assert_eq!(rooms.end_if_empty(&r.id), None, "someone is in it");
        rooms.end_session(&r.id, "p-1");
        rooms.record(Write::SessionJoined(Box::new(crate::store::SessionRecord {
            room: r.id.clone(),
            participant: "p-1".into(),
            name: "p-1".into(),
            role: "publisher".into(),
            user_agent: None,
            joined_at: unix_now(),
            left_at: None,
            stats: None,
        })));
        rooms.record(Write::SessionLeft { room: r.id.clone(), participant: "p-1".into(), at: unix_now() });
        assert_eq!(rooms.end_if_empty(&r.id).map(|e| e.id), Some(r.id.clone()));
        assert_eq!(rooms.end_if_empty(&r.id), None, "ended once");
        assert!(rooms.get(&r.id).is_none() && rooms.is_empty(), "released from memory");
        assert_eq!(rooms.settings_for_access(&r.id), Some(settings.clone()), "still private while its last playlist may be served");
        rooms.flush().await;
        let found = rooms.find(&r.id).await.expect("find").expect("the record stays");
        assert!(found.ended_at.is_some(), "the store has the end");
        assert!(rooms.get(&r.id).is_none(), "find does not bring it back");
        assert_eq!(rooms.find("r-nope").await.expect("find"), None);
        assert_eq!(rooms.reopen("r-nope").await.expect("reopen"), None);

        let back = rooms.reopen(&r.id).await.expect("reopen").expect("known room");
        assert_eq!((back.name.as_str(), &back.settings, back.created_at), ("Standup", &settings, r.created_at));
        assert_eq!(rooms.get(&r.id), Some(back));
        assert_eq!(store.room(&r.id).await.expect("read").expect("stored").ended_at, None, "open again");
        assert_eq!(rooms.begin_session(&r.id, "p-1"), Err(SessionError::Ended), "a used token stays used");
        assert!(rooms.begin_session(&r.id, "p-2").is_ok());
    }

    #[test]
    fn rooms_spread_over_workers() {
        let rooms = Rooms::new(2);
        let a = rooms.create("a".into(), RoomSettings::default());
        let b = rooms.create("b".into(), RoomSettings::default());
        assert_ne!(a.worker, b.worker);
    }
}
