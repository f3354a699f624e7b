//! API errors: JSON `{error, message}` with the right status; the message says what to do.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into() }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }
    pub fn room_not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "room_not_found", "no such room; create one with POST /api/rooms")
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
    pub fn rate_limited(message: impl Into<String>) -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message)
    }
    pub fn room_full(max: usize) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "room_full",
            format!("the room has its maximum of {max} participants; try again when someone leaves"),
        )
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }
}

impl From<crate::auth::access::Denied> for ApiError {
    fn from(d: crate::auth::access::Denied) -> Self {
        match d {
            crate::auth::access::Denied::Unauthenticated(m) => Self::unauthorized(m),
            crate::auth::access::Denied::Forbidden(m) => Self::forbidden(m),
        }
    }
}

/// Refused invites: each reason its own code, so the web app can say what happened.
impl From<crate::auth::invite::InviteError> for ApiError {
    fn from(e: crate::auth::invite::InviteError) -> Self {
        use crate::auth::invite::InviteError;
        let (status, code) = match e {
            InviteError::Malformed | InviteError::BadSignature | InviteError::Role => (StatusCode::UNAUTHORIZED, "invite_invalid"),
            InviteError::WrongRoom => (StatusCode::FORBIDDEN, "invite_wrong_room"),
            InviteError::Expired => (StatusCode::GONE, "invite_expired"),
            InviteError::Exhausted { .. } => (StatusCode::GONE, "invite_exhausted"),
        };
        Self::new(status, code, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(serde_json::json!({"error": self.code, "message": self.message}))).into_response()
    }
}

/// Turns axum's JSON extractor rejections (bad JSON, wrong content type, too large) into our shape.
impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(r: axum::extract::rejection::JsonRejection) -> Self {
        let (status, code) = match r.status() {
            StatusCode::PAYLOAD_TOO_LARGE => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
            // Syntax and schema errors alike (axum says 422 for the latter): the request is bad.
            _ => (StatusCode::BAD_REQUEST, "bad_request"),
        };
        Self::new(status, code, format!("{}; send a JSON body with Content-Type: application/json", r.body_text()))
    }
}
