//! Signed message envelopes and their content-derived ids.
//!
//! Everything broadcast or sent end to end travels in an [`Envelope`]: the
//! origin's id, a per-origin sequence number, the origin's wall-clock time,
//! a [`Kind`] and an opaque body. The origin signs it ([`SignedEnvelope`]),
//! so any node can check who wrote a message however many hops it took, and
//! Plumtree can forward it without trusting the forwarder.
//!
//! A message's id ([`MessageId`]) is the BLAKE3 hash of its encoded signed
//! envelope. For that to name one message, one message must have one
//! encoding: postcard accepts over-long varints, which would let a relay
//! re-encode a message into new bytes (a new id, so a second delivery) that
//! still carry a valid signature. [`SignedEnvelope::decode`] therefore accepts
//! only the canonical encoding, the bytes [`SignedEnvelope::encode`] gives.
//!
//! The signature covers [`ENVELOPE_SIGNING_DOMAIN`] followed by the postcard
//! encoding of the envelope, so it can never be taken for a record signature
//! (see [`crate::record`]) or any other signed object.
//!
//! Sequence numbers and times are carried, not judged: replay windows and
//! ordering belong to the layers that deliver messages.

use std::fmt;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::identity::{KeyCache, NodeId, SecretKey, Signature};

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
        write!(
            f,
            "MessageId({})",
            data_encoding::HEXLOWER.encode(&self.0[..5])
        )
    }
}

/// The id of the message whose canonical encoding is `encoded`: the same as
/// [`MessageId::of`], named here so callers find it next to the codec.
pub fn id_of(encoded: &[u8]) -> MessageId {
    MessageId::of(encoded)
}

/// Largest envelope body, in bytes.
///
/// 60 KiB holds any chat line or direct message many times over, and keeps
/// a whole signed envelope, with the header of the gossip message that
/// carries it, inside one Noise transport message (65 535 bytes, 16 of them
/// the AEAD tag), so a link never has to split one message across frames.
pub const MAX_BODY_BYTES: usize = 60 * 1024;

/// Room for everything in an encoded signed envelope but the body.
///
/// The header is at most 125 bytes (origin 32, two u64 varints of 10, kind 4,
/// body length 3, signature 65); the rest is margin, still far from the
/// Noise limit.
const ENVELOPE_HEADER_SLACK: usize = 256;

/// Largest encoded [`SignedEnvelope`], in bytes.
pub const MAX_ENVELOPE_BYTES: usize = MAX_BODY_BYTES + ENVELOPE_HEADER_SLACK;

/// Prefix of the bytes an envelope signature covers; see the module docs.
pub const ENVELOPE_SIGNING_DOMAIN: &[u8] = b"gossipnet-envelope-v1\0";

/// Errors from signing, decoding or verifying an envelope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// The envelope's origin is not the node whose key signs it.
    #[error("envelope origin is not the signer's id")]
    WrongKey,
    /// The body is longer than [`MAX_BODY_BYTES`].
    #[error("body too large: {0} bytes (at most {MAX_BODY_BYTES})")]
    BodyTooLarge(usize),
    /// The encoded envelope is longer than [`MAX_ENVELOPE_BYTES`].
    #[error("envelope too large: {0} bytes (at most {MAX_ENVELOPE_BYTES})")]
    TooLarge(usize),
    /// The bytes are not an encoded signed envelope.
    #[error("malformed envelope")]
    Malformed,
    /// Bytes follow the encoded envelope.
    #[error("trailing bytes after envelope")]
    TrailingBytes,
    /// The bytes decode, but are not the one encoding of what they hold.
    #[error("envelope not canonically encoded")]
    NotCanonical,
    /// The signature does not verify against the origin's id.
    #[error("bad envelope signature")]
    BadSignature,
}

/// What a message is, which tells the receiver how to read the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Kind {
    /// A chat line, broadcast to everyone; the body is UTF-8 text.
    Chat,
    /// For one recipient, end-to-end encrypted; opaque at this layer.
    Direct,
    /// An admin command to shut the network down; obeyed only if the origin
    /// is the network's admin key.
    Shutdown,
    /// Kinds defined by applications that embed gossipnet.
    Custom(u16),
}

