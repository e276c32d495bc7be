//! gossipnet-node: the tokio runtime around the sans-IO protocol core, and
//! the API a Rust program embeds a node with.
//!
//! The public API:
//!
//! - [`Node`], started from a [`NodeConfig`] or a [`NodeBuilder`]: broadcast,
//!   direct messages, [`Status`], and the [`NodeEvent`]s a subscriber hears;
//! - [`NodeConfig`] and [`Limits`]: what a node is told at start, and what
//!   it lets peers make it hold, with the defaults [`DEFAULT_NETWORK_ID`],
//!   [`DEFAULT_PORT`] and [`DEFAULT_PORT_RANGE`];
//! - [`DataDir`], [`data_root`] and [`default_data_dir`]: where a node keeps
//!   its identity key and address book across runs;
//! - [`chat`]: the body of a chat message; [`crawl`]: the network as a
//!   crawl sees it; [`admin`]: signing a network-wide shutdown; [`time`]:
//!   the wall clock the node stamps messages with; `control` (feature
//!   `control-api`, on by default): the control API and dashboard, HTTP +
//!   JSON on loopback.
//!
//! Inside, private: `transport` (TCP links with a Noise handshake that
//! proves each peer's ed25519 identity, encrypted and framed), `store` (the
//! SQLite address book and message history, run on a thread of its own),
//! `discovery` (mDNS and local port probing) and the actor, one task per
//! node that drives [`gossipnet_proto::State`] and turns its output into
//! I/O.
//!
//! ```no_run
//! # async fn demo() -> Result<(), gossipnet_node::NodeError> {
//! use gossipnet_node::{Node, NodeConfig, NodeEvent};
//! use gossipnet_proto::SecretKey;
//!
//! let mut config = NodeConfig::new(SecretKey::generate(&mut rand::rngs::OsRng));
//! config.peers.push("127.0.0.1:7465".into());
//! let node = Node::spawn(config).await?;
//! let mut events = node.subscribe();
//! node.broadcast_text("hello").await?;
//! while let Ok(event) = events.recv().await {
//!     if let NodeEvent::Message(m) = event {
//!         println!("{} says {:?}", m.origin.short(), m.body);
//!     }
//! }
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod actor;
pub mod admin;
pub mod chat;
mod config;
#[cfg(feature = "control-api")]
pub mod control;
pub mod crawl;
mod discovery;
mod history;
mod store;
pub mod time;
mod transport;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use gossipnet_proto::envelope::Kind;
use gossipnet_proto::record::{NodeRecord, Role, SignedRecord};
use gossipnet_proto::{MessageId, NodeId, State};
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

pub use config::{Limits, NodeConfig, DEFAULT_NETWORK_ID, DEFAULT_PORT, DEFAULT_PORT_RANGE};
pub use store::{data_root, default_data_dir, write_private, DataDir, StoreError};

use actor::{Actor, ToActor};

/// Errors of the node runtime.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address the node was to listen on.
        addr: SocketAddr,
        /// What the OS said (the port is in use, say).
        source: std::io::Error,
    },
    /// The node's own record is invalid (a bad name or address).
    #[error("invalid node record: {0}")]
    Record(String),
    /// The data directory could not be used.
    #[error("data directory: {0}")]
    Store(String),
    /// A message could not be built (too large, say).
    #[error("cannot send message: {0}")]
    Message(String),
    /// A seed keeps the registry and does not broadcast.
    #[error("a seed node does not broadcast")]
    SeedCannotBroadcast,
    /// The node has stopped.
    #[error("the node has stopped")]
    Stopped,
    /// The control API asked for with [`NodeBuilder::control_api`] could
    /// not start.
    #[cfg(feature = "control-api")]
    #[error(transparent)]
    Control(#[from] control::ControlError),
}

