//! One participant's signaling session on its WebSocket (opened by `api::signaling` once its
//! join token checked out).
//! It validates frames, relays requests to the room's SFU worker and relays the worker's
//! messages back. A bad frame gets an `error` back and changes nothing else.

use axum::extract::ws::{close_code, CloseFrame, Message, WebSocket};
use futures_util::{SinkExt, StreamExt};

use crate::auth::role::Role;
use crate::auth::token::{Claims, JOIN_TOKEN_TTL};
use crate::broadcast::policy::BroadcastState;
use crate::clock::unix_now;
use crate::outbox;
use crate::protocol::{parse_client_msg, ClientMsg, ErrorCode, ParticipantInfo, ServerMsg, MAX_MESSAGE_BYTES};
use crate::sfu::{Command, WorkerHandle};
use crate::state::AppState;
use crate::store::Write;

/// How long a closing session (shutdown) waits for the client to answer its close frame.
const CLOSE_HANDSHAKE_WAIT: std::time::Duration = std::time::Duration::from_secs(1);
/// A socket that takes no message for this long has a client that stopped reading (its TCP
/// window stayed shut): the session ends rather than holding its messages.
const SEND_STALL: std::time::Duration = std::time::Duration::from_secs(10);

pub async fn run(socket: WebSocket, claims: Claims, worker: WorkerHandle, app: AppState) {
    let room = claims.room.clone();
    let participant = claims.sub.clone();
    let (out_tx, mut out_rx) = outbox::outbox(outbox::CAPACITY);
    let overflowed = out_rx.overflow_signal();
    let (mut sink, mut stream) = socket.split();
    let info = ParticipantInfo::new(participant.clone(), claims.name.clone());
    if !worker.send(Command::Join { room: room.clone(), info, out: out_tx.clone() }) {
        let msg = ServerMsg::fatal(ErrorCode::Internal, "the media worker for this room is down; try again shortly");
        let _ = sink.send(Message::Text(to_json(&msg).into())).await;
        return;
    }
    tracing::info!(%room, %participant, "signaling session open");
    let mut generation = worker.generation();
    let per_second = f64::from(app.config.messages_per_second.max(1));
    let mut rate = crate::limits::TokenBucket::new(per_second, per_second * 2.0, std::time::Instant::now());
    let mut watchdog = tokio::time::interval(std::time::Duration::from_millis(100));
    let closing = app.node.closing();
    tokio::pin!(closing);
    let moved = app.rooms.moved(&room);
    tokio::pin!(moved);
    loop {
        tokio::select! {
            why = async {
                tokio::select! {
                    () = &mut closing => "the server is restarting; reconnect in a moment",
                    () = &mut moved => "the room moved to another node; reconnect in a moment",
                }
            } => {
                // Shutdown (SIGTERM, a deploy), or the room is another node's now (a cluster):
                // 1012 "service restart" tells the client to re-join with backoff, which
                // reaches this node again, its replacement, or the room's node.
                tracing::info!(%room, %participant, why, "closing the signaling session");
                let close = CloseFrame { code: close_code::RESTART, reason: why.into() };
                if sink.send(Message::Close(Some(close))).await.is_ok() {
                    // The closing handshake: wait for the client's close, so the socket is not
                    // reset (losing our close frame) when the process exits right after.
                    let _ = tokio::time::timeout(CLOSE_HANDSHAKE_WAIT, async {
                        while let Some(Ok(frame)) = stream.next().await {
                            if matches!(frame, Message::Close(_)) {
                                break;
                            }
                        }
                    })
                    .await;
                }
                break;
            }
            _ = watchdog.tick() => {
                // The room's SFU worker was replaced: its media state is gone. Tell the client
                // to drop its PeerConnections and join the new worker on this same socket.
                let now = worker.generation();
                if now != generation && worker.is_alive() {
                    generation = now;
                    tracing::info!(%room, %participant, "rejoining the restarted SFU worker");
                    let reconnect = ServerMsg::Reconnect { reason: "the media server restarted; reconnecting".into() };
                    if sink.send(Message::Text(to_json(&reconnect).into())).await.is_err() {
                        break;
                    }
                    let info = ParticipantInfo::new(participant.clone(), claims.name.clone());
                    worker.send(Command::Join { room: room.clone(), info, out: out_tx.clone() });
                }
            }
            () = overflowed.raised() => {
                // The client stopped reading: its messages would pile up here without end.
                not_reading(&room, &participant, out_rx.len());
                let close = CloseFrame { code: close_code::AGAIN, reason: "too many messages waiting for this client; reconnect".into() };
                let _ = tokio::time::timeout(CLOSE_HANDSHAKE_WAIT, sink.send(Message::Close(Some(close)))).await;
                break;
            }
            out = out_rx.recv() => {
                let Some(msg) = out else { break };
                let fatal = matches!(msg, ServerMsg::Error { fatal: true, .. } | ServerMsg::Removed { .. });
                if let ServerMsg::ProducerAdded { producer } = &msg {
                    if producer.participant_id == participant {
                        publisher_appeared(&app, &room, &worker);
                    }
                }
                // A client that stopped reading blocks this send (its TCP window is shut): the
                // session ends when its queue overflows meanwhile, or after SEND_STALL.
                tokio::select! {
                    sent = sink.send(Message::Text(to_json(&msg).into())) => if sent.is_err() { break },
                    () = overflowed.raised() => {
                        not_reading(&room, &participant, out_rx.len());
                        break;
                    }
                    () = tokio::time::sleep(SEND_STALL) => {
                        tracing::warn!(%room, %participant, stalled_secs = SEND_STALL.as_secs(), "signaling client took no message for a while; closing its session (it may reconnect)");
                        break;
                    }
                }
                if fatal {
                    let _ = sink.send(Message::Close(Some(CloseFrame { code: close_code::POLICY, reason: "session ended by the server".into() }))).await;
                    break;
                }
            }
            frame = stream.next() => {
                let counts = matches!(frame, Some(Ok(Message::Text(_) | Message::Binary(_))));
                if counts && !rate.try_take(std::time::Instant::now()) {
                    out_tx.send(ServerMsg::error(ErrorCode::RateLimited, format!("more than {} messages a second; this one was dropped, slow down", app.config.messages_per_second)));
                    continue;
                }
                let reply = match frame {
                    Some(Ok(Message::Text(text))) => match parse_client_msg(text.as_str()) {
                        Ok(ClientMsg::Leave) => break,
                        Ok(ClientMsg::RefreshToken) => {
                            let token = app.tokens.mint(&room, &participant, &claims.name, claims.role, JOIN_TOKEN_TTL);
                            Some(ServerMsg::Token { token, expires_in: JOIN_TOKEN_TTL.as_secs() })
                        }
                        Ok(ClientMsg::RemoveParticipant { participant_id }) => remove_by_host(&worker, &claims, &participant_id).await,
                        Ok(ClientMsg::PublishOffer { .. }) if !crate::auth::access::may_publish(claims.role) => {
                            Some(ServerMsg::error(ErrorCode::Forbidden, "this token only subscribes; join with a publisher role to send media"))
                        }
                        Ok(msg) => {
                            tracing::trace!(%room, %participant, kind = msg.kind(), "client message");
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
                    out_tx.send(err);
                }
            }
        }
    }
    let (done, gone) = tokio::sync::oneshot::channel();
    if worker.send(Command::Leave { room: room.clone(), participant: participant.clone(), done: Some(done) }) {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), gone).await;
    }
    tracing::info!(%room, %participant, "signaling session closed");
}

