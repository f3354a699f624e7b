//! A low-latency HLS viewer for tests and benchmarks: reads LL-HLS playlists
//! ([`playlist`]), follows a live stream part by part like a player ([`follower`]), and
//! decodes what it fetched to check the picture ([`decode`], [`fmp4`]).

pub mod decode;
pub mod fmp4;
pub mod follower;
pub mod playlist;

pub use decode::{FrameEvent, Patch, TileDecoder};
pub use follower::{FetchedPart, FollowStats, Follower, HlsEvent};
pub use playlist::{LivePlaylist, PartEntry, PartId};
