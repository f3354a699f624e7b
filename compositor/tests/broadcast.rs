//! End to end: the real `roomcast-compositor` binary fed with VP8/Opus RTP from in-process
//! GStreamer senders; its framed output is written to .mp4 files and decoded with ffmpeg.
//!
//! Phases: red/green/blue join (2x2 grid, 4th slot empty) → yellow joins at runtime, over
//! H.264 (4 tiles) → green leaves (red, blue, yellow, empty slot) → blue's sender dies (its
//! tile shows the placeholder again, a stall is reported) → red's camera off (its named
//! placeholder) and on again. Each phase waits until the output shows the expected grid (and
//! still shows it a segment later). Output must keep flowing with regular parts and no
//! timestamp gaps throughout.

mod common;

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use gstreamer as gst;
use gstreamer::prelude::*;
use roomcast_compositor::layout::{layout, Rect};
use serde_json::Value;

fn video_sender(argb: u32, port: u16) -> gst::Element {
    let desc = format!(
        "videotestsrc is-live=true pattern=solid-color foreground-color={argb} \
         ! video/x-raw,width=320,height=180,framerate={FPS}/1 \
         ! vp8enc deadline=1 cpu-used=8 keyframe-max-dist={FPS} target-bitrate=300000 \
         ! rtpvp8pay pt=96 ! udpsink host=127.0.0.1 port={port} sync=false async=false"
    );
    let p = gst::parse::launch(&desc).unwrap();
    p.set_state(gst::State::Playing).unwrap();
    p
}

/// Same as `video_sender` but H.264 (covers the other depayloader/decoder).
fn h264_sender(argb: u32, port: u16) -> gst::Element {
    let desc = format!(
        "videotestsrc is-live=true pattern=solid-color foreground-color={argb} \
         ! video/x-raw,width=320,height=180,framerate={FPS}/1 \
         ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={FPS} bitrate=300 threads=1 \
         ! rtph264pay pt=102 config-interval=-1 ! udpsink host=127.0.0.1 port={port} sync=false async=false"
    );
    let p = gst::parse::launch(&desc).unwrap();
    p.set_state(gst::State::Playing).unwrap();
    p
}

/// A VP8 sender that, like a browser nobody asks, sends a keyframe only every `key_every` s.
fn rare_key_sender(argb: u32, port: u16, key_every: u32) -> gst::Element {
    let desc = format!(
        "videotestsrc is-live=true pattern=solid-color foreground-color={argb} \
         ! video/x-raw,width=320,height=180,framerate={FPS}/1 \
         ! vp8enc deadline=1 cpu-used=8 keyframe-max-dist={} target-bitrate=300000 \
         ! rtpvp8pay pt=96 ! udpsink host=127.0.0.1 port={port} sync=false async=false",
        FPS * key_every
    );
    let p = gst::parse::launch(&desc).unwrap();
    p.set_state(gst::State::Playing).unwrap();
    p
}

fn audio_sender(port: u16) -> gst::Element {
    let desc = format!(
        "audiotestsrc is-live=true freq=440 volume=0.5 ! audio/x-raw,rate=48000,channels=2 \
         ! opusenc ! rtpopuspay pt=111 ! udpsink host=127.0.0.1 port={port} sync=false async=false"
    );
    let p = gst::parse::launch(&desc).unwrap();
    p.set_state(gst::State::Playing).unwrap();
    p
}

/// Adds a track on freshly reserved ports and waits for the compositor's answer. Returns the
/// RTP port, for a sender started once the compositor listens on it. The probe sockets are
/// closed right before the line is sent; if another process still takes a port in that
/// moment, the input fails to open ("port in use?") and the track is retried on new ports.
fn add_track(c: &mut Compositor, pid: &str, kind: &str, codec: &str, pt: u8) -> u16 {
    let track_id = format!("{pid}:{kind}");
    for attempt in 1..=3 {
        let (rtp, rtcp) = (ReservedPort::new(), ReservedPort::new());
        let since = c.count();
        let (rtp_port, rtcp_port) = (rtp.release(), rtcp.release());
        c.send(&format!(
            r#"{{"op":"add_track","track_id":"{track_id}","participant_id":"{pid}","kind":"{kind}","codec":"{codec}","payload_type":{pt},"rtp_port":{rtp_port},"rtcp_port":{rtcp_port}}}"#
        ));
        let answer = c.wait_find(&format!("the answer to add_track {track_id}"), Duration::from_secs(10), |items| {
            items[since..]
                .iter()
                .map(|r| &r.header)
                .find(|h| {
                    h["kind"] == "event"
                        && ((h["event"] == "applied" && h["op"] == "add_track" && h["id"] == track_id.as_str())
                            || (h["event"] == "error" && h["track_id"] == track_id.as_str()))
                })
                .cloned()
        });
        if answer["event"] == "applied" {
            return rtp_port;
        }
        let port_taken = answer["code"] == "input_failed" && answer["message"].as_str().is_some_and(|m| m.contains("port in use"));
        assert!(port_taken && attempt < 3, "add_track {track_id}: {answer}");
        eprintln!("add_track {track_id}: a port was taken meanwhile ({answer}); new ports");
    }
    unreachable!()
}

