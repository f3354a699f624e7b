//! What an element's error means for the broadcast, by where the element belongs: an input's
//! error costs that input a rebuild, a placeholder's is only reported (the tile keeps its
//! place), the output chain's ends the run (as a normal end while shutting down). Plain: the
//! controller finds the owner, asks here, and carries out the answer.

/// Where an element belongs, found from a bus message's source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    Track(String),
    Placeholder(String),
    Output,
    /// Not (or no longer) in the pipeline: not fatal.
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorAction {
    /// Late news from something already gone (a removed input, an element no longer in
    /// use): logged, nothing else.
    Ignore { why: &'static str },
    /// Report it against the track and rebuild the input (see `health::Rebuild`).
    RebuildInput { track_id: String },
    /// Report it against the participant.
    ReportPlaceholder { participant_id: String },
    /// The output chain failed while shutting down: the run ends as if the stream had.
    EndOfStream,
    /// The output chain failed: the run ends with an error.
    Fatal,
}

/// The answer to an error from an element owned by `owner`. `track_present`: whether the
/// room still has that track (errors of a removed input's bin can arrive after its removal).
pub fn on_element_error(owner: Owner, track_present: impl Fn(&str) -> bool, shutting_down: bool) -> ErrorAction {
    match owner {
        Owner::Track(track_id) if track_present(&track_id) => ErrorAction::RebuildInput { track_id },
        Owner::Track(_) => ErrorAction::Ignore { why: "from a removed input" },
        Owner::Placeholder(participant_id) => ErrorAction::ReportPlaceholder { participant_id },
        Owner::Unknown => ErrorAction::Ignore { why: "from an element no longer in use" },
        Owner::Output if shutting_down => ErrorAction::EndOfStream,
        Owner::Output => ErrorAction::Fatal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRESENT: fn(&str) -> bool = |t| t == "a:video";

    #[test]
    fn an_input_error_rebuilds_that_input_only_while_it_is_in_the_room() {
        assert_eq!(
            on_element_error(Owner::Track("a:video".into()), PRESENT, false),
            ErrorAction::RebuildInput { track_id: "a:video".into() }
        );
        assert!(matches!(on_element_error(Owner::Track("gone:video".into()), PRESENT, false), ErrorAction::Ignore { .. }));
        // Shutting down changes nothing for inputs: the output decides the end.
        assert_eq!(
            on_element_error(Owner::Track("a:video".into()), PRESENT, true),
            ErrorAction::RebuildInput { track_id: "a:video".into() }
        );
    }

    #[test]
    fn a_placeholder_error_is_reported_never_fatal() {
        assert_eq!(
            on_element_error(Owner::Placeholder("ada".into()), PRESENT, false),
            ErrorAction::ReportPlaceholder { participant_id: "ada".into() }
        );
    }

    #[test]
    fn the_output_failing_ends_the_run_quietly_only_when_shutting_down() {
        assert_eq!(on_element_error(Owner::Output, PRESENT, false), ErrorAction::Fatal);
        assert_eq!(on_element_error(Owner::Output, PRESENT, true), ErrorAction::EndOfStream);
    }

    #[test]
    fn an_unknown_element_is_ignored() {
        assert!(matches!(on_element_error(Owner::Unknown, PRESENT, false), ErrorAction::Ignore { .. }));
    }
}
