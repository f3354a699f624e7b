//! The store contract: one suite ([`contract`]) run against the embedded SQLite store and
//! against MongoDB for real (tests/run.sh starts SecantusDB and sets ROOMCAST_TEST_MONGODB_URI;
//! with CI set and no URI, the MongoDB tests fail instead of skipping).
//! Also: a gateway restart on the same store keeps rooms joinable.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use roomcast::store::{
    self, summarize, BroadcastEnd, BroadcastRecord, Location, NodeLoad, NodeRecord, RoomRecord, RoomSettings, Sample, SessionRecord,
    StatsSample, Store,
};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};

#[path = "support/mongo.rs"]
mod mongo;
use mongo::{mongodb_location, rand_u64};

fn sqlite_location(dir: &tempfile::TempDir) -> Location {
    Location::Sqlite(dir.path().join(store::SQLITE_FILE))
}

// ---------------------------------------------------------------------------------------------
// The contract, for any store.

/// What [`contract`] wrote, so a reopened store can be checked for it.
struct Written {
    open_room: RoomRecord,
    ended_room: RoomRecord,
    sessions: Vec<SessionRecord>,
    broadcasts: Vec<BroadcastRecord>,
    /// An invite id and its seats taken.
    invite: (String, u32),
}

fn room(id: &str, name: &str, auto_broadcast: bool, created_at: u64) -> RoomRecord {
    RoomRecord {
        id: id.into(),
        name: name.into(),
        settings: RoomSettings { auto_broadcast, private: auto_broadcast, e2ee: !auto_broadcast },
        created_at,
        ended_at: None,
    }
}

fn session(room: &str, participant: &str, role: &str, user_agent: Option<&str>, joined_at: u64) -> SessionRecord {
    SessionRecord {
        room: room.into(),
        participant: participant.into(),
        name: format!("Ünïcode “{participant}”"),
        role: role.into(),
        user_agent: user_agent.map(str::to_owned),
        joined_at,
        left_at: None,
        stats: None,
    }
}

fn sample(room: &str, participant: &str, at_ms: u64, bitrate_bps: u64, loss: f64, rtt_ms: f64) -> StatsSample {
    StatsSample { room: room.into(), participant: participant.into(), at_ms, bitrate_bps, loss, rtt_ms }
}

