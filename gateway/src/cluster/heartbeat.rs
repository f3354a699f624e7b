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
            let (Some(rooms), Some(broadcasts), Some(node)) = (rooms.upgrade(), broadcasts.upgrade(), node.upgrade()) else { return };
            if cluster.has_left() {
                return;
            }
            let load = load(&rooms, &broadcasts, &mut cpu);
            let draining = node.is_draining();
            drop((rooms, broadcasts, node));
            // Logged when the store stops or starts answering, not at every failed beat.
            match cluster.heartbeat(load, draining).await {
                Ok(()) if failing => {
                    failing = false;
                    tracing::info!("cluster heartbeat: the store answers again");
                }
                Ok(()) => {}
                Err(e) if !failing => {
                    failing = true;
                    tracing::error!(error = %e, "cluster heartbeat failed: if it lasts, the other nodes take this node's rooms; check --store");
                }
                Err(_) => {}
            }
        }
    });
}
