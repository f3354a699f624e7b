//! Authentication: join tokens, invite links, ops access, and the signing secret.
pub mod access;
pub mod hls_url;
pub mod invite;
pub mod ops;
pub mod role;
pub mod secret;
pub mod token;
pub mod turn;
