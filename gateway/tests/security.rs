//! Browser-facing protection and abuse limits over real HTTP and WebSocket: API key, host
//! role, per-IP join limit, room capacity, Origin checks, CORS, message rate, security
//! headers, TURN credentials, token refresh, HLS path tricks.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest, Message};

const KEY: &str = "security-test-api-key";

#[path = "support/gateway.rs"]
mod support;
use support::TestGateway as Env;

async fn env(tune: impl FnOnce(&mut roomcast::Config)) -> Env {
    Env::start(tune).await
}

impl Env {
    async fn ws(
        &self,
        token: &str,
        origin: Option<&str>,
    ) -> Result<tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>, u16> {
        let mut req = format!("{}/ws?token={token}", self.base.replace("http://", "ws://")).into_client_request().unwrap();
        if let Some(o) = origin {
            req.headers_mut().insert("origin", o.parse().unwrap());
        }
        match tokio_tungstenite::connect_async(req).await {
            Ok((ws, _)) => Ok(ws),
            Err(tungstenite::Error::Http(r)) => Err(r.status().as_u16()),
            Err(e) => panic!("{e}"),
        }
    }
}

async fn next_json<S: StreamExt<Item = Result<Message, tungstenite::Error>> + Unpin>(ws: &mut S) -> Value {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await.expect("a message").expect("open").unwrap() {
            Message::Text(t) => return serde_json::from_str(&t).unwrap(),
            _ => continue,
        }
    }
}

fn claims(token: &str) -> Value {
    use base64::Engine;
    let body = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(body).unwrap()).unwrap()
}

