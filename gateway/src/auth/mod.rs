//! Authentication: join tokens and the signing secret.
pub mod secret;
pub mod token;