/// The store contract. Ids are fresh per run, so a shared database does not disturb it.
async fn contract(store: Arc<dyn Store>) -> Written {
    let run = format!("{:012x}", rand_u64() & 0xffff_ffff_ffff);
    let t0 = 1_767_225_600; // 2026-01-01, seconds

    // Rooms: create, read back, replace, end.
    let (a_id, b_id) = (format!("r-a{run}"), format!("r-b{run}"));
    assert_eq!(store.room(&a_id).await.unwrap(), None, "unknown room");
    let mut a = room(&a_id, "Standup", true, t0);
    store.create_room(&a).await.unwrap();
    store.create_room(&room(&b_id, "Retro", false, t0 + 1)).await.unwrap();
    assert_eq!(store.room(&a_id).await.unwrap().as_ref(), Some(&a));
    a.name = "Standup (renamed)".into();
    store.create_room(&a).await.unwrap();
    assert_eq!(store.room(&a_id).await.unwrap().as_ref(), Some(&a), "create_room replaces");
    let open: Vec<String> = store.open_rooms().await.unwrap().into_iter().map(|r| r.id).filter(|id| id.ends_with(&run)).collect();
    assert_eq!(open, vec![a_id.clone(), b_id.clone()], "one record per room, oldest first");
    store.end_room(&b_id, t0 + 50).await.unwrap();
    store.end_room(&b_id, t0 + 99).await.unwrap();
    let b = store.room(&b_id).await.unwrap().expect("ended rooms are kept");
    assert_eq!(b.ended_at, Some(t0 + 50), "ending twice keeps the first end");
    assert!(store.open_rooms().await.unwrap().iter().all(|r| r.id != b_id), "ended rooms are not open");
    store.end_room("r-never-created", t0).await.unwrap();

    // Stats: samples in, summary out.
    let (p1, p2, p3) = (format!("p-1{run}"), format!("p-2{run}"), format!("p-3{run}"));
    store.record_stats(&[]).await.unwrap();
    let p1_samples = [
        sample(&a_id, &p1, t0 * 1000 + 2000, 1_500_000, 0.25, 30.0),
        sample(&a_id, &p1, t0 * 1000 + 1000, 2_500_000, 0.0, 10.0),
        sample(&a_id, &p1, t0 * 1000 + 3000, 500_000, 0.5, 20.0),
    ];
    store.record_stats(&p1_samples[..2]).await.unwrap();
    store.record_stats(&[p1_samples[2].clone(), sample(&a_id, &p3, t0 * 1000, 9, 1.0, 999.0)]).await.unwrap();
    let expected = summarize(
        &p1_samples
            .iter()
            .map(|s| Sample { at_ms: s.at_ms, bitrate_bps: s.bitrate_bps, loss: s.loss, rtt_ms: s.rtt_ms })
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let summary = store.summary(&p1).await.unwrap().expect("p1 has samples");
    assert_eq!(summary, expected);
    assert_eq!(
        (summary.samples, summary.first_at_ms, summary.last_at_ms, summary.bitrate_avg_bps, summary.rtt_max_ms),
        (3, t0 * 1000 + 1000, t0 * 1000 + 3000, 1_500_000, 30.0)
    );
    assert_eq!(store.summary(&p2).await.unwrap(), None, "no samples, no summary");

    // Sessions: join, rejoin (replace), leave with the stats summarized.
    assert!(store.sessions(&a_id).await.unwrap().is_empty());
    let ua = "Mozilla/5.0 (X11; Linux x86_64) \"quoted\" ; DROP TABLE sessions; --";
    let mut s1 = session(&a_id, &p1, "host", Some(ua), t0 + 10);
    let mut s2 = session(&a_id, &p2, "viewer", None, t0 + 20);
    store.session_joined(&s2).await.unwrap();
    store.session_joined(&s1).await.unwrap();
    store.session_joined(&s1).await.unwrap();
    assert_eq!(store.sessions(&a_id).await.unwrap(), vec![s1.clone(), s2.clone()], "one record per session, in join order");
    store.session_left(&a_id, &p1, t0 + 70).await.unwrap();
    store.session_left(&a_id, &p2, t0 + 80).await.unwrap();
    store.session_left(&a_id, "p-never-joined", t0 + 80).await.unwrap();
    s1.left_at = Some(t0 + 70);
    s1.stats = Some(expected);
    s2.left_at = Some(t0 + 80);
    let sessions = store.sessions(&a_id).await.unwrap();
    assert_eq!(sessions, vec![s1, s2], "leaving sets left_at and the stats summary");
    assert!(store.sessions(&b_id).await.unwrap().is_empty(), "sessions belong to their room");

    // Broadcasts: start/stop, a start over a dangling one (a crash) closes it.
    assert!(store.broadcasts(&a_id).await.unwrap().is_empty());
    store.broadcast_stopped(&a_id, &BroadcastEnd { stopped_at: t0, restarts: 0, viewers_peak: 0 }).await.unwrap();
    assert!(store.broadcasts(&a_id).await.unwrap().is_empty(), "stopping nothing records nothing");
    store.broadcast_started(&a_id, t0 + 100).await.unwrap();
    let live = store.broadcasts(&a_id).await.unwrap();
    assert_eq!(live, vec![BroadcastRecord { room: a_id.clone(), started_at: t0 + 100, stopped_at: None, restarts: 0, viewers_peak: 0 }]);
    store.broadcast_stopped(&a_id, &BroadcastEnd { stopped_at: t0 + 200, restarts: 2, viewers_peak: 7 }).await.unwrap();
    store.broadcast_started(&a_id, t0 + 300).await.unwrap();
    store.broadcast_started(&a_id, t0 + 400).await.unwrap();
    store.broadcast_stopped(&a_id, &BroadcastEnd { stopped_at: t0 + 500, restarts: 1, viewers_peak: 3 }).await.unwrap();
    let broadcasts = store.broadcasts(&a_id).await.unwrap();
    assert_eq!(
        broadcasts,
        vec![
            BroadcastRecord { room: a_id.clone(), started_at: t0 + 100, stopped_at: Some(t0 + 200), restarts: 2, viewers_peak: 7 },
            BroadcastRecord { room: a_id.clone(), started_at: t0 + 300, stopped_at: Some(t0 + 400), restarts: 0, viewers_peak: 0 },
            BroadcastRecord { room: a_id.clone(), started_at: t0 + 400, stopped_at: Some(t0 + 500), restarts: 1, viewers_peak: 3 },
        ]
    );
    assert!(store.broadcasts(&b_id).await.unwrap().is_empty(), "broadcasts belong to their room");

    // Invite seats: counted up to max_uses; a rejoin moves a seat (no new use), once.
    let (limited, unlimited) = (format!("inv-l{run}"), format!("inv-u{run}"));
    assert_eq!(store.invite_uses(&limited).await.unwrap(), 0, "never used");
    assert_eq!(store.invite_use(&limited, &p1, Some(2), t0).await.unwrap(), Some(1));
    assert_eq!(store.invite_use(&limited, &p2, Some(2), t0 + 1).await.unwrap(), Some(2));
    assert_eq!(store.invite_use(&limited, &p3, Some(2), t0 + 2).await.unwrap(), None, "used up");
    assert_eq!(store.invite_uses(&limited).await.unwrap(), 2);
    let p1_again = format!("p-1b{run}");
    assert!(store.invite_rejoin(&limited, &p1, &p1_again, t0 + 3).await.unwrap(), "p1 holds a seat");
    assert!(!store.invite_rejoin(&limited, &p1, &format!("p-1c{run}"), t0 + 4).await.unwrap(), "p1's seat moved on");
    assert!(!store.invite_rejoin(&limited, &p3, &format!("p-3b{run}"), t0 + 4).await.unwrap(), "p3 never had one");
    assert!(!store.invite_rejoin(&unlimited, &p1_again, &p3, t0 + 4).await.unwrap(), "seats belong to their invite");
    assert!(store.invite_rejoin(&limited, &p1_again, &format!("p-1d{run}"), t0 + 5).await.unwrap(), "and moves again");
    assert_eq!(store.invite_uses(&limited).await.unwrap(), 2, "rejoins are not new uses");
    for i in 1..=5 {
        assert_eq!(store.invite_use(&unlimited, &format!("p-u{i}{run}"), None, t0).await.unwrap(), Some(i), "no limit");
    }
    // Many at once: exactly max_uses get in.
    let racing = format!("inv-r{run}");
    let tries = (0..8).map(|i| {
        let (store, racing, p) = (store.clone(), racing.clone(), format!("p-r{i}{run}"));
        tokio::spawn(async move { store.invite_use(&racing, &p, Some(3), t0).await.unwrap() })
    });
    let admitted = futures_util::future::join_all(tries).await.into_iter().filter(|r| r.as_ref().unwrap().is_some()).count();
    assert_eq!((admitted, store.invite_uses(&racing).await.unwrap()), (3, 3), "concurrent uses never exceed max_uses");

    cluster_contract(&*store, &run).await;
    // Two nodes saw the same owner die and both claim its room at once: exactly one gets it.
    let contested = format!("r-contested{run}");
    assert!(store.claim_room(&contested, None, "n-dead").await.unwrap());
    let tries = (0..6).map(|i| {
        let (store, room) = (store.clone(), contested.clone());
        tokio::spawn(async move { store.claim_room(&room, Some("n-dead"), &format!("n-{i}")).await.unwrap() })
    });
    let winners = futures_util::future::join_all(tries).await.into_iter().filter(|r| *r.as_ref().unwrap()).count();
    assert_eq!(winners, 1, "one claim of a dead node's room succeeds");

    Written { open_room: a, ended_room: b, sessions, broadcasts, invite: (limited, 2) }
}

fn node(id: &str, heartbeat_at_ms: u64, broadcasts: u32) -> NodeRecord {
    NodeRecord {
        id: id.into(),
        public_url: format!("http://{id}.example:8080"),
        media_ip: "10.1.2.3".into(),
        capacity_cores: 2.5,
        load: NodeLoad { rooms: 3, broadcasts, participants: 7, cpu_cores: 0.75 },
        heartbeat_at_ms,
        draining: broadcasts > 1,
    }
}

/// Nodes heartbeat (a later heartbeat replaces the record), and a room has at most one owner,
/// changed only by a claim that names the owner it saw.
async fn cluster_contract(store: &dyn Store, run: &str) {
    let (a, b) = (format!("n-a{run}"), format!("n-b{run}"));
    store.node_heartbeat(&node(&a, 1_000, 0)).await.unwrap();
    store.node_heartbeat(&node(&b, 1_500, 1)).await.unwrap();
    store.node_heartbeat(&node(&a, 3_000, 2)).await.unwrap();
    let mine: Vec<NodeRecord> = store.nodes().await.unwrap().into_iter().filter(|n| n.id.ends_with(run)).collect();
    assert_eq!(mine, vec![node(&a, 3_000, 2), node(&b, 1_500, 1)], "one record per node, the latest, by id");

    let room = format!("r-owned{run}");
    assert_eq!(store.room_owner(&room).await.unwrap(), None);
    assert!(store.claim_room(&room, None, &a).await.unwrap(), "an unowned room is claimed");
    assert!(!store.claim_room(&room, None, &b).await.unwrap(), "an owned room is not claimed as unowned");
    assert!(!store.claim_room(&room, Some(&b), &b).await.unwrap(), "nor by naming the wrong owner");
    assert_eq!(store.room_owner(&room).await.unwrap(), Some(a.clone()));
    assert!(store.claim_room(&room, Some(&a), &b).await.unwrap(), "taken over from the owner seen");
    assert_eq!(store.room_owner(&room).await.unwrap(), Some(b.clone()));
}

/// A reopened store (same file or database) has everything [`contract`] wrote.
async fn contract_after_reopen(store: Arc<dyn Store>, w: &Written) {
    assert_eq!(store.room(&w.open_room.id).await.unwrap().as_ref(), Some(&w.open_room));
    assert_eq!(store.room(&w.ended_room.id).await.unwrap().as_ref(), Some(&w.ended_room));
    let open = store.open_rooms().await.unwrap();
    assert!(open.contains(&w.open_room) && !open.iter().any(|r| r.id == w.ended_room.id));
    assert_eq!(store.sessions(&w.open_room.id).await.unwrap(), w.sessions);
    assert_eq!(store.broadcasts(&w.open_room.id).await.unwrap(), w.broadcasts);
    assert_eq!(store.summary(&w.sessions[0].participant).await.unwrap(), w.sessions[0].stats);
    assert_eq!(store.invite_uses(&w.invite.0).await.unwrap(), w.invite.1, "invite uses survive a restart");
}

/// Sequential write latency, printed (run with --nocapture to see it).
async fn measure_writes(store: Arc<dyn Store>) {
    const N: usize = 200;
    let run = format!("{:012x}", rand_u64() & 0xffff_ffff_ffff);
    let room_id = format!("r-bench{run}");
    let mut room_times = Vec::with_capacity(N);
    let mut session_times = Vec::with_capacity(N);
    for i in 0..N {
        let started = Instant::now();
        store.create_room(&room(&format!("{room_id}-{i}"), "Bench", false, 1)).await.unwrap();
        room_times.push(started.elapsed());
        let started = Instant::now();
        store.session_joined(&session(&room_id, &format!("p-{i}"), "publisher", Some("bench"), 1)).await.unwrap();
        session_times.push(started.elapsed());
    }
    let started = Instant::now();
    let samples: Vec<StatsSample> = (0..N as u64).map(|i| sample(&room_id, "p-bench", i, 1_000_000, 0.0, 20.0)).collect();
    store.record_stats(&samples).await.unwrap();
    let batch = started.elapsed();
    let describe = |mut t: Vec<Duration>| {
        t.sort();
        format!("median {:?}, p99 {:?}", t[t.len() / 2], t[t.len() * 99 / 100])
    };
    println!(
        "{} store, {N} sequential writes: create_room {}; session_joined {}; record_stats of {N} samples in one batch {:?}",
        store.kind(),
        describe(room_times),
        describe(session_times),
        batch
    );
}

#[tokio::test]
async fn sqlite_keeps_the_store_contract() {
    let dir = tempfile::tempdir().unwrap();
    let location = sqlite_location(&dir);
    let written = contract(store::open(&location).await.unwrap()).await;
    contract_after_reopen(store::open(&location).await.unwrap(), &written).await;
    measure_writes(store::open(&location).await.unwrap()).await;
}

#[tokio::test]
async fn mongodb_keeps_the_store_contract() {
    let Some(location) = mongodb_location() else { return };
    let written = contract(store::open(&location).await.unwrap()).await;
    contract_after_reopen(store::open(&location).await.unwrap(), &written).await;
    measure_writes(store::open(&location).await.unwrap()).await;
}

#[tokio::test]
async fn sqlite_open_failure_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    // A directory where the database file should be: SQLite cannot open it.
    let path = dir.path().join("taken");
    std::fs::create_dir_all(path.join(store::SQLITE_FILE)).unwrap();
    let err = store::open(&Location::Sqlite(path.join(store::SQLITE_FILE))).await.err().expect("cannot open a directory as a database");
    let msg = err.to_string();
    assert!(msg.contains("cannot open the store at") && msg.contains("--data-dir"), "{msg}");
}

