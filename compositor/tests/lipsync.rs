//! Lip sync end to end: one participant publishes audio and video from one GStreamer
//! `rtpbin` (so its RTCP sender reports share one NTP clock and describe capture time), and
//! the packets of one of them reach the compositor 400 ms after the other's (a queue on the
//! wire, after rtpbin). The content has one A/V event: at capture time `EVENT_NS`, the
//! picture turns from black to white and a tone starts. The compositor's output is decoded
//! with ffmpeg and the two onsets compared: with the SRs the compositor delays the early
//! track to match; without them (no `rtcp_port`) the output shows the skew on the wire.

mod common;

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::Duration;

use common::*;
use gstreamer as gst;
use gstreamer::prelude::*;
use serde_json::Value;

/// Capture time (sender running time) of the A/V event.
const EVENT_NS: u64 = 7_000_000_000;
/// How much later the late track's packets go out. What the output shows without SRs is
/// about 100 ms less (the audio encoder's latency makes audio packets ~45 ms late already, and
/// the output path puts the sound ~40 ms after the picture): 400 ms leaves the skew clearly
/// above the 200 ms the test asserts.
const WIRE_DELAY_MS: u64 = 400;
const OUT_FPS: u32 = 30;
/// What "in sync" may measure: +25–50 ms was typical (AAC priming, Opus pre-skip and 30 fps
/// sampling are in the output path either way); the margin is for a busy machine, still far
/// below the wire delay that an unsynced output shows.
const MAX_SYNCED_OFFSET_MS: f64 = 120.0;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Late {
    Video,
    Audio,
}

/// The publisher: black/silence until `EVENT_NS`, then white/tone; VP8 + Opus through one
/// rtpbin (SRs every ~0.5 s, capture-time NTP mapping); `late` delayed on the wire. One
/// keyframe only, at the start, as a browser that is never asked for another: a video track
/// that lip sync delays must not lose a packet to its jitter buffer (it did, with
/// `drop-on-latency`, and the picture never came back).
fn sender(late: Late, video: u16, video_rtcp: u16, audio: u16, audio_rtcp: u16) -> gst::Pipeline {
    let wire = |delayed: bool| {
        let ns = if delayed { WIRE_DELAY_MS * 1_000_000 } else { 0 };
        format!("queue max-size-buffers=0 max-size-bytes=0 max-size-time=2000000000 min-threshold-time={ns}")
    };
    let (vwire, awire) = (wire(late == Late::Video), wire(late == Late::Audio));
    let desc = format!(
        "rtpbin name=rb rtcp-sync-send-time=false \
         videotestsrc is-live=true pattern=black \
           ! video/x-raw,format=I420,width=320,height=180,framerate=30/1 ! identity name=vmark \
           ! vp8enc deadline=1 cpu-used=8 keyframe-max-dist=100000 target-bitrate=300000 \
           ! rtpvp8pay pt=96 ! rb.send_rtp_sink_0 \
         rb.send_rtp_src_0 ! {vwire} ! udpsink host=127.0.0.1 port={video} sync=false async=false \
         rb.send_rtcp_src_0 ! udpsink host=127.0.0.1 port={video_rtcp} sync=false async=false \
         audiotestsrc is-live=true wave=sine freq=1000 volume=0.5 samplesperbuffer=480 \
           ! audio/x-raw,format=S16LE,rate=48000,channels=1 ! identity name=amark \
           ! opusenc ! rtpopuspay pt=111 ! rb.send_rtp_sink_1 \
         rb.send_rtp_src_1 ! {awire} ! udpsink host=127.0.0.1 port={audio} sync=false async=false \
         rb.send_rtcp_src_1 ! udpsink host=127.0.0.1 port={audio_rtcp} sync=false async=false"
    );
    let p = gst::parse::launch(&desc).unwrap().downcast::<gst::Pipeline>().unwrap();
    let rb = p.by_name("rb").unwrap();
    for session in [0u32, 1] {
        let s = rb.emit_by_name::<gst::Element>("get-session", &[&session]);
        s.set_property("rtcp-min-interval", 500_000_000u64);
    }
    // From EVENT_NS on: a white picture (Y = 235; the chroma of black is already neutral)
    p.by_name("vmark").unwrap().static_pad("src").unwrap().add_probe(gst::PadProbeType::BUFFER, |_, info| {
        if let Some(buf) = info.buffer_mut() {
            if buf.pts().is_some_and(|t| t.nseconds() >= EVENT_NS) {
                let mut map = buf.make_mut().map_writable().unwrap();
                map.as_mut_slice()[..320 * 180].fill(235);
            }
        }
        gst::PadProbeReturn::Ok
    });
    // Before EVENT_NS: silence (to the sample)
    p.by_name("amark").unwrap().static_pad("src").unwrap().add_probe(gst::PadProbeType::BUFFER, |_, info| {
        if let Some(buf) = info.buffer_mut() {
            let Some(pts) = buf.pts().map(|t| t.nseconds()) else {
                return gst::PadProbeReturn::Ok;
            };
            let mut map = buf.make_mut().map_writable().unwrap();
            let data = map.as_mut_slice();
            let before = EVENT_NS.saturating_sub(pts) as u128 * 48_000 / 1_000_000_000;
            let n = (before as usize * 2).min(data.len());
            data[..n].fill(0);
        }
        gst::PadProbeReturn::Ok
    });
    p.set_state(gst::State::Playing).unwrap();
    p
}

