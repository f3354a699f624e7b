//! Signed, expiring HLS URLs (pure): `exp=<unix seconds>&sig=<base64url HMAC-SHA256>` over the
//! room id and the expiry, under a key derived from the gateway's secret.
//!
//! The signature names the room, so a URL signed for one room is refused for another; it
//! names the expiry, so changing `exp` breaks it. Verification is constant time (`hmac`'s
//! `verify_slice`). The same query goes on every URI of a signed playlist and is never
//! renewed by the server: a leaked URL dies at `exp`; players fetch a fresh one before then.

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Query parameter names.
pub const EXP: &str = "exp";
pub const SIG: &str = "sig";

/// What the MAC covers is prefixed with this (domain separation from other uses of a key).
const DOMAIN: &[u8] = b"roomcast hls url v1\0";

/// The signing key. Its bytes never leave it (no Debug, no Display).
#[derive(Clone)]
pub struct UrlKey([u8; 32]);

/// Why a signed URL is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigError {
    /// No `exp`/`sig` at all (401: credentials are needed).
    Missing,
    /// `exp` or `sig` given twice, not a number, not base64url (403).
    Malformed,
    /// The signature does not match this room and expiry: tampered, or for another room (403).
    BadSignature,
    /// A valid signature whose `exp` has passed (403).
    Expired,
}

impl std::fmt::Display for SigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SigError::Missing => {
                "this broadcast is private: the URL needs exp and sig parameters; get a signed URL from GET /api/rooms/{id}/hls-url"
            }
            SigError::Malformed => "malformed exp or sig parameter; get a fresh signed URL from GET /api/rooms/{id}/hls-url",
            SigError::BadSignature => "the URL's signature is not valid for this room; get a signed URL from GET /api/rooms/{id}/hls-url",
            SigError::Expired => "the signed URL has expired; get a fresh one from GET /api/rooms/{id}/hls-url",
        })
    }
}

impl UrlKey {
    /// A key derived from a secret: HMAC-SHA256(secret, label). A separate label per use
    /// keeps this key independent of everything else signed with the same secret.
    pub fn derive(secret: &[u8], label: &str) -> UrlKey {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
        mac.update(label.as_bytes());
        UrlKey(mac.finalize().into_bytes().into())
    }

    fn mac(&self, room: &str, exp: u64) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(DOMAIN);
        mac.update(room.as_bytes());
        mac.update(b"\0");
        mac.update(exp.to_string().as_bytes());
        mac
    }

    /// The query string (without `?`) that lets its holder fetch the room's HLS until `exp`.
    pub fn sign(&self, room: &str, exp: u64) -> String {
        let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(self.mac(room, exp).finalize().into_bytes());
        format!("{EXP}={exp}&{SIG}={sig}")
    }

    /// Checks the `exp`/`sig` pairs of a request for `room` at `now` (unix seconds); other
    /// parameters (`_HLS_msn` …) are ignored. Returns the expiry.
    pub fn verify(&self, room: &str, query: &[(String, String)], now: u64) -> Result<u64, SigError> {
        let (exp, sig) = signature_params(query)?;
        let exp_n = crate::uri::parse_number(exp).ok_or(SigError::Malformed)?;
        let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(sig).map_err(|_| SigError::Malformed)?;
        // Signature first: an altered exp is a bad signature, not "expired".
        self.mac(room, exp_n).verify_slice(&sig).map_err(|_| SigError::BadSignature)?;
        if now >= exp_n {
            return Err(SigError::Expired);
        }
        Ok(exp_n)
    }
}

/// `exp` and `sig`, each at most once; both absent is `Missing`, one absent `Missing` too
/// (the request carries no usable credentials).
fn signature_params(query: &[(String, String)]) -> Result<(&str, &str), SigError> {
    let (mut exp, mut sig) = (None, None);
    for (k, v) in query {
        let slot = match k.as_str() {
            EXP => &mut exp,
            SIG => &mut sig,
            _ => continue,
        };
        if slot.replace(v.as_str()).is_some() {
            return Err(SigError::Malformed);
        }
    }
    match (exp, sig) {
        (Some(e), Some(s)) => Ok((e, s)),
        _ => Err(SigError::Missing),
    }
}

