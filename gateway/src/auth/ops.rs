//! Who may call the ops API (`/api/ops/...`): a token with role `ops` minted for room `*`
//! (`roomcast token --role ops --room '*'`), or the configured API key (`--api-key`), sent as
//! `Authorization: Bearer …`. Pure: a header value in, a decision out.

use super::role::Role;

use super::token::{Claims, TokenError, TokenKeys};
use crate::crypto::constant_time_eq;
/// The room an ops token names: the whole node.
pub const OPS_ROOM: &str = "*";

/// Who is calling, for the logs (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpsCaller {
    ApiKey,
    Token { participant: String, name: String },
}

impl std::fmt::Display for OpsCaller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpsCaller::ApiKey => f.write_str("api-key"),
            OpsCaller::Token { participant, name } => write!(f, "ops token {participant} ({name})"),
        }
    }
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum OpsAuthError {
    /// 401: nothing usable was sent.
    #[error("send Authorization: Bearer <ops token or API key>; mint one with `roomcast token --role ops --room '*'`")]
    Missing,
    /// 401: a token that does not verify (bad signature, expired, malformed).
    #[error("{0}; mint an ops token with `roomcast token --role ops --room '*'`")]
    Invalid(TokenError),
    /// 403: a valid token, but not an ops token for the whole node.
    #[error("this token (role {role}, room {room}) may not use the ops API; it needs role ops and room '*'")]
    Forbidden { role: String, room: String },
}

impl OpsAuthError {
    pub fn is_forbidden(&self) -> bool {
        matches!(self, OpsAuthError::Forbidden { .. })
    }
}

/// Checks an `Authorization` header value for ops access.
pub fn check(authorization: Option<&str>, tokens: &TokenKeys, api_key: Option<&str>) -> Result<OpsCaller, OpsAuthError> {
    let bearer = super::access::bearer(authorization).ok_or(OpsAuthError::Missing)?;
    if let Some(key) = api_key.filter(|k| !k.is_empty()) {
        if constant_time_eq(bearer.as_bytes(), key.as_bytes()) {
            return Ok(OpsCaller::ApiKey);
        }
    }
    let claims = tokens.verify(bearer).map_err(OpsAuthError::Invalid)?;
    authorize(&claims)
}

/// The rule for a verified token: role `ops` and room `*`.
pub fn authorize(claims: &Claims) -> Result<OpsCaller, OpsAuthError> {
    if claims.role == Role::Ops && claims.room == OPS_ROOM {
        Ok(OpsCaller::Token { participant: claims.sub.clone(), name: claims.name.clone() })
    } else {
        let role = serde_json::to_value(claims.role).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
        Err(OpsAuthError::Forbidden { role, room: claims.room.clone() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::token::JOIN_TOKEN_TTL;
    fn keys() -> TokenKeys {
        TokenKeys::from_secret(b"ops-test-secret-ops-test-secret-xx")
    }

    #[test]
    fn ops_token_for_star_passes() {
        let k = keys();
        let t = k.mint(OPS_ROOM, "p-ops", "Grace", Role::Ops, JOIN_TOKEN_TTL);
        let who = check(Some(&format!("Bearer {t}")), &k, None).unwrap();
        assert_eq!(who, OpsCaller::Token { participant: "p-ops".into(), name: "Grace".into() });
    }

    #[test]
    fn missing_malformed_and_foreign_tokens_are_401() {
        let k = keys();
        assert_eq!(check(None, &k, None), Err(OpsAuthError::Missing));
        assert_eq!(check(Some("Basic abc"), &k, None), Err(OpsAuthError::Missing));
        assert_eq!(check(Some("Bearer "), &k, None), Err(OpsAuthError::Missing));
        assert!(matches!(check(Some("Bearer garbage"), &k, None), Err(OpsAuthError::Invalid(_))));
        let other = TokenKeys::from_secret(b"another-secret-another-secret-xx");
        let t = other.mint(OPS_ROOM, "p", "x", Role::Ops, JOIN_TOKEN_TTL);
        assert!(matches!(check(Some(&format!("Bearer {t}")), &k, None), Err(OpsAuthError::Invalid(_))));
    }

    #[test]
    fn participant_tokens_and_room_scoped_ops_tokens_are_403() {
        let k = keys();
        let publisher = k.mint("r-1", "p-1", "Ada", Role::Publisher, JOIN_TOKEN_TTL);
        let e = check(Some(&format!("Bearer {publisher}")), &k, None).unwrap_err();
        assert!(e.is_forbidden(), "{e}");
        assert!(e.to_string().contains("role publisher"), "{e}");
        let host_star = k.mint(OPS_ROOM, "p-2", "Ada", Role::Host, JOIN_TOKEN_TTL);
        assert!(check(Some(&format!("Bearer {host_star}")), &k, None).unwrap_err().is_forbidden());
        let ops_room = k.mint("r-1", "p-3", "Ada", Role::Ops, JOIN_TOKEN_TTL);
        assert!(check(Some(&format!("Bearer {ops_room}")), &k, None).unwrap_err().is_forbidden());
    }

    #[test]
    fn api_key_passes_only_when_configured_and_equal() {
        let k = keys();
        assert_eq!(check(Some("Bearer s3cret-key"), &k, Some("s3cret-key")), Ok(OpsCaller::ApiKey));
        assert!(matches!(check(Some("Bearer s3cret-kez"), &k, Some("s3cret-key")), Err(OpsAuthError::Invalid(_))));
        assert!(matches!(check(Some("Bearer s3cret-key"), &k, None), Err(OpsAuthError::Invalid(_))));
        assert!(matches!(check(Some("Bearer "), &k, Some("")), Err(OpsAuthError::Missing)));
    }
}
