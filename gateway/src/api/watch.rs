//! Watching a room: viewer tokens and (signed) HLS URLs.
//!
//! - `POST /api/rooms/{id}/viewer-token` `{"ttl_seconds"?}`: the API key or a host token of
//!   the room mints a `viewer` token and the watch link that carries it.
//! - `GET /api/rooms/{id}/hls-url`: a public room's playlist URL for anyone; a private room's
//!   signed, expiring one for the holder of a token of that room (viewer, host, publisher,
//!   subscriber) or the API key. See `auth::hls_url`.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::extract::{authorization, known_room};
use crate::auth::access::{self, Denied};
use crate::auth::hls_url::{playlist_path, url_expiry};
use crate::auth::role::Role;
use crate::auth::token::{TokenError, TokenKeys};
use crate::clock::unix_now;
use crate::crypto::constant_time_eq;
use crate::rooms::registry::new_id;
use crate::state::AppState;

pub const VIEWER_TOKEN_TTL_DEFAULT: Duration = Duration::from_secs(60 * 60);
pub const VIEWER_TOKEN_TTL_MIN: Duration = Duration::from_secs(60);
pub const VIEWER_TOKEN_TTL_MAX: Duration = Duration::from_secs(24 * 60 * 60);

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ViewerTokenBody {
    #[serde(default)]
    ttl_seconds: Option<u64>,
}

/// The viewer token's lifetime: the default, or the one asked for within the bounds.
pub fn viewer_token_ttl(requested: Option<u64>) -> Result<Duration, String> {
    let Some(secs) = requested else { return Ok(VIEWER_TOKEN_TTL_DEFAULT) };
    let (min, max) = (VIEWER_TOKEN_TTL_MIN.as_secs(), VIEWER_TOKEN_TTL_MAX.as_secs());
    if (min..=max).contains(&secs) {
        Ok(Duration::from_secs(secs))
    } else {
        Err(format!("ttl_seconds must be between {min} and {max} (1 minute to 24 hours)"))
    }
}

/// Minting viewer tokens: the API key or a host token of this room. Unlike other host calls
/// this is never open, even without `--api-key`: a private room would otherwise let anyone in.
pub fn mint_rights(authorization: Option<&str>, api_key: Option<&str>, tokens: &TokenKeys, room: &str) -> Result<(), Denied> {
    if api_key.is_some_and(|k| !k.is_empty()) {
        return access::host_call(authorization, api_key, tokens, room);
    }
    let token = access::bearer(authorization).ok_or(Denied::Unauthenticated("send Authorization: Bearer <host token>"))?;
    let claims = tokens.verify(token).map_err(|_| Denied::Unauthenticated("the token is not valid or has expired"))?;
    if claims.room == room && claims.role == Role::Host {
        Ok(())
    } else {
        Err(Denied::Forbidden("only this room's host (or the API key) may do this"))
    }
}

/// Who may have a private room's signed HLS URL, and until when it may be valid at most:
/// the API key (no limit of its own) or any token of this room (until the token expires).
pub fn watch_rights(authorization: Option<&str>, api_key: Option<&str>, tokens: &TokenKeys, room: &str) -> Result<Option<u64>, ApiError> {
    let Some(bearer) = access::bearer(authorization) else {
        return Err(ApiError::unauthorized(
            "this broadcast is private: open the viewer link the host shared (it carries ?token=…), or send Authorization: Bearer <viewer token>",
        ));
    };
    if api_key.is_some_and(|k| !k.is_empty() && constant_time_eq(bearer.as_bytes(), k.as_bytes())) {
        return Ok(None);
    }
    match tokens.verify_for_room(bearer, room) {
        Ok(claims) if claims.role != Role::Ops => Ok(Some(claims.exp)),
        Ok(_) => Err(ApiError::forbidden("an ops token does not give access to a room's broadcast; use a viewer token")),
        Err(TokenError::WrongRoom) => Err(ApiError::forbidden("this token is for another room; ask this room's host for a viewer link")),
        Err(TokenError::Expired) => Err(ApiError::unauthorized("the viewer token has expired; ask the host for a new viewer link")),
        Err(e) => Err(ApiError::unauthorized(format!("{e}; ask the host for a viewer link"))),
    }
}

/// `POST /api/rooms/{id}/viewer-token`: a viewer token and the watch link that carries it.
#[derive(Debug, Serialize)]
pub struct ViewerToken {
    pub token: String,
    pub expires_in: u64,
    pub watch_url: String,
    pub private: bool,
}

/// `GET /api/rooms/{id}/hls-url`: the playlist URL (signed, with its expiry, for a private room).
#[derive(Debug, Serialize)]
pub struct HlsUrl {
    pub hls_url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<u64>,
    pub private: bool,
}

/// `POST /api/rooms/{id}/viewer-token`
pub async fn viewer_token(
    State(app): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<ViewerToken>, ApiError> {
    let room = known_room(&app, &id).await?;
    mint_rights(authorization(&headers), app.config.api_key.as_deref(), &app.tokens, &id).map_err(|d| match d {
        Denied::Unauthenticated(_) => {
            ApiError::unauthorized("send Authorization: Bearer <this room's host token or the API key> to mint viewer tokens")
        }
        Denied::Forbidden(_) => ApiError::forbidden("only this room's host (or the API key) may mint viewer tokens"),
    })?;
    // The body is optional: none, empty, or JSON.
    let body: ViewerTokenBody = if body.iter().all(u8::is_ascii_whitespace) {
        ViewerTokenBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("{e}; send {{\"ttl_seconds\": N}} or nothing")))?
    };
    let ttl = viewer_token_ttl(body.ttl_seconds).map_err(ApiError::bad_request)?;
    let viewer = new_id("v");
    let token = app.tokens.mint(&room.id, &viewer, "viewer", Role::Viewer, ttl);
    tracing::info!(room = %room.id, viewer = %viewer, ttl_secs = ttl.as_secs(), private = room.settings.private, "viewer token minted");
    Ok(Json(ViewerToken {
        watch_url: format!("/watch/{}?token={token}", room.id),
        token,
        expires_in: ttl.as_secs(),
        private: room.settings.private,
    }))
}

