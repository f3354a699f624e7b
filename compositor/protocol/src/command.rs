//! The control channel: newline-delimited JSON commands on the compositor's stdin (see
//! compositor/PROTOCOL.md). Parsing with validation (the compositor's side) and serialization
//! (the gateway's side), checked against each other; what a command does to the room is the
//! compositor's `room.rs`.

use serde::Deserialize;
use serde_json::json;

/// Longest accepted id (participant or track).
pub const MAX_ID_LEN: usize = 128;
/// Longest accepted display name, in characters; longer names are rejected.
pub const MAX_NAME_LEN: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Video,
    Audio,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Video => "video",
            Kind::Audio => "audio",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    Vp8,
    H264,
    Opus,
}

impl Codec {
    pub fn kind(self) -> Kind {
        match self {
            Codec::Vp8 | Codec::H264 => Kind::Video,
            Codec::Opus => Kind::Audio,
        }
    }
    /// RTP `encoding-name` as GStreamer caps spell it.
    pub fn encoding_name(self) -> &'static str {
        match self {
            Codec::Vp8 => "VP8",
            Codec::H264 => "H264",
            Codec::Opus => "OPUS",
        }
    }
    /// The codec of an `encoding-name` (any case).
    pub fn parse(s: &str) -> Option<Codec> {
        match s.to_ascii_lowercase().as_str() {
            "vp8" => Some(Codec::Vp8),
            "h264" => Some(Codec::H264),
            "opus" => Some(Codec::Opus),
            _ => None,
        }
    }
}

/// A plain-RTP leg the gateway sends to 127.0.0.1:`rtp_port` (RTCP to `rtcp_port`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackSpec {
    pub track_id: String,
    pub participant_id: String,
    pub kind: Kind,
    pub codec: Codec,
    pub payload_type: u8,
    pub clock_rate: u32,
    pub rtp_port: u16,
    pub rtcp_port: Option<u16>,
}

/// A validated command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    AddParticipant {
        id: String,
        name: String,
    },
    RemoveParticipant {
        id: String,
    },
    AddTrack(TrackSpec),
    RemoveTrack {
        track_id: String,
    },
    /// The participant turned its camera off (or on): its tile shows the named placeholder.
    SetVideoMuted {
        id: String,
        muted: bool,
    },
    Shutdown,
    /// Ends a standby (`--standby`): the pipeline, built ahead of need, starts for this room
    /// (its id is logged with the start). Once running, a second `start` is an error.
    Start {
        room: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    #[error("malformed JSON: {0}")]
    Json(String),
    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("unknown participant {0:?}")]
    UnknownParticipant(String),
    #[error("participant {0:?} already exists")]
    DuplicateParticipant(String),
    #[error("unknown track {0:?}")]
    UnknownTrack(String),
    #[error("track {0:?} already exists")]
    DuplicateTrack(String),
    #[error("port {0} is already used by track {1:?}")]
    PortInUse(u16, String),
    #[error("already started")]
    AlreadyStarted,
}

impl ControlError {
    /// A short machine-readable code for the `error` event.
    pub fn code(&self) -> &'static str {
        match self {
            ControlError::Json(_) => "malformed",
            ControlError::Invalid { .. } => "invalid",
            ControlError::UnknownParticipant(_) => "unknown_participant",
            ControlError::DuplicateParticipant(_) => "duplicate_participant",
            ControlError::UnknownTrack(_) => "unknown_track",
            ControlError::DuplicateTrack(_) => "duplicate_track",
            ControlError::PortInUse(..) => "port_in_use",
            ControlError::AlreadyStarted => "already_started",
        }
    }
}

