//! A compositor started ahead of need (`--standby`): GStreamer loaded and the pipeline built
//! and made ready, it waits on stdin for its room. On a loaded host loading GStreamer and
//! its plugins and building the pipeline take 0.1–2.9 s of a broadcast's start; a spare the
//! gateway keeps in standby has them behind it when the room goes live or its compositor is
//! replaced.

use compositor_protocol::command::{parse_line, Command};

/// What a line read in standby does.
#[derive(Debug, PartialEq, Eq)]
pub enum Wake {
    /// `start`: run for this room.
    Start { room: String },
    /// Stdin closed or `shutdown`: the spare is not wanted; exit cleanly.
    Quit,
    /// Any other line: start (unlabelled) and handle the line as the first command, so a
    /// caller that skips `start` still gets a working compositor and its errors.
    StartWith(Vec<u8>),
}

/// The standby's answer to one line (`None` at the end of stdin); `None` back for a blank
/// line, which the running loop also skips.
pub fn wake(line: Option<&[u8]>) -> Option<Wake> {
    let Some(raw) = line else { return Some(Wake::Quit) };
    let text = String::from_utf8_lossy(raw);
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    Some(match parse_line(text) {
        Ok(Command::Start { room }) => Wake::Start { room },
        Ok(Command::Shutdown) => Wake::Quit,
        _ => Wake::StartWith(raw.to_vec()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_quit_or_start_with_the_line() {
        assert_eq!(wake(Some(b"{\"op\":\"start\",\"room\":\"r-1\"}\n")), Some(Wake::Start { room: "r-1".into() }));
        assert_eq!(wake(None), Some(Wake::Quit), "stdin closed: the gateway let the spare go");
        assert_eq!(wake(Some(b"{\"op\":\"shutdown\"}\n")), Some(Wake::Quit));
        assert_eq!(wake(Some(b"  \n")), None, "blank lines are skipped");
        let first = b"{\"op\":\"add_participant\",\"id\":\"p-1\"}\n";
        assert_eq!(wake(Some(first)), Some(Wake::StartWith(first.to_vec())));
        // A bad line starts too: the running loop reports it as it reports any bad line.
        assert_eq!(wake(Some(b"{\"op\":\"start\"}")), Some(Wake::StartWith(b"{\"op\":\"start\"}".to_vec())));
        assert_eq!(wake(Some(b"garbage")), Some(Wake::StartWith(b"garbage".to_vec())));
    }
}
