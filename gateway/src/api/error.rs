//! API errors: JSON `{error, message}` with the right status; the message says what to do.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

/// Every error code the HTTP API answers with, as `{"error": "<code>", "message": "..."}`.
/// Each code has one HTTP status. `docs/protocol.md` lists them all (a test keeps the two in
/// step), so clients can branch on the code and show the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApiErrorCode {
    /// 400: the request's body or parameters are wrong (the message says which).
    BadRequest,
    /// 401: no credentials, or a token that is wrong or expired.
    Unauthorized,
    /// 403: valid credentials that do not allow this (another room, too small a role).
    Forbidden,
    /// 404: no such API endpoint.
    NotFound,
    /// 404: no such room (or it has ended).
    RoomNotFound,
    /// 404: nobody with that participant id is in the room.
    ParticipantNotFound,
    /// 409: the request conflicts with the current state (e.g. a broadcast already live).
    Conflict,
    /// 409: the room has its maximum number of participants.
    RoomFull,
    /// 409: an end-to-end encrypted room cannot be broadcast (the gateway cannot see its media).
    E2eeRoom,
    /// 401: an invite that does not parse, carries a bad signature or an unknown role.
    InviteInvalid,
    /// 403: an invite for another room.
    InviteWrongRoom,
    /// 410: an invite past its expiry.
    InviteExpired,
    /// 410: an invite whose uses are all taken.
    InviteExhausted,
    /// 413: the request body is too large.
    TooLarge,
    /// 415: the body is not `application/json`.
    UnsupportedMediaType,
    /// 429: too many requests; wait and retry.
    RateLimited,
    /// 503: the node cannot serve this now (its store is down, a part is not set up).
    Unavailable,
    /// 503: the node is draining (a deploy) and takes no new rooms, joins or broadcasts.
    Draining,
    /// 421: in a cluster, the room lives on another node (the message names it); join again
    /// through any node to be sent there.
    WrongNode,
}

impl ApiErrorCode {
    /// Every code, for the documentation test.
    pub const ALL: [ApiErrorCode; 19] = [
        Self::BadRequest,
        Self::Unauthorized,
        Self::Forbidden,
        Self::NotFound,
        Self::RoomNotFound,
        Self::ParticipantNotFound,
        Self::Conflict,
        Self::RoomFull,
        Self::E2eeRoom,
        Self::InviteInvalid,
        Self::InviteWrongRoom,
        Self::InviteExpired,
        Self::InviteExhausted,
        Self::TooLarge,
        Self::UnsupportedMediaType,
        Self::RateLimited,
        Self::Unavailable,
        Self::Draining,
        Self::WrongNode,
    ];

    /// The code as it goes on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::RoomNotFound => "room_not_found",
            Self::ParticipantNotFound => "participant_not_found",
            Self::Conflict => "conflict",
            Self::RoomFull => "room_full",
            Self::E2eeRoom => "e2ee_room",
            Self::InviteInvalid => "invite_invalid",
            Self::InviteWrongRoom => "invite_wrong_room",
            Self::InviteExpired => "invite_expired",
            Self::InviteExhausted => "invite_exhausted",
            Self::TooLarge => "too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::RateLimited => "rate_limited",
            Self::Unavailable => "unavailable",
            Self::Draining => "draining",
            Self::WrongNode => "wrong_node",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            Self::BadRequest => StatusCode::BAD_REQUEST,
            Self::Unauthorized | Self::InviteInvalid => StatusCode::UNAUTHORIZED,
            Self::Forbidden | Self::InviteWrongRoom => StatusCode::FORBIDDEN,
            Self::NotFound | Self::RoomNotFound | Self::ParticipantNotFound => StatusCode::NOT_FOUND,
            Self::Conflict | Self::RoomFull | Self::E2eeRoom => StatusCode::CONFLICT,
            Self::InviteExpired | Self::InviteExhausted => StatusCode::GONE,
            Self::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable | Self::Draining => StatusCode::SERVICE_UNAVAILABLE,
            Self::WrongNode => StatusCode::MISDIRECTED_REQUEST,
        }
    }
}