/// Adds a track (with an RTCP port or not) on freshly reserved ports; returns the ports.
fn add_track(c: &mut Compositor, kind: &str, codec: &str, pt: u8, with_rtcp: bool) -> (u16, Option<u16>) {
    let track_id = format!("p:{kind}");
    let (rtp, rtcp) = (ReservedPort::new(), ReservedPort::new());
    let since = c.count();
    let (rtp_port, rtcp_port) = (rtp.release(), with_rtcp.then(|| rtcp.release()));
    let rtcp_field = rtcp_port.map(|p| format!(r#","rtcp_port":{p}"#)).unwrap_or_default();
    c.send(&format!(
        r#"{{"op":"add_track","track_id":"{track_id}","participant_id":"p","kind":"{kind}","codec":"{codec}","payload_type":{pt},"rtp_port":{rtp_port}{rtcp_field}}}"#
    ));
    let answer = c.wait_find(&format!("the answer to add_track {track_id}"), Duration::from_secs(10), |items| {
        events(&items[since..])
            .into_iter()
            .find(|h| {
                (h["event"] == "applied" && h["id"] == track_id.as_str()) || (h["event"] == "error" && h["track_id"] == track_id.as_str())
            })
            .cloned()
    });
    assert_eq!(answer["event"], "applied", "add_track {track_id}: {answer}");
    (rtp_port, rtcp_port)
}

/// Presentation time (s) of the first output frame whose centre is white.
fn video_onset(path: &Path) -> Option<f64> {
    let log = ffmpeg_log(path, "0:v", "-vf", "crop=iw/4:ih/4,showinfo");
    log.lines().filter(|l| l.contains("pts_time:") && l.contains("mean:[")).find_map(|l| {
        let pts: f64 = field_after(l, "pts_time:")?.parse().ok()?;
        let y: f64 = field_after(l, "mean:[")?.parse().ok()?;
        (y > 150.0).then_some(pts)
    })
}

/// What ffmpeg logs (stderr) running one filter over one stream of `path`.
fn ffmpeg_log(path: &Path, stream: &str, filter_flag: &str, filter: &str) -> String {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostats", "-i"])
        .arg(path)
        .args(["-map", stream, filter_flag, filter, "-f", "null", "-"])
        .output()
        .expect("ffmpeg");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Presentation times (s) where the audio first stops being silent, and where it is silent
/// again (for 20 ms or more) after that, if it is.
fn audio_onset(path: &Path) -> (Option<f64>, Option<f64>) {
    let log = ffmpeg_log(path, "0:a", "-af", "silencedetect=n=-30dB:d=0.02");
    let mut lines = log.lines();
    let onset = lines.find_map(|l| field_after(l, "silence_end:")?.parse().ok());
    let gap = lines.find_map(|l| field_after(l, "silence_start:")?.parse().ok());
    (onset, gap)
}

fn field_after<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let rest = line[line.find(key)? + key.len()..].trim_start();
    rest.split(|c: char| c.is_whitespace() || c == '|').next()
}

struct Run {
    /// audio onset − video onset, ms (positive: the sound comes after the picture)
    offset_ms: f64,
    /// the latest `av_sync_ms` of the stats
    av_sync: Value,
}

fn run(name: &str, late: Late, with_sr: bool) -> Run {
    let dir = temp_dir(&format!("lipsync-{name}"));
    let mut c = Compositor::start_with(&dir, &["--width", "640", "--height", "360", "--fps", &OUT_FPS.to_string()]);
    c.wait_for("the started event", Duration::from_secs(20), |items| events(items).iter().any(|e| e["event"] == "started"));
    c.send(r#"{"op":"add_participant","id":"p","name":"Lips"}"#);
    // RTCP of a run without SRs goes to a socket nobody reads.
    let sink = ReservedPort::new();
    let (v, vr) = add_track(&mut c, "video", "VP8", 96, with_sr);
    let (a, ar) = add_track(&mut c, "audio", "opus", 111, with_sr);
    let s = sender(late, v, vr.unwrap_or(sink.port()), a, ar.unwrap_or(sink.port()));

    // Until the event was captured, and 3 s more (SRs keep coming meanwhile).
    let t0 = std::time::Instant::now();
    loop {
        let rt = s.current_running_time().map(|t| t.nseconds()).unwrap_or(0);
        if rt > EVENT_NS + 3_000_000_000 {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "the sender did not get going; log:\n{}", c.log_text());
        thread::sleep(Duration::from_millis(100));
    }
    // The output is about a second behind: 2 s more of parts (6 of 333 ms).
    let n = c.with_items(|items| parts(items).count());
    c.wait_for("2 s more of output", Duration::from_secs(30), |items| parts(items).count() >= n + 6);
    let av_sync = c.with_items(|items| {
        events(items).into_iter().rev().find(|e| e["event"] == "stats").map(|e| e["av_sync_ms"].clone()).unwrap_or(Value::Null)
    });
    let log_path = c.log.clone();
    let (items, code) = c.finish();
    let _ = s.set_state(gst::State::Null);
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    assert_eq!(code, 0, "exit code; log:\n{log}");

    let full = dir.join("full.mp4");
    {
        let mut f = File::create(&full).unwrap();
        for r in items.iter().filter(|r| r.header["kind"] != "event") {
            f.write_all(&r.body).unwrap();
        }
    }
    let video = video_onset(&full).unwrap_or_else(|| panic!("{name}: no white frame; log:\n{log}"));
    let (audio, gap) = audio_onset(&full);
    let audio = audio.unwrap_or_else(|| panic!("{name}: no tone; log:\n{log}"));
    // The tone plays on (a delay, once set, does not cut the audio), for the 2 s waited for
    // at least; the silence at the very end is the shutdown.
    if let Some(gap) = gap {
        assert!(gap > audio + 2.0, "{name}: the tone stops at {gap:.3} s; log:\n{log}");
    }
    let offset_ms = (audio - video) * 1000.0;
    eprintln!(
        "{name}: picture turns white at {video:.3} s, tone starts at {audio:.3} s: \
         A/V offset {offset_ms:+.1} ms; av_sync_ms {av_sync}"
    );
    if std::env::var_os("ROOMCAST_KEEP_TEST_OUTPUT").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        eprintln!("output kept in {}", dir.display());
    }
    Run { offset_ms, av_sync }
}

#[test]
fn sender_reports_keep_a_participants_audio_and_video_in_sync() {
    gst::init().unwrap();
    // Without SRs the output shows the skew on the wire: the test can see it.
    let skewed = run("without-sr", Late::Video, false);
    assert!(
        skewed.offset_ms.abs() > 200.0,
        "without SRs the A/V offset should be about -{WIRE_DELAY_MS} ms (audio first), \
         measured {:+.1} ms",
        skewed.offset_ms
    );
    assert_eq!(skewed.av_sync, serde_json::json!({}), "no SRs, no sync");

    // Video late on the wire: the audio waits; audio late: the video waits.
    assert_synced(run("with-sr", Late::Video, true), "p:audio", "p:video", &skewed);
    assert_synced(run("with-sr-audio-late", Late::Audio, true), "p:video", "p:audio", &skewed);
}

/// With SRs: the output is in sync, and the early track (`waits`) is held back by about the
/// wire delay while the late one (`late`) is not.
fn assert_synced(synced: Run, waits: &str, late: &str, skewed: &Run) {
    assert!(
        synced.offset_ms.abs() < MAX_SYNCED_OFFSET_MS,
        "with SRs the A/V offset should be near 0, measured {:+.1} ms (without: {:+.1} ms)",
        synced.offset_ms,
        skewed.offset_ms
    );
    let delay = |track: &str| synced.av_sync["p"][track].as_f64().unwrap_or(-1.0);
    let expected = WIRE_DELAY_MS as f64 - 150.0..WIRE_DELAY_MS as f64 + 150.0;
    assert!(
        expected.contains(&delay(waits)) && delay(late) == 0.0,
        "{waits} should wait about {WIRE_DELAY_MS} ms: av_sync_ms {}",
        synced.av_sync
    );
}
