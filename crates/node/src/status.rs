//! A node's report on itself: the [`Status`] that
//! [`Node::status`](crate::Node::status) returns and the control API
//! serves as JSON at `/api/status` (docs/API.md is the contract for its
//! shape).

use std::net::SocketAddr;

use gossipnet_proto::NodeId;
use serde::Serialize;

/// One neighbour in a [`Status`].
#[derive(Debug, Clone, Serialize)]
pub struct PeerStatus {
    /// The neighbour's id.
    pub id: NodeId,
    /// The address of the link to it (`None` while no link is open).
    pub addr: Option<SocketAddr>,
}

/// A node's view of itself.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// The node's id (the public half of its key).
    pub id: NodeId,
    /// The name shown beside the id, if it has one.
    pub name: Option<String>,
    /// The network it belongs to.
    pub network_id: String,
    /// Where it listens.
    pub listen: SocketAddr,
    /// The addresses in its record.
    pub advertise: Vec<SocketAddr>,
    /// Seconds since the node started.
    pub uptime_s: u64,
    /// "node" (in the overlay) or "seed" (keeps the registry).
    pub role: &'static str,
    /// The neighbours (HyParView's active view): the peers messages are
    /// exchanged with.
    pub active: Vec<PeerStatus>,
    /// Peers known and kept in reserve (HyParView's passive view), to
    /// replace a neighbour that leaves.
    pub passive: Vec<NodeId>,
    /// Links established now, to neighbours and to other peers (seeds,
    /// peers being tried).
    pub links: usize,
    /// Seeds in the config.
    pub seeds_configured: usize,
    /// Seeds this node has a link to now.
    pub seeds_reachable: usize,
    /// Records in the registry (seeds only).
    pub registry_size: Option<usize>,
    /// Messages this node broadcast.
    pub broadcast: u64,
    /// Messages delivered here.
    pub delivered: u64,
    /// Full-message sends (forwarded, originated, graft answers).
    pub forwarded: u64,
    /// Duplicate copies received.
    pub duplicates: u64,
    /// Gossip estimate of the network size.
    pub size_estimate: Option<f64>,
    /// Links that failed their handshake.
    pub handshake_failures: u64,
    /// Bytes queued to links.
    pub bytes_sent: u64,
    /// Bytes of messages read from links.
    pub bytes_received: u64,
    /// Messages queued to links.
    pub messages_sent: u64,
    /// Messages read from links.
    pub messages_received: u64,
    /// An admin's shutdown command was obeyed; the node is about to leave.
    pub shutting_down: bool,
}
