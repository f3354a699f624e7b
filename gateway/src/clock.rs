//! Wall-clock time as the tokens, invites, signed URLs and the store count it.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since 1970 (0 if the clock is before it).
pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}