/// The log line of a session closed because its client stopped reading.
fn not_reading(room: &str, participant: &str, queued: usize) {
    tracing::warn!(%room, %participant, queued, "signaling client is not reading its messages; closing its session (it may reconnect)");
}

/// `remove_participant` from a signaling session: hosts only, never oneself. `None` when done
/// (everyone, the host included, hears `participant_left`).
async fn remove_by_host(worker: &WorkerHandle, claims: &Claims, target: &str) -> Option<ServerMsg> {
    if claims.role != Role::Host {
        return Some(ServerMsg::error(ErrorCode::Forbidden, "only the room's host may remove participants"));
    }
    if target == claims.sub {
        return Some(ServerMsg::error(ErrorCode::Malformed, "to leave, send `leave`; a host cannot remove itself"));
    }
    match remove_participant(worker, &claims.room, target, "the host removed you from the room").await {
        true => None,
        false => Some(ServerMsg::error(ErrorCode::UnknownParticipant, format!("nobody with id {target:?} is in this room"))),
    }
}

/// Asks the room's worker to remove a participant; true if it was there. Its session ends
/// (and its token is used up) when it gets `removed`.
pub async fn remove_participant(worker: &WorkerHandle, room: &str, participant: &str, reason: &str) -> bool {
    let (reply, rx) = tokio::sync::oneshot::channel();
    worker.send(Command::Remove { room: room.to_owned(), participant: participant.to_owned(), reason: reason.to_owned(), reply })
        && rx.await.unwrap_or(false)
}

/// Someone publishes in a room that can be broadcast: the node readies a spare compositor (a
/// broadcast may follow), and a room created with `auto_broadcast` goes live. A draining node
/// starts nothing new.
fn publisher_appeared(app: &AppState, room: &str, worker: &WorkerHandle) {
    let Some(auto) = app.rooms.get(room).filter(|r| !r.settings.e2ee).map(|r| r.settings.auto_broadcast) else { return };
    if app.node.is_draining() {
        return;
    }
    app.broadcasts.prepare();
    if auto && app.broadcasts.state(room) == BroadcastState::Stopped && app.broadcasts.start(room, worker.clone()).is_ok() {
        tracing::info!(%room, "broadcast started automatically: first producer");
        app.rooms.record(Write::BroadcastStarted { room: room.to_owned(), at: unix_now() });
    }
}

/// What the store keeps of this session when it opens.
fn to_json(msg: &ServerMsg) -> String {
    serde_json::to_string(msg).expect("server messages serialize")
}
