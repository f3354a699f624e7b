//! Invite links (pure): a signed, expiring, role-scoped pass into one room, for nodes where
//! joining otherwise needs the API key.
//!
//! Text form: `inv1.<payload>.<sig>`, where `payload` is the base64url (no padding) JSON of an
//! [`Invite`] and `sig` the base64url HMAC-SHA256 of `inv1.<payload>` under a key derived from
//! the token secret (its own label, so an invite is never a join token and the other way
//! round). Changing any field breaks the signature; the room and the role are inside it, and
//! the expiry too. How many times an invite was used is not in it: the store counts that
//! (`Store::invite_use`), per invite id.

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::role::Role;
/// Prefix of the text form (the format version).
const PREFIX: &str = "inv1.";
/// Label of the key derivation: HMAC-SHA256(token secret, label).
const KEY_LABEL: &[u8] = b"roomcast invite key v1";

/// Lifetime bounds of an invite (seconds) and the default when none is asked for.
pub const TTL_MIN_SECS: u64 = 1;
pub const TTL_MAX_SECS: u64 = 7 * 24 * 60 * 60;
pub const TTL_DEFAULT_SECS: u64 = 24 * 60 * 60;
/// The largest `max_uses` an invite may have.
pub const MAX_USES_MAX: u32 = 10_000;
/// Invites are longer than this only when something is wrong (a pasted page, not a link).
const MAX_TEXT_LEN: usize = 2048;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// What an invite says. All of it is signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Invite {
    /// Random id: the store counts uses under it.
    pub id: String,
    pub room: String,
    /// The role of the join tokens it gives.
    pub role: Role,
    /// Issued and expires, unix seconds.
    pub iat: u64,
    pub exp: u64,
    /// How many people may join with it; `None`: no limit until it expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_uses: Option<u32>,
}

/// Why an invite is refused. The API maps each to its own error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InviteError {
    /// Not an invite at all (cut off when copied, another format).
    #[error("this is not a valid invite (it may have been cut off when the link was copied); ask the host for a new invite link")]
    Malformed,
    /// The signature does not match: forged, or a field was changed.
    #[error("this invite was not issued by this server or was changed; ask the host for a new invite link")]
    BadSignature,
    /// Signed by us, but with a role that cannot join a call (never minted that way).
    #[error("this invite's role cannot join the call; ask the host for a new invite link")]
    Role,
    #[error("this invite is for another room; open the link exactly as the host sent it, or ask for an invite to this room")]
    WrongRoom,
    #[error("this invite has expired; ask the host for a new invite link")]
    Expired,
    #[error("this invite has been used as many times as it allows ({max_uses}); ask the host for a new invite link")]
    Exhausted { max_uses: u32 },
}

/// The roles an invite may carry: those that take part in the call.
pub fn invitable(role: Role) -> bool {
    matches!(role, Role::Host | Role::Publisher | Role::Subscriber)
}

/// A minting request's role, from its name.
pub fn parse_role(role: Option<&str>) -> Result<Role, String> {
    match role {
        None | Some("publisher") => Ok(Role::Publisher),
        Some("subscriber") => Ok(Role::Subscriber),
        Some("host") => Ok(Role::Host),
        Some("viewer") => Err("an invite lets people into the call; for watch-only links use POST /api/rooms/{id}/viewer-token".into()),
        Some(other) => Err(format!("unknown role {other:?}; use host, publisher or subscriber")),
    }
}

/// A minting request's lifetime in seconds: the default, or the one asked for within the bounds.
pub fn ttl_secs(requested: Option<u64>) -> Result<u64, String> {
    match requested {
        None => Ok(TTL_DEFAULT_SECS),
        Some(s) if (TTL_MIN_SECS..=TTL_MAX_SECS).contains(&s) => Ok(s),
        Some(_) => Err(format!("ttl_secs must be between {TTL_MIN_SECS} and {TTL_MAX_SECS} (7 days)")),
    }
}

/// A minting request's use limit: none, or 1 to [`MAX_USES_MAX`].
pub fn max_uses(requested: Option<u32>) -> Result<Option<u32>, String> {
    match requested {
        Some(n) if !(1..=MAX_USES_MAX).contains(&n) => {
            Err(format!("max_uses must be between 1 and {MAX_USES_MAX}, or left out for no limit"))
        }
        n => Ok(n),
    }
}

impl Invite {
    /// A new invite (fresh random id) issued at `now`.
    pub fn new(room: &str, role: Role, ttl_secs: u64, max_uses: Option<u32>, now: u64) -> Self {
        let id: [u8; 12] = rand::random();
        Self { id: B64.encode(id), room: room.to_owned(), role, iat: now, exp: now.saturating_add(ttl_secs), max_uses }
    }

    /// Refused once `exp` is reached.
    pub fn check_time(&self, now: u64) -> Result<(), InviteError> {
        if now >= self.exp {
            Err(InviteError::Expired)
        } else {
            Ok(())
        }
    }

