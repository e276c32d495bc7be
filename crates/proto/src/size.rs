//! A gossip-based estimate of the network size, from HyperLogLog sketches.
//!
//! Every node adds itself to a HyperLogLog sketch (Flajolet, Fusy, Gandouet
//! and Meunier, "HyperLogLog: the analysis of a near-optimal cardinality
//! estimation algorithm", AofA 2007) and neighbours merge sketches by taking
//! the register-wise maximum. Merging is idempotent and order-free, so the
//! sketch can flood the overlay along any paths, with duplicates, and every
//! node ends with the same sketch: that of the whole network. With 1024
//! registers the standard error is 1.04/sqrt(1024), about 3.3%, and a sketch
//! is 1 KiB on the wire.
//!
//! A sketch only grows, so it would keep counting nodes that left. Estimates
//! therefore run in epochs: every `epoch_ticks` ticks a node starts a fresh
//! sketch holding only itself, hashed with the epoch number (so each epoch
//! draws new registers and errors do not repeat). A node that hears of a
//! later epoch joins it at once, so epochs spread like any other gossip. The
//! estimate reported is that of the last complete epoch, or of the current
//! one once it is three quarters through (by then it has crossed the overlay
//! and back).
//!
//! Traffic: each tick a node sends its sketch to every neighbour if it grew
//! since the last tick, and otherwise to one random neighbour, which repairs
//! anything a lost message or a new link left behind.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use rand::seq::SliceRandom;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::NodeId;

/// Registers in a sketch (a power of two): 1 KiB on the wire for a 3.3%
/// standard error.
pub const REGISTERS: usize = 1024;
const INDEX_BITS: u32 = REGISTERS.trailing_zeros();
/// The highest rank a register can hold: the hash bits left after the
/// index, plus one. A sketch with a higher one is a lie.
const MAX_RANK: u8 = (64 - INDEX_BITS + 1) as u8;
/// Epochs past this are refused: at one epoch per `epoch_ticks` ticks of a
/// second, an honest network takes millions of years to get there, and a
/// liar's `u64::MAX` would otherwise overflow the next epoch.
const MAX_EPOCH: u64 = 1 << 40;
/// How far ahead of its own epoch an established node follows a sketch.
/// Honest neighbours are at most one epoch apart (one has ticked over, the
/// other not yet); a network joining a much later one catches up this many
/// epochs per sketch, and one liar cannot fling everyone far ahead.
const MAX_EPOCH_LEAD: u64 = 2;

/// Tunables of the size estimate.
#[derive(Debug, Clone)]
pub struct Config {
    /// Period of the sketch exchange. Sketches cross one hop per tick, so an
    /// epoch converges in about (overlay diameter) ticks.
    pub tick: Duration,
    /// Ticks per epoch. The epoch needs one overlay diameter to reach every
    /// node and another for their registers to come back; 40 ticks leave room
    /// for a diameter of 15 (HyParView's at a million nodes is about 10).
    pub epoch_ticks: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            tick: Duration::from_secs(2),
            epoch_ticks: 40,
        }
    }
}

/// The sketch exchanged between neighbours.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// The epoch this sketch belongs to.
    pub epoch: u64,
    /// `REGISTERS` bytes, each the highest rank seen for that register.
    pub registers: Bytes,
}

/// The size-estimate state of one node.
#[derive(Debug)]
pub struct SizeEstimator {
    me: NodeId,
    config: Config,
    epoch: u64,
    ticks: u32,
    registers: Vec<u8>,
    grew: bool,
    previous: Option<f64>,
    /// Whether a sketch from another node was ever merged. Until then the
    /// node follows any epoch (it may join a network far into its life).
    merged: bool,
}

impl SizeEstimator {
    /// A sketch holding only this node, in epoch 0.
    pub fn new(me: NodeId, config: Config) -> Self {
        let mut this = Self {
            me,
            config,
            epoch: 0,
            ticks: 0,
            registers: vec![0; REGISTERS],
            grew: true,
            previous: None,
            merged: false,
        };
        this.reset(0);
        this
    }

