//! [`NodeBuilder`]: the way to configure and start a [`Node`].

use std::net::SocketAddr;
use std::path::PathBuf;

#[cfg(feature = "control-api")]
use crate::control;
use gossipnet_proto::NodeId;

use crate::{store, Limits, Node, NodeConfig, NodeError};

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
    advertise: Vec<SocketAddr>,
    seed_role: bool,
    admin_keys: Vec<NodeId>,
    limits: Option<Limits>,
    proto: Option<gossipnet_proto::Config>,
    listener: Option<std::net::TcpListener>,
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

    /// The network id (default [`DEFAULT_NETWORK_ID`](crate::DEFAULT_NETWORK_ID)).
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

    /// Addresses to publish in the node's record (default: derived from
    /// the listen address, every interface's when it is unspecified).
    pub fn advertise(mut self, addrs: impl IntoIterator<Item = SocketAddr>) -> Self {
        self.advertise.extend(addrs);
        self
    }

    /// Peers to join through, as `host:port`.
    pub fn peers(mut self, addrs: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.peers.extend(addrs.into_iter().map(Into::into));
        self
    }

    /// Seed nodes, as `host:port`.
    pub fn seeds(mut self, addrs: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.seeds.extend(addrs.into_iter().map(Into::into));
        self
    }

    /// Run as a seed: keep the registry of live nodes instead of joining
    /// the overlay. Unless [`limits`](Self::limits) are given, a seed takes
    /// [`Limits::for_seed`].
    pub fn role(mut self, role: crate::Role) -> Self {
        self.seed_role = role == crate::Role::Seed;
        self
    }

    /// Admin keys whose signed shutdown commands this node obeys.
    pub fn admin_keys(mut self, keys: impl IntoIterator<Item = NodeId>) -> Self {
        self.admin_keys.extend(keys);
        self
    }

    /// What peers may make the node hold (default [`Limits::default`], or
    /// [`Limits::for_seed`] for a seed).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = Some(limits);
        self
    }

    /// The protocol's tunables (default [`gossipnet_proto::Config::default`]).
    pub fn protocol(mut self, config: gossipnet_proto::Config) -> Self {
        self.proto = Some(config);
        self
    }

    /// Serve on a listening socket bound elsewhere (handed over by a
    /// supervisor's socket activation, say) instead of binding
    /// [`listen`](Self::listen); the node listens where the socket does.
    pub fn listener(mut self, listener: std::net::TcpListener) -> Self {
        self.listener = Some(listener);
        self
    }

    /// The configuration this builder makes, and the listener handed over.
    fn into_config(self) -> Result<(NodeConfig, Option<std::net::TcpListener>), NodeError> {
        // The one place the data directory is opened for a start.
        let opened_dir = match &self.data_dir {
            Some(dir) => {
                let mut dir = store::DataDir::open(dir)?;
                dir.lock()?;
                Some(dir)
            }
            None => None,
        };
        let secret = match (self.secret, &opened_dir) {
            (Some(secret), _) => secret,
            (None, Some(dir)) => dir.load_or_create_identity()?.0,
            (None, None) => gossipnet_proto::SecretKey::generate(&mut rand::rngs::OsRng),
        };
        let mut config = NodeConfig::new(secret);
        config.opened_dir = opened_dir;
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
        config.advertise = self.advertise;
        config.seed_role = self.seed_role;
        config.admin_keys = self.admin_keys;
        config.limits = match self.limits {
            Some(limits) => limits,
            None if self.seed_role => Limits::for_seed(),
            None => Limits::default(),
        };
        if let Some(proto) = self.proto {
            config.proto = proto;
        }
        Ok((config, self.listener))
    }

    /// Starts the node (and its control API, if asked for).
    pub async fn spawn(self) -> Result<Node, NodeError> {
        #[cfg(feature = "control-api")]
        if let Some(addr) = self.control_api {
            let (config, listener) = self.into_config()?;
            return control::spawn_node(config, listener, addr).await;
        }
        let (config, listener) = self.into_config()?;
        Node::spawn(config, listener).await
    }
}
