//! The bookkeeping of the two views of HyParView (Leitão et al., DSN 2007):
//! moving a peer into and out of the active view, keeping the passive view
//! within its capacity, and the data each listed peer published.
//!
//! Handlers change the views through these (only quitting empties the
//! active view at once), so the rules hold everywhere: we never list
//! ourselves, a peer is in at most one view, a full active view evicts a
//! random neighbour (told with a `Disconnect`), and a full passive view
//! evicts what was last sent away in a shuffle first. A peer's data only
//! moves forward: a signed record replaces the one held only if it is
//! newer and verifies.

use std::collections::VecDeque;

use rand::seq::SliceRandom;
use rand::Rng;

use super::{Event, HyParView, Message, OutEvent, PeerData, Priority};
use crate::record::SignedRecord;
use crate::NodeId;

impl HyParView {
    /// Puts `peer` into the active view, evicting a random neighbour if full.
    /// With `notify`, the peer is told with a high-priority neighbour message
    /// (it was taken in by a join and must take us in too).
    pub(super) fn add_active<R: Rng>(
        &mut self,
        peer: NodeId,
        notify: bool,
        rng: &mut R,
        out: &mut VecDeque<OutEvent>,
    ) {
        if peer == self.me {
            return;
        }
        if self.active.contains(&peer) {
            // A join from a neighbour: it has lost us (a simultaneous dial
            // whose losing connection closed at its end before the winner
            // came up there), while we kept it. Tell it again that we are
            // neighbours, or the link stays one-sided until liveness notices.
            if notify {
                self.notify_neighbor(peer, out);
            }
            return;
        }
        if self.active.len() >= self.config.active_view_capacity {
            if let Some(victim) = self.active.choose(rng).copied() {
                self.send_disconnect(victim, true, out);
                out.push_back(OutEvent::DisconnectPeer(victim));
                self.remove_active(victim, true, true, rng, out);
            }
        }
        self.remove_passive_keep_data(&peer);
        self.active.push(peer);
        out.push_back(OutEvent::EmitEvent(Event::NeighborUp(peer)));
        if notify {
            self.notify_neighbor(peer, out);
        }
    }

    /// Tells `peer` it is in our active view, so it puts us in its own.
    fn notify_neighbor(&mut self, peer: NodeId, out: &mut VecDeque<OutEvent>) {
        out.push_back(OutEvent::SendMessage(
            peer,
            Message::Neighbor {
                priority: Priority::High,
                data: self.my_data.clone(),
                request: self.new_request(),
            },
        ));
    }

    /// Takes `peer` out of the active view; an `alive` peer moves to the
    /// passive view. `evicting` suppresses repair (the caller is filling the
    /// slot right away).
    pub(super) fn remove_active<R: Rng>(
        &mut self,
        peer: NodeId,
        alive: bool,
        evicting: bool,
        rng: &mut R,
        out: &mut VecDeque<OutEvent>,
    ) {
        let Some(pos) = self.active.iter().position(|p| *p == peer) else {
            return;
        };
        self.active.remove(pos);
        // A request of ours still out to this peer is void: its yes would
        // cross our disconnect and leave the link listed at one end only.
        self.pending.remove(&peer);
        out.push_back(OutEvent::EmitEvent(Event::NeighborDown(peer)));
        if alive {
            let data = self.data.get(&peer).cloned().unwrap_or_default();
            self.add_passive(peer, data, rng, out);
        } else {
            self.data.remove(&peer);
        }
        if !evicting {
            self.repair(rng, out);
        }
    }

    pub(super) fn add_passive<R: Rng>(
        &mut self,
        peer: NodeId,
        data: PeerData,
        rng: &mut R,
        out: &mut VecDeque<OutEvent>,
    ) {
        if peer == self.me || self.active.contains(&peer) {
            return;
        }
        self.learn_data(peer, data, out);
        if self.passive.contains(&peer) {
            return;
        }
        if self.passive.len() >= self.config.passive_view_capacity {
            // Prefer evicting what we just sent away in a shuffle: the peer
            // that received it keeps it alive in the network.
            let victim = self
                .last_shuffled
                .iter()
                .position(|p| self.passive.contains(p) && !self.pending.contains_key(p))
                .map(|i| self.last_shuffled.swap_remove(i))
                .or_else(|| {
                    let candidates: Vec<NodeId> = self
                        .passive
                        .iter()
                        .filter(|p| !self.pending.contains_key(p))
                        .copied()
                        .collect();
                    candidates.choose(rng).copied()
                });
            match victim {
                Some(victim) => self.remove_passive(&victim),
                None => return,
            }
        }
        self.passive.push(peer);
    }

    pub(super) fn remove_passive(&mut self, peer: &NodeId) {
        if let Some(pos) = self.passive.iter().position(|p| p == peer) {
            self.passive.remove(pos);
            if !self.active.contains(peer) {
                self.data.remove(peer);
            }
        }
    }

    pub(super) fn remove_passive_keep_data(&mut self, peer: &NodeId) {
        if let Some(pos) = self.passive.iter().position(|p| p == peer) {
            self.passive.remove(pos);
        }
    }

    pub(super) fn learn_data(
        &mut self,
        peer: NodeId,
        data: PeerData,
        out: &mut VecDeque<OutEvent>,
    ) {
        if peer == self.me || data.is_empty() || self.data.get(&peer) == Some(&data) {
            return;
        }
        if !self.acceptable_data(peer, &data) {
            return;
        }
        self.data.insert(peer, data.clone());
        out.push_back(OutEvent::PeerData(peer, data));
    }

    /// Whether `data` may replace what we hold for `peer`. A signed record
    /// must be the peer's own and verify (a relay may drop a record, never
    /// alter one), and must be newer than the record held: anyone can
    /// relay an old record, and taking it would roll the peer's addresses
    /// back. Where records are carried, data that is no record is refused.
    fn acceptable_data(&self, peer: NodeId, data: &PeerData) -> bool {
        let Ok(new) = SignedRecord::decode(data) else {
            return !self.records;
        };
        if new.id() != peer {
            return false;
        }
        let held = self
            .data
            .get(&peer)
            .and_then(|d| SignedRecord::decode(d).ok());
        if held.is_some_and(|held| held.record().seq >= new.record().seq) {
            return false;
        }
        new.verify().is_ok()
    }

    pub(super) fn random_active_except<R: Rng>(
        &self,
        except: &[NodeId],
        rng: &mut R,
    ) -> Option<NodeId> {
        let candidates: Vec<NodeId> = self
            .active
            .iter()
            .filter(|p| !except.contains(p))
            .copied()
            .collect();
        candidates.choose(rng).copied()
    }
}
