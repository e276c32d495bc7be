//! Joining: a new node's `Join` to its contact, and the `ForwardJoin`
//! random walks by which the contact spreads the joiner through the overlay
//! (the join mechanism of HyParView, Leitão et al., DSN 2007).
//!
//! The contact takes the joiner in and starts one walk per neighbour. A walk
//! ends, after the active random walk length or where it cannot go on, with
//! the joiner taken into an active view; on the way, at the passive random
//! walk length, it also leaves the joiner in a passive view.
//!
//! A walk is the one message by which a neighbour names a third node for
//! our active view, so its step is guarded: only an active peer may send
//! one, its ttl never exceeds the walk length, a neighbour may end only
//! [`FORWARD_JOIN_BURST`] walks here at once (one more per
//! [`FORWARD_JOIN_REFILL`]), and a joiner taken in must vouch for itself
//! with a signed record where records are carried.

use std::collections::VecDeque;
use std::time::Instant;

use rand::Rng;

use super::{
    Budget, HyParView, Message, OutEvent, PeerData, PeerInfo, FORWARD_JOIN_BURST,
    FORWARD_JOIN_REFILL,
};
use crate::record::SignedRecord;
use crate::NodeId;

impl HyParView {
    pub(super) fn handle_join(&mut self, contact: NodeId, out: &mut VecDeque<OutEvent>) {
        if contact == self.me {
            return;
        }
        out.push_back(OutEvent::SendMessage(
            contact,
            Message::Join(self.my_data.clone()),
        ));
    }

    pub(super) fn on_join<R: Rng>(
        &mut self,
        from: NodeId,
        data: PeerData,
        rng: &mut R,
        out: &mut VecDeque<OutEvent>,
    ) {
        let info = PeerInfo { id: from, data };
        if self.records && !self.vouched(&info) {
            // The joiner is the linked peer itself: a record that is not
            // its own, or does not verify, would make us hand on another
            // node's addresses under its id.
            out.push_back(OutEvent::Misbehaved(
                from,
                "join with a record that is not its own",
            ));
            return;
        }
        let data = info.data.clone();
        self.learn_data(from, data, out);
        self.add_active(from, true, rng, out);
        for peer in self.active.clone() {
            if peer != from {
                out.push_back(OutEvent::SendMessage(
                    peer,
                    Message::ForwardJoin {
                        peer: info.clone(),
                        ttl: self.config.active_random_walk_length,
                    },
                ));
            }
        }
    }

    /// A walk step. Only an active peer walks a join on to us, never
    /// further than the walk length; where the walk ends here, the joiner
    /// must carry a valid signed record (if this network carries records)
    /// and the neighbour must have budget left, or it cannot displace one
    /// of our neighbours.
    pub(super) fn on_forward_join<R: Rng>(
        &mut self,
        from: NodeId,
        peer: PeerInfo,
        ttl: u16,
        now: Instant,
        rng: &mut R,
        out: &mut VecDeque<OutEvent>,
    ) {
        if ttl > self.config.active_random_walk_length {
            // Every walk starts at the walk length and only shrinks: a
            // longer one was made up, and would cost each hop a forward.
            out.push_back(OutEvent::Misbehaved(
                from,
                "forward join ttl over the walk length",
            ));
            return;
        }
        if peer.id == self.me || !self.active.contains(&from) {
            // From a non-neighbour it is stale (it crossed a disconnect)
            // or made up; either way it must not touch the views.
            return;
        }
        let next = self.random_active_except(&[from, peer.id], rng);
        if ttl == 0 || self.active.len() <= 1 || next.is_none() {
            if self.records && !self.vouched(&peer) {
                return;
            }
            if self.active.contains(&peer.id) || self.take_forward_join_token(from, now) {
                self.learn_data(peer.id, peer.data, out);
                self.add_active(peer.id, true, rng, out);
            } else {
                // Past its budget a neighbour can still tell us of peers,
                // but no longer swap our neighbours for them.
                self.add_passive(peer.id, peer.data, rng, out);
            }
            return;
        }
        if ttl == self.config.passive_random_walk_length {
            self.add_passive(peer.id, peer.data.clone(), rng, out);
        }
        if let Some(next) = next {
            out.push_back(OutEvent::SendMessage(
                next,
                Message::ForwardJoin { peer, ttl: ttl - 1 },
            ));
        }
    }

    /// Whether the joiner's data is a valid signed record of its own id.
    fn vouched(&self, peer: &PeerInfo) -> bool {
        SignedRecord::decode(&peer.data).is_ok_and(|r| r.id() == peer.id && r.verify().is_ok())
    }

    /// Spends one of `from`'s ForwardJoin tokens, if it has one left.
    fn take_forward_join_token(&mut self, from: NodeId, now: Instant) -> bool {
        let budget = self.budgets.entry(from).or_insert(Budget {
            tokens: FORWARD_JOIN_BURST,
            since: now,
        });
        let elapsed = now.saturating_duration_since(budget.since);
        let earned = (elapsed.as_nanos() / FORWARD_JOIN_REFILL.as_nanos())
            .min(u128::from(FORWARD_JOIN_BURST)) as u32;
        if earned > 0 {
            budget.tokens = (budget.tokens + earned).min(FORWARD_JOIN_BURST);
            budget.since = now;
        }
        if budget.tokens == 0 {
            return false;
        }
        budget.tokens -= 1;
        true
    }
}