// Wire shapes. Unknown fields are ignored (forward compatible); unknown ops are errors.
#[derive(Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Wire {
    AddParticipant {
        id: String,
        #[serde(default)]
        name: Option<String>,
    },
    RemoveParticipant {
        id: String,
    },
    AddTrack {
        track_id: String,
        participant_id: String,
        kind: String,
        codec: String,
        payload_type: u32,
        #[serde(default)]
        clock_rate: Option<u32>,
        rtp_port: u32,
        #[serde(default)]
        rtcp_port: Option<u32>,
    },
    RemoveTrack {
        track_id: String,
    },
    SetVideoMuted {
        id: String,
        muted: bool,
    },
    Shutdown,
    Start {
        room: String,
    },
}

fn invalid(field: &'static str, reason: impl Into<String>) -> ControlError {
    ControlError::Invalid { field, reason: reason.into() }
}

fn check_id(field: &'static str, id: &str) -> Result<(), ControlError> {
    if id.is_empty() {
        return Err(invalid(field, "empty"));
    }
    if id.len() > MAX_ID_LEN {
        return Err(invalid(field, format!("longer than {MAX_ID_LEN} bytes")));
    }
    if id.chars().any(char::is_control) {
        return Err(invalid(field, "contains control characters"));
    }
    Ok(())
}

fn check_port(field: &'static str, port: u32) -> Result<u16, ControlError> {
    match u16::try_from(port) {
        Ok(p) if p >= 1024 => Ok(p),
        _ => Err(invalid(field, format!("{port} is not in 1024..=65535"))),
    }
}

/// Parse and validate one line of the control channel.
/// Blank lines are the caller's business (skip them).
pub fn parse_line(line: &str) -> Result<Command, ControlError> {
    let wire: Wire = serde_json::from_str(line).map_err(|e| ControlError::Json(e.to_string()))?;
    match wire {
        Wire::AddParticipant { id, name } => {
            check_id("id", &id)?;
            let name = name.unwrap_or_else(|| id.clone());
            if name.chars().count() > MAX_NAME_LEN {
                return Err(invalid("name", format!("longer than {MAX_NAME_LEN} characters")));
            }
            if name.chars().any(char::is_control) {
                return Err(invalid("name", "contains control characters"));
            }
            Ok(Command::AddParticipant { id, name })
        }
        Wire::RemoveParticipant { id } => {
            check_id("id", &id)?;
            Ok(Command::RemoveParticipant { id })
        }
        Wire::AddTrack { track_id, participant_id, kind, codec, payload_type, clock_rate, rtp_port, rtcp_port } => {
            check_id("track_id", &track_id)?;
            check_id("participant_id", &participant_id)?;
            let kind = match kind.as_str() {
                "video" => Kind::Video,
                "audio" => Kind::Audio,
                other => return Err(invalid("kind", format!("{other:?} is not video or audio"))),
            };
            let codec = Codec::parse(&codec).ok_or_else(|| invalid("codec", format!("{codec:?} is not VP8, H264 or opus")))?;
            if codec.kind() != kind {
                return Err(invalid("codec", format!("{codec:?} is not a {} codec", kind.as_str())));
            }
            let payload_type = u8::try_from(payload_type)
                .ok()
                .filter(|pt| *pt <= 127)
                .ok_or_else(|| invalid("payload_type", format!("{payload_type} is not 0..=127")))?;
            let expected_rate = match codec {
                Codec::Opus => 48_000,
                Codec::Vp8 | Codec::H264 => 90_000,
            };
            let clock_rate = clock_rate.unwrap_or(expected_rate);
            if clock_rate != expected_rate {
                return Err(invalid("clock_rate", format!("{clock_rate} (expected {expected_rate} for {codec:?})")));
            }
            let rtp_port = check_port("rtp_port", rtp_port)?;
            let rtcp_port = rtcp_port.map(|p| check_port("rtcp_port", p)).transpose()?;
            if rtcp_port == Some(rtp_port) {
                return Err(invalid("rtcp_port", "same as rtp_port"));
            }
            Ok(Command::AddTrack(TrackSpec { track_id, participant_id, kind, codec, payload_type, clock_rate, rtp_port, rtcp_port }))
        }
        Wire::RemoveTrack { track_id } => {
            check_id("track_id", &track_id)?;
            Ok(Command::RemoveTrack { track_id })
        }
        Wire::SetVideoMuted { id, muted } => {
            check_id("id", &id)?;
            Ok(Command::SetVideoMuted { id, muted })
        }
        Wire::Shutdown => Ok(Command::Shutdown),
        Wire::Start { room } => {
            check_id("room", &room)?;
            Ok(Command::Start { room })
        }
    }
}