    /// The current epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The estimated number of nodes in the network, this one included.
    pub fn estimate(&self) -> f64 {
        let current = estimate(&self.registers);
        match self.previous {
            Some(previous) if self.ticks < self.config.epoch_ticks * 3 / 4 => previous,
            _ => current,
        }
    }

    /// The sketch period.
    pub fn tick_interval(&self) -> Duration {
        self.config.tick
    }

    /// Called every tick; returns the neighbours to send the sketch to.
    pub fn on_tick<R: Rng>(
        &mut self,
        neighbors: &[NodeId],
        rng: &mut R,
        out: &mut VecDeque<(NodeId, Message)>,
    ) {
        self.ticks += 1;
        if self.ticks >= self.config.epoch_ticks {
            self.previous = Some(estimate(&self.registers));
            self.reset((self.epoch + 1).min(MAX_EPOCH));
        }
        let message = self.message();
        if self.grew {
            self.grew = false;
            for peer in neighbors {
                out.push_back((*peer, message.clone()));
            }
        } else if let Some(peer) = neighbors.choose(rng) {
            out.push_back((*peer, message));
        }
    }

    /// Merges a neighbour's sketch. A malformed or impossible one is
    /// ignored (a register past the highest rank a hash can give, an epoch
    /// past 2^40), and so is one from the past; a node that has merged a
    /// sketch before follows one at most two epochs ahead.
    pub fn on_message(&mut self, message: Message) {
        if message.registers.len() != REGISTERS
            || message.epoch < self.epoch
            || message.epoch > MAX_EPOCH
            || message.registers.iter().any(|r| *r > MAX_RANK)
        {
            return;
        }
        if self.merged && message.epoch - self.epoch > MAX_EPOCH_LEAD {
            return;
        }
        self.merged = true;
        if message.epoch > self.epoch {
            self.previous = Some(estimate(&self.registers));
            self.reset(message.epoch);
        }
        for (mine, theirs) in self.registers.iter_mut().zip(message.registers.iter()) {
            if *theirs > *mine {
                *mine = *theirs;
                self.grew = true;
            }
        }
    }

    fn message(&self) -> Message {
        Message {
            epoch: self.epoch,
            registers: Bytes::copy_from_slice(&self.registers),
        }
    }

    fn reset(&mut self, epoch: u64) {
        self.epoch = epoch;
        self.ticks = 0;
        self.registers.iter_mut().for_each(|r| *r = 0);
        let (index, rank) = register_of(&self.me, epoch);
        self.registers[index] = rank;
        self.grew = true;
    }
}

/// The register and rank of a node in an epoch.
fn register_of(id: &NodeId, epoch: u64) -> (usize, u8) {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"gossipnet-size-v1");
    hasher.update(&epoch.to_le_bytes());
    hasher.update(id.as_bytes());
    let hash = hasher.finalize();
    let mut word = [0u8; 8];
    word.copy_from_slice(&hash.as_bytes()[..8]);
    let x = u64::from_le_bytes(word);
    let index = (x >> (64 - INDEX_BITS)) as usize;
    let rest = x << INDEX_BITS;
    let rank = (rest.leading_zeros().min(64 - INDEX_BITS) + 1) as u8;
    (index, rank)
}

