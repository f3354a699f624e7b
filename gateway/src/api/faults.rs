//! Test-only faults over HTTP (built with the `fault-injection` feature, and answered only
//! with `--fault-injection`): `POST /api/ops/faults/blackhole` makes the SFU drop a
//! participant's datagrams, all or some, as if its network broke.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;

use super::error::{ApiError, ApiErrorCode};
use crate::state::AppState;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlackholeBody {
    room: String,
    participant_id: String,
    /// How long to drop the participant's media; at most a minute.
    ms: u64,
    /// Drop only this share of the datagrams (1–100; default 100, a blackhole): packet loss
    /// that NACK/RTX must repair.
    #[serde(default)]
    loss_percent: Option<u8>,
    /// Only `to_participant` (its downlink) or `from_participant` (its uplink); default both.
    #[serde(default)]
    only: Option<crate::sfu::netfault::Way>,
}

/// `POST /api/ops/faults/blackhole` (only with `--fault-injection`, for tests): the SFU drops
/// every datagram to and from one participant for `ms`, as if its network broke while its
/// signaling socket stays up; with `loss_percent`, only that share of them (lossy network).
pub async fn blackhole(
    State(app): State<AppState>,
    body: Result<Json<BlackholeBody>, axum::extract::rejection::JsonRejection>,
) -> Result<StatusCode, ApiError> {
    if !app.config.fault_injection {
        return Err(ApiError::new(ApiErrorCode::NotFound, "fault injection is off (tests start the gateway with --fault-injection)"));
    }
    let Json(body) = body?;
    if body.ms == 0 || body.ms > 60_000 {
        return Err(ApiError::bad_request("ms must be 1..=60000"));
    }
    let loss_percent = body.loss_percent.unwrap_or(100);
    if !(1..=100).contains(&loss_percent) {
        return Err(ApiError::bad_request("loss_percent must be 1..=100 (100, the default, drops everything)"));
    }
    let room = app.rooms.get(&body.room).ok_or_else(ApiError::room_not_found)?;
    let (reply, found) = tokio::sync::oneshot::channel();
    let until = std::time::Instant::now() + std::time::Duration::from_millis(body.ms);
    let fault = crate::sfu::Command::NetFault {
        room: body.room.clone(),
        participant: body.participant_id.clone(),
        until,
        loss_per_mille: u16::from(loss_percent) * 10,
        only: body.only,
        reply,
    };
    if app.workers[room.worker].send(fault) && found.await.unwrap_or(false) {
        tracing::warn!(room = %body.room, participant = %body.participant_id, ms = body.ms, loss_percent, "fault injected: the participant's media is dropped");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::new(ApiErrorCode::ParticipantNotFound, format!("nobody with id {:?} is in room {}", body.participant_id, body.room)))
    }
}
