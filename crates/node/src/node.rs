//! The handle to a running node: [`Node`], cheap to clone, which talks to
//! the node's actor over a bounded command queue.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use gossipnet_proto::envelope::Kind;
use gossipnet_proto::record::{NodeRecord, Role, SignedRecord};
use gossipnet_proto::{MessageId, NodeId, State};
use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};

use crate::actor::{self, Actor, ToActor};
#[cfg(feature = "control-api")]
use crate::control;
use crate::event::EventHub;
use crate::{
    chat, crawl, store, time, transport, Events, NodeBuilder, NodeConfig, NodeError, PeerStatus,
    Status,
};

/// Connections the kernel queues for the listener before the node accepts
/// them, as tokio's own bind: past a full queue, a burst of connections is
/// dropped by the kernel and left half-open at the dialler, unanswered.
const LISTEN_BACKLOG: i32 = 1024;

/// A running node. Cheap to clone; every clone talks to the same node.
#[derive(Debug, Clone)]
pub struct Node {
    id: NodeId,
    local_addr: SocketAddr,
    name: Arc<RwLock<Option<String>>>,
    pub(crate) cmd_tx: mpsc::Sender<ToActor>,
    /// The subscriptions, a first one made before the actor started among
    /// them, for the one caller that must hear everything (see
    /// [`Node::startup_events`]).
    events: EventHub,
    stopped: watch::Receiver<bool>,
    /// The network a crawl dials into (its secret is replaced by a
    /// throwaway key for each crawl).
    crawl_link: Arc<transport::LinkConfig>,
    /// The control API served with the node, if it was asked for.
    #[cfg(feature = "control-api")]
    pub(crate) control: Option<Arc<control::ControlApiInfo>>,
}

impl Node {
    /// Binds the listener (unless one was handed over), opens the data
    /// directory, and starts the node.
    pub(crate) async fn spawn(
        config: NodeConfig,
        listener: Option<std::net::TcpListener>,
    ) -> Result<Node, NodeError> {
        if let Some(listener) = listener {
            return Self::spawn_on(config, listener).await;
        }
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| NodeError::Bind {
                    addr: config.listen,
                    source,
                })?;
        Self::start(config, listener).await
    }

    /// Starts the node on a listening socket bound elsewhere;
    /// `config.listen` is replaced by the socket's address.
    async fn spawn_on(
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
        // A socket bound elsewhere (std binds with a backlog of 128) gets
        // the backlog of one the node binds itself: listen again resizes it.
        socket2::SockRef::from(&listener)
            .listen(LISTEN_BACKLOG)
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
        let record = SignedRecord::sign(&config.secret, record)?;
        let retention = config
            .proto
            .sync
            .as_ref()
            .map(|s| store::Retention::of(&s.history))
            .unwrap_or_default();
        let store = match &config.opened_dir {
            Some(dir) => Some(store::Store::open_with(dir, retention)?),
            None => None,
        };
        // The real node verifies every envelope; the simulator may not.
        config.proto.verify_envelopes = true;
        let mut rng = StdRng::from_entropy();
        let proto_rng = StdRng::from_rng(&mut rng)?;
        let mut state = State::new(
            id,
            Bytes::from(record.encode()),
            config.proto.clone(),
            proto_rng,
        );
        if let Some(store) = &store {
            // The history of the last run, given back before the first
            // message arrives: nothing it holds is delivered again.
            let all = store::HistoryFilter {
                all_kinds: true,
                ..store::HistoryFilter::default()
            };
            let stored = store.query_history(all, retention.max_messages).await?;
            state.set_wall_clock(time::unix_ms());
            let restored = state.restore(stored.into_iter().rev().map(Bytes::from));
            tracing::info!(restored, "history loaded");
        }
        let (cmd_tx, cmd_rx) = mpsc::channel(actor::COMMAND_QUEUE);
        let events = EventHub::with_startup();
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
        let hub = events.clone();
        tokio::spawn(async move {
            actor.run(listener).await;
            hub.close();
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
        Ok(self.status().await?.views.active)
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
    /// some and is told so by [`EventsError::Lagged`](crate::EventsError::Lagged).
    pub fn subscribe(&self) -> Events {
        self.events.subscribe()
    }

    /// Events from the moment the node started, for the first caller only
    /// (`None` after): what a node delivers in its first instants, the
    /// messages it catches up on as its first links come up, arrives before
    /// any [`Node::subscribe`] made after the node is spawned could hear it.
    /// Up to a few thousand events are kept until taken, for half a
    /// minute: an embedder that has not asked by then never will.
    pub fn startup_events(&self) -> Option<Events> {
        self.events.take_startup()
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
    /// key (see [`admin::sign_shutdown`](crate::admin::sign_shutdown)). Every node, this one included,
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
    /// its connections end. Returns once the node has stopped. Behind the
    /// `test-utils` feature: no program should want it.
    #[cfg(feature = "test-utils")]
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
