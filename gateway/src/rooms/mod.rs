//! Rooms known to this gateway and which SFU worker each lives on; when idle broadcasts stop
//! and empty rooms end (`idle`, pure) and the task that makes it happen (`lifecycle`).
pub mod idle;
pub mod lifecycle;
pub mod registry;
pub use registry::{RoomEntry, Rooms, SessionError};
