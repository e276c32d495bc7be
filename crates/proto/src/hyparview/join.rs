//! Joining: a new node's `Join` to its contact, and the `ForwardJoin`
//! random walks by which the contact spreads the joiner through the overlay
//! (the join mechanism of HyParView, Leitão et al., DSN 2007).
//!
//! The contact takes the joiner in and starts one walk per neighbour. A walk
//! ends, after the active random walk length or where it cannot go on, with
//! the joiner taken into an active view; on the way, at the passive random
//! walk length, it also leaves the joiner in a passive view.

use std::collections::VecDeque;

use rand::Rng;

use super::{HyParView, Message, OutEvent, PeerData, PeerInfo};
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
        self.learn_data(from, data.clone(), out);
        self.add_active(from, true, rng, out);
        let info = PeerInfo { id: from, data };
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

    pub(super) fn on_forward_join<R: Rng>(
        &mut self,
        from: NodeId,
        peer: PeerInfo,
        ttl: u16,
        rng: &mut R,
        out: &mut VecDeque<OutEvent>,
    ) {
        if peer.id == self.me {
            return;
        }
        let next = self.random_active_except(&[from, peer.id], rng);
        if ttl == 0 || self.active.len() <= 1 || next.is_none() {
            self.learn_data(peer.id, peer.data, out);
            self.add_active(peer.id, true, rng, out);
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
}
