//! Node identity: an ed25519 key pair per node, and the [`NodeId`] that names
//! a node everywhere in the protocol.
//!
//! The node id *is* the ed25519 public key, so anything signed by a node can be
//! checked against its id with no lookup. Ids are shown as lowercase base32
//! (RFC 4648, no padding: 52 characters), which survives copy and paste, file
//! names and URLs; [`NodeId::short`] gives the first eight characters for
//! display, enough to tell apart the nodes of any network a person looks at.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::str::FromStr;

use data_encoding::BASE32_NOPAD;
use ed25519_dalek::{Signer, Verifier};
use rand::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};

/// Length in characters of [`NodeId::short`].
///
/// 8 base32 characters are 40 bits: two nodes of a million-node network share
/// a short id with a probability below one in a million.
pub const SHORT_ID_LEN: usize = 8;

/// Errors from parsing or checking identities and signatures.
#[derive(Debug, Clone, Copy, thiserror::Error, PartialEq, Eq)]
pub enum IdentityError {
    /// The text is not 52 base32 characters.
    #[error("a node id is 52 base32 characters (a-z, 2-7)")]
    BadText,
    /// The bytes are not a valid ed25519 public key.
    #[error("not a valid ed25519 public key")]
    BadKey,
    /// A signature did not verify.
    #[error("bad signature")]
    BadSignature,
}

/// The identity of a node: its ed25519 public key.
///
/// Serialised as its text form in human-readable formats (JSON, TOML) and
/// as its 32 raw bytes in binary ones (the wire).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId([u8; 32]);

/// The binary form of a [`NodeId`], as the wire has always carried it.
#[derive(Serialize, Deserialize)]
#[serde(rename = "NodeId")]
struct RawNodeId([u8; 32]);

impl Serialize for NodeId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.collect_str(self)
        } else {
            RawNodeId(self.0).serialize(serializer)
        }
    }
}

impl<'de> Deserialize<'de> for NodeId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            let text = String::deserialize(deserializer)?;
            text.parse().map_err(serde::de::Error::custom)
        } else {
            RawNodeId::deserialize(deserializer).map(|raw| NodeId(raw.0))
        }
    }
}

impl NodeId {
    /// Wraps raw key bytes. The simulator uses ids that are not keys; use
    /// [`NodeId::verifying_key`] to check that an id is a real key.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw bytes of the public key.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The first [`SHORT_ID_LEN`] characters of the text form, for display.
    pub fn short(&self) -> String {
        let mut s = self.to_string();
        s.truncate(SHORT_ID_LEN);
        s
    }

    /// The ed25519 key this id names, or an error if the bytes are not a point
    /// on the curve.
    pub fn verifying_key(&self) -> Result<ed25519_dalek::VerifyingKey, IdentityError> {
        ed25519_dalek::VerifyingKey::from_bytes(&self.0).map_err(|_| IdentityError::BadKey)
    }

    /// The X25519 public key of this id (the same curve point in Montgomery
    /// form), for encrypting to the node that holds it.
    pub fn x25519_public(&self) -> Result<[u8; 32], IdentityError> {
        Ok(self.verifying_key()?.to_montgomery().to_bytes())
    }

    /// Checks `signature` over `message` against this id.
    pub fn verify(&self, message: &[u8], signature: &Signature) -> Result<(), IdentityError> {
        let key = self.verifying_key()?;
        let sig = ed25519_dalek::Signature::from_bytes(&signature.0);
        key.verify_strict(message, &sig)
            .map_err(|_| IdentityError::BadSignature)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&BASE32_NOPAD.encode(&self.0).to_ascii_lowercase())
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({})", self.short())
    }
}

impl FromStr for NodeId {
    type Err = IdentityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let upper = s.trim().to_ascii_uppercase();
        let bytes = BASE32_NOPAD
            .decode(upper.as_bytes())
            .map_err(|_| IdentityError::BadText)?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| IdentityError::BadText)?;
        Ok(Self(bytes))
    }
}

/// An ed25519 signature, 64 bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature(pub [u8; 64]);

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Signature({}..)",
            data_encoding::HEXLOWER.encode(&self.0[..6])
        )
    }
}

impl Serialize for Signature {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Signature {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Signature;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("64 signature bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Signature, E> {
                let arr: [u8; 64] = v
                    .try_into()
                    .map_err(|_| E::invalid_length(v.len(), &self))?;
                Ok(Signature(arr))
            }
        }
        d.deserialize_bytes(V)
    }
}

/// A node's secret key. It never leaves the node; [`SecretKey::to_bytes`] is
/// for writing it to the node's own key file.
#[derive(Clone)]
pub struct SecretKey(ed25519_dalek::SigningKey);

