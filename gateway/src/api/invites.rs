//! Invite links, so that a node with `--api-key` can still let people in from a browser:
//!
//! - `POST /api/rooms/{id}/invites` `{role?, ttl_secs?, max_uses?}` (the API key or a host token
//!   of the room): a signed invite (`auth::invite`) and its link, `/room/{id}?invite=…`.
//! - `POST /api/rooms/{id}/invites/check` `{invite}`: whether an invite would let someone in
//!   now, without using it (the web app asks before showing the join screen).
//! - `POST /api/rooms/{id}/join` `{invite, name?, rejoin?}`: the exchange, in `rooms::join`,
//!   which calls [`redeem`]: no API key needed; the join token gets the invite's role.
//! - `GET /api/config`: `{invite_required}`, whether browsers need an invite to join here.
//!
//! Each join with an invite takes a seat of it in the store (`Store::invite_use`), counted
//! against `max_uses`. A reconnect sends the join token it had (`rejoin`): its seat moves to
//! the new participant id, so a reconnect is not a new use, and works after the invite expired.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::extract::authorization;
use crate::auth::access::{self, Denied};
use crate::auth::invite::{self, Invite, InviteError};
use crate::auth::role::Role;
use crate::clock::unix_now;
use crate::state::AppState;
use crate::store::StoreError;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct MintBody {
    /// `publisher` (default), `subscriber` or `host`.
    #[serde(default)]
    role: Option<String>,
    /// Lifetime in seconds (1 s to 7 days; default 24 hours).
    #[serde(default)]
    ttl_secs: Option<u64>,
    /// How many people may join with it (1 to 10000); left out: no limit.
    #[serde(default)]
    max_uses: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckBody {
    invite: String,
}

/// Whether browsers need an invite to join on this node (it has an API key).
pub fn invite_required(app: &AppState) -> bool {
    app.config.api_key.as_deref().is_some_and(|k| !k.is_empty())
}

/// `GET /api/config`: what the web app needs to know about this node before joining.
#[derive(Debug, Serialize)]
pub struct NodeConfig {
    pub invite_required: bool,
}

/// `201` to `POST /api/rooms/{id}/invites`: the invite and the link that carries it.
#[derive(Debug, Serialize)]
pub struct Minted {
    pub invite: String,
    pub url: String,
    pub room: String,
    pub role: Role,
    pub expires_at: u64,
    pub expires_in: u64,
    pub max_uses: Option<u32>,
}

/// `POST /api/rooms/{id}/invites/check`: what the invite gives now.
#[derive(Debug, Serialize)]
pub struct Checked {
    pub room: String,
    pub role: Role,
    pub expires_at: u64,
    pub expires_in: u64,
    pub max_uses: Option<u32>,
    pub uses: u32,
    pub uses_left: Option<u32>,
}

pub async fn config(State(app): State<AppState>) -> Json<NodeConfig> {
    Json(NodeConfig { invite_required: invite_required(&app) })
}

/// `POST /api/rooms/{id}/invites`
pub async fn mint(
    State(app): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Minted>), ApiError> {
    let room = known_room(&app, &id).await?;
    // The body is optional: none, empty, or JSON.
    let body: MintBody = if body.iter().all(u8::is_ascii_whitespace) {
        MintBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request(format!("{e}; send {{\"role\": \"publisher\", \"ttl_secs\": 86400, \"max_uses\": 10}} (all optional)"))
        })?
    };
    let role = invite::parse_role(body.role.as_deref()).map_err(ApiError::bad_request)?;
    access::invite_call(authorization(&headers), app.config.api_key.as_deref(), &app.tokens, &room, role).map_err(|d| match d {
        Denied::Unauthenticated(m) => ApiError::unauthorized(format!("{m}; invites are minted with the API key or this room's host token")),
        Denied::Forbidden(m) => ApiError::forbidden(m),
    })?;
    let ttl = invite::ttl_secs(body.ttl_secs).map_err(ApiError::bad_request)?;
    let max_uses = invite::max_uses(body.max_uses).map_err(ApiError::bad_request)?;
    let now = unix_now();
    let inv = Invite::new(&room, role, ttl, max_uses, now);
    let text = app.tokens.invites().sign(&inv);
    tracing::info!(room = %room, invite_id = %inv.id, ?role, ttl_secs = ttl, ?max_uses, "invite minted");
    Ok((
        StatusCode::CREATED,
        Json(Minted {
            url: format!("/room/{room}?invite={text}"),
            invite: text,
            room,
            role,
            expires_at: inv.exp,
            expires_in: ttl,
            max_uses,
        }),
    ))
}

