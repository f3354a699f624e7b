//! The subscribe PeerConnection's consumers and their negotiation states.
//!
//! The server offers; at most one offer is in flight. Changes that arrive meanwhile wait for
//! the answer and go into the next offer. This is the plain bookkeeping; the worker applies it to str0m.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumerState<M> {
    /// Wanted, not yet in any offer.
    ToAdd,
    /// In the offer in flight (on m-line M).
    Offered(M),
    /// Negotiated; media flows on M.
    Active(M),
    /// Its producer went away; to be stopped in the next offer.
    ToStop(M),
    /// Stopped in the offer in flight.
    Stopping(M),
}

impl<M: Copy> ConsumerState<M> {
    pub fn mid(&self) -> Option<M> {
        match *self {
            ConsumerState::ToAdd => None,
            ConsumerState::Offered(m) | ConsumerState::Active(m) | ConsumerState::ToStop(m) | ConsumerState::Stopping(m) => Some(m),
        }
    }

    /// Needs a new offer to reach its goal.
    pub fn needs_offer(&self) -> bool {
        matches!(self, ConsumerState::ToAdd | ConsumerState::ToStop(_))
    }

    /// Listed in the next offer's `tracks` (it carries or is about to carry media).
    pub fn is_live(&self) -> bool {
        matches!(self, ConsumerState::Offered(_) | ConsumerState::Active(_))
    }

    /// The producer left. Returns false when the consumer can simply be forgotten.
    pub fn on_producer_gone(&mut self) -> bool {
        match *self {
            ConsumerState::ToAdd => false,
            ConsumerState::Offered(m) | ConsumerState::Active(m) => {
                *self = ConsumerState::ToStop(m);
                true
            }
            ConsumerState::ToStop(_) | ConsumerState::Stopping(_) => true,
        }
    }

    /// The answer to the offer in flight arrived. Returns false when the consumer is finished.
    pub fn on_answer(&mut self) -> bool {
        match *self {
            ConsumerState::Offered(m) => {
                *self = ConsumerState::Active(m);
                true
            }
            ConsumerState::Stopping(_) => false,
            _ => true,
        }
    }
}

/// Whether an offer is in flight on the subscribe connection.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct OfferSlot {
    in_flight: bool,
}

impl OfferSlot {
    /// May a new offer be made now (given that some consumer needs one)?
    pub fn can_offer(&self, any_needs_offer: bool) -> bool {
        any_needs_offer && !self.in_flight
    }
    pub fn offered(&mut self) {
        self.in_flight = true;
    }
    /// An answer arrived; false if there was no offer to answer (a protocol error by the client).
    pub fn answered(&mut self) -> bool {
        std::mem::replace(&mut self.in_flight, false)
    }
    pub fn in_flight(&self) -> bool {
        self.in_flight
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ConsumerState::*;

    #[test]
    fn add_offer_answer_stop() {
        let mut slot = OfferSlot::default();
        let mut c: ConsumerState<u8> = ToAdd;
        assert!(c.needs_offer() && slot.can_offer(true));
        c = Offered(3);
        slot.offered();
        assert!(!slot.can_offer(true), "one offer at a time");
        assert!(slot.answered());
        assert!(c.on_answer());
        assert_eq!(c, Active(3));
        assert!(c.on_producer_gone());
        assert_eq!(c, ToStop(3));
        c = Stopping(3);
        assert!(!c.on_answer(), "stopped consumers are dropped after the answer");
    }

    #[test]
    fn producer_gone_before_offer_is_forgotten_and_stray_answers_detected() {
        let mut c: ConsumerState<u8> = ToAdd;
        assert!(!c.on_producer_gone());
        let mut slot = OfferSlot::default();
        assert!(!slot.answered());
    }
}
