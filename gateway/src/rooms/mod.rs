//! Rooms known to this gateway and which SFU worker each lives on.
pub mod registry;
pub use registry::{RoomEntry, Rooms, SessionError};