impl SecretKey {
    /// A fresh key from a cryptographic RNG.
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        Self(ed25519_dalek::SigningKey::generate(rng))
    }

    /// The key from its 32 secret bytes.
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        Self(ed25519_dalek::SigningKey::from_bytes(bytes))
    }

    /// The 32 secret bytes, for the key file.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The id of the node that holds this key.
    pub fn node_id(&self) -> NodeId {
        NodeId(self.0.verifying_key().to_bytes())
    }

    /// The X25519 secret matching [`NodeId::x25519_public`] (the ed25519
    /// signing scalar), for decrypting what was encrypted to this node.
    pub fn x25519_secret(&self) -> [u8; 32] {
        self.0.to_scalar_bytes()
    }

    /// Signs `message`.
    pub fn sign(&self, message: &[u8]) -> Signature {
        Signature(self.0.sign(message).to_bytes())
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey(for {})", self.node_id().short())
    }
}

/// Decompressed keys of the nodes whose signatures a node checks often,
/// the origins of the messages it forwards, so that checking one of their
/// signatures does not decompress their key again. A decompression is a
/// square root in the field, about a sixth of a verification.
///
/// [`KeyCache::verify`] accepts exactly what [`NodeId::verify`] accepts
/// (ed25519-dalek's strict verification), without the second
/// decompression that the strict check makes of the signature's `R`: `R`
/// is refused if its bytes are the encoding of a small-order point, and a
/// non-canonical `R` can never equal the canonical encoding that the
/// check recomputes. Bounded: past its capacity, the key cached first goes.
pub struct KeyCache {
    keys: HashMap<NodeId, CachedKey>,
    /// Insertion order, for eviction.
    order: VecDeque<NodeId>,
    capacity: usize,
    /// The canonical encodings of the eight points of small order.
    small_order: [[u8; 32]; 8],
}

/// A key as the cache keeps it: decompressed, or known not to be a key.
#[derive(Clone, Copy)]
enum CachedKey {
    Key(ed25519_dalek::VerifyingKey),
    /// A point of small order: every signature by it is refused.
    Weak,
    /// Not a point on the curve.
    Bad,
}

impl KeyCache {
    /// An empty cache that keeps at most `capacity` keys (at least one).
    pub fn new(capacity: usize) -> Self {
        let small_order =
            curve25519_dalek::constants::EIGHT_TORSION.map(|p| p.compress().to_bytes());
        Self {
            keys: HashMap::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
            small_order,
        }
    }

    /// Keys held.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when no key is held.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Checks `signature` over `message` against `id`, as [`NodeId::verify`]
    /// does, decompressing `id` only if it is not cached yet.
    pub fn verify(
        &mut self,
        id: &NodeId,
        message: &[u8],
        signature: &Signature,
    ) -> Result<(), IdentityError> {
        let key = match self.keys.get(id) {
            Some(key) => *key,
            None => self.insert(*id),
        };
        let key = match key {
            CachedKey::Key(key) => key,
            CachedKey::Weak => return Err(IdentityError::BadSignature),
            CachedKey::Bad => return Err(IdentityError::BadKey),
        };
        let r: [u8; 32] = signature.0[..32]
            .try_into()
            .expect("a signature's first half is 32 bytes");
        if self.small_order.contains(&r) {
            return Err(IdentityError::BadSignature);
        }
        let sig = ed25519_dalek::Signature::from_bytes(&signature.0);
        key.verify(message, &sig)
            .map_err(|_| IdentityError::BadSignature)
    }

    fn insert(&mut self, id: NodeId) -> CachedKey {
        let key = match id.verifying_key() {
            Ok(key) if key.is_weak() => CachedKey::Weak,
            Ok(key) => CachedKey::Key(key),
            Err(_) => CachedKey::Bad,
        };
        if self.keys.len() >= self.capacity {
            if let Some(oldest) = self.order.pop_front() {
                self.keys.remove(&oldest);
            }
        }
        self.keys.insert(id, key);
        self.order.push_back(id);
        key
    }
}

