//! The router driven in memory, the way str0m's own tests drive two `Rtc`s: every participant
//! is a pair of real str0m clients (ICE, DTLS, SRTP, RTCP) on made-up addresses, datagrams are
//! handed across by the test, and time is simulated (5 ms steps), so seconds of a call run in
//! milliseconds. The clients behave like browsers: a publisher sends a keyframe when its
//! connection comes up and afterwards only when asked (PLI or FIR).

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, KeyframeRequestKind, MediaKind, Mid, Rid, Simulcast, SimulcastLayer};
use str0m::net::{Protocol, Receive};
use str0m::rtp::RtpWrite;
use str0m::{Candidate, Event, Input as RtcInput, Output as RtcOutput, Rtc};

use super::*;
use crate::protocol::{ClientMsg, ErrorCode, ParticipantInfo, PcRole, ServerMsg};

const STEP: Duration = Duration::from_millis(5);
const FRAME: Duration = Duration::from_millis(33);
const SERVER: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 5000);
/// Where the compositor's legs go in these tests.
const LEG_RTP: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::new(10, 9, 9, 9)), 7000);
const LEG_RTCP: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::new(10, 9, 9, 9)), 7001);

/// A received RTP packet, as a subscriber (or the compositor) saw it.
#[derive(Debug, Clone, Copy)]
struct Got {
    mid: Mid,
    seq: u64,
    timestamp: u32,
    keyframe: bool,
    /// The height of the layer it was sent on (every test packet carries it).
    layer: u16,
}

/// One of a client's PeerConnections.
struct Side {
    rtc: Rtc,
    addr: SocketAddr,
    pending: Option<SdpPendingOffer>,
    connected: bool,
}

impl Side {
    fn new(addr: SocketAddr, now: Instant) -> Self {
        let mut rtc = Rtc::builder().set_rtp_mode(true).clear_codecs().enable_vp8(true).enable_opus(true, false).build(now);
        rtc.add_local_candidate(Candidate::host(addr, "udp").unwrap());
        Side { rtc, addr, pending: None, connected: false }
    }
}

/// What a publisher sends on one simulcast layer (or its only stream).
struct Stream {
    rid: Option<Rid>,
    height: u32,
    seq: u64,
    /// Asked for a keyframe since the last one sent.
    keyframe_wanted: bool,
    /// RTP timestamps of the keyframes sent.
    keyframes_at: Vec<u32>,
}

struct Client {
    id: String,
    subscribe: Side,
    publish: Option<Side>,
    video_mid: Option<Mid>,
    streams: Vec<Stream>,
    frames_sent: u32,
    /// Every signaling message the server sent.
    msgs: Vec<ServerMsg>,
    received: Vec<Got>,
    keyframe_requests: Vec<(Option<Rid>, KeyframeRequestKind)>,
    /// Answer the next subscribe offer with garbage (and keep the real answer here).
    spoil_next_answer: bool,
    good_answer: Option<String>,
}

struct World {
    now: Instant,
    router: Router,
    clients: Vec<Client>,
    feed: Vec<LegEvent>,
    leg: Vec<Got>,
    departed: Vec<(String, Departure)>,
    /// Commands the clients send, handed in after the router's outputs are drained.
    to_router: Vec<RouterCommand>,
    /// Datagrams the clients sent, for the router.
    datagrams: Vec<(SocketAddr, Vec<u8>)>,
    /// A bottleneck on the way to one client address: its link and the datagrams queued on it.
    bottleneck: Option<Bottleneck>,
}

/// A link of `bytes_per_sec` with a drop-tail queue of `max_queue` (a home uplink's router):
/// datagrams leave it at the link's pace, so a sender that sends more sees delay, then loss.
struct Bottleneck {
    to: SocketAddr,
    bytes_per_sec: u64,
    max_queue: Duration,
    /// When the link is free again.
    busy_until: Instant,
    queue: std::collections::VecDeque<(Instant, Vec<u8>)>,
}

impl Bottleneck {
    /// Queues a datagram; false if the queue is full (dropped).
    fn offer(&mut self, now: Instant, contents: Vec<u8>) -> bool {
        let start = self.busy_until.max(now);
        if start.duration_since(now) > self.max_queue {
            return false;
        }
        let leaves = start + Duration::from_nanos(contents.len() as u64 * 1_000_000_000 / self.bytes_per_sec);
        self.busy_until = leaves;
        self.queue.push_back((leaves, contents));
        true
    }