/// A message delivered to this node.
#[derive(Debug, Clone)]
pub struct Received {
    /// The message's id (the hash of its signed envelope), the same on
    /// every node it reaches.
    pub id: MessageId,
    /// Who wrote and signed it.
    pub origin: NodeId,
    /// The origin's sequence number.
    pub seq: u64,
    /// When the origin sent it (its clock, Unix milliseconds).
    pub time_ms: u64,
    /// What kind of message, and so how to read the body (`Chat`: a
    /// [`chat::ChatBody`]).
    pub kind: Kind,
    /// The body as the origin signed it.
    pub body: Bytes,
    /// How many links it crossed from the origin to this node.
    pub hops: u16,
}

/// A direct message to this node, opened.
#[derive(Debug, Clone)]
pub struct DirectMessage {
    /// The message's id, as [`Node::send_direct`] returned it to the sender.
    pub id: MessageId,
    /// Who wrote and signed it.
    pub from: NodeId,
    /// The name the sender goes by.
    pub name: Option<String>,
    /// What the sender wrote, decrypted.
    pub text: String,
    /// When the sender sent it (its clock, Unix milliseconds).
    pub time_ms: u64,
}

/// What a subscriber hears.
#[derive(Debug, Clone)]
pub enum NodeEvent {
    /// A broadcast message arrived (once per message).
    Message(Received),
    /// A direct message to this node arrived.
    Direct(DirectMessage),
    /// A peer became a neighbour.
    NeighborUp(NodeId),
    /// A neighbour left.
    NeighborDown(NodeId),
}

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

/// A running node. Cheap to clone; every clone talks to the same node.
#[derive(Debug, Clone)]
pub struct Node {
    id: NodeId,
    local_addr: SocketAddr,
    name: Arc<RwLock<Option<String>>>,
    cmd_tx: mpsc::Sender<ToActor>,
    events: broadcast::Sender<NodeEvent>,
    stopped: watch::Receiver<bool>,
    /// The network a crawl dials into (its secret is replaced by a
    /// throwaway key for each crawl).
    crawl_link: Arc<transport::LinkConfig>,
    /// The control API served with the node, if it was asked for.
    #[cfg(feature = "control-api")]
    control: Option<Arc<control::ControlApiInfo>>,
}

