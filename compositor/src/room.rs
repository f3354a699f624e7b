//! The room as the compositor sees it: participants (in join order), their RTP tracks, and
//! which tile each one occupies. A plain state machine: `apply(command)` checks the command
//! against the state and returns the effects the pipeline must carry out, in order.

use crate::layout::{layout, Rect};
use compositor_protocol::command::{Command, ControlError, Kind, TrackSpec};

/// Stacking order on the compositor (higher is on top).
pub const ZORDER_BACKGROUND: u32 = 0;
pub const ZORDER_EMPTY_SLOT: u32 = 1;
pub const ZORDER_PLACEHOLDER: u32 = 2;
/// A participant's first video track; later tracks of the same participant stack above.
pub const ZORDER_VIDEO: u32 = 3;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Participant {
    pub id: String,
    pub name: String,
    /// Camera off: its first video track (the camera) is hidden, the placeholder shows.
    pub video_muted: bool,
}

/// Where everything goes on the canvas.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scene {
    /// Grid slots that no participant occupies (shown as empty placeholders).
    pub empty_slots: Vec<Rect>,
    /// One named placeholder per participant: (participant id, tile).
    pub placeholders: Vec<(String, Rect)>,
    /// Every video track: (track id, tile of its participant, zorder).
    pub videos: Vec<(String, Rect, u32)>,
}

/// What the pipeline has to do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    AddPlaceholder { participant_id: String, name: String },
    RemovePlaceholder { participant_id: String },
    AddInput(TrackSpec),
    RemoveInput { track_id: String, kind: Kind },
    Layout(Scene),
    Shutdown,
}

#[derive(Debug, Clone)]
pub struct Room {
    width: u32,
    height: u32,
    participants: Vec<Participant>,
    /// In the order they were added.
    tracks: Vec<TrackSpec>,
}

impl Room {
    pub fn new(width: u32, height: u32) -> Room {
        Room { width, height, participants: Vec::new(), tracks: Vec::new() }
    }

    pub fn participants(&self) -> &[Participant] {
        &self.participants
    }

    pub fn tracks(&self) -> &[TrackSpec] {
        &self.tracks
    }

    pub fn track(&self, track_id: &str) -> Option<&TrackSpec> {
        self.tracks.iter().find(|t| t.track_id == track_id)
    }

    pub fn count(&self, kind: Kind) -> usize {
        self.tracks.iter().filter(|t| t.kind == kind).count()
    }

    /// The scene for the current state.
    pub fn scene(&self) -> Scene {
        let grid = layout(self.participants.len(), self.width, self.height);
        let mut scene = Scene::default();
        for (i, slot) in grid.slots.iter().enumerate() {
            match self.participants.get(i) {
                Some(p) => {
                    scene.placeholders.push((p.id.clone(), *slot));
                    let videos = self.tracks.iter().filter(|t| t.participant_id == p.id && t.kind == Kind::Video);
                    for (n, t) in videos.enumerate() {
                        // The camera is the first video track; a screen share stays visible.
                        if n == 0 && p.video_muted {
                            continue;
                        }
                        scene.videos.push((t.track_id.clone(), *slot, ZORDER_VIDEO + n as u32));
                    }
                }
                None => scene.empty_slots.push(*slot),
            }
        }
        scene
    }

