//! The status query that crawls ask of every node: who are you, and who are
//! your neighbours?
//!
//! A crawler (see the node crate) dials each node, sends
//! [`Query::Status`] and reads one [`Query::StatusReply`]. The reply carries
//! the node's own signed record (so its name and addresses are its own
//! word, not a neighbour's), its active view and the seeds it is linked to,
//! each with the addresses to dial them at, so the crawl can go on from
//! there. A seed adds part of its registry, which lets a crawl find nodes
//! that the overlay itself does not reach (another component).
//!
//! Everything in a reply is bounded; [`Query::check`] says whether a decoded
//! query keeps to the bounds.

use std::net::SocketAddr;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::record::{MAX_ADDRS, MAX_RECORD_BYTES};
use crate::NodeId;

/// Most neighbours a reply lists: far above any active view, so an honest
/// node never hits it.
pub const MAX_NEIGHBORS: usize = 64;
/// Most seeds a reply lists.
pub const MAX_SEEDS: usize = 16;
/// Most registry entries a seed's reply lists: enough to find the other
/// components of a broken network, small enough for one frame
/// (256 entries of at most ~300 bytes).
pub const MAX_REGISTRY: usize = 256;

/// A peer named in a reply, with where to reach it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerRef {
    /// Its id.
    pub id: NodeId,
    /// Addresses to dial it at (from its record, or the link we have to it).
    pub addrs: Vec<SocketAddr>,
}

/// What a node says of itself in a [`Query::StatusReply`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Its encoded signed record.
    pub record: Bytes,
    /// Seconds since it started.
    pub uptime_s: u64,
    /// Its gossip estimate of the network size, rounded (a whole number
    /// keeps the message `Eq` and is all the precision a crawl shows).
    pub size_estimate: Option<u64>,
    /// Its active view.
    pub neighbors: Vec<PeerRef>,
    /// The seeds it has a link to.
    pub seeds: Vec<PeerRef>,
    /// Seeds only: nodes in its registry.
    pub registry: Vec<PeerRef>,
}

/// A query and its answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Query {
    /// "Tell me your status"; the nonce comes back in the reply.
    Status {
        /// Echoed in the reply.
        nonce: u64,
    },
    /// The answer.
    StatusReply {
        /// The nonce of the query.
        nonce: u64,
        /// The node's status.
        info: NodeInfo,
    },
}

impl Query {
    /// Whether every list and size inside keeps to its bound.
    pub fn check(&self) -> bool {
        match self {
            Query::Status { .. } => true,
            Query::StatusReply { info, .. } => {
                let refs_ok = |refs: &[PeerRef], max: usize| {
                    refs.len() <= max && refs.iter().all(|r| r.addrs.len() <= MAX_ADDRS)
                };
                info.record.len() <= MAX_RECORD_BYTES
                    && refs_ok(&info.neighbors, MAX_NEIGHBORS)
                    && refs_ok(&info.seeds, MAX_SEEDS)
                    && refs_ok(&info.registry, MAX_REGISTRY)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{self, DecodeError, Message};

    fn peer(i: u8, addrs: usize) -> PeerRef {
        PeerRef {
            id: NodeId::from_bytes([i; 32]),
            addrs: (0..addrs)
                .map(|p| SocketAddr::from(([127, 0, 0, 1], 7000 + p as u16)))
                .collect(),
        }
    }

    fn reply(neighbors: usize, addrs: usize) -> Message {
        Message::Query(Query::StatusReply {
            nonce: 7,
            info: NodeInfo {
                record: Bytes::from_static(b"record"),
                uptime_s: 3,
                size_estimate: Some(20),
                neighbors: (0..neighbors).map(|i| peer(i as u8, addrs)).collect(),
                seeds: vec![peer(200, 1)],
                registry: Vec::new(),
            },
        })
    }

    #[test]
    fn a_reply_survives_the_wire() {
        let msg = reply(5, 2);
        assert_eq!(wire::decode(&wire::encode(&msg)), Ok(msg));
        let q = Message::Query(Query::Status { nonce: 9 });
        assert_eq!(wire::decode(&wire::encode(&q)), Ok(q));
    }

    #[test]
    fn replies_over_their_bounds_are_refused() {
        let too_many = reply(MAX_NEIGHBORS + 1, 1);
        assert_eq!(
            wire::decode(&wire::encode(&too_many)),
            Err(DecodeError::OverBound("query"))
        );
        let too_many_addrs = reply(1, MAX_ADDRS + 1);
        assert_eq!(
            wire::decode(&wire::encode(&too_many_addrs)),
            Err(DecodeError::OverBound("query"))
        );
        assert!(wire::decode(&wire::encode(&reply(MAX_NEIGHBORS, MAX_ADDRS))).is_ok());
    }
}
