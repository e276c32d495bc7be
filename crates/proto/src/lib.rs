//! gossipnet-proto: the sans-IO protocol core.
pub mod identity;
pub use identity::{NodeId, SecretKey, Signature};
