//! Direct messages: a body only its recipient can read.
//!
//! A direct message travels inside an ordinary signed envelope (kind
//! `Direct`), so the recipient knows who wrote it, and anyone relaying it
//! can check the signature, but only the recipient can read the body. The
//! body is sealed to the recipient's node id: the ed25519 key is used as the
//! X25519 key it is birationally equivalent to, a fresh ephemeral X25519 key
//! per message gives a shared secret, BLAKE3 derives a one-time key from it,
//! and ChaCha20-Poly1305 encrypts, with the recipient's id as associated
//! data so a sealed body cannot be re-addressed. Because every key is used
//! once, the nonce can be fixed.
//!
//! A direct message sent over a link skips the overlay's history, so the
//! recipient keeps its own record of what it opened: [`DirectDedupe`]
//! refuses one written outside the freshness window ([`DIRECT_MAX_AGE`],
//! with [`DIRECT_CLOCK_SKEW`] of slack) and one it admitted before, which
//! it remembers for as long as that message could be admitted at all.

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};

use crate::{MessageId, NodeId, SecretKey};

/// Largest sealed plaintext: a chat body fits many times over.
pub const MAX_DIRECT_PLAINTEXT: usize = 32 * 1024;

/// How long after it was written (by its writer's clock) a direct message
/// is taken: one waits at most for a dial and a few hops of relay, so ten
/// minutes is ample, and keeps short the list of ids a repeat is told by.
pub const DIRECT_MAX_AGE: Duration = Duration::from_secs(600);
/// Clocks disagree: a direct message may be this much older than
/// [`DIRECT_MAX_AGE`], or this far in the future, and still be taken (the
/// history's slack, for the same clocks).
pub const DIRECT_CLOCK_SKEW: Duration = Duration::from_secs(600);
/// Most direct message ids remembered: far above what people write in the
/// window, and about 3 MB when full.
pub const MAX_DIRECT_SEEN: usize = 65_536;

const KDF_CONTEXT: &str = "gossipnet direct message v1 key";

/// Errors sealing or opening a direct message.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DirectError {
    /// The recipient id is not a valid key.
    #[error("recipient id is not a valid key")]
    BadRecipient,
    /// The plaintext is over [`MAX_DIRECT_PLAINTEXT`].
    #[error("direct message too large")]
    TooLarge,
    /// Not addressed to this node.
    #[error("not addressed to us")]
    NotForUs,
    /// The body does not decrypt (tampered, or not for this key).
    #[error("direct message does not decrypt")]
    Decrypt,
    /// The body is not a sealed message.
    #[error("malformed direct message")]
    Malformed,
    /// The message was taken before: a repeat or a replay.
    #[error("direct message already received")]
    Repeated,
    /// The message was written outside the freshness window.
    #[error("direct message outside the freshness window")]
    OutsideWindow,
}

/// A sealed direct message body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    /// The recipient.
    pub to: NodeId,
    /// The sender's one-time X25519 public key.
    pub ephemeral: [u8; 32],
    /// The ciphertext with its tag.
    pub ciphertext: Vec<u8>,
}

impl Sealed {
    /// Seals `plaintext` to `to`.
    pub fn seal<R: RngCore + CryptoRng>(
        to: NodeId,
        plaintext: &[u8],
        rng: &mut R,
    ) -> Result<Self, DirectError> {
        if plaintext.len() > MAX_DIRECT_PLAINTEXT {
            return Err(DirectError::TooLarge);
        }
        let their = to.x25519_public().map_err(|_| DirectError::BadRecipient)?;
        let mut secret = [0u8; 32];
        rng.fill_bytes(&mut secret);
        let ephemeral = x25519_dalek::x25519(secret, x25519_dalek::X25519_BASEPOINT_BYTES);
        let shared = x25519_dalek::x25519(secret, their);
        let cipher = cipher(&shared, &ephemeral, &their);
        let ciphertext = cipher
            .encrypt(
                &Nonce::default(),
                Payload {
                    msg: plaintext,
                    aad: to.as_bytes(),
                },
            )
            .map_err(|_| DirectError::TooLarge)?;
        Ok(Self {
            to,
            ephemeral,
            ciphertext,
        })
    }

    /// Opens a body sealed to `key`'s node.
    pub fn open(&self, key: &SecretKey) -> Result<Vec<u8>, DirectError> {
        if self.to != key.node_id() {
            return Err(DirectError::NotForUs);
        }
        let ours = self
            .to
            .x25519_public()
            .map_err(|_| DirectError::BadRecipient)?;
        let shared = x25519_dalek::x25519(key.x25519_secret(), self.ephemeral);
        let cipher = cipher(&shared, &self.ephemeral, &ours);
        cipher
            .decrypt(
                &Nonce::default(),
                Payload {
                    msg: &self.ciphertext,
                    aad: self.to.as_bytes(),
                },
            )
            .map_err(|_| DirectError::Decrypt)
    }

    /// Encodes the body.
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).unwrap_or_default()
    }

    /// Decodes a body.
    pub fn decode(bytes: &[u8]) -> Result<Self, DirectError> {
        if bytes.len() > MAX_DIRECT_PLAINTEXT + 128 {
            return Err(DirectError::Malformed);
        }
        postcard::from_bytes(bytes).map_err(|_| DirectError::Malformed)
    }
}

/// The direct messages a node has taken, to refuse repeats; see the module
/// docs.
#[derive(Debug, Default)]
pub struct DirectDedupe {
    ids: HashSet<MessageId>,
    /// The same ids by writer's time, oldest first, to forget them in order.
    by_time: BTreeSet<(u64, MessageId)>,
    /// Messages written at or before this time are refused: the bound made
    /// us forget ids up to here, and one of them must not come back.
    horizon_ms: u64,
}

