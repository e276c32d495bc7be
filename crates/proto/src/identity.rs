//! Node identity: an ed25519 key pair per node, and the [`NodeId`] that names
//! a node everywhere in the protocol.
//!
//! The node id *is* the ed25519 public key, so anything signed by a node can be
//! checked against its id with no lookup. Ids are shown as lowercase base32
//! (RFC 4648, no padding: 52 characters), which survives copy and paste, file
//! names and URLs; [`NodeId::short`] gives the first eight characters for
//! display, enough to tell apart the nodes of any network a person looks at.

use std::fmt;
use std::str::FromStr;

use data_encoding::BASE32_NOPAD;
use ed25519_dalek::Signer;
use rand::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};

/// Length in characters of [`NodeId::short`].
///
/// 8 base32 characters are 40 bits: two nodes of a million-node network share
/// a short id with a probability below one in a million.
pub const SHORT_ID_LEN: usize = 8;

/// Errors from parsing or checking identities and signatures.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
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

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

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