/// A message as its origin wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// The author, whose key signs the envelope.
    pub origin: NodeId,
    /// Raised by the origin for each message it writes, so two messages with
    /// the same contents still differ (and get different ids).
    pub seq: u64,
    /// When the origin wrote it, in milliseconds since the Unix epoch, by the
    /// origin's clock (given by the caller: this crate reads no clock).
    pub time_ms: u64,
    /// How to read the body.
    pub kind: Kind,
    /// The payload, at most [`MAX_BODY_BYTES`].
    pub body: Bytes,
}

impl Envelope {
    /// The bytes a signature covers.
    fn signing_bytes(&self) -> Vec<u8> {
        postcard::to_extend(self, ENVELOPE_SIGNING_DOMAIN.to_vec())
            .expect("postcard encodes an envelope into a Vec without error")
    }
}

/// An [`Envelope`] signed by its origin.
///
/// Built only by [`SignedEnvelope::sign`] or by decoding, both of which check
/// the bounds; [`SignedEnvelope::decode`] does not check the signature, so a
/// receiver can hash the bytes and drop a duplicate first, then verify with
/// [`SignedEnvelope::verify`] (or do both with [`decode_verified`]). It
/// serializes as a plain struct so it can be embedded in other messages;
/// deserializing there checks the bounds, and [`SignedEnvelope::id`] hashes the
/// canonical encoding, so the id does not depend on how it arrived.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "UncheckedEnvelope")]
pub struct SignedEnvelope {
    envelope: Envelope,
    signature: Signature,
}

/// A signed envelope as read from the wire, before its bounds are checked.
#[derive(Serialize, Deserialize)]
struct UncheckedEnvelope {
    envelope: Envelope,
    signature: Signature,
}

impl TryFrom<UncheckedEnvelope> for SignedEnvelope {
    type Error = EnvelopeError;

    fn try_from(raw: UncheckedEnvelope) -> Result<Self, EnvelopeError> {
        let signed = SignedEnvelope {
            envelope: raw.envelope,
            signature: raw.signature,
        };
        signed.check()?;
        Ok(signed)
    }
}

impl SignedEnvelope {
    /// Signs `envelope` with `key`, which must be the key of its origin.
    pub fn sign(key: &SecretKey, envelope: Envelope) -> Result<Self, EnvelopeError> {
        if envelope.origin != key.node_id() {
            return Err(EnvelopeError::WrongKey);
        }
        if envelope.body.len() > MAX_BODY_BYTES {
            return Err(EnvelopeError::BodyTooLarge(envelope.body.len()));
        }
        let signature = key.sign(&envelope.signing_bytes());
        let signed = SignedEnvelope {
            envelope,
            signature,
        };
        signed.check()?;
        Ok(signed)
    }

    /// Checks the bounds and the origin's signature.
    ///
    /// ed25519-dalek refuses non-canonical signatures, so no one but the
    /// origin can turn a valid signature into another valid one.
    pub fn verify(&self) -> Result<(), EnvelopeError> {
        self.check()?;
        self.envelope
            .origin
            .verify(&self.envelope.signing_bytes(), &self.signature)
            .map_err(|_| EnvelopeError::BadSignature)
    }

    /// As [`SignedEnvelope::verify`], with the origin's key taken from
    /// `keys` (and put there if new).
    pub fn verify_with(&self, keys: &mut KeyCache) -> Result<(), EnvelopeError> {
        self.check()?;
        keys.verify(
            &self.envelope.origin,
            &self.envelope.signing_bytes(),
            &self.signature,
        )
        .map_err(|_| EnvelopeError::BadSignature)
    }

    /// The envelope.
    pub fn envelope(&self) -> &Envelope {
        &self.envelope
    }

    /// The signature.
    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    /// The message id: the hash of [`SignedEnvelope::encode`].
    pub fn id(&self) -> MessageId {
        MessageId::of(&self.encode())
    }

