//! Authentication: join tokens, ops access, and the signing secret.
pub mod ops;
pub mod secret;
pub mod token;