/// `POST /api/rooms/{id}/invites/check`: 200 with what the invite gives, or the error a join
/// with it would get now. Uses nothing.
pub async fn check(State(app): State<AppState>, Path(id): Path<String>, body: Bytes) -> Result<Json<Checked>, ApiError> {
    let body: CheckBody =
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("{e}; send {{\"invite\": \"inv1.…\"}}")))?;
    let room = known_room(&app, &id).await?;
    let now = unix_now();
    let inv = app.tokens.invites().verify(&body.invite, &room, now)?;
    let uses = store(&app)?.invite_uses(&inv.id).await.map_err(store_failed)?;
    inv.check_uses(uses)?;
    Ok(Json(Checked {
        room,
        role: inv.role,
        expires_at: inv.exp,
        expires_in: inv.exp.saturating_sub(now),
        max_uses: inv.max_uses,
        uses,
        uses_left: inv.uses_left(uses),
    }))
}

/// A join with an invite: checks it for `room` and takes a seat of it for `participant`; the
/// role the join token gets. `rejoin`: the join token this person had before (a reconnect):
/// if it holds a seat of this invite, the seat moves to `participant` (no new use, even after
/// the invite expired); otherwise the invite must be valid now and have a seat left.
pub async fn redeem(app: &AppState, room: &str, invite: &str, rejoin: Option<&str>, participant: &str) -> Result<Role, ApiError> {
    let inv = app.tokens.invites().open(invite, room)?;
    let store = store(app)?;
    let now = unix_now();
    let previous = rejoin.and_then(|t| app.tokens.verify_for_room(t, room).ok()).filter(|c| c.role == inv.role);
    if let Some(previous) = previous {
        if store.invite_rejoin(&inv.id, &previous.sub, participant, now).await.map_err(store_failed)? {
            tracing::info!(room, invite_id = %inv.id, participant, previous = %previous.sub, "rejoined with an invite");
            return Ok(inv.role);
        }
    }
    if let Err(e) = inv.check_time(now) {
        tracing::info!(room, invite_id = %inv.id, "refused an expired invite");
        return Err(e.into());
    }
    match store.invite_use(&inv.id, participant, inv.max_uses, now).await.map_err(store_failed)? {
        Some(uses) => {
            tracing::info!(room, invite_id = %inv.id, participant, uses, max_uses = ?inv.max_uses, "joined with an invite");
            Ok(inv.role)
        }
        None => {
            tracing::info!(room, invite_id = %inv.id, max_uses = ?inv.max_uses, "refused a used-up invite");
            Err(InviteError::Exhausted { max_uses: inv.max_uses.unwrap_or(0) }.into())
        }
    }
}

/// The id of a room this node knows: live, or ended but in the store (a join brings it back).
async fn known_room(app: &AppState, id: &str) -> Result<String, ApiError> {
    if let Some(room) = app.rooms.get(id) {
        return Ok(room.id);
    }
    match store(app)?.room(id).await.map_err(store_failed)? {
        Some(room) => Ok(room.id),
        None => Err(ApiError::room_not_found()),
    }
}

fn store(app: &AppState) -> Result<&std::sync::Arc<dyn crate::store::Store>, ApiError> {
    app.rooms.store().ok_or_else(|| ApiError::unavailable("invite links need the store, and this node runs without one"))
}

fn store_failed(e: StoreError) -> ApiError {
    tracing::error!(error = %e, "the store failed while checking an invite");
    ApiError::unavailable(format!("the invite could not be checked: {e}"))
}
