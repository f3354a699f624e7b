//! Signaling over real HTTP and WebSocket: bad input gets a clear error, the session stays up,
//! and another participant in the same room notices nothing; chat, reactions and mute state relay.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::{self, Message};

const SECRET: &str = "bad-input-test-secret-0123456789abcdef";

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

struct Env {
    _server: roomcast::RunningServer,
    base: String,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

async fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let mut config = roomcast::Config::for_tests(dir.path());
    config.jwt_secret = Some(SECRET.into());
    let server = roomcast::start(config).await.unwrap();
    let base = format!("http://{}", server.http_addr);
    Env { _server: server, base, http: reqwest::Client::new(), _dir: dir }
}

impl Env {
    async fn post(&self, path: &str, body: &str) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn room(&self) -> String {
        let (s, v) = self.post("/api/rooms", r#"{"name":"Test"}"#).await;
        assert_eq!(s, 201);
        v["id"].as_str().unwrap().to_owned()
    }

    async fn join(&self, room: &str, name: &str) -> Value {
        let (s, v) = self.post(&format!("/api/rooms/{room}/join"), &json!({"name": name}).to_string()).await;
        assert_eq!(s, 200, "{v}");
        v
    }

    fn ws_url(&self, token: &str) -> String {
        format!("{}/ws?token={token}", self.base.replace("http://", "ws://"))
    }

    async fn connect(&self, token: &str) -> Result<Ws, u16> {
        match tokio_tungstenite::connect_async(self.ws_url(token)).await {
            Ok((ws, _)) => Ok(ws),
            Err(tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
            Err(e) => panic!("unexpected connect error: {e}"),
        }
    }
}

async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let msg =
            tokio::time::timeout(Duration::from_secs(5), ws.next()).await.expect("a message within 5 s").expect("socket open").unwrap();
        if let Message::Text(t) = msg {
            return serde_json::from_str(&t).unwrap();
        }
    }
}

async fn expect_error(ws: &mut Ws, code: &str) {
    let v = next_json(ws).await;
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["code"], code, "{v}");
    assert_eq!(v["fatal"], false, "{v}");
    assert!(v["message"].as_str().unwrap().len() > 10, "errors say what to do: {v}");
}

async fn assert_quiet(ws: &mut Ws) {
    match tokio::time::timeout(Duration::from_millis(300), ws.next()).await {
        Err(_) => {}
        Ok(m) => panic!("bystander got {m:?}"),
    }
}

