//! Neighbour requests and the repair of the active view (the active view
//! management of HyParView, Leitão et al., DSN 2007), with this crate's two
//! departures from the paper: requests are numbered and answered, and a
//! timer keeps repairing while the view is short.
//!
//! When a neighbour leaves or its link fails, the node asks passive peers,
//! with high priority while it is below [`super::Config::high_priority_below`]
//! (the request cannot be refused) and low priority otherwise. A reply is
//! matched to its request by number, and a yes that is no longer wanted is
//! answered with a `Disconnect`, so a link is never listed at one end only.

use std::collections::VecDeque;

use rand::seq::SliceRandom;
use rand::Rng;

use super::{HyParView, Message, OutEvent, PeerData, Priority, Timer};
use crate::NodeId;

impl HyParView {
    pub(super) fn on_neighbor<R: Rng>(
        &mut self,
        from: NodeId,
        priority: Priority,
        data: PeerData,
        request: u32,
        rng: &mut R,
        out: &mut VecDeque<OutEvent>,
    ) {
        self.learn_data(from, data, out);
        let accepted = self.active.contains(&from)
            || priority == Priority::High
            || self.active.len() < self.config.active_view_capacity;
        if accepted {
            // A request of ours to the same peer stays pending: its answer
            // is still on the way and must be read as an answer.
            self.add_active(from, false, rng, out);
        }
        out.push_back(OutEvent::SendMessage(
            from,
            Message::NeighborReply {
                accepted,
                data: self.my_data.clone(),
                request,
            },
        ));
    }

    pub(super) fn on_neighbor_reply<R: Rng>(
        &mut self,
        from: NodeId,
        accepted: bool,
        data: PeerData,
        request: u32,
        rng: &mut R,
        out: &mut VecDeque<OutEvent>,
    ) {
        let was_pending = self.pending.get(&from) == Some(&request);
        if was_pending {
            self.pending.remove(&from);
        }
        self.learn_data(from, data, out);
        let is_active = self.active.contains(&from);
        match (accepted, was_pending, is_active) {
            // The answer to our request: now neighbours.
            (true, true, false) => self.add_active(from, false, rng, out),
            // Already neighbours (a join crossed our request).
            (true, _, true) => {}
            // A yes to a request we gave up on, or to a notice that crossed
            // our disconnect: the peer lists us, we do not list it. Tell it,
            // so both views stay symmetric.
            (true, false, false) => self.send_disconnect(from, true, out),
            // Refused: ask someone else. (If a join made us neighbours
            // meanwhile, that link stands on its own.)
            (false, true, _) => {
                self.refused.insert(from);
                self.repair(rng, out);
            }
            // A stale refusal: nothing to undo.
            (false, false, _) => {}
        }
    }

    pub(super) fn on_disconnect<R: Rng>(
        &mut self,
        from: NodeId,
        alive: bool,
        rng: &mut R,
        out: &mut VecDeque<OutEvent>,
    ) {
        if self.active.contains(&from) {
            // Closed first: should the repair ask this peer again, the
            // request must go over a new link. Sent over the one we are
            // closing, its yes would reach us while the peer saw the link
            // close and dropped us again, and round it would go.
            out.push_back(OutEvent::DisconnectPeer(from));
            // Repairs the view, and voids a request of ours still out to it.
            self.remove_active(from, alive, false, rng, out);
        } else {
            // From a peer we do not list: it may have overtaken the
            // answer to a request of ours (in the simulator, whose
            // latencies reorder), so that request is void.
            self.pending.remove(&from);
            if !alive {
                self.remove_passive(&from);
            }
        }
        self.repair(rng, out);
    }

    pub(super) fn on_peer_disconnected<R: Rng>(
        &mut self,
        peer: NodeId,
        rng: &mut R,
        out: &mut VecDeque<OutEvent>,
    ) {
        self.pending.remove(&peer);
        if self.active.contains(&peer) {
            self.remove_active(peer, false, false, rng, out);
        } else {
            self.remove_passive(&peer);
        }
        self.repair(rng, out);
    }

    /// Sends neighbour requests to passive peers until, counting the requests
    /// already out, the active view would be full.
    pub(super) fn repair<R: Rng>(&mut self, rng: &mut R, out: &mut VecDeque<OutEvent>) {
        let want = self
            .config
            .active_view_capacity
            .saturating_sub(self.active.len() + self.pending.len());
        if want == 0 {
            return;
        }
        let candidates: Vec<NodeId> = self
            .passive
            .iter()
            .filter(|p| !self.pending.contains_key(p) && !self.refused.contains(p))
            .copied()
            .collect();
        let priority = if self.active.len() < self.config.high_priority_below {
            Priority::High
        } else {
            Priority::Low
        };
        for peer in candidates.choose_multiple(rng, want) {
            let request = self.new_request();
            self.pending.insert(*peer, request);
            out.push_back(OutEvent::SendMessage(
                *peer,
                Message::Neighbor {
                    priority,
                    data: self.my_data.clone(),
                    request,
                },
            ));
            out.push_back(OutEvent::ScheduleTimer(
                self.config.neighbor_request_timeout,
                Timer::NeighborRequest(*peer, request),
            ));
        }
    }

    /// Tells a peer we dropped it. Any request of ours still out to it is
    /// void from here on: the peer's answer was written before it read our
    /// disconnect, so a yes in it is stale (and gets another disconnect).
    pub(super) fn send_disconnect(
        &mut self,
        peer: NodeId,
        alive: bool,
        out: &mut VecDeque<OutEvent>,
    ) {
        self.pending.remove(&peer);
        out.push_back(OutEvent::SendMessage(peer, Message::Disconnect { alive }));
    }

    pub(super) fn new_request(&mut self) -> u32 {
        self.next_request = self.next_request.wrapping_add(1);
        self.next_request
    }
}
