//! WebSocket signaling: the per-connection session task (its messages are `crate::protocol`).
pub mod session;