/// The HyperLogLog estimate of a sketch, with the small-range correction
/// (linear counting) that makes it exact-ish for a handful of nodes.
pub fn estimate(registers: &[u8]) -> f64 {
    let m = registers.len() as f64;
    if registers.is_empty() {
        return 0.0;
    }
    let alpha = 0.7213 / (1.0 + 1.079 / m);
    let sum: f64 = registers.iter().map(|r| (-f64::from(*r)).exp2()).sum();
    let raw = alpha * m * m / sum;
    let zeros = registers.iter().filter(|r| **r == 0).count();
    if raw <= 2.5 * m && zeros > 0 {
        m * (m / zeros as f64).ln()
    } else {
        raw
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn id(i: u32) -> NodeId {
        let mut b = [0u8; 32];
        b[..4].copy_from_slice(&i.to_le_bytes());
        NodeId::from_bytes(b)
    }

    fn sketch_of(n: u32, epoch: u64) -> Vec<u8> {
        let mut regs = vec![0u8; REGISTERS];
        for i in 0..n {
            let (j, r) = register_of(&id(i), epoch);
            regs[j] = regs[j].max(r);
        }
        regs
    }

    fn sketch_message(n: u32, epoch: u64) -> Message {
        Message {
            epoch,
            registers: Bytes::from(sketch_of(n, epoch)),
        }
    }

    #[test]
    fn a_liars_last_epoch_is_refused_and_never_overflows() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let mut fresh = SizeEstimator::new(id(1), Config::default());
        fresh.on_message(sketch_message(5, u64::MAX));
        assert_eq!(fresh.epoch(), 0, "followed an impossible epoch");
        // Even at the last epoch it follows, ticking on never overflows.
        fresh.on_message(sketch_message(5, MAX_EPOCH));
        let mut out = VecDeque::new();
        for _ in 0..3 * Config::default().epoch_ticks {
            fresh.on_tick(&[id(2)], &mut rng, &mut out);
        }
        assert_eq!(fresh.epoch(), MAX_EPOCH);
    }

    #[test]
    fn an_established_node_follows_its_neighbours_not_a_leap() {
        let mut a = SizeEstimator::new(id(1), Config::default());
        a.on_message(sketch_message(50, 0));
        let before = a.estimate();
        // One peer claims a far later epoch: not followed.
        a.on_message(sketch_message(2, 1_000));
        assert_eq!(a.epoch(), 0);
        assert_eq!(a.estimate(), before);
        // The next epoch, as an honest neighbour that ticked first sends it.
        a.on_message(sketch_message(50, 1));
        assert_eq!(a.epoch(), 1);
    }

    #[test]
    fn a_register_past_the_highest_rank_is_a_lie() {
        let mut a = SizeEstimator::new(id(1), Config::default());
        let mut regs = sketch_of(10, 0);
        regs[0] = MAX_RANK + 1;
        a.on_message(Message {
            epoch: 0,
            registers: Bytes::from(regs),
        });
        let honest = estimate(&sketch_of(1, 0));
        assert_eq!(
            a.estimate(),
            honest,
            "merged a sketch with an impossible rank"
        );
    }

    #[test]
    fn estimate_is_close_across_sizes() {
        for n in [1u32, 3, 10, 100, 1000, 10_000, 100_000] {
            let e = estimate(&sketch_of(n, 0));
            let err = (e - f64::from(n)).abs() / f64::from(n);
            assert!(err < 0.10, "n={n} estimate={e}");
        }
    }

    #[test]
    fn merging_is_idempotent_and_reaches_the_union() {
        let mut a = SizeEstimator::new(id(1), Config::default());
        let b = SizeEstimator::new(id(2), Config::default());
        a.on_message(b.message());
        let once = a.registers.clone();
        a.on_message(b.message());
        assert_eq!(a.registers, once);
        assert!((a.estimate() - 2.0).abs() < 0.1);
    }

    #[test]
    fn later_epoch_resets_and_earlier_is_ignored() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let mut a = SizeEstimator::new(id(1), Config::default());
        let mut out = VecDeque::new();
        let mut b = SizeEstimator::new(id(2), Config::default());
        for _ in 0..Config::default().epoch_ticks {
            b.on_tick(&[], &mut rng, &mut out);
        }
        assert_eq!(b.epoch(), 1);
        a.on_message(b.message());
        assert_eq!(a.epoch(), 1);
        let stale = Message {
            epoch: 0,
            registers: Bytes::from(vec![60u8; REGISTERS]),
        };
        a.on_message(stale);
        assert!(a.estimate() < 10.0);
    }

    #[test]
    fn tick_sends_to_all_after_growth_then_to_one() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
        let mut a = SizeEstimator::new(id(1), Config::default());
        let peers = [id(2), id(3), id(4)];
        let mut out = VecDeque::new();
        a.on_tick(&peers, &mut rng, &mut out);
        assert_eq!(out.len(), 3);
        out.clear();
        a.on_tick(&peers, &mut rng, &mut out);
        assert_eq!(out.len(), 1);
    }
}
