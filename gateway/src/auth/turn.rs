//! TURN credentials for coturn's shared-secret mode (`use-auth-secret`): the username is
//! `expiry:participant`, the password base64(HMAC-SHA1(secret, username)). coturn checks both
//! itself, so the credentials expire without any call back to us.

use std::time::Duration;

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IceServer {
    pub urls: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

pub fn turn_credentials(secret: &[u8], urls: &[String], participant: &str, ttl: Duration, now_unix: u64) -> IceServer {
    let username = format!("{}:{participant}", now_unix + ttl.as_secs());
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(username.as_bytes());
    let credential = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    IceServer { urls: urls.to_vec(), username: Some(username), credential: Some(credential) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_coturn_rest_api_scheme() {
        let urls = vec!["turn:turn.example.com:3478?transport=udp".to_owned()];
        let s = turn_credentials(b"turn-secret", &urls, "p-1", Duration::from_secs(600), 1_795_260_000);
        assert_eq!(s.username.as_deref(), Some("1795260600:p-1"));
        // python3: base64(hmac.new(b'turn-secret', b'1795260600:p-1', sha1).digest())
        assert_eq!(s.credential.as_deref(), Some("B9hkZkV2ouu1TYAFkYqG2nfigAo="));
        assert_eq!(s.urls, urls);
    }
}
