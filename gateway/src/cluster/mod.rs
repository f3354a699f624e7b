//! Gateways sharing one MongoDB store form a cluster: each node heartbeats its record
//! (`store::NodeRecord`), a new room goes to the node with the most headroom ([`placement`]),
//! and each room has one owner, claimed in the store, so whatever node a request reaches, the
//! room lives on one. A node that stops heartbeating is dead to the others: the next request
//! about one of its rooms claims it for the node it reached (the participants' reconnects).
//! With the embedded SQLite store there is no cluster: this node owns every room.

pub mod cpu;
pub mod heartbeat;
pub mod placement;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use crate::clock::unix_now_ms;
use crate::store::{NodeLoad, NodeRecord, Store, StoreError};
use placement::{CostModel, Route};

/// How often a node writes its record (and reads everyone else's).
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(2);

/// This node in its cluster: its record, the others as last read, and the shared store.
pub struct Cluster {
    me: Mutex<NodeRecord>,
    nodes: RwLock<Vec<NodeRecord>>,
    store: Arc<dyn Store>,
    model: CostModel,
    /// Set once the node has left (a graceful shutdown): no more heartbeats.
    left: AtomicBool,
    /// Rooms recently found on another node, so that the stream of HLS requests an edge or a
    /// player sends for them costs no store round trip each.
    elsewhere: Mutex<HashMap<String, (String, Instant)>>,
    /// Nodes found refusing connections, with the heartbeat their record had then: dead to
    /// this node until they heartbeat again (`placement::judged`).
    refused: Mutex<HashMap<String, u64>>,
}

/// How long a room found on another live node is sent there without asking the store again:
/// one heartbeat, the time in which the node list itself may be stale.
const OWNER_CACHE_FOR: Duration = HEARTBEAT_EVERY;

impl Cluster {
    /// `me`: this node's id, URLs and capacity (its load and heartbeat are filled in as it runs).
    pub fn new(me: NodeRecord, store: Arc<dyn Store>) -> Self {
        Self {
            nodes: RwLock::new(vec![me.clone()]),
            me: Mutex::new(me),
            store,
            model: CostModel::default(),
            left: AtomicBool::new(false),
            elsewhere: Mutex::new(HashMap::new()),
            refused: Mutex::new(HashMap::new()),
        }
    }

    pub fn id(&self) -> String {
        self.me.lock().expect("node lock").id.clone()
    }

    /// This node's record as of its last heartbeat.
    pub fn me(&self) -> NodeRecord {
        self.me.lock().expect("node lock").clone()
    }

    /// Every node as of the last heartbeat (this one included), as this node judges them
    /// (`placement::judged`: one found refusing connections counts as dead).
    pub fn nodes(&self) -> Vec<NodeRecord> {
        let nodes = self.nodes.read().expect("nodes lock").clone();
        placement::judged(nodes, &self.refused.lock().expect("refused lock"))
    }

    fn node(&self, id: &str) -> Option<NodeRecord> {
        self.nodes().into_iter().find(|n| n.id == id)
    }

    /// `node` refused a connection: nothing listens where it served, so it is gone. Its rooms
    /// may be claimed at once (by the participants' re-joins) instead of after its heartbeats
    /// run out; it takes no new rooms; a heartbeat from it again undoes this.
    pub fn mark_refused(&self, node: &NodeRecord) {
        if node.id == self.id() {
            return;
        }
        let mut refused = self.refused.lock().expect("refused lock");
        if refused.insert(node.id.clone(), node.heartbeat_at_ms).is_none() {
            tracing::warn!(node = %node.id, url = %node.public_url, "a node refuses connections: taken for dead until it heartbeats again; its rooms move as their participants re-join");
        }
    }

    /// Whether a page's `Origin` is one of the nodes (a page served by one node opens its
    /// signaling socket on the room's node).
    pub fn is_node_origin(&self, origin: &str) -> bool {
        let origin = origin.trim_end_matches('/');
        self.nodes.read().expect("nodes lock").iter().any(|n| n.public_url.trim_end_matches('/').eq_ignore_ascii_case(origin))
    }

    /// Live nodes as of the last heartbeat (this one included).
    pub fn live_nodes(&self) -> usize {
        let now = unix_now_ms();
        self.nodes().iter().filter(|n| placement::is_alive(n, now)).count()
    }

    /// Writes this node's record with its load now, and reads everyone's. Nothing once the
    /// node has left.
    pub async fn heartbeat(&self, load: NodeLoad, draining: bool) -> Result<(), StoreError> {
        if self.has_left() {
            return Ok(());
        }
        let record = {
            let mut me = self.me.lock().expect("node lock");
            me.load = load;
            me.draining = draining;
            me.heartbeat_at_ms = unix_now_ms();
            me.clone()
        };
        self.store.node_heartbeat(&record).await?;
        let nodes = self.store.nodes().await?;
        // A node that heartbeated since it refused a connection is back.
        self.refused.lock().expect("refused lock").retain(|id, seen| nodes.iter().any(|n| &n.id == id && n.heartbeat_at_ms <= *seen));
        *self.nodes.write().expect("nodes lock") = nodes;
        Ok(())
    }

    /// Rooms among `here` (held in this node's memory) that the store says another node owns
    /// now, with that owner: claimed there while this node was taken for dead (it could not
    /// heartbeat, or it refused a connection). Rooms nobody owns stay.
    pub async fn claimed_elsewhere(&self, here: &[String]) -> Result<Vec<(String, String)>, StoreError> {
        let me = self.id();
        let mut lost = Vec::new();
        for room in here {
            match self.store.room_owner(room).await? {
                Some(owner) if owner != me => lost.push((room.clone(), owner)),
                _ => {}
            }
        }
        Ok(lost)
    }

