//! LL-HLS packager: the compositor's fMP4/CMAF init segment and parts go in through a
//! [`StreamWriter`]; segments, parts and playlists are kept in memory (a sliding window per
//! room) and served by [`routes()`] with blocking playlist reload and delta updates.
//!
//! ```text
//! gateway: let store = HlsStore::new();
//!          let app = app.merge(hls_out::routes(store.clone()));
//!          let w = store.open(room, PackagerConfig { part_target, segment_target, window_segments: 10 });
//!          w.init(init_bytes); w.push_part(Part { .. }); ... w.discontinuity(); ... store.close(room);
//!          store.set_access(hook);   // optional: private rooms (see `access`)
//! viewer:  GET /hls/{room}/index.m3u8[?_HLS_msn=N[&_HLS_part=M]][&_HLS_skip=YES][&exp=…&sig=…]
//!          GET /hls/{room}/init-{n}.mp4 | seg-{msn}.m4s | part-{msn}.{part}.m4s [?exp=…&sig=…]
//! ```
//!
//! Modules: [`playlist`] (pure: playlist state → text, m3u8-rs plus the LL-HLS lines),
//! [`packager`] (pure: one stream's state machine), [`store`] (the shared registry, locks and
//! wake-ups), [`mod@routes`] (HTTP), [`uri`] (the names), [`access`] (the access-check hook),
//! [`signed`] (pure: signed, expiring URL queries), [`viewers`] (pure: viewer counting), [`delay`] (pure: the part publish delay histogram).

pub mod access;
pub mod delay;
pub mod packager;
pub mod playlist;
pub mod routes;
pub mod signed;
pub mod store;
pub mod uri;
pub mod viewers;

pub use access::{AccessCheck, Denied};
pub use delay::DelayHistogram;
pub use packager::{DropReason, PackagerConfig, Part, PushOutcome, StreamStats};
pub use routes::routes;
pub use store::{HlsStore, StreamWriter};
pub use viewers::ViewerStats;
