//! Room endpoints: create, inspect, join.

use std::net::SocketAddr;
use std::time::Instant;

use axum::extract::{rejection::JsonRejection, ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::error::{ApiError, ApiErrorCode};
use super::extract::{authorization, known_room, live_room, RoomHost, ServerCaller};
use crate::auth::access;
use crate::auth::role::Role;
use crate::auth::token::JOIN_TOKEN_TTL;
use crate::auth::turn::{turn_credentials, IceServer};
use crate::broadcast::policy::BroadcastState;
use crate::clock::unix_now;
use crate::protocol::{ParticipantInfo, ProducerInfo};
use crate::rooms::registry::new_id;
use crate::sfu::{Command, RoomSnapshot};
use crate::state::AppState;
use crate::store::RoomSettings;

const MAX_NAME_CHARS: usize = 64;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct JoinBody {
    #[serde(default)]
    name: Option<String>,
    /// The room's host key (from room creation): the token then has the host role.
    #[serde(default)]
    host_key: Option<String>,
    /// `publisher` (default) or `subscriber` (receives only; its `publish_offer` is refused).
    #[serde(default)]
    role: Option<String>,
    /// An invite link's invite (`api::invites`): no API key needed; the token gets its role.
    #[serde(default)]
    invite: Option<String>,
    /// With `invite`: the join token this browser had before (a reconnect is not a new use).
    #[serde(default)]
    rejoin: Option<String>,
}

/// The role a join asks for; hosts come from the host key, viewers from viewer tokens.
fn requested_role(role: Option<&str>) -> Result<Role, ApiError> {
    match role {
        None | Some("publisher") => Ok(Role::Publisher),
        Some("subscriber") => Ok(Role::Subscriber),
        Some("host") => Err(ApiError::bad_request("join with the room's host_key to be its host")),
        Some("viewer") => Err(ApiError::bad_request("viewers watch the broadcast: POST /api/rooms/{id}/viewer-token")),
        Some(other) => Err(ApiError::bad_request(format!("unknown role {other:?}; use publisher or subscriber"))),
    }
}

/// TURN credentials outlive the join token a little, so a call set up late still relays.
const TURN_TTL: std::time::Duration = std::time::Duration::from_secs(12 * 60 * 60);

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    #[serde(default)]
    name: Option<String>,
    /// Start the broadcast when the first participant publishes.
    #[serde(default)]
    auto_broadcast: bool,
    /// Viewers need a viewer token (`POST /api/rooms/{id}/viewer-token`).
    #[serde(default)]
    private: bool,
    /// The browsers encrypt media end to end; such a room cannot be broadcast.
    #[serde(default)]
    e2ee: bool,
}

/// `201` to `POST /api/rooms`: the room, and its host key (given to its creator only).
#[derive(Debug, Serialize)]
pub struct Created {
    pub id: String,
    pub name: String,
    pub auto_broadcast: bool,
    pub private: bool,
    pub e2ee: bool,
    pub host_key: String,
    /// In a cluster: the public URL of the node that holds the room (its API, pages,
    /// signaling and HLS); any node answers for it too.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_url: Option<String>,
}

/// `GET /api/rooms/{id}`: the room, who is in it, what they publish, its broadcast's state.
#[derive(Debug, Serialize)]
pub struct RoomView {
    pub id: String,
    pub name: String,
    pub created_at: u64,
    pub auto_broadcast: bool,
    pub private: bool,
    pub e2ee: bool,
    pub participants: Vec<ParticipantInfo>,
    pub producers: Vec<ProducerInfo>,
    pub broadcast: BroadcastState,
    /// Set once nobody was in the room for `--room-idle-end-secs`; null while it lives.
    pub ended_at: Option<u64>,
}

/// `POST /api/rooms/{id}/join`: the join token and where to use it.
#[derive(Debug, Serialize)]
pub struct Joined {
    pub token: String,
    pub participant_id: String,
    pub ws_url: String,
    pub ice_servers: Vec<IceServer>,
    pub role: Role,
    pub e2ee: bool,
    pub expires_in: u64,
}

