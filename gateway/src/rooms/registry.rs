//! The room registry: room ids and names, the worker a room is pinned to, and which
//! participants have a live signaling session (one session per join token's participant).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use serde::Serialize;

use crate::auth::token::unix_now;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoomEntry {
    pub id: String,
    pub name: String,
    pub created_at: u64,
    /// Start the broadcast by itself when someone first publishes.
    pub auto_broadcast: bool,
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

pub struct Rooms {
    workers: usize,
    inner: Mutex<HashMap<String, RoomState>>,
}

impl Rooms {
    pub fn new(workers: usize) -> Self {
        Self { workers: workers.max(1), inner: Mutex::new(HashMap::new()) }
    }

    pub fn create(&self, name: String, auto_broadcast: bool) -> RoomEntry {
        let mut inner = self.inner.lock().expect("rooms lock");
        // Pin to the worker with the fewest rooms.
        let mut load = vec![0usize; self.workers];
        for s in inner.values() {
            if let Some(e) = &s.entry {
                load[e.worker] += 1;
            }
        }
        let worker = (0..self.workers).min_by_key(|&w| load[w]).unwrap_or(0);
        let entry = RoomEntry { id: new_id("r"), name, created_at: unix_now(), auto_broadcast, worker };
        inner.insert(entry.id.clone(), RoomState { entry: Some(entry.clone()), ..Default::default() });
        entry
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
        let r = rooms.create("Standup".into(), false);
        assert_eq!(rooms.begin_session("r-nope", "p-1"), Err(SessionError::UnknownRoom));
        assert!(rooms.begin_session(&r.id, "p-1").is_ok());
        assert_eq!(rooms.begin_session(&r.id, "p-1"), Err(SessionError::AlreadyConnected));
        rooms.end_session(&r.id, "p-1");
        assert_eq!(rooms.begin_session(&r.id, "p-1"), Err(SessionError::Ended));
    }

    #[test]
    fn rooms_spread_over_workers() {
        let rooms = Rooms::new(2);
        let a = rooms.create("a".into(), false);
        let b = rooms.create("b".into(), false);
        assert_ne!(a.worker, b.worker);
    }
}
