//! Property tests (fuzzing with shrinking) for the two parsers that take untrusted input:
//! signaling messages and join tokens. Neither may panic, and neither may accept what it
//! should not. `PROPTEST_CASES` raises the count (default below); the run prints how many
//! inputs went through.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use proptest::prelude::*;
use roomcast::auth::role::Role;
use roomcast::auth::token::TokenKeys;
use roomcast::protocol::{parse_client_msg, ClientMsg, ServerMsg};

static SIGNALING_INPUTS: AtomicU64 = AtomicU64::new(0);
static TOKEN_INPUTS: AtomicU64 = AtomicU64::new(0);

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(5000)
}

fn keys() -> TokenKeys {
    TokenKeys::from_secret(b"fuzz-secret-fuzz-secret-fuzz-secret!")
}

/// JSON that looks like a message: a known or random `type` and random fields of random kinds.
fn message_like() -> impl Strategy<Value = String> {
    let kind = prop_oneof![
        Just("publish_offer".to_owned()),
        Just("subscribe_answer".to_owned()),
        Just("candidate".to_owned()),
        Just("leave".to_owned()),
        Just("chat".to_owned()),
        Just("reaction".to_owned()),
        Just("media_state".to_owned()),
        Just("refresh_token".to_owned()),
        "[a-z_]{0,12}",
    ];
    let value = prop_oneof![
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        ".{0,40}".prop_map(serde_json::Value::from),
        Just(serde_json::Value::Null),
        prop::collection::vec(any::<u8>(), 0..4).prop_map(|v| serde_json::json!(v)),
    ];
    let field = prop_oneof![
        Just("sdp".to_owned()),
        Just("pc".to_owned()),
        Just("candidate".to_owned()),
        Just("sdp_mid".to_owned()),
        Just("text".to_owned()),
        Just("emoji".to_owned()),
        Just("audio_muted".to_owned()),
        Just("video_muted".to_owned()),
        "[a-z]{1,8}",
    ];
    (kind, prop::collection::vec((field, value), 0..5)).prop_map(|(kind, fields)| {
        let mut m = serde_json::Map::new();
        m.insert("type".into(), kind.into());
        for (k, v) in fields {
            m.insert(k, v);
        }
        serde_json::Value::Object(m).to_string()
    })
}

fn check_signaling(input: &str) {
    SIGNALING_INPUTS.fetch_add(1, Ordering::Relaxed);
    match parse_client_msg(input) {
        Ok(ClientMsg::Chat { text }) => assert!(!text.trim().is_empty() && text.chars().count() <= 2000),
        Ok(ClientMsg::Reaction { emoji }) => assert!(!emoji.is_empty() && emoji.chars().count() <= 16),
        Ok(_) => {}
        Err(ServerMsg::Error { fatal, message, .. }) => assert!(!fatal && !message.is_empty()),
        Err(other) => panic!("parse errors are error messages, got {other:?}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn signaling_parser_never_panics_on_arbitrary_text(input in ".{0,300}") {
        check_signaling(&input);
    }

    #[test]
    fn signaling_parser_handles_message_like_json(input in message_like()) {
        check_signaling(&input);
    }

    #[test]
    fn token_parser_never_panics_or_accepts_garbage(input in "[A-Za-z0-9_.=-]{0,400}") {
        TOKEN_INPUTS.fetch_add(1, Ordering::Relaxed);
        prop_assert!(keys().verify(&input).is_err());
    }

    #[test]
    fn any_change_to_a_valid_token_is_refused(pos in 0usize..1000, byte in any::<u8>()) {
        TOKEN_INPUTS.fetch_add(1, Ordering::Relaxed);
        let token = keys().mint("r-1", "p-1", "Ada", Role::Publisher, Duration::from_secs(600));
        let mut bytes = token.clone().into_bytes();
        let i = pos % bytes.len();
        let replacement = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."[byte as usize % 65];
        prop_assume!(bytes[i] != replacement);
        bytes[i] = replacement;
        let changed = String::from_utf8(bytes).unwrap();
        // Base64url's last character can carry unused bits: a change there may decode the same.
        if let Ok(claims) = keys().verify(&changed) {
            prop_assert_eq!(claims, keys().verify(&token).unwrap());
        }
    }
}

#[test]
fn zz_report_counts() {
    // Runs last alphabetically within this binary when tests run on one thread (tests/run.sh).
    println!(
        "fuzz_parsers: {} signaling inputs and {} token inputs so far without a crash (PROPTEST_CASES={})",
        SIGNALING_INPUTS.load(Ordering::Relaxed),
        TOKEN_INPUTS.load(Ordering::Relaxed),
        cases()
    );
}
