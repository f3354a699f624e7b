//! roomcast-compositor: one process per live broadcast. Composites a room's plain-RTP legs
//! into one grid (GStreamer) and writes fMP4/CMAF init + parts, framed, to stdout.
//!
//! Decision logic is plain and unit-tested (`layout`, `control`, `room`, `output`, `cmaf`,
//! `timing`, `drops`, `lipsync`, `keyframes`); GStreamer sits at the edge (`pipeline`), and `controller`
//! wires stdin, bus and stdout.

pub mod catchup;
pub mod cmaf;
pub mod control;
pub mod controller;
pub mod drops;
pub mod keyframes;
pub mod layout;
pub mod lipsync;
pub mod output;
pub mod pipeline;
pub mod room;
pub mod timing;