/// Splits a query string made by [`UrlKey::sign`] (or any `k=v&k=v`) into pairs. Values are
/// taken verbatim: ours need no percent-decoding.
pub fn pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => (kv.to_owned(), String::new()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn key() -> UrlKey {
        UrlKey::derive(b"0123456789abcdef0123456789abcdef", "hls-url")
    }

    fn with(q: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut p = pairs(q);
        p.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        p
    }

    #[test]
    fn round_trip_alongside_ll_hls_directives() {
        let q = key().sign("r-1", NOW + 300);
        assert!(q.starts_with("exp=1800000300&sig="), "{q}");
        assert_eq!(key().verify("r-1", &pairs(&q), NOW), Ok(NOW + 300));
        let p = with(&q, &[("_HLS_msn", "12"), ("_HLS_part", "1"), ("_HLS_skip", "YES")]);
        assert_eq!(key().verify("r-1", &p, NOW + 299), Ok(NOW + 300));
    }

    #[test]
    fn missing_is_not_the_same_as_wrong() {
        assert_eq!(key().verify("r-1", &[], NOW), Err(SigError::Missing));
        assert_eq!(key().verify("r-1", &pairs("exp=1800000300"), NOW), Err(SigError::Missing));
        assert_eq!(key().verify("r-1", &pairs("sig=abc&_HLS_msn=1"), NOW), Err(SigError::Missing));
    }

    #[test]
    fn expired_tampered_foreign_and_malformed_are_refused() {
        let q = key().sign("r-1", NOW + 300);
        assert_eq!(key().verify("r-1", &pairs(&q), NOW + 300), Err(SigError::Expired));
        assert_eq!(key().verify("r-2", &pairs(&q), NOW), Err(SigError::BadSignature), "another room");
        let longer = q.replace("exp=1800000300", "exp=1800009999");
        assert_eq!(key().verify("r-1", &pairs(&longer), NOW), Err(SigError::BadSignature), "exp changed");
        let (head, sig) = q.split_once("sig=").unwrap();
        let flipped = format!("{head}sig={}{}", if sig.starts_with('A') { 'B' } else { 'A' }, &sig[1..]);
        assert_eq!(key().verify("r-1", &pairs(&flipped), NOW), Err(SigError::BadSignature), "sig changed");
        let other_key = UrlKey::derive(b"another-secret-another-secret-xx", "hls-url");
        assert_eq!(other_key.verify("r-1", &pairs(&q), NOW), Err(SigError::BadSignature));
        let other_label = UrlKey::derive(b"0123456789abcdef0123456789abcdef", "something else");
        assert_eq!(other_label.verify("r-1", &pairs(&q), NOW), Err(SigError::BadSignature));
        for bad in [
            format!("{q}&exp=1800000300"),
            format!("{q}&sig=x"),
            q.replace("exp=1800000300", "exp=-1"),
            q.replace("exp=1800000300", "exp=01800000300"),
            format!("{head}sig=%%%"),
        ] {
            assert_eq!(key().verify("r-1", &pairs(&bad), NOW), Err(SigError::Malformed), "{bad}");
        }
        // truncated signature: decodes (40 base64 chars = 30 bytes), does not verify
        assert_eq!(key().verify("r-1", &pairs(&format!("{head}sig={}", &sig[..40])), NOW), Err(SigError::BadSignature));
    }

    #[test]
    fn errors_say_what_to_do_and_never_carry_the_signature() {
        for e in [SigError::Missing, SigError::Malformed, SigError::BadSignature, SigError::Expired] {
            assert!(e.to_string().contains("/api/rooms/{id}/hls-url"), "{e}");
        }
    }
}
