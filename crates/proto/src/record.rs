//! Signed node records: how a node tells the network where to reach it.
//!
//! A [`NodeRecord`] names a node (its [`NodeId`]), the socket addresses it
//! listens on, its roles and an optional human name, under a sequence number
//! the node raises each time it re-issues the record. The node signs it with
//! its own key ([`SignedRecord`]), so a record can travel through seeds and
//! through HyParView's passive-view shuffles, relayed by anyone, and still be
//! checked against the id it names with no lookup: a relay can drop a record
//! but never forge or alter one. Where two records for one id meet, the higher
//! `seq` wins.
//!
//! The signature covers a domain-separated encoding
//! ([`RECORD_SIGNING_DOMAIN`] followed by the postcard encoding of the
//! record), so a record signature can never be replayed as the signature of
//! an envelope or of any other signed object, and vice versa.
//!
//! Every list and string in a record is bounded, and the bounds are checked
//! wherever a record is built, signed, decoded or deserialized inside another
//! message, so a record read from the wire never holds more than
//! [`MAX_RECORD_BYTES`] of data.

use std::fmt;
use std::marker::PhantomData;
use std::net::SocketAddr;

use serde::de::{Error as _, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::identity::{NodeId, SecretKey, Signature};

/// Most addresses a record may list.
///
/// A host has a few interfaces and at most a couple of addresses per family
/// worth advertising; more would only feed dial attempts that fail.
pub const MAX_ADDRS: usize = 8;

/// Longest human name, in bytes of UTF-8.
///
/// Enough for a person's or host's name, short enough for one chat line.
pub const MAX_NAME_LEN: usize = 64;

/// Most roles a record may carry.
///
/// There is one role today; a little room lets a later version add some.
pub const MAX_ROLES: usize = 4;

/// Largest encoded [`SignedRecord`], in bytes.
///
/// The field bounds above give at most about 350 bytes; the cap is checked
/// on its own so that no future field can make records silently grow, and
/// so a seed's list reply holds a known number of records.
pub const MAX_RECORD_BYTES: usize = 512;

/// Prefix of the bytes a record signature covers; see the module docs.
pub const RECORD_SIGNING_DOMAIN: &[u8] = b"gossipnet-record-v1\0";

/// Errors from building, signing, decoding or verifying a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The record lists more than [`MAX_ADDRS`] addresses.
    #[error("too many addresses: {0} (at most {MAX_ADDRS})")]
    TooManyAddrs(usize),
    /// An address no peer could dial: port 0 or the unspecified IP.
    #[error("address {0} cannot be dialled")]
    BadAddr(SocketAddr),
    /// The record carries more than [`MAX_ROLES`] roles.
    #[error("too many roles: {0} (at most {MAX_ROLES})")]
    TooManyRoles(usize),
    /// The name is longer than [`MAX_NAME_LEN`] bytes.
    #[error("name too long: {0} bytes (at most {MAX_NAME_LEN})")]
    NameTooLong(usize),
    /// The name is empty or holds control characters.
    #[error("name is empty or has control characters")]
    BadName,
    /// The encoded record is larger than [`MAX_RECORD_BYTES`].
    #[error("record too large: {0} bytes (at most {MAX_RECORD_BYTES})")]
    TooLarge(usize),
    /// The record names a node other than the one whose key signs it.
    #[error("record id is not the signer's id")]
    WrongKey,
    /// The signature does not verify against the record's id.
    #[error("bad record signature")]
    BadSignature,
    /// The bytes are not an encoded signed record.
    #[error("malformed record")]
    Malformed,
    /// Bytes follow the encoded record.
    #[error("trailing bytes after record")]
    TrailingBytes,
}

/// A role a node plays besides being an ordinary member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Role {
    /// The node runs a seed registry (see [`crate::seed`]).
    Seed,
}

/// What a node says about itself: where to reach it and what it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// The node the record describes; only its key may sign the record.
    pub id: NodeId,
    /// Addresses the node accepts links on, best first. IPv6 flow info and
    /// scope ids are not carried (a scope id means nothing on another host):
    /// [`SignedRecord::sign`] clears them.
    #[serde(deserialize_with = "bounded_vec::<_, _, MAX_ADDRS>")]
    pub addrs: Vec<SocketAddr>,
    /// Raised each time the node re-issues its record; the higher one wins.
    pub seq: u64,
    /// Roles beyond plain membership.
    #[serde(deserialize_with = "bounded_vec::<_, _, MAX_ROLES>")]
    pub roles: Vec<Role>,
    /// An optional human name, for display only: names are not unique.
    pub name: Option<String>,
}