impl Node {
    /// Binds the listener, opens the data directory, and starts the node.
    pub async fn spawn(config: NodeConfig) -> Result<Node, NodeError> {
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| NodeError::Bind {
                    addr: config.listen,
                    source,
                })?;
        Self::start(config, listener).await
    }

    /// Starts the node on a listening socket bound elsewhere (handed over
    /// by a supervisor's socket activation, say); `config.listen` is
    /// replaced by the socket's address.
    pub async fn spawn_on(
        mut config: NodeConfig,
        listener: std::net::TcpListener,
    ) -> Result<Node, NodeError> {
        let bind_error = |addr, source| NodeError::Bind { addr, source };
        let addr = listener
            .local_addr()
            .map_err(|e| bind_error(config.listen, e))?;
        config.listen = addr;
        listener
            .set_nonblocking(true)
            .map_err(|e| bind_error(addr, e))?;
        let listener = TcpListener::from_std(listener).map_err(|e| bind_error(addr, e))?;
        Self::start(config, listener).await
    }

    async fn start(mut config: NodeConfig, listener: TcpListener) -> Result<Node, NodeError> {
        let local_addr = listener.local_addr().map_err(|source| NodeError::Bind {
            addr: config.listen,
            source,
        })?;
        let id = config.secret.node_id();
        let advertise = if !config.advertise.is_empty() {
            config.advertise.clone()
        } else if local_addr.ip().is_unspecified() {
            interface_addrs(local_addr.port())
        } else {
            vec![local_addr]
        };
        let record = NodeRecord {
            id,
            addrs: advertise,
            seq: time::unix_ms(),
            roles: if config.seed_role {
                vec![Role::Seed]
            } else {
                Vec::new()
            },
            name: config.name.clone(),
        };
        let record = SignedRecord::sign(&config.secret, record)
            .map_err(|e| NodeError::Record(e.to_string()))?;
        let store = match &config.data_dir {
            Some(dir) => {
                let dir = store::DataDir::open(dir).map_err(|e| NodeError::Store(e.to_string()))?;
                Some(store::Store::open(&dir).map_err(|e| NodeError::Store(e.to_string()))?)
            }
            None => None,
        };
        // The real node verifies every envelope; the simulator may not.
        config.proto.verify_envelopes = true;
        let mut rng = StdRng::from_entropy();
        let proto_rng = StdRng::from_rng(&mut rng).map_err(|e| NodeError::Record(e.to_string()))?;
        let state = State::new(
            id,
            Bytes::from(record.encode()),
            config.proto.clone(),
            proto_rng,
        );
        let (cmd_tx, cmd_rx) = mpsc::channel(actor::COMMAND_QUEUE);
        let (events, _) = broadcast::channel(actor::EVENT_QUEUE);
        let (stopped_tx, stopped) = watch::channel(false);
        let name = config.name.clone();
        let crawl_link = Arc::new(config.link_config());
        let actor = Actor::new(
            config,
            record,
            local_addr,
            state,
            rng,
            cmd_rx,
            events.clone(),
            store,
        );
        tokio::spawn(async move {
            actor.run(listener).await;
            let _ = stopped_tx.send(true);
        });
        Ok(Node {
            id,
            local_addr,
            name: Arc::new(RwLock::new(name)),
            cmd_tx,
            events,
            stopped,
            crawl_link,
            #[cfg(feature = "control-api")]
            control: None,
        })
    }

    /// The node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// A builder with defaults: a fresh identity, the default network,
    /// listening on 127.0.0.1 on a free port.
    pub fn builder() -> NodeBuilder {
        NodeBuilder::default()
    }

    /// The node's name, if it has one.
    pub fn name(&self) -> Option<String> {
        self.name.read().ok().and_then(|n| n.clone())
    }

    /// Changes the name shown beside the node's id (in its record and in
    /// the chat messages it sends from now on).
    pub async fn set_name(&self, name: String) -> Result<(), NodeError> {
        let name = Some(name);
        let (reply, rx) = oneshot::channel();
        self.cmd_tx
            .send(ToActor::SetName {
                name: name.clone(),
                reply,
            })
            .await
            .map_err(|_| NodeError::Stopped)?;
        rx.await.map_err(|_| NodeError::Stopped)??;
        if let Ok(mut n) = self.name.write() {
            *n = name;
        }
        Ok(())
    }

    /// Sends a direct message to one node: encrypted so that only it can
    /// read it, signed so that it knows who sent it; over a direct link when
    /// one can be made, else relayed through the overlay.
    pub async fn send_direct(&self, to: NodeId, text: &str) -> Result<MessageId, NodeError> {
        let (reply, rx) = oneshot::channel();
        self.cmd_tx
            .send(ToActor::Direct {
                to,
                text: text.to_string(),
                reply,
            })
            .await
            .map_err(|_| NodeError::Stopped)?;
        rx.await.map_err(|_| NodeError::Stopped)?
    }

    /// The node's neighbours (its active view).
    pub async fn peers(&self) -> Result<Vec<PeerStatus>, NodeError> {
        Ok(self.status().await?.active)
    }

    /// The address the node listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Where the node's control API listens and its cookie, if the node
    /// was built with [`NodeBuilder::control_api`].
    #[cfg(feature = "control-api")]
    pub fn control_api(&self) -> Option<&control::ControlApiInfo> {
        self.control.as_deref()
    }

    /// Events from now on: delivered messages and neighbour changes. A
    /// subscriber that falls more than a few thousand events behind misses
    /// some and is told so by [`broadcast::error::RecvError::Lagged`].
    pub fn subscribe(&self) -> broadcast::Receiver<NodeEvent> {
        self.events.subscribe()
    }

    /// Signs and broadcasts a message to every node.
    pub async fn broadcast(&self, kind: Kind, body: Bytes) -> Result<MessageId, NodeError> {
        let (reply, rx) = oneshot::channel();
        self.cmd_tx
            .send(ToActor::Broadcast { kind, body, reply })
            .await
            .map_err(|_| NodeError::Stopped)?;
        rx.await.map_err(|_| NodeError::Stopped)?
    }

    /// Broadcasts a chat line, signed, with this node's name.
    pub async fn broadcast_text(&self, text: &str) -> Result<MessageId, NodeError> {
        let body = chat::ChatBody {
            name: self.name(),
            text: text.to_string(),
        };
        self.broadcast(Kind::Chat, Bytes::from(body.encode())).await
    }

    /// The node's status.
    pub async fn status(&self) -> Result<Status, NodeError> {
        let (reply, rx) = oneshot::channel();
        self.cmd_tx
            .send(ToActor::Status { reply })
            .await
            .map_err(|_| NodeError::Stopped)?;
        rx.await.map_err(|_| NodeError::Stopped)
    }

    /// Broadcasts an admin command that was signed elsewhere with an admin
    /// key (see [`admin::sign_shutdown`]). Every node, this one included,
    /// checks it against the admin keys of its config before it obeys. A
    /// command whose signature does not verify is refused here and never
    /// sent.
    pub async fn publish_admin(&self, command: Bytes) -> Result<MessageId, NodeError> {
        let (reply, rx) = oneshot::channel();
        self.cmd_tx
            .send(ToActor::Admin { command, reply })
            .await
            .map_err(|_| NodeError::Stopped)?;
        rx.await.map_err(|_| NodeError::Stopped)?
    }

    /// Crawls the whole network from this node (see [`crawl`]): every node
    /// reachable through the overlay, its neighbours and its seeds.
    /// `progress` hears how far the crawl has got after each answer.
    pub async fn crawl(&self, progress: impl FnMut(crawl::Progress)) -> crawl::Topology {
        let mut cfg = (*self.crawl_link).clone();
        // A throwaway identity: the nodes crawled keep one link per peer
        // id, and the crawl must not displace this node's real links.
        cfg.secret = gossipnet_proto::SecretKey::generate(&mut rand::rngs::OsRng);
        let mut start = self.local_addr;
        if start.ip().is_unspecified() {
            start.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        crawl::crawl(self.id, vec![start], cfg, progress).await
    }

    /// Leaves the network gracefully (neighbours and seeds are told) and
    /// waits until the node has stopped.
    pub async fn leave(&self) -> Result<(), NodeError> {
        let (reply, rx) = oneshot::channel();
        if self.cmd_tx.send(ToActor::Leave { reply }).await.is_ok() {
            let _ = rx.await;
        }
        self.stopped().await;
        Ok(())
    }

    /// Stops at once without telling anyone: no goodbyes, links dropped,
    /// queued messages lost. For tests and benchmarks that need a node to
    /// die as if its process were killed; neighbours learn of it only when
    /// its connections end. Returns once the node has stopped.
    pub async fn crash(&self) {
        let _ = self.cmd_tx.send(ToActor::Crash).await;
        self.stopped().await;
    }

    /// Waits until the node has stopped.
    pub async fn stopped(&self) {
        let mut rx = self.stopped.clone();
        let _ = rx.wait_for(|s| *s).await;
    }
}