#[tokio::test]
async fn mongodb_unreachable_says_what_to_do() {
    // Nothing listens on port 1; a short selection timeout keeps the test quick.
    let location = Location::Mongo("mongodb://user:hunter2@127.0.0.1:1/?serverSelectionTimeoutMS=300".into());
    let err = store::open(&location).await.err().expect("nothing to connect to");
    let msg = err.to_string();
    assert!(msg.contains("--store") && msg.contains("user:***@127.0.0.1:1") && !msg.contains("hunter2"), "{msg}");
}

// ---------------------------------------------------------------------------------------------
// A gateway restart on the same store.

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn post(http: &reqwest::Client, url: String, body: Value) -> (u16, Value) {
    let r = http.post(url).json(&body).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

const USER_AGENT: &str = "store-contract-test/1.0";

/// Opens a signaling session, or the refusal's status and message.
async fn connect(base: &str, token: &str) -> Result<Ws, (u16, String)> {
    let mut request = format!("{}/ws?token={token}", base.replace("http://", "ws://")).into_client_request().unwrap();
    request.headers_mut().insert("user-agent", USER_AGENT.parse().unwrap());
    match tokio_tungstenite::connect_async(request).await {
        Ok((ws, _)) => Ok(ws),
        Err(tungstenite::Error::Http(resp)) => {
            Err((resp.status().as_u16(), String::from_utf8_lossy(resp.body().as_deref().unwrap_or_default()).into_owned()))
        }
        Err(e) => panic!("unexpected WebSocket error: {e}"),
    }
}

/// A used-up token is refused with 409 and says the participant left.
async fn assert_used_up(base: &str, token: &str) {
    let Err((status, body)) = connect(base, token).await else { panic!("a used token must be refused") };
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("already left"), "{body}");
}

