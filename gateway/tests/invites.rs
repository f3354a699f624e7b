//! Invite links over real HTTP and WebSocket, on a node with an API key: minting rights and
//! input checks, the exchange (`POST /api/rooms/{id}/join {"invite"}`) whose token opens `/ws`,
//! forged / tampered / other room's / expired / used-up invites refused with their own codes,
//! the check endpoint, rejoins that are not new uses, and `GET /api/config`.
//! Run: `cargo test -p roomcast --test invites`.

use std::time::Duration;

use futures_util::StreamExt;
use roomcast::auth::invite::{Invite, InviteKeys};
use roomcast::auth::role::Role;
use roomcast::clock::unix_now;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

const KEY: &str = "invites-test-api-key";
const SECRET: &str = "invites-test-secret-0123456789abcdef";

#[path = "support/gateway.rs"]
mod support;
use support::TestGateway as Env;

async fn env(api_key: Option<&str>) -> Env {
    Env::start(|c| {
        c.api_key = api_key.map(str::to_owned);
        c.jwt_secret = Some(SECRET.into());
    })
    .await
}

impl Env {
    /// A room and its host key.
    async fn room(&self) -> (String, String) {
        let (s, v) = self.post("/api/rooms", json!({"name": "Invites"}), Some(KEY)).await;
        assert_eq!(s, 201, "{v}");
        (v["id"].as_str().unwrap().to_owned(), v["host_key"].as_str().unwrap().to_owned())
    }

    async fn mint(&self, room: &str, body: Value, bearer: Option<&str>) -> (u16, Value) {
        self.post(&format!("/api/rooms/{room}/invites"), body, bearer).await
    }

    /// Mints with the API key; the invite text.
    async fn invite(&self, room: &str, body: Value) -> String {
        let (s, v) = self.mint(room, body, Some(KEY)).await;
        assert_eq!(s, 201, "{v}");
        v["invite"].as_str().unwrap().to_owned()
    }

    /// The exchange, as the web app does it (no API key).
    async fn redeem(&self, room: &str, invite: &str, rejoin: Option<&str>) -> (u16, Value) {
        let mut body = json!({"invite": invite, "name": "Guest"});
        if let Some(t) = rejoin {
            body["rejoin"] = json!(t);
        }
        self.post(&format!("/api/rooms/{room}/join"), body, None).await
    }

    async fn check(&self, room: &str, invite: &str) -> (u16, Value) {
        self.post(&format!("/api/rooms/{room}/invites/check"), json!({"invite": invite}), None).await
    }
}

fn assert_refused((status, body): (u16, Value), expected: (u16, &str)) {
    assert_eq!((status, body["error"].as_str().unwrap_or("")), expected, "{body}");
    assert!(body["message"].as_str().unwrap().contains("ask"), "the message says what to do: {body}");
}

#[tokio::test]
async fn minting_needs_the_api_key_or_the_host_and_checks_its_inputs() {
    let e = env(Some(KEY)).await;
    let (room, host_key) = e.room().await;
    let (other_room, _) = e.room().await;

    let (s, v) = e.mint(&room, json!({"role": "publisher", "ttl_secs": 600, "max_uses": 5}), Some(KEY)).await;
    assert_eq!(s, 201, "{v}");
    let invite = v["invite"].as_str().unwrap();
    assert_eq!(v["url"], format!("/room/{room}?invite={invite}"));
    assert_eq!(
        (v["room"].as_str(), v["role"].as_str(), v["max_uses"].as_u64(), v["expires_in"].as_u64()),
        (Some(room.as_str()), Some("publisher"), Some(5), Some(600))
    );
    let expires_at = v["expires_at"].as_u64().unwrap();
    assert!(expires_at.abs_diff(unix_now() + 600) <= 2, "{v}");

    // Defaults: publisher, 24 hours, no limit; an empty body is fine.
    let r = e.http.post(format!("{}/api/rooms/{room}/invites", e.base)).bearer_auth(KEY).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let v: Value = r.json().await.unwrap();
    assert_eq!((v["role"].as_str(), v["expires_in"].as_u64(), &v["max_uses"]), (Some("publisher"), Some(86_400), &Value::Null));

    // Without the key, with a wrong one, or with a publisher token: refused.
    assert_eq!(e.mint(&room, json!({}), None).await.0, 401);
    assert_eq!(e.mint(&room, json!({}), Some("not-the-key")).await.0, 401);
    let invited = e.redeem(&room, invite, None).await.1;
    let publisher_token = invited["token"].as_str().unwrap();
    assert_eq!(e.mint(&room, json!({}), Some(publisher_token)).await.0, 403);

    // A host token of the room mints (hosts too); not for another room.
    let (_, host) = e.post(&format!("/api/rooms/{room}/join"), json!({"name": "Host", "host_key": host_key}), Some(KEY)).await;
    let host_token = host["token"].as_str().unwrap();
    assert_eq!(e.mint(&room, json!({"role": "host", "ttl_secs": 60}), Some(host_token)).await.0, 201);
    assert_eq!(e.mint(&other_room, json!({}), Some(host_token)).await.0, 403);
    assert_eq!(e.mint("r-nope", json!({}), Some(KEY)).await.0, 404);

    // Inputs.
    for bad in [
        json!({"ttl_secs": 0}),
        json!({"ttl_secs": 7 * 86_400 + 1}),
        json!({"ttl_secs": -5}),
        json!({"role": "viewer"}),
        json!({"role": "ops"}),
        json!({"role": "admin"}),
        json!({"max_uses": 0}),
        json!({"max_uses": 10_001}),
        json!({"expires": 5}),
    ] {
        let (s, v) = e.mint(&room, bad.clone(), Some(KEY)).await;
        assert_eq!((s, v["error"].as_str()), (400, Some("bad_request")), "{bad} → {v}");
    }
}

