//! The shuffle, HyParView's peer exchange and the heart of its passive view
//! management (Leitão et al., DSN 2007): a sample of both views walks to a
//! distant node, which answers with a sample of its passive view, and both
//! keep what they were sent.
//!
//! This is what keeps passive views fresh and spread over the whole network,
//! so that repair after a failure finds peers that are still alive. Every
//! sample read from the wire is cut to [`MAX_SHUFFLE_PEERS`]; a shuffle is
//! taken only from an active peer, and one whose ttl exceeds the walk
//! length is misbehaviour.

use std::collections::VecDeque;

use rand::seq::SliceRandom;
use rand::Rng;

use super::{HyParView, Message, OutEvent, PeerInfo, MAX_SHUFFLE_PEERS};
use crate::NodeId;

impl HyParView {
    pub(super) fn on_shuffle<R: Rng>(
        &mut self,
        from: NodeId,
        origin: PeerInfo,
        nodes: Vec<PeerInfo>,
        ttl: u16,
        rng: &mut R,
        out: &mut VecDeque<OutEvent>,
    ) {
        if ttl > self.config.shuffle_random_walk_length {
            // A walk starts at the walk length and only shrinks; a longer
            // one was made up to make every hop forward it.
            out.push_back(OutEvent::Misbehaved(
                from,
                "shuffle ttl over the walk length",
            ));
            return;
        }
        if origin.id == self.me || !self.active.contains(&from) {
            // Shuffles walk over active links only: from anyone else it is
            // stale or made up.
            return;
        }
        if ttl > 0 && self.active.len() > 1 {
            if let Some(next) = self.random_active_except(&[from, origin.id], rng) {
                out.push_back(OutEvent::SendMessage(
                    next,
                    Message::Shuffle {
                        origin,
                        nodes,
                        ttl: ttl - 1,
                    },
                ));
                return;
            }
        }
        // Accept: answer with as many of our passive peers as we were sent,
        // then keep what we were sent.
        let mut reply: Vec<NodeId> = self.passive.clone();
        reply.shuffle(rng);
        reply.truncate(nodes.len().min(MAX_SHUFFLE_PEERS));
        let reply = reply
            .into_iter()
            .map(|id| PeerInfo {
                id,
                data: self.data.get(&id).cloned().unwrap_or_default(),
            })
            .collect();
        out.push_back(OutEvent::SendMessage(
            origin.id,
            Message::ShuffleReply { nodes: reply },
        ));
        self.add_passive(origin.id, origin.data, rng, out);
        for node in nodes.into_iter().take(MAX_SHUFFLE_PEERS) {
            self.add_passive(node.id, node.data, rng, out);
        }
    }

    pub(super) fn on_shuffle_reply<R: Rng>(
        &mut self,
        nodes: Vec<PeerInfo>,
        rng: &mut R,
        out: &mut VecDeque<OutEvent>,
    ) {
        for node in nodes.into_iter().take(MAX_SHUFFLE_PEERS) {
            self.add_passive(node.id, node.data, rng, out);
        }
        self.last_shuffled.clear();
    }

    pub(super) fn shuffle<R: Rng>(&mut self, rng: &mut R, out: &mut VecDeque<OutEvent>) {
        let Some(target) = self.active.choose(rng).copied() else {
            return;
        };
        let mut sample: Vec<NodeId> = self
            .active
            .iter()
            .filter(|p| **p != target)
            .copied()
            .collect::<Vec<_>>()
            .choose_multiple(rng, self.config.shuffle_active_view_count)
            .copied()
            .collect();
        sample.extend(
            self.passive
                .choose_multiple(rng, self.config.shuffle_passive_view_count)
                .copied(),
        );
        sample.truncate(MAX_SHUFFLE_PEERS);
        self.last_shuffled = sample.clone();
        let nodes = sample
            .into_iter()
            .map(|id| PeerInfo {
                id,
                data: self.data.get(&id).cloned().unwrap_or_default(),
            })
            .collect();
        out.push_back(OutEvent::SendMessage(
            target,
            Message::Shuffle {
                origin: PeerInfo {
                    id: self.me,
                    data: self.my_data.clone(),
                },
                nodes,
                ttl: self.config.shuffle_random_walk_length,
            },
        ));
    }
}
