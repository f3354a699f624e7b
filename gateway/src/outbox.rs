//! A signaling session's outgoing queue of server messages: bounded, so a client that stops
//! reading cannot make the server hold its messages without limit. The SFU worker is a plain
//! thread and never blocks on it: a full queue marks the session overflowed, and the session
//! closes its socket with a code that tells the client to reconnect.

use std::sync::Arc;

use tokio::sync::{mpsc, Notify};

use crate::protocol::ServerMsg;

/// Messages a session may have waiting for its socket. A room's busiest moments (a join into
/// a full room: a welcome, a subscribe offer, candidates and one notice per producer) stay far
/// below it; only a client that has stopped reading reaches it.
pub const CAPACITY: usize = 512;

/// The sending side, cloned into the SFU worker and the session.
#[derive(Clone, Debug)]
pub struct Outbox {
    tx: mpsc::Sender<ServerMsg>,
    overflowed: Arc<Notify>,
}

/// The session's side: the messages, and the signal that some were refused.
#[derive(Debug)]
pub struct Inbox {
    rx: mpsc::Receiver<ServerMsg>,
    overflowed: Arc<Notify>,
}

/// Raised when an [`Outbox`] refused a message because its queue was full.
#[derive(Clone, Debug)]
pub struct OverflowSignal(Arc<Notify>);

impl OverflowSignal {
    /// Resolves once a message has been refused (at once if one was before this call).
    pub async fn raised(&self) {
        self.0.notified().await
    }
}

/// What became of a queued message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Queued {
    Yes,
    /// The queue is full: the session has been told to close.
    Overflowed,
    /// The session has ended.
    Closed,
}

pub fn outbox(capacity: usize) -> (Outbox, Inbox) {
    let (tx, rx) = mpsc::channel(capacity);
    let overflowed = Arc::new(Notify::new());
    (Outbox { tx, overflowed: overflowed.clone() }, Inbox { rx, overflowed })
}

impl Outbox {
    /// Queues a message without waiting.
    pub fn send(&self, msg: ServerMsg) -> Queued {
        match self.tx.try_send(msg) {
            Ok(()) => Queued::Yes,
            Err(mpsc::error::TrySendError::Full(_)) => {
                // Stores a permit if the session is busy elsewhere: it sees it on its next turn.
                self.overflowed.notify_one();
                Queued::Overflowed
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Queued::Closed,
        }
    }
}

impl Inbox {
    /// The next message; `None` once every sender is gone.
    pub async fn recv(&mut self) -> Option<ServerMsg> {
        self.rx.recv().await
    }

    /// The signal that a message was refused because the queue was full (held apart from
    /// the inbox, so a session can wait on both at once).
    pub fn overflow_signal(&self) -> OverflowSignal {
        OverflowSignal(self.overflowed.clone())
    }

    /// Messages waiting now.
    pub fn len(&self) -> usize {
        self.rx.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn msg(i: usize) -> ServerMsg {
        ServerMsg::Reconnect { reason: format!("m{i}") }
    }

    #[tokio::test]
    async fn a_full_queue_refuses_and_signals_the_session_once_it_looks() {
        let (out, mut inbox) = outbox(3);
        for i in 0..3 {
            assert_eq!(out.send(msg(i)), Queued::Yes);
        }
        assert_eq!(out.send(msg(3)), Queued::Overflowed, "the fourth message does not fit");
        assert_eq!(inbox.len(), 3, "nothing beyond the capacity is held");
        // The signal waits for the session, even though nobody listened when it was raised.
        tokio::time::timeout(Duration::from_secs(1), inbox.overflow_signal().raised()).await.expect("the session hears of the overflow");
        // What was queued is still delivered in order.
        for i in 0..3 {
            assert!(matches!(inbox.recv().await, Some(ServerMsg::Reconnect { reason }) if reason == format!("m{i}")));
        }
    }

    #[tokio::test]
    async fn a_queue_with_room_raises_no_signal() {
        let (out, inbox) = outbox(3);
        assert_eq!(out.send(msg(0)), Queued::Yes);
        assert!(tokio::time::timeout(Duration::from_millis(50), inbox.overflow_signal().raised()).await.is_err());
    }

    #[tokio::test]
    async fn an_ended_session_reports_closed() {
        let (out, inbox) = outbox(3);
        drop(inbox);
        assert_eq!(out.send(msg(0)), Queued::Closed);
    }
}
