//! gossipnet-sim: a deterministic discrete-event simulator that runs the
//! real protocol core (`gossipnet-proto`) at scale.
//!
//! - [`sim`]: the engine (virtual time, seeded event heap, links with
//!   latency, loss and partitions, crashes and graceful leaves) and the
//!   overlay invariant checks;
//! - [`experiments`]: the papers' experiments (broadcast redundancy and
//!   delay, reliability after mass failure, the size estimate) as functions
//!   that return reports.
//!
//! A run is a pure function of its seed: the same seed gives the same events
//! in the same order, so a failing seed can be replayed.

pub mod experiments;
pub mod sim;

pub use sim::{Latency, SimConfig, Simulator};
