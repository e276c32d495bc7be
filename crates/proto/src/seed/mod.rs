//! The seed registry: the list of live nodes a seed keeps, as a sans-IO
//! state machine.
//!
//! A seed is a well-known node that newcomers ask for a first set of peers,
//! much as a BitTorrent tracker is asked for a swarm. Every node registers its
//! [`SignedRecord`] with a few seeds and re-registers every
//! [`REFRESH_INTERVAL`]; a seed keeps a record until it goes
//! [`SeedConfig::record_ttl`] without a refresh, so a node that dies without a
//! word drops out on its own. Any node may ask for a list; the reply is a
//! uniform random sample of the live records, so load spreads over the
//! network and no node learns the whole registry by asking once.
//!
//! The sender of every message is the node at the other end of an
//! authenticated link (the runtime passes it as `from`), which is why a node
//! may register only its own record, and a `Leave` removes only its sender.
//! A report that some *other* node is dead is only a hint: a liar could
//! otherwise empty the registry. Only registered nodes may report, each at
//! most [`SeedConfig::max_reports`] times per [`SeedConfig::report_window`].
//! The registry asks the runtime to probe the reported node
//! ([`SeedOutput::Probe`]; a runtime with a link open to it answers at once
//! that it is alive) and removes it only if that probe fails or gets no
//! answer within [`SeedConfig::probe_timeout`].
//!
//! Everything is bounded: the number of records, the probes in flight, the
//! size of a list reply. Outputs depend only on the inputs, `now` and the
//! caller's RNG (ordered maps, no hash iteration), so the simulator replays a
//! seed exactly.

//!
//! The registry ([`SeedRegistry`]) is what a seed runs; the client
//! ([`SeedClient`]) is what every other node runs to stay registered with its
//! seeds and to ask them for peers. Both are sans-IO, so the simulator can
//! drive a client and a registry against each other.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::identity::NodeId;
use crate::record::{bounded_vec, SignedRecord};

mod client;
mod registry;

pub use client::{
    ClientConfig, ClientMode, ClientOutput, DialResult, SeedClient, SeedContact,
    DEFAULT_REDIAL_MAX, DEFAULT_REDIAL_MIN,
};
pub use registry::{RefuseReason, RemoveReason, SeedConfig, SeedInput, SeedOutput, SeedRegistry};

/// How often a node re-registers with each seed.
///
/// Frequent enough that a seed's list is at most a couple of minutes stale,
/// rare enough that 100,000 nodes cost a seed about 3,000 registrations a
/// second at most.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(30);

/// Default [`SeedConfig::record_ttl`]: three refresh intervals, so one or two
/// lost refreshes do not drop a live node, and three do.
pub const DEFAULT_RECORD_TTL: Duration = Duration::from_secs(3 * REFRESH_INTERVAL.as_secs());

/// Default [`SeedConfig::max_records`]: a large network, within about 60 MB
/// even if every record is of the largest size.
pub const DEFAULT_MAX_RECORDS: usize = 100_000;

/// Default [`SeedConfig::sample_size`]: enough to fill a HyParView passive
/// view in one reply.
pub const DEFAULT_SAMPLE_SIZE: usize = 32;

/// Default [`SeedConfig::max_sample`]: the most the wire allows.
pub const DEFAULT_MAX_SAMPLE: usize = MAX_LIST_LEN;

/// Default [`SeedConfig::probe_timeout`]: a TCP connect and a Noise handshake
/// across the world take well under this, so silence means unreachable. A
/// runtime whose dialler may take longer (several addresses, each with its
/// own connect and handshake timeouts) sets a longer one, so that a probe
/// still dialling is never taken for a failed one.
pub const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Default [`SeedConfig::max_reports`]: a node loses a few neighbours at
/// once when part of the network fails, but not dozens a minute.
pub const DEFAULT_MAX_REPORTS: u32 = 8;

/// Default [`SeedConfig::report_window`].
pub const DEFAULT_REPORT_WINDOW: Duration = Duration::from_secs(60);

/// Default [`SeedConfig::max_pending_probes`]: dials a seed will have in
/// flight for dead reports, so a flood of reports costs it little.
pub const DEFAULT_MAX_PENDING_PROBES: usize = 64;

/// Most records a [`SeedMessage::List`] may carry.
///
/// Several times what a node needs to join; bounds what a reply can make the
/// receiver hold.
pub const MAX_LIST_LEN: usize = 256;

/// Largest encoded [`SeedMessage`].
///
/// At least 128 records of the largest size, and in practice all
/// [`MAX_LIST_LEN`]; a seed answers thousands of nodes, so small replies
/// keep its upload bounded. The registry trims its replies to fit.
pub const MAX_SEED_MESSAGE_BYTES: usize = 64 * 1024;

/// Bytes of a [`SeedMessage::List`] that are not records: the variant tag
/// and the list length, two varints of at most 2 bytes here, with margin.
pub(crate) const LIST_HEADER_BYTES: usize = 8;

/// Longest duration the registry adds to an `Instant`.
///
/// Beyond any sensible TTL or timeout, and far enough from the end of the
/// `Instant` range that a misconfigured duration cannot make it overflow.
pub(crate) const MAX_CONFIG_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// Errors from [`SeedMessage::decode`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SeedError {
    /// The message is larger than [`MAX_SEED_MESSAGE_BYTES`].
    #[error("seed message too large: {0} bytes (at most {MAX_SEED_MESSAGE_BYTES})")]
    TooLarge(usize),
    /// The bytes are not a seed message, or a list or record in it is over
    /// its bound.
    #[error("malformed seed message")]
    Malformed,
    /// Bytes follow the encoded message.
    #[error("trailing bytes after seed message")]
    TrailingBytes,
}

/// The seed protocol: what nodes and seeds say to each other.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SeedMessage {
    /// Node to seed: keep my record (sent again every [`REFRESH_INTERVAL`]).
    Register(SignedRecord),
    /// Seed to node: registered; refresh well within `ttl_secs`.
    Registered {
        /// The seed's record TTL, in seconds.
        ttl_secs: u32,
    },
    /// Node to seed: send me a sample of live records.
    ListRequest {
        /// How many records; 0 leaves it to the seed.
        max: u16,
    },
    /// Seed to node: a random sample of live records, the requester's own
    /// excluded. Records are bound-checked on decoding, not verified.
    List(#[serde(deserialize_with = "bounded_vec::<_, _, MAX_LIST_LEN>")] Vec<SignedRecord>),
    /// Node to seed: I could not reach this node.
    DeadReport(NodeId),
    /// Node to seed: I am leaving; forget my record.
    Leave,
}

impl SeedMessage {
    /// The postcard encoding.
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self)
            .expect("postcard encodes a seed message into a Vec without error")
    }

    /// Decodes one message from exactly `bytes`, checking every bound inside
    /// (record signatures are left to the receiver).
    pub fn decode(bytes: &[u8]) -> Result<Self, SeedError> {
        // Refuse oversized input before parsing, so nothing it claims can
        // make the decoder allocate more than the cap.
        if bytes.len() > MAX_SEED_MESSAGE_BYTES {
            return Err(SeedError::TooLarge(bytes.len()));
        }
        let (msg, rest) =
            postcard::take_from_bytes::<SeedMessage>(bytes).map_err(|_| SeedError::Malformed)?;
        if !rest.is_empty() {
            return Err(SeedError::TrailingBytes);
        }
        Ok(msg)
    }
}

#[cfg(test)]
mod tests;