impl NodeRecord {
    /// Whether the node runs a seed registry.
    pub fn is_seed(&self) -> bool {
        self.roles.contains(&Role::Seed)
    }

    /// Checks the bounds every record must meet, so a node can check its own
    /// configuration before it signs.
    pub fn check(&self) -> Result<(), RecordError> {
        if self.addrs.len() > MAX_ADDRS {
            return Err(RecordError::TooManyAddrs(self.addrs.len()));
        }
        if let Some(addr) = self
            .addrs
            .iter()
            .find(|a| a.port() == 0 || a.ip().is_unspecified())
        {
            return Err(RecordError::BadAddr(*addr));
        }
        if self.roles.len() > MAX_ROLES {
            return Err(RecordError::TooManyRoles(self.roles.len()));
        }
        if let Some(name) = &self.name {
            if name.len() > MAX_NAME_LEN {
                return Err(RecordError::NameTooLong(name.len()));
            }
            // Control characters would let a name rewrite a chat terminal or
            // forge log lines; an empty name should be `None`.
            if name.is_empty() || name.chars().any(char::is_control) {
                return Err(RecordError::BadName);
            }
        }
        Ok(())
    }

    /// The bytes a signature covers.
    fn signing_bytes(&self) -> Vec<u8> {
        postcard::to_extend(self, RECORD_SIGNING_DOMAIN.to_vec())
            .expect("postcard encodes a record into a Vec without error")
    }
}

/// A [`NodeRecord`] signed by the key of the node it names.
///
/// Built only by [`SignedRecord::sign`] or by decoding, both of which check
/// the bounds; decoding does not check the signature (call
/// [`SignedRecord::verify`]), so a receiver can first drop records it does not
/// need at no cryptographic cost. It serializes as a plain struct, so it can be
/// embedded in other wire messages; deserializing checks the bounds there too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "UncheckedRecord")]
pub struct SignedRecord {
    record: NodeRecord,
    signature: Signature,
}

/// A signed record as read from the wire, before its bounds are checked.
#[derive(Serialize, Deserialize)]
struct UncheckedRecord {
    record: NodeRecord,
    signature: Signature,
}

impl TryFrom<UncheckedRecord> for SignedRecord {
    type Error = RecordError;

    fn try_from(raw: UncheckedRecord) -> Result<Self, RecordError> {
        let signed = SignedRecord {
            record: raw.record,
            signature: raw.signature,
        };
        signed.check()?;
        Ok(signed)
    }
}

impl SignedRecord {
    /// Signs `record` with `key`, which must be the key of `record.id`.
    ///
    /// IPv6 flow info and scope ids are cleared first, as the encoding does
    /// not carry them and the signed record must read back as it was signed.
    pub fn sign(key: &SecretKey, mut record: NodeRecord) -> Result<Self, RecordError> {
        if record.id != key.node_id() {
            return Err(RecordError::WrongKey);
        }
        for addr in &mut record.addrs {
            if let SocketAddr::V6(v6) = addr {
                v6.set_flowinfo(0);
                v6.set_scope_id(0);
            }
        }
        record.check()?;
        let signature = key.sign(&record.signing_bytes());
        let signed = SignedRecord { record, signature };
        signed.check()?;
        Ok(signed)
    }

    /// Checks the bounds and that the record is signed by the node it names.
    pub fn verify(&self) -> Result<(), RecordError> {
        self.check()?;
        self.record
            .id
            .verify(&self.record.signing_bytes(), &self.signature)
            .map_err(|_| RecordError::BadSignature)
    }

    /// The record.
    pub fn record(&self) -> &NodeRecord {
        &self.record
    }

    /// The id of the node the record names (and that signed it).
    pub fn id(&self) -> NodeId {
        self.record.id
    }

