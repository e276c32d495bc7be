//! Broadcast trees, one per origin.
//!
//! The paper keeps one eager/lazy split of a node's neighbours for every
//! message. But a duplicate proves only that a link is off the tree of that
//! message's *origin*: the fastest paths from two origins are different
//! trees. When messages of several origins cross a cycle before the first
//! `Prune` lands, each prunes a different edge of it, the eager graph falls
//! apart, grafts join it again, and the next crossing splits it anew: with
//! a shared split, a stream from many origins keeps a third of all full
//! copies duplicates (docs/SIMULATION.md). So each origin has a split of its
//! own, and `Prune` and `Graft` name the origin whose tree they change.
//!
//! A tree is one word: each neighbour holds a slot, and a tree is the mask
//! of the slots that are lazy for its origin, so a tree costs the same
//! whatever the number of neighbours, and a neighbour that comes or goes
//! changes one bit in each. A new neighbour is eager in every tree, as in
//! the paper; the duplicates it causes prune it where it is not needed.
//!
//! A new origin's tree starts as a copy of the tree of the smallest origin
//! id this node knows (the *seed* tree): every node has seen the same
//! origins, so they all copy the same origin's tree, and a new origin's
//! first message travels one spanning tree rather than a patchwork of
//! several. With no tree yet, every neighbour is eager: the first message
//! floods, as in the paper. (Following the seed until a duplicate or graft
//! proves it wrong for an origin, rather than copying it at once, measured
//! worse in the simulator: the followers' paths changed under them.)
//!
//! Trees are bounded ([`MAX_TREES`]): past it the least recently used goes,
//! never the seed. Only a message that reached us (a first copy, our own
//! broadcast, a graft of a cached message) makes a tree at the cost of
//! another; a `Prune` or origin-naming `Graft` for an origin we have no
//! tree for makes one only while there is room, so made-up origins cannot
//! push out real ones.
//!
//! The tree of a message is named by the first 32 bytes of its content
//! ([`tree_of`]): an encoded envelope begins with its origin's id.

use std::collections::{BTreeMap, BTreeSet};

use crate::NodeId;

/// Most neighbours the trees tell apart: one bit each in a tree's mask. An
/// active view holds a handful; the node refuses a larger configured one,
/// and a neighbour beyond this (never in practice) is eager in every tree.
pub const MAX_TREE_NEIGHBORS: usize = u64::BITS as usize;

/// Most origins with a tree of their own: above the number of members who
/// broadcast in a network of a few thousand, at about 60 bytes a tree.
pub const MAX_TREES: usize = 2048;

/// The tree a message travels: its content's first 32 bytes, which in an
/// encoded envelope are the origin's id (zero-padded if shorter).
pub fn tree_of(content: &[u8]) -> NodeId {
    let mut b = [0u8; 32];
    let n = content.len().min(b.len());
    b[..n].copy_from_slice(&content[..n]);
    NodeId::from_bytes(b)
}

#[derive(Debug, Clone, Copy)]
struct Tree {
    /// Slots lazy in this tree.
    lazy: u64,
    /// When it was last used, by a counter of uses.
    used: u64,
}

/// The neighbours and every origin's split of them. See the module docs.
#[derive(Debug, Default)]
pub(super) struct Trees {
    /// Which neighbour holds each slot.
    slots: Vec<Option<NodeId>>,
    slot_of: BTreeMap<NodeId, u8>,
    /// Neighbours beyond the slots: eager in every tree.
    unslotted: BTreeSet<NodeId>,
    trees: BTreeMap<NodeId, Tree>,
    uses: u64,
}

impl Trees {
    pub(super) fn add_neighbor(&mut self, peer: NodeId) {
        if self.is_neighbor(&peer) {
            return;
        }
        let free = self.slots.iter().position(Option::is_none);
        let slot = match free {
            Some(s) => s,
            None if self.slots.len() < MAX_TREE_NEIGHBORS => {
                self.slots.push(None);
                self.slots.len() - 1
            }
            None => {
                self.unslotted.insert(peer);
                return;
            }
        };
        self.slots[slot] = Some(peer);
        self.slot_of.insert(peer, slot as u8);
    }