    /// The datagrams that have left the link by `now`.
    fn due(&mut self, now: Instant) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while self.queue.front().is_some_and(|(t, _)| *t <= now) {
            out.push(self.queue.pop_front().unwrap().1);
        }
        out
    }
}

fn config() -> RouterConfig {
    RouterConfig {
        local: SERVER,
        candidate: Candidate::host(SERVER, "udp").unwrap(),
        ice_lite: false,
        bwe: true,
        ice_disconnect_timeout: Duration::from_secs(4),
        seed: 7,
        unix_now: || 1_700_000_000,
    }
}

/// A VP8 packet: the payload descriptor (S bit on the first packet of a frame), then on a
/// keyframe's first packet the frame tag, start code and dimensions.
fn vp8_payload(first: bool, keyframe: bool, height: u32) -> Vec<u8> {
    let mut p = vec![0u8; 900];
    p[0] = if first { 0x10 } else { 0x00 };
    p[20..22].copy_from_slice(&(height as u16).to_be_bytes());
    if first {
        p[1] = if keyframe { 0x50 } else { 0x51 };
        p[2] = 0x02;
        p[3] = 0x00;
        if keyframe {
            let w = height * 16 / 9;
            p[4..7].copy_from_slice(&[0x9d, 0x01, 0x2a]);
            p[7..9].copy_from_slice(&(w as u16).to_le_bytes());
            p[9..11].copy_from_slice(&(height as u16).to_le_bytes());
        }
    }
    p
}

fn parse_got(mid: Mid, seq: u64, timestamp: u32, payload: &[u8]) -> Got {
    let keyframe = crate::sfu::keyframe::starts_keyframe(Codec::Vp8, payload);
    let layer = u16::from_be_bytes([payload[20], payload[21]]);
    Got { mid, seq, timestamp, keyframe, layer }
}

impl World {
    fn new() -> Self {
        let now = Instant::now();
        World {
            now,
            router: Router::new("room".into(), config(), now),
            clients: vec![],
            feed: vec![],
            leg: vec![],
            departed: vec![],
            to_router: vec![],
            datagrams: vec![],
            bottleneck: None,
        }
    }

    /// "a" publishes a camera to "b" for a second (the broadcast fed from the start, or not).
    fn a_publishing_to_b(broadcast: bool) -> Self {
        let mut w = World::new();
        if broadcast {
            w.command(RouterCommand::StartBroadcast);
        }
        w.join("a");
        w.join("b");
        w.publish("a", false);
        w.run(Duration::from_secs(1));
        w
    }

    fn command(&mut self, command: RouterCommand) {
        self.router.handle_input(Input::Command { at: self.now, command });
        self.drain();
    }

    fn client(&mut self, id: &str) -> &mut Client {
        self.clients.iter_mut().find(|c| c.id == id).expect("a client of that id")
    }

    /// A participant joins (its subscribe connection is made; it publishes nothing yet).
    fn join(&mut self, id: &str) {
        let n = self.clients.len() as u8 + 1;
        let addr = SocketAddr::from((Ipv4Addr::new(10, 0, 1, n), 2000));
        self.clients.push(Client {
            id: id.into(),
            subscribe: Side::new(addr, self.now),
            publish: None,
            video_mid: None,
            streams: vec![],
            frames_sent: 0,
            msgs: vec![],
            received: vec![],
            keyframe_requests: vec![],
            spoil_next_answer: false,
            good_answer: None,
        });
        self.command(RouterCommand::Join { info: ParticipantInfo::new(id, id) });
    }

    /// The participant publishes a camera: one stream, or simulcast layers q/h/f (180/360/720p).
    fn publish(&mut self, id: &str, simulcast: bool) {
        let now = self.now;
        let c = self.client(id);
        let n = c.subscribe.addr.ip();
        let mut side = Side::new(SocketAddr::new(n, 1000), now);
        let rids: Vec<(Option<Rid>, u32)> =
            if simulcast { vec![(Some("q".into()), 180), (Some("h".into()), 360), (Some("f".into()), 720)] } else { vec![(None, 720)] };
        let sim = simulcast.then(|| {
            let mut s = Simulcast::new();
            for r in ["q", "h", "f"] {
                s.add_send_layer(SimulcastLayer::new(r));
            }
            s
        });
        let mut api = side.rtc.sdp_api();
        let mid = api.add_media(MediaKind::Video, Direction::SendOnly, Some("cam".into()), Some("cam-video".into()), sim);
        let (offer, pending) = api.apply().unwrap();
        side.pending = Some(pending);
        c.publish = Some(side);
        c.video_mid = Some(mid);
        c.streams =
            rids.into_iter().map(|(rid, height)| Stream { rid, height, seq: 1000, keyframe_wanted: false, keyframes_at: vec![] }).collect();
        let participant = c.id.clone();
        self.command(RouterCommand::Signal { participant, msg: ClientMsg::PublishOffer { sdp: offer.to_sdp_string() } });
    }

