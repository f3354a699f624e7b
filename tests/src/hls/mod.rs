//! A low-latency HLS viewer for tests and benchmarks: reads LL-HLS playlists
//! ([`playlist`]), follows a live stream part by part like a player ([`follower`]), and
//! decodes what it fetched to check the picture ([`decode`], [`fmp4`]); whole segments of a
//! broadcast, tile by tile, for the end-to-end tests ([`grid`]).

pub mod decode;
pub mod fmp4;
pub mod follower;
pub mod grid;
pub mod playlist;

pub use decode::{FrameEvent, Patch, TileDecoder};
pub use follower::{FetchedPart, FollowStats, Follower, HlsEvent};
pub use playlist::{LivePlaylist, PartEntry, PartId};