    /// Check `command` against the room, update it, and say what the pipeline must do.
    /// On error the room is unchanged.
    pub fn apply(&mut self, command: Command) -> Result<Vec<Effect>, ControlError> {
        match command {
            Command::AddParticipant { id, name } => {
                if self.participants.iter().any(|p| p.id == id) {
                    return Err(ControlError::DuplicateParticipant(id));
                }
                self.participants.push(Participant { id: id.clone(), name: name.clone(), video_muted: false });
                Ok(vec![Effect::AddPlaceholder { participant_id: id, name }, Effect::Layout(self.scene())])
            }
            Command::RemoveParticipant { id } => {
                let idx = self.participants.iter().position(|p| p.id == id).ok_or_else(|| ControlError::UnknownParticipant(id.clone()))?;
                let mut effects: Vec<Effect> = self
                    .tracks
                    .iter()
                    .filter(|t| t.participant_id == id)
                    .map(|t| Effect::RemoveInput { track_id: t.track_id.clone(), kind: t.kind })
                    .collect();
                self.tracks.retain(|t| t.participant_id != id);
                self.participants.remove(idx);
                effects.push(Effect::RemovePlaceholder { participant_id: id });
                effects.push(Effect::Layout(self.scene()));
                Ok(effects)
            }
            Command::AddTrack(spec) => {
                if !self.participants.iter().any(|p| p.id == spec.participant_id) {
                    return Err(ControlError::UnknownParticipant(spec.participant_id));
                }
                if self.tracks.iter().any(|t| t.track_id == spec.track_id) {
                    return Err(ControlError::DuplicateTrack(spec.track_id));
                }
                let wanted = [Some(spec.rtp_port), spec.rtcp_port];
                for t in &self.tracks {
                    for port in [Some(t.rtp_port), t.rtcp_port].into_iter().flatten() {
                        if wanted.contains(&Some(port)) {
                            return Err(ControlError::PortInUse(port, t.track_id.clone()));
                        }
                    }
                }
                let kind = spec.kind;
                self.tracks.push(spec.clone());
                let mut effects = vec![Effect::AddInput(spec)];
                if kind == Kind::Video {
                    effects.push(Effect::Layout(self.scene()));
                }
                Ok(effects)
            }
            Command::RemoveTrack { track_id } => {
                let idx =
                    self.tracks.iter().position(|t| t.track_id == track_id).ok_or_else(|| ControlError::UnknownTrack(track_id.clone()))?;
                let spec = self.tracks.remove(idx);
                let mut effects = vec![Effect::RemoveInput { track_id, kind: spec.kind }];
                if spec.kind == Kind::Video {
                    effects.push(Effect::Layout(self.scene()));
                }
                Ok(effects)
            }
            Command::SetVideoMuted { id, muted } => {
                let p = self.participants.iter_mut().find(|p| p.id == id).ok_or(ControlError::UnknownParticipant(id))?;
                p.video_muted = muted;
                Ok(vec![Effect::Layout(self.scene())])
            }
            Command::Shutdown => Ok(vec![Effect::Shutdown]),
            // A standby ends before the room exists (`standby`); a running one is started.
            Command::Start { .. } => Err(ControlError::AlreadyStarted),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use compositor_protocol::command::Codec;

    fn join(room: &mut Room, id: &str) -> Vec<Effect> {
        room.apply(Command::AddParticipant { id: id.into(), name: format!("name {id}") }).unwrap()
    }

    fn track(id: &str, pid: &str, codec: Codec, port: u16) -> TrackSpec {
        TrackSpec {
            track_id: id.into(),
            participant_id: pid.into(),
            kind: codec.kind(),
            codec,
            payload_type: 96,
            clock_rate: if codec == Codec::Opus { 48000 } else { 90000 },
            rtp_port: port,
            rtcp_port: Some(port + 1),
        }
    }

    fn last_scene(effects: &[Effect]) -> Scene {
        match effects.last() {
            Some(Effect::Layout(s)) => s.clone(),
            e => panic!("expected a layout last, got {e:?}"),
        }
    }

    #[test]
    fn empty_room_shows_one_empty_slot() {
        let room = Room::new(1280, 720);
        let s = room.scene();
        assert_eq!(s.empty_slots.len(), 1);
        assert!(s.placeholders.is_empty() && s.videos.is_empty());
    }

    #[test]
    fn three_participants_leave_one_empty_slot() {
        let mut room = Room::new(1280, 720);
        join(&mut room, "a");
        join(&mut room, "b");
        let e = join(&mut room, "c");
        assert_eq!(e[0], Effect::AddPlaceholder { participant_id: "c".into(), name: "name c".into() });
        let s = last_scene(&e);
        assert_eq!(s.placeholders.len(), 3);
        assert_eq!(s.empty_slots.len(), 1);
        let ids: Vec<_> = s.placeholders.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "c"]);
    }

    #[test]
    fn video_sits_on_its_participants_tile() {
        let mut room = Room::new(1280, 720);
        join(&mut room, "a");
        join(&mut room, "b");
        let e = room.apply(Command::AddTrack(track("b:0", "b", Codec::Vp8, 40000))).unwrap();
        assert!(matches!(&e[0], Effect::AddInput(t) if t.track_id == "b:0"));
        let s = last_scene(&e);
        let b_tile = s.placeholders[1].1;
        assert_eq!(s.videos, vec![("b:0".to_string(), b_tile, ZORDER_VIDEO)]);
        // a second video of the same participant stacks above
        let e = room.apply(Command::AddTrack(track("b:1", "b", Codec::H264, 40002))).unwrap();
        let s = last_scene(&e);
        assert_eq!(s.videos[1], ("b:1".to_string(), b_tile, ZORDER_VIDEO + 1));
    }