impl DirectDedupe {
    /// Takes the message with id `id`, written at `time_ms` (Unix ms), at
    /// wall-clock `now_ms`, unless it is a repeat or outside the window.
    pub fn admit(&mut self, id: MessageId, time_ms: u64, now_ms: u64) -> Result<(), DirectError> {
        let window = (DIRECT_MAX_AGE + DIRECT_CLOCK_SKEW).as_millis() as u64;
        let skew = DIRECT_CLOCK_SKEW.as_millis() as u64;
        if time_ms.saturating_add(window) < now_ms || time_ms > now_ms.saturating_add(skew) {
            return Err(DirectError::OutsideWindow);
        }
        if (self.horizon_ms > 0 && time_ms <= self.horizon_ms) || self.ids.contains(&id) {
            return Err(DirectError::Repeated);
        }
        // Past the window a repeat is refused as too old anyway.
        while let Some(&(t, old)) = self.by_time.first() {
            if t.saturating_add(window) >= now_ms && self.ids.len() < MAX_DIRECT_SEEN {
                break;
            }
            self.by_time.pop_first();
            self.ids.remove(&old);
            if t.saturating_add(window) >= now_ms {
                self.horizon_ms = self.horizon_ms.max(t);
            }
        }
        self.ids.insert(id);
        self.by_time.insert((time_ms, id));
        Ok(())
    }

    /// Ids remembered.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether no id is remembered.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

fn cipher(shared: &[u8; 32], ephemeral: &[u8; 32], recipient: &[u8; 32]) -> ChaCha20Poly1305 {
    let mut material = [0u8; 96];
    material[..32].copy_from_slice(shared);
    material[32..64].copy_from_slice(ephemeral);
    material[64..].copy_from_slice(recipient);
    let key = blake3::derive_key(KDF_CONTEXT, &material);
    ChaCha20Poly1305::new(Key::from_slice(&key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn only_the_recipient_opens_it() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let bob = SecretKey::generate(&mut rng);
        let eve = SecretKey::generate(&mut rng);
        let sealed = Sealed::seal(bob.node_id(), b"meet at noon", &mut rng).unwrap();
        assert_eq!(sealed.open(&bob).unwrap(), b"meet at noon");
        assert_eq!(sealed.open(&eve), Err(DirectError::NotForUs));
        // Re-addressed to eve, it still does not open: the recipient is
        // bound in as associated data and in the key.
        let mut forged = sealed.clone();
        forged.to = eve.node_id();
        assert_eq!(forged.open(&eve), Err(DirectError::Decrypt));
        let back = Sealed::decode(&sealed.encode()).unwrap();
        assert_eq!(back, sealed);
    }

    #[test]
    fn tampering_is_detected() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(6);
        let bob = SecretKey::generate(&mut rng);
        let mut sealed = Sealed::seal(bob.node_id(), b"x", &mut rng).unwrap();
        sealed.ciphertext[0] ^= 1;
        assert_eq!(sealed.open(&bob), Err(DirectError::Decrypt));
        assert!(Sealed::seal(bob.node_id(), &vec![0; MAX_DIRECT_PLAINTEXT + 1], &mut rng).is_err());
    }

    const NOW: u64 = 1_700_000_000_000;

    fn mid(i: u8) -> MessageId {
        MessageId::of(&[i])
    }

    #[test]
    fn a_repeated_direct_message_is_refused() {
        let mut seen = DirectDedupe::default();
        assert_eq!(seen.admit(mid(1), NOW, NOW), Ok(()));
        assert_eq!(seen.admit(mid(2), NOW, NOW), Ok(()));
        assert_eq!(
            seen.admit(mid(1), NOW, NOW + 1000),
            Err(DirectError::Repeated)
        );
        // Still refused at the very end of the window, when the id may
        // already be forgotten.
        let window = (DIRECT_MAX_AGE + DIRECT_CLOCK_SKEW).as_millis() as u64;
        assert_eq!(
            seen.admit(mid(1), NOW, NOW + window),
            Err(DirectError::Repeated)
        );
        assert_eq!(
            seen.admit(mid(1), NOW, NOW + window + 1),
            Err(DirectError::OutsideWindow)
        );
        let skew = DIRECT_CLOCK_SKEW.as_millis() as u64;
        assert_eq!(
            seen.admit(mid(3), NOW + skew + 1, NOW),
            Err(DirectError::OutsideWindow)
        );
    }

    #[test]
    fn the_dedupe_stays_bounded_and_forgets_nothing_it_could_admit_again() {
        let mut seen = DirectDedupe::default();
        for i in 0..MAX_DIRECT_SEEN as u64 + 10 {
            let id = MessageId::of(&i.to_le_bytes());
            assert_eq!(seen.admit(id, NOW + i / 100, NOW), Ok(()));
        }
        assert!(seen.len() <= MAX_DIRECT_SEEN);
        // The first ones were forgotten for the bound, and are still refused.
        let first = MessageId::of(&0u64.to_le_bytes());
        assert_eq!(seen.admit(first, NOW, NOW), Err(DirectError::Repeated));
        // Expired ids go by time.
        let window = (DIRECT_MAX_AGE + DIRECT_CLOCK_SKEW).as_millis() as u64;
        let later = NOW + window + 1000;
        assert_eq!(seen.admit(mid(9), later, later), Ok(()));
        assert_eq!(seen.len(), 1);
    }
}