    /// The signature.
    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    /// The postcard encoding, at most [`MAX_RECORD_BYTES`] long.
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("postcard encodes a record into a Vec without error")
    }

    /// Decodes one record from exactly `bytes`, checking the bounds but not
    /// the signature.
    pub fn decode(bytes: &[u8]) -> Result<Self, RecordError> {
        // Refuse oversized input before parsing, so nothing it claims can
        // make the decoder allocate more than the cap.
        if bytes.len() > MAX_RECORD_BYTES {
            return Err(RecordError::TooLarge(bytes.len()));
        }
        let (raw, rest) = postcard::take_from_bytes::<UncheckedRecord>(bytes)
            .map_err(|_| RecordError::Malformed)?;
        if !rest.is_empty() {
            return Err(RecordError::TrailingBytes);
        }
        SignedRecord::try_from(raw)
    }

    /// The encoded size.
    pub fn encoded_len(&self) -> usize {
        postcard::experimental::serialized_size(self)
            .expect("postcard sizes a record without error")
    }

    fn check(&self) -> Result<(), RecordError> {
        self.record.check()?;
        let len = self.encoded_len();
        if len > MAX_RECORD_BYTES {
            return Err(RecordError::TooLarge(len));
        }
        Ok(())
    }
}

/// Deserializes a `Vec` of at most `N` items, for use with
/// `#[serde(deserialize_with = "...")]` on any list read from the wire.
///
/// Serde's own `Vec` trusts the length prefix to size its first allocation
/// (up to about a megabyte); this refuses a prefix over `N` before allocating
/// and never holds more than `N` items.
pub(crate) fn bounded_vec<'de, D, T, const N: usize>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct BoundedVisitor<T, const N: usize>(PhantomData<T>);

    impl<'de, T: Deserialize<'de>, const N: usize> Visitor<'de> for BoundedVisitor<T, N> {
        type Value = Vec<T>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "a list of at most {N} items")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let hint = seq.size_hint().unwrap_or(0);
            if hint > N {
                return Err(A::Error::invalid_length(hint, &self));
            }
            let mut items = Vec::with_capacity(hint);
            while let Some(item) = seq.next_element()? {
                if items.len() == N {
                    return Err(A::Error::invalid_length(N + 1, &self));
                }
                items.push(item);
            }
            Ok(items)
        }
    }

    d.deserialize_seq(BoundedVisitor::<T, N>(PhantomData))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV6};

    /// A change a test makes to a value.
    type Tamper<T> = Box<dyn Fn(&mut T)>;

    fn key(seed: u64) -> SecretKey {
        SecretKey::generate(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed))
    }

    fn record_for(key: &SecretKey) -> NodeRecord {
        NodeRecord {
            id: key.node_id(),
            addrs: vec![
                SocketAddr::from(([192, 0, 2, 1], 8001)),
                SocketAddr::from((Ipv6Addr::LOCALHOST, 8001)),
            ],
            seq: 3,
            roles: vec![Role::Seed],
            name: Some("alice".into()),
        }
    }

    /// Encodes a record with any contents and signature, bypassing `sign`,
    /// to feed the decoder what a hostile peer could send.
    fn encode_unchecked(record: NodeRecord, signature: Signature) -> Vec<u8> {
        postcard::to_allocvec(&UncheckedRecord { record, signature }).unwrap()
    }

    #[test]
    fn signed_record_verifies() {
        let k = key(1);
        let signed = SignedRecord::sign(&k, record_for(&k)).unwrap();
        assert_eq!(signed.verify(), Ok(()));
        assert_eq!(signed.id(), k.node_id());
        assert_eq!(signed.record(), &record_for(&k));
        assert!(signed.record().is_seed());
    }

    #[test]
    fn is_seed_follows_roles() {
        let k = key(1);
        let mut r = record_for(&k);
        assert!(r.is_seed());
        r.roles.clear();
        assert!(!r.is_seed());
    }

    #[test]
    fn signing_with_another_key_is_refused() {
        let a = key(1);
        let b = key(2);
        assert_eq!(
            SignedRecord::sign(&b, record_for(&a)),
            Err(RecordError::WrongKey)
        );
    }

    #[test]
    fn tampering_with_any_field_breaks_the_signature() {
        let k = key(1);
        let other = key(2).node_id();
        let good = SignedRecord::sign(&k, record_for(&k)).unwrap();
        let tampers: Vec<Tamper<SignedRecord>> = vec![
            Box::new(move |s| s.record.id = other),
            Box::new(|s| s.record.addrs[0] = SocketAddr::from(([192, 0, 2, 66], 8001))),
            Box::new(|s| {
                s.record.addrs.pop();
            }),
            Box::new(|s| s.record.seq += 1),
            Box::new(|s| s.record.roles.clear()),
            Box::new(|s| s.record.name = Some("mallory".into())),
            Box::new(|s| s.record.name = None),
            Box::new(|s| s.signature.0[0] ^= 1),
            Box::new(|s| s.signature.0[63] ^= 0x80),
        ];
        for (i, tamper) in tampers.iter().enumerate() {
            let mut bad = good.clone();
            tamper(&mut bad);
            assert_eq!(bad.verify(), Err(RecordError::BadSignature), "tamper {i}");
            // The tampered record also fails after a trip through the codec.
            let decoded = SignedRecord::decode(&bad.encode()).unwrap();
            assert_eq!(
                decoded.verify(),
                Err(RecordError::BadSignature),
                "tamper {i}"
            );
        }
    }

    #[test]
    fn signature_is_domain_separated() {
        let k = key(1);
        let record = record_for(&k);
        // A signature over the bare encoding, as another protocol might make.
        let bare = k.sign(&postcard::to_allocvec(&record).unwrap());
        let forged = SignedRecord {
            record,
            signature: bare,
        };
        assert_eq!(forged.verify(), Err(RecordError::BadSignature));
        assert!(RecordError::BadSignature.to_string().starts_with("bad"));
    }

    #[test]
    fn codec_round_trips() {
        let k = key(1);
        let mut record = record_for(&k);
        record.seq = u64::MAX;
        record.name = None;
        let signed = SignedRecord::sign(&k, record).unwrap();
        let bytes = signed.encode();
        assert_eq!(bytes.len(), signed.encoded_len());
        let back = SignedRecord::decode(&bytes).unwrap();
        assert_eq!(back, signed);
        assert_eq!(back.verify(), Ok(()));
    }

    #[test]
    fn ipv6_scope_is_cleared_so_the_record_round_trips() {
        let k = key(1);
        let mut record = record_for(&k);
        record.addrs = vec![SocketAddr::V6(SocketAddrV6::new(
            "fe80::1".parse().unwrap(),
            8001,
            7,
            3,
        ))];
        let signed = SignedRecord::sign(&k, record).unwrap();
        let SocketAddr::V6(v6) = signed.record().addrs[0] else {
            panic!("address family changed");
        };
        assert_eq!((v6.flowinfo(), v6.scope_id()), (0, 0));
        let back = SignedRecord::decode(&signed.encode()).unwrap();
        assert_eq!(back, signed);
        assert_eq!(back.verify(), Ok(()));
    }

    #[test]
    fn largest_record_fits_the_cap() {
        let k = key(1);
        let record = NodeRecord {
            id: k.node_id(),
            addrs: (0..MAX_ADDRS as u16)
                .map(|i| {
                    SocketAddr::from((Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, i + 1), 65535))
                })
                .collect(),
            seq: u64::MAX,
            roles: vec![Role::Seed; MAX_ROLES],
            name: Some("é".repeat(MAX_NAME_LEN / 2)),
        };
        let signed = SignedRecord::sign(&k, record).unwrap();
        assert!(signed.encode().len() <= MAX_RECORD_BYTES);
        assert_eq!(signed.verify(), Ok(()));
    }

    #[test]
    fn bounds_are_refused_when_signing_and_decoding() {
        let k = key(1);
        let cases: Vec<(Tamper<NodeRecord>, RecordError)> = vec![
            (
                Box::new(|r| r.addrs = vec![SocketAddr::from(([192, 0, 2, 1], 1)); MAX_ADDRS + 1]),
                RecordError::TooManyAddrs(MAX_ADDRS + 1),
            ),
            (
                Box::new(|r| r.addrs = vec![SocketAddr::from(([192, 0, 2, 1], 0))]),
                RecordError::BadAddr(SocketAddr::from(([192, 0, 2, 1], 0))),
            ),
            (
                Box::new(|r| r.addrs = vec![SocketAddr::from((Ipv4Addr::UNSPECIFIED, 80))]),
                RecordError::BadAddr(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 80))),
            ),
            (
                Box::new(|r| r.roles = vec![Role::Seed; MAX_ROLES + 1]),
                RecordError::TooManyRoles(MAX_ROLES + 1),
            ),
            (
                Box::new(|r| r.name = Some("x".repeat(MAX_NAME_LEN + 1))),
                RecordError::NameTooLong(MAX_NAME_LEN + 1),
            ),
            (
                // 33 two-byte characters: within 64 characters, over 64 bytes.
                Box::new(|r| r.name = Some("é".repeat(MAX_NAME_LEN / 2 + 1))),
                RecordError::NameTooLong(MAX_NAME_LEN + 2),
            ),
            (
                Box::new(|r| r.name = Some("bob\x1b[2J".into())),
                RecordError::BadName,
            ),
            (
                Box::new(|r| r.name = Some("line\nbreak".into())),
                RecordError::BadName,
            ),
            (
                Box::new(|r| r.name = Some(String::new())),
                RecordError::BadName,
            ),
        ];
        for (i, (mutate, err)) in cases.iter().enumerate() {
            let mut record = record_for(&k);
            mutate(&mut record);
            assert_eq!(record.check(), Err(err.clone()), "case {i}");
            assert_eq!(
                SignedRecord::sign(&k, record.clone()),
                Err(err.clone()),
                "case {i}"
            );
            let signature = k.sign(&record.signing_bytes());
            let bytes = encode_unchecked(record, signature);
            assert!(SignedRecord::decode(&bytes).is_err(), "case {i}");
        }
    }

    #[test]
    fn name_at_the_limit_is_accepted() {
        let k = key(1);
        let mut record = record_for(&k);
        record.name = Some("é".repeat(MAX_NAME_LEN / 2));
        assert_eq!(record.check(), Ok(()));
        record.name = Some("Zoë's laptop 🚀".into());
        assert_eq!(record.check(), Ok(()));
    }

    #[test]
    fn trailing_and_truncated_bytes_are_refused() {
        let k = key(1);
        let mut bytes = SignedRecord::sign(&k, record_for(&k)).unwrap().encode();
        bytes.push(0);
        assert_eq!(
            SignedRecord::decode(&bytes),
            Err(RecordError::TrailingBytes)
        );
        bytes.pop();
        for len in 0..bytes.len() {
            assert!(SignedRecord::decode(&bytes[..len]).is_err(), "prefix {len}");
        }
    }

    #[test]
    fn oversized_input_is_refused_before_parsing() {
        let bytes = vec![0u8; MAX_RECORD_BYTES + 1];
        assert_eq!(
            SignedRecord::decode(&bytes),
            Err(RecordError::TooLarge(MAX_RECORD_BYTES + 1))
        );
    }

    #[test]
    fn a_huge_length_prefix_is_refused() {
        let k = key(1);
        let mut bytes = k.node_id().as_bytes().to_vec();
        // A varint claiming 2^32 addresses.
        bytes.extend_from_slice(&[0x80, 0x80, 0x80, 0x80, 0x10]);
        assert_eq!(SignedRecord::decode(&bytes), Err(RecordError::Malformed));
    }

    #[test]
    fn embedded_records_are_bounds_checked() {
        let k = key(1);
        let mut record = record_for(&k);
        record.name = Some("tab\there".into());
        let signature = k.sign(&record.signing_bytes());
        let bytes = postcard::to_allocvec(&(7u8, UncheckedRecord { record, signature })).unwrap();
        assert!(postcard::from_bytes::<(u8, SignedRecord)>(&bytes).is_err());
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            if let Ok(signed) = SignedRecord::decode(&bytes) {
                prop_assert!(signed.record().check().is_ok());
                let _ = signed.verify();
            }
        }

        #[test]
        fn decoding_mutated_records_never_panics(
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)
        ) {
            let k = key(1);
            let mut bytes = SignedRecord::sign(&k, record_for(&k)).unwrap().encode();
            for (at, val) in flips {
                let at = at % bytes.len();
                bytes[at] = val;
            }
            if let Ok(signed) = SignedRecord::decode(&bytes) {
                let _ = signed.verify();
            }
        }

        #[test]
        fn any_valid_record_round_trips(
            seq in any::<u64>(),
            ports in proptest::collection::vec(1u16.., 0..=MAX_ADDRS),
            seed in any::<bool>(),
            name in proptest::option::of("[a-zA-Z0-9 _.-]{1,64}"),
        ) {
            let k = key(1);
            let record = NodeRecord {
                id: k.node_id(),
                addrs: ports.iter().map(|p| SocketAddr::from(([10, 0, 0, 1], *p))).collect(),
                seq,
                roles: if seed { vec![Role::Seed] } else { vec![] },
                name,
            };
            let signed = SignedRecord::sign(&k, record).unwrap();
            let back = SignedRecord::decode(&signed.encode()).unwrap();
            prop_assert_eq!(&back, &signed);
            prop_assert_eq!(back.verify(), Ok(()));
        }
    }
}
