//! One participant's signaling session: a WebSocket authenticated by its join token.
//! It validates frames, relays requests to the room's SFU worker and relays the worker's
//! messages back. A bad frame gets an `error` back and changes nothing else.

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{close_code, CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::sync::mpsc;

use super::messages::{parse_client_msg, ClientMsg, ErrorCode, ParticipantInfo, ServerMsg, MAX_MESSAGE_BYTES};
use crate::api::error::ApiError;
use crate::api::AppState;
use crate::auth::token::Claims;
use crate::broadcast::policy::BroadcastState;
use crate::rooms::SessionError;
use crate::sfu::{Command, WorkerHandle};

/// Frames above this close the socket (protocol error); frames between MAX_MESSAGE_BYTES and
/// this get a `too_large` error and the session continues.
const MAX_FRAME_BYTES: usize = 1024 * 1024;

#[derive(Deserialize)]
pub struct WsQuery {
    token: Option<String>,
}

/// Checks the token and the room before upgrading, so a bad token is a plain 401/404/409.
pub async fn upgrade(
    State(app): State<AppState>,
    Query(q): Query<WsQuery>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let Some(token) = q.token else {
        return ApiError::unauthorized("missing ?token=; get one from POST /api/rooms/{id}/join").into_response();
    };
    let claims = match app.tokens.verify(&token) {
        Ok(c) => c,
        Err(e) => return ApiError::unauthorized(e.to_string()).into_response(),
    };
    let room = match app.rooms.begin_session(&claims.room, &claims.sub) {
        Ok(r) => r,
        Err(SessionError::UnknownRoom) => return ApiError::room_not_found().into_response(),
        Err(e) => return ApiError::conflict(e.to_string()).into_response(),
    };
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => {
            app.rooms.release_session(&claims.room, &claims.sub);
            return ApiError::bad_request(format!("{}; connect with a WebSocket client", rejection.body_text())).into_response();
        }
    };
    let worker = app.workers[room.worker].clone();
    ws.max_message_size(MAX_FRAME_BYTES)
        .max_frame_size(MAX_FRAME_BYTES)
        .on_upgrade(move |socket| async move {
            run(socket, claims.clone(), worker, app.clone()).await;
            app.rooms.end_session(&claims.room, &claims.sub);
        })
}

async fn run(socket: WebSocket, claims: Claims, worker: WorkerHandle, app: AppState) {
    let room = claims.room.clone();
    let participant = claims.sub.clone();
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<ServerMsg>();
    let (mut sink, mut stream) = socket.split();
    let info = ParticipantInfo { id: participant.clone(), name: claims.name.clone() };
    if !worker.send(Command::Join { room: room.clone(), info, out: out_tx.clone() }) {
        let msg = ServerMsg::fatal(ErrorCode::Internal, "the media worker for this room is down; try again shortly");
        let _ = sink.send(Message::Text(to_json(&msg).into())).await;
        return;
    }
    tracing::info!(%room, %participant, "signaling session open");
    loop {
        tokio::select! {
            out = out_rx.recv() => {
                let Some(msg) = out else { break };
                let fatal = matches!(msg, ServerMsg::Error { fatal: true, .. });
                if let ServerMsg::ProducerAdded { producer } = &msg {
                    if producer.participant_id == participant {
                        auto_broadcast(&app, &room, &worker);
                    }
                }
                if sink.send(Message::Text(to_json(&msg).into())).await.is_err() {
                    break;
                }
                if fatal {
                    let _ = sink.send(Message::Close(Some(CloseFrame { code: close_code::POLICY, reason: "session ended by the server".into() }))).await;
                    break;
                }
            }
            frame = stream.next() => {
                let reply = match frame {
                    Some(Ok(Message::Text(text))) => match parse_client_msg(text.as_str()) {
                        Ok(ClientMsg::Leave) => break,
                        Ok(msg) => {
                            worker.send(Command::Signal { room: room.clone(), participant: participant.clone(), msg });
                            None
                        }
                        Err(err) => Some(err),
                    },
                    Some(Ok(Message::Binary(b))) if b.len() > MAX_MESSAGE_BYTES => Some(ServerMsg::error(ErrorCode::TooLarge, format!("message is {} bytes; the limit is {MAX_MESSAGE_BYTES}", b.len()))),
                    Some(Ok(Message::Binary(_))) => Some(ServerMsg::error(ErrorCode::BinaryNotSupported, "send JSON text frames")),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => None,
                    Some(Ok(Message::Close(_))) | None => break,
                    Some(Err(e)) => {
                        tracing::info!(%room, %participant, error = %e, "signaling socket failed");
                        break;
                    }
                };
                if let Some(err) = reply {
                    tracing::debug!(%room, %participant, ?err, "rejected a signaling message");
                    let _ = out_tx.send(err);
                }
            }
        }
    }
    worker.send(Command::Leave { room: room.clone(), participant: participant.clone() });
    tracing::info!(%room, %participant, "signaling session closed");
}

/// Rooms created with `auto_broadcast` go live when someone first publishes.
fn auto_broadcast(app: &AppState, room: &str, worker: &WorkerHandle) {
    let wanted = app.rooms.get(room).is_some_and(|r| r.auto_broadcast);
    if wanted && app.broadcasts.state(room) == BroadcastState::Stopped && app.broadcasts.start(room, worker.clone()).is_ok() {
        tracing::info!(%room, "broadcast started automatically: first producer");
    }
}

fn to_json(msg: &ServerMsg) -> String {
    serde_json::to_string(msg).expect("server messages serialize")
}
