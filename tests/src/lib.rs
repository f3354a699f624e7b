//! Synthetic participants.