    /// Hands the router's outputs to the clients, the leg and the lists.
    fn drain(&mut self) {
        loop {
            match self.router.poll_output() {
                Output::Transmit { to, contents } => {
                    if to == LEG_RTP {
                        let pkt = &contents;
                        let seq = u16::from_be_bytes([pkt[2], pkt[3]]) as u64;
                        let ts = u32::from_be_bytes([pkt[4], pkt[5], pkt[6], pkt[7]]);
                        self.leg.push(parse_got(Mid::from("leg"), seq, ts, &pkt[12..]));
                        continue;
                    }
                    let now = self.now;
                    if let Some(b) = self.bottleneck.as_mut().filter(|b| b.to == to) {
                        b.offer(now, contents);
                        continue;
                    }
                    self.deliver_to_client(to, &contents);
                }
                Output::Signal { participant, msg } => self.on_signal(&participant, msg),
                Output::Feed(ev) => self.feed.push(ev),
                Output::Sample { .. } => {}
                Output::Departed { participant, why, .. } => self.departed.push((participant, why)),
                Output::Timeout(_) => break,
            }
        }
    }

    /// A datagram from the router reaches the client connection at `to`, which runs at once.
    fn deliver_to_client(&mut self, to: SocketAddr, contents: &[u8]) {
        let now = self.now;
        for c in &mut self.clients {
            for role in [PcRole::Subscribe, PcRole::Publish] {
                let Some(side) = c.side(role).filter(|s| s.addr == to) else { continue };
                let input = RtcInput::Receive(
                    now,
                    Receive { proto: Protocol::Udp, source: SERVER, destination: to, contents: contents.try_into().unwrap() },
                );
                side.rtc.handle_input(input).unwrap();
                c.poll(role, &mut self.datagrams);
            }
        }
    }

    fn on_signal(&mut self, participant: &str, msg: ServerMsg) {
        let Some(c) = self.clients.iter_mut().find(|c| c.id == participant) else { return };
        match &msg {
            ServerMsg::PublishAnswer { sdp } => {
                let side = c.publish.as_mut().unwrap();
                let answer = SdpAnswer::from_sdp_string(sdp).unwrap();
                side.rtc.sdp_api().accept_answer(side.pending.take().unwrap(), answer).unwrap();
            }
            ServerMsg::SubscribeOffer { sdp, .. } => {
                let offer = SdpOffer::from_sdp_string(sdp).unwrap();
                let answer = c.subscribe.rtc.sdp_api().accept_offer(offer).unwrap().to_sdp_string();
                let sdp = if std::mem::take(&mut c.spoil_next_answer) {
                    c.good_answer = Some(answer);
                    "v=0\r\nthis is not an answer".to_owned()
                } else {
                    answer
                };
                let participant = c.id.clone();
                self.to_router.push(RouterCommand::Signal { participant, msg: ClientMsg::SubscribeAnswer { sdp } });
            }
            ServerMsg::Candidate { pc, candidate, .. } => {
                let side = match pc {
                    PcRole::Publish => c.publish.as_mut().unwrap(),
                    PcRole::Subscribe => &mut c.subscribe,
                };
                side.rtc.add_remote_candidate(Candidate::from_sdp_string(candidate).unwrap());
            }
            _ => {}
        }
        c.msgs.push(msg);
    }

    /// One step of simulated time: every client runs (its datagrams go to the router), the
    /// router runs, its outputs go out, the clients' signaling is answered.
    fn step(&mut self) {
        self.now += STEP;
        let now = self.now;
        for c in &mut self.clients {
            for role in [PcRole::Subscribe, PcRole::Publish] {
                if let Some(side) = c.side(role) {
                    side.rtc.handle_input(RtcInput::Timeout(now)).unwrap();
                }
                c.poll(role, &mut self.datagrams);
            }
        }
        self.deliver_datagrams();
        let through = self.bottleneck.as_mut().map(|b| (b.to, b.due(now)));
        if let Some((to, datagrams)) = through {
            for d in datagrams {
                self.deliver_to_client(to, &d);
            }
        }
        self.router.handle_input(Input::Timeout(now));
        self.drain();
        for command in std::mem::take(&mut self.to_router) {
            self.command(command);
        }
    }