/// An API error: its code (which fixes the status) and a message that says what to do.
#[derive(Debug)]
pub struct ApiError {
    pub code: ApiErrorCode,
    pub message: String,
}

/// The JSON body of every API error.
#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'static str,
    message: &'a str,
}

impl ApiError {
    pub fn new(code: ApiErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
    pub fn status(&self) -> StatusCode {
        self.code.status()
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ApiErrorCode::BadRequest, message)
    }
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(ApiErrorCode::Unauthorized, message)
    }
    pub fn room_not_found() -> Self {
        Self::new(ApiErrorCode::RoomNotFound, "no such room; create one with POST /api/rooms")
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ApiErrorCode::Conflict, message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ApiErrorCode::Forbidden, message)
    }
    pub fn rate_limited(message: impl Into<String>) -> Self {
        Self::new(ApiErrorCode::RateLimited, message)
    }
    pub fn room_full(max: usize) -> Self {
        Self::new(ApiErrorCode::RoomFull, format!("the room has its maximum of {max} participants; try again when someone leaves"))
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ApiErrorCode::Unavailable, message)
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
        let code = match e {
            InviteError::Malformed | InviteError::BadSignature | InviteError::Role => ApiErrorCode::InviteInvalid,
            InviteError::WrongRoom => ApiErrorCode::InviteWrongRoom,
            InviteError::Expired => ApiErrorCode::InviteExpired,
            InviteError::Exhausted { .. } => ApiErrorCode::InviteExhausted,
        };
        Self::new(code, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status(), Json(ErrorBody { error: self.code.as_str(), message: &self.message })).into_response()
    }
}

/// Turns axum's JSON extractor rejections (bad JSON, wrong content type, too large) into our shape.
impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(r: axum::extract::rejection::JsonRejection) -> Self {
        let code = match r.status() {
            StatusCode::PAYLOAD_TOO_LARGE => ApiErrorCode::TooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiErrorCode::UnsupportedMediaType,
            // Syntax and schema errors alike (axum says 422 for the latter): the request is bad.
            _ => ApiErrorCode::BadRequest,
        };
        Self::new(code, format!("{}; send a JSON body with Content-Type: application/json", r.body_text()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One surface's codes: distinct, snake_case, error statuses, each a row of its table in
    /// docs/protocol.md (`| \`code\` | status |`).
    fn check_documented(surface: &str, codes: &[(&'static str, StatusCode)]) {
        let doc = include_str!("../../../docs/protocol.md");
        let mut seen = std::collections::HashSet::new();
        for (s, status) in codes {
            assert!(seen.insert(s), "{surface}: {s} twice");
            assert!(s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'), "{surface}: {s}");
            assert!(status.is_client_error() || status.is_server_error(), "{surface}: {s}");
            let row = format!("| `{s}` | {} |", status.as_u16());
            assert!(doc.contains(&row), "docs/protocol.md has no row {row:?} in its {surface} error table");
        }
    }

    #[test]
    fn api_and_hls_codes_are_distinct_snake_case_and_in_the_protocol_document() {
        check_documented("API", &ApiErrorCode::ALL.map(|c| (c.as_str(), c.status())));
        check_documented("HLS", &hls_out::routes::HlsErrorCode::ALL.map(|c| (c.as_str(), c.status())));
    }

    #[tokio::test]
    async fn the_body_is_the_code_and_the_message() {
        let response = ApiError::room_full(2).into_response();
        assert_eq!(response.status(), StatusCode::CONFLICT);
        let body = axum::body::to_bytes(response.into_body(), 1024).await.unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"], "room_full");
        assert!(v["message"].as_str().unwrap().contains("maximum of 2"));
    }
}
