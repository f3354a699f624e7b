//! Rooms known to this gateway and which SFU worker each lives on; when idle broadcasts stop
//! and empty rooms end (`idle`, pure) and the task that makes it happen (`lifecycle`); who may
//! read a room's HLS (`private_hls`).
pub mod idle;
pub mod lifecycle;
pub mod private_hls;
pub mod registry;
pub use registry::{RoomEntry, Rooms, SessionError};
