//! gossipnet-proto: the sans-IO protocol core.
pub mod envelope;
pub mod identity;
pub mod record;
pub mod seed;
pub use envelope::MessageId;
pub use identity::{NodeId, SecretKey, Signature};
