//! The signaling protocol (v1, see docs/protocol.md): every message a client and the server
//! exchange on the WebSocket, and their validation. Below the SFU and the session, which both
//! speak it.
//!
//! Parsing is a plain function over text so every bad-input case is unit-tested without sockets.

use serde::{Deserialize, Serialize};

pub const PROTOCOL_VERSION: u32 = 1;
/// Frames larger than this are refused with `too_large` (the session stays open).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// Which of the participant's two PeerConnections a message is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PcRole {
    Publish,
    Subscribe,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMsg {
    PublishOffer {
        sdp: String,
    },
    SubscribeAnswer {
        sdp: String,
    },
    Candidate {
        pc: PcRole,
        candidate: String,
        #[serde(default)]
        sdp_mid: Option<String>,
    },
    Leave,
    /// A chat message to everyone in the room.
    Chat {
        text: String,
    },
    /// An emoji reaction shown briefly to everyone.
    Reaction {
        emoji: String,
    },
    /// The sender's microphone/camera mute state, shown on its tile by the others.
    MediaState {
        audio_muted: bool,
        video_muted: bool,
    },
    /// Ask for a fresh token (same room, participant and role) before this one expires.
    RefreshToken,
    /// Host only: remove another participant from the room.
    RemoveParticipant {
        participant_id: String,
    },
    /// How tall the sender shows a remote video: the SFU sends the tallest simulcast layer that
    /// fits (at least the lowest); 0 pauses that video.
    LayerPreference {
        producer_id: String,
        max_height: u32,
    },
    /// The subscribe connection's media broke while signaling works: the server sends a new
    /// `subscribe_offer` with fresh ICE credentials. (The publish side restarts by offering.)
    IceRestart,
}

pub const MAX_CHAT_CHARS: usize = 2000;
pub const MAX_EMOJI_CHARS: usize = 16;

