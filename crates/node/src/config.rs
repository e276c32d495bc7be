//! What a node is told at start: who it is, which network it belongs to,
//! where to listen, whom to contact, and the limits it enforces.
//!
//! Every limit here bounds something a remote peer could otherwise make the
//! node spend (links, handshakes, queue memory); each has a default that
//! serves a laptop in a network of thousands.
//!
//! The module is private. [`NodeConfig`] is the builder's state, not a
//! second way in: a node is configured through
//! [`NodeBuilder`](crate::NodeBuilder). [`Limits`] and the defaults an
//! embedder may want to name are re-exported from the crate root.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use gossipnet_proto::{NodeId, SecretKey};

use crate::transport::LinkConfig;

/// The network id nodes use when none is configured.
pub const DEFAULT_NETWORK_ID: &str = "gossipnet";

/// The first port a node tries when none is given; the next
/// [`DEFAULT_PORT_RANGE`] - 1 ports are tried after it, so several nodes with
/// default settings can share one machine (and find each other there).
pub const DEFAULT_PORT: u16 = 7465;

/// How many ports, from [`DEFAULT_PORT`], make up the default range.
pub const DEFAULT_PORT_RANGE: u16 = 16;

/// Limits a node enforces on what peers can make it hold.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Most inbound links at once. HyParView needs a handful; the rest are
    /// short-lived (shuffle replies, probes), so 128 leaves ample room while
    /// bounding what a flood of dialers can take.
    pub max_inbound: usize,
    /// Most inbound links from one IP address, so one host cannot take every
    /// slot. Loopback is exempt: a machine running many nodes of its own
    /// (a test network) links them all over 127.0.0.1.
    pub max_inbound_per_ip: usize,
    /// Most handshakes in progress at once: each costs key agreement, so a
    /// burst of half-open connections is refused rather than queued.
    pub max_handshakes: usize,
    /// A handshake not finished by then is dropped (a peer that stalls).
    pub handshake_timeout: Duration,
    /// Messages queued for one link and not yet written. A sender never
    /// waits for room: a link whose queue is full is cut.
    pub link_queue: usize,
    /// Bytes queued for one link and not yet written. Over it, the peer is
    /// not reading and its link is cut at once, so one stalled peer costs
    /// at most this much memory and never the node's time.
    pub link_queue_bytes: usize,
    /// A write to a link that makes no progress for this long is given up,
    /// and the link closed with its queue dropped (also the socket's
    /// `TCP_USER_TIMEOUT`).
    pub slow_link_timeout: Duration,
    /// Bytes of answers (crawl status replies and the like) one link may
    /// draw at once: the token bucket's depth.
    pub reply_burst_bytes: usize,
    /// Bytes of answers per second one link earns back: the bucket's rate.
    /// Requests past it are dropped, so small requests cannot buy an
    /// unbounded stream of large replies.
    pub reply_bytes_per_sec: usize,
}

/// Inbound links a seed takes by default: every node of the network keeps
/// registering with it, so it needs a slot per node, not per neighbour.
pub(crate) const SEED_MAX_INBOUND: usize = 4096;

/// Messages one link may queue: room for a large burst of small messages
/// (Plumtree's lazy pushes come in runs), while the byte budget below is
/// the bound that matters for memory.
pub(crate) const DEFAULT_LINK_QUEUE: usize = 4096;

/// Bytes one link may queue: 8 MiB holds well over a hundred broadcasts of
/// the largest size, so a burst to a healthy peer fits, while a peer that
/// stops reading holds no more than that of the node's memory.
pub(crate) const DEFAULT_LINK_QUEUE_BYTES: usize = 8 << 20;

/// How long a write may make no progress: far past any round trip or a
/// congested link's stall, short enough that a peer that stopped reading
/// frees its socket and queue within seconds.
pub(crate) const DEFAULT_SLOW_LINK_TIMEOUT: Duration = Duration::from_secs(15);

/// Reply bytes a link may draw at once: a few status replies of a seed
/// (whose registry sample is the largest answer), so a crawl that asks
/// again is served.
pub(crate) const DEFAULT_REPLY_BURST_BYTES: usize = 256 << 10;