#[tokio::test]
async fn an_invite_gives_a_token_that_opens_the_signaling_socket() {
    let e = env(Some(KEY)).await;
    let (room, _) = e.room().await;
    // Without an invite, a browser cannot join this node.
    assert_eq!(e.post(&format!("/api/rooms/{room}/join"), json!({"name": "Guest"}), None).await.0, 401);

    let invite = e.invite(&room, json!({"role": "subscriber", "ttl_secs": 600})).await;
    let (s, joined) = e.redeem(&room, &invite, None).await;
    assert_eq!(s, 200, "{joined}");
    assert_eq!(joined["role"], "subscriber", "the invite's role");
    assert!(joined["ice_servers"].is_array() && joined["participant_id"].as_str().unwrap().starts_with("p-"), "{joined}");
    let ws_url = joined["ws_url"].as_str().unwrap();
    assert!(ws_url.contains("/ws?token="), "{ws_url}");
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url).await.expect("the token opens /ws");
    let welcome = loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await.expect("a message").unwrap().unwrap() {
            Message::Text(t) => break serde_json::from_str::<Value>(&t).unwrap(),
            _ => continue,
        }
    };
    assert_eq!(
        (welcome["type"].as_str(), welcome["participant_id"].as_str()),
        (Some("welcome"), joined["participant_id"].as_str()),
        "{welcome}"
    );

    // An invite sets the role: no host_key or role next to it.
    let (s, v) = e.post(&format!("/api/rooms/{room}/join"), json!({"invite": invite, "role": "publisher"}), None).await;
    assert_eq!((s, v["error"].as_str()), (400, Some("bad_request")), "{v}");
}

#[tokio::test]
async fn forged_tampered_foreign_expired_and_used_up_invites_are_refused() {
    let e = env(Some(KEY)).await;
    let (room, _) = e.room().await;
    let (other_room, _) = e.room().await;
    let now = unix_now();

    // Forged: signed with another secret; tampered: our signature on a changed payload.
    let forged = InviteKeys::from_token_secret(b"not-this-node-secret-0123456789ab").sign(&Invite::new(&room, Role::Host, 600, None, now));
    assert_refused(e.redeem(&room, &forged, None).await, (401, "invite_invalid"));
    let good = e.invite(&room, json!({"role": "publisher", "ttl_secs": 600})).await;
    let (signed, sig) = good.rsplit_once('.').unwrap();
    let flip = if signed.ends_with('A') { 'B' } else { 'A' };
    let tampered = format!("{}{flip}.{sig}", &signed[..signed.len() - 1]);
    assert_refused(e.redeem(&room, &tampered, None).await, (401, "invite_invalid"));
    assert_refused(e.redeem(&room, "garbage", None).await, (401, "invite_invalid"));
    assert_refused(e.redeem(&room, &good[..good.len() / 2], None).await, (401, "invite_invalid"));

    // Another room's invite.
    let foreign = e.invite(&other_room, json!({"ttl_secs": 600})).await;
    assert_refused(e.redeem(&room, &foreign, None).await, (403, "invite_wrong_room"));

    // Expired: signed by this node's secret an hour ago for ten minutes (an injected clock) …
    let keys = InviteKeys::from_token_secret(SECRET.as_bytes());
    let old = keys.sign(&Invite::new(&room, Role::Publisher, 600, None, now - 3600));
    assert_refused(e.redeem(&room, &old, None).await, (410, "invite_expired"));
    assert_refused(e.check(&room, &old).await, (410, "invite_expired"));
    // … and one minted over HTTP with ttl 1, once its second has passed.
    let short = e.invite(&room, json!({"ttl_secs": 1})).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_refused(e.redeem(&room, &short, None).await, (410, "invite_expired"));

    // Used up: max_uses 2 lets two people in, not a third.
    let twice = e.invite(&room, json!({"ttl_secs": 600, "max_uses": 2})).await;
    let (s, v) = e.check(&room, &twice).await;
    assert_eq!((s, v["uses"].as_u64(), v["uses_left"].as_u64(), v["role"].as_str()), (200, Some(0), Some(2), Some("publisher")), "{v}");
    assert_eq!(e.redeem(&room, &twice, None).await.0, 200);
    assert_eq!(e.redeem(&room, &twice, None).await.0, 200);
    assert_refused(e.redeem(&room, &twice, None).await, (410, "invite_exhausted"));
    assert_refused(e.check(&room, &twice).await, (410, "invite_exhausted"));
    assert_refused(e.check(&room, &forged).await, (401, "invite_invalid"));
    assert_refused(e.check(&room, &foreign).await, (403, "invite_wrong_room"));
}