/// The addresses of this machine's interfaces (IPv4, other hosts' reach
/// first, loopback last), for a node listening on every interface.
fn interface_addrs(port: u16) -> Vec<SocketAddr> {
    let mut addrs: Vec<SocketAddr> = if_addrs::get_if_addrs()
        .unwrap_or_default()
        .into_iter()
        .map(|i| i.ip())
        .filter(|ip| ip.is_ipv4() && !ip.is_loopback())
        .map(|ip| SocketAddr::new(ip, port))
        .collect();
    addrs.truncate(gossipnet_proto::record::MAX_ADDRS - 1);
    addrs.push(SocketAddr::from(([127, 0, 0, 1], port)));
    addrs
}

/// Builds a [`Node`]:
///
/// ```no_run
/// # async fn demo() -> Result<(), gossipnet_node::NodeError> {
/// let node = gossipnet_node::Node::builder()
///     .name("bot")
///     .peer("127.0.0.1:7465")
///     .spawn()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Default)]
pub struct NodeBuilder {
    secret: Option<gossipnet_proto::SecretKey>,
    data_dir: Option<PathBuf>,
    name: Option<String>,
    listen: Option<SocketAddr>,
    network_id: Option<String>,
    psk: Option<[u8; 32]>,
    peers: Vec<String>,
    seeds: Vec<String>,
    discovery: Option<bool>,
    #[cfg(feature = "control-api")]
    control_api: Option<SocketAddr>,
}