    /// A graceful shutdown: the node's record says it is gone (its last heartbeat at 0), so
    /// the others take its rooms as soon as their participants re-join, without waiting for
    /// the heartbeats to run out.
    pub async fn leave(&self) -> Result<(), StoreError> {
        self.left.store(true, Ordering::SeqCst);
        let mut record = self.me();
        record.heartbeat_at_ms = 0;
        self.store.node_heartbeat(&record).await
    }

    pub fn has_left(&self) -> bool {
        self.left.load(Ordering::SeqCst)
    }

    /// The node a new room goes to: this one when no other can take it, unless
    /// `draining_here` (this node drains now, whatever its last record says): then another
    /// node or none. The room is counted on that node at once, so the next one placed before
    /// the next heartbeat goes elsewhere.
    pub fn place(&self, draining_here: bool) -> Option<NodeRecord> {
        let id = self.id();
        let refused = self.refused.lock().expect("refused lock").clone();
        let mut nodes = self.nodes.write().expect("nodes lock");
        let candidates: Vec<NodeRecord> = nodes.iter().filter(|n| !(draining_here && n.id == id)).cloned().collect();
        let candidates = placement::judged(candidates, &refused);
        let chosen = placement::choose(&candidates, unix_now_ms(), &self.model).map(|n| n.id.clone());
        match chosen.and_then(|id| nodes.iter_mut().find(|n| n.id == id)) {
            Some(node) => {
                node.load.rooms += 1;
                Some(node.clone())
            }
            None => (!draining_here).then(|| self.me()),
        }
    }

    /// Hands a room this node owns to `node` (a drain), as one atomic step: false if its owner
    /// is not this node any more.
    pub async fn hand_over(&self, room: &str, node: &str) -> Result<bool, StoreError> {
        self.store.claim_room(room, Some(&self.id()), node).await
    }

    /// Makes `node` the owner of a room just created (nobody can have claimed it yet).
    pub async fn assign(&self, room: &str, node: &str) -> Result<(), StoreError> {
        self.store.claim_room(room, None, node).await.map(|_| ())
    }

    /// Where `room` lives: here, or on another live node. A room nobody owns, or whose owner
    /// is dead, is claimed for this node first; a lost race follows the winner.
    pub async fn locate(&self, room: &str) -> Result<Owner, StoreError> {
        let owner = self.locate_in_store(room).await?;
        let mut cache = self.elsewhere.lock().expect("owner cache lock");
        match &owner {
            Owner::There(node) => {
                if cache.len() > 10_000 {
                    cache.clear();
                }
                cache.insert(room.to_owned(), (node.id.clone(), Instant::now()));
            }
            _ => {
                cache.remove(room);
            }
        }
        Ok(owner)
    }

    /// The live node found holding `room` within the last [`OWNER_CACHE_FOR`], if any.
    pub fn recently_elsewhere(&self, room: &str) -> Option<NodeRecord> {
        let (id, at) = self.elsewhere.lock().expect("owner cache lock").get(room).cloned()?;
        if at.elapsed() >= OWNER_CACHE_FOR {
            return None;
        }
        self.node(&id).filter(|n| placement::is_alive(n, unix_now_ms()))
    }

    async fn locate_in_store(&self, room: &str) -> Result<Owner, StoreError> {
        let me = self.id();
        for _ in 0..3 {
            let owner = self.store.room_owner(room).await?;
            let nodes = self.nodes();
            match placement::route(owner.as_deref(), &me, &nodes, unix_now_ms()) {
                Route::Here => return Ok(Owner::Here),
                Route::There(id) => {
                    if let Some(node) = nodes.into_iter().find(|n| n.id == id) {
                        return Ok(Owner::There(node));
                    }
                }
                Route::Claim { expected } => {
                    if self.store.claim_room(room, expected.as_deref(), &me).await? {
                        return Ok(match expected {
                            Some(dead) => {
                                tracing::warn!(room, dead_node = %dead, "room taken over from a node that stopped heartbeating");
                                Owner::TakenOver(dead)
                            }
                            None => {
                                tracing::info!(room, "room claimed by this node");
                                Owner::Here
                            }
                        });
                    }
                }
            }
        }
        // Three lost races in a row: never guess (two owners would split the room).
        Err(StoreError::OwnerChanging(room.to_owned()))
    }
}

/// The file in the data directory that keeps a node's id across restarts.
const NODE_ID_FILE: &str = "node-id";

/// This node's id: `--node-id`, else the one kept in the data directory (made at first start).
pub fn node_id(data_dir: &std::path::Path, configured: Option<&str>) -> std::io::Result<String> {
    if let Some(id) = configured.map(str::trim).filter(|s| !s.is_empty()) {
        return Ok(id.to_owned());
    }
    let path = data_dir.join(NODE_ID_FILE);
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => Ok(id.trim().to_owned()),
        _ => {
            std::fs::create_dir_all(data_dir)?;
            let id = crate::rooms::registry::new_id("n");
            std::fs::write(&path, &id)?;
            Ok(id)
        }
    }
}

/// Where a room lives, for a request that reached this node.
#[derive(Debug, Clone, PartialEq)]
pub enum Owner {
    Here,
    /// Here now: just claimed from this node, which stopped heartbeating.
    TakenOver(String),
    There(NodeRecord),
}