    /// Hands the clients' datagrams to the router (each one driven at once, as the worker does).
    fn deliver_datagrams(&mut self) {
        for (source, contents) in std::mem::take(&mut self.datagrams) {
            self.router.handle_input(Input::Datagram { at: self.now, source, contents: &contents });
        }
    }

    /// Runs for `d` of simulated time; connected publishers send 30 fps video (a keyframe
    /// first and when asked, like a browser).
    fn run(&mut self, d: Duration) {
        let end = self.now + d;
        let mut next_frame = self.now;
        while self.now < end {
            if self.now >= next_frame {
                next_frame += FRAME;
                let now = self.now;
                for c in &mut self.clients {
                    send_frame(c, now);
                }
            }
            self.step();
        }
    }

    fn video_mids_of(&self, id: &str) -> Vec<Mid> {
        let c = self.clients.iter().find(|c| c.id == id).unwrap();
        c.msgs
            .iter()
            .rev()
            .find_map(|m| match m {
                ServerMsg::SubscribeOffer { tracks, .. } => Some(tracks.clone()),
                _ => None,
            })
            .unwrap_or_default()
            .into_iter()
            .filter(|t| t.kind == crate::protocol::MediaKindName::Video)
            .map(|t| Mid::from(t.mid.as_str()))
            .collect()
    }

    fn received_by(&self, id: &str) -> &[Got] {
        &self.clients.iter().find(|c| c.id == id).unwrap().received
    }
}

impl Client {
    fn side(&mut self, role: PcRole) -> Option<&mut Side> {
        match role {
            PcRole::Subscribe => Some(&mut self.subscribe),
            PcRole::Publish => self.publish.as_mut(),
        }
    }

    /// Polls one connection until it wants time (str0m wants that after every input): its
    /// datagrams are queued for the router, its events recorded.
    fn poll(&mut self, role: PcRole, datagrams: &mut Vec<(SocketAddr, Vec<u8>)>) {
        loop {
            let Some(side) = self.side(role) else { return };
            let event = match side.rtc.poll_output().unwrap() {
                RtcOutput::Transmit(t) => {
                    datagrams.push((t.source, Vec::from(t.contents)));
                    continue;
                }
                RtcOutput::Timeout(_) => return,
                RtcOutput::Event(e) => e,
            };
            match event {
                Event::Connected => side.connected = true,
                Event::RtpPacket(p) if role == PcRole::Subscribe => {
                    let mid = side.rtc.direct_api().stream_rx(&p.header.ssrc).map(|s| s.mid()).unwrap_or(Mid::from("none"));
                    self.received.push(parse_got(mid, *p.seq_no, p.header.timestamp, &p.payload));
                }
                Event::KeyframeRequest(r) if role == PcRole::Publish => {
                    self.keyframe_requests.push((r.rid, r.kind));
                    for s in self.streams.iter_mut().filter(|s| r.rid.is_none() || s.rid == r.rid) {
                        s.keyframe_wanted = true;
                    }
                }
                _ => {}
            }
        }
    }
}

/// One video frame on every stream of a connected publisher (packets of 900 bytes: 1 for a
/// delta frame, 3 for a keyframe).
fn send_frame(c: &mut Client, now: Instant) {
    let (Some(side), Some(mid)) = (c.publish.as_mut(), c.video_mid) else { return };
    if !side.connected {
        return;
    }
    let first_frame = c.frames_sent == 0;
    let Some(pt) = side.rtc.codec_config().find(|p| p.spec().codec == Codec::Vp8).map(|p| p.pt()) else { return };
    let ts = c.frames_sent.wrapping_mul(3000);
    for s in &mut c.streams {
        let key = first_frame || std::mem::take(&mut s.keyframe_wanted);
        let mut api = side.rtc.direct_api();
        let Some(tx) = api.stream_tx_by_mid(mid, s.rid) else { continue };
        // Bigger layers cost more: 1, 2 or 4 packets per frame at 180p, 360p, 720p (about
        // 0.2, 0.4 and 0.9 Mbit/s at 30 fps); a keyframe is 3 times a frame.
        let per_frame = (s.height / 180).clamp(1, 4) as usize;
        let packets = if key { 3 * per_frame } else { per_frame };
        if key {
            s.keyframes_at.push(ts);
        }
        for i in 0..packets {
            let payload = vp8_payload(i == 0, key, s.height);
            tx.write_rtp(RtpWrite::new(pt, s.seq.into(), ts, now, payload).marker(i == packets - 1).nackable(true));
            s.seq += 1;
        }
    }
    c.frames_sent += 1;
}