impl NodeBuilder {
    /// The node's identity (default: the one in the data dir, else fresh).
    pub fn secret(mut self, secret: gossipnet_proto::SecretKey) -> Self {
        self.secret = Some(secret);
        self
    }

    /// Keep identity and address book in this directory.
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    /// A name shown beside the node id.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Where to listen (default 127.0.0.1, a free port).
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = Some(addr);
        self
    }

    /// The network id (default [`DEFAULT_NETWORK_ID`]).
    pub fn network_id(mut self, id: impl Into<String>) -> Self {
        self.network_id = Some(id.into());
        self
    }

    /// The pre-shared key of a private network.
    pub fn psk(mut self, psk: [u8; 32]) -> Self {
        self.psk = Some(psk);
        self
    }

    /// A peer to join through, as `host:port`.
    pub fn peer(mut self, addr: impl Into<String>) -> Self {
        self.peers.push(addr.into());
        self
    }

    /// A seed node, as `host:port`.
    pub fn seed(mut self, addr: impl Into<String>) -> Self {
        self.seeds.push(addr.into());
        self
    }

    /// LAN discovery (multicast DNS and local port probing); on by default.
    pub fn discovery(mut self, on: bool) -> Self {
        self.discovery = Some(on);
        self
    }

    /// Serve the control API and dashboard (docs/API.md) on `addr`, a
    /// loopback address (port 0 picks a free one), from start until the
    /// node stops; with a data dir, `control.json` (mode 0600) says where
    /// and gives the cookie. [`Node::control_api`] tells the program.
    #[cfg(feature = "control-api")]
    pub fn control_api(mut self, addr: SocketAddr) -> Self {
        self.control_api = Some(addr);
        self
    }

    /// The configuration this builder makes.
    pub fn into_config(self) -> Result<NodeConfig, NodeError> {
        let secret = match (self.secret, &self.data_dir) {
            (Some(secret), _) => secret,
            (None, Some(dir)) => {
                let dir = store::DataDir::open(dir).map_err(|e| NodeError::Store(e.to_string()))?;
                dir.load_or_create_identity()
                    .map_err(|e| NodeError::Store(e.to_string()))?
                    .0
            }
            (None, None) => gossipnet_proto::SecretKey::generate(&mut rand::rngs::OsRng),
        };
        let mut config = NodeConfig::new(secret);
        if let Some(listen) = self.listen {
            config.listen = listen;
        }
        if let Some(id) = self.network_id {
            config.network_id = id;
        }
        config.psk = self.psk;
        config.name = self.name;
        config.peers = self.peers;
        config.seeds = self.seeds;
        config.data_dir = self.data_dir;
        if let Some(on) = self.discovery {
            config.discovery = on;
        }
        Ok(config)
    }

    /// Starts the node (and its control API, if asked for).
    pub async fn spawn(self) -> Result<Node, NodeError> {
        #[cfg(feature = "control-api")]
        if let Some(addr) = self.control_api {
            return control::spawn_node(self.into_config()?, addr).await;
        }
        Node::spawn(self.into_config()?).await
    }
}
