//! The edge of [`idle`](super::idle): a task that looks at every room once a [`TICK`] — who
//! is connected (the registry), whether it has a broadcast and who publishes (the SFU worker's
//! room snapshot) — and stops the broadcasts that have had no publisher for
//! `--broadcast-idle-stop-secs` and ends the rooms nobody has been in for `--room-idle-end-secs`.
//!
//! Stopping is what `DELETE /api/rooms/{id}/broadcast` does (EXT-X-ENDLIST, compositor and
//! ports released, participants told `stopped`, the store's broadcast record closed); ending a
//! room also releases it from memory (see [`Rooms::end_if_empty`]).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::idle::{Action, BroadcastSeen, IdleLimits, Occupancy, RoomIdle};
use super::Rooms;
use crate::broadcast::Broadcasts;
use crate::sfu::{Command, WorkerHandle};
use crate::store::Write;

/// How often rooms are looked at: the stops and ends happen up to this late.
pub const TICK: Duration = Duration::from_secs(1);
/// How long a tick waits for a worker's room snapshot (then: publishers unknown this tick).
const SNAPSHOT_WAIT: Duration = Duration::from_millis(500);

/// What the task works on; held weakly, so it ends with the gateway.
pub struct Lifecycle {
    pub rooms: Weak<Rooms>,
    pub broadcasts: Weak<Broadcasts>,
    pub workers: Weak<Vec<WorkerHandle>>,
    pub limits: IdleLimits,
}

impl Lifecycle {
    /// Starts the task, unless both limits are off.
    pub fn spawn(self) {
        if self.limits == IdleLimits::never() {
            tracing::info!("idle broadcasts and empty rooms are kept (both idle limits are 0)");
            return;
        }
        tracing::info!(broadcast_idle_stop = ?self.limits.broadcast, room_idle_end = ?self.limits.room, "idle broadcasts stop and empty rooms end by themselves");
        tokio::spawn(async move {
            let mut clocks = HashMap::new();
            let mut tick = tokio::time::interval(TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                // The tick's scheduled instant, not the moment this task ran: observations are
                // then exactly a tick apart, and a limit of n ticks is due on the n-th.
                let now = tick.tick().await.into_std();
                let (Some(rooms), Some(broadcasts), Some(workers)) =
                    (self.rooms.upgrade(), self.broadcasts.upgrade(), self.workers.upgrade())
                else {
                    return;
                };
                tick_once(&rooms, &broadcasts, &workers, self.limits, &mut clocks, now).await;
            }
        });
    }
}

/// One look at every room as of `now`; `clocks` keeps each room's idle clocks between ticks.
pub async fn tick_once(
    rooms: &Rooms,
    broadcasts: &Broadcasts,
    workers: &[WorkerHandle],
    limits: IdleLimits,
    clocks: &mut HashMap<String, RoomIdle>,
    now: Instant,
) {
    let ids = rooms.ids();
    let present: HashSet<&String> = ids.iter().collect();
    clocks.retain(|id, _| present.contains(id));
    let broadcasting: HashSet<String> = broadcasts.rooms().into_iter().collect();
    for id in &ids {
        let Some(entry) = rooms.get(id) else { continue };
        let broadcast = match (broadcasting.contains(id), limits.broadcast) {
            (false, _) => BroadcastSeen::None,
            // Without a broadcast limit, who publishes does not matter: no need to ask.
            (true, None) => BroadcastSeen::Unknown,
            (true, Some(_)) => match workers.get(entry.worker) {
                Some(worker) => publishers(worker, id).await.map_or(BroadcastSeen::Unknown, BroadcastSeen::Publishers),
                None => BroadcastSeen::Unknown,
            },
        };
        let seen = Occupancy { participants: rooms.connected(id), broadcast };
        let clock = clocks.entry(id.clone()).or_default();
        match clock.tick(seen, limits, now) {
            Some(Action::StopBroadcast { idle }) => {
                stop_broadcast(rooms, broadcasts, id, &format!("no publisher for {} s", idle.as_secs_f64().round()));
            }
            Some(Action::EndRoom { empty }) => end_room(rooms, broadcasts, id, empty),
            None => {}
        }
    }
    // A broadcast whose room has ended (started while the room was being ended) goes too.
    for room in broadcasts.rooms() {
        if rooms.get(&room).is_none() {
            stop_broadcast(rooms, broadcasts, &room, "its room has ended");
        }
    }
}

/// How many participants publish at least one track, from the room's SFU worker; `None` if
/// the worker did not answer (it is down or busy).
async fn publishers(worker: &WorkerHandle, room: &str) -> Option<usize> {
    let (reply, rx) = oneshot::channel();
    if !worker.send(Command::Snapshot { room: room.to_owned(), reply }) {
        return None;
    }
    let snapshot = tokio::time::timeout(SNAPSHOT_WAIT, rx).await.ok()?.ok()?;
    Some(snapshot.producers.iter().map(|p| p.participant_id.as_str()).collect::<HashSet<_>>().len())
}

/// Stops the room's broadcast as `DELETE /api/rooms/{id}/broadcast` does, saying why.
pub fn stop_broadcast(rooms: &Rooms, broadcasts: &Broadcasts, room: &str, why: &str) {
    let status = broadcasts.status(room);
    match broadcasts.stop(room) {
        Ok(end) => {
            let (state, pid, parts) = status.map_or(("stopped", None, 0), |s| (s.state.as_str(), s.pid, s.parts));
            tracing::info!(room, why, state, pid, parts, viewers_peak = end.viewers_peak, "broadcast stopped: {why}");
            rooms.record(Write::BroadcastStopped { room: room.to_owned(), end });
        }
        Err(e) => tracing::debug!(room, why, error = %e, "broadcast already stopped"),
    }
}

/// Ends the room if it is still empty, stopping its broadcast first.
fn end_room(rooms: &Rooms, broadcasts: &Broadcasts, room: &str, empty: Duration) {
    let secs = empty.as_secs_f64().round();
    let Some(entry) = rooms.end_if_empty(room) else {
        tracing::debug!(room, "room not ended: someone joined it meanwhile");
        return;
    };
    if broadcasts.rooms().iter().any(|r| r == room) {
        stop_broadcast(rooms, broadcasts, room, &format!("its room ended (nobody in it for {secs} s)"));
    }
    tracing::info!(room, name = %entry.name, worker = entry.worker, "room ended: nobody in it for {secs} s; its state is released (joining it again brings it back)");
}

/// Starts the task over a running gateway's rooms, broadcasts and workers (held weakly: the
/// task ends with the gateway).
pub fn spawn(rooms: &Arc<Rooms>, broadcasts: &Arc<Broadcasts>, workers: &Arc<Vec<WorkerHandle>>, limits: IdleLimits) {
    Lifecycle { rooms: Arc::downgrade(rooms), broadcasts: Arc::downgrade(broadcasts), workers: Arc::downgrade(workers), limits }.spawn();
}
