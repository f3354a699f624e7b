//! The control channel against the real binary: bad lines, impossible commands and a
//! track whose port is taken are reported as `error` events, and the output never stops.

mod common;

use std::net::UdpSocket;
use std::time::Duration;

use common::*;

#[test]
fn bad_commands_are_reported_and_the_output_keeps_going() {
    let dir = temp_dir("control");
    let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
    let taken_port = taken.local_addr().unwrap().port();
    // held until the lines that use them are sent (see ReservedPort)
    let ghost_port = ReservedPort::new();
    let v2_port = ReservedPort::new();
    let mut c = Compositor::start(&dir);
    let track = |id: &str, pid: &str, port: u16| {
        format!(
            r#"{{"op":"add_track","track_id":"{id}","participant_id":"{pid}","kind":"video","codec":"VP8","payload_type":96,"rtp_port":{port}}}"#
        )
    };
    // These are written while the process is still starting: they wait in the pipe.
    let early = [
        "{not json".to_string(),
        r#"{"op":"launch_rockets"}"#.to_string(),
        r#"{"op":"add_participant","id":""}"#.to_string(),
        r#"{"op":"add_participant","id":"p1","name":"Ada"}"#.to_string(),
        r#"{"op":"add_participant","id":"p1","name":"Ada again"}"#.to_string(),
    ];
    for line in &early {
        c.send(line);
    }
    // The port lines go out once the pipeline is up, so the reserved ports are free only for
    // the moment it takes the compositor to reach them (not for its whole start-up).
    c.wait_for("the started event", Duration::from_secs(20), |items| events(items).iter().any(|e| e["event"] == "started"));
    let late = [
        track("ghost:v", "nobody", ghost_port.release()),
        track("p1:v", "p1", taken_port), // port in use: the input cannot open
        track("p1:v2", "p1", v2_port.release()),
        r#"{"op":"remove_track","track_id":"p1:v2"}"#.to_string(), // added and removed at once
        r#"{"op":"remove_track","track_id":"p1:v2"}"#.to_string(),
        "x".repeat(70_000),
    ];
    for line in &late {
        c.send(line);
    }
    // Lines are handled in order: once the last one is answered, all of them are. Then the
    // output must keep going: wait for parts produced after that (an event, not a fixed time,
    // so a slow start on a loaded machine does not eat the window).
    c.wait_for("the answer to the last line", Duration::from_secs(15), |items| {
        events(items).iter().any(|e| e["event"] == "error" && e["code"] == "too_long")
    });
    let answered = c.count();
    c.wait_for("2 s of parts after the last answer", Duration::from_secs(15), |items| {
        parts(&items[answered..]).count() >= 6 && parts(items).count() >= 9
    });
    let (items, code) = c.finish();
    drop(taken);
    assert_eq!(code, 0);

    let ev = events(&items);
    let codes: Vec<&str> = ev.iter().filter(|e| e["event"] == "error").map(|e| e["code"].as_str().unwrap()).collect();
    assert_eq!(
        codes,
        ["malformed", "malformed", "invalid", "duplicate_participant", "unknown_participant", "input_failed", "unknown_track", "too_long"],
        "{ev:?}"
    );
    assert!(!ev.iter().any(|e| e["event"] == "fatal"));
    let applied = ev.iter().filter(|e| e["event"] == "applied").count();
    assert_eq!(applied, 1 + 1 + 1 + 1, "add p1, add p1:v2, remove p1:v2, shutdown: {ev:?}");
    // output kept flowing: regular 1/3 s parts, continuous on the media timeline
    let p: Vec<&Received> = parts(&items).collect();
    assert!(p.len() >= 9, "{} parts", p.len());
    check_parts_continuous(&p);
    // Wall-clock delivery gaps are incidental (a loaded 2-core CI machine can hold the
    // reader back for a while), so the bound is loose; a stopped output still fails it.
    for w in p.windows(2) {
        let gap = w[1].at.duration_since(w[0].at);
        assert!(gap < Duration::from_secs(3), "output stalled for {gap:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Waits until the compositor's log says `what`.
fn wait_log(c: &Compositor, what: &str, timeout: Duration) {
    let t0 = std::time::Instant::now();
    while !c.log_text().contains(what) {
        assert!(t0.elapsed() < timeout, "no {what:?} in the log within {timeout:?}:\n{}", c.log_text());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A spare (`--standby`) writes nothing until `start`, then runs as any compositor; a second
/// `start` is an error and the output goes on.
#[test]
fn a_standby_compositor_waits_for_start_then_runs() {
    let dir = temp_dir("standby");
    let mut c = Compositor::start_with(&dir, &["--standby"]);
    wait_log(&c, "compositor ready in standby", Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(c.count(), 0, "a spare writes nothing before its start");
    c.send(r#"{"op":"start","room":"r-standby"}"#);
    c.send(r#"{"op":"add_participant","id":"p1","name":"Ada"}"#);
    c.wait_for("three parts", Duration::from_secs(20), |items| parts(items).count() >= 3);
    c.send(r#"{"op":"start","room":"r-standby"}"#);
    c.wait_for("the answer to the second start", Duration::from_secs(10), |items| {
        events(items).iter().any(|e| e["event"] == "error" && e["code"] == "already_started")
    });
    let before = c.count();
    c.wait_for("parts after the second start", Duration::from_secs(10), |items| parts(&items[before..]).count() >= 2);
    wait_log(&c, "first part out: from standby", Duration::from_secs(10));
    let log = c.log_text();
    let (items, code) = c.finish();
    assert_eq!(code, 0);
    assert!(log.contains("starting from standby") && log.contains("r-standby"), "{log}");
    let ev = events(&items);
    assert_eq!(ev.first().map(|e| e["event"].clone()), Some("started".into()), "{ev:?}");
    assert!(ev.iter().any(|e| e["event"] == "applied" && e["op"] == "add_participant"), "{ev:?}");
    check_parts_continuous(&parts(&items).collect::<Vec<_>>());
}

/// A spare the gateway lets go (stdin closed, or `shutdown`) exits 0 without any output.
#[test]
fn a_standby_compositor_let_go_exits_quietly() {
    let dir = temp_dir("standby-quit");
    let c = Compositor::start_with(&dir, &["--standby"]);
    wait_log(&c, "compositor ready in standby", Duration::from_secs(30));
    let (items, code) = c.finish();
    assert_eq!(code, 0);
    assert_eq!(items.len(), 0, "no output from a spare never started");
}