#[tokio::test]
async fn api_key_and_host_role() {
    let e = env(|c| c.api_key = Some(KEY.into())).await;
    assert_eq!(e.post("/api/rooms", json!({}), None).await.0, 401, "creating rooms needs the key");
    assert_eq!(e.post("/api/rooms", json!({}), Some("wrong")).await.0, 401);
    let (s, room) = e.post("/api/rooms", json!({"name": "Secure"}), Some(KEY)).await;
    assert_eq!(s, 201);
    let id = room["id"].as_str().unwrap();
    let host_key = room["host_key"].as_str().unwrap();
    assert_eq!(e.post(&format!("/api/rooms/{id}/join"), json!({"name": "A"}), None).await.0, 401, "joins mint tokens: key needed");

    let (_, host) = e.post(&format!("/api/rooms/{id}/join"), json!({"name": "Host", "host_key": host_key}), Some(KEY)).await;
    assert_eq!(claims(host["token"].as_str().unwrap())["role"], "host");
    let (_, guest) = e.post(&format!("/api/rooms/{id}/join"), json!({"name": "Guest"}), Some(KEY)).await;
    assert_eq!(claims(guest["token"].as_str().unwrap())["role"], "publisher");
    let (s, _) = e.post(&format!("/api/rooms/{id}/join"), json!({"name": "X", "host_key": "guessed"}), Some(KEY)).await;
    assert_eq!(s, 403, "a wrong host key is refused, not downgraded");

    // Broadcast control: the host (or the key) only.
    assert_eq!(e.post(&format!("/api/rooms/{id}/broadcast"), json!({}), guest["token"].as_str()).await.0, 403);
    assert_eq!(e.post(&format!("/api/rooms/{id}/broadcast"), json!({}), None).await.0, 401);
    assert_eq!(e.post(&format!("/api/rooms/{id}/broadcast"), json!({}), host["token"].as_str()).await.0, 202);
    let r =
        e.http.delete(format!("{}/api/rooms/{id}/broadcast", e.base)).bearer_auth(guest["token"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let r = e.http.delete(format!("{}/api/rooms/{id}/broadcast", e.base)).bearer_auth(KEY).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
}

#[tokio::test]
async fn join_rate_and_room_capacity_limits() {
    let e = env(|c| {
        c.joins_per_minute = 3;
        c.max_participants = 1;
    })
    .await;
    let (_, room) = e.post("/api/rooms", json!({}), None).await;
    let id = room["id"].as_str().unwrap();
    let (s, first) = e.post(&format!("/api/rooms/{id}/join"), json!({"name": "A"}), None).await;
    assert_eq!(s, 200);
    let mut ws = e.ws(first["token"].as_str().unwrap(), None).await.unwrap();
    assert_eq!(next_json(&mut ws).await["type"], "welcome");
    let (s, v) = e.post(&format!("/api/rooms/{id}/join"), json!({"name": "B"}), None).await;
    assert_eq!((s, v["error"].as_str()), (409, Some("room_full")), "{v}");
    e.post(&format!("/api/rooms/{id}/join"), json!({"name": "C"}), None).await;
    let (s, v) = e.post(&format!("/api/rooms/{id}/join"), json!({"name": "D"}), None).await;
    assert_eq!((s, v["error"].as_str()), (429, Some("rate_limited")), "4th join in a minute from one IP: {v}");
    // The participant inside is unaffected.
    ws.send(Message::Text(r#"{"type":"chat","text":"still here"}"#.into())).await.unwrap();
    assert_eq!(next_json(&mut ws).await["type"], "chat");
}

#[tokio::test]
async fn origins_cors_and_headers() {
    let e = env(|c| c.allowed_origins = vec!["https://app.example.com".into()]).await;
    let (_, room) = e.post("/api/rooms", json!({}), None).await;
    let id = room["id"].as_str().unwrap();
    let join = |n: &str| json!({ "name": n });
    let t1 = e.post(&format!("/api/rooms/{id}/join"), join("a"), None).await.1["token"].as_str().unwrap().to_owned();
    assert_eq!(e.ws(&t1, Some("https://evil.example.com")).await.err(), Some(403), "foreign origin");
    let mut ok = e.ws(&t1, Some("https://app.example.com")).await.unwrap();
    assert_eq!(next_json(&mut ok).await["type"], "welcome", "the rejected attempt did not burn the token");
    let t2 = e.post(&format!("/api/rooms/{id}/join"), join("b"), None).await.1["token"].as_str().unwrap().to_owned();
    assert!(e.ws(&t2, None).await.is_ok(), "non-browser clients send no Origin");

    let pre = e
        .http
        .request(reqwest::Method::OPTIONS, format!("{}/api/rooms", e.base))
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(pre.headers().get("access-control-allow-origin").unwrap(), "https://app.example.com");
    let bad = e
        .http
        .request(reqwest::Method::OPTIONS, format!("{}/api/rooms", e.base))
        .header("origin", "https://evil.example.com")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(bad.headers().get("access-control-allow-origin").is_none());

    let r = e.http.get(format!("{}/healthz", e.base)).send().await.unwrap();
    for h in ["x-content-type-options", "referrer-policy", "x-frame-options", "content-security-policy", "permissions-policy"] {
        assert!(r.headers().get(h).is_some(), "missing {h}");
    }
    // Path tricks on HLS URLs never reach a file.
    for path in ["/hls/x/../../etc/passwd", "/hls/%2e%2e/%2e%2e/etc/passwd", "/hls/r-1/..%2Findex.m3u8", "/hls/r-1/seg-abc.m4s"] {
        let r = e.http.get(format!("{}{path}", e.base)).send().await.unwrap();
        let status = r.status().as_u16();
        let body = r.text().await.unwrap();
        assert!(matches!(status, 400 | 404), "{path}: {status}");
        assert!(!body.contains("root:"), "{path} leaked a file");
    }
}

#[tokio::test]
async fn message_rate_turn_and_token_refresh() {
    let e = env(|c| {
        c.messages_per_second = 5;
        c.turn_secret = Some("turn-secret".into());
        c.turn_urls = vec!["turn:127.0.0.1:3478".into()];
    })
    .await;
    let (_, room) = e.post("/api/rooms", json!({}), None).await;
    let id = room["id"].as_str().unwrap();
    let (_, join) = e.post(&format!("/api/rooms/{id}/join"), json!({"name": "A"}), None).await;
    let ice = &join["ice_servers"][0];
    assert_eq!(ice["urls"][0], "turn:127.0.0.1:3478");
    let username = ice["username"].as_str().unwrap();
    let (expiry, who) = username.split_once(':').unwrap();
    assert_eq!(who, join["participant_id"].as_str().unwrap());
    assert!(expiry.parse::<u64>().unwrap() > roomcast::clock::unix_now());
    let expected = roomcast::auth::turn::turn_credentials(b"turn-secret", &[], who, Duration::ZERO, expiry.parse().unwrap());
    assert_eq!(ice["credential"].as_str(), expected.credential.as_deref(), "coturn can verify it");

    let mut ws = e.ws(join["token"].as_str().unwrap(), None).await.unwrap();
    assert_eq!(next_json(&mut ws).await["type"], "welcome");
    ws.send(Message::Text(r#"{"type":"refresh_token"}"#.into())).await.unwrap();
    let fresh = next_json(&mut ws).await;
    assert_eq!(fresh["type"], "token", "{fresh}");
    let c = claims(fresh["token"].as_str().unwrap());
    assert_eq!((c["room"].as_str(), c["sub"].as_str()), (Some(id), join["participant_id"].as_str()));

    // 10 (the burst) pass, the rest of a flood is refused with rate_limited; the session stays.
    let flood = std::time::Instant::now();
    for i in 0..30 {
        ws.send(Message::Text(json!({"type": "chat", "text": format!("spam {i}")}).to_string().into())).await.unwrap();
    }
    let mut limited = 0;
    let mut chats = 0;
    let mut last_reply = flood.elapsed();
    while let Ok(Some(Ok(Message::Text(t)))) = tokio::time::timeout(Duration::from_millis(500), ws.next()).await {
        last_reply = flood.elapsed();
        let v: Value = serde_json::from_str(&t).unwrap();
        match v["code"].as_str() {
            Some("rate_limited") => limited += 1,
            _ if v["type"] == "chat" => chats += 1,
            _ => {}
        }
    }
    // The bucket refills at 5/s while the server works through the flood: a slow machine lets
    // a few more through, never the whole flood.
    let allowed = 10 + (5.0 * last_reply.as_secs_f64()).ceil() as usize + 1;
    assert!(chats <= allowed && limited >= 30 - allowed, "limited {limited}, chats {chats} (allowed {allowed} in {last_reply:?})");
    assert!(limited >= 1, "a flood of 30 is never all let through");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    ws.send(Message::Text(r#"{"type":"chat","text":"after a pause"}"#.into())).await.unwrap();
    // Skip any late reply to the flood; the chat after the pause must come through.
    loop {
        let v = next_json(&mut ws).await;
        if v["type"] == "chat" && v["text"] == "after a pause" {
            break;
        }
        assert_eq!(v["code"], "rate_limited", "unexpected after the pause: {v}");
    }
}

#[tokio::test]
async fn e2ee_rooms_forward_but_cannot_be_broadcast() {
    let e = env(|_| {}).await;
    let (s, v) = e.post("/api/rooms", json!({"name": "Secret", "e2ee": true, "auto_broadcast": true}), None).await;
    assert_eq!((s, v["error"].as_str()), (400, Some("bad_request")), "e2ee + auto_broadcast contradict: {v}");
    let (s, room) = e.post("/api/rooms", json!({"name": "Secret", "e2ee": true}), None).await;
    assert_eq!((s, room["e2ee"].as_bool()), (201, Some(true)), "{room}");
    let id = room["id"].as_str().unwrap();
    let info: Value = e.http.get(format!("{}/api/rooms/{id}", e.base)).send().await.unwrap().json().await.unwrap();
    assert_eq!(info["e2ee"], true);
    let (_, join) = e.post(&format!("/api/rooms/{id}/join"), json!({"name": "A"}), None).await;
    assert_eq!(join["e2ee"], true, "the client learns it must encrypt: {join}");
    let (s, v) = e.post(&format!("/api/rooms/{id}/broadcast"), json!({}), None).await;
    assert_eq!((s, v["error"].as_str()), (409, Some("e2ee_room")), "{v}");
    assert!(v["message"].as_str().unwrap().contains("end-to-end encrypted"), "the API says why: {v}");
    let status: Value = e.http.get(format!("{}/api/rooms/{id}/broadcast", e.base)).send().await.unwrap().json().await.unwrap();
    assert_eq!(status["state"], "stopped");
    // A plain room next to it still broadcasts.
    let (_, plain) = e.post("/api/rooms", json!({"name": "Plain"}), None).await;
    assert_eq!(e.post(&format!("/api/rooms/{}/broadcast", plain["id"].as_str().unwrap()), json!({}), None).await.0, 202);
}

/// Reads messages until one of `kind` arrives (others, like `participant_joined`, are skipped).
async fn next_of<S: StreamExt<Item = Result<Message, tungstenite::Error>> + Unpin>(ws: &mut S, kind: &str) -> Value {
    loop {
        let m = next_json(ws).await;
        if m["type"] == kind {
            return m;
        }
    }
}

#[tokio::test]
async fn host_removes_participants() {
    let e = env(|c| c.api_key = Some(KEY.into())).await;
    let (_, room) = e.post("/api/rooms", json!({"name": "Moderated"}), Some(KEY)).await;
    let id = room["id"].as_str().unwrap();
    let join = |name: &'static str, host: bool| {
        let body = if host { json!({"name": name, "host_key": room["host_key"]}) } else { json!({"name": name}) };
        let e = &e;
        async move { e.post(&format!("/api/rooms/{id}/join"), body, Some(KEY)).await.1 }
    };
    let (host, guest, other) = (join("Host", true).await, join("Guest", false).await, join("Other", false).await);
    let mut hs = e.ws(host["token"].as_str().unwrap(), None).await.unwrap();
    let mut gs = e.ws(guest["token"].as_str().unwrap(), None).await.unwrap();
    let mut os = e.ws(other["token"].as_str().unwrap(), None).await.unwrap();
    for ws in [&mut hs, &mut gs, &mut os] {
        assert_eq!(next_json(ws).await["type"], "welcome");
    }
    let guest_id = guest["participant_id"].as_str().unwrap();

    // Not a host: refused, nobody removed.
    os.send(Message::Text(json!({"type": "remove_participant", "participant_id": guest_id}).to_string().into())).await.unwrap();
    assert_eq!(next_of(&mut os, "error").await["code"], "forbidden");
    // The host: unknown ids and itself are refused with a reason.
    hs.send(Message::Text(json!({"type": "remove_participant", "participant_id": "p-nobody"}).to_string().into())).await.unwrap();
    assert_eq!(next_of(&mut hs, "error").await["code"], "unknown_participant");
    hs.send(Message::Text(json!({"type": "remove_participant", "participant_id": host["participant_id"]}).to_string().into()))
        .await
        .unwrap();
    assert_eq!(next_of(&mut hs, "error").await["code"], "malformed");

    hs.send(Message::Text(json!({"type": "remove_participant", "participant_id": guest_id}).to_string().into())).await.unwrap();
    let removed = next_of(&mut gs, "removed").await;
    assert!(removed["reason"].as_str().unwrap().contains("host"), "{removed}");
    // Then the server closes the guest's socket.
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match gs.next().await {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                _ => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the removed participant's socket is closed");
    for ws in [&mut hs, &mut os] {
        assert_eq!(next_of(ws, "participant_left").await["participant_id"], guest_id);
    }
    assert_eq!(e.ws(guest["token"].as_str().unwrap(), None).await.err(), Some(409), "a removed participant's token is used up");

    // The HTTP twin: a publisher token may not, the host token may; a second removal is a 404.
    let other_id = other["participant_id"].as_str().unwrap();
    let del = |bearer: String| e.http.delete(format!("{}/api/rooms/{id}/participants/{other_id}", e.base)).bearer_auth(bearer).send();
    assert_eq!(del(other["token"].as_str().unwrap().to_owned()).await.unwrap().status().as_u16(), 403);
    assert_eq!(del(host["token"].as_str().unwrap().to_owned()).await.unwrap().status().as_u16(), 204);
    assert_eq!(next_of(&mut os, "removed").await["type"], "removed");
    assert_eq!(next_of(&mut hs, "participant_left").await["participant_id"], other_id);
    let r = del(KEY.to_owned()).await.unwrap();
    assert_eq!(r.status().as_u16(), 404);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "participant_not_found");
    // The host is unaffected.
    hs.send(Message::Text(r#"{"type":"chat","text":"still here"}"#.into())).await.unwrap();
    assert_eq!(next_of(&mut hs, "chat").await["text"], "still here");
}

#[tokio::test]
async fn roles_decide_who_joins_the_call_and_who_publishes() {
    const SECRET: &str = "roles-test-secret-roles-test-secret";
    let e = env(|c| {
        c.api_key = Some(KEY.into());
        c.jwt_secret = Some(SECRET.into());
    })
    .await;
    let (_, room) = e.post("/api/rooms", json!({"name": "Roles"}), Some(KEY)).await;
    let id = room["id"].as_str().unwrap();
    let (s, v) = e.post(&format!("/api/rooms/{id}/join"), json!({"name": "X", "role": "host"}), Some(KEY)).await;
    assert_eq!((s, v["error"].as_str()), (400, Some("bad_request")), "host comes from the host key only: {v}");
    let (s, _) = e.post(&format!("/api/rooms/{id}/join"), json!({"name": "X", "role": "owner"}), Some(KEY)).await;
    assert_eq!(s, 400);

    // A viewer token (watch only) and an ops token cannot open a signaling session.
    let (s, viewer) = e.post(&format!("/api/rooms/{id}/viewer-token"), json!({}), Some(KEY)).await;
    assert_eq!(s, 200, "{viewer}");
    assert_eq!(e.ws(viewer["token"].as_str().unwrap(), None).await.err(), Some(403));
    let keys = roomcast::auth::token::TokenKeys::from_secret(SECRET.as_bytes());
    let ops = keys.mint(id, "p-ops", "ops", roomcast::auth::role::Role::Ops, Duration::from_secs(60));
    assert_eq!(e.ws(&ops, None).await.err(), Some(403));
    // The same secret really signs this server's tokens: a publisher token minted with it opens a session.
    let own = keys.mint(id, "p-minted", "Minted", roomcast::auth::role::Role::Publisher, Duration::from_secs(60));
    assert!(e.ws(&own, None).await.is_ok());

    // A subscriber joins and may chat, but its publish_offer is refused.
    let (_, sub) = e.post(&format!("/api/rooms/{id}/join"), json!({"name": "Sub", "role": "subscriber"}), Some(KEY)).await;
    assert_eq!(claims(sub["token"].as_str().unwrap())["role"], "subscriber");
    let mut ws = e.ws(sub["token"].as_str().unwrap(), None).await.unwrap();
    assert_eq!(next_json(&mut ws).await["type"], "welcome");
    ws.send(Message::Text(json!({"type": "publish_offer", "sdp": "v=0"}).to_string().into())).await.unwrap();
    let err = next_of(&mut ws, "error").await;
    assert_eq!(err["code"], "forbidden", "{err}");
    ws.send(Message::Text(r#"{"type":"chat","text":"listening"}"#.into())).await.unwrap();
    assert_eq!(next_of(&mut ws, "chat").await["text"], "listening");
}
