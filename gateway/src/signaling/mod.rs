//! WebSocket signaling: message types (pure) and the per-connection session task.
pub mod messages;
pub mod session;