#[tokio::test]
async fn a_rejoin_moves_the_seat_and_is_not_a_new_use() {
    let e = env(Some(KEY)).await;
    let (room, _) = e.room().await;
    let once = e.invite(&room, json!({"ttl_secs": 600, "max_uses": 1})).await;
    let (s, first) = e.redeem(&room, &once, None).await;
    assert_eq!(s, 200, "{first}");
    let first_token = first["token"].as_str().unwrap();
    assert_refused(e.redeem(&room, &once, None).await, (410, "invite_exhausted"));

    // The same browser reconnecting sends the token it had: in again, still one use.
    let (s, second) = e.redeem(&room, &once, Some(first_token)).await;
    assert_eq!(s, 200, "{second}");
    assert_ne!(second["participant_id"], first["participant_id"]);
    assert_eq!(e.check(&room, &once).await.1["error"], "invite_exhausted");
    // The old token's seat moved on: replaying it is a new use, and there is none left.
    assert_refused(e.redeem(&room, &once, Some(first_token)).await, (410, "invite_exhausted"));
    // A token from elsewhere (another join, no seat of this invite) is no way around the limit.
    let (_, other) = e.post(&format!("/api/rooms/{room}/join"), json!({"name": "Other"}), Some(KEY)).await;
    assert_refused(e.redeem(&room, &once, other["token"].as_str()).await, (410, "invite_exhausted"));
    // The newest token rejoins.
    let (s, third) = e.redeem(&room, &once, second["token"].as_str()).await;
    assert_eq!(s, 200, "{third}");
}

#[tokio::test]
async fn an_expired_invite_still_lets_its_holder_rejoin() {
    let e = env(Some(KEY)).await;
    let (room, _) = e.room().await;
    let short = e.invite(&room, json!({"ttl_secs": 1, "max_uses": 3})).await;
    let (s, first) = e.redeem(&room, &short, None).await;
    assert_eq!(s, 200, "{first}");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_refused(e.redeem(&room, &short, None).await, (410, "invite_expired"));
    let (s, again) = e.redeem(&room, &short, first["token"].as_str()).await;
    assert_eq!(s, 200, "a reconnect after the invite expired: {again}");
}

#[tokio::test]
async fn config_says_whether_browsers_need_an_invite() {
    let secured = env(Some(KEY)).await;
    let v: Value = secured.http.get(format!("{}/api/config", secured.base)).send().await.unwrap().json().await.unwrap();
    assert_eq!(v, json!({"invite_required": true}));

    // An open node: nothing changes for joins, and invites work there too.
    let open = env(None).await;
    let v: Value = open.http.get(format!("{}/api/config", open.base)).send().await.unwrap().json().await.unwrap();
    assert_eq!(v, json!({"invite_required": false}));
    let (s, room) = open.post("/api/rooms", json!({"name": "Open"}), None).await;
    assert_eq!(s, 201);
    let room = room["id"].as_str().unwrap();
    assert_eq!(open.post(&format!("/api/rooms/{room}/join"), json!({"name": "Ada"}), None).await.0, 200);
    let (s, minted) = open.mint(room, json!({"role": "publisher"}), None).await;
    assert_eq!(s, 201, "{minted}");
    assert_eq!(open.redeem(room, minted["invite"].as_str().unwrap(), None).await.0, 200);
    // But a host invite needs the host, even here.
    assert_eq!(open.mint(room, json!({"role": "host"}), None).await.0, 401);
}
