//! Small cryptographic helpers shared by the API key, token and signed-URL checks.

/// Compares secrets in time independent of where they differ (no early exit), so response
/// times do not reveal how much of a guessed key was right.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
