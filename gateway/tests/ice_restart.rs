//! ICE restart of a subscribe connection: a participant's media is dropped (fault injection,
//! signaling stays up); it asks for `ice_restart`, gets a new `subscribe_offer` with fresh ICE
//! credentials, answers it, and media flows again on the same session. The fault endpoint is
//! off unless `--fault-injection` is set.

#[path = "support/rtc_client.rs"]
#[allow(dead_code)] // the benchmark uses the rest
mod rtc_client;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rtc_client::{client_with, Controls, Counters};
use serde_json::{json, Value};

fn ufrag(sdp: &str) -> Option<String> {
    sdp.lines().find_map(|l| l.trim().strip_prefix("a=ice-ufrag:").map(str::to_owned))
}

fn offers(c: &Controls) -> Vec<String> {
    c.log.lock().unwrap().iter().filter(|v| v["type"] == "subscribe_offer").filter_map(|v| v["sdp"].as_str().and_then(ufrag)).collect()
}

/// Every server `candidate` names the first mid of its connection's latest SDP (our subscribe
/// offer, or the answer to the publisher's offer: same mids), with m-line index 0.
fn assert_candidates_name_a_mid(log: &[Value]) {
    let first_mid = |sdp: &str| sdp.lines().find_map(|l| l.trim().strip_prefix("a=mid:").map(str::to_owned));
    let (mut subscribe, mut publish, mut seen) = (None, None, 0);
    for v in log {
        match v["type"].as_str() {
            Some("subscribe_offer") => subscribe = v["sdp"].as_str().and_then(first_mid),
            Some("publish_answer") => publish = v["sdp"].as_str().and_then(first_mid),
            Some("candidate") => {
                let expected = if v["pc"] == "subscribe" { &subscribe } else { &publish };
                assert!(expected.is_some(), "a candidate before its SDP: {v}");
                assert_eq!((v["sdp_mid"].as_str(), v["sdp_mline_index"].as_u64()), (expected.as_deref(), Some(0)), "{v}");
                seen += 1;
            }
            _ => {}
        }
    }
    assert!(seen > 0, "no candidate messages in {log:?}");
}

async fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "{what} did not happen within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_connection_restarts_ice_and_media_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = roomcast::Config::for_tests(dir.path());
    config.fault_injection = true;
    let server = roomcast::start(config).await.unwrap();
    let base = format!("http://{}", server.http_addr);
    let http = reqwest::Client::new();
    let room: Value = http.post(format!("{base}/api/rooms")).json(&json!({"name": "restart"})).send().await.unwrap().json().await.unwrap();
    let room = room["id"].as_str().unwrap().to_owned();

    let counters = Arc::new(Counters::default());
    let watcher = Controls::default();
    let publisher = Controls::default();
    tokio::spawn(client_with(base.clone(), room.clone(), false, counters.clone(), watcher.clone()));
    tokio::spawn(client_with(base.clone(), room.clone(), true, Arc::new(Counters::default()), publisher.clone()));
    wait_until("the watcher receiving media", Duration::from_secs(20), || counters.received.load(Ordering::Relaxed) > 0).await;
    let watcher_id = watcher
        .log
        .lock()
        .unwrap()
        .iter()
        .find(|v| v["type"] == "welcome")
        .and_then(|v| v["participant_id"].as_str().map(str::to_owned))
        .unwrap();

    // Bad fault requests are refused clearly.
    let blackhole = |body: Value| http.post(format!("{base}/api/ops/faults/blackhole")).json(&body).send();
    assert_eq!(blackhole(json!({"room": room, "participant_id": "p-nobody", "ms": 1000})).await.unwrap().status().as_u16(), 404);
    assert_eq!(blackhole(json!({"room": room, "participant_id": watcher_id, "ms": 0})).await.unwrap().status().as_u16(), 400);

    // The watcher's network breaks for 4 s: nothing arrives. (The window is checked well inside
    // the 4 s, so a slow reply to the request cannot make the check straddle its end.)
    let blackholed = Instant::now();
    assert_eq!(blackhole(json!({"room": room, "participant_id": watcher_id, "ms": 4000})).await.unwrap().status().as_u16(), 204);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let during = counters.received.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let later = counters.received.load(Ordering::Relaxed);
    assert!(blackholed.elapsed() < Duration::from_millis(3900), "the check ran late ({:?}); it proves nothing", blackholed.elapsed());
    assert_eq!(later, during, "media is dropped during the blackhole");
    tokio::time::sleep(Duration::from_millis(4200).saturating_sub(blackholed.elapsed())).await;

    // It asks for an ICE restart: a new offer with new credentials, then media again.
    let before = offers(&watcher);
    let restart = Instant::now();
    watcher.outbox.lock().unwrap().push(json!({"type": "ice_restart"}));
    wait_until("a restart subscribe_offer", Duration::from_secs(5), || offers(&watcher).len() > before.len()).await;
    let after = offers(&watcher);
    assert_ne!(after.last(), before.last(), "the restart offer carries fresh ICE credentials: {after:?}");
    let at_offer = counters.received.load(Ordering::Relaxed);
    wait_until("media after the ICE restart", Duration::from_secs(10), || counters.received.load(Ordering::Relaxed) > at_offer + 30).await;
    println!("ice_restart → media again in {:?}", restart.elapsed());
    // Same session: no rejoin, no second welcome.
    assert_eq!(watcher.log.lock().unwrap().iter().filter(|v| v["type"] == "welcome").count(), 1);
    assert!(!watcher.log.lock().unwrap().iter().any(|v| v["type"] == "error"), "{:?}", watcher.log.lock().unwrap());
    assert_candidates_name_a_mid(&watcher.log.lock().unwrap());
    assert_candidates_name_a_mid(&publisher.log.lock().unwrap());
}

#[tokio::test]
async fn the_fault_endpoint_is_off_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let server = roomcast::start(roomcast::Config::for_tests(dir.path())).await.unwrap();
    let r = reqwest::Client::new()
        .post(format!("http://{}/api/ops/faults/blackhole", server.http_addr))
        .json(&json!({"room": "r-1", "participant_id": "p-1", "ms": 1000}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let body: Value = r.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().contains("--fault-injection"), "{body}");
}
