//! A participant whose media connection goes silent (network gone, WebSocket still open) is
//! removed after the ICE disconnect timeout, and everyone else's subscription loses its tracks.

#[path = "support/rtc_client.rs"]
#[allow(dead_code)] // the benchmark uses the rest
mod rtc_client;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rtc_client::{client_with, Controls, Counters};
use serde_json::{json, Value};

fn has(log: &Controls, f: impl Fn(&Value) -> bool) -> bool {
    log.log.lock().unwrap().iter().any(f)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_participant_is_removed_after_the_ice_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = roomcast::Config::for_tests(dir.path());
    config.ice_disconnect_timeout_secs = 2;
    let server = roomcast::start(config).await.unwrap();
    let base = format!("http://{}", server.http_addr);
    let http = reqwest::Client::new();
    let room: Value = http.post(format!("{base}/api/rooms")).json(&json!({"name": "ice"})).send().await.unwrap().json().await.unwrap();
    let room = room["id"].as_str().unwrap().to_owned();

    let counters = Arc::new(Counters::default());
    let watcher = Controls::default();
    let dropper = Controls::default();
    tokio::spawn(client_with(base.clone(), room.clone(), false, counters.clone(), watcher.clone()));
    tokio::spawn(client_with(base.clone(), room.clone(), true, Arc::new(Counters::default()), dropper.clone()));

    let start = Instant::now();
    while counters.receiving_clients.load(Ordering::Relaxed) < 1 {
        assert!(start.elapsed() < Duration::from_secs(20), "the watcher never received the publisher's media");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(has(&watcher, |v| v["type"] == "producer_added"));

    // The publisher's network goes away; its WebSocket stays open.
    dropper.drop_media.store(true, Ordering::Relaxed);
    let dropped = Instant::now();
    while !has(&watcher, |v| v["type"] == "participant_left") {
        assert!(dropped.elapsed() < Duration::from_secs(30), "the silent participant was never removed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("silent participant removed {:?} after its media stopped (timeout 2 s + ICE detection)", dropped.elapsed());
    assert!(has(&watcher, |v| v["type"] == "producer_removed"), "the watcher's subscription loses the tracks");
    // The removed participant was told why, on its still-open socket.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !has(&dropper, |v| v["type"] == "error" && v["fatal"] == true) {
        assert!(Instant::now() < deadline, "the removed participant got no fatal error: {:?}", dropper.log.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