/// `GET /api/rooms/{id}/hls-url`
pub async fn hls_url(State(app): State<AppState>, Path(id): Path<String>, headers: HeaderMap) -> Result<Json<HlsUrl>, ApiError> {
    let room = known_room(&app, &id).await?;
    if !room.settings.private {
        return Ok(Json(HlsUrl { hls_url: playlist_path(&id), expires_at: None, expires_in: None, private: false }));
    }
    let token_exp = watch_rights(authorization(&headers), app.config.api_key.as_deref(), &app.tokens, &id)?;
    let urls = app.broadcasts.hls_urls.get().ok_or_else(|| ApiError::unavailable("HLS URL signing is not set up on this node"))?;
    let now = unix_now();
    let exp = url_expiry(now, app.config.hls_url_ttl(), token_exp);
    if exp <= now {
        return Err(ApiError::unauthorized("the viewer token has expired; ask the host for a new viewer link"));
    }
    Ok(Json(HlsUrl { hls_url: urls.playlist_url(&id, exp), expires_at: Some(exp), expires_in: Some(exp - now), private: true }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> TokenKeys {
        TokenKeys::from_secret(b"0123456789abcdef0123456789abcdef")
    }

    #[test]
    fn ttl_bounds() {
        assert_eq!(viewer_token_ttl(None), Ok(Duration::from_secs(3600)));
        assert_eq!(viewer_token_ttl(Some(60)), Ok(Duration::from_secs(60)));
        assert_eq!(viewer_token_ttl(Some(86_400)), Ok(Duration::from_secs(86_400)));
        assert!(viewer_token_ttl(Some(59)).unwrap_err().contains("between 60 and 86400"));
        assert!(viewer_token_ttl(Some(86_401)).is_err());
        assert!(viewer_token_ttl(Some(0)).is_err());
    }

    #[test]
    fn only_the_host_or_the_api_key_mint_even_without_a_key_configured() {
        let k = keys();
        let ttl = Duration::from_secs(60);
        let host = format!("Bearer {}", k.mint("r-1", "p-1", "H", Role::Host, ttl));
        let publisher = format!("Bearer {}", k.mint("r-1", "p-2", "P", Role::Publisher, ttl));
        let other_host = format!("Bearer {}", k.mint("r-2", "p-3", "H", Role::Host, ttl));
        for api_key in [None, Some("k")] {
            assert_eq!(mint_rights(Some(&host), api_key, &k, "r-1"), Ok(()));
            assert!(matches!(mint_rights(Some(&publisher), api_key, &k, "r-1"), Err(Denied::Forbidden(_))));
            assert!(matches!(mint_rights(Some(&other_host), api_key, &k, "r-1"), Err(Denied::Forbidden(_))));
            assert!(matches!(mint_rights(None, api_key, &k, "r-1"), Err(Denied::Unauthenticated(_))));
        }
        assert_eq!(mint_rights(Some("Bearer k"), Some("k"), &k, "r-1"), Ok(()));
        assert!(matches!(mint_rights(Some("Bearer k"), None, &k, "r-1"), Err(Denied::Unauthenticated(_))));
    }

    #[test]
    fn any_token_of_the_room_may_watch() {
        let k = keys();
        let ttl = Duration::from_secs(600);
        for role in [Role::Viewer, Role::Host, Role::Publisher, Role::Subscriber] {
            let t = format!("Bearer {}", k.mint("r-1", "p", "x", role, ttl));
            let exp = watch_rights(Some(&t), None, &k, "r-1").unwrap().unwrap();
            assert!(exp > unix_now() + 590, "{role:?}");
        }
        assert_eq!(watch_rights(Some("Bearer k"), Some("k"), &k, "r-1").unwrap(), None);
        let status = |r: Result<Option<u64>, ApiError>| r.unwrap_err().status().as_u16();
        assert_eq!(status(watch_rights(None, None, &k, "r-1")), 401);
        assert_eq!(status(watch_rights(Some("Bearer k"), None, &k, "r-1")), 401, "no key configured: just a bad token");
        assert_eq!(status(watch_rights(Some("Bearer garbage"), None, &k, "r-1")), 401);
        let other = format!("Bearer {}", k.mint("r-2", "p", "x", Role::Viewer, ttl));
        assert_eq!(status(watch_rights(Some(&other), None, &k, "r-1")), 403);
        let ops = format!("Bearer {}", k.mint("r-1", "p", "x", Role::Ops, ttl));
        assert_eq!(status(watch_rights(Some(&ops), None, &k, "r-1")), 403);
        let foreign =
            format!("Bearer {}", TokenKeys::from_secret(b"another-secret-another-secret-xx").mint("r-1", "p", "x", Role::Viewer, ttl));
        assert_eq!(status(watch_rights(Some(&foreign), None, &k, "r-1")), 401);
    }
}
