//! The edge of the cluster's heartbeats: a task that writes this node's record with its load
//! every [`HEARTBEAT_EVERY`](super::HEARTBEAT_EVERY) until the gateway is dropped (it holds the
//! gateway's parts weakly) or the node leaves.

use std::sync::{Arc, Weak};
use std::time::Instant;

use super::cpu::NodeCpu;
use super::Cluster;
use crate::broadcast::Broadcasts;
use crate::node::NodeState;
use crate::rooms::Rooms;
use crate::store::{NodeLoad, StoreError};

/// What this node carries now: its rooms, broadcasts and participants, and the cores it (with
/// its compositors) used since the last heartbeat.
fn load(rooms: &Rooms, broadcasts: &Broadcasts, cpu: &mut NodeCpu) -> NodeLoad {
    let ids = rooms.ids();
    let live = broadcasts.rooms();
    let pids: Vec<u32> = std::iter::once(std::process::id()).chain(live.iter().filter_map(|r| broadcasts.status(r)?.pid)).collect();
    NodeLoad {
        rooms: ids.len() as u32,
        broadcasts: live.len() as u32,
        participants: ids.iter().map(|r| rooms.connected(r)).sum::<usize>() as u32,
        cpu_cores: cpu.sample(&pids, Instant::now()),
    }
}

/// The first heartbeat, before the node serves: the others see it, and it sees them.
pub async fn first(cluster: &Cluster, rooms: &Rooms, broadcasts: &Broadcasts) -> Result<(), StoreError> {
    cluster.heartbeat(load(rooms, broadcasts, &mut NodeCpu::default()), false).await
}

/// Two nodes never serve one room for long: a room held here that another node claimed
/// meanwhile (this node was taken for dead: cut off from the store, frozen, or it refused a
/// connection) leaves this node. Its broadcast stops here without a word to the store (its
/// records are the new owner's), and its participants are told to reconnect, which brings
/// them to the owner.
async fn give_up_rooms_claimed_elsewhere(cluster: &Cluster, rooms: &Weak<Rooms>, broadcasts: &Weak<Broadcasts>) {
    let Some(here) = rooms.upgrade().map(|r| r.ids()) else { return };
    let lost = match cluster.claimed_elsewhere(&here).await {
        Ok(lost) => lost,
        Err(e) => {
            tracing::debug!(error = %e, "cluster: could not check who owns this node's rooms; next heartbeat");
            return;
        }
    };
    let (Some(rooms), Some(broadcasts)) = (rooms.upgrade(), broadcasts.upgrade()) else { return };
    for (room, owner) in lost {
        let was_live = broadcasts.stop(&room).is_ok();
        if rooms.evict(&room) {
            tracing::warn!(room, owner, was_live, "a room held here was claimed by another node while this one was taken for dead: it leaves this node, its participants reconnect to the owner");
        }
    }
}

pub fn spawn(cluster: &Arc<Cluster>, rooms: &Arc<Rooms>, broadcasts: &Arc<Broadcasts>, node: &Arc<NodeState>) {
    let cluster = cluster.clone();
    let (rooms, broadcasts, node): (Weak<Rooms>, Weak<Broadcasts>, Weak<NodeState>) =
        (Arc::downgrade(rooms), Arc::downgrade(broadcasts), Arc::downgrade(node));
    tokio::spawn(async move {
        let mut cpu = NodeCpu::default();
        let mut failing = false;
        let mut tick = tokio::time::interval(super::HEARTBEAT_EVERY);
        tick.tick().await;
        loop {
            tick.tick().await;
            let (Some(rooms_now), Some(broadcasts_now), Some(node_now)) = (rooms.upgrade(), broadcasts.upgrade(), node.upgrade()) else {
                return;
            };
            if cluster.has_left() {
                return;
            }
            let load = load(&rooms_now, &broadcasts_now, &mut cpu);
            let draining = node_now.is_draining();
            drop((rooms_now, broadcasts_now, node_now));
            // Logged when the store stops or starts answering, not at every failed beat.
            match cluster.heartbeat(load, draining).await {
                Ok(()) => {
                    if std::mem::take(&mut failing) {
                        tracing::info!("cluster heartbeat: the store answers again");
                    }
                    give_up_rooms_claimed_elsewhere(&cluster, &rooms, &broadcasts).await;
                }
                Err(e) if !failing => {
                    failing = true;
                    tracing::error!(error = %e, "cluster heartbeat failed: if it lasts, the other nodes take this node's rooms; check --store");
                }
                Err(_) => {}
            }
        }
    });
}
