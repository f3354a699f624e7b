//! Who may fetch a room's HLS: a hook the embedding server sets on the store
//! ([`crate::HlsStore::set_access`]). hls-out knows nothing of rooms or tokens; it asks the
//! hook for every request (playlist, init, segment, part) before it looks the stream up.
//!
//! `Ok(None)`: public, served as always. `Ok(Some(query))`: allowed, and `query` is appended
//! to every URI the playlist lists (EXT-X-MAP, segments, EXT-X-PART, EXT-X-PRELOAD-HINT), so
//! a player that loaded a signed playlist fetches everything else signed; responses are then
//! `Cache-Control: private` so shared caches do not keep them past the signature's expiry.

/// Why a request is refused. The message is sent to the client: it must say what to do and
/// must not contain secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// 401: no credentials.
    Unauthenticated(String),
    /// 403: credentials that do not give access (expired, tampered, another room's).
    Forbidden(String),
}

/// The access-check hook. `query` is the request's query string as pairs (LL-HLS directives
/// included; the hook ignores what is not its own).
pub trait AccessCheck: Send + Sync {
    fn check(&self, room: &str, query: &[(String, String)]) -> Result<Option<String>, Denied>;
}

impl<F> AccessCheck for F
where
    F: Fn(&str, &[(String, String)]) -> Result<Option<String>, Denied> + Send + Sync,
{
    fn check(&self, room: &str, query: &[(String, String)]) -> Result<Option<String>, Denied> {
        self(room, query)
    }
}