fn clean_name(name: Option<String>, default: &str) -> Result<String, ApiError> {
    let name = name.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty()).unwrap_or_else(|| default.to_owned());
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(ApiError::bad_request(format!("name is longer than {MAX_NAME_CHARS} characters")));
    }
    if name.chars().any(char::is_control) {
        return Err(ApiError::bad_request("name contains control characters"));
    }
    Ok(name)
}

pub async fn create(
    _: ServerCaller,
    State(app): State<AppState>,
    body: Result<Json<CreateBody>, JsonRejection>,
) -> Result<(StatusCode, Json<Created>), ApiError> {
    let Json(body) = body?;
    let name = clean_name(body.name, "Room")?;
    if body.e2ee && body.auto_broadcast {
        return Err(ApiError::bad_request("an end-to-end encrypted room cannot be broadcast, so it cannot have auto_broadcast"));
    }
    let settings = RoomSettings { auto_broadcast: body.auto_broadcast, private: body.private, e2ee: body.e2ee };
    let unsaved = |e: crate::store::StoreError| {
        tracing::error!(error = %e, "cannot store a new room");
        ApiError::unavailable(format!("the room could not be saved: {e}"))
    };
    // In a cluster the room goes to the node with the most headroom (never a draining one:
    // a draining node still takes the request and places the room elsewhere); that node takes
    // it into memory when the first request for it arrives.
    let draining = app.node.is_draining();
    let placed = match app.cluster.as_ref() {
        Some(c) => Some((c, c.place(draining).ok_or_else(super::ops::draining)?)),
        None if draining => return Err(super::ops::draining()),
        None => None,
    };
    let room = match &placed {
        Some((cluster, node)) if node.id != cluster.id() => app.rooms.create_record(name, settings).await.map_err(unsaved)?,
        _ => crate::rooms::registry::room_record(&app.rooms.create_stored(name, settings).await.map_err(unsaved)?),
    };
    match &placed {
        Some((cluster, node)) => {
            cluster.assign(&room.id, &node.id).await.map_err(unsaved)?;
            tracing::info!(room = %room.id, node = %node.id, "room created and placed");
        }
        None => tracing::info!(room = %room.id, "room created"),
    }
    // The host key goes to the creator only: joining with it makes a host.
    let host_key = app.tokens.host_key(&room.id);
    Ok((
        StatusCode::CREATED,
        Json(Created {
            id: room.id,
            name: room.name,
            auto_broadcast: room.settings.auto_broadcast,
            private: room.settings.private,
            e2ee: room.settings.e2ee,
            host_key,
            node_url: placed.map(|(_, node)| node.public_url),
        }),
    ))
}

/// `GET /api/rooms/{id}`. An ended room (nobody in it for `--room-idle-end-secs`) is still
/// described, with its `ended_at`; joining it brings it back.
pub async fn get(State(app): State<AppState>, Path(id): Path<String>) -> Result<Json<RoomView>, ApiError> {
    let Some(room) = app.rooms.get(&id) else {
        let room = known_room(&app, &id).await?;
        return Ok(Json(RoomView {
            broadcast: app.broadcasts.state(&id),
            id: room.id,
            name: room.name,
            created_at: room.created_at,
            auto_broadcast: room.settings.auto_broadcast,
            private: room.settings.private,
            e2ee: room.settings.e2ee,
            participants: Vec::new(),
            producers: Vec::new(),
            ended_at: room.ended_at,
        }));
    };
    let (reply, rx) = oneshot::channel();
    let snapshot = if app.workers[room.worker].send(Command::Snapshot { room: id.clone(), reply }) {
        rx.await.unwrap_or_default()
    } else {
        RoomSnapshot::default()
    };
    Ok(Json(RoomView {
        broadcast: app.broadcasts.state(&id),
        id: room.id.clone(),
        name: room.name.clone(),
        created_at: room.created_at,
        auto_broadcast: room.settings.auto_broadcast,
        private: room.settings.private,
        e2ee: room.settings.e2ee,
        participants: snapshot.participants,
        producers: snapshot.producers,
        ended_at: None,
    }))
}