impl Command {
    /// The command's name on the wire.
    pub fn op(&self) -> &'static str {
        match self {
            Command::AddParticipant { .. } => "add_participant",
            Command::RemoveParticipant { .. } => "remove_participant",
            Command::AddTrack(_) => "add_track",
            Command::RemoveTrack { .. } => "remove_track",
            Command::SetVideoMuted { .. } => "set_video_muted",
            Command::Shutdown => "shutdown",
            Command::Start { .. } => "start",
        }
    }

    /// The control line for this command (without the newline); `parse_line` gives it back.
    pub fn to_line(&self) -> String {
        let op = self.op();
        let value = match self {
            Command::AddParticipant { id, name } => json!({"op": op, "id": id, "name": name}),
            Command::RemoveParticipant { id } => json!({"op": op, "id": id}),
            Command::AddTrack(t) => {
                let mut v = json!({
                    "op": op, "track_id": t.track_id, "participant_id": t.participant_id,
                    "kind": t.kind.as_str(), "codec": t.codec.encoding_name(), "payload_type": t.payload_type,
                    "clock_rate": t.clock_rate, "rtp_port": t.rtp_port,
                });
                if let Some(p) = t.rtcp_port {
                    v["rtcp_port"] = p.into();
                }
                v
            }
            Command::RemoveTrack { track_id } => json!({"op": op, "track_id": track_id}),
            Command::SetVideoMuted { id, muted } => json!({"op": op, "id": id, "muted": muted}),
            Command::Shutdown => json!({"op": op}),
            Command::Start { room } => json!({"op": op, "room": room}),
        };
        value.to_string()
    }
}

