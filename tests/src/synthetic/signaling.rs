//! The browser side of docs/protocol.md: the HTTP join and the signaling messages.
//!
//! Message types are the client's own reading of the protocol document (not the gateway's
//! types), so the tests below check the document's examples independently of the server.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// Protocol version this client speaks.
pub const PROTOCOL_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Audio,
    Video,
}

/// Which of the two PeerConnections a candidate belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pc {
    Publish,
    Subscribe,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantInfo {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerInfo {
    pub id: String,
    pub participant_id: String,
    pub kind: Kind,
}

/// One m-line of the subscribe PeerConnection and the producer it carries.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TrackInfo {
    pub mid: String,
    pub producer_id: String,
    pub participant_id: String,
    pub kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    PublishOffer {
        sdp: String,
    },
    SubscribeAnswer {
        sdp: String,
    },
    Candidate {
        pc: Pc,
        candidate: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        sdp_mid: Option<String>,
    },
    Leave,
    /// Microphone/camera state (the broadcast shows a placeholder while the camera is off).
    MediaState {
        audio_muted: bool,
        video_muted: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    Welcome {
        protocol: u32,
        room_id: String,
        participant_id: String,
        participants: Vec<ParticipantInfo>,
        producers: Vec<ProducerInfo>,
        /// State of the room's broadcast (`stopped`, `starting`, `live`, ...).
        #[serde(default)]
        broadcast: Option<String>,
    },
    PublishAnswer {
        sdp: String,
    },
    BroadcastState {
        state: String,
    },
    /// The room's media server restarted: close both PeerConnections; a new `welcome`
    /// follows on the same socket, then publish and subscribe again as after the first one.
    Reconnect {
        reason: String,
    },
    SubscribeOffer {
        sdp: String,
        tracks: Vec<TrackInfo>,
    },
    Candidate {
        pc: Pc,
        candidate: String,
        #[serde(default)]
        sdp_mid: Option<String>,
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
        code: String,
        message: String,
        #[serde(default)]
        fatal: bool,
    },
}

impl ServerMessage {
    /// The `type` tag, for logs.
    pub fn type_name(&self) -> &'static str {
        match self {
            ServerMessage::Welcome { .. } => "welcome",
            ServerMessage::PublishAnswer { .. } => "publish_answer",
            ServerMessage::BroadcastState { .. } => "broadcast_state",
            ServerMessage::Reconnect { .. } => "reconnect",
            ServerMessage::SubscribeOffer { .. } => "subscribe_offer",
            ServerMessage::Candidate { .. } => "candidate",
            ServerMessage::ParticipantJoined { .. } => "participant_joined",
            ServerMessage::ParticipantLeft { .. } => "participant_left",
            ServerMessage::ProducerAdded { .. } => "producer_added",
            ServerMessage::ProducerRemoved { .. } => "producer_removed",
            ServerMessage::Error { .. } => "error",
        }
    }
}

