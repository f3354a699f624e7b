//! Private rooms' HLS: signed, expiring playlist URLs and the access hook hls-out asks for
//! every HLS request.
//!
//! A private room's `/hls/{id}/…` needs `exp=<unix>&sig=<HMAC-SHA256(room, exp)>` (the pure
//! signing is `hls_out::signed`) under a key derived from the token secret, so it survives
//! restarts and needs no storage. `GET /api/rooms/{id}/hls-url` hands a signed URL to the
//! holder of a token of that room; it lives `--hls-url-ttl-secs` (never past the token), and the
//! same `exp` goes on every URI of the playlist: a leaked URL dies at `exp`, and the watch
//! page fetches a fresh one before then. Public rooms are served as always.

use std::time::Duration;

use hls_out::signed::{SigError, UrlKey};
use hls_out::Denied;

/// Label of the key derivation (HMAC-SHA256(token secret, label)).
const KEY_LABEL: &str = "roomcast hls-url key v1";

/// Signs and checks a room's HLS URLs. Cheap to clone; the key never shows in Debug output.
#[derive(Clone)]
pub struct HlsUrls {
    key: UrlKey,
}

impl std::fmt::Debug for HlsUrls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HlsUrls(..)")
    }
}

/// The playlist URL of a room, unsigned.
pub fn playlist_path(room: &str) -> String {
    format!("/hls/{room}/{}", hls_out::uri::PLAYLIST)
}

/// When a URL signed `now` for a token expiring at `token_exp` (None: the API key) expires:
/// `ttl` from now (short: a leaked URL dies soon; players refresh), never after the token.
pub fn url_expiry(now: u64, ttl: Duration, token_exp: Option<u64>) -> u64 {
    let exp = now + ttl.as_secs();
    token_exp.map_or(exp, |t| t.min(exp))
}

/// What a refused signature means for the client: no signature is 401 (credentials needed),
/// a bad or expired one 403.
pub fn denial(e: SigError) -> Denied {
    match e {
        SigError::Missing => Denied::Unauthenticated(
            "this broadcast is private: open the viewer link the host shared, or get a signed URL from GET /api/rooms/{id}/hls-url".into(),
        ),
        other => Denied::Forbidden(other.to_string()),
    }
}

impl HlsUrls {
    pub fn from_token_secret(secret: &[u8]) -> Self {
        Self { key: UrlKey::derive(secret, KEY_LABEL) }
    }

    /// The query (`exp=…&sig=…`) for `room` until `exp`.
    pub fn query(&self, room: &str, exp: u64) -> String {
        self.key.sign(room, exp)
    }

    /// The signed playlist URL (path and query) for `room` until `exp`.
    pub fn playlist_url(&self, room: &str, exp: u64) -> String {
        format!("{}?{}", playlist_path(room), self.query(room, exp))
    }

    /// Checks a private room's HLS request; on success, the query to put on every URI of the
    /// playlist (the same `exp`: it is never extended).
    pub fn check(&self, room: &str, query: &[(String, String)], now: u64) -> Result<String, Denied> {
        let exp = self.key.verify(room, query, now).map_err(denial)?;
        Ok(self.query(room, exp))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn urls() -> HlsUrls {
        HlsUrls::from_token_secret(b"test-secret-test-secret-test-secret")
    }

    fn pairs(url: &str) -> Vec<(String, String)> {
        hls_out::signed::pairs(url.split_once('?').map_or("", |(_, q)| q))
    }

    #[test]
    fn expiry_is_short_and_never_outlives_the_token() {
        let ttl = Duration::from_secs(300);
        assert_eq!(url_expiry(NOW, ttl, None), NOW + 300);
        assert_eq!(url_expiry(NOW, ttl, Some(NOW + 3600)), NOW + 300);
        assert_eq!(url_expiry(NOW, ttl, Some(NOW + 30)), NOW + 30);
    }

    #[test]
    fn signed_urls_check_out_for_their_room_until_exp() {
        let u = urls();
        let url = u.playlist_url("r-1", NOW + 300);
        assert!(url.starts_with("/hls/r-1/index.m3u8?exp=1800000300&sig="), "{url}");
        assert_eq!(u.check("r-1", &pairs(&url), NOW), Ok(u.query("r-1", NOW + 300)));
        assert!(matches!(u.check("r-2", &pairs(&url), NOW), Err(Denied::Forbidden(_))));
        assert!(matches!(u.check("r-1", &pairs(&url), NOW + 300), Err(Denied::Forbidden(m)) if m.contains("expired")));
        assert!(matches!(u.check("r-1", &[], NOW), Err(Denied::Unauthenticated(m)) if m.contains("private")));
        let other = HlsUrls::from_token_secret(b"another-secret-another-secret-xxx");
        assert!(matches!(other.check("r-1", &pairs(&url), NOW), Err(Denied::Forbidden(_))));
        assert_eq!(format!("{u:?}"), "HlsUrls(..)");
    }
}