/// The `op` of a line, if it has one (for error reports on lines that fail validation).
pub fn op_of(line: &str) -> Option<String> {
    serde_json::from_str::<serde_json::Value>(line).ok()?.get("op")?.as_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    const VIDEO: &str = r#"{"op":"add_track","track_id":"p-1:0","participant_id":"p-1","kind":"video","codec":"VP8","payload_type":96,"clock_rate":90000,"rtp_port":40000,"rtcp_port":40001}"#;

    #[test]
    fn parses_every_op() {
        assert_eq!(
            parse_line(r#"{"op":"add_participant","id":"p-1","name":"Ada"}"#),
            Ok(Command::AddParticipant { id: "p-1".into(), name: "Ada".into() })
        );
        assert_eq!(parse_line(r#"{"op":"remove_participant","id":"p-1"}"#), Ok(Command::RemoveParticipant { id: "p-1".into() }));
        assert_eq!(
            parse_line(VIDEO),
            Ok(Command::AddTrack(TrackSpec {
                track_id: "p-1:0".into(),
                participant_id: "p-1".into(),
                kind: Kind::Video,
                codec: Codec::Vp8,
                payload_type: 96,
                clock_rate: 90000,
                rtp_port: 40000,
                rtcp_port: Some(40001),
            }))
        );
        assert_eq!(parse_line(r#"{"op":"remove_track","track_id":"p-1:0"}"#), Ok(Command::RemoveTrack { track_id: "p-1:0".into() }));
        assert_eq!(
            parse_line(r#"{"op":"set_video_muted","id":"p-1","muted":true}"#),
            Ok(Command::SetVideoMuted { id: "p-1".into(), muted: true })
        );
        assert_eq!(parse_line(r#"{"op":"shutdown"}"#), Ok(Command::Shutdown));
        assert_eq!(parse_line(r#"{"op":"start","room":"r-1"}"#), Ok(Command::Start { room: "r-1".into() }));
    }

    #[test]
    fn defaults_and_case() {
        let line =
            r#"{"op":"add_track","track_id":"a","participant_id":"p","kind":"audio","codec":"OPUS","payload_type":111,"rtp_port":40002}"#;
        match parse_line(line).unwrap() {
            Command::AddTrack(t) => {
                assert_eq!(t.codec, Codec::Opus);
                assert_eq!(t.clock_rate, 48000);
                assert_eq!(t.rtcp_port, None);
            }
            c => panic!("{c:?}"),
        }
        match parse_line(r#"{"op":"add_participant","id":"p-2"}"#).unwrap() {
            Command::AddParticipant { name, .. } => assert_eq!(name, "p-2"),
            c => panic!("{c:?}"),
        }
        // unknown fields are ignored
        assert!(parse_line(r#"{"op":"shutdown","reason":"done"}"#).is_ok());
    }

    #[test]
    fn rejects_bad_lines() {
        let bad = [
            "",
            "not json",
            "[]",
            r#"{"id":"p"}"#,
            r#"{"op":"explode"}"#,
            r#"{"op":"add_participant"}"#,
            r#"{"op":"add_participant","id":""}"#,
            r#"{"op":"add_participant","id":42}"#,
            &VIDEO.replace("\"video\"", "\"audio\""),
            &VIDEO.replace("VP8", "AV1"),
            &VIDEO.replace("\"kind\":\"video\"", "\"kind\":\"data\""),
            &VIDEO.replace("96", "300"),
            &VIDEO.replace("40000", "70000"),
            &VIDEO.replace("40000", "80"),
            &VIDEO.replace("40001", "40000"),
            &VIDEO.replace("90000", "48000"),
            r#"{"op":"start"}"#,
            r#"{"op":"start","room":""}"#,
        ];
        for line in bad {
            assert!(parse_line(line).is_err(), "accepted {line}");
        }
        let long = format!(r#"{{"op":"add_participant","id":"p","name":"{}"}}"#, "x".repeat(65));
        assert!(matches!(parse_line(&long), Err(ControlError::Invalid { field: "name", .. })));
    }

    #[test]
    fn every_command_survives_its_own_line() {
        let track = TrackSpec {
            track_id: "p-1:0".into(),
            participant_id: "p-1".into(),
            kind: Kind::Video,
            codec: Codec::H264,
            payload_type: 102,
            clock_rate: 90_000,
            rtp_port: 40_000,
            rtcp_port: Some(40_001),
        };
        let audio = TrackSpec { kind: Kind::Audio, codec: Codec::Opus, clock_rate: 48_000, rtcp_port: None, ..track.clone() };
        let commands = [
            Command::AddParticipant { id: "p-1".into(), name: "Ada \"the\" Lovelace ✓".into() },
            Command::RemoveParticipant { id: "p-1".into() },
            Command::AddTrack(track),
            Command::AddTrack(audio),
            Command::RemoveTrack { track_id: "p-1:0".into() },
            Command::SetVideoMuted { id: "p-1".into(), muted: true },
            Command::Shutdown,
            Command::Start { room: "r-1".into() },
        ];
        for c in commands {
            let line = c.to_line();
            assert!(!line.contains('\n'), "one line: {line}");
            assert_eq!(parse_line(&line), Ok(c.clone()), "{line}");
            assert_eq!(op_of(&line).as_deref(), Some(c.op()));
        }
    }

    #[test]
    fn op_of_reports_the_op() {
        assert_eq!(op_of(r#"{"op":"add_track"}"#).as_deref(), Some("add_track"));
        assert_eq!(op_of("nope"), None);
    }
}