#[tokio::test]
async fn http_api_errors() {
    let e = env().await;
    let (s, v) = e.post("/api/rooms/r-nope/join", "{}").await;
    assert_eq!((s, v["error"].as_str()), (404, Some("room_not_found")));
    let r = e.http.get(format!("{}/api/rooms/r-nope", e.base)).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let (s, v) = e.post("/api/rooms", "{bad").await;
    assert_eq!((s, v["error"].as_str()), (400, Some("bad_request")));
    let (s, _) = e.post("/api/rooms", &json!({"name": "x".repeat(65)}).to_string()).await;
    assert_eq!(s, 400);
    let (s, v) = e.post("/api/rooms", &json!({"name": "x".repeat(20_000)}).to_string()).await;
    assert_eq!((s, v["error"].as_str()), (413, Some("too_large")));
    let (s, _) = e.post("/api/rooms", r#"{"name":"ok","extra":1}"#).await;
    assert_eq!(s, 400, "unknown fields are refused");
}

#[tokio::test]
async fn tokens_are_checked_before_upgrade() {
    let e = env().await;
    let room = e.room().await;
    let other_room = e.room().await;
    assert_eq!(e.connect("garbage").await.err(), Some(401));

    let now = roomcast::clock::unix_now();
    let claims = |room: &str, nbf: u64, exp: u64| json!({"iss":"roomcast","sub":"p-x","room":room,"name":"X","role":"publisher","iat":now,"nbf":nbf,"exp":exp,"jti":"j"});
    let sign = |c: &Value, secret: &str| encode(&Header::default(), c, &EncodingKey::from_secret(secret.as_bytes())).unwrap();
    assert_eq!(e.connect(&sign(&claims(&room, now - 700, now - 100), SECRET)).await.err(), Some(401), "expired");
    assert_eq!(e.connect(&sign(&claims(&room, now + 600, now + 900), SECRET)).await.err(), Some(401), "not yet valid");
    assert_eq!(
        e.connect(&sign(&claims(&room, now, now + 600), "some-other-secret-0123456789abcdefgh")).await.err(),
        Some(401),
        "foreign signature"
    );
    assert_eq!(e.connect(&sign(&claims("r-unknown", now, now + 600), SECRET)).await.err(), Some(404), "unknown room");

    // One live session per token; a token is dead after its participant left.
    let token = e.join(&room, "Ada").await["token"].as_str().unwrap().to_owned();
    let mut ws = e.connect(&token).await.unwrap();
    assert_eq!(next_json(&mut ws).await["type"], "welcome");
    assert_eq!(e.connect(&token).await.err(), Some(409));
    ws.send(Message::Text(r#"{"type":"leave"}"#.into())).await.unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(2), async { while ws.next().await.is_some() {} }).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(e.connect(&token).await.err(), Some(409), "replayed after leave");
    let _ = other_room;
}

#[tokio::test]
async fn bad_messages_get_errors_and_nobody_else_notices() {
    let e = env().await;
    let room = e.room().await;
    let bystander_token = e.join(&room, "Bystander").await["token"].as_str().unwrap().to_owned();
    let mut bystander = e.connect(&bystander_token).await.unwrap();
    assert_eq!(next_json(&mut bystander).await["type"], "welcome");

    let joined = e.join(&room, "Mallory").await;
    let mut ws = e.connect(joined["token"].as_str().unwrap()).await.unwrap();
    let welcome = next_json(&mut ws).await;
    assert_eq!(welcome["type"], "welcome");
    assert_eq!(welcome["participants"][0]["name"], "Bystander");
    assert_eq!(next_json(&mut bystander).await["type"], "participant_joined");

    let cases: Vec<(Message, &str)> = vec![
        (Message::Text("{not json".into()), "malformed"),
        (Message::Text(r#"{"no_type":1}"#.into()), "malformed"),
        (Message::Text(r#"{"type":"teleport"}"#.into()), "unknown_type"),
        (Message::Text(r#"{"type":"publish_offer"}"#.into()), "malformed"),
        (Message::Text(json!({"type":"publish_offer","sdp":"x".repeat(70 * 1024)}).to_string().into()), "too_large"),
        (Message::Binary(vec![1, 2, 3].into()), "binary_not_supported"),
        (Message::Text(r#"{"type":"publish_offer","sdp":"v=0\r\nthis is not sdp\r\n"}"#.into()), "bad_sdp"),
        (Message::Text(r#"{"type":"subscribe_answer","sdp":"v=0\r\n"}"#.into()), "bad_state"),
        (Message::Text(r#"{"type":"candidate","pc":"subscribe","candidate":"candidate:nonsense"}"#.into()), "bad_candidate"),
        (
            Message::Text(
                r#"{"type":"candidate","pc":"publish","candidate":"candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host"}"#.into(),
            ),
            "bad_state",
        ),
    ];
    for (msg, code) in cases {
        ws.send(msg).await.unwrap();
        expect_error(&mut ws, code).await;
    }
    // Still up: a good offer (a real SDP from a str0m client) is answered.
    let offer = client_offer();
    ws.send(Message::Text(json!({"type":"publish_offer","sdp":offer}).to_string().into())).await.unwrap();
    let answer = next_json(&mut ws).await;
    assert_eq!(answer["type"], "publish_answer", "{answer}");
    // A full ICE agent by default (`--ice-lite` is an option): Chrome nominates at once.
    assert!(!answer["sdp"].as_str().unwrap().contains("a=ice-lite"));
    // The server's candidate names a real m-line (the offer's first mid), so addIceCandidate takes it.
    let candidate = next_json(&mut ws).await;
    let offer_mid = offer.lines().find_map(|l| l.strip_prefix("a=mid:")).expect("the offer has mids");
    assert_eq!(candidate["type"], "candidate", "{candidate}");
    assert_eq!(
        (candidate["pc"].as_str(), candidate["sdp_mid"].as_str(), candidate["sdp_mline_index"].as_u64()),
        (Some("publish"), Some(offer_mid), Some(0)),
        "{candidate}"
    );
    // The bystander heard nothing but the join and the new producers (announced with the
    // accepted offer), with the subscribe offer that brings them: none of the bad messages.
    let mallory = joined["participant_id"].as_str().unwrap();
    let mut producers = 0;
    while let Ok(Some(Ok(m))) = tokio::time::timeout(Duration::from_millis(300), bystander.next()).await {
        let Message::Text(t) = m else { continue };
        let v: Value = serde_json::from_str(&t).unwrap();
        match v["type"].as_str() {
            Some("producer_added") => {
                assert_eq!(v["producer"]["participant_id"], mallory, "{v}");
                producers += 1;
            }
            Some("subscribe_offer" | "candidate") => {}
            _ => panic!("bystander got {v}"),
        }
    }
    assert_eq!(producers, 2, "the offer's audio and video");
}

/// A real sendonly audio+video offer, as a WebRTC client would send it.
fn client_offer() -> String {
    use str0m::media::{Direction, MediaKind};
    let mut rtc = str0m::Rtc::builder().build(std::time::Instant::now());
    rtc.add_local_candidate(str0m::Candidate::host("127.0.0.1:5000".parse().unwrap(), "udp").unwrap());
    let mut change = rtc.sdp_api();
    change.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
    change.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
    let (offer, _pending) = change.apply().unwrap();
    offer.to_sdp_string()
}

#[tokio::test]
async fn chat_reactions_and_mute_state_reach_the_room() {
    let e = env().await;
    let room = e.room().await;
    let a_token = e.join(&room, "Ada").await["token"].as_str().unwrap().to_owned();
    let mut a = e.connect(&a_token).await.unwrap();
    assert_eq!(next_json(&mut a).await["type"], "welcome");
    let b_token = e.join(&room, "Bob").await["token"].as_str().unwrap().to_owned();
    let mut b = e.connect(&b_token).await.unwrap();
    assert_eq!(next_json(&mut b).await["type"], "welcome");
    assert_eq!(next_json(&mut a).await["type"], "participant_joined");

    a.send(Message::Text(r#"{"type":"chat","text":"hello room"}"#.into())).await.unwrap();
    for ws in [&mut a, &mut b] {
        let v = next_json(ws).await;
        assert_eq!((v["type"].as_str(), v["text"].as_str(), v["name"].as_str()), (Some("chat"), Some("hello room"), Some("Ada")), "{v}");
    }
    b.send(Message::Text(r#"{"type":"reaction","emoji":"👏"}"#.into())).await.unwrap();
    for ws in [&mut a, &mut b] {
        let v = next_json(ws).await;
        assert_eq!((v["type"].as_str(), v["emoji"].as_str()), (Some("reaction"), Some("👏")), "{v}");
    }
    a.send(Message::Text(r#"{"type":"media_state","audio_muted":true,"video_muted":false}"#.into())).await.unwrap();
    let v = next_json(&mut b).await;
    assert_eq!((v["type"].as_str(), v["audio_muted"].as_bool()), (Some("media_state"), Some(true)), "{v}");
    assert_quiet(&mut a).await; // the sender does not get its own mute state back

    // A third participant learns the mute state from its welcome.
    let c_token = e.join(&room, "Cy").await["token"].as_str().unwrap().to_owned();
    let mut c = e.connect(&c_token).await.unwrap();
    let welcome = next_json(&mut c).await;
    let ada = welcome["participants"].as_array().unwrap().iter().find(|p| p["name"] == "Ada").unwrap().clone();
    assert_eq!(ada["audio_muted"], true, "{welcome}");

    // Bad chat is refused for the sender only.
    // (Cy's participant_joined comes from the room, the error from the session: either order.)
    a.send(Message::Text(json!({"type":"chat","text":"x".repeat(2001)}).to_string().into())).await.unwrap();
    let two = [next_json(&mut a).await, next_json(&mut a).await];
    assert!(two.iter().any(|v| v["type"] == "participant_joined"), "{two:?}");
    let err = two.iter().find(|v| v["type"] == "error").unwrap_or_else(|| panic!("no error in {two:?}"));
    assert_eq!((err["code"].as_str(), err["fatal"].as_bool()), (Some("malformed"), Some(false)), "{err}");
}

/// A client that stops reading (a frozen tab, a stuck proxy) must not make the server hold its
/// messages without end: its session is closed, and the room goes on for everyone else.
#[tokio::test]
async fn a_client_that_stops_reading_is_disconnected_and_the_room_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = roomcast::Config::for_tests(dir.path());
    config.jwt_secret = Some(SECRET.into());
    config.messages_per_second = 1_000_000; // the sender below is fast on purpose
    let server = roomcast::start(config).await.unwrap();
    let e = Env { base: format!("http://{}", server.http_addr), _server: server, http: reqwest::Client::new(), _dir: dir };
    let room = e.room().await;

    let a_token = e.join(&room, "Ada").await["token"].as_str().unwrap().to_owned();
    let mut a = e.connect(&a_token).await.unwrap();
    assert_eq!(next_json(&mut a).await["type"], "welcome");
    // Bob's socket has a small receive window, and after his welcome he reads nothing.
    let b_token = e.join(&room, "Bob").await["token"].as_str().unwrap().to_owned();
    let addr: std::net::SocketAddr = e.base.trim_start_matches("http://").parse().unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let tcp = socket.connect(addr).await.unwrap();
    let (mut b, _) = tokio_tungstenite::client_async(e.ws_url(&b_token), tokio_tungstenite::MaybeTlsStream::Plain(tcp)).await.unwrap();
    let b_welcome = next_json(&mut b).await;
    assert_eq!(b_welcome["type"], "welcome");
    let bob = b_welcome["participant_id"].as_str().unwrap().to_owned();
    assert_eq!(next_json(&mut a).await["type"], "participant_joined");

    // Ada chats as fast as she can (and reads everything); Bob's copies pile up unread.
    let text = "x".repeat(2000);
    let chat = json!({"type": "chat", "text": text}).to_string();
    let started = std::time::Instant::now();
    let mut sent = 0u32;
    let left = 'outer: loop {
        assert!(started.elapsed() < Duration::from_secs(60), "Bob's session was never closed ({sent} chats sent)");
        for _ in 0..50 {
            a.send(Message::Text(chat.clone().into())).await.unwrap();
            sent += 1;
        }
        // Drain what Ada got so far; stop when the room tells her Bob is gone.
        while let Ok(Some(Ok(m))) = tokio::time::timeout(Duration::from_millis(20), a.next()).await {
            if let Message::Text(t) = m {
                let v: Value = serde_json::from_str(&t).unwrap();
                if v["type"] == "participant_left" {
                    break 'outer v;
                }
            }
        }
    };
    assert_eq!(left["participant_id"].as_str(), Some(bob.as_str()), "{left}");
    // Bob, reading at last, finds his socket closed after what was already on its way to him.
    let ended = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match b.next().await {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return None,
            }
        }
    })
    .await
    .expect("Bob's socket ends");
    // A close frame, if one got through, asks him to come back later (1013).
    assert!(ended.is_none_or(|code| code == 1013), "close code {ended:?}");
    // Ada's session is unharmed: her chat still comes back.
    a.send(Message::Text(r#"{"type":"chat","text":"still here"}"#.into())).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        assert!(std::time::Instant::now() < deadline, "Ada's chat did not come back");
        let v = next_json(&mut a).await;
        if v["type"] == "chat" && v["text"] == "still here" {
            break;
        }
    }
    eprintln!("Bob's session closed after {sent} chats ({:.1} s)", started.elapsed().as_secs_f64());
}
