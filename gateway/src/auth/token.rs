//! Join tokens: short-lived HS256 JWTs scoped to one room and one participant.

use std::time::Duration;

use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::role::Role;
use crate::clock::unix_now;
use crate::crypto::constant_time_eq;

pub const JOIN_TOKEN_TTL: Duration = Duration::from_secs(10 * 60);
const ISSUER: &str = "roomcast";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    /// Participant id.
    pub sub: String,
    pub room: String,
    pub name: String,
    pub role: Role,
    pub iat: u64,
    pub nbf: u64,
    pub exp: u64,
    /// Unique token id.
    pub jti: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("the token has expired; ask for a new one with POST /api/rooms/{{id}}/join")]
    Expired,
    #[error("the token is not valid yet (check the clocks)")]
    NotYetValid,
    #[error("the token is not valid: {0}")]
    Invalid(String),
    #[error("the token is for another room")]
    WrongRoom,
}

#[derive(Clone)]
pub struct TokenKeys {
    // Shared: the application state (and so these keys) is cloned for every HTTP request.
    encoding: std::sync::Arc<EncodingKey>,
    decoding: std::sync::Arc<DecodingKey>,
    secret: std::sync::Arc<[u8]>,
}

impl TokenKeys {
    pub fn from_secret(secret: &[u8]) -> Self {
        Self { encoding: EncodingKey::from_secret(secret).into(), decoding: DecodingKey::from_secret(secret).into(), secret: secret.into() }
    }

    /// The room's host key: whoever holds it joins as host. Derived from the server secret
    /// (HMAC of the room id), so it needs no storage and survives restarts.
    pub fn host_key(&self, room: &str) -> String {
        use base64::Engine;
        use hmac::{Hmac, KeyInit, Mac};
        let mut mac = Hmac::<sha1::Sha1>::new_from_slice(&self.secret).expect("HMAC takes any key length");
        mac.update(b"roomcast host key\0");
        mac.update(room.as_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    pub fn is_host_key(&self, room: &str, key: &str) -> bool {
        constant_time_eq(self.host_key(room).as_bytes(), key.as_bytes())
    }

    /// The invite-link keys, derived from the same secret (under their own label).
    pub fn invites(&self) -> super::invite::InviteKeys {
        super::invite::InviteKeys::from_token_secret(&self.secret)
    }

    pub fn mint(&self, room: &str, participant: &str, name: &str, role: Role, ttl: Duration) -> String {
        let now = unix_now();
        let claims = Claims {
            iss: ISSUER.into(),
            sub: participant.into(),
            room: room.into(),
            name: name.into(),
            role,
            iat: now,
            nbf: now,
            exp: now + ttl.as_secs(),
            jti: uuid::Uuid::new_v4().to_string(),
        };
        encode(&Header::new(Algorithm::HS256), &claims, &self.encoding).expect("HS256 signing cannot fail")
    }

    /// Verifies signature, algorithm (HS256 only: `alg: none` and others are refused), issuer and times.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        validation.validate_nbf = true;
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "sub"]);
        decode::<Claims>(token, &self.decoding, &validation).map(|d| d.claims).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                ErrorKind::ImmatureSignature => TokenError::NotYetValid,
                other => TokenError::Invalid(format!("{other:?}")),
            }
        })
    }

    pub fn verify_for_room(&self, token: &str, room: &str) -> Result<Claims, TokenError> {
        let claims = self.verify(token)?;
        if claims.room != room {
            return Err(TokenError::WrongRoom);
        }
        Ok(claims)
    }

    #[cfg(test)]
    fn sign_claims(&self, claims: &Claims) -> String {
        encode(&Header::new(Algorithm::HS256), claims, &self.encoding).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> TokenKeys {
        TokenKeys::from_secret(b"test-secret-test-secret-test-secret")
    }

    #[test]
    fn round_trip() {
        let t = keys().mint("r-1", "p-1", "Ada", Role::Publisher, JOIN_TOKEN_TTL);
        let c = keys().verify_for_room(&t, "r-1").unwrap();
        assert_eq!((c.sub.as_str(), c.name.as_str(), c.role), ("p-1", "Ada", Role::Publisher));
        assert!(c.exp - c.iat == 600);
    }

    #[test]
    fn rejects_wrong_room_signature_expiry_and_alg_none() {
        let k = keys();
        let t = k.mint("r-1", "p-1", "Ada", Role::Publisher, JOIN_TOKEN_TTL);
        assert_eq!(k.verify_for_room(&t, "r-2"), Err(TokenError::WrongRoom));
        let other = TokenKeys::from_secret(b"another-secret-another-secret-xx");
        assert!(matches!(other.verify(&t), Err(TokenError::Invalid(_))));

        let now = unix_now();
        let mut c = k.verify(&t).unwrap();
        c.exp = now - 60;
        c.nbf = now - 120;
        assert_eq!(k.verify(&k.sign_claims(&c)), Err(TokenError::Expired));
        c.nbf = now + 600;
        c.exp = now + 1200;
        assert_eq!(k.verify(&k.sign_claims(&c)), Err(TokenError::NotYetValid));

        // An unsigned token ("alg": "none") with otherwise valid claims.
        use base64_url as b64;
        let header = b64("{\"alg\":\"none\",\"typ\":\"JWT\"}");
        let body = b64(&serde_json::to_string(&k.verify(&t).unwrap()).unwrap());
        assert!(matches!(k.verify(&format!("{header}.{body}.")), Err(TokenError::Invalid(_))));
        assert!(matches!(k.verify("garbage"), Err(TokenError::Invalid(_))));
    }

    fn base64_url(s: &str) -> String {
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let b = s.as_bytes();
        let mut out = String::new();
        for chunk in b.chunks(3) {
            let n = chunk.iter().enumerate().fold(0u32, |acc, (i, &x)| acc | (x as u32) << (16 - 8 * i));
            for i in 0..=chunk.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }
}