/// Sequence numbers and timestamps on one m-line go up without gaps or jumps back.
fn assert_continuous(got: &[Got], mid: Mid) {
    let on: Vec<&Got> = got.iter().filter(|g| g.mid == mid).collect();
    for w in on.windows(2) {
        assert_eq!(w[1].seq, w[0].seq + 1, "sequence numbers on {mid} jump: {:?} -> {:?}", w[0], w[1]);
        let dt = w[1].timestamp.wrapping_sub(w[0].timestamp);
        assert!(dt < 90_000, "timestamps on {mid} jump by {dt}: {:?} -> {:?}", w[0], w[1]);
    }
}

#[test]
fn two_participants_see_each_other_and_the_first_packet_is_a_keyframe() {
    let mut w = World::new();
    w.join("a");
    w.join("b");
    w.publish("a", false);
    w.publish("b", false);
    w.run(Duration::from_secs(2));
    for (me, other) in [("a", "b"), ("b", "a")] {
        let mids = w.video_mids_of(me);
        assert_eq!(mids.len(), 1, "{me} receives {other}'s video");
        let got: Vec<&Got> = w.received_by(me).iter().filter(|g| g.mid == mids[0]).collect();
        assert!(got.len() > 40, "{me} got {} packets of {other}'s video in 2 s", got.len());
        assert!(got[0].keyframe, "{me}'s first packet of {other}'s video starts a keyframe");
        let keyframes = &w.clients.iter().find(|c| c.id == other).unwrap().streams[0].keyframes_at;
        assert!(keyframes.contains(&got[0].timestamp), "{me}'s first frame of {other}'s video is a keyframe");
        assert_continuous(w.received_by(me), mids[0]);
    }
    // The welcome came first, and each was told of the other's producer.
    let a = &w.clients[0];
    assert!(matches!(a.msgs.first(), Some(ServerMsg::Welcome { .. })));
    assert!(a.msgs.iter().any(|m| matches!(m, ServerMsg::ProducerAdded { producer } if producer.participant_id == "b")));
}

#[test]
fn a_late_joiner_gets_a_keyframe_from_a_publisher_that_sends_them_only_when_asked() {
    let mut w = World::new();
    w.join("a");
    w.publish("a", false);
    w.run(Duration::from_secs(3));
    let asked_before = w.clients[0].keyframe_requests.len();
    w.join("late");
    w.run(Duration::from_secs(2));
    let mids = w.video_mids_of("late");
    assert_eq!(mids.len(), 1);
    let got: Vec<&Got> = w.received_by("late").iter().filter(|g| g.mid == mids[0]).collect();
    assert!(!got.is_empty(), "the late joiner receives video");
    assert!(got[0].keyframe && w.clients[0].streams[0].keyframes_at.contains(&got[0].timestamp), "and it starts at a keyframe");
    assert!(w.clients[0].keyframe_requests.len() > asked_before, "the publisher was asked for that keyframe");
    assert_continuous(w.received_by("late"), mids[0]);
}

#[test]
fn keyframe_requests_from_subscribers_are_throttled_per_stream() {
    let mut w = World::new();
    w.join("pub");
    w.publish("pub", false);
    for i in 0..4 {
        w.join(&format!("sub{i}"));
    }
    w.run(Duration::from_secs(2));
    let before = w.clients[0].keyframe_requests.len();
    // Every subscriber asks at once (each as its decoder would); the publisher hears one.
    for i in 0..4 {
        let id = format!("sub{i}");
        let mid = w.video_mids_of(&id)[0];
        let c = w.client(&id);
        c.subscribe.rtc.direct_api().stream_rx_by_mid(mid, None).expect("a receive stream").request_keyframe(KeyframeRequestKind::Pli);
    }
    w.run(Duration::from_millis(200));
    let asked = w.clients[0].keyframe_requests.len() - before;
    assert_eq!(asked, 1, "four PLIs within 200 ms reach the publisher as one");
}