impl ClientMsg {
    /// The message's `type`, for logs (never its content: SDPs and chat stay out of them).
    pub fn kind(&self) -> &'static str {
        match self {
            ClientMsg::PublishOffer { .. } => "publish_offer",
            ClientMsg::SubscribeAnswer { .. } => "subscribe_answer",
            ClientMsg::Candidate { .. } => "candidate",
            ClientMsg::Leave => "leave",
            ClientMsg::Chat { .. } => "chat",
            ClientMsg::Reaction { .. } => "reaction",
            ClientMsg::MediaState { .. } => "media_state",
            ClientMsg::RefreshToken => "refresh_token",
            ClientMsg::RemoveParticipant { .. } => "remove_participant",
            ClientMsg::LayerPreference { .. } => "layer_preference",
            ClientMsg::IceRestart => "ice_restart",
        }
    }

    /// Checks the limits serde cannot express.
    fn validate(self) -> Result<Self, ServerMsg> {
        match &self {
            ClientMsg::Chat { text } if text.trim().is_empty() || text.chars().count() > MAX_CHAT_CHARS => {
                Err(ServerMsg::error(ErrorCode::Malformed, format!("chat: the text must have 1 to {MAX_CHAT_CHARS} characters")))
            }
            ClientMsg::Reaction { emoji }
                if emoji.is_empty() || emoji.chars().count() > MAX_EMOJI_CHARS || emoji.chars().any(char::is_control) =>
            {
                Err(ServerMsg::error(ErrorCode::Malformed, format!("reaction: send one emoji (at most {MAX_EMOJI_CHARS} characters)")))
            }
            _ => Ok(self),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantInfo {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub audio_muted: bool,
    #[serde(default)]
    pub video_muted: bool,
}

impl ParticipantInfo {
    pub fn new(id: impl Into<String>, name: impl Into<String>) -> Self {
        Self { id: id.into(), name: name.into(), audio_muted: false, video_muted: false }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerInfo {
    pub id: String,
    pub participant_id: String,
    pub kind: MediaKindName,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaKindName {
    Audio,
    Video,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackInfo {
    pub mid: String,
    pub producer_id: String,
    pub participant_id: String,
    pub kind: MediaKindName,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMsg {
    Welcome {
        protocol: u32,
        room_id: String,
        participant_id: String,
        participants: Vec<ParticipantInfo>,
        producers: Vec<ProducerInfo>,
        /// stopped | starting | live | restarting | failed
        broadcast: String,
    },
    /// The room's broadcast changed state.
    BroadcastState {
        state: String,
    },
    Chat {
        participant_id: String,
        name: String,
        text: String,
        ts: u64,
    },
    Reaction {
        participant_id: String,
        emoji: String,
    },
    MediaState {
        participant_id: String,
        audio_muted: bool,
        video_muted: bool,
    },
    /// The media server for this room restarted: close both PeerConnections; a new `welcome`
    /// follows on this socket, then publish again as after the first one.
    Reconnect {
        reason: String,
    },
    /// You were removed from the room by its host; the server closes the socket next and the
    /// join token is used up.
    Removed {
        reason: String,
    },
    /// A fresh token (answer to `refresh_token`).
    Token {
        token: String,
        expires_in: u64,
    },
    PublishAnswer {
        sdp: String,
    },
    SubscribeOffer {
        sdp: String,
        tracks: Vec<TrackInfo>,
    },
    /// The server's candidate: `sdp_mid` is the first m-line's mid of that connection's SDP
    /// (one candidate serves the whole bundle), `sdp_mline_index` is 0.
    Candidate {
        pc: PcRole,
        candidate: String,
        sdp_mid: Option<String>,
        #[serde(default)]
        sdp_mline_index: u32,
    },
    ParticipantJoined {
        participant: ParticipantInfo,
    },
    ParticipantLeft {
        participant_id: String,
    },
    ProducerAdded {
        producer: ProducerInfo,
    },
    ProducerRemoved {
        producer_id: String,
        participant_id: String,
    },
    Error {
        code: ErrorCode,
        message: String,
        fatal: bool,
    },
}

impl ServerMsg {
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        ServerMsg::Error { code, message: message.into(), fatal: false }
    }
    pub fn fatal(code: ErrorCode, message: impl Into<String>) -> Self {
        ServerMsg::Error { code, message: message.into(), fatal: true }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    Malformed,
    UnknownType,
    TooLarge,
    BinaryNotSupported,
    BadSdp,
    BadState,
    BadCandidate,
    RoomClosed,
    RateLimited,
    /// The token's role may not do that (e.g. `remove_participant` without the host role).
    Forbidden,
    /// `remove_participant` named nobody in the room.
    UnknownParticipant,
    /// A producer's codec is not in this client's answer: that track cannot be sent to it.
    UnsupportedCodec,
    Internal,
}

const KNOWN_TYPES: &[&str] = &[
    "publish_offer",
    "subscribe_answer",
    "candidate",
    "leave",
    "chat",
    "reaction",
    "media_state",
    "refresh_token",
    "remove_participant",
    "layer_preference",
    "ice_restart",
];

/// Parses one text frame. The error is the `error` message to send back.
pub fn parse_client_msg(text: &str) -> Result<ClientMsg, ServerMsg> {
    if text.len() > MAX_MESSAGE_BYTES {
        return Err(ServerMsg::error(ErrorCode::TooLarge, format!("message is {} bytes; the limit is {MAX_MESSAGE_BYTES}", text.len())));
    }
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| ServerMsg::error(ErrorCode::Malformed, format!("not valid JSON: {e}")))?;
    let Some(kind) = value.get("type").and_then(|t| t.as_str()) else {
        return Err(ServerMsg::error(ErrorCode::Malformed, "every message needs a string field `type` (see docs/protocol.md)"));
    };
    if !KNOWN_TYPES.contains(&kind) {
        return Err(ServerMsg::error(
            ErrorCode::UnknownType,
            format!("unknown message type `{kind}`; known types: {}", KNOWN_TYPES.join(", ")),
        ));
    }
    let kind = kind.to_owned();
    serde_json::from_value::<ClientMsg>(value)
        .map_err(|e| ServerMsg::error(ErrorCode::Malformed, format!("`{kind}` message: {e}")))?
        .validate()
}

/// Each m-line's mid (its first `a=mid:` before the next `m=`), in order; `None` for an m-line
/// without one (or with an empty one). Session-level lines before the first `m=` do not count.
fn mline_mids(sdp: &str) -> Vec<Option<&str>> {
    let mut mids: Vec<Option<&str>> = Vec::new();
    for line in sdp.lines() {
        if line.starts_with("m=") {
            mids.push(None);
        } else if let (Some(mid), Some(slot @ None)) = (line.strip_prefix("a=mid:"), mids.last_mut()) {
            *slot = Some(mid.trim()).filter(|m| !m.is_empty());
        }
    }
    mids
}

/// The mid of every m-line of `sdp` that has one, in order.
pub fn media_mids(sdp: &str) -> Vec<String> {
    mline_mids(sdp).into_iter().flatten().map(str::to_owned).collect()
}

/// The mid of an SDP's first m-line, if it has one.
pub fn first_mid(sdp: &str) -> Option<String> {
    mline_mids(sdp).first().copied().flatten().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(r: Result<ClientMsg, ServerMsg>) -> ErrorCode {
        match r {
            Err(ServerMsg::Error { code, fatal: false, .. }) => code,
            other => panic!("expected a non-fatal error, got {other:?}"),
        }
    }

    #[test]
    fn parses_documented_examples() {
        assert_eq!(parse_client_msg(r#"{"type":"publish_offer","sdp":"v=0"}"#).unwrap(), ClientMsg::PublishOffer { sdp: "v=0".into() });
        assert_eq!(
            parse_client_msg(r#"{"type":"candidate","pc":"publish","candidate":"candidate:1 1 udp 1 127.0.0.1 5 typ host","sdp_mid":"0"}"#)
                .unwrap(),
            ClientMsg::Candidate {
                pc: PcRole::Publish,
                candidate: "candidate:1 1 udp 1 127.0.0.1 5 typ host".into(),
                sdp_mid: Some("0".into())
            }
        );
        assert_eq!(parse_client_msg(r#"{"type":"leave"}"#).unwrap(), ClientMsg::Leave);
        assert_eq!(parse_client_msg(r#"{"type":"chat","text":"hi"}"#).unwrap(), ClientMsg::Chat { text: "hi".into() });
        assert_eq!(
            parse_client_msg(r#"{"type":"media_state","audio_muted":true,"video_muted":false}"#).unwrap(),
            ClientMsg::MediaState { audio_muted: true, video_muted: false }
        );
        assert_eq!(
            parse_client_msg(r#"{"type":"remove_participant","participant_id":"p-2"}"#).unwrap(),
            ClientMsg::RemoveParticipant { participant_id: "p-2".into() }
        );
        assert!(parse_client_msg(r#"{"type":"remove_participant"}"#).is_err(), "the id is required");
        assert_eq!(
            parse_client_msg(r#"{"type":"layer_preference","producer_id":"p-1:1","max_height":360}"#).unwrap(),
            ClientMsg::LayerPreference { producer_id: "p-1:1".into(), max_height: 360 }
        );
        assert!(parse_client_msg(r#"{"type":"layer_preference","producer_id":"p-1:1","max_height":-1}"#).is_err());
        assert_eq!(parse_client_msg(r#"{"type":"ice_restart"}"#).unwrap(), ClientMsg::IceRestart);
    }

    #[test]
    fn rejects_bad_input_with_the_right_code() {
        assert_eq!(code(parse_client_msg("{not json")), ErrorCode::Malformed);
        assert_eq!(code(parse_client_msg(r#"{"sdp":"x"}"#)), ErrorCode::Malformed);
        assert_eq!(code(parse_client_msg(r#"{"type":7}"#)), ErrorCode::Malformed);
        assert_eq!(code(parse_client_msg(r#"{"type":"dance"}"#)), ErrorCode::UnknownType);
        assert_eq!(code(parse_client_msg(r#"{"type":"publish_offer"}"#)), ErrorCode::Malformed);
        assert_eq!(code(parse_client_msg(r#"{"type":"candidate","pc":"sideways","candidate":""}"#)), ErrorCode::Malformed);
        let big = format!(r#"{{"type":"publish_offer","sdp":"{}"}}"#, "a".repeat(MAX_MESSAGE_BYTES));
        assert_eq!(code(parse_client_msg(&big)), ErrorCode::TooLarge);
        assert_eq!(code(parse_client_msg(r#"{"type":"chat","text":"   "}"#)), ErrorCode::Malformed);
        let long = format!(r#"{{"type":"chat","text":"{}"}}"#, "x".repeat(MAX_CHAT_CHARS + 1));
        assert_eq!(code(parse_client_msg(&long)), ErrorCode::Malformed);
        assert_eq!(code(parse_client_msg(r#"{"type":"reaction","emoji":"a very long reaction text"}"#)), ErrorCode::Malformed);
    }

    #[test]
    fn server_messages_serialize_with_type_tags() {
        let json = serde_json::to_value(ServerMsg::ParticipantLeft { participant_id: "p-1".into() }).unwrap();
        assert_eq!(json, serde_json::json!({"type": "participant_left", "participant_id": "p-1"}));
        let json = serde_json::to_value(ServerMsg::error(ErrorCode::BadSdp, "x")).unwrap();
        assert_eq!(json, serde_json::json!({"type": "error", "code": "bad_sdp", "message": "x", "fatal": false}));
        let candidate = ServerMsg::Candidate {
            pc: PcRole::Subscribe,
            candidate: "candidate:1 1 udp 1 127.0.0.1 5 typ host".into(),
            sdp_mid: Some("0".into()),
            sdp_mline_index: 0,
        };
        let json = serde_json::to_value(candidate).unwrap();
        assert_eq!((json["sdp_mid"].as_str(), json["sdp_mline_index"].as_u64()), (Some("0"), Some(0)), "{json}");
    }

    #[test]
    fn every_mid_of_an_sdp() {
        let chrome = "v=0\r\na=group:BUNDLE 0 1\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\n\
            m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:1\r\nm=video 9 x\r\na=sendonly\r\n";
        assert_eq!(media_mids(chrome), vec!["0", "1"], "a session-level group is no mid; an m-line without one is skipped");
        assert_eq!(media_mids("v=0\na=mid:nope\n"), Vec::<String>::new());
    }

    #[test]
    fn first_mid_of_an_sdp() {
        let chrome = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n\
            m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendonly\r\n\
            m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\n";
        assert_eq!(first_mid(chrome).as_deref(), Some("0"));
        // Firefox-style mids, \n line ends, a session-level a=mid is not an m-line's.
        assert_eq!(
            first_mid("v=0\na=mid:nope\nm=video 9 UDP/TLS/RTP/SAVPF 96\na=mid:{abc}\nm=audio 9 x\na=mid:x\n").as_deref(),
            Some("{abc}")
        );
        assert_eq!(first_mid("v=0\r\nm=audio 9 x\r\na=sendonly\r\nm=video 9 x\r\na=mid:1\r\n"), None, "the first m-line has no mid");
        assert_eq!(first_mid("v=0\r\ns=-\r\n"), None, "no m-lines");
        assert_eq!(first_mid("v=0\r\nm=audio 9 x\r\na=mid:\r\n"), None, "an empty mid");
    }
}