/// `DELETE /api/rooms/{id}/participants/{pid}`: the host (or the API key) removes someone.
/// They get `removed` on their socket, the others `participant_left`, and their token is used up.
pub async fn remove_participant(
    _: RoomHost,
    State(app): State<AppState>,
    Path((id, pid)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let room = app.rooms.get(&id).ok_or_else(ApiError::room_not_found)?;
    let worker = &app.workers[room.worker];
    if crate::signaling::session::remove_participant(worker, &id, &pid, "the host removed you from the room").await {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::new(ApiErrorCode::ParticipantNotFound, format!("nobody with id {pid:?} is in room {id}")))
    }
}

pub async fn join(
    State(app): State<AppState>,
    Path(id): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Json<JoinBody>, JsonRejection>,
) -> Result<Json<Joined>, ApiError> {
    // An invite is the browser's way in on a node with an API key.
    if !body.as_ref().is_ok_and(|Json(b)| b.invite.is_some()) {
        access::server_call(authorization(&headers), app.config.api_key.as_deref())?;
    }
    if !app.joins.allow(peer.ip(), Instant::now()) {
        return Err(ApiError::rate_limited("too many joins from this address; wait a minute and try again"));
    }
    let Json(body) = body?;
    // In a cluster the room may live on another node: the token is good there too (the nodes
    // share the signing secret), and the answer points the client at that node's signaling.
    let elsewhere = super::cluster::owner_for_join(&app, &id).await?;
    // A draining node takes no joins for rooms of its own; for a room on another node it only
    // names that node (the participants of a room it handed over re-join through the page
    // this node served them).
    if elsewhere.is_none() && app.node.is_draining() {
        return Err(super::ops::draining());
    }
    let settings = match &elsewhere {
        Some(_) => known_room(&app, &id).await?.settings,
        None => {
            let room = live_room(&app, &id).await?;
            if app.rooms.connected(&id) >= app.config.max_participants {
                return Err(ApiError::room_full(app.config.max_participants));
            }
            room.settings
        }
    };
    let participant = new_id("p");
    let name = clean_name(body.name, &format!("Guest {}", &participant[2..6]))?;
    let role = match body.host_key.as_deref() {
        _ if body.invite.is_some() && (body.host_key.is_some() || body.role.is_some()) => {
            return Err(ApiError::bad_request("an invite sets the role: send it without host_key and role"));
        }
        _ if body.invite.is_some() => {
            super::invites::redeem(&app, &id, body.invite.as_deref().unwrap_or_default(), body.rejoin.as_deref(), &participant).await?
        }
        Some(key) if app.tokens.is_host_key(&id, key) => Role::Host,
        Some(_) => return Err(ApiError::forbidden("that host key is not this room's")),
        None => requested_role(body.role.as_deref())?,
    };
    let token = app.tokens.mint(&id, &participant, &name, role, JOIN_TOKEN_TTL);
    let ice_servers: Vec<IceServer> = match &app.config.turn_secret {
        Some(secret) if !app.config.turn_urls.is_empty() => {
            vec![turn_credentials(secret.as_bytes(), &app.config.turn_urls, &participant, TURN_TTL, unix_now())]
        }
        _ => Vec::new(),
    };
    let ws_url = match &elsewhere {
        Some(node) => node.ws_url(&format!("/ws?token={token}")),
        None => {
            let host =
                headers.get("host").and_then(|h| h.to_str().ok()).map(str::to_owned).unwrap_or_else(|| app.config.listen.to_string());
            format!("ws://{host}/ws?token={token}")
        }
    };
    Ok(Json(Joined {
        ws_url,
        token,
        participant_id: participant,
        ice_servers,
        role,
        e2ee: settings.e2ee,
        expires_in: JOIN_TOKEN_TTL.as_secs(),
    }))
}