    /// The canonical postcard encoding, at most [`MAX_ENVELOPE_BYTES`] long.
    pub fn encode(&self) -> Bytes {
        Bytes::from(
            postcard::to_allocvec(self)
                .expect("postcard encodes an envelope into a Vec without error"),
        )
    }

    /// Decodes one envelope from exactly `bytes`, which must be its canonical
    /// encoding, checking the bounds but not the signature.
    pub fn decode(bytes: &[u8]) -> Result<Self, EnvelopeError> {
        // Refuse oversized input before parsing, so nothing it claims can
        // make the decoder allocate more than the cap.
        if bytes.len() > MAX_ENVELOPE_BYTES {
            return Err(EnvelopeError::TooLarge(bytes.len()));
        }
        let (raw, rest) = postcard::take_from_bytes::<UncheckedEnvelope>(bytes)
            .map_err(|_| EnvelopeError::Malformed)?;
        if !rest.is_empty() {
            return Err(EnvelopeError::TrailingBytes);
        }
        let signed = SignedEnvelope::try_from(raw)?;
        // The id is the hash of these bytes: they must be the only encoding
        // (see the module docs).
        if signed.encode() != bytes {
            return Err(EnvelopeError::NotCanonical);
        }
        Ok(signed)
    }

    fn check(&self) -> Result<(), EnvelopeError> {
        let body = self.envelope.body.len();
        if body > MAX_BODY_BYTES {
            return Err(EnvelopeError::BodyTooLarge(body));
        }
        let len = postcard::experimental::serialized_size(self)
            .expect("postcard sizes an envelope without error");
        if len > MAX_ENVELOPE_BYTES {
            return Err(EnvelopeError::TooLarge(len));
        }
        Ok(())
    }
}

/// Decodes `bytes` as [`SignedEnvelope::decode`] does and checks the
/// signature.
pub fn decode_verified(bytes: &[u8]) -> Result<SignedEnvelope, EnvelopeError> {
    let signed = SignedEnvelope::decode(bytes)?;
    signed.verify()?;
    Ok(signed)
}

