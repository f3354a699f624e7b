//! One str0m `Rtc` (a WebRtcTransport in mediasoup's words) and the discipline of driving it:
//! feed `Input::Timeout` as soon as its deadline passes or after we queued RTP on it,
//! then drain its output until it asks for the next timeout. Its datagrams become the
//! router's outputs; nothing here touches a socket.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::{Event, Input, Output, Rtc};

#[cfg(feature = "fault-injection")]
use super::netfault::{NetFault, Way};

pub struct Peer {
    pub rtc: Rtc,
    deadline: Instant,
    /// Input was handled or RTP queued since the last drive.
    dirty: bool,
    /// Fault injection (tests): datagrams to and from this peer are dropped, all or some.
    #[cfg(feature = "fault-injection")]
    pub fault: Option<NetFault>,
    /// When the first datagram (the browser's first ICE check) arrived: the log says how long
    /// ICE and DTLS took from there, the part of a join the browser's pacing decides.
    first_datagram_at: Option<Instant>,
}

impl Peer {
    pub fn new(rtc: Rtc, now: Instant) -> Self {
        Self {
            rtc,
            deadline: now,
            dirty: true,
            #[cfg(feature = "fault-injection")]
            fault: None,
            first_datagram_at: None,
        }
    }

    /// Whether an injected fault loses this datagram from the peer.
    #[cfg(feature = "fault-injection")]
    pub fn fault_drops_incoming(&mut self, now: Instant) -> bool {
        self.fault.as_mut().is_some_and(|f| f.drops(now, Way::FromParticipant))
    }

    #[cfg(not(feature = "fault-injection"))]
    pub fn fault_drops_incoming(&mut self, _now: Instant) -> bool {
        false
    }

    /// Whether an injected fault loses this datagram to the peer.
    #[cfg(feature = "fault-injection")]
    fn fault_drops_outgoing(&mut self, now: Instant) -> bool {
        self.fault.as_mut().is_some_and(|f| f.drops(now, Way::ToParticipant))
    }

    #[cfg(not(feature = "fault-injection"))]
    fn fault_drops_outgoing(&mut self, _now: Instant) -> bool {
        false
    }

    pub fn mark_dirty(&mut self) {
        self.dirty = true;
    }

    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    pub fn needs_drive(&self, now: Instant) -> bool {
        self.rtc.is_alive() && (self.dirty || self.deadline <= now)
    }

    /// Time since the first datagram from the participant, if one came.
    pub fn since_first_datagram(&self, now: Instant) -> Option<Duration> {
        self.first_datagram_at.map(|t| now.saturating_duration_since(t))
    }

    pub fn handle_datagram(&mut self, input: Input) {
        if let Input::Receive(at, _) = &input {
            self.first_datagram_at.get_or_insert(*at);
        }
        if let Err(e) = self.rtc.handle_input(input) {
            tracing::warn!(error = %e, "peer rejected input; disconnecting it");
            self.rtc.disconnect();
        }
        self.dirty = true;
    }

    /// Drives the Rtc: hands what it wants sent to `transmit`, collects its events.
    pub fn drive(&mut self, now: Instant, transmit: &mut impl FnMut(SocketAddr, Vec<u8>), events: &mut Vec<Event>) {
        self.dirty = false;
        if !self.rtc.is_alive() {
            return;
        }
        if let Err(e) = self.rtc.handle_input(Input::Timeout(now)) {
            tracing::warn!(error = %e, "peer failed on timeout; disconnecting it");
            self.rtc.disconnect();
            return;
        }
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Transmit(t)) => {
                    if !self.fault_drops_outgoing(now) {
                        transmit(t.destination, t.contents.into());
                    }
                }
                Ok(Output::Timeout(t)) => {
                    // Never spin: a deadline in the past is served on the next loop turn.
                    self.deadline = t.max(now + Duration::from_micros(100));
                    return;
                }
                Ok(Output::Event(e)) => events.push(e),
                Err(e) => {
                    tracing::warn!(error = %e, "peer failed while polling; disconnecting it");
                    self.rtc.disconnect();
                    return;
                }
            }
        }
    }
}
