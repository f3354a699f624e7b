//! roomcast-compositor: one process per live broadcast. Composites a room's plain-RTP legs
//! into one grid (GStreamer) and writes fMP4/CMAF init + parts, framed, to stdout.
//!
//! Decision logic is plain and unit-tested (`layout`, `room`, `output`, `cmaf`,
//! `timing`, `drops`, `lipsync`, `keyframes`, `health`, `segments`, `standby`, `errors`);
//! GStreamer sits at the edge (`pipeline`), and `controller` wires stdin, bus and stdout. The control commands, the output framing and the events are the
//! `compositor-protocol` crate, shared with the gateway.

pub mod catchup;
pub mod cmaf;
pub mod controller;
pub mod drops;
pub mod errors;
pub mod health;
pub mod keyframes;
pub mod layout;
pub mod lipsync;
pub mod output;
pub mod pipeline;
pub mod room;
pub mod segments;
pub mod standby;
pub mod timing;