/// As [`decode_verified`], with the origin's key taken from `keys`.
pub fn decode_verified_with(
    bytes: &[u8],
    keys: &mut KeyCache,
) -> Result<SignedEnvelope, EnvelopeError> {
    let signed = SignedEnvelope::decode(bytes)?;
    signed.verify_with(keys)?;
    Ok(signed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;

    /// A change a test makes to a signed envelope.
    type Tamper = Box<dyn Fn(&mut SignedEnvelope)>;

    fn key(seed: u64) -> SecretKey {
        SecretKey::generate(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed))
    }

    fn envelope_for(key: &SecretKey) -> Envelope {
        Envelope {
            origin: key.node_id(),
            seq: 5,
            time_ms: 1_700_000_000_000,
            kind: Kind::Chat,
            body: Bytes::from_static(b"hello, world"),
        }
    }

    /// Encodes any envelope and signature, bypassing `sign`, to feed the
    /// decoder what a hostile peer could send.
    fn encode_unchecked(envelope: Envelope, signature: Signature) -> Vec<u8> {
        postcard::to_allocvec(&UncheckedEnvelope {
            envelope,
            signature,
        })
        .unwrap()
    }

    #[test]
    fn signed_envelope_verifies_and_round_trips() {
        let k = key(1);
        for kind in [
            Kind::Chat,
            Kind::Direct,
            Kind::Shutdown,
            Kind::Custom(0),
            Kind::Custom(u16::MAX),
        ] {
            let mut envelope = envelope_for(&k);
            envelope.kind = kind;
            let signed = SignedEnvelope::sign(&k, envelope.clone()).unwrap();
            assert_eq!(signed.verify(), Ok(()));
            assert_eq!(signed.envelope(), &envelope);
            let bytes = signed.encode();
            assert_eq!(SignedEnvelope::decode(&bytes), Ok(signed.clone()));
            assert_eq!(decode_verified(&bytes), Ok(signed));
        }
    }

    #[test]
    fn id_is_the_hash_of_the_encoding() {
        let k = key(1);
        let signed = SignedEnvelope::sign(&k, envelope_for(&k)).unwrap();
        let bytes = signed.encode();
        assert_eq!(signed.id(), MessageId::of(&bytes));
        assert_eq!(id_of(&bytes), MessageId::of(&bytes));
        let mut other = envelope_for(&k);
        other.seq += 1;
        let other = SignedEnvelope::sign(&k, other).unwrap();
        assert_ne!(other.id(), signed.id());
    }

    #[test]
    fn signing_with_another_key_is_refused() {
        let a = key(1);
        let b = key(2);
        assert_eq!(
            SignedEnvelope::sign(&b, envelope_for(&a)),
            Err(EnvelopeError::WrongKey)
        );
    }

    #[test]
    fn tampering_with_any_field_breaks_the_signature() {
        let k = key(1);
        let other = key(2).node_id();
        let good = SignedEnvelope::sign(&k, envelope_for(&k)).unwrap();
        let tampers: Vec<Tamper> = vec![
            Box::new(move |s| s.envelope.origin = other),
            Box::new(|s| s.envelope.seq += 1),
            Box::new(|s| s.envelope.time_ms -= 1),
            Box::new(|s| s.envelope.kind = Kind::Shutdown),
            Box::new(|s| s.envelope.kind = Kind::Custom(0)),
            Box::new(|s| s.envelope.body = Bytes::from_static(b"hello, World")),
            Box::new(|s| s.envelope.body = Bytes::new()),
            Box::new(|s| s.signature.0[0] ^= 1),
            Box::new(|s| s.signature.0[63] ^= 0x80),
        ];
        for (i, tamper) in tampers.iter().enumerate() {
            let mut bad = good.clone();
            tamper(&mut bad);
            assert_eq!(bad.verify(), Err(EnvelopeError::BadSignature), "tamper {i}");
            let bytes = bad.encode();
            assert_eq!(SignedEnvelope::decode(&bytes), Ok(bad), "tamper {i}");
            assert_eq!(
                decode_verified(&bytes),
                Err(EnvelopeError::BadSignature),
                "tamper {i}"
            );
        }
    }

    #[test]
    fn every_flipped_bit_is_caught() {
        let k = key(1);
        let bytes = SignedEnvelope::sign(&k, envelope_for(&k)).unwrap().encode();
        for at in 0..bytes.len() {
            for bit in 0..8 {
                let mut bad = bytes.to_vec();
                bad[at] ^= 1 << bit;
                assert!(decode_verified(&bad).is_err(), "byte {at} bit {bit}");
            }
        }
    }

    #[test]
    fn signature_is_domain_separated() {
        let k = key(1);
        let envelope = envelope_for(&k);
        let bare = k.sign(&postcard::to_allocvec(&envelope).unwrap());
        let forged = SignedEnvelope {
            envelope,
            signature: bare,
        };
        assert_eq!(forged.verify(), Err(EnvelopeError::BadSignature));
    }

    #[test]
    fn body_bound_is_enforced() {
        let k = key(1);
        let mut envelope = envelope_for(&k);
        envelope.seq = u64::MAX;
        envelope.time_ms = u64::MAX;
        envelope.kind = Kind::Custom(u16::MAX);
        envelope.body = Bytes::from(vec![7u8; MAX_BODY_BYTES]);
        let largest = SignedEnvelope::sign(&k, envelope.clone()).unwrap();
        let bytes = largest.encode();
        assert!(bytes.len() <= MAX_ENVELOPE_BYTES);
        assert_eq!(decode_verified(&bytes), Ok(largest));

        envelope.body = Bytes::from(vec![7u8; MAX_BODY_BYTES + 1]);
        assert_eq!(
            SignedEnvelope::sign(&k, envelope.clone()),
            Err(EnvelopeError::BodyTooLarge(MAX_BODY_BYTES + 1))
        );
        let signature = k.sign(&envelope.signing_bytes());
        let bytes = encode_unchecked(envelope, signature);
        assert_eq!(
            SignedEnvelope::decode(&bytes),
            Err(EnvelopeError::BodyTooLarge(MAX_BODY_BYTES + 1))
        );
    }

    #[test]
    fn oversized_input_is_refused_before_parsing() {
        let bytes = vec![0u8; MAX_ENVELOPE_BYTES + 1];
        assert_eq!(
            SignedEnvelope::decode(&bytes),
            Err(EnvelopeError::TooLarge(MAX_ENVELOPE_BYTES + 1))
        );
    }

    #[test]
    fn trailing_and_truncated_bytes_are_refused() {
        let k = key(1);
        let mut bytes = SignedEnvelope::sign(&k, envelope_for(&k))
            .unwrap()
            .encode()
            .to_vec();
        bytes.push(0);
        assert_eq!(
            SignedEnvelope::decode(&bytes),
            Err(EnvelopeError::TrailingBytes)
        );
        bytes.pop();
        for len in 0..bytes.len() {
            assert!(
                SignedEnvelope::decode(&bytes[..len]).is_err(),
                "prefix {len}"
            );
        }
    }

    #[test]
    fn overlong_varints_are_refused_though_the_signature_holds() {
        let k = key(1);
        let signed = SignedEnvelope::sign(&k, envelope_for(&k)).unwrap();
        let bytes = signed.encode();
        // The seq (5) is the one byte after the 32-byte origin; spell it in
        // two bytes instead. The content, and so the signature, are unchanged,
        // but the bytes, and so the id, would differ.
        assert_eq!(bytes[32], 5);
        let mut respelled = bytes[..32].to_vec();
        respelled.extend_from_slice(&[0x85, 0x00]);
        respelled.extend_from_slice(&bytes[33..]);
        let (raw, _) = postcard::take_from_bytes::<UncheckedEnvelope>(&respelled).unwrap();
        assert_eq!(SignedEnvelope::try_from(raw).unwrap().verify(), Ok(()));
        assert_eq!(
            SignedEnvelope::decode(&respelled),
            Err(EnvelopeError::NotCanonical)
        );
    }

    #[test]
    fn embedded_envelopes_are_bounds_checked() {
        let k = key(1);
        let mut envelope = envelope_for(&k);
        envelope.body = Bytes::from(vec![0u8; MAX_BODY_BYTES + 1]);
        let signature = k.sign(&envelope.signing_bytes());
        let bytes = postcard::to_allocvec(&(
            1u8,
            UncheckedEnvelope {
                envelope,
                signature,
            },
        ))
        .unwrap();
        assert!(postcard::from_bytes::<(u8, SignedEnvelope)>(&bytes).is_err());
        let good = SignedEnvelope::sign(&k, envelope_for(&k)).unwrap();
        let bytes = postcard::to_allocvec(&(1u8, &good)).unwrap();
        assert_eq!(
            postcard::from_bytes::<(u8, SignedEnvelope)>(&bytes)
                .unwrap()
                .1,
            good
        );
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = decode_verified(&bytes);
        }

        #[test]
        fn decoding_mutated_envelopes_never_panics(
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)
        ) {
            let k = key(1);
            let mut bytes = SignedEnvelope::sign(&k, envelope_for(&k)).unwrap().encode().to_vec();
            for (at, val) in flips {
                let at = at % bytes.len();
                bytes[at] = val;
            }
            if let Ok(signed) = SignedEnvelope::decode(&bytes) {
                prop_assert_eq!(signed.encode(), Bytes::from(bytes));
                let _ = signed.verify();
            }
        }

        #[test]
        fn any_envelope_round_trips(
            seq in any::<u64>(),
            time_ms in any::<u64>(),
            kind in prop_oneof![
                Just(Kind::Chat),
                Just(Kind::Direct),
                Just(Kind::Shutdown),
                any::<u16>().prop_map(Kind::Custom),
            ],
            body in proptest::collection::vec(any::<u8>(), 0..2048),
        ) {
            let k = key(1);
            let envelope = Envelope { origin: k.node_id(), seq, time_ms, kind, body: body.into() };
            let signed = SignedEnvelope::sign(&k, envelope).unwrap();
            let bytes = signed.encode();
            prop_assert_eq!(decode_verified(&bytes), Ok(signed.clone()));
            prop_assert_eq!(signed.id(), id_of(&bytes));
        }
    }
}