#[test]
fn a_leg_starts_at_a_keyframe_and_an_unanswered_request_is_repeated_as_fir() {
    let mut w = World::new();
    w.command(RouterCommand::StartBroadcast);
    w.join("a");
    w.publish("a", false);
    w.run(Duration::from_secs(1));
    let producer_id = w
        .feed
        .iter()
        .find_map(|e| match e {
            LegEvent::TrackAdded { producer_id, .. } => Some(producer_id.clone()),
            _ => None,
        })
        .expect("the broadcast hears of the track");
    assert!(w.feed.iter().any(|e| matches!(e, LegEvent::ParticipantJoined { id, .. } if id == "a")));

    // The publisher goes deaf to keyframe requests for a while (a busy encoder).
    let requests_before = w.clients[0].keyframe_requests.len();
    w.command(RouterCommand::AttachLeg { producer_id: producer_id.clone(), rtp_to: LEG_RTP, rtcp_to: LEG_RTCP });
    // Keyframes asked for are not sent for 700 ms.
    let end = w.now + Duration::from_millis(700);
    while w.now < end {
        w.clients[0].streams[0].keyframe_wanted = false;
        let now = w.now;
        send_frame(&mut w.clients[0], now);
        for _ in 0..6 {
            w.step();
        }
    }
    assert!(w.leg.is_empty(), "nothing goes to the leg before a keyframe");
    let kinds: Vec<KeyframeRequestKind> = w.clients[0].keyframe_requests[requests_before..].iter().map(|(_, k)| *k).collect();
    assert_eq!(kinds.first(), Some(&KeyframeRequestKind::Pli), "the leg's first ask is a PLI: {kinds:?}");
    assert!(kinds.contains(&KeyframeRequestKind::Fir), "unanswered for 500 ms, it asks again with a FIR: {kinds:?}");
    // Now the publisher answers: the leg starts at that keyframe.
    w.run(Duration::from_millis(500));
    assert!(!w.leg.is_empty(), "the leg forwards once a keyframe came");
    assert!(w.leg[0].keyframe, "the leg starts at a keyframe");
    let counters = w.router.take_counters();
    assert!(counters.keyframe_requests_fir >= 1 && counters.leg_packets_out == w.leg.len() as u64, "{counters:?}");
}

#[test]
fn a_simulcast_consumer_switches_layers_at_a_keyframe_with_continuous_numbers() {
    let mut w = World::new();
    w.join("pub");
    w.publish("pub", true);
    w.join("sub");
    // Long enough for the bandwidth estimate to grow past what 720p needs (it starts at 1 Mbit/s).
    w.run(Duration::from_secs(8));
    let mid = w.video_mids_of("sub")[0];
    let producer_id = format!("{}:0", "pub");
    // The subscriber shows the video small: 180p is enough.
    let big: Vec<u16> = w.received_by("sub").iter().filter(|g| g.mid == mid).map(|g| g.layer).collect();
    assert_eq!(big.last(), Some(&720), "a tile of any size gets the top layer once the bandwidth allows");
    w.command(RouterCommand::Signal {
        participant: "sub".into(),
        msg: ClientMsg::LayerPreference { producer_id: producer_id.clone(), max_height: 180 },
    });
    let small_from = w.received_by("sub").len();
    w.run(Duration::from_secs(1));
    let after: Vec<&Got> = w.received_by("sub")[small_from..].iter().filter(|g| g.mid == mid).collect();
    let switch = after.iter().position(|g| g.layer == 180).expect("the 180p layer arrives");
    assert!(
        after[switch].keyframe,
        "the switch down is at a keyframe of the 180p layer: {:?}",
        &after[switch.saturating_sub(2)..switch + 3]
    );
    assert!(after[switch..].iter().all(|g| g.layer == 180), "and stays there");
    // Shown large again: it switches up at the 720p layer's keyframe.
    w.command(RouterCommand::Signal { participant: "sub".into(), msg: ClientMsg::LayerPreference { producer_id, max_height: 720 } });
    let big_from = w.received_by("sub").len();
    w.run(Duration::from_secs(1));
    let after: Vec<&Got> = w.received_by("sub")[big_from..].iter().filter(|g| g.mid == mid).collect();
    let switch = after.iter().position(|g| g.layer == 720).expect("the 720p layer arrives");
    assert!(after[switch].keyframe, "the switch up is at a keyframe of the 720p layer");
    assert!(after[switch..].iter().all(|g| g.layer == 720));
    assert_continuous(w.received_by("sub"), mid);
}

