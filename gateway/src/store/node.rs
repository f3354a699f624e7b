//! One gateway node as the others in its cluster see it: the record it heartbeats into the
//! shared store (`crate::cluster` decides with it).

use serde::{Deserialize, Serialize};

/// What a node carries now: counted by the node itself at each heartbeat.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeLoad {
    /// Rooms it owns and holds in memory.
    pub rooms: u32,
    /// Broadcasts live or starting on this node (each runs a compositor).
    pub broadcasts: u32,
    /// Participants connected to this node's SFU.
    pub participants: u32,
    /// Cores this process used over the last heartbeat interval (its compositors included).
    pub cpu_cores: f64,
}

/// A node's entry in the store's `nodes` collection (table).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// Stable across restarts of the same node (`--node-id`, else kept in the data directory).
    pub id: String,
    /// Where browsers and other nodes reach its HTTP API, pages, signaling and HLS
    /// (`--public-url`), without a trailing slash.
    pub public_url: String,
    /// The IP its SFU's media is announced on.
    pub media_ip: String,
    /// Cores it may use (`--capacity-cores`, default: the machine's).
    pub capacity_cores: f64,
    pub load: NodeLoad,
    /// Unix milliseconds of its last heartbeat.
    pub heartbeat_at_ms: u64,
    /// `roomcast ops drain`: alive, but takes no new rooms.
    pub draining: bool,
}

impl NodeRecord {
    /// `http(s)://host[:port]/path` on this node for `path_and_query` (which starts with `/`).
    pub fn url(&self, path_and_query: &str) -> String {
        format!("{}{}", self.public_url.trim_end_matches('/'), path_and_query)
    }

    /// The same on a WebSocket scheme (`ws://`, `wss://`).
    pub fn ws_url(&self, path_and_query: &str) -> String {
        let base = self.public_url.trim_end_matches('/');
        let base = if let Some(rest) = base.strip_prefix("https://") {
            format!("wss://{rest}")
        } else if let Some(rest) = base.strip_prefix("http://") {
            format!("ws://{rest}")
        } else {
            base.to_owned()
        };
        format!("{base}{path_and_query}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_on_a_node_keep_its_scheme() {
        let mut n = NodeRecord {
            id: "n1".into(),
            public_url: "https://a.example:8443/".into(),
            media_ip: "10.0.0.1".into(),
            capacity_cores: 2.0,
            load: NodeLoad::default(),
            heartbeat_at_ms: 0,
            draining: false,
        };
        assert_eq!(n.url("/api/rooms/r-1"), "https://a.example:8443/api/rooms/r-1");
        assert_eq!(n.ws_url("/ws?token=t"), "wss://a.example:8443/ws?token=t");
        n.public_url = "http://127.0.0.1:8081".into();
        assert_eq!(n.ws_url("/ws"), "ws://127.0.0.1:8081/ws");
    }
}
