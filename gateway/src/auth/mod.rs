//! Authentication: join tokens, ops access, and the signing secret.
pub mod access;
pub mod hls_url;
pub mod ops;
pub mod secret;
pub mod token;
pub mod turn;