    /// Refused when `used` people already joined with it and it allows no more.
    pub fn check_uses(&self, used: u32) -> Result<(), InviteError> {
        match self.max_uses {
            Some(max) if used >= max => Err(InviteError::Exhausted { max_uses: max }),
            _ => Ok(()),
        }
    }

    /// Uses left after `used`; `None`: no limit.
    pub fn uses_left(&self, used: u32) -> Option<u32> {
        self.max_uses.map(|max| max.saturating_sub(used))
    }
}

/// Signs and checks invites. The key never shows in Debug output.
#[derive(Clone)]
pub struct InviteKeys {
    key: [u8; 32],
}

impl std::fmt::Debug for InviteKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InviteKeys(..)")
    }
}

impl InviteKeys {
    pub fn from_token_secret(secret: &[u8]) -> Self {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
        mac.update(KEY_LABEL);
        Self { key: mac.finalize().into_bytes().into() }
    }

    fn mac(&self, signed: &str) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(signed.as_bytes());
        mac
    }

    /// The text form of `invite` (what goes into `?invite=`).
    pub fn sign(&self, invite: &Invite) -> String {
        let payload = B64.encode(serde_json::to_vec(invite).expect("an invite serializes"));
        let signed = format!("{PREFIX}{payload}");
        let sig = B64.encode(self.mac(&signed).finalize().into_bytes());
        format!("{signed}.{sig}")
    }

    /// Checks the signature, the role and the room, not the time: a rejoin after the invite
    /// expired is allowed (see `api::invites`). Use [`InviteKeys::verify`] otherwise.
    pub fn open(&self, text: &str, room: &str) -> Result<Invite, InviteError> {
        let text = text.trim();
        if text.len() > MAX_TEXT_LEN {
            return Err(InviteError::Malformed);
        }
        let rest = text.strip_prefix(PREFIX).ok_or(InviteError::Malformed)?;
        let (payload, sig) = rest.split_once('.').ok_or(InviteError::Malformed)?;
        let sig = B64.decode(sig).map_err(|_| InviteError::Malformed)?;
        let signed = &text[..PREFIX.len() + payload.len()];
        // Constant time (`hmac`'s verify_slice).
        self.mac(signed).verify_slice(&sig).map_err(|_| InviteError::BadSignature)?;
        let invite: Invite =
            B64.decode(payload).ok().and_then(|bytes| serde_json::from_slice(&bytes).ok()).ok_or(InviteError::Malformed)?;
        if !invitable(invite.role) {
            return Err(InviteError::Role);
        }
        if invite.room != room {
            return Err(InviteError::WrongRoom);
        }
        Ok(invite)
    }

    /// [`InviteKeys::open`] and the expiry at `now` (unix seconds).
    pub fn verify(&self, text: &str, room: &str, now: u64) -> Result<Invite, InviteError> {
        let invite = self.open(text, room)?;
        invite.check_time(now)?;
        Ok(invite)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_767_225_600;

    fn keys() -> InviteKeys {
        InviteKeys::from_token_secret(b"test-secret-test-secret-test-secret")
    }

    fn invite(role: Role, max_uses: Option<u32>) -> Invite {
        Invite::new("r-1", role, 600, max_uses, NOW)
    }

    #[test]
    fn round_trip() {
        let inv = invite(Role::Publisher, Some(3));
        let text = keys().sign(&inv);
        assert!(text.starts_with("inv1.") && text.len() < 300, "{text}");
        assert!(text.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)), "URL-safe as is: {text}");
        assert_eq!(keys().verify(&text, "r-1", NOW), Ok(inv.clone()));
        assert_eq!(keys().verify(&format!(" {text}\n"), "r-1", NOW + 599), Ok(inv));
        let host = invite(Role::Host, None);
        assert_eq!(keys().verify(&keys().sign(&host), "r-1", NOW).unwrap().role, Role::Host);
        assert_ne!(invite(Role::Host, None).id, host.id, "every invite has its own id");
    }

    #[test]
    fn forged_and_malformed() {
        let text = keys().sign(&invite(Role::Publisher, None));
        let other = InviteKeys::from_token_secret(b"another-secret-another-secret-xx");
        assert_eq!(other.verify(&text, "r-1", NOW), Err(InviteError::BadSignature), "another node's secret");
        // A made-up signature of the right shape.
        let (signed, _) = text.rsplit_once('.').unwrap();
        assert_eq!(keys().verify(&format!("{signed}.{}", B64.encode([7u8; 32])), "r-1", NOW), Err(InviteError::BadSignature));
        // A join token (a JWT) or other junk is not an invite.
        for junk in ["", "inv1.", "inv1.abc", "eyJhbGciOiJIUzI1NiJ9.e30.sig", "inv1.abc.!!!", &text[..text.len() - 10], &"x".repeat(5000)] {
            assert!(matches!(keys().verify(junk, "r-1", NOW), Err(InviteError::Malformed | InviteError::BadSignature)), "{junk:?}");
        }
        assert_eq!(keys().verify(&text.replacen("inv1.", "inv2.", 1), "r-1", NOW), Err(InviteError::Malformed));
    }

    #[test]
    fn tampered_fields_break_the_signature() {
        let k = keys();
        let inv = invite(Role::Publisher, Some(1));
        let text = k.sign(&inv);
        let (_, sig) = text.rsplit_once('.').unwrap();
        let tampered: Vec<Invite> = vec![
            Invite { role: Role::Host, ..inv.clone() },
            Invite { room: "r-2".into(), ..inv.clone() },
            Invite { exp: inv.exp + 86_400, ..inv.clone() },
            Invite { max_uses: None, ..inv.clone() },
            Invite { max_uses: Some(1000), ..inv.clone() },
            Invite { id: "another-id".into(), ..inv.clone() },
        ];
        for t in tampered {
            // The changed payload with the original signature.
            let payload = B64.encode(serde_json::to_vec(&t).unwrap());
            let room = t.room.clone();
            assert_eq!(k.verify(&format!("inv1.{payload}.{sig}"), &room, NOW), Err(InviteError::BadSignature), "{t:?}");
        }
    }

    #[test]
    fn wrong_room_expired_and_wrong_role() {
        let k = keys();
        let text = k.sign(&invite(Role::Subscriber, None));
        assert_eq!(k.verify(&text, "r-2", NOW), Err(InviteError::WrongRoom));
        assert_eq!(k.verify(&text, "r-1", NOW + 600), Err(InviteError::Expired), "refused at exp");
        assert_eq!(k.verify(&text, "r-1", NOW + 86_400), Err(InviteError::Expired));
        assert!(k.open(&text, "r-1").is_ok(), "open() leaves the time to the caller (rejoins)");
        assert_eq!(k.open(&text, "r-2"), Err(InviteError::WrongRoom), "but not the room");
        // Signed by us with a role that cannot take part in the call: refused all the same.
        for role in [Role::Viewer, Role::Ops] {
            assert_eq!(k.verify(&k.sign(&invite(role, None)), "r-1", NOW), Err(InviteError::Role), "{role:?}");
        }
    }

    #[test]
    fn use_limits() {
        let limited = invite(Role::Publisher, Some(2));
        assert_eq!(limited.check_uses(0), Ok(()));
        assert_eq!(limited.check_uses(1), Ok(()));
        assert_eq!(limited.check_uses(2), Err(InviteError::Exhausted { max_uses: 2 }));
        assert_eq!(limited.check_uses(9), Err(InviteError::Exhausted { max_uses: 2 }));
        assert_eq!((limited.uses_left(0), limited.uses_left(2), limited.uses_left(5)), (Some(2), Some(0), Some(0)));
        let unlimited = invite(Role::Publisher, None);
        assert_eq!(unlimited.check_uses(u32::MAX), Ok(()));
        assert_eq!(unlimited.uses_left(7), None);
    }

    #[test]
    fn minting_inputs() {
        assert_eq!(parse_role(None), Ok(Role::Publisher));
        assert_eq!(parse_role(Some("host")), Ok(Role::Host));
        assert_eq!(parse_role(Some("subscriber")), Ok(Role::Subscriber));
        assert!(parse_role(Some("viewer")).unwrap_err().contains("viewer-token"));
        assert!(parse_role(Some("ops")).unwrap_err().contains("unknown role"));
        assert!(parse_role(Some("Host")).is_err(), "role names are lowercase");

        assert_eq!(ttl_secs(None), Ok(TTL_DEFAULT_SECS));
        assert_eq!(ttl_secs(Some(1)), Ok(1));
        assert_eq!(ttl_secs(Some(TTL_MAX_SECS)), Ok(TTL_MAX_SECS));
        assert!(ttl_secs(Some(0)).unwrap_err().contains("between 1 and 604800"));
        assert!(ttl_secs(Some(TTL_MAX_SECS + 1)).is_err());

        assert_eq!(max_uses(None), Ok(None));
        assert_eq!(max_uses(Some(1)), Ok(Some(1)));
        assert_eq!(max_uses(Some(MAX_USES_MAX)), Ok(Some(MAX_USES_MAX)));
        assert!(max_uses(Some(0)).is_err());
        assert!(max_uses(Some(MAX_USES_MAX + 1)).is_err());

        let inv = Invite::new("r-9", Role::Host, 60, None, NOW);
        assert_eq!((inv.iat, inv.exp, inv.id.len()), (NOW, NOW + 60, 16));
        assert_eq!(Invite::new("r-9", Role::Host, u64::MAX, None, NOW).exp, u64::MAX, "no overflow");
    }
}