async fn first_message_type(ws: &mut Ws) -> String {
    loop {
        let msg =
            tokio::time::timeout(Duration::from_secs(5), ws.next()).await.expect("a message within 5 s").expect("socket open").unwrap();
        if let Message::Text(t) = msg {
            let v: Value = serde_json::from_str(&t).unwrap();
            return v["type"].as_str().unwrap_or_default().to_owned();
        }
    }
}

/// Joins `room` over HTTP and opens its signaling session; returns the token used.
async fn join_and_open(http: &reqwest::Client, base: &str, room: &str) -> (String, Ws) {
    let (status, v) = post(http, format!("{base}/api/rooms/{room}/join"), json!({"name": "Ada"})).await;
    assert_eq!(status, 200, "{v}");
    let token = v["token"].as_str().unwrap().to_owned();
    let mut ws = connect(base, &token).await.expect("the signaling session opens");
    assert_eq!(first_message_type(&mut ws).await, "welcome");
    (token, ws)
}

async fn restart_keeps_rooms(config: impl Fn() -> roomcast::Config) {
    let http = reqwest::Client::new();

    let first = roomcast::start(config()).await.unwrap();
    let base = format!("http://{}", first.http_addr);
    let (status, v) = post(&http, format!("{base}/api/rooms"), json!({"name": "Kept", "auto_broadcast": true})).await;
    assert_eq!(status, 201, "{v}");
    let room = v["id"].as_str().unwrap().to_owned();
    let (used_token, mut ws) = join_and_open(&http, &base, &room).await;
    ws.close(None).await.unwrap();
    drop(ws);
    // The leave is recorded after the server sees the socket close.
    let store = first.state.rooms.store().expect("the gateway has a store").clone();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        first.state.rooms.flush().await;
        if store.sessions(&room).await.unwrap().first().is_some_and(|s| s.left_at.is_some()) {
            break;
        }
        assert!(Instant::now() < deadline, "the closed session was never recorded as left");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_used_up(&base, &used_token).await;
    first.shutdown().await;
    let sessions = store.sessions(&room).await.unwrap();
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    assert_eq!((sessions[0].name.as_str(), sessions[0].role.as_str()), ("Ada", "publisher"));
    assert!(sessions[0].left_at.is_some() && sessions[0].joined_at <= sessions[0].left_at.unwrap(), "{sessions:?}");
    assert_eq!(sessions[0].user_agent.as_deref(), Some(USER_AGENT));
    drop(store);

    let second = roomcast::start(config()).await.unwrap();
    let base = format!("http://{}", second.http_addr);
    let got: Value = http.get(format!("{base}/api/rooms/{room}")).send().await.unwrap().json().await.unwrap();
    assert_eq!((got["name"].as_str(), got["auto_broadcast"].as_bool()), (Some("Kept"), Some(true)), "{got}");
    assert_used_up(&base, &used_token).await; // … and stays used up after the restart
    let (_token, mut ws) = join_and_open(&http, &base, &room).await;
    ws.close(None).await.unwrap();
    second.shutdown().await;
}

#[tokio::test]
async fn gateway_restart_keeps_rooms_joinable_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    restart_keeps_rooms(|| roomcast::Config::for_tests(dir.path())).await;
}

#[tokio::test]
async fn gateway_restart_keeps_rooms_joinable_mongodb() {
    let Some(Location::Mongo(uri)) = mongodb_location() else { return };
    let dir = tempfile::tempdir().unwrap();
    restart_keeps_rooms(|| {
        let mut config = roomcast::Config::for_tests(dir.path());
        config.store = Some(uri.clone());
        config
    })
    .await;
}
