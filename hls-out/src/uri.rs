//! The URL scheme under `/hls/{room}/`: names of the playlist, init segments, segments and
//! parts, written into playlists (relative URIs) and parsed back from requests.
//!
//! Only these names exist; everything is in memory, so a name is parsed, never joined to a path.
//! Numbers are plain decimal without sign or leading zeros, so each resource has one name.

/// `index.m3u8`: the media playlist.
pub const PLAYLIST: &str = "index.m3u8";

/// A file name under `/hls/{room}/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileName {
    /// `index.m3u8`
    Playlist,
    /// `init-{version}.mp4`
    Init(u64),
    /// `seg-{msn}.m4s`
    Segment(u64),
    /// `part-{msn}.{index}.m4s`
    Part(u64, u64),
}

/// Why a name is not one of ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameError {
    /// Looks like one of our names but a number is malformed (non-digits, leading zero,
    /// too large): a bad request.
    BadNumber,
    /// Not a name we serve at all.
    Unknown,
}

pub fn init(version: u64) -> String {
    format!("init-{version}.mp4")
}

pub fn segment(msn: u64) -> String {
    format!("seg-{msn}.m4s")
}

pub fn part(msn: u64, index: u64) -> String {
    format!("part-{msn}.{index}.m4s")
}

/// Parses a decimal number the way we write them: ASCII digits only, no leading zero
/// (except `0` itself), fits in u64.
pub fn parse_number(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if s.len() > 1 && s.starts_with('0') {
        return None;
    }
    s.parse().ok()
}

fn number(s: &str) -> Result<u64, NameError> {
    parse_number(s).ok_or(NameError::BadNumber)
}

impl FileName {
    pub fn parse(name: &str) -> Result<FileName, NameError> {
        if name == PLAYLIST {
            return Ok(FileName::Playlist);
        }
        if let Some(n) = name.strip_prefix("init-").and_then(|r| r.strip_suffix(".mp4")) {
            return Ok(FileName::Init(number(n)?));
        }
        if let Some(n) = name.strip_prefix("seg-").and_then(|r| r.strip_suffix(".m4s")) {
            return Ok(FileName::Segment(number(n)?));
        }
        if let Some(r) = name.strip_prefix("part-").and_then(|r| r.strip_suffix(".m4s")) {
            let (msn, index) = r.split_once('.').ok_or(NameError::BadNumber)?;
            return Ok(FileName::Part(number(msn)?, number(index)?));
        }
        Err(NameError::Unknown)
    }
}

impl std::fmt::Display for FileName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            FileName::Playlist => f.write_str(PLAYLIST),
            FileName::Init(v) => f.write_str(&init(v)),
            FileName::Segment(m) => f.write_str(&segment(m)),
            FileName::Part(m, i) => f.write_str(&part(m, i)),
        }
    }
}

/// Longest room id accepted in a URL.
pub const MAX_ROOM_LEN: usize = 128;

/// Room ids in URLs: 1..=128 of `[A-Za-z0-9._~-]`, not `.` or `..` (the gateway's ids look
/// like `r-0123456789ab`). Anything else (a decoded `/`, `%`, spaces, control bytes) is refused
/// before any lookup.
pub fn valid_room(room: &str) -> bool {
    !room.is_empty()
        && room.len() <= MAX_ROOM_LEN
        && room != "."
        && room != ".."
        && room.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for f in [
            FileName::Playlist,
            FileName::Init(0),
            FileName::Init(17_000_000_000),
            FileName::Segment(42),
            FileName::Part(42, 0),
            FileName::Part(u64::MAX, 3),
        ] {
            assert_eq!(FileName::parse(&f.to_string()), Ok(f), "{f}");
        }
        assert_eq!(FileName::parse("part-7.2.m4s"), Ok(FileName::Part(7, 2)));
    }

    #[test]
    fn malformed_numbers_are_bad_requests() {
        for name in [
            "seg-abc.m4s",
            "seg-.m4s",
            "seg--1.m4s",
            "seg-+1.m4s",
            "seg-01.m4s",
            "seg-1 .m4s",
            "seg-18446744073709551616.m4s",
            "init-x.mp4",
            "part-1.m4s",
            "part-1.x.m4s",
            "part-1.2.3.m4s",
            "part-..m4s",
            "seg-..m4s",
            "seg-../../etc/passwd.m4s",
        ] {
            assert_eq!(FileName::parse(name), Err(NameError::BadNumber), "{name}");
        }
    }

    #[test]
    fn other_names_are_unknown() {
        for name in ["", ".", "..", "index.m3u", "INDEX.M3U8", "seg-1.mp4", "init-1.m4s", "foo", "index.m3u8/"] {
            assert_eq!(FileName::parse(name), Err(NameError::Unknown), "{name:?}");
        }
    }

    #[test]
    fn room_ids() {
        assert!(valid_room("r-0123456789ab"));
        assert!(valid_room("Room_1.a~b"));
        for bad in ["", ".", "..", "a/b", "a\\b", "a%2Fb", "a b", "a\0b", "é", &"x".repeat(129)] {
            assert!(!valid_room(bad), "{bad:?}");
        }
    }
}