#[test]
fn a_subscribe_answer_that_does_not_parse_gets_an_error_and_the_offer_waits_for_a_good_one() {
    let mut w = World::new();
    w.join("a");
    w.join("b");
    w.run(Duration::from_millis(500));
    w.client("b").spoil_next_answer = true;
    w.publish("a", false);
    w.run(Duration::from_secs(2));
    let b = &w.clients[1];
    assert!(
        b.msgs.iter().any(|m| matches!(m, ServerMsg::Error { code: ErrorCode::BadSdp, message, .. } if message.contains("did not parse"))),
        "b is told its answer did not parse"
    );
    assert!(w.received_by("b").is_empty(), "nothing flows on an unanswered offer");
    // The client answers properly now (the answer it made, unspoilt).
    let answer = w.client("b").good_answer.take().expect("the unspoilt answer");
    w.command(RouterCommand::Signal { participant: "b".into(), msg: ClientMsg::SubscribeAnswer { sdp: answer } });
    w.run(Duration::from_secs(2));
    let mids = w.video_mids_of("b");
    assert_eq!(mids.len(), 1, "the new offer carries a's video");
    assert!(w.received_by("b").iter().any(|g| g.mid == mids[0]), "and b receives it");
}

#[test]
fn a_leaving_publisher_takes_its_producer_with_it() {
    let mut w = World::a_publishing_to_b(true);
    w.command(RouterCommand::Leave { participant: "a".into() });
    w.run(Duration::from_millis(500));
    assert_eq!(w.departed, vec![("a".to_string(), Departure::Left)]);
    let b = &w.clients[1];
    assert!(b.msgs.iter().any(|m| matches!(m, ServerMsg::ProducerRemoved { participant_id, .. } if participant_id == "a")));
    assert!(b.msgs.iter().any(|m| matches!(m, ServerMsg::ParticipantLeft { participant_id } if participant_id == "a")));
    assert!(w.feed.iter().any(|e| matches!(e, LegEvent::TrackRemoved { .. })));
    assert!(w.feed.iter().any(|e| matches!(e, LegEvent::ParticipantLeft { id } if id == "a")));
    assert!(!w.router.contains("a"));
    w.command(RouterCommand::StopBroadcast);
    w.command(RouterCommand::Leave { participant: "b".into() });
    assert!(w.router.is_idle(), "nobody left and no broadcast: the worker can drop the room");
}

#[test]
fn a_participant_whose_network_is_gone_is_removed_after_the_ice_timeout() {
    let mut w = World::a_publishing_to_b(false);
    // b's datagrams stop reaching the router (and the router's stop reaching b).
    let b = w.clients.remove(1);
    let gone_at = w.now;
    while !w.departed.iter().any(|(p, _)| p == "b") && w.now.duration_since(gone_at) < Duration::from_secs(60) {
        w.run(Duration::from_millis(500));
    }
    let departed = w.departed.iter().find(|(p, _)| p == "b").expect("b is removed within a minute");
    assert_eq!(departed.1, Departure::ConnectionLost);
    let took = w.now.duration_since(gone_at);
    // str0m's ICE notices the silence first (consent freshness), then the 4 s timeout runs.
    assert!(took >= Duration::from_secs(4), "removed after {took:?}");
    eprintln!("a silent participant was removed {took:?} after its network went");
    assert!(w.router.contains("a"), "the others stay");
    drop(b);
}

#[test]
fn an_ice_restart_of_the_subscribe_connection_brings_a_keyframe() {
    let mut w = World::a_publishing_to_b(false);
    let offers_before = w.clients[1].msgs.iter().filter(|m| matches!(m, ServerMsg::SubscribeOffer { .. })).count();
    w.command(RouterCommand::Signal { participant: "b".into(), msg: ClientMsg::IceRestart });
    w.run(Duration::from_secs(2));
    let b = &w.clients[1];
    let offers: Vec<&String> = b
        .msgs
        .iter()
        .filter_map(|m| match m {
            ServerMsg::SubscribeOffer { sdp, .. } => Some(sdp),
            _ => None,
        })
        .collect();
    assert_eq!(offers.len(), offers_before + 1, "one offer with fresh credentials");
    let ufrag = |sdp: &str| sdp.lines().find(|l| l.starts_with("a=ice-ufrag")).map(str::to_owned);
    assert_ne!(ufrag(offers[offers.len() - 2]), ufrag(offers[offers.len() - 1]), "the restart offer has a new ICE ufrag");
    let mid = w.video_mids_of("b")[0];
    assert!(w.received_by("b").iter().filter(|g| g.mid == mid).count() > 40, "media flows on");
}

