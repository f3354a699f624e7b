//! Which node a new room goes to, and which nodes count as alive: plain functions over the node
//! records the store holds, so every node decides the same way from the same records.

use std::collections::HashMap;

use crate::store::{NodeLoad, NodeRecord};

/// A node that has not heartbeated for this long is dead to the others: its rooms may be
/// claimed by whichever node their participants reach next. Three missed heartbeats
/// ([`super::HEARTBEAT_EVERY`] is 2 s) plus slack for a busy store.
pub const DEAD_AFTER_MS: u64 = 8_000;

/// What a room costs a node, in cores. Measured on the 2-core machine of the README's
/// benchmarks: a 720p30 broadcast (its compositor: decode, tiles, x264, AAC) about half a core;
/// a participant's forwarding a few hundredths (its packets in and out of the SFU, SRTP). An
/// empty room costs nothing yet, but people are about to join it: it counts as a little, so
/// rooms created one after another spread over equal nodes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CostModel {
    pub room_cores: f64,
    pub broadcast_cores: f64,
    pub participant_cores: f64,
}

impl Default for CostModel {
    fn default() -> Self {
        Self { room_cores: 0.05, broadcast_cores: 0.5, participant_cores: 0.02 }
    }
}

impl CostModel {
    /// The cores a node's rooms need by the model.
    pub fn modelled(&self, load: &NodeLoad) -> f64 {
        f64::from(load.rooms) * self.room_cores
            + f64::from(load.broadcasts) * self.broadcast_cores
            + f64::from(load.participants) * self.participant_cores
    }

    /// Cores left on a node: its capacity minus the larger of what the model says its rooms
    /// need and what it measured (a node busy with something the model does not know about
    /// is as full as it looks).
    pub fn headroom(&self, node: &NodeRecord) -> f64 {
        node.capacity_cores - self.modelled(&node.load).max(node.load.cpu_cores)
    }
}

/// A node is alive while its last heartbeat is recent.
pub fn is_alive(node: &NodeRecord, now_ms: u64) -> bool {
    now_ms.saturating_sub(node.heartbeat_at_ms) < DEAD_AFTER_MS
}

/// The records as this node judges them: a node found refusing connections (`refused`: its id
/// and the heartbeat its record had then) is dead, its heartbeat taken as 0, until it
/// heartbeats again. A refused connection is the host saying nothing listens on that port:
/// the process is gone, whatever its last heartbeat says. (A node that does not answer at all
/// may be cut off or busy: only its heartbeats decide.)
pub fn judged(mut nodes: Vec<NodeRecord>, refused: &HashMap<String, u64>) -> Vec<NodeRecord> {
    for n in &mut nodes {
        if refused.get(&n.id).is_some_and(|&seen| n.heartbeat_at_ms <= seen) {
            n.heartbeat_at_ms = 0;
        }
    }
    nodes
}

/// The node a new room goes to: the live, non-draining node with the most headroom (ties by
/// id, so every node picks the same one). `None` when no node can take it.
pub fn choose<'a>(nodes: &'a [NodeRecord], now_ms: u64, model: &CostModel) -> Option<&'a NodeRecord> {
    nodes
        .iter()
        .filter(|n| is_alive(n, now_ms) && !n.draining)
        .max_by(|a, b| model.headroom(a).total_cmp(&model.headroom(b)).then_with(|| b.id.cmp(&a.id)))
}

/// What a node does with a request about a room, given the room's owner in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// This node owns it: serve it.
    Here,
    /// A live node owns it: send the client there.
    There(String),
    /// Nobody owns it, or its owner is dead: claim it for this node, if the owner is still
    /// `expected` when the claim lands.
    Claim { expected: Option<String> },
}

