//! A cluster on loopback: two `roomcast serve` processes on one MongoDB-wire server (SecantusDB,
//! started by tests/run.sh). Rooms created through one node spread over both; either node
//! answers for any room (the room's node answers through it, or a join's `ws_url` names it); a
//! socket opened on the wrong node is refused with `wrong_node`; and when a node is killed
//! (SIGKILL, no goodbye), its room comes back on the other as its participant re-joins.

#[path = "support/mongo.rs"]
mod mongo;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use roomcast::store::Location;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::{self, Message};

/// Shared by the nodes: tokens minted by one are good on the other.
const SECRET: &str = "cluster-test-secret-0123456789abcdef";

struct Node {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts a node and waits until it answers `/readyz`.
async fn node(id: &str, store: &str) -> Node {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let log = std::fs::File::create(dir.path().join("gateway.log")).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_roomcast"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--udp-port", "0", "--node-id", id, "--compositor-spares", "0"])
        .arg("--data-dir")
        .arg(dir.path())
        .arg("--web-dir")
        .arg(dir.path())
        .env("ROOMCAST_STORE", store)
        .env("ROOMCAST_JWT_SECRET", SECRET)
        .env("RUST_LOG", "info")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()
        .expect("the roomcast binary runs");
    let base = format!("http://127.0.0.1:{port}");
    let node = Node { child, base, _dir: dir };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = reqwest::get(format!("{}/readyz", node.base)).await {
            if r.status().is_success() {
                return node;
            }
        }
        assert!(Instant::now() < deadline, "node {id} did not get ready; its log: {}", node.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

impl Node {
    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("gateway.log")).unwrap_or_default()
    }

    async fn readyz(&self) -> String {
        reqwest::get(format!("{}/readyz", self.base)).await.unwrap().text().await.unwrap()
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = reqwest::Client::new().post(format!("{}{path}", self.base)).json(&body).send().await.unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }
}

/// Two heartbeats (every 2 s) and a margin: every node has read the others' latest records.
const HEARTBEATS_SEEN: Duration = Duration::from_millis(4500);