#[test]
fn consumers_first_sequence_numbers_come_from_the_seed() {
    // Two routers with the same seed given the same inputs give consumers the same first
    // sequence numbers: randomness comes only from the seed.
    let first_seq = || {
        let mut w = World::new();
        w.join("a");
        w.publish("a", false);
        w.join("b");
        w.run(Duration::from_secs(1));
        let mid = w.video_mids_of("b")[0];
        w.received_by("b").iter().find(|g| g.mid == mid).map(|g| g.seq)
    };
    let (x, y) = (first_seq(), first_seq());
    assert!(x.is_some());
    assert_eq!(x.map(|s| s as u16), y.map(|s| s as u16));
}

#[test]
fn a_publisher_that_stops_sending_its_camera_removes_the_producer() {
    let mut w = World::a_publishing_to_b(true);
    assert_eq!(w.video_mids_of("b").len(), 1);
    // a renegotiates its camera m-line to inactive (a browser's removeTrack + new offer).
    let c = w.client("a");
    let side = c.publish.as_mut().unwrap();
    let mut api = side.rtc.sdp_api();
    api.set_direction(c.video_mid.unwrap(), Direction::Inactive);
    let (offer, pending) = api.apply().expect("an offer");
    side.pending = Some(pending);
    w.command(RouterCommand::Signal { participant: "a".into(), msg: ClientMsg::PublishOffer { sdp: offer.to_sdp_string() } });
    w.run(Duration::from_secs(1));
    let b = &w.clients[1];
    assert!(b.msgs.iter().any(|m| matches!(m, ServerMsg::ProducerRemoved { participant_id, .. } if participant_id == "a")));
    assert!(w.feed.iter().any(|e| matches!(e, LegEvent::TrackRemoved { .. })), "the broadcast drops the track");
    assert!(w.router.get("a").unwrap().producers.is_empty());
    let last_offer = b.msgs.iter().rev().find_map(|m| match m {
        ServerMsg::SubscribeOffer { sdp, .. } => Some(sdp.clone()),
        _ => None,
    });
    assert!(last_offer.unwrap().contains("a=inactive"), "b's m-line of it is made inactive (kept, so the m-line order stays)");
    assert!(w.router.contains("a") && w.router.contains("b"), "both stay in the room");
}

#[test]
fn under_a_bandwidth_limit_a_subscriber_gets_the_simulcast_layer_that_fits() {
    // The same room twice: without a limit, and with 600 kbit/s to the subscriber (the 720p
    // layer needs about 0.9 Mbit/s, 360p 0.4). The estimate (TWCC) finds the limit and the
    // router sends the layer that fits, switching at a keyframe.
    let layer_after = |limit: Option<u64>| {
        let mut w = World::new();
        w.join("pub");
        w.publish("pub", true);
        w.join("sub");
        w.run(Duration::from_millis(300));
        if let Some(bps) = limit {
            let to = w.client("sub").subscribe.addr;
            w.bottleneck = Some(Bottleneck {
                to,
                bytes_per_sec: bps / 8,
                max_queue: Duration::from_millis(300),
                busy_until: w.now,
                queue: Default::default(),
            });
        }
        w.run(Duration::from_secs(15));
        let mid = w.video_mids_of("sub")[0];
        let from = w.received_by("sub").len();
        w.run(Duration::from_secs(2));
        let layers: Vec<u16> = w.received_by("sub")[from..].iter().filter(|g| g.mid == mid).map(|g| g.layer).collect();
        let bwe = w.router.get("sub").and_then(|p| p.bwe_bps);
        (layers.last().copied(), bwe)
    };
    let (free, free_bwe) = layer_after(None);
    let (limited, limited_bwe) = layer_after(Some(600_000));
    eprintln!("no limit: layer {free:?}, estimate {free_bwe:?}; 600 kbit/s: layer {limited:?}, estimate {limited_bwe:?}");
    assert_eq!(free, Some(720), "without a limit the top layer");
    assert!(matches!(limited, Some(180) | Some(360)), "with 600 kbit/s a lower layer: {limited:?} (estimate {limited_bwe:?})");
}
