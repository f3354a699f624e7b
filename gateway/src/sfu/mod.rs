//! The SFU: str0m in RTP mode. Workers (threads, one UDP socket each) own rooms; rooms route
//! producers to consumers. Pure decision logic lives in `forward`, `keyframe`, `negotiation`.
pub mod forward;
pub mod frame_size;
pub mod keyframe;
pub mod leg;
pub mod negotiation;
#[cfg(feature = "fault-injection")]
pub mod netfault;
pub mod peer;
pub mod quality;
pub mod room;
pub mod simulcast;
pub mod stats;
pub mod worker;

pub use room::LegEvent;
pub use stats::WorkerStats;
pub use worker::{Command, RoomSnapshot, WorkerConfig, WorkerHandle};