/// Parses one text frame from the server. Unknown or malformed frames are an error for the
/// caller to log; they never end the session.
pub fn parse_server_message(text: &str) -> Result<ServerMessage> {
    serde_json::from_str(text).with_context(|| {
        let head: String = text.chars().take(200).collect();
        format!("server sent a frame this client does not understand: {head}")
    })
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServer {
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// Answer of `POST /api/rooms/{id}/join`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinResponse {
    pub token: String,
    pub participant_id: String,
    pub ws_url: String,
    #[serde(default)]
    pub ice_servers: Vec<IceServer>,
}

/// The WebSocket address to open: `ws_url` as given when absolute, resolved against the HTTP
/// base when it is a path, with `token=` appended if the server left it out.
pub fn resolve_ws_url(base_url: &str, ws_url: &str, token: &str) -> Result<String> {
    let base = base_url.trim_end_matches('/');
    let mut url = if ws_url.starts_with("ws://") || ws_url.starts_with("wss://") {
        ws_url.to_owned()
    } else if let Some(rest) = ws_url
        .strip_prefix("http://")
        .map(|r| format!("ws://{r}"))
        .or_else(|| ws_url.strip_prefix("https://").map(|r| format!("wss://{r}")))
    {
        rest
    } else if ws_url.starts_with('/') {
        let ws_base = if let Some(rest) = base.strip_prefix("http://") {
            format!("ws://{rest}")
        } else if let Some(rest) = base.strip_prefix("https://") {
            format!("wss://{rest}")
        } else {
            bail!("base URL {base_url:?} is not http:// or https://");
        };
        // Keep only scheme://host:port of the base.
        let scheme_end = ws_base.find("://").map(|i| i + 3).unwrap_or(0);
        let host_end = ws_base[scheme_end..].find('/').map(|i| i + scheme_end).unwrap_or(ws_base.len());
        format!("{}{}", &ws_base[..host_end], ws_url)
    } else {
        bail!("ws_url {ws_url:?} is neither absolute nor a path");
    };
    if !url.contains("token=") {
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str("token=");
        url.push_str(&encode_query_value(token));
    }
    Ok(url)
}

fn encode_query_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// `POST {base}/api/rooms/{room_id}/join` with `{"name": name}`.
pub async fn join_room(http: &reqwest::Client, base_url: &str, room_id: &str, name: &str) -> Result<JoinResponse> {
    let url = format!("{}/api/rooms/{}/join", base_url.trim_end_matches('/'), room_id);
    let resp = http.post(&url).json(&serde_json::json!({ "name": name })).send().await.with_context(|| format!("POST {url}"))?;
    let status = resp.status();
    let body = resp.text().await.with_context(|| format!("POST {url}: reading the body"))?;
    if !status.is_success() {
        bail!("POST {url}: {status}: {body}");
    }
    serde_json::from_str(&body).with_context(|| format!("POST {url}: unexpected body {body}"))
}

/// `POST {base}/api/rooms` with `{"name": name}`; returns the room id.
pub async fn create_room(http: &reqwest::Client, base_url: &str, name: &str) -> Result<String> {
    #[derive(Deserialize)]
    struct Created {
        id: String,
    }
    let url = format!("{}/api/rooms", base_url.trim_end_matches('/'));
    let resp = http.post(&url).json(&serde_json::json!({ "name": name })).send().await.with_context(|| format!("POST {url}"))?;
    let status = resp.status();
    let body = resp.text().await.with_context(|| format!("POST {url}: reading the body"))?;
    if !status.is_success() {
        bail!("POST {url}: {status}: {body}");
    }
    let created: Created = serde_json::from_str(&body).with_context(|| format!("POST {url}: unexpected body {body}"))?;
    Ok(created.id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Every server → client example of docs/protocol.md, verbatim (SDP shortened as there).
    #[test]
    fn parses_documented_server_examples() {
        let welcome = parse_server_message(
            r#"{"type": "welcome", "protocol": 1, "room_id": "r-3f2a", "participant_id": "p-81c0",
 "participants": [{"id": "p-11aa", "name": "Ada"}],
 "producers": [{"id": "p-11aa:0", "participant_id": "p-11aa", "kind": "video"}]}"#,
        )
        .unwrap();
        assert_eq!(
            welcome,
            ServerMessage::Welcome {
                protocol: 1,
                room_id: "r-3f2a".into(),
                participant_id: "p-81c0".into(),
                participants: vec![ParticipantInfo { id: "p-11aa".into(), name: "Ada".into() }],
                producers: vec![ProducerInfo { id: "p-11aa:0".into(), participant_id: "p-11aa".into(), kind: Kind::Video }],
                broadcast: None,
            }
        );
        let with_broadcast = parse_server_message(
            r#"{"type": "welcome", "protocol": 1, "room_id": "r-3f2a", "participant_id": "p-81c0",
 "participants": [{"id": "p-11aa", "name": "Ada"}],
 "producers": [{"id": "p-11aa:0", "participant_id": "p-11aa", "kind": "video"}],
 "broadcast": "stopped"}"#,
        )
        .unwrap();
        assert!(matches!(with_broadcast, ServerMessage::Welcome { broadcast: Some(b), .. } if b == "stopped"));
        assert_eq!(
            parse_server_message(r#"{"type": "broadcast_state", "state": "live"}"#).unwrap(),
            ServerMessage::BroadcastState { state: "live".into() }
        );
        assert_eq!(
            parse_server_message(r#"{"type": "reconnect", "reason": "the media server restarted; reconnecting"}"#).unwrap(),
            ServerMessage::Reconnect { reason: "the media server restarted; reconnecting".into() }
        );
        assert_eq!(
            parse_server_message(r#"{"type": "publish_answer", "sdp": "v=0\r\n..."}"#).unwrap(),
            ServerMessage::PublishAnswer { sdp: "v=0\r\n...".into() }
        );
        assert_eq!(
            parse_server_message(
                r#"{"type": "subscribe_offer", "sdp": "v=0\r\n...",
 "tracks": [{"mid": "0", "producer_id": "p-11aa:0", "participant_id": "p-11aa", "kind": "video"}]}"#
            )
            .unwrap(),
            ServerMessage::SubscribeOffer {
                sdp: "v=0\r\n...".into(),
                tracks: vec![TrackInfo {
                    mid: "0".into(),
                    producer_id: "p-11aa:0".into(),
                    participant_id: "p-11aa".into(),
                    kind: Kind::Video
                }]
            }
        );
        assert_eq!(
            parse_server_message(
                r#"{"type": "candidate", "pc": "subscribe", "candidate": "candidate:1 1 udp 2130706175 127.0.0.1 40000 typ host", "sdp_mid": "0"}"#
            )
            .unwrap(),
            ServerMessage::Candidate {
                pc: Pc::Subscribe,
                candidate: "candidate:1 1 udp 2130706175 127.0.0.1 40000 typ host".into(),
                sdp_mid: Some("0".into())
            }
        );
        assert_eq!(
            parse_server_message(r#"{"type": "participant_joined", "participant": {"id": "p-22bb", "name": "Grace"}}"#).unwrap(),
            ServerMessage::ParticipantJoined { participant: ParticipantInfo { id: "p-22bb".into(), name: "Grace".into() } }
        );
        assert_eq!(
            parse_server_message(r#"{"type": "participant_left", "participant_id": "p-22bb"}"#).unwrap(),
            ServerMessage::ParticipantLeft { participant_id: "p-22bb".into() }
        );
        assert_eq!(
            parse_server_message(
                r#"{"type": "producer_added", "producer": {"id": "p-22bb:1", "participant_id": "p-22bb", "kind": "audio"}}"#
            )
            .unwrap(),
            ServerMessage::ProducerAdded {
                producer: ProducerInfo { id: "p-22bb:1".into(), participant_id: "p-22bb".into(), kind: Kind::Audio }
            }
        );
        assert_eq!(
            parse_server_message(r#"{"type": "producer_removed", "producer_id": "p-22bb:1", "participant_id": "p-22bb"}"#).unwrap(),
            ServerMessage::ProducerRemoved { producer_id: "p-22bb:1".into(), participant_id: "p-22bb".into() }
        );
        assert_eq!(
            parse_server_message(
                r#"{"type": "error", "code": "bad_sdp", "message": "publish_offer: SDP did not parse: ...", "fatal": false}"#
            )
            .unwrap(),
            ServerMessage::Error { code: "bad_sdp".into(), message: "publish_offer: SDP did not parse: ...".into(), fatal: false }
        );
    }

    /// Every client → server example of docs/protocol.md, compared as JSON values.
    #[test]
    fn serializes_documented_client_examples() {
        let cases = [
            (ClientMessage::PublishOffer { sdp: "v=0\r\n...".into() }, json!({"type": "publish_offer", "sdp": "v=0\r\n..."})),
            (ClientMessage::SubscribeAnswer { sdp: "v=0\r\n...".into() }, json!({"type": "subscribe_answer", "sdp": "v=0\r\n..."})),
            (
                ClientMessage::Candidate {
                    pc: Pc::Publish,
                    candidate: "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host".into(),
                    sdp_mid: Some("0".into()),
                },
                json!({"type": "candidate", "pc": "publish", "candidate": "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host", "sdp_mid": "0"}),
            ),
            (ClientMessage::Leave, json!({"type": "leave"})),
        ];
        for (msg, expected) in cases {
            assert_eq!(serde_json::to_value(&msg).unwrap(), expected);
        }
    }

    #[test]
    fn unknown_or_broken_frames_are_errors_not_panics() {
        assert!(parse_server_message(r#"{"type": "dance"}"#).is_err());
        assert!(parse_server_message("{not json").is_err());
        assert!(parse_server_message(r#"{"type": "publish_answer"}"#).is_err());
    }

    #[test]
    fn join_response_from_the_documented_shape() {
        let r: JoinResponse = serde_json::from_value(json!({
            "token": "t.k.n", "participant_id": "p-1", "ws_url": "/ws?token=t.k.n",
            "ice_servers": [{"urls": ["stun:127.0.0.1:3478"]}]
        }))
        .unwrap();
        assert_eq!(r.ice_servers[0].urls, vec!["stun:127.0.0.1:3478".to_owned()]);
    }

    #[test]
    fn ws_url_resolution() {
        let base = "http://127.0.0.1:8080";
        assert_eq!(resolve_ws_url(base, "/ws?token=abc", "abc").unwrap(), "ws://127.0.0.1:8080/ws?token=abc");
        assert_eq!(resolve_ws_url("http://127.0.0.1:8080/prefix/", "/ws", "a b").unwrap(), "ws://127.0.0.1:8080/ws?token=a%20b");
        assert_eq!(resolve_ws_url(base, "ws://gw.test:9/ws?x=1", "t").unwrap(), "ws://gw.test:9/ws?x=1&token=t");
        assert_eq!(resolve_ws_url(base, "https://h/ws?token=t", "t").unwrap(), "wss://h/ws?token=t");
        assert!(resolve_ws_url("ftp://x", "/ws", "t").is_err());
        assert!(resolve_ws_url(base, "ws", "t").is_err());
    }
}
