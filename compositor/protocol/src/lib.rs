//! The protocol between the gateway and a `roomcast-compositor` process, written once and used
//! by both sides (compositor/PROTOCOL.md describes it in prose):
//!
//! - `command`: the control lines the gateway writes to the compositor's stdin (newline-
//!   delimited JSON), with their validation and their serialization;
//! - `frame`: the framing of the compositor's stdout (`u32 BE header length, JSON header,
//!   u32 BE body length, body`), its size limits and header kinds (`init`, `part`, `event`);
//! - `event`: the typed status events (`started`, `applied`, `error`, `layout`, `stats`, …).

pub mod command;
pub mod event;
pub mod frame;

pub use command::{parse_line, Codec, Command, ControlError, Kind, TrackSpec};
pub use event::{Event, Stats, Tile};
pub use frame::{Header, MAX_BODY_LEN, MAX_HEADER_LEN};
