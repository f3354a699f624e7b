//! Who may call what. With `--api-key` set, room creation and joins (which mint tokens) are
//! server-to-server calls that need the key (or, for a join, an invite link), and broadcast
//! control and invites need the key or a host token of that room. Without a key the node is
//! an open demo: anyone may do all of it (but invite hosts).

use super::role::Role;
use super::token::TokenKeys;
use crate::crypto::constant_time_eq;
#[derive(Debug, PartialEq, Eq)]
pub enum Denied {
    /// No or wrong credentials (401).
    Unauthenticated(&'static str),
    /// Valid credentials without the right (403).
    Forbidden(&'static str),
}

/// The token of an `Authorization: Bearer …` header value.
pub fn bearer(authorization: Option<&str>) -> Option<&str> {
    authorization.and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer "))).map(str::trim).filter(|t| !t.is_empty())
}

fn is_api_key(authorization: Option<&str>, api_key: &str) -> bool {
    bearer(authorization).is_some_and(|b| constant_time_eq(b.as_bytes(), api_key.as_bytes()))
}

/// Creating rooms and minting join tokens.
pub fn server_call(authorization: Option<&str>, api_key: Option<&str>) -> Result<(), Denied> {
    match api_key.filter(|k| !k.is_empty()) {
        None => Ok(()),
        Some(key) if is_api_key(authorization, key) => Ok(()),
        Some(_) => Err(Denied::Unauthenticated("this call needs the API key: send Authorization: Bearer <--api-key>")),
    }
}

/// Starting or stopping a room's broadcast, removing participants.
pub fn host_call(authorization: Option<&str>, api_key: Option<&str>, tokens: &TokenKeys, room: &str) -> Result<(), Denied> {
    let Some(key) = api_key.filter(|k| !k.is_empty()) else { return Ok(()) };
    if is_api_key(authorization, key) {
        return Ok(());
    }
    let token = bearer(authorization).ok_or(Denied::Unauthenticated("send Authorization: Bearer <host token or API key>"))?;
    let claims = tokens.verify(token).map_err(|_| Denied::Unauthenticated("the token is not valid or has expired"))?;
    if claims.room == room && claims.role == Role::Host {
        Ok(())
    } else {
        Err(Denied::Forbidden("only this room's host (or the API key) may do this"))
    }
}

/// Minting invite links of `role`: as [`host_call`] (the API key or a host token of the room;
/// anyone on a node without a key, where anyone may join anyway), except that a `host` invite
/// always needs a host token of the room or the key: on an open node it would otherwise make
/// anyone a host, which takes the room's host key.
pub fn invite_call(authorization: Option<&str>, api_key: Option<&str>, tokens: &TokenKeys, room: &str, role: Role) -> Result<(), Denied> {
    if role != Role::Host || api_key.is_some_and(|k| !k.is_empty()) {
        return host_call(authorization, api_key, tokens, room);
    }
    let token = bearer(authorization)
        .ok_or(Denied::Unauthenticated("a host invite needs this room's host token: send Authorization: Bearer <host token>"))?;
    let claims = tokens.verify(token).map_err(|_| Denied::Unauthenticated("the token is not valid or has expired"))?;
    if claims.room == room && claims.role == Role::Host {
        Ok(())
    } else {
        Err(Denied::Forbidden("only this room's host (or the API key) may invite hosts"))
    }
}

/// Which tokens open a signaling session (take part in the call): not `viewer` (watch only,
/// through HLS) and not `ops`.
pub fn may_join_call(role: Role) -> Result<(), Denied> {
    match role {
        Role::Host | Role::Publisher | Role::Subscriber => Ok(()),
        Role::Viewer => Err(Denied::Forbidden("a viewer token only watches the broadcast (/watch); join the room for a participant token")),
        Role::Ops => Err(Denied::Forbidden("an ops token is for /api/ops; join the room for a participant token")),
    }
}

/// Which participants may send media (a `subscriber` only receives).
pub fn may_publish(role: Role) -> bool {
    matches!(role, Role::Host | Role::Publisher)
}

#[cfg(test)]
mod tests {
    #[test]
    fn roles_in_the_call() {
        use super::*;
        assert!(may_join_call(Role::Host).is_ok() && may_join_call(Role::Publisher).is_ok() && may_join_call(Role::Subscriber).is_ok());
        assert!(matches!(may_join_call(Role::Viewer), Err(Denied::Forbidden(_))));
        assert!(matches!(may_join_call(Role::Ops), Err(Denied::Forbidden(_))));
        assert!(may_publish(Role::Host) && may_publish(Role::Publisher));
        assert!(!may_publish(Role::Subscriber) && !may_publish(Role::Viewer));
    }

    use super::*;
    use std::time::Duration;

    #[test]
    fn open_without_a_key_and_guarded_with_one() {
        let keys = TokenKeys::from_secret(b"0123456789abcdef0123456789abcdef");
        assert_eq!(server_call(None, None), Ok(()));
        assert!(matches!(server_call(None, Some("k")), Err(Denied::Unauthenticated(_))));
        assert!(matches!(server_call(Some("Bearer nope"), Some("k")), Err(Denied::Unauthenticated(_))));
        assert_eq!(server_call(Some("Bearer k"), Some("k")), Ok(()));

        let host = keys.mint("r-1", "p-1", "H", Role::Host, Duration::from_secs(60));
        let publisher = keys.mint("r-1", "p-2", "P", Role::Publisher, Duration::from_secs(60));
        let other_host = keys.mint("r-2", "p-3", "H", Role::Host, Duration::from_secs(60));
        assert_eq!(host_call(Some(&format!("Bearer {host}")), Some("k"), &keys, "r-1"), Ok(()));
        assert!(matches!(host_call(Some(&format!("Bearer {publisher}")), Some("k"), &keys, "r-1"), Err(Denied::Forbidden(_))));
        assert!(matches!(host_call(Some(&format!("Bearer {other_host}")), Some("k"), &keys, "r-1"), Err(Denied::Forbidden(_))));
        assert_eq!(host_call(Some("Bearer k"), Some("k"), &keys, "r-1"), Ok(()));
        assert_eq!(host_call(None, None, &keys, "r-1"), Ok(()));
    }

    #[test]
    fn who_may_mint_invites() {
        let keys = TokenKeys::from_secret(b"0123456789abcdef0123456789abcdef");
        let ttl = Duration::from_secs(60);
        let host = format!("Bearer {}", keys.mint("r-1", "p-1", "H", Role::Host, ttl));
        let publisher = format!("Bearer {}", keys.mint("r-1", "p-2", "P", Role::Publisher, ttl));
        let other_host = format!("Bearer {}", keys.mint("r-2", "p-3", "H", Role::Host, ttl));
        for role in [Role::Host, Role::Publisher, Role::Subscriber] {
            // With a key: the key or this room's host, nobody else.
            assert_eq!(invite_call(Some("Bearer k"), Some("k"), &keys, "r-1", role), Ok(()));
            assert_eq!(invite_call(Some(&host), Some("k"), &keys, "r-1", role), Ok(()));
            assert!(matches!(invite_call(None, Some("k"), &keys, "r-1", role), Err(Denied::Unauthenticated(_))));
            assert!(matches!(invite_call(Some(&publisher), Some("k"), &keys, "r-1", role), Err(Denied::Forbidden(_))));
            assert!(matches!(invite_call(Some(&other_host), Some("k"), &keys, "r-1", role), Err(Denied::Forbidden(_))));
            // Without a key, a host invite still needs this room's host.
            assert_eq!(invite_call(Some(&host), None, &keys, "r-1", role), Ok(()));
        }
        assert_eq!(invite_call(None, None, &keys, "r-1", Role::Publisher), Ok(()), "open node: anyone may join anyway");
        assert!(matches!(invite_call(None, None, &keys, "r-1", Role::Host), Err(Denied::Unauthenticated(_))));
        assert!(matches!(invite_call(Some(&publisher), None, &keys, "r-1", Role::Host), Err(Denied::Forbidden(_))));
        assert!(matches!(invite_call(Some(&other_host), None, &keys, "r-1", Role::Host), Err(Denied::Forbidden(_))));
    }

    #[test]
    fn host_keys_are_per_room_and_stable() {
        let keys = TokenKeys::from_secret(b"0123456789abcdef0123456789abcdef");
        let k1 = keys.host_key("r-1");
        assert_eq!(k1, TokenKeys::from_secret(b"0123456789abcdef0123456789abcdef").host_key("r-1"));
        assert_ne!(k1, keys.host_key("r-2"));
        assert!(keys.is_host_key("r-1", &k1) && !keys.is_host_key("r-2", &k1));
    }
}
