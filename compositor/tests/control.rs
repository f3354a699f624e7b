//! The control channel against the real binary: bad lines, impossible commands and a
//! track whose port is taken are reported as `error` events, and the output never stops.

mod common;

use std::net::UdpSocket;
use std::thread;
use std::time::Duration;

use common::*;

#[test]
fn bad_commands_are_reported_and_the_output_keeps_going() {
    let dir = temp_dir("control");
    let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
    let taken_port = taken.local_addr().unwrap().port();
    let mut c = Compositor::start(&dir);
    let track = |id: &str, pid: &str, port: u16| {
        format!(
            r#"{{"op":"add_track","track_id":"{id}","participant_id":"{pid}","kind":"video","codec":"VP8","payload_type":96,"rtp_port":{port}}}"#
        )
    };
    let lines = [
        "{not json".to_string(),
        r#"{"op":"launch_rockets"}"#.to_string(),
        r#"{"op":"add_participant","id":""}"#.to_string(),
        r#"{"op":"add_participant","id":"p1","name":"Ada"}"#.to_string(),
        r#"{"op":"add_participant","id":"p1","name":"Ada again"}"#.to_string(),
        track("ghost:v", "nobody", free_port()),
        track("p1:v", "p1", taken_port), // port in use: the input cannot open
        track("p1:v2", "p1", free_port()),
        r#"{"op":"remove_track","track_id":"p1:v2"}"#.to_string(), // added and removed at once
        r#"{"op":"remove_track","track_id":"p1:v2"}"#.to_string(),
        "x".repeat(70_000),
    ];
    for line in &lines {
        c.send(line);
    }
    thread::sleep(Duration::from_secs(4));
    let (items, code) = c.finish();
    drop(taken);
    assert_eq!(code, 0);

    let ev = events(&items);
    let codes: Vec<&str> = ev
        .iter()
        .filter(|e| e["event"] == "error")
        .map(|e| e["code"].as_str().unwrap())
        .collect();
    assert_eq!(
        codes,
        [
            "malformed",
            "malformed",
            "invalid",
            "duplicate_participant",
            "unknown_participant",
            "input_failed",
            "unknown_track",
            "too_long"
        ],
        "{ev:?}"
    );
    assert!(!ev.iter().any(|e| e["event"] == "fatal"));
    let applied = ev.iter().filter(|e| e["event"] == "applied").count();
    assert_eq!(
        applied,
        1 + 1 + 1 + 1,
        "add p1, add p1:v2, remove p1:v2, shutdown: {ev:?}"
    );
    // output kept flowing: ~4 s of 1/3 s parts, no long gaps
    let p: Vec<&Received> = parts(&items).collect();
    assert!(p.len() >= 9, "{} parts", p.len());
    for w in p.windows(2) {
        assert!(w[1].at.duration_since(w[0].at) < Duration::from_millis(1500));
    }
    let _ = std::fs::remove_dir_all(&dir);
}