    #[test]
    fn camera_off_shows_the_placeholder_but_keeps_a_screen_share() {
        let mut room = Room::new(1280, 720);
        join(&mut room, "a");
        room.apply(Command::AddTrack(track("a:0", "a", Codec::Vp8, 40000))).unwrap();
        room.apply(Command::AddTrack(track("a:1", "a", Codec::Vp8, 40002))).unwrap();
        let s = last_scene(&room.apply(Command::SetVideoMuted { id: "a".into(), muted: true }).unwrap());
        let ids: Vec<_> = s.videos.iter().map(|(id, _, _)| id.as_str()).collect();
        assert_eq!(ids, ["a:1"], "the camera is hidden, the share stays");
        assert_eq!(s.placeholders.len(), 1, "the named placeholder is under it");
        let s = last_scene(&room.apply(Command::SetVideoMuted { id: "a".into(), muted: false }).unwrap());
        assert_eq!(s.videos.len(), 2);
        assert_eq!(room.apply(Command::SetVideoMuted { id: "zz".into(), muted: true }), Err(ControlError::UnknownParticipant("zz".into())));
    }

    #[test]
    fn audio_needs_no_layout() {
        let mut room = Room::new(1280, 720);
        join(&mut room, "a");
        let e = room.apply(Command::AddTrack(track("a:a", "a", Codec::Opus, 40000))).unwrap();
        assert_eq!(e.len(), 1);
        assert_eq!(room.count(Kind::Audio), 1);
        let e = room.apply(Command::RemoveTrack { track_id: "a:a".into() }).unwrap();
        assert_eq!(e, vec![Effect::RemoveInput { track_id: "a:a".into(), kind: Kind::Audio }]);
    }

    #[test]
    fn leaving_removes_tracks_and_relayouts() {
        let mut room = Room::new(1280, 720);
        for id in ["a", "b", "c", "d"] {
            join(&mut room, id);
        }
        room.apply(Command::AddTrack(track("b:0", "b", Codec::Vp8, 40000))).unwrap();
        room.apply(Command::AddTrack(track("b:a", "b", Codec::Opus, 40002))).unwrap();
        room.apply(Command::AddTrack(track("d:0", "d", Codec::Vp8, 40004))).unwrap();
        let e = room.apply(Command::RemoveParticipant { id: "b".into() }).unwrap();
        assert_eq!(
            &e[..3],
            &[
                Effect::RemoveInput { track_id: "b:0".into(), kind: Kind::Video },
                Effect::RemoveInput { track_id: "b:a".into(), kind: Kind::Audio },
                Effect::RemovePlaceholder { participant_id: "b".into() },
            ]
        );
        let s = last_scene(&e);
        // c and d moved up one slot
        let ids: Vec<_> = s.placeholders.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(ids, ["a", "c", "d"]);
        assert_eq!(s.videos, vec![("d:0".to_string(), s.placeholders[2].1, ZORDER_VIDEO)]);
        assert_eq!(s.empty_slots.len(), 1);
        assert_eq!(room.tracks().len(), 1);
    }

    #[test]
    fn errors_leave_the_room_unchanged() {
        let mut room = Room::new(1280, 720);
        join(&mut room, "a");
        assert_eq!(
            room.apply(Command::AddParticipant { id: "a".into(), name: "again".into() }),
            Err(ControlError::DuplicateParticipant("a".into()))
        );
        assert_eq!(room.apply(Command::AddTrack(track("x:0", "x", Codec::Vp8, 40000))), Err(ControlError::UnknownParticipant("x".into())));
        room.apply(Command::AddTrack(track("a:0", "a", Codec::Vp8, 40000))).unwrap();
        assert_eq!(room.apply(Command::AddTrack(track("a:0", "a", Codec::Vp8, 40010))), Err(ControlError::DuplicateTrack("a:0".into())));
        assert_eq!(room.apply(Command::AddTrack(track("a:1", "a", Codec::Vp8, 40001))), Err(ControlError::PortInUse(40001, "a:0".into())));
        assert_eq!(room.apply(Command::RemoveTrack { track_id: "zz".into() }), Err(ControlError::UnknownTrack("zz".into())));
        assert_eq!(room.apply(Command::RemoveParticipant { id: "zz".into() }), Err(ControlError::UnknownParticipant("zz".into())));
        assert_eq!(room.participants().len(), 1);
        assert_eq!(room.tracks().len(), 1);
    }

    #[test]
    fn shutdown_is_an_effect() {
        let mut room = Room::new(1280, 720);
        assert_eq!(room.apply(Command::Shutdown), Ok(vec![Effect::Shutdown]));
        assert_eq!(room.apply(Command::Start { room: "r".into() }), Err(ControlError::AlreadyStarted));
    }
}
