//! End to end: the real `roomcast-compositor` binary fed with VP8/Opus RTP from in-process
//! GStreamer senders; its framed output is written to .mp4 files and decoded with ffmpeg.
//!
//! Phases: red/green/blue join (2x2 grid, 4th slot empty) → yellow joins at runtime, over
//! H.264 (4 tiles) → green leaves (red, blue, yellow, empty slot) → blue's sender dies (its
//! tile shows the placeholder again, a stall is reported). Output must keep flowing with
//! regular parts and no timestamp gaps throughout.

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

fn audio_sender(port: u16) -> gst::Element {
    let desc = format!(
        "audiotestsrc is-live=true freq=440 volume=0.5 ! audio/x-raw,rate=48000,channels=2 \
         ! opusenc ! rtpopuspay pt=111 ! udpsink host=127.0.0.1 port={port} sync=false async=false"
    );
    let p = gst::parse::launch(&desc).unwrap();
    p.set_state(gst::State::Playing).unwrap();
    p
}

fn add_track(c: &mut Compositor, pid: &str, kind: &str, codec: &str, pt: u8, port: u16) {
    c.send(&format!(
        r#"{{"op":"add_track","track_id":"{pid}:{kind}","participant_id":"{pid}","kind":"{kind}","codec":"{codec}","payload_type":{pt},"rtp_port":{port},"rtcp_port":{}}}"#,
        free_port()
    ));
}

/// init + the parts of the last complete-ish segment window before `until`, as an .mp4.
fn snapshot_file(items: &[Received], until: Instant, path: &Path) {
    let init = items
        .iter()
        .find(|r| r.header["kind"] == "init")
        .expect("an init segment");
    let before: Vec<&Received> = parts(items).filter(|r| r.at <= until).collect();
    let start = before
        .iter()
        .rposition(|r| {
            r.header["segment_start"] == true && r.at + Duration::from_millis(300) <= until
        })
        .or_else(|| {
            before
                .iter()
                .rposition(|r| r.header["segment_start"] == true)
        })
        .expect("a segment start before the snapshot");
    let mut f = File::create(path).unwrap();
    f.write_all(&init.body).unwrap();
    for p in &before[start..] {
        f.write_all(&p.body).unwrap();
    }
}