    pub(super) fn remove_neighbor(&mut self, peer: &NodeId) {
        self.unslotted.remove(peer);
        let Some(slot) = self.slot_of.remove(peer) else {
            return;
        };
        self.slots[usize::from(slot)] = None;
        // The next neighbour in this slot starts eager everywhere.
        let bit = !(1u64 << slot);
        for tree in self.trees.values_mut() {
            tree.lazy &= bit;
        }
    }

    pub(super) fn is_neighbor(&self, peer: &NodeId) -> bool {
        self.slot_of.contains_key(peer) || self.unslotted.contains(peer)
    }

    pub(super) fn has_tree(&self, origin: &NodeId) -> bool {
        self.trees.contains_key(origin)
    }

    /// Whether a tree can be made without dropping one.
    pub(super) fn has_room(&self) -> bool {
        self.trees.len() < MAX_TREES
    }

    /// Origins with a tree.
    pub(super) fn len(&self) -> usize {
        self.trees.len()
    }

    /// Whether a neighbour is lazy in `origin`'s tree (or in the one it
    /// would start as).
    pub(super) fn is_lazy(&self, origin: &NodeId, peer: &NodeId) -> bool {
        let Some(slot) = self.slot_of.get(peer) else {
            return false;
        };
        self.mask_of(origin) & (1 << slot) != 0
    }

    /// Makes a neighbour lazy or eager in `origin`'s tree, which is made if
    /// need be.
    pub(super) fn set_lazy(&mut self, origin: NodeId, peer: &NodeId, lazy: bool) {
        let Some(slot) = self.slot_of.get(peer).copied() else {
            return;
        };
        let tree = self.tree_mut(origin);
        if lazy {
            tree.lazy |= 1 << slot;
        } else {
            tree.lazy &= !(1 << slot);
        }
    }

    /// The eager and the lazy neighbours of `origin`'s tree, but `except`;
    /// the tree is made if need be and counts as used.
    pub(super) fn split(
        &mut self,
        origin: NodeId,
        except: Option<NodeId>,
    ) -> (Vec<NodeId>, Vec<NodeId>) {
        self.uses += 1;
        let uses = self.uses;
        self.tree_mut(origin).used = uses;
        self.split_by(self.mask_of(&origin), except)
    }

    /// The seed tree's split: the one a new origin's messages travel.
    pub(super) fn default_split(&self) -> (Vec<NodeId>, Vec<NodeId>) {
        self.split_by(self.seed_mask(), None)
    }

    /// `origin`'s split (or the one it would start as), unchanged.
    pub(super) fn split_of(&self, origin: &NodeId) -> (Vec<NodeId>, Vec<NodeId>) {
        self.split_by(self.mask_of(origin), None)
    }

    fn split_by(&self, mask: u64, except: Option<NodeId>) -> (Vec<NodeId>, Vec<NodeId>) {
        let mut eager = Vec::new();
        let mut lazy = Vec::new();
        for (peer, slot) in &self.slot_of {
            if Some(*peer) == except {
                continue;
            }
            if mask & (1 << slot) != 0 {
                lazy.push(*peer);
            } else {
                eager.push(*peer);
            }
        }
        eager.extend(self.unslotted.iter().filter(|p| Some(**p) != except));
        (eager, lazy)
    }

    /// The mask new trees copy: the smallest origin's.
    fn seed_mask(&self) -> u64 {
        self.trees.first_key_value().map_or(0, |(_, t)| t.lazy)
    }

    fn mask_of(&self, origin: &NodeId) -> u64 {
        self.trees
            .get(origin)
            .map_or_else(|| self.seed_mask(), |t| t.lazy)
    }