pub fn route(owner: Option<&str>, me: &str, nodes: &[NodeRecord], now_ms: u64) -> Route {
    match owner {
        Some(o) if o == me => Route::Here,
        Some(o) if nodes.iter().any(|n| n.id == o && is_alive(n, now_ms)) => Route::There(o.to_owned()),
        other => Route::Claim { expected: other.map(str::to_owned) },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, capacity: f64, broadcasts: u32, participants: u32, cpu: f64, heartbeat_at_ms: u64) -> NodeRecord {
        NodeRecord {
            id: id.into(),
            public_url: format!("http://{id}.example"),
            media_ip: "127.0.0.1".into(),
            capacity_cores: capacity,
            load: NodeLoad { rooms: 0, broadcasts, participants, cpu_cores: cpu },
            heartbeat_at_ms,
            draining: false,
        }
    }

    #[test]
    fn a_new_room_goes_to_the_node_with_the_most_headroom() {
        let now = 100_000;
        let nodes = [node("a", 2.0, 2, 6, 0.9, now), node("b", 2.0, 1, 3, 0.5, now), node("c", 2.0, 0, 0, 0.1, now)];
        assert_eq!(choose(&nodes, now, &CostModel::default()).map(|n| n.id.as_str()), Some("c"));
        // A bigger machine with more rooms can still have the most room left.
        let nodes = [node("a", 2.0, 1, 0, 0.0, now), node("big", 8.0, 6, 20, 3.0, now)];
        assert_eq!(choose(&nodes, now, &CostModel::default()).map(|n| n.id.as_str()), Some("big"));
    }

    #[test]
    fn measured_cpu_counts_when_it_exceeds_the_model() {
        let m = CostModel::default();
        // No rooms, but the machine is busy with something else: as full as it looks.
        let busy = node("busy", 2.0, 0, 0, 1.8, 0);
        assert!((m.headroom(&busy) - 0.2).abs() < 1e-9);
        // Rooms just placed, not yet measured: the model counts them at once.
        let fresh = node("fresh", 2.0, 2, 10, 0.0, 0);
        assert!((m.headroom(&fresh) - (2.0 - 1.0 - 0.2)).abs() < 1e-9);
    }

    #[test]
    fn a_node_that_refused_a_connection_is_dead_until_it_heartbeats_again() {
        let now = 100_000;
        let nodes = vec![node("a", 2.0, 0, 0, 0.0, now - 500), node("b", 2.0, 0, 0, 0.0, now - 500)];
        let refused = HashMap::from([("b".to_owned(), now - 500)]);
        let seen = judged(nodes.clone(), &refused);
        assert!(is_alive(&seen[0], now) && !is_alive(&seen[1], now));
        assert_eq!(route(Some("b"), "a", &seen, now), Route::Claim { expected: Some("b".into()) }, "its rooms may be claimed");
        assert_eq!(choose(&seen, now, &CostModel::default()).map(|n| n.id.as_str()), Some("a"), "it takes no new rooms");
        // A newer heartbeat: it is back (a restart), and the refusal is forgotten.
        let back = judged(vec![node("b", 2.0, 0, 0, 0.0, now - 100)], &refused);
        assert!(is_alive(&back[0], now));
        assert_eq!(route(Some("b"), "a", &back, now), Route::There("b".into()));
    }

    #[test]
    fn dead_and_draining_nodes_take_no_rooms() {
        let now = 100_000;
        let mut draining = node("draining", 16.0, 0, 0, 0.0, now);
        draining.draining = true;
        let dead = node("dead", 16.0, 0, 0, 0.0, now - DEAD_AFTER_MS);
        let busy = node("busy", 2.0, 3, 0, 1.9, now - DEAD_AFTER_MS + 1);
        assert!(!is_alive(&dead, now) && is_alive(&busy, now));
        assert_eq!(choose(&[draining.clone(), dead.clone(), busy], now, &CostModel::default()).map(|n| n.id.as_str()), Some("busy"));
        assert!(choose(&[draining, dead], now, &CostModel::default()).is_none(), "nowhere to go");
    }

    #[test]
    fn a_room_is_served_by_its_live_owner_and_taken_over_from_a_dead_one() {
        let now = 100_000;
        let nodes = [node("a", 2.0, 0, 0, 0.0, now), node("b", 2.0, 0, 0, 0.0, now - DEAD_AFTER_MS - 1)];
        assert_eq!(route(Some("a"), "a", &nodes, now), Route::Here);
        assert_eq!(route(Some("a"), "c", &nodes, now), Route::There("a".into()));
        assert_eq!(route(Some("b"), "a", &nodes, now), Route::Claim { expected: Some("b".into()) }, "b is dead");
        assert_eq!(route(Some("gone"), "a", &nodes, now), Route::Claim { expected: Some("gone".into()) }, "never seen: dead");
        assert_eq!(route(None, "a", &nodes, now), Route::Claim { expected: None }, "created before the cluster");
    }

    #[test]
    fn rooms_placed_one_after_another_spread_over_equal_nodes() {
        let now = 5_000;
        let mut nodes = vec![node("n-a", 2.0, 0, 0, 0.0, now), node("n-b", 2.0, 0, 0, 0.0, now), node("n-c", 2.0, 0, 0, 0.0, now)];
        let m = CostModel::default();
        let mut placed = Vec::new();
        for _ in 0..6 {
            let id = choose(&nodes, now, &m).unwrap().id.clone();
            // What the placing node notes until the next heartbeat brings the real load.
            nodes.iter_mut().find(|n| n.id == id).unwrap().load.rooms += 1;
            placed.push(id);
        }
        assert_eq!(placed, ["n-a", "n-b", "n-c", "n-a", "n-b", "n-c"]);
    }

    #[test]
    fn ties_go_to_the_same_node_whoever_decides() {
        let now = 5_000;
        let a = node("n-a", 2.0, 0, 0, 0.0, now);
        let b = node("n-b", 2.0, 0, 0, 0.0, now);
        let m = CostModel::default();
        assert_eq!(choose(&[a.clone(), b.clone()], now, &m).map(|n| n.id.clone()), choose(&[b, a], now, &m).map(|n| n.id.clone()));
    }
}
