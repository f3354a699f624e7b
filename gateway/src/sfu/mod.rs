//! The SFU: str0m in RTP mode. Workers (threads, one UDP socket each) own rooms; each room is
//! a sans-IO `router` (inputs in, outputs out, no sockets or clocks of its own) that routes
//! producers to consumers. Pure decision logic lives in `forward`, `keyframe`, `negotiation`,
//! `simulcast`, `leg`.
pub mod forward;
pub mod frame_size;
pub mod keyframe;
pub mod leg;
pub mod negotiation;
#[cfg(feature = "fault-injection")]
pub mod netfault;
pub mod peer;
pub mod quality;
pub mod router;
pub mod simulcast;
pub mod slow_steps;
pub mod stats;
pub mod worker;

pub use router::LegEvent;
pub use stats::WorkerStats;
pub use worker::{Command, RoomSnapshot, WorkerConfig, WorkerHandle};