    fn tree_mut(&mut self, origin: NodeId) -> &mut Tree {
        if !self.trees.contains_key(&origin) {
            if self.trees.len() >= MAX_TREES {
                self.evict_one();
            }
            let lazy = self.seed_mask();
            self.trees.insert(origin, Tree { lazy, used: 0 });
        }
        self.trees
            .get_mut(&origin)
            .expect("the tree was made just above")
    }

    /// Drops the least recently used tree but the one new trees copy.
    fn evict_one(&mut self) {
        let seed = self.trees.keys().next().copied();
        let oldest = self
            .trees
            .iter()
            .filter(|(k, _)| Some(**k) != seed)
            .min_by_key(|(_, t)| t.used)
            .map(|(k, _)| *k);
        if let Some(k) = oldest {
            self.trees.remove(&k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(i: u8) -> NodeId {
        NodeId::from_bytes([i; 32])
    }

    #[test]
    fn a_prune_in_one_tree_leaves_the_others_eager() {
        let mut t = Trees::default();
        t.add_neighbor(id(1));
        t.add_neighbor(id(2));
        t.split(id(10), None);
        t.split(id(20), None);
        t.set_lazy(id(20), &id(1), true);
        assert_eq!(t.split(id(10), None), (vec![id(1), id(2)], vec![]));
        assert_eq!(t.split(id(20), None), (vec![id(2)], vec![id(1)]));
    }

    #[test]
    fn a_new_origin_starts_from_the_smallest_origins_tree() {
        let mut t = Trees::default();
        t.add_neighbor(id(1));
        t.add_neighbor(id(2));
        t.split(id(10), None);
        t.set_lazy(id(10), &id(2), true);
        t.split(id(30), None);
        t.set_lazy(id(30), &id(1), true);
        // 10 is the smallest: 40 copies it, not 30, the latest.
        assert_eq!(t.split(id(40), None), (vec![id(1)], vec![id(2)]));
        assert_eq!(t.default_split(), (vec![id(1)], vec![id(2)]));
    }

    #[test]
    fn a_neighbour_that_comes_back_is_eager_in_every_tree() {
        let mut t = Trees::default();
        t.add_neighbor(id(1));
        t.split(id(10), None);
        t.set_lazy(id(10), &id(1), true);
        t.remove_neighbor(&id(1));
        t.add_neighbor(id(3));
        assert_eq!(t.split(id(10), None), (vec![id(3)], vec![]));
    }

    #[test]
    fn the_table_keeps_to_its_bound_and_keeps_the_tree_new_ones_copy() {
        let mut t = Trees::default();
        t.add_neighbor(id(1));
        let origin = |i: usize| {
            let mut b = [0xffu8; 32];
            b[..8].copy_from_slice(&(i as u64).to_be_bytes());
            NodeId::from_bytes(b)
        };
        t.split(id(0), None);
        t.set_lazy(id(0), &id(1), true);
        for i in 0..MAX_TREES + 10 {
            t.split(origin(i), None);
        }
        assert_eq!(t.len(), MAX_TREES);
        assert!(t.has_tree(&id(0)));
        assert!(t.is_lazy(&origin(MAX_TREES + 9), &id(1)));
        // The least recently used went first.
        assert!(!t.has_tree(&origin(0)));
    }

    #[test]
    fn neighbours_past_the_slots_are_eager_everywhere() {
        let mut t = Trees::default();
        let many = |i: usize| {
            let mut b = [0u8; 32];
            b[..8].copy_from_slice(&(i as u64).to_le_bytes());
            NodeId::from_bytes(b)
        };
        for i in 0..=MAX_TREE_NEIGHBORS {
            t.add_neighbor(many(i));
        }
        let extra = many(MAX_TREE_NEIGHBORS);
        t.set_lazy(id(9), &extra, true);
        assert!(t.is_neighbor(&extra));
        assert!(t.split(id(9), None).0.contains(&extra));
        t.remove_neighbor(&extra);
        assert!(!t.is_neighbor(&extra));
    }
}
