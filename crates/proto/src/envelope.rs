//! Signed message envelopes and their content-derived ids.
//!
//! (Being written: see the module's final text.)

use std::fmt;

use serde::{Deserialize, Serialize};

/// The id of a broadcast message: the BLAKE3 hash of its encoded, signed
/// envelope. Content-derived, so a peer cannot send two different messages
/// under one id, and a receiver can recognise a duplicate by hashing alone,
/// before any signature check.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct MessageId(pub [u8; 32]);

impl MessageId {
    /// The id of the encoded envelope `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(*blake3::hash(bytes).as_bytes())
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&data_encoding::HEXLOWER.encode(&self.0))
    }
}

impl fmt::Debug for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MessageId({})", data_encoding::HEXLOWER.encode(&self.0[..5]))
    }
}