impl fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyCache")
            .field("keys", &self.keys.len())
            .field("capacity", &self.capacity)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// The encodings of the small-order points, as the cache derives them.
    fn small_order() -> [[u8; 32]; 8] {
        KeyCache::new(1).small_order
    }

    #[test]
    fn the_small_order_encodings_are_the_eight_weak_keys() {
        let all = small_order();
        for enc in all {
            let key = ed25519_dalek::VerifyingKey::from_bytes(&enc).expect("a point");
            assert!(key.is_weak(), "{enc:02x?} is of small order");
        }
        let distinct: std::collections::HashSet<_> = all.iter().collect();
        assert_eq!(distinct.len(), 8);
        // The identity, y = 1, is among them.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert!(all.contains(&identity));
    }

    #[test]
    fn a_signature_that_only_the_cofactorless_equation_accepts_is_refused() {
        // Key and R the identity point, s = 0: [s]B - [k]A = R holds for
        // every message, so the bare equation accepts this forgery.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let mut forged = Signature([0u8; 64]);
        forged.0[..32].copy_from_slice(&identity);
        let id = NodeId(identity);
        let bare = id.verifying_key().unwrap();
        let sig = ed25519_dalek::Signature::from_bytes(&forged.0);
        assert!(
            bare.verify(b"anything", &sig).is_ok(),
            "the bare equation holds"
        );
        assert_eq!(
            id.verify(b"anything", &forged),
            Err(IdentityError::BadSignature)
        );
        let mut cache = KeyCache::new(4);
        assert_eq!(
            cache.verify(&id, b"anything", &forged),
            Err(IdentityError::BadSignature)
        );
    }

    proptest::proptest! {
        /// The cached check accepts and refuses exactly what the strict
        /// check does, on honest signatures and on each kind of forgery:
        /// a flipped bit anywhere, a small-order `R`, a small-order key,
        /// and bytes that are not a key.
        #[test]
        fn the_cached_check_agrees_with_the_strict_one(
            seed in 0u64..1_000,
            message in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
            flip in proptest::option::of((0usize..96, 1u8..=255)),
            weak_r in proptest::option::of(0usize..8),
            weak_key in proptest::option::of(0usize..8),
            junk_key in proptest::option::of(proptest::prelude::any::<[u8; 32]>()),
        ) {
            let key = SecretKey::generate(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
            let mut id = key.node_id();
            let mut sig = key.sign(&message);
            let mut message = message;
            if let Some((at, bits)) = flip {
                match at {
                    0..=63 => sig.0[at] ^= bits,
                    64..=95 => id.0[at - 64] ^= bits,
                    _ => unreachable!(),
                }
            }
            if let Some(i) = weak_r {
                sig.0[..32].copy_from_slice(&small_order()[i]);
            }
            if let Some(i) = weak_key {
                id = NodeId(small_order()[i]);
            }
            if let Some(bytes) = junk_key {
                id = NodeId(bytes);
            }
            let strict = id.verify(&message, &sig);
            let mut cache = KeyCache::new(4);
            proptest::prop_assert_eq!(cache.verify(&id, &message, &sig), strict);
            // Again, from the cache.
            proptest::prop_assert_eq!(cache.verify(&id, &message, &sig), strict);
            message.push(0);
            proptest::prop_assert_eq!(
                cache.verify(&id, &message, &sig),
                id.verify(&message, &sig)
            );
        }
    }

    #[test]
    fn a_full_cache_forgets_its_oldest_key_and_still_checks_every_signer() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        let keys: Vec<SecretKey> = (0..3).map(|_| SecretKey::generate(&mut rng)).collect();
        let mut cache = KeyCache::new(2);
        for _ in 0..2 {
            for key in &keys {
                let sig = key.sign(b"m");
                assert_eq!(cache.verify(&key.node_id(), b"m", &sig), Ok(()));
                assert!(cache.len() <= 2);
            }
        }
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn text_form_round_trips() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let key = SecretKey::generate(&mut rng);
        let id = key.node_id();
        let text = id.to_string();
        assert_eq!(text.len(), 52);
        assert_eq!(text.parse::<NodeId>().unwrap(), id);
        assert_eq!(text.to_uppercase().parse::<NodeId>().unwrap(), id);
        assert!(text.starts_with(&id.short()));
        assert_eq!(id.short().len(), SHORT_ID_LEN);
    }

    #[test]
    fn bad_text_is_refused() {
        assert_eq!("abc".parse::<NodeId>(), Err(IdentityError::BadText));
        assert_eq!(
            "1".repeat(52).parse::<NodeId>(),
            Err(IdentityError::BadText)
        );
    }

    #[test]
    fn signatures_verify_only_for_the_signer_and_message() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(8);
        let a = SecretKey::generate(&mut rng);
        let b = SecretKey::generate(&mut rng);
        let sig = a.sign(b"hello");
        assert!(a.node_id().verify(b"hello", &sig).is_ok());
        assert_eq!(
            a.node_id().verify(b"hellO", &sig),
            Err(IdentityError::BadSignature)
        );
        assert_eq!(
            b.node_id().verify(b"hello", &sig),
            Err(IdentityError::BadSignature)
        );
    }

    #[test]
    fn secret_key_round_trips() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        let a = SecretKey::generate(&mut rng);
        let b = SecretKey::from_bytes(&a.to_bytes());
        assert_eq!(a.node_id(), b.node_id());
    }

    #[test]
    fn ids_are_text_in_json_and_bytes_on_the_wire() {
        let id = NodeId::from_bytes([7; 32]);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{id}\""));
        assert_eq!(serde_json::from_str::<NodeId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<NodeId>("\"not an id\"").is_err());
        let wire = postcard::to_allocvec(&id).unwrap();
        assert_eq!(wire, [7u8; 32]);
        assert_eq!(postcard::from_bytes::<NodeId>(&wire).unwrap(), id);
    }
}
