//! Roomcast gateway: HTTP API, WebSocket signaling, rooms, and the SFU (str0m) workers.
//! The `roomcast` binary is a thin CLI over [`start`]. `app` wires the parts together (the
//! application root: nothing below it imports the HTTP layer); `state` is what they share.

pub mod api;
pub mod app;
pub mod auth;
pub mod broadcast;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod crypto;
pub mod limits;
pub mod metrics;
pub mod node;
pub mod open_files;
pub mod outbox;
pub mod priority;
pub mod protocol;
pub mod rooms;
pub mod sfu;
pub mod signaling;
pub mod state;
pub mod store;
pub mod web;

pub use app::{start, RunningServer};
pub use config::Config;
