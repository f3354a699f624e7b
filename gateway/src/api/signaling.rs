//! `GET /ws`: the HTTP side of a signaling session. The token, the room and the page's origin
//! are checked before the upgrade, so a bad request is a plain 401/403/404/409; then the
//! session (`crate::signaling::session`) runs on the socket.

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Query, State};
use axum::http::header::USER_AGENT;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::error::{ApiError, ApiErrorCode};
use crate::auth::token::Claims;
use crate::clock::unix_now;
use crate::rooms::SessionError;
use crate::signaling::session;
use crate::state::AppState;
use crate::store::{SessionRecord, Write};

/// Frames above this close the socket (protocol error); frames between
/// `protocol::MAX_MESSAGE_BYTES` and this get a `too_large` error and the session
/// continues.
const MAX_FRAME_BYTES: usize = 1024 * 1024;

/// User agents are stored for the call log; longer ones are cut.
const MAX_USER_AGENT_CHARS: usize = 256;

#[derive(Deserialize)]
pub struct WsQuery {
    token: Option<String>,
}

/// Checks the token and the room before upgrading, so a bad token is a plain 401/404/409.
pub async fn upgrade(
    State(app): State<AppState>,
    Query(q): Query<WsQuery>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let Some(token) = q.token else {
        return ApiError::unauthorized("missing ?token=; get one from POST /api/rooms/{id}/join").into_response();
    };
    let claims = match app.tokens.verify(&token) {
        Ok(c) => c,
        Err(e) => return ApiError::unauthorized(e.to_string()).into_response(),
    };
    if let Err(denied) = crate::auth::access::may_join_call(claims.role) {
        return ApiError::from(denied).into_response();
    }
    // In a cluster the socket belongs on the room's node; a client that came here (its node
    // changed since it joined) joins again and is pointed there.
    match super::cluster::owner_now(&app, &claims.room).await {
        Ok(None) => {}
        Ok(Some(node)) => {
            let msg = format!("room {} lives on node {} ({}): join again to be sent there", claims.room, node.id, node.public_url);
            return ApiError::new(ApiErrorCode::WrongNode, msg).into_response();
        }
        Err(e) => return e.into_response(),
    }
    let mut session = app.rooms.begin_session(&claims.room, &claims.sub);
    if matches!(session, Err(SessionError::UnknownRoom)) {
        // The room ended (it was empty for a while) after this token was minted: bring it back.
        match app.rooms.reopen(&claims.room).await {
            Ok(Some(_)) => session = app.rooms.begin_session(&claims.room, &claims.sub),
            Ok(None) => {}
            Err(e) => return ApiError::unavailable(format!("the room could not be read: {e}")).into_response(),
        }
    }
    let room = match session {
        Ok(r) => r,
        Err(SessionError::UnknownRoom) => return ApiError::room_not_found().into_response(),
        Err(e) => return ApiError::conflict(e.to_string()).into_response(),
    };
    let origin = headers.get(axum::http::header::ORIGIN).and_then(|v| v.to_str().ok());
    let host = headers.get(axum::http::header::HOST).and_then(|v| v.to_str().ok());
    let from_a_node = origin.zip(app.cluster.as_ref()).is_some_and(|(o, c)| c.is_node_origin(o));
    if !from_a_node && !super::security::origin_allowed(origin, host, &app.config.allowed_origins) {
        app.rooms.release_session(&claims.room, &claims.sub);
        return ApiError::forbidden("this page's origin may not open signaling sockets; add it to --allowed-origins").into_response();
    }
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => {
            app.rooms.release_session(&claims.room, &claims.sub);
            return ApiError::bad_request(format!("{}; connect with a WebSocket client", rejection.body_text())).into_response();
        }
    };
    let worker = app.workers[room.worker].clone();
    let user_agent = headers.get(USER_AGENT).and_then(|v| v.to_str().ok()).map(|ua| ua.chars().take(MAX_USER_AGENT_CHARS).collect());
    // Counted from here, not from the upgrade: shutdown waits for upgrades in flight too (a
    // failed upgrade drops the closure, and the count with it).
    let open = app.node.session_opened();
    ws.max_message_size(MAX_FRAME_BYTES).max_frame_size(MAX_FRAME_BYTES).on_upgrade(move |socket| async move {
        let _open = open;
        app.rooms.record(Write::SessionJoined(Box::new(session_record(&claims, user_agent))));
        session::run(socket, claims.clone(), worker, app.clone()).await;
        app.rooms.end_session(&claims.room, &claims.sub);
        app.rooms.record(Write::SessionLeft { room: claims.room.clone(), participant: claims.sub.clone(), at: unix_now() });
    })
}

fn session_record(claims: &Claims, user_agent: Option<String>) -> SessionRecord {
    let role = serde_json::to_value(claims.role).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
    SessionRecord {
        room: claims.room.clone(),
        participant: claims.sub.clone(),
        name: claims.name.clone(),
        role,
        user_agent,
        joined_at: unix_now(),
        left_at: None,
        stats: None,
    }
}