/// Last decoded frame of `path` as RGB24.
fn last_frame(path: &Path) -> Vec<u8> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .output()
        .expect("ffmpeg (apt-get install ffmpeg)");
    assert!(
        out.status.success(),
        "ffmpeg: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let frame = (W * H * 3) as usize;
    assert!(
        out.stdout.len() >= frame,
        "no frame decoded from {}",
        path.display()
    );
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

fn check_tiles(frame: &[u8], expected: &[Tile], what: &str) {
    let grid = layout(expected.len(), W, H);
    assert_eq!(grid.slots.len(), expected.len(), "{what}: slot count");
    for (slot, want) in grid.slots.iter().zip(expected) {
        let Rect {
            x,
            y,
            width,
            height,
        } = *slot;
        // video fills the tile: its centre; a placeholder has a centred name: sample higher up
        let (px, py) = if *want == Tile::Placeholder {
            (x + width / 4, y + height / 4)
        } else {
            (x + width / 2, y + height / 2)
        };
        let rgb = mean_rgb(frame, px, py);
        assert_eq!(
            classify(rgb),
            Some(*want),
            "{what}: tile at {slot:?} has colour {rgb:?}, expected {want:?}"
        );
    }
    // the gutter/letterbox outside the grid is black
    let rgb = mean_rgb(frame, 10, 10);
    assert!(rgb.iter().all(|c| *c < 30), "{what}: corner is {rgb:?}");
}

#[test]
fn composites_a_changing_room_into_regular_cmaf_parts() {
    gst::init().unwrap();
    let dir = temp_dir("broadcast");
    let t_start = Instant::now();

    let ports: Vec<u16> = (0..5).map(|_| free_port()).collect();
    let mut c = Compositor::start(&dir);
    c.wait_for("the init segment", Duration::from_secs(20), |items| {
        items.iter().any(|r| r.header["kind"] == "init")
    });

    let mut senders = vec![
        video_sender(0xffff_0000, ports[0]),
        video_sender(0xff00_ff00, ports[1]),
        video_sender(0xff00_00ff, ports[2]),
        audio_sender(ports[4]),
    ];
    for (i, name) in ["Red", "Green", "Blue"].iter().enumerate() {
        c.send(&format!(
            r#"{{"op":"add_participant","id":"p{i}","name":"{name}"}}"#
        ));
        add_track(&mut c, &format!("p{i}"), "video", "VP8", 96, ports[i]);
    }
    add_track(&mut c, "p0", "audio", "opus", 111, ports[4]);
    c.send("this is not json"); // must be reported, not fatal
    thread::sleep(Duration::from_secs(4));
    let t1 = Instant::now();

    // a fourth participant joins at runtime, sending H.264
    senders.push(h264_sender(0xffff_ff00, ports[3]));
    c.send(r#"{"op":"add_participant","id":"p3","name":"Yellow"}"#);
    add_track(&mut c, "p3", "video", "H264", 102, ports[3]);
    thread::sleep(Duration::from_secs(3));
    let t2 = Instant::now();

    // green leaves
    c.send(r#"{"op":"remove_participant","id":"p1"}"#);
    thread::sleep(Duration::from_secs(3));
    let t3 = Instant::now();

    // blue's sender dies: its tile falls back to the placeholder, a stall is reported
    senders[2].set_state(gst::State::Null).unwrap();
    thread::sleep(Duration::from_secs(3));
    let t4 = Instant::now();

    // red turns its camera off (media keeps flowing): its named placeholder shows; then on again
    c.send(r#"{"op":"set_video_muted","id":"p0","muted":true}"#);
    thread::sleep(Duration::from_secs(2));
    let t5 = Instant::now();
    c.send(r#"{"op":"set_video_muted","id":"p0","muted":false}"#);
    thread::sleep(Duration::from_secs(2));
    let t6 = Instant::now();

    let log_path = c.log.clone();
    let (items, code) = c.finish();
    for s in &senders {
        let _ = s.set_state(gst::State::Null);
    }
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    assert_eq!(code, 0, "exit code; log:\n{log}");

    // ---- events
    let events: Vec<&Value> = items
        .iter()
        .filter(|r| r.header["kind"] == "event")
        .map(|r| &r.header)
        .collect();
    assert!(events.iter().any(|e| e["event"] == "started"));
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "error" && e["code"] == "malformed"),
        "bad line reported: {events:?}"
    );
    let applied = events.iter().filter(|e| e["event"] == "applied").count();
    assert_eq!(applied, 3 + 3 + 1 + 2 + 1 + 2 + 1, "applied acks: {events:?}");
    assert!(events
        .iter()
        .any(|e| e["event"] == "stats" && e["fps_out"].as_f64().unwrap_or(0.0) > 0.0));
    assert_eq!(events.last().unwrap()["event"], "stopped");
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "input_stalled" && e["track_id"] == "p2:video"),
        "stall reported: {events:?}"
    );

    // ---- parts: regular, continuous, delivered without stalls
    let part_list: Vec<&Received> = parts(&items).collect();
    assert!(part_list.len() >= 33, "only {} parts", part_list.len());
    let frame_ns = 1_000_000_000u64 / FPS as u64;
    for p in &part_list[..part_list.len() - 1] {
        let d = p.header["duration_ns"].as_u64().unwrap();
        assert!(
            (333_000_000 - frame_ns..=333_333_334 + frame_ns).contains(&d),
            "irregular part duration {d}: {}",
            p.header
        );
        assert!(!p.body.is_empty());
    }
    for w in part_list.windows(2) {
        let gap = w[1].at.duration_since(w[0].at);
        assert!(
            gap < Duration::from_millis(1500),
            "output stalled for {gap:?}"
        );
    }
    let segs = part_list
        .iter()
        .filter(|p| p.header["segment_start"] == true)
        .count();
    assert!(segs >= 11, "{segs} segments");
    assert!(part_list
        .iter()
        .all(|p| p.header["independent"] == p.header["segment_start"]));

    // ---- the whole stream decodes as 1280x720 H.264 + AAC 48 kHz stereo, no video gaps
    let full = dir.join("full.mp4");
    {
        let mut f = File::create(&full).unwrap();
        for r in items.iter().filter(|r| r.header["kind"] != "event") {
            f.write_all(&r.body).unwrap();
        }
    }
    let probe = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_type,codec_name,width,height,sample_rate,channels",
            "-of",
            "json",
        ])
        .arg(&full)
        .output()
        .expect("ffprobe");
    let probe: Value = serde_json::from_slice(&probe.stdout).unwrap();
    let streams = probe["streams"].as_array().unwrap();
    let video = streams
        .iter()
        .find(|s| s["codec_type"] == "video")
        .expect("a video stream");
    let audio = streams
        .iter()
        .find(|s| s["codec_type"] == "audio")
        .expect("an audio stream");
    assert_eq!(video["codec_name"], "h264");
    assert_eq!(
        (video["width"].as_u64(), video["height"].as_u64()),
        (Some(W as u64), Some(H as u64))
    );
    assert_eq!(audio["codec_name"], "aac");
    assert_eq!(audio["sample_rate"], "48000");
    assert_eq!(audio["channels"], 2);

    let pts = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v",
            "-show_entries",
            "packet=pts_time",
            "-of",
            "csv=p=0",
        ])
        .arg(&full)
        .output()
        .unwrap();
    let times: Vec<f64> = String::from_utf8_lossy(&pts.stdout)
        .lines()
        .filter_map(|l| l.trim().trim_end_matches(',').parse().ok())
        .collect();
    assert!(
        times.len() as f64 >= 17.0 * FPS as f64,
        "{} video frames",
        times.len()
    );
    for w in times.windows(2) {
        let dt = w[1] - w[0];
        assert!(
            dt > 0.0 && dt < 2.5 / FPS as f64,
            "video timestamp gap {dt} s at {}",
            w[0]
        );
    }

    // the Opus tone made it into the AAC track
    let pcm = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&full)
        .args(["-vn", "-f", "s16le", "-ac", "1", "-ar", "8000", "-"])
        .output()
        .unwrap();
    let samples: Vec<i16> = pcm
        .stdout
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    let tail = &samples[samples.len() / 2..];
    let rms = (tail.iter().map(|s| (*s as f64).powi(2)).sum::<f64>() / tail.len() as f64).sqrt();
    assert!(rms > 1000.0, "audio RMS {rms}: the tone is missing");

    // ---- what the grid showed at the end of each phase
    use Tile::*;
    let phases = [
        (
            t1,
            vec![Red, Green, Blue, Placeholder],
            "three participants",
        ),
        (t2, vec![Red, Green, Blue, Yellow], "yellow joined"),
        (t3, vec![Red, Blue, Yellow, Placeholder], "green left"),
        (
            t4,
            vec![Red, Placeholder, Yellow, Placeholder],
            "blue stalled",
        ),
        (
            t5,
            vec![Placeholder, Placeholder, Yellow, Placeholder],
            "red's camera off",
        ),
        (t6, vec![Red, Placeholder, Yellow, Placeholder], "red's camera on"),
    ];
    for (i, (until, expected, what)) in phases.iter().enumerate() {
        let path = dir.join(format!("phase{i}.mp4"));
        snapshot_file(&items, *until, &path);
        let frame = last_frame(&path);
        check_tiles(&frame, expected, what);
    }

    if std::env::var_os("ROOMCAST_KEEP_TEST_OUTPUT").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        eprintln!("output kept in {}", dir.display());
    }
    eprintln!("broadcast test took {:?}", t_start.elapsed());
}
