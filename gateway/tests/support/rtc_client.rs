//! A light WebRTC client for tests and benchmarks: joins through HTTP + WebSocket like a
//! browser, speaks real ICE/DTLS/SRTP (str0m), and publishes a VP8-shaped stream or only
//! receives, counting packets. No media encoding, so hundreds fit on one core.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind};
use str0m::net::{Protocol, Receive};
use str0m::rtp::RtpWrite;
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio_tungstenite::tungstenite::Message;

pub const FPS: u64 = 30;
pub const PACKETS_PER_FRAME: u64 = 4;
pub const PAYLOAD_BYTES: usize = 1100;

#[derive(Default)]
pub struct Counters {
    pub sent: AtomicU64,
    pub received: AtomicU64,
    pub receiving_clients: AtomicU64,
}

/// A WebRTC client: joins, then publishes (one VP8-shaped video track) or only subscribes.
pub async fn client(base: String, room: String, publisher: bool, counters: Arc<Counters>) -> anyhow::Result<()> {
    client_with(base, room, publisher, counters, Controls::default()).await
}

/// What a test can do to a running client and see of it.
#[derive(Clone, Default)]
pub struct Controls {
    /// Set: stop all media (no more UDP, as if the network dropped) but keep the WebSocket.
    pub drop_media: Arc<AtomicBool>,
    /// Every signaling message received.
    pub log: Arc<Mutex<Vec<Value>>>,
    /// Signaling messages the test wants sent (sent within ~50 ms).
    pub outbox: Arc<Mutex<Vec<Value>>>,
}

pub async fn client_with(base: String, room: String, publisher: bool, counters: Arc<Counters>, controls: Controls) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let join: Value = http
        .post(format!("{base}/api/rooms/{room}/join"))
        .json(&json!({"name": if publisher { "pub" } else { "sub" }}))
        .send()
        .await?
        .json()
        .await?;
    let ws_url = join["ws_url"].as_str().ok_or_else(|| anyhow::anyhow!("join refused: {join}"))?;
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url).await?;
    let socket = UdpSocket::bind("127.0.0.1:0").await?;
    let local = socket.local_addr()?;
    let mut rtc = Rtc::builder().set_rtp_mode(true).clear_codecs().enable_vp8(true).enable_opus(true, false).build(Instant::now());
    rtc.add_local_candidate(Candidate::host(local, "udp")?);

    let mut pending = None;
    let mut mid = None;
    if publisher {
        let mut change = rtc.sdp_api();
        mid = Some(change.add_media(MediaKind::Video, Direction::SendOnly, None, None, None));
        let (offer, p) = change.apply().expect("an offer");
        pending = Some(p);
        ws.send(Message::Text(json!({"type": "publish_offer", "sdp": offer.to_sdp_string()}).to_string().into())).await?;
    }

    let mut buf = vec![0u8; 2048];
    let mut connected = false;
    let mut counted_receiving = false;
    let mut frame: u64 = 0;
    let mut seq: u64 = 1;
    let start = Instant::now();
    let mut next_frame = tokio::time::Instant::now();
    let mut outbox_tick = tokio::time::interval(Duration::from_millis(50));
    loop {
        if controls.drop_media.load(Ordering::Relaxed) {
            // The network is gone for this client: only signaling keeps running.
            while let Some(Ok(msg)) = ws.next().await {
                if let Message::Text(text) = msg {
                    controls.log.lock().unwrap().push(serde_json::from_str(&text)?);
                }
            }
            return Ok(());
        }
        let deadline = loop {
            match rtc.poll_output()? {
                Output::Transmit(t) => {
                    let _ = socket.send_to(&t.contents, t.destination).await;
                }
                Output::Timeout(t) => break t,
                Output::Event(Event::Connected) => connected = true,
                Output::Event(Event::RtpPacket(_)) => {
                    counters.received.fetch_add(1, Ordering::Relaxed);
                    if !counted_receiving {
                        counted_receiving = true;
                        counters.receiving_clients.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Output::Event(_) => {}
            }
        };
        let sleep_until = tokio::time::Instant::from_std(deadline);
        let publishing = publisher && connected;
        tokio::select! {
            r = socket.recv_from(&mut buf) => {
                let (n, source) = r?;
                if let Ok(contents) = buf[..n].try_into() {
                    rtc.handle_input(Input::Receive(Instant::now(), Receive { proto: Protocol::Udp, source, destination: local, contents }))?;
                }
            }
            _ = tokio::time::sleep_until(sleep_until) => rtc.handle_input(Input::Timeout(Instant::now()))?,
            _ = outbox_tick.tick() => {
                let queued: Vec<Value> = std::mem::take(&mut *controls.outbox.lock().unwrap());
                for m in queued {
                    ws.send(Message::Text(m.to_string().into())).await?;
                }
            }
            _ = tokio::time::sleep_until(next_frame), if publishing => {
                next_frame += Duration::from_micros(1_000_000 / FPS);
                let pt = rtc.codec_config().find(|p| p.spec().codec == Codec::Vp8).map(|p| p.pt()).expect("VP8");
                let rtp_time = (start.elapsed().as_micros() as u64 * 90 / 1000) as u32;
                let key = frame.is_multiple_of(2 * FPS);
                if let Some(tx) = rtc.direct_api().stream_tx_by_mid(mid.unwrap(), None) {
                    for i in 0..PACKETS_PER_FRAME {
                        let mut payload = vec![0u8; PAYLOAD_BYTES];
                        payload[0] = if i == 0 { 0x10 } else { 0x00 };
                        payload[1] = if key { 0x00 } else { 0x01 };
                        tx.write_rtp(RtpWrite::new(pt, seq.into(), rtp_time, Instant::now(), payload).marker(i == PACKETS_PER_FRAME - 1).nackable(true));
                        seq += 1;
                    }
                    counters.sent.fetch_add(PACKETS_PER_FRAME, Ordering::Relaxed);
                }
                frame += 1;
                rtc.handle_input(Input::Timeout(Instant::now()))?;
            }
            msg = ws.next() => {
                let Some(Ok(Message::Text(text))) = msg else { return Ok(()) };
                let v: Value = serde_json::from_str(&text)?;
                controls.log.lock().unwrap().push(v.clone());
                match v["type"].as_str() {
                    Some("publish_answer") => {
                        let answer = SdpAnswer::from_sdp_string(v["sdp"].as_str().unwrap())?;
                        rtc.sdp_api().accept_answer(pending.take().expect("pending offer"), answer)?;
                    }
                    Some("subscribe_offer") => {
                        let offer = SdpOffer::from_sdp_string(v["sdp"].as_str().unwrap())?;
                        let answer = rtc.sdp_api().accept_offer(offer)?;
                        ws.send(Message::Text(json!({"type": "subscribe_answer", "sdp": answer.to_sdp_string()}).to_string().into())).await?;
                    }
                    _ => {}
                }
            }
        }
    }
}