/// Reply bytes a link earns back each second: a crawl asks each node once,
/// so an honest peer never nears it, while a flood of requests buys at
/// most this much upload per link.
pub(crate) const DEFAULT_REPLY_BYTES_PER_SEC: usize = 64 << 10;

impl Limits {
    /// The limits of a seed: room for an inbound link from every node of a
    /// network of thousands (each keeps registering with its seeds), the
    /// rest as for any node.
    pub fn for_seed() -> Self {
        Self {
            max_inbound: SEED_MAX_INBOUND,
            ..Self::default()
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_inbound: 128,
            max_inbound_per_ip: 16,
            max_handshakes: 32,
            handshake_timeout: Duration::from_secs(10),
            link_queue: DEFAULT_LINK_QUEUE,
            link_queue_bytes: DEFAULT_LINK_QUEUE_BYTES,
            slow_link_timeout: DEFAULT_SLOW_LINK_TIMEOUT,
            reply_burst_bytes: DEFAULT_REPLY_BURST_BYTES,
            reply_bytes_per_sec: DEFAULT_REPLY_BYTES_PER_SEC,
        }
    }
}

/// Everything a node needs to start.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The node's ed25519 secret key: its public half is the node's id,
    /// which every link proves to the peer.
    pub secret: SecretKey,
    /// Only nodes with the same network id link with each other.
    pub network_id: String,
    /// Pre-shared key of a private network.
    pub psk: Option<[u8; 32]>,
    /// Where to listen. Port 0 picks a free port.
    pub listen: SocketAddr,
    /// Addresses to publish in the node's record; empty: derived from
    /// `listen` (loopback when listening on every interface).
    pub advertise: Vec<SocketAddr>,
    /// Peers to join through, as `host:port`.
    pub peers: Vec<String>,
    /// Seed nodes, as `host:port`.
    pub seeds: Vec<String>,
    /// A human name, shown beside the id.
    pub name: Option<String>,
    /// Run as a seed: keep the registry of live nodes instead of joining the
    /// overlay.
    pub seed_role: bool,
    /// The data directory (identity, address book); `None` keeps nothing.
    pub data_dir: Option<PathBuf>,
    /// The data directory, opened once by the builder (it read the identity
    /// from it) and handed on, so the node does not open it again.
    pub(crate) opened_dir: Option<crate::DataDir>,
    /// Admin keys whose signed shutdown commands this node obeys.
    pub admin_keys: Vec<NodeId>,
    /// LAN discovery: announce and browse by multicast DNS, and probe the
    /// default port range on this machine while the node has no neighbour.
    pub discovery: bool,
    /// What peers may make the node hold: links, handshakes, queued
    /// messages; [`Limits::for_seed`] for a seed.
    pub limits: Limits,
    /// The protocol's tunables.
    pub proto: gossipnet_proto::Config,
}

impl NodeConfig {
    /// A configuration with defaults: network [`DEFAULT_NETWORK_ID`],
    /// listening on 127.0.0.1 on a free port, no peers.
    pub fn new(secret: SecretKey) -> Self {
        Self {
            secret,
            network_id: DEFAULT_NETWORK_ID.to_string(),
            psk: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            advertise: Vec::new(),
            peers: Vec::new(),
            seeds: Vec::new(),
            name: None,
            seed_role: false,
            data_dir: None,
            opened_dir: None,
            admin_keys: Vec::new(),
            discovery: true,
            limits: Limits::default(),
            proto: gossipnet_proto::Config::default(),
        }
    }

    /// How this node's links present it: its identity, its network and
    /// key, and its handshake timeout. The one place a [`LinkConfig`] is
    /// derived from a node's config, so the links the node serves and the
    /// ones it dials (a crawl swaps in a throwaway key) cannot drift apart.
    pub(crate) fn link_config(&self) -> LinkConfig {
        LinkConfig {
            secret: self.secret.clone(),
            network_id: self.network_id.clone(),
            psk: self.psk,
            handshake_timeout: self.limits.handshake_timeout,
        }
    }
}