/// `roomcast ops <action>` against a node, as an operator runs it (a token minted from the
/// cluster's secret).
fn ops_cli(node: &Node, action: &str) {
    let out = Command::new(env!("CARGO_BIN_EXE_roomcast"))
        .args(["ops", action, "--url", &node.base])
        .env("ROOMCAST_JWT_SECRET", SECRET)
        .output()
        .expect("roomcast ops runs");
    assert!(
        out.status.success(),
        "roomcast ops {action}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The first message on a signaling socket at `url`, or the refusal's status and body.
async fn first_message(url: &str) -> Result<String, (u16, String)> {
    match tokio_tungstenite::connect_async(url).await {
        Ok((mut ws, _)) => {
            let msg = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("a first message").unwrap().unwrap();
            let Message::Text(text) = msg else { panic!("not text: {msg:?}") };
            let v: Value = serde_json::from_str(&text).unwrap();
            Ok(v["type"].as_str().unwrap_or_default().to_owned())
        }
        Err(tungstenite::Error::Http(resp)) => {
            Err((resp.status().as_u16(), String::from_utf8_lossy(resp.body().as_deref().unwrap_or_default()).into_owned()))
        }
        Err(e) => panic!("cannot connect to {url}: {e}"),
    }
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The close frame the server sends on `ws` within 10 s (what arrives before it is skipped).
async fn closed(ws: &mut Socket) -> Option<tungstenite::protocol::CloseFrame> {
    tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(Ok(msg)) = ws.next().await {
            if let Message::Close(frame) = msg {
                return frame;
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
}

#[tokio::test]
async fn rooms_spread_any_node_answers_and_a_dead_nodes_room_comes_back() {
    let Some(Location::Mongo(store)) = mongo::mongodb_location() else { return };
    let a = node("n-a", &store).await;
    let mut b = node("n-b", &store).await;
    // Each node learns of the other at its next heartbeat (every 2 s).
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(a.readyz().await.contains("of 2 live") && b.readyz().await.contains("of 2 live")) {
        assert!(Instant::now() < deadline, "the nodes never saw each other: {} / {}", a.readyz().await, b.readyz().await);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Rooms created through one node spread over both.
    let mut homes = Vec::new();
    for i in 0..4 {
        let (status, v) = a.post("/api/rooms", json!({ "name": format!("R{i}") })).await;
        assert_eq!(status, 201, "{v}");
        homes.push((v["id"].as_str().unwrap().to_owned(), v["node_url"].as_str().unwrap().to_owned()));
    }
    let on_b: Vec<&String> = homes.iter().filter(|(_, n)| *n == b.base).map(|(r, _)| r).collect();
    assert_eq!(on_b.len(), 2, "two of four rooms on each node: {homes:?}");
    let room = on_b[0].clone();

    // Node A answers for B's room: what only B knows, B answers through A...
    let no_follow = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let r = no_follow.get(format!("{}/api/rooms/{room}", a.base)).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200, "no redirect: a page's same-origin request gets its answer");
    assert_eq!(r.headers()["x-roomcast-node"].to_str().unwrap(), "n-b");
    let view: Value = r.json().await.unwrap();
    assert_eq!(view["id"].as_str(), Some(room.as_str()), "{view}");
    // A bad request about it gets B's own error, passed on.
    let r = no_follow
        .post(format!("{}/api/rooms/{room}/broadcast", a.base))
        .body("{not json")
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers().get("x-roomcast-node").map(|v| v.to_str().unwrap()), Some("n-b"));
    // ...and a join through A names B's signaling.
    let (status, join) = a.post(&format!("/api/rooms/{room}/join"), json!({ "name": "Ada" })).await;
    assert_eq!(status, 200, "{join}");
    let ws_url = join["ws_url"].as_str().unwrap().to_owned();
    assert!(ws_url.starts_with(&b.base.replace("http://", "ws://")), "{ws_url}");
    let token = join["token"].as_str().unwrap();
    let wrong = first_message(&format!("{}/ws?token={token}", a.base.replace("http://", "ws://"))).await;
    assert!(matches!(&wrong, Err((421, body)) if body.contains("wrong_node") && body.contains("n-b")), "{wrong:?}");
    assert_eq!(first_message(&ws_url).await, Ok("welcome".to_owned()));

    // Two nodes never serve one room for long: a room B holds that A claimed meanwhile (what
    // happens when B was taken for dead: cut off from the store, frozen) leaves B at B's next
    // heartbeat. Its participant's socket is closed with 1012 (reconnect), and a join through
    // B now names A.
    let moved = on_b[1].clone();
    let (_, join) = b.post(&format!("/api/rooms/{moved}/join"), json!({ "name": "Bea" })).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(join["ws_url"].as_str().unwrap()).await.unwrap();
    let shared = roomcast::store::open(&Location::Mongo(store.clone())).await.unwrap();
    assert!(shared.claim_room(&moved, Some("n-b"), "n-a").await.unwrap(), "A takes B's room in the store");
    let claimed = Instant::now();
    let close = closed(&mut ws).await.expect("B closes the room's sockets within a few heartbeats");
    assert_eq!(u16::from(close.code), 1012, "{close:?}");
    assert!(close.reason.contains("moved"), "{close:?}");
    println!("room claimed elsewhere → its socket on the old node closed after {:?}", claimed.elapsed());
    let (status, join) = b.post(&format!("/api/rooms/{moved}/join"), json!({ "name": "Bea" })).await;
    assert_eq!(status, 200, "{join}");
    assert!(join["ws_url"].as_str().unwrap().starts_with(&a.base.replace("http://", "ws://")), "the re-join goes to A: {join}");
    assert!(b.log().contains("claimed by another node"), "B says why it let the room go");

    // A holds that room now (a socket open on A). `roomcast ops drain` on A hands it to B: the
    // socket is closed with 1012 and a join through A names B. Once A's next heartbeat says it
    // drains, new rooms go to B, also when created through A; `undrain` takes A back.
    let (mut on_a, _) = tokio_tungstenite::connect_async(join["ws_url"].as_str().unwrap()).await.unwrap();
    let welcome = tokio::time::timeout(Duration::from_secs(10), on_a.next()).await.expect("a welcome").unwrap().unwrap();
    assert!(welcome.to_text().unwrap().contains("welcome"), "{welcome:?}");
    ops_cli(&a, "drain");
    let close = closed(&mut on_a).await.expect("the drain closes the room's sockets");
    assert_eq!(u16::from(close.code), 1012, "{close:?}");
    let (status, join) = a.post(&format!("/api/rooms/{moved}/join"), json!({ "name": "Bea" })).await;
    assert_eq!(status, 200, "{join}");
    assert!(join["ws_url"].as_str().unwrap().starts_with(&b.base.replace("http://", "ws://")), "the drained room is on B: {join}");
    assert_eq!(first_message(join["ws_url"].as_str().unwrap()).await, Ok("welcome".to_owned()));
    tokio::time::sleep(HEARTBEATS_SEEN).await;
    for i in 0..3 {
        let (status, v) = a.post("/api/rooms", json!({ "name": format!("D{i}") })).await;
        assert_eq!(status, 201, "{v}");
        assert_eq!(v["node_url"].as_str(), Some(b.base.as_str()), "a draining node takes no new rooms: {v}");
    }
    ops_cli(&a, "undrain");
    tokio::time::sleep(HEARTBEATS_SEEN).await;
    let (_, v) = b.post("/api/rooms", json!({ "name": "after undrain" })).await;
    assert_eq!(v["node_url"].as_str(), Some(a.base.as_str()), "A takes rooms again (it has the fewest now): {v}");

    // B dies without a word: a re-join through A finds B's port refusing connections and
    // brings the room back on A at once, without waiting for B's heartbeats to run out.
    b.child.kill().unwrap();
    b.child.wait().unwrap();
    let killed = Instant::now();
    let back = loop {
        let (status, join) = a.post(&format!("/api/rooms/{room}/join"), json!({ "name": "Ada" })).await;
        assert_eq!(status, 200, "{join}");
        let url = join["ws_url"].as_str().unwrap().to_owned();
        if url.starts_with(&a.base.replace("http://", "ws://")) {
            assert_eq!(first_message(&url).await, Ok("welcome".to_owned()), "the room lives on A now");
            break killed.elapsed();
        }
        assert!(killed.elapsed() < Duration::from_secs(30), "the room never came back on A; A's log:\n{}", a.log());
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    println!("node killed → its room joinable on the other node after {back:?}");
    // B's heartbeats run out after 8 s: well before that, the refusal is what moved the room.
    assert!(back < Duration::from_secs(5), "the room moved on B's refusal, not its heartbeats ({back:?}); A's log:\n{}", a.log());
    let r = no_follow.get(format!("{}/api/rooms/{room}", a.base)).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.headers().get("x-roomcast-node").is_none(), "A serves the room itself now");
    assert!(a.readyz().await.contains("of 1 live"), "{}", a.readyz().await);
}