/// Starts the compositor (once its init segment is out) and red, green and blue participants,
/// each with a VP8 track from `sender(argb, port)`. Returns it, the item count before they
/// joined, and the senders.
fn start_red_green_blue(dir: &Path, sender: impl Fn(u32, u16) -> gst::Element) -> (Compositor, usize, Vec<gst::Element>) {
    let mut c = Compositor::start(dir);
    c.wait_for("the init segment", Duration::from_secs(20), |items| items.iter().any(|r| r.header["kind"] == "init"));
    let since = c.count();
    let mut senders = Vec::new();
    for (i, (name, argb)) in [("Red", 0xffff_0000), ("Green", 0xff00_ff00), ("Blue", 0xff00_00ff)].into_iter().enumerate() {
        c.send(&format!(r#"{{"op":"add_participant","id":"p{i}","name":"{name}"}}"#));
        let port = add_track(&mut c, &format!("p{i}"), "video", "VP8", 96);
        senders.push(sender(argb, port));
    }
    (c, since, senders)
}

/// Index of the newest part at or after item `since` that starts a segment (a keyframe).
fn last_segment_start(items: &[Received], since: usize) -> Option<usize> {
    (since..items.len()).rev().find(|&i| items[i].header["kind"] == "part" && items[i].header["segment_start"] == true)
}

/// init + the parts from `items[start]` (a segment start) on, as an .mp4.
fn snapshot_file(items: &[Received], start: usize, path: &Path) {
    let init = items.iter().find(|r| r.header["kind"] == "init").expect("an init segment");
    let mut f = File::create(path).unwrap();
    f.write_all(&init.body).unwrap();
    for p in parts(&items[start..]) {
        f.write_all(&p.body).unwrap();
    }
}

/// The newest picture of the output, decoded from the newest segment that began at or after
/// item `since`, with the number of items received at the time; None while there is no such
/// segment, or no part newer than `*seen` (the last part looked at, to spare decoding).
fn newest_frame(c: &Compositor, since: usize, seen: &mut Option<usize>, path: &Path) -> Option<(usize, Vec<u8>)> {
    let n = c.with_items(|items| {
        let start = last_segment_start(items, since)?;
        let newest = items.iter().rposition(|r| r.header["kind"] == "part");
        if newest == *seen {
            return None;
        }
        *seen = newest;
        snapshot_file(items, start, path);
        Some(items.len())
    })?;
    Some((n, last_frame(path)))
}

/// How long one change (join, H.264 keyframe, leave, stall + repeat, camera off/on) may take
/// to show in the output on a loaded 2-core machine. Nominally well under 3 s.
const PHASE_TIMEOUT: Duration = Duration::from_secs(10);

/// Waits until the output produced after item `since` shows `expected` (panics after
/// PHASE_TIMEOUT), then checks that the next segment still shows it: a state, not a flicker.
fn await_grid(c: &Compositor, since: usize, expected: &[Tile], what: &str, path: &Path) {
    let t0 = Instant::now();
    let mut seen = None;
    let mut last = String::from("no segment yet");
    let matched = loop {
        if let Some((n, frame)) = newest_frame(c, since, &mut seen, path) {
            match check_tiles(&frame, expected, what) {
                Ok(()) => break n,
                Err(e) => last = e,
            }
        }
        assert!(
            t0.elapsed() < PHASE_TIMEOUT,
            "{what}: the grid did not become {expected:?} within {PHASE_TIMEOUT:?}; \
             last seen: {last}; log:\n{}",
            c.log_text()
        );
        thread::sleep(Duration::from_millis(200));
    };
    c.wait_for(&format!("{what}: the next segment"), PHASE_TIMEOUT, |items| last_segment_start(items, matched).is_some());
    let (_, frame) = newest_frame(c, matched, &mut None, path).expect("a segment");
    if let Err(e) = check_tiles(&frame, expected, what) {
        panic!("{what}: the grid showed {expected:?}, then no longer: {e}");
    }
    eprintln!("{what}: shown after {:?}", t0.elapsed());
}

/// Last decoded frame of `path` as RGB24.
fn last_frame(path: &Path) -> Vec<u8> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .output()
        .expect("ffmpeg (apt-get install ffmpeg)");
    assert!(out.status.success(), "ffmpeg: {}", String::from_utf8_lossy(&out.stderr));
    let frame = (W * H * 3) as usize;
    assert!(out.stdout.len() >= frame, "no frame decoded from {}", path.display());
    out.stdout[out.stdout.len() - frame..].to_vec()
}

/// Mean colour of a small square around (x, y).
fn mean_rgb(frame: &[u8], x: i32, y: i32) -> [u32; 3] {
    let mut sum = [0u32; 3];
    let mut n = 0;
    for yy in y - 8..y + 8 {
        for xx in x - 8..x + 8 {
            let i = ((yy as u32 * W + xx as u32) * 3) as usize;
            for c in 0..3 {
                sum[c] += frame[i + c] as u32;
            }
            n += 1;
        }
    }
    sum.map(|s| s / n)
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Tile {
    Red,
    Green,
    Blue,
    Yellow,
    Placeholder,
}

fn classify(rgb: [u32; 3]) -> Option<Tile> {
    let [r, g, b] = rgb;
    let hi = |v: u32| v > 170;
    let lo = |v: u32| v < 90;
    match () {
        _ if hi(r) && lo(g) && lo(b) => Some(Tile::Red),
        _ if lo(r) && hi(g) && lo(b) => Some(Tile::Green),
        _ if lo(r) && lo(g) && hi(b) => Some(Tile::Blue),
        _ if hi(r) && hi(g) && lo(b) => Some(Tile::Yellow),
        _ if r < 70 && g < 70 && b < 80 && (r + g + b) > 15 => Some(Tile::Placeholder),
        _ => None,
    }
}

fn check_tiles(frame: &[u8], expected: &[Tile], what: &str) -> Result<(), String> {
    let grid = layout(expected.len(), W, H);
    assert_eq!(grid.slots.len(), expected.len(), "{what}: slot count");
    for (slot, want) in grid.slots.iter().zip(expected) {
        let Rect { x, y, width, height } = *slot;
        // video fills the tile: its centre; a placeholder has a centred name: sample higher up
        let (px, py) = if *want == Tile::Placeholder { (x + width / 4, y + height / 4) } else { (x + width / 2, y + height / 2) };
        let rgb = mean_rgb(frame, px, py);
        if classify(rgb) != Some(*want) {
            return Err(format!("{what}: tile at {slot:?} has colour {rgb:?}, expected {want:?}"));
        }
    }
    // the gutter/letterbox outside the grid is black
    let rgb = mean_rgb(frame, 10, 10);
    if !rgb.iter().all(|c| *c < 30) {
        return Err(format!("{what}: corner is {rgb:?}"));
    }
    Ok(())
}

#[test]
fn composites_a_changing_room_into_regular_cmaf_parts() {
    gst::init().unwrap();
    let dir = temp_dir("broadcast");
    let t_start = Instant::now();
    use Tile::*;

    // Each phase waits for the change to show in the output (not for a fixed time, which a
    // busy CI machine can overrun), with a generous timeout; see `await_grid`.
    let (mut c, since, mut senders) = start_red_green_blue(&dir, video_sender);
    let port = add_track(&mut c, "p0", "audio", "opus", 111);
    senders.push(audio_sender(port));
    c.send("this is not json"); // must be reported, not fatal
    let phase = |c: &Compositor, i: usize, since: usize, expected: &[Tile], what: &str| {
        await_grid(c, since, expected, what, &dir.join(format!("phase{i}.mp4")))
    };
    phase(&c, 0, since, &[Red, Green, Blue, Placeholder], "three participants");
    // The ops figures: a stats event (one a second) once the decoders deliver and x264 runs.
    let stats = c.wait_find("a stats event with fps_in and encode_ms_avg", PHASE_TIMEOUT, |items| {
        events(&items[since..])
            .into_iter()
            .find(|e| {
                e["event"] == "stats"
                    && e["fps_in"].as_f64().is_some_and(|f| f > 0.0)
                    && e["encode_ms_avg"].as_f64().is_some_and(|ms| ms > 0.0)
            })
            .cloned()
    });
    eprintln!("stats with three inputs: {stats}");
    assert!(stats["frames_dropped"].is_u64(), "{stats}");
    assert!(stats["packets_lost"].is_u64(), "{stats}");
    assert!(stats["encode_ms_max"].as_f64().unwrap() >= stats["encode_ms_avg"].as_f64().unwrap(), "{stats}");

    // a fourth participant joins at runtime, sending H.264
    let since = c.count();
    c.send(r#"{"op":"add_participant","id":"p3","name":"Yellow"}"#);
    let port = add_track(&mut c, "p3", "video", "H264", 102);
    senders.push(h264_sender(0xffff_ff00, port));
    phase(&c, 1, since, &[Red, Green, Blue, Yellow], "yellow joined");

    // green leaves
    let since = c.count();
    c.send(r#"{"op":"remove_participant","id":"p1"}"#);
    phase(&c, 2, since, &[Red, Blue, Yellow, Placeholder], "green left");

    // blue's sender dies: a stall is reported, its tile falls back to the placeholder
    let since = c.count();
    senders[2].set_state(gst::State::Null).unwrap();
    c.wait_for("blue's stall", PHASE_TIMEOUT, |items| {
        events(&items[since..]).iter().any(|e| e["event"] == "input_stalled" && e["track_id"] == "p2:video")
    });
    phase(&c, 3, since, &[Red, Placeholder, Yellow, Placeholder], "blue stalled");

    // red turns its camera off (media keeps flowing): its named placeholder shows; then on again
    let since = c.count();
    c.send(r#"{"op":"set_video_muted","id":"p0","muted":true}"#);
    phase(&c, 4, since, &[Placeholder, Placeholder, Yellow, Placeholder], "red's camera off");
    let since = c.count();
    c.send(r#"{"op":"set_video_muted","id":"p0","muted":false}"#);
    phase(&c, 5, since, &[Red, Placeholder, Yellow, Placeholder], "red's camera on");

    // However quickly the phases went, the totals below are checked over at least 16 s of
    // output (48 parts of 1/3 s): the output keeps going with the room as it is now.
    const MIN_PARTS: usize = 48;
    c.wait_for("16 s of output", Duration::from_secs(40), |items| parts(items).count() >= MIN_PARTS);

    let log_path = c.log.clone();
    let (items, code) = c.finish();
    for s in &senders {
        let _ = s.set_state(gst::State::Null);
    }
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    assert_eq!(code, 0, "exit code; log:\n{log}");

    // ---- events
    let events: Vec<&Value> = items.iter().filter(|r| r.header["kind"] == "event").map(|r| &r.header).collect();
    assert!(events.iter().any(|e| e["event"] == "started"));
    assert!(events.iter().any(|e| e["event"] == "error" && e["code"] == "malformed"), "bad line reported: {events:?}");
    let applied = events.iter().filter(|e| e["event"] == "applied").count();
    assert_eq!(applied, 3 + 3 + 1 + 2 + 1 + 2 + 1, "applied acks: {events:?}");
    assert!(events.iter().any(|e| e["event"] == "stats" && e["fps_out"].as_f64().unwrap_or(0.0) > 0.0));
    // every stats event has the ops fields (the timings are null only in an interval
    // without frames or parts, which this run does not have once it is going)
    let stats: Vec<&&Value> = events.iter().filter(|e| e["event"] == "stats").collect();
    for e in &stats {
        assert!(e["fps_in"].is_number(), "{e}");
        assert!(e["frames_dropped"].is_u64() && e["packets_lost"].is_u64(), "{e}");
        for k in ["encode_ms_avg", "encode_ms_max", "part_age_ms_max"] {
            assert!(e[k].is_number() || e[k].is_null(), "{k}: {e}");
        }
    }
    assert!(stats.iter().any(|e| e["part_age_ms_max"].as_f64().is_some_and(|ms| ms > 0.0)), "no part_age_ms_max: {stats:?}");
    assert_eq!(events.last().unwrap()["event"], "stopped");
    assert!(events.iter().any(|e| e["event"] == "input_stalled" && e["track_id"] == "p2:video"), "stall reported: {events:?}");

    // ---- parts: regular, continuous, delivered without stalls
    let part_list: Vec<&Received> = parts(&items).collect();
    check_parts_continuous(&part_list);
    // each part's age: its last video frame left the compositor this long before the part
    // was handed to the writer (a few hundred ms: the muxer's wait for the part to end)
    let ages: Vec<u64> = part_list
        .iter()
        .map(|p| {
            let age = p.header["age_us"].as_u64().unwrap_or_else(|| panic!("part without age_us: {}", p.header));
            // A bound on each for sanity; typical ages are checked on the median below (a
            // busy machine can hold one part back).
            assert!(age > 0 && age < 10_000_000, "implausible age: {}", p.header);
            age
        })
        .collect();
    let mut sorted = ages.clone();
    sorted.sort_unstable();
    eprintln!(
        "part age_us: min {} median {} max {} over {} parts",
        sorted[0],
        sorted[sorted.len() / 2],
        sorted[sorted.len() - 1],
        sorted.len()
    );
    let median = sorted[sorted.len() / 2];
    assert!(median < 2_000_000, "median part age {median} µs: parts leave far later than the muxer's wait");
    let field = |k: &str| -> Vec<f64> { stats.iter().filter_map(|e| e[k].as_f64()).collect() };
    eprintln!(
        "stats: fps_in {:?}; encode_ms_avg {:?}; encode_ms_max {:?}; frames_dropped {}; packets_lost {}",
        field("fps_in"),
        field("encode_ms_avg"),
        field("encode_ms_max"),
        stats.last().unwrap()["frames_dropped"],
        stats.last().unwrap()["packets_lost"],
    );
    // Wall-clock delivery gaps are incidental (a loaded 2-core CI machine can hold the
    // reader back for a while), so the bound is loose; a stopped output still fails it.
    for w in part_list.windows(2) {
        let gap = w[1].at.duration_since(w[0].at);
        assert!(gap < Duration::from_secs(3), "output stalled for {gap:?}");
    }
    // a segment (keyframe) every 1 s = every third part
    let segs = part_list.iter().filter(|p| p.header["segment_start"] == true).count();
    assert!(segs >= part_list.len() / 3 - 1, "{segs} segments in {} parts", part_list.len());
    assert!(part_list.iter().all(|p| p.header["independent"] == p.header["segment_start"]));

    // ---- the whole stream decodes as 1280x720 H.264 + AAC 48 kHz stereo, no video gaps
    let full = dir.join("full.mp4");
    {
        let mut f = File::create(&full).unwrap();
        for r in items.iter().filter(|r| r.header["kind"] != "event") {
            f.write_all(&r.body).unwrap();
        }
    }
    let probe = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "stream=codec_type,codec_name,width,height,sample_rate,channels", "-of", "json"])
        .arg(&full)
        .output()
        .expect("ffprobe");
    let probe: Value = serde_json::from_slice(&probe.stdout).unwrap();
    let streams = probe["streams"].as_array().unwrap();
    let video = streams.iter().find(|s| s["codec_type"] == "video").expect("a video stream");
    let audio = streams.iter().find(|s| s["codec_type"] == "audio").expect("an audio stream");
    assert_eq!(video["codec_name"], "h264");
    assert_eq!((video["width"].as_u64(), video["height"].as_u64()), (Some(W as u64), Some(H as u64)));
    assert_eq!(audio["codec_name"], "aac");
    assert_eq!(audio["sample_rate"], "48000");
    assert_eq!(audio["channels"], 2);

    let pts = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v", "-show_entries", "packet=pts_time", "-of", "csv=p=0"])
        .arg(&full)
        .output()
        .unwrap();
    let times: Vec<f64> =
        String::from_utf8_lossy(&pts.stdout).lines().filter_map(|l| l.trim().trim_end_matches(',').parse().ok()).collect();
    // MIN_PARTS (16 s) of output were waited for: allow a second for the first part
    assert!(times.len() as f64 >= 15.0 * FPS as f64, "{} video frames", times.len());
    for w in times.windows(2) {
        let dt = w[1] - w[0];
        assert!(dt > 0.0 && dt < 2.5 / FPS as f64, "video timestamp gap {dt} s at {}", w[0]);
    }

    // the Opus tone made it into the AAC track
    let pcm = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&full)
        .args(["-vn", "-f", "s16le", "-ac", "1", "-ar", "8000", "-"])
        .output()
        .unwrap();
    let samples: Vec<i16> = pcm.stdout.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect();
    let tail = &samples[samples.len() / 2..];
    let rms = (tail.iter().map(|s| (*s as f64).powi(2)).sum::<f64>() / tail.len() as f64).sqrt();
    assert!(rms > 1000.0, "audio RMS {rms}: the tone is missing");

    if std::env::var_os("ROOMCAST_KEEP_TEST_OUTPUT").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        eprintln!("output kept in {}", dir.display());
    }
    eprintln!("broadcast test took {:?}", t_start.elapsed());
}

/// A starved host: for 8 s the compositor gets an eighth of the CPU time it asks for (it is
/// frozen with SIGSTOP 700 ms out of every 800 ms) while its inputs keep sending, as happens
/// when browsers and the compositor share two cores. The mixer falls seconds behind and
/// skips frames to catch up; that must never make the decoders drop frames (which kept
/// tiles on placeholders for seconds in the browser runs). Once it gets the CPU again,
/// every tile shows its participant within a couple of seconds, without new keyframes (the
/// senders send one every 20 s, as a browser nobody asks).
#[test]
fn every_tile_is_live_again_soon_after_the_host_was_starved() {
    gst::init().unwrap();
    let dir = temp_dir("starved");
    use Tile::*;
    let (c, since, senders) = start_red_green_blue(&dir, |argb, port| rare_key_sender(argb, port, 20));
    await_grid(&c, since, &[Red, Green, Blue, Placeholder], "three participants", &dir.join("before.mp4"));

    let pid = c.pid().to_string();
    let signal = |sig: &str| assert!(Command::new("kill").args([sig, &pid]).status().unwrap().success(), "kill {sig}");
    for _ in 0..10 {
        signal("-STOP");
        thread::sleep(Duration::from_millis(700));
        signal("-CONT");
        thread::sleep(Duration::from_millis(100));
    }
    let during = c.count();
    let resumed = Instant::now();
    await_grid(&c, during, &[Red, Green, Blue, Placeholder], "after 8 s of a starved host", &dir.join("after.mp4"));
    let took = resumed.elapsed();
    let stats = c.wait_find("a stats event", Duration::from_secs(5), |items| {
        events(&items[during..]).into_iter().rev().find(|e| e["event"] == "stats").cloned()
    });
    eprintln!("every tile live again {took:?} after the starvation; then: {stats}");
    // Segments from the starvation on, for the log: with a keyframe at each segment's first
    // frame they stay near one segment plus a hole (at most 2.0–3.0 s in 8 runs); with x264's
    // frame count alone one spanned 3.8–5.4 s in 2 of 3 runs. Too variable under SIGSTOP to
    // assert on; `segments.rs` has the rule's tests.
    let segments = c.with_items(|items| segment_durations(parts(&items[since..])));
    eprintln!("segments from the starvation on (ms): {segments:?}");
    let (_, code) = c.finish();
    for s in &senders {
        let _ = s.set_state(gst::State::Null);
    }
    assert_eq!(code, 0);
    assert!(stats["mixer_catchups"].as_u64().unwrap_or(0) > 0, "the mixer never fell behind: not the case under test: {stats}");
    assert_eq!(stats["frames_dropped"], 0, "decoders dropped frames because the mixer was late: {stats}");
    // await_grid also waited for the next segment (1 s) to still show the grid.
    assert!(took < Duration::from_secs(5), "tiles came back {took:?} after the starvation");
}

/// The duration (ms) of each whole segment among `parts` (from one segment start to the next).
fn segment_durations<'a>(parts: impl Iterator<Item = &'a Received>) -> Vec<u64> {
    let mut out = Vec::new();
    let mut current: Option<u64> = None;
    for p in parts {
        if p.header["segment_start"] == true {
            if let Some(ns) = current.take() {
                out.push(ns / 1_000_000);
            }
            current = Some(0);
        }
        if let Some(ns) = current.as_mut() {
            *ns += p.header["duration_ns"].as_u64().unwrap_or(0);
        }
    }
    out
}
