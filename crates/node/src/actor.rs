//! The node actor: one task that owns the protocol state, the links, the
//! timers and the seed logic, and one function ([`Actor::apply`]) that turns
//! protocol output into I/O.
//!
//! Everything that touches the protocol state happens on this task, so the
//! state needs no lock. Around it, small tasks do the waiting: one accept
//! loop (inside the actor's `select!`), a handshake task per new connection,
//! and a reader and a writer task per link. They talk to the actor over
//! bounded channels only, so a flood from the network turns into TCP
//! backpressure, never into unbounded memory.
//!
//! Links: exactly one per peer id. When two nodes dial each other at once,
//! both keep the connection dialled by the node with the smaller id, a rule
//! both ends compute alike. A link closed on purpose (the protocol said
//! `DisconnectPeer`) is forgotten at once; a link that fails while its peer
//! is a neighbour is reported to the protocol, which repairs the view, and
//! to the seeds as a dead-node report.
//!
//! Bootstrap: static peers and seeds are dialled by address (their ids are
//! learned in the handshake); with neither, the address book of the last run
//! is tried. While the node has no neighbour it retries, backing off.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use gossipnet_proto::direct::Sealed;
use gossipnet_proto::envelope::{Envelope, Kind, SignedEnvelope};
use gossipnet_proto::hyparview::PeerInfo;
use gossipnet_proto::query::{self, NodeInfo, PeerRef, Query};
use gossipnet_proto::record::SignedRecord;
use gossipnet_proto::seed::{
    RemoveReason, SeedConfig, SeedInput, SeedMessage, SeedOutput, SeedRegistry, REFRESH_INTERVAL,
};
use gossipnet_proto::wire::{self, Message};
use gossipnet_proto::{Command, Event, InEvent, MessageId, NodeId, OutEvent, State, Timer};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, mpsc, oneshot, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, info, warn, Instrument};

use crate::admin::{self, AdminState};
use crate::chat::ChatBody;
use crate::config::NodeConfig;
use crate::discovery::{self, Discovered, Mdns};
use crate::store::StoreHandle;
use crate::transport::{self, Link, LinkConfig, LinkReader, LinkWriter};
use crate::{DirectMessage, NodeError, NodeEvent, PeerStatus, Received, Status};

/// Capacity of the channel from link tasks to the actor: deep enough to
/// absorb a burst from many links, shallow enough that a flood stalls the
/// readers (and so the senders' TCP windows) instead of growing memory.
const LINK_EVENT_QUEUE: usize = 4096;
/// Capacity of the command channel from handles to the actor.
pub(crate) const COMMAND_QUEUE: usize = 256;
/// Capacity of the event broadcast to subscribers; a subscriber that falls
/// this far behind misses events (and is told so by tokio's `Lagged`).
pub(crate) const EVENT_QUEUE: usize = 4096;
/// Most messages written to a link in one batch (one syscall).
const MAX_BATCH: usize = 256;
/// Time allowed to open a TCP connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Messages held for a peer while a link to it is being dialled.
const MAX_DIAL_QUEUE: usize = 256;
/// Period of the housekeeping tick (bootstrap retries, idle links, seeds).
const HOUSEKEEPING: Duration = Duration::from_secs(1);
/// A link to a node that is not a neighbour (a shuffle reply, a probe) is
/// closed after this long without traffic.
const IDLE_LINK: Duration = Duration::from_secs(20);
/// After closing a link on purpose, its reader waits this long for the peer
/// to close its end (so messages already sent still arrive), then stops.
const LINGER: Duration = Duration::from_secs(5);
/// First delay between bootstrap attempts while the node has no neighbour.
const BOOTSTRAP_BACKOFF_MIN: Duration = Duration::from_secs(1);
/// Longest delay between bootstrap attempts.
const BOOTSTRAP_BACKOFF_MAX: Duration = Duration::from_secs(30);
/// How often a seed expires records and gives up on silent probes.
const SEED_TICK: Duration = Duration::from_secs(1);
/// Address-book entries tried when bootstrapping from it.
const BOOK_CANDIDATES: usize = 16;
/// Discovered peers waiting for the actor; discovery repeats itself, so a
/// full queue only delays.
const DISCOVERY_QUEUE: usize = 64;
/// How long a leaving node waits for its goodbyes to be written.
const LEAVE_FLUSH: Duration = Duration::from_secs(3);
/// How long a node that obeys a shutdown command stays after forwarding
/// it: long enough for neighbours that heard of it lazily to fetch it from
/// us, short enough that the whole network is gone within seconds.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// A request from a [`crate::Node`] handle.
#[derive(Debug)]
pub(crate) enum ToActor {
    Broadcast {
        kind: Kind,
        body: Bytes,
        reply: oneshot::Sender<Result<MessageId, NodeError>>,
    },
    Direct {
        to: NodeId,
        text: String,
        reply: oneshot::Sender<Result<MessageId, NodeError>>,
    },
    SetName {
        name: Option<String>,
        reply: oneshot::Sender<Result<(), NodeError>>,
    },
    Status {
        reply: oneshot::Sender<Status>,
    },
    Leave {
        reply: oneshot::Sender<()>,
    },
    /// Stop at once, as a killed process would: no goodbyes.
    Crash,
    /// An admin command signed elsewhere, to broadcast.
    Admin {
        command: Bytes,
        reply: oneshot::Sender<Result<MessageId, NodeError>>,
    },
}

/// Which way a link was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// We dialled.
    Outbound,
    /// The peer dialled.
    Inbound,
}

/// Why a connection was dialled, so the actor knows what to do once the
/// peer's id is known.
#[derive(Debug, Clone, Copy)]
enum Purpose {
    /// To reach a known peer for the protocol.
    Peer,
    /// A static peer from the command line: join through it.
    Static(usize),
    /// A configured seed.
    Seed(usize),
    /// An address-book entry.
    Book,
    /// A port of the default range on this machine, probed while alone.
    Local,
    /// A seed checking that a reported node is dead.
    Probe(NodeId),
    /// Accepted from the listener.
    Inbound,
}

#[derive(Debug)]
enum LinkEvent {
    Established {
        link: Link,
        direction: Direction,
        addr: SocketAddr,
        purpose: Purpose,
    },
    Failed {
        addr: Option<SocketAddr>,
        purpose: Purpose,
        expected: Option<NodeId>,
        error: String,
    },
    Message {
        peer: NodeId,
        msg: Message,
        len: usize,
    },
    Closed {
        peer: NodeId,
        conn: u64,
        error: Option<String>,
    },
}

struct LinkEntry {
    conn: u64,
    tx: mpsc::Sender<Bytes>,
    direction: Direction,
    addr: SocketAddr,
    last_active: Instant,
    reader: tokio::task::AbortHandle,
    writer: JoinHandle<()>,
}

/// A bootstrap address (static peer or seed) and what we know of it.
struct Contact {
    addr_text: String,
    id: Option<NodeId>,
    dialing: bool,
    next_try: Instant,
    backoff: Duration,
    /// Seeds only: when we last registered, and whether it answered.
    registered_at: Option<Instant>,
    registered: bool,
}

impl Contact {
    fn new(addr_text: String) -> Self {
        Self {
            addr_text,
            id: None,
            dialing: false,
            next_try: Instant::now(),
            backoff: BOOTSTRAP_BACKOFF_MIN,
            registered_at: None,
            registered: false,
        }
    }

    fn failed(&mut self) {
        self.dialing = false;
        self.next_try = Instant::now() + self.backoff;
        self.backoff = (self.backoff * 2).min(BOOTSTRAP_BACKOFF_MAX);
    }
}

/// The actor. See the module docs.
pub(crate) struct Actor {
    me: NodeId,
    config: NodeConfig,
    link_config: Arc<LinkConfig>,
    state: State<StdRng>,
    rng: StdRng,
    record: SignedRecord,
    local_addr: SocketAddr,
    started: Instant,
    links: HashMap<NodeId, LinkEntry>,
    dialing: HashMap<NodeId, Vec<Bytes>>,
    addrs: HashMap<NodeId, Vec<SocketAddr>>,
    neighbors: BTreeSet<NodeId>,
    timers: BinaryHeap<Reverse<(Instant, u64, Timer)>>,
    timer_seq: u64,
    link_tx: mpsc::Sender<LinkEvent>,
    link_rx: mpsc::Receiver<LinkEvent>,
    cmd_rx: mpsc::Receiver<ToActor>,
    events: broadcast::Sender<NodeEvent>,
    store: Option<StoreHandle>,
    registry: Option<SeedRegistry>,
    statics: Vec<Contact>,
    seeds: Vec<Contact>,
    next_conn: u64,
    handshakes: Arc<Semaphore>,
    inbound_per_ip: HashMap<IpAddr, usize>,
    inbound: usize,
    envelope_seq: u64,
    next_bootstrap: Instant,
    bootstrap_backoff: Duration,
    leaving: bool,
    stats: Counters,
    /// Protocol inputs produced while carrying out outputs, fed in next.
    inputs: std::collections::VecDeque<InEvent>,
    /// Direct messages waiting for a dial to their recipient; relayed
    /// through the overlay if the dial fails.
    pending_direct: HashMap<NodeId, Vec<Bytes>>,
    /// LAN discovery, while it runs.
    mdns: Option<Mdns>,
    /// The last gossip encoded: (payload, round, encoding).
    gossip_cache: Option<(Bytes, u16, Bytes)>,
    discovered_rx: mpsc::Receiver<Discovered>,
    discovered_tx: mpsc::Sender<Discovered>,
    /// Admin commands obeyed so far (refuses replays).
    admin: AdminState,
    /// Set once a shutdown command is obeyed: when to leave.
    shutdown_at: Option<Instant>,
}

/// Node-level counters (the protocol keeps its own).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Counters {
    pub handshake_failures: u64,
    pub bytes_sent: u64,
    pub messages_sent: u64,
    pub bytes_received: u64,
    pub messages_received: u64,
}

impl Actor {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        config: NodeConfig,
        record: SignedRecord,
        local_addr: SocketAddr,
        state: State<StdRng>,
        rng: StdRng,
        cmd_rx: mpsc::Receiver<ToActor>,
        events: broadcast::Sender<NodeEvent>,
        store: Option<StoreHandle>,
    ) -> Self {
        let (link_tx, link_rx) = mpsc::channel(LINK_EVENT_QUEUE);
        let (discovered_tx, discovered_rx) = mpsc::channel(DISCOVERY_QUEUE);
        let link_config = LinkConfig {
            secret: config.secret.clone(),
            network_id: config.network_id.clone(),
            psk: config.psk,
            handshake_timeout: config.limits.handshake_timeout,
        };
        let registry = config
            .seed_role
            .then(|| SeedRegistry::new(SeedConfig::default()));
        let statics = config.peers.iter().cloned().map(Contact::new).collect();
        let seeds = config.seeds.iter().cloned().map(Contact::new).collect();
        let handshakes = Arc::new(Semaphore::new(config.limits.max_handshakes));
        Self {
            me: config.secret.node_id(),
            link_config: Arc::new(link_config),
            state,
            rng,
            record,
            local_addr,
            started: Instant::now(),
            links: HashMap::new(),
            dialing: HashMap::new(),
            addrs: HashMap::new(),
            neighbors: BTreeSet::new(),
            timers: BinaryHeap::new(),
            timer_seq: 0,
            link_tx,
            link_rx,
            cmd_rx,
            events,
            store,
            registry,
            statics,
            seeds,
            next_conn: 0,
            handshakes,
            inbound_per_ip: HashMap::new(),
            inbound: 0,
            envelope_seq: unix_ms(),
            next_bootstrap: Instant::now(),
            bootstrap_backoff: BOOTSTRAP_BACKOFF_MIN,
            leaving: false,
            stats: Counters::default(),
            inputs: std::collections::VecDeque::new(),
            pending_direct: HashMap::new(),
            mdns: None,
            gossip_cache: None,
            discovered_rx,
            discovered_tx,
            admin: AdminState::load(config.data_dir.as_deref()),
            shutdown_at: None,
            config,
        }
    }

    /// Runs until the node leaves or every handle is dropped.
    pub(crate) async fn run(mut self, listener: TcpListener) {
        let span = tracing::info_span!("node", id = %self.me.short());
        async move {
            self.start().await;
            let mut housekeeping = tokio::time::interval(HOUSEKEEPING);
            housekeeping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut seed_tick = tokio::time::interval(SEED_TICK);
            loop {
                let next_timer = self
                    .timers
                    .peek()
                    .map(|Reverse((at, _, _))| *at)
                    .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
                tokio::select! {
                    biased;
                    cmd = self.cmd_rx.recv() => match cmd {
                        Some(ToActor::Leave { reply }) => {
                            self.leave().await;
                            let _ = reply.send(());
                            break;
                        }
                        Some(ToActor::Crash) => {
                            self.crash();
                            break;
                        }
                        Some(cmd) => self.on_command(cmd).await,
                        None => {
                            self.leave().await;
                            break;
                        }
                    },
                    _ = tokio::time::sleep_until(next_timer) => self.fire_timers().await,
                    Some(ev) = self.link_rx.recv() => self.on_link_event(ev).await,
                    accepted = listener.accept() => match accepted {
                        Ok((stream, addr)) => self.on_accept(stream, addr).await,
                        Err(e) => warn!("accept failed: {e}"),
                    },
                    _ = housekeeping.tick() => self.housekeeping().await,
                    Some(found) = self.discovered_rx.recv() => self.on_discovered(found).await,
                    _ = seed_tick.tick(), if self.registry.is_some() => {
                        self.registry_input(SeedInput::Tick).await
                    }
                    _ = sleep_until_some(self.shutdown_at), if self.shutdown_at.is_some() => {
                        self.leave().await;
                        break;
                    }
                }
                self.drain_inputs().await;
            }
            if let Some(store) = self.store.take() {
                store.close().await;
            }
            info!("stopped");
        }
        .instrument(span)
        .await
    }

    async fn start(&mut self) {
        if self.config.discovery && !self.config.seed_role {
            self.start_mdns();
        }
        if !self.config.seed_role {
            // An empty join starts the protocol's timers; a seed keeps out
            // of the overlay.
            self.proto(InEvent::Command(Command::Join(Vec::new())))
                .await;
        }
        self.bootstrap().await;
    }

    fn now_std(&self) -> std::time::Instant {
        Instant::now().into_std()
    }

    /// Feeds one input to the protocol and carries out what comes back,
    /// then any inputs that carrying it out produced (a failed send).
    async fn proto(&mut self, input: InEvent) {
        self.inputs.push_back(input);
        self.drain_inputs().await;
    }

    async fn drain_inputs(&mut self) {
        while let Some(input) = self.inputs.pop_front() {
            let now = self.now_std();
            let outs: Vec<OutEvent> = self.state.handle(input, now).collect();
            for out in outs {
                self.apply(out).await;
            }
        }
    }

    /// The one place protocol output becomes I/O.
    async fn apply(&mut self, out: OutEvent) {
        match out {
            OutEvent::SendMessage(peer, msg) => {
                let bytes = match &msg {
                    Message::Broadcast(gossipnet_proto::plumtree::Message::Gossip(g)) => {
                        self.encode_gossip(g)
                    }
                    _ => Bytes::from(wire::encode(&msg)),
                };
                self.send_bytes(peer, bytes).await;
            }
            OutEvent::ScheduleTimer(delay, timer) => {
                self.timer_seq += 1;
                self.timers
                    .push(Reverse((Instant::now() + delay, self.timer_seq, timer)));
            }
            OutEvent::DisconnectPeer(peer) => self.close_link(peer),
            OutEvent::EmitEvent(event) => self.on_proto_event(event).await,
            OutEvent::PeerData(peer, data) => self.learn_record(peer, &data),
        }
    }

    /// Encodes a gossip message once for all the peers it is pushed to:
    /// Plumtree emits the eager pushes of one message one after another,
    /// with the same payload buffer and round, so the last encoding is
    /// reused and the payload is not copied once per peer.
    fn encode_gossip(&mut self, gossip: &gossipnet_proto::plumtree::Gossip) -> Bytes {
        if let Some((content, round, encoded)) = &self.gossip_cache {
            if content.as_ptr() == gossip.content.as_ptr()
                && content.len() == gossip.content.len()
                && *round == gossip.round
            {
                return encoded.clone();
            }
        }
        let encoded = Bytes::from(wire::encode(&Message::Broadcast(
            gossipnet_proto::plumtree::Message::Gossip(gossip.clone()),
        )));
        self.gossip_cache = Some((gossip.content.clone(), gossip.round, encoded.clone()));
        encoded
    }

    async fn on_proto_event(&mut self, event: Event) {
        match event {
            Event::NeighborUp(peer) => {
                info!(peer = %peer.short(), "neighbor up");
                self.neighbors.insert(peer);
                if let Some(store) = &self.store {
                    store.seen(peer);
                }
                let _ = self.events.send(NodeEvent::NeighborUp(peer));
            }
            Event::NeighborDown(peer) => {
                info!(peer = %peer.short(), "neighbor down");
                self.neighbors.remove(&peer);
                let _ = self.events.send(NodeEvent::NeighborDown(peer));
            }
            Event::Received(delivered) => {
                // Verified by the protocol before it was delivered.
                let Ok(signed) = SignedEnvelope::decode(&delivered.content) else {
                    return;
                };
                let env = signed.envelope();
                if env.kind == Kind::Direct {
                    // Relayed through the overlay: open it if it is ours.
                    let content = delivered.content.clone();
                    self.on_direct(&content, "overlay");
                    return;
                }
                if env.kind == Kind::Shutdown {
                    let content = delivered.content.clone();
                    if self.on_admin(&content, delivered.delivered_from) {
                        self.hand_to_seeds(content).await;
                    }
                    return;
                }
                if let Some(store) = &self.store {
                    store.message(
                        delivered.id,
                        env.origin,
                        env.time_ms,
                        delivered.content.clone(),
                    );
                }
                let _ = self.events.send(NodeEvent::Message(Received {
                    id: delivered.id,
                    origin: env.origin,
                    seq: env.seq,
                    time_ms: env.time_ms,
                    kind: env.kind,
                    body: env.body.clone(),
                    hops: delivered.hops,
                }));
            }
            Event::Misbehaved { peer, reason } => {
                warn!(peer = %peer.short(), "closing link: {reason}");
            }
        }
    }

    /// Takes a peer's published record: verified, it gives the addresses to
    /// dial the peer at.
    fn learn_record(&mut self, peer: NodeId, data: &[u8]) {
        let Ok(record) = SignedRecord::decode(data) else {
            debug!(peer = %peer.short(), "undecodable peer record");
            return;
        };
        if record.id() != peer || record.verify().is_err() {
            debug!(peer = %peer.short(), "peer record does not verify");
            return;
        }
        self.addrs.insert(peer, record.record().addrs.clone());
        if let Some(store) = &self.store {
            store.record(record);
        }
    }

    async fn send_bytes(&mut self, peer: NodeId, bytes: Bytes) {
        if peer == self.me {
            return;
        }
        if let Some(link) = self.links.get_mut(&peer) {
            link.last_active = Instant::now();
            let tx = link.tx.clone();
            self.stats.messages_sent += 1;
            self.stats.bytes_sent += bytes.len() as u64;
            let sent = match tx.try_send(bytes) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(bytes)) => {
                    // Backpressure: wait for this link rather than drop, but
                    // not forever: a peer that cannot keep up is cut off.
                    tokio::time::timeout(self.config.limits.slow_link_timeout, tx.send(bytes))
                        .await
                        .is_ok_and(|r| r.is_ok())
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            };
            if !sent {
                warn!(peer = %peer.short(), "link too slow or gone; closing it");
                self.close_link(peer);
                self.inputs.push_back(InEvent::PeerDisconnected(peer));
            }
            return;
        }
        if let Some(queue) = self.dialing.get_mut(&peer) {
            if queue.len() < MAX_DIAL_QUEUE {
                queue.push(bytes);
            }
            return;
        }
        let Some(addrs) = self.addrs.get(&peer).cloned().filter(|a| !a.is_empty()) else {
            debug!(peer = %peer.short(), "no address known; cannot reach");
            self.inputs.push_back(InEvent::PeerDisconnected(peer));
            return;
        };
        self.dialing.insert(peer, vec![bytes]);
        self.spawn_dial(addrs, Some(peer), Purpose::Peer);
    }

    fn spawn_dial(&self, addrs: Vec<SocketAddr>, expected: Option<NodeId>, purpose: Purpose) {
        let cfg = self.link_config.clone();
        let tx = self.link_tx.clone();
        tokio::spawn(
            async move {
                let mut last_error = String::from("no address");
                let mut last_addr = None;
                for addr in addrs {
                    last_addr = Some(addr);
                    let stream =
                        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await
                        {
                            Ok(Ok(stream)) => stream,
                            Ok(Err(e)) => {
                                last_error = format!("cannot connect to {addr}: {e}");
                                continue;
                            }
                            Err(_) => {
                                last_error = format!("connecting to {addr} timed out");
                                continue;
                            }
                        };
                    match transport::connect(stream, &cfg, expected).await {
                        Ok(link) => {
                            let _ = tx
                                .send(LinkEvent::Established {
                                    link,
                                    direction: Direction::Outbound,
                                    addr,
                                    purpose,
                                })
                                .await;
                            return;
                        }
                        Err(e) => {
                            // Probing our own machine's ports meets other
                            // programs; that is no news.
                            if matches!(purpose, Purpose::Local) {
                                debug!("link to {addr} refused: {e}");
                            } else {
                                warn!("link to {addr} refused: {e}");
                            }
                            last_error = e.to_string();
                        }
                    }
                }
                let _ = tx
                    .send(LinkEvent::Failed {
                        addr: last_addr,
                        purpose,
                        expected,
                        error: last_error,
                    })
                    .await;
            }
            .in_current_span(),
        );
    }

    async fn on_accept(&mut self, stream: TcpStream, addr: SocketAddr) {
        let ip = addr.ip();
        let per_ip = self.inbound_per_ip.get(&ip).copied().unwrap_or(0);
        let refusal = if self.leaving {
            Some("node is leaving")
        } else if self.inbound >= self.config.limits.max_inbound {
            Some("too many inbound links")
        } else if !ip.is_loopback() && per_ip >= self.config.limits.max_inbound_per_ip {
            Some("too many links from your address")
        } else {
            None
        };
        let cfg = self.link_config.clone();
        let tx = self.link_tx.clone();
        let Ok(permit) = self.handshakes.clone().try_acquire_owned() else {
            warn!("refusing link from {addr}: too many handshakes in progress");
            tokio::spawn(async move {
                let _ = transport::refuse(stream, &cfg, "busy: too many handshakes").await;
            });
            return;
        };
        if let Some(reason) = refusal {
            warn!("refusing link from {addr}: {reason}");
            tokio::spawn(async move {
                let _ = transport::refuse(stream, &cfg, reason).await;
                drop(permit);
            });
            return;
        }
        tokio::spawn(
            async move {
                let event = match transport::accept(stream, &cfg).await {
                    Ok(link) => LinkEvent::Established {
                        link,
                        direction: Direction::Inbound,
                        addr,
                        purpose: Purpose::Inbound,
                    },
                    Err(e) => {
                        warn!("link from {addr} refused: {e}");
                        LinkEvent::Failed {
                            addr: Some(addr),
                            purpose: Purpose::Inbound,
                            expected: None,
                            error: e.to_string(),
                        }
                    }
                };
                drop(permit);
                let _ = tx.send(event).await;
            }
            .in_current_span(),
        );
    }

    async fn on_link_event(&mut self, event: LinkEvent) {
        match event {
            LinkEvent::Established {
                link,
                direction,
                addr,
                purpose,
            } => self.on_established(link, direction, addr, purpose).await,
            LinkEvent::Failed {
                addr,
                purpose,
                expected,
                error,
            } => self.on_failed(addr, purpose, expected, error).await,
            LinkEvent::Message { peer, msg, len } => {
                self.stats.messages_received += 1;
                self.stats.bytes_received += len as u64;
                self.on_message(peer, msg).await
            }
            LinkEvent::Closed { peer, conn, error } => self.on_closed(peer, conn, error).await,
        }
    }

    async fn on_established(
        &mut self,
        link: Link,
        direction: Direction,
        addr: SocketAddr,
        purpose: Purpose,
    ) {
        let peer = link.peer;
        if peer == self.me {
            debug!("dialled ourselves at {addr}; dropping");
            self.contact_resolved(purpose, None);
            return;
        }
        if let Some(existing) = self.links.get(&peer) {
            // One link per peer: keep the connection dialled by the smaller
            // id; if both were dialled by the same side, the newer wins (the
            // older may be a dead connection the peer replaced).
            let dialer = |d: Direction| {
                if d == Direction::Outbound {
                    self.me
                } else {
                    peer
                }
            };
            let keep_new = dialer(direction) == dialer(existing.direction)
                || dialer(direction) == self.me.min(peer);
            if !keep_new {
                debug!(peer = %peer.short(), "duplicate link; keeping the existing one");
                drop(link);
                self.after_link(peer, purpose).await;
                return;
            }
            debug!(peer = %peer.short(), "duplicate link; replacing the existing one");
            self.close_link(peer);
        }
        self.next_conn += 1;
        let conn = self.next_conn;
        let (reader, writer) = link.into_split();
        let (tx, rx) = mpsc::channel(self.config.limits.link_queue);
        let span = tracing::info_span!("link", peer = %peer.short());
        let reader_task =
            tokio::spawn(read_link(reader, conn, self.link_tx.clone()).instrument(span.clone()));
        let writer_task = tokio::spawn(write_link(writer, rx).instrument(span));
        if direction == Direction::Inbound {
            self.inbound += 1;
            *self.inbound_per_ip.entry(addr.ip()).or_default() += 1;
        }
        self.links.insert(
            peer,
            LinkEntry {
                conn,
                tx,
                direction,
                addr,
                last_active: Instant::now(),
                reader: reader_task.abort_handle(),
                writer: writer_task,
            },
        );
        info!(peer = %peer.short(), %addr, direction = ?direction, "link up");
        if let Some(store) = &self.store {
            store.seen(peer);
            if direction == Direction::Outbound {
                store.address(addr, Some(peer));
            }
        }
        // Direct messages waiting for this dial now go over the link.
        self.pending_direct.remove(&peer);
        // Flush what waited for this link.
        if let Some(queue) = self.dialing.remove(&peer) {
            for bytes in queue {
                self.send_bytes(peer, bytes).await;
            }
        }
        self.after_link(peer, purpose).await;
    }

    /// What to do once a dialled contact's id is known and linked.
    async fn after_link(&mut self, peer: NodeId, purpose: Purpose) {
        self.contact_resolved(purpose, Some(peer));
        match purpose {
            Purpose::Static(_) | Purpose::Book | Purpose::Local => {
                if !self.config.seed_role && !self.neighbors.contains(&peer) {
                    self.proto(InEvent::Command(Command::Join(vec![peer])))
                        .await;
                }
            }
            Purpose::Seed(i) => self.register_with_seed(i).await,
            Purpose::Probe(id) => {
                self.registry_input(SeedInput::ProbeResult { id, alive: true })
                    .await
            }
            Purpose::Peer | Purpose::Inbound => {}
        }
    }

    fn contact_resolved(&mut self, purpose: Purpose, id: Option<NodeId>) {
        let contact = match purpose {
            Purpose::Static(i) => self.statics.get_mut(i),
            Purpose::Seed(i) => self.seeds.get_mut(i),
            _ => None,
        };
        if let Some(c) = contact {
            c.dialing = false;
            c.backoff = BOOTSTRAP_BACKOFF_MIN;
            if id.is_some() {
                c.id = id;
            }
        }
    }

    async fn on_failed(
        &mut self,
        addr: Option<SocketAddr>,
        purpose: Purpose,
        expected: Option<NodeId>,
        error: String,
    ) {
        self.stats.handshake_failures += 1;
        match purpose {
            Purpose::Static(i) => {
                if let Some(c) = self.statics.get_mut(i) {
                    debug!("static peer {} not reachable: {error}", c.addr_text);
                    c.failed();
                }
            }
            Purpose::Seed(i) => {
                if let Some(c) = self.seeds.get_mut(i) {
                    warn!("seed {} not reachable: {error}", c.addr_text);
                    c.failed();
                }
            }
            Purpose::Probe(id) => {
                self.registry_input(SeedInput::ProbeResult { id, alive: false })
                    .await
            }
            Purpose::Peer => {
                if let Some(peer) = expected {
                    debug!(peer = %peer.short(), ?addr, "dial failed: {error}");
                    self.dialing.remove(&peer);
                    // No direct link: relay the direct messages instead.
                    for envelope in self.pending_direct.remove(&peer).unwrap_or_default() {
                        debug!(peer = %peer.short(), "relaying a direct message through the overlay");
                        self.proto(InEvent::Command(Command::Broadcast(envelope)))
                            .await;
                    }
                    if let Some(store) = &self.store {
                        store.failure(peer);
                    }
                    self.proto(InEvent::PeerDisconnected(peer)).await;
                }
            }
            Purpose::Book | Purpose::Local | Purpose::Inbound => {}
        }
    }

    async fn on_message(&mut self, peer: NodeId, msg: Message) {
        if let Some(link) = self.links.get_mut(&peer) {
            link.last_active = Instant::now();
        }
        match msg {
            Message::Seed(m) => self.on_seed_message(peer, m).await,
            Message::Direct(bytes) => self.on_direct(&bytes, "link"),
            Message::Query(Query::Status { nonce }) => {
                let reply = Message::Query(Query::StatusReply {
                    nonce,
                    info: self.node_info(),
                });
                self.send_bytes(peer, Bytes::from(wire::encode(&reply)))
                    .await;
            }
            Message::Query(Query::StatusReply { .. }) => {}
            Message::Admin(bytes) => {
                // Nodes hear admin commands through the overlay; only a seed,
                // which is outside it, takes them over a link.
                if self.config.seed_role {
                    self.on_admin(&bytes, peer);
                }
            }
            msg => {
                if self.config.seed_role {
                    // A seed keeps out of the overlay.
                    return;
                }
                if let Message::Membership(gossipnet_proto::hyparview::Message::Disconnect {
                    alive: false,
                }) = &msg
                {
                    info!(peer = %peer.short(), "peer left the network");
                }
                self.proto(InEvent::RecvMessage(peer, msg)).await;
            }
        }
    }

    async fn on_closed(&mut self, peer: NodeId, conn: u64, error: Option<String>) {
        let current = self.links.get(&peer).is_some_and(|l| l.conn == conn);
        if !current {
            return;
        }
        if let Some(entry) = self.links.remove(&peer) {
            self.forget_inbound(&entry);
        }
        match &error {
            Some(e) => info!(peer = %peer.short(), "link down: {e}"),
            None => debug!(peer = %peer.short(), "link closed by peer"),
        }
        if self.neighbors.contains(&peer) {
            // A neighbour's link failed: repair, and tell the seeds.
            for i in 0..self.seeds.len() {
                if let Some(seed) = self.seeds[i].id {
                    self.send_seed(seed, SeedMessage::DeadReport(peer)).await;
                }
            }
            self.proto(InEvent::PeerDisconnected(peer)).await;
        }
    }

    fn forget_inbound(&mut self, entry: &LinkEntry) {
        if entry.direction == Direction::Inbound {
            self.inbound = self.inbound.saturating_sub(1);
            if let Some(n) = self.inbound_per_ip.get_mut(&entry.addr.ip()) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.inbound_per_ip.remove(&entry.addr.ip());
                }
            }
        }
    }

    /// Closes a link on purpose: queued messages are still written, then
    /// the connection is shut down.
    fn close_link(&mut self, peer: NodeId) {
        if let Some(entry) = self.links.remove(&peer) {
            self.forget_inbound(&entry);
            let reader = entry.reader;
            drop(entry.tx);
            tokio::spawn(async move {
                tokio::time::sleep(LINGER).await;
                reader.abort();
            });
        }
    }

    async fn fire_timers(&mut self) {
        let now = Instant::now();
        while let Some(Reverse((at, _, _))) = self.timers.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((_, _, timer))) = self.timers.pop() else {
                break;
            };
            self.proto(InEvent::TimerExpired(timer)).await;
        }
    }

    async fn on_command(&mut self, cmd: ToActor) {
        match cmd {
            ToActor::Broadcast { kind, body, reply } => {
                let result = self.broadcast(kind, body).await;
                let _ = reply.send(result);
            }
            ToActor::Direct { to, text, reply } => {
                let result = self.send_direct(to, text).await;
                let _ = reply.send(result);
            }
            ToActor::SetName { name, reply } => {
                let result = self.set_name(name).await;
                let _ = reply.send(result);
            }
            ToActor::Status { reply } => {
                let _ = reply.send(self.status());
            }
            ToActor::Admin { command, reply } => {
                let result = self.publish_admin(command).await;
                let _ = reply.send(result);
            }
            // Both end the loop in `run`.
            ToActor::Leave { .. } | ToActor::Crash => {}
        }
    }

    /// Broadcasts an admin command signed elsewhere, then obeys it here too
    /// if it is good (a node is not delivered its own broadcasts).
    async fn publish_admin(&mut self, command: Bytes) -> Result<MessageId, NodeError> {
        if let Err(refusal) = admin::verify_signed(&command) {
            warn!("refusing shutdown command: {refusal}");
            return Err(NodeError::Message(format!(
                "refusing the shutdown command: {refusal}"
            )));
        }
        if self.config.seed_role {
            return Err(NodeError::SeedCannotBroadcast);
        }
        let id = MessageId::of(&command);
        self.proto(InEvent::Command(Command::Broadcast(command.clone())))
            .await;
        if self.on_admin(&command, self.me) {
            self.hand_to_seeds(command).await;
        }
        Ok(id)
    }

    /// Seeds are outside the overlay: an admin command this node obeys is
    /// handed to the seeds it has a link to.
    async fn hand_to_seeds(&mut self, command: Bytes) {
        let seeds: Vec<NodeId> = self.seeds.iter().filter_map(|s| s.id).collect();
        let msg = Bytes::from(wire::encode(&Message::Admin(command)));
        for seed in seeds {
            if self.links.contains_key(&seed) {
                self.send_bytes(seed, msg.clone()).await;
            }
        }
    }

    /// Decides whether to obey an admin (shutdown) command; logs either
    /// way. True if obeyed: the node leaves after [`SHUTDOWN_GRACE`].
    fn on_admin(&mut self, command: &[u8], from: NodeId) -> bool {
        let id = MessageId::of(command);
        if self.shutdown_at.is_some() || self.leaving {
            return false;
        }
        let checked = self.admin.check(
            command,
            &self.config.admin_keys,
            &self.config.network_id,
            unix_ms(),
        );
        match checked {
            Ok((admin, seq)) => {
                if let Err(e) = self.admin.obeyed(admin, seq) {
                    warn!("cannot record the shutdown command in the data directory: {e}");
                }
                warn!(
                    command = %id, admin = %admin.short(), via = %from.short(),
                    "shutdown command from an admin key: leaving the network"
                );
                self.shutdown_at = Some(Instant::now() + SHUTDOWN_GRACE);
                true
            }
            Err(refusal) => {
                warn!(command = %id, via = %from.short(), "refusing shutdown command: {refusal}");
                false
            }
        }
    }

    /// What this node tells a crawl about itself.
    fn node_info(&self) -> NodeInfo {
        let peer_ref = |id: NodeId| PeerRef {
            id,
            addrs: self
                .addrs
                .get(&id)
                .filter(|a| !a.is_empty())
                .cloned()
                .or_else(|| {
                    self.links
                        .get(&id)
                        .filter(|l| l.direction == Direction::Outbound)
                        .map(|l| vec![l.addr])
                })
                .unwrap_or_default(),
        };
        let neighbors = self
            .state
            .membership()
            .active_view()
            .iter()
            .take(query::MAX_NEIGHBORS)
            .map(|id| peer_ref(*id))
            .collect();
        let seeds = self
            .seeds
            .iter()
            .filter_map(|s| {
                s.id.filter(|id| self.links.contains_key(id))
                    .map(|id| (s, id))
            })
            .take(query::MAX_SEEDS)
            .map(|(s, id)| {
                let mut r = peer_ref(id);
                if r.addrs.is_empty() {
                    r.addrs.extend(s.addr_text.parse::<SocketAddr>().ok());
                }
                r
            })
            .collect();
        let registry = self
            .registry
            .as_ref()
            .map(|reg| {
                reg.records()
                    .take(query::MAX_REGISTRY)
                    .map(|r| PeerRef {
                        id: r.id(),
                        addrs: r.record().addrs.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        NodeInfo {
            record: Bytes::from(self.record.encode()),
            uptime_s: self.started.elapsed().as_secs(),
            size_estimate: self
                .state
                .size_estimate()
                .map(|e| e.round().max(0.0) as u64),
            neighbors,
            seeds,
            registry,
        }
    }

    async fn broadcast(&mut self, kind: Kind, body: Bytes) -> Result<MessageId, NodeError> {
        if self.config.seed_role {
            return Err(NodeError::SeedCannotBroadcast);
        }
        let bytes = self.sign_envelope(kind, body)?;
        let id = MessageId::of(&bytes);
        self.proto(InEvent::Command(Command::Broadcast(bytes)))
            .await;
        Ok(id)
    }

    fn sign_envelope(&mut self, kind: Kind, body: Bytes) -> Result<Bytes, NodeError> {
        self.envelope_seq += 1;
        let envelope = Envelope {
            origin: self.me,
            seq: self.envelope_seq,
            time_ms: unix_ms(),
            kind,
            body,
        };
        let signed = SignedEnvelope::sign(&self.config.secret, envelope)
            .map_err(|e| NodeError::Message(e.to_string()))?;
        Ok(signed.encode())
    }

    /// A direct message: sealed to the recipient, signed by us, sent over a
    /// link to the recipient if there is one or one can be dialled, and
    /// otherwise relayed through the overlay (where only the recipient can
    /// open it).
    async fn send_direct(&mut self, to: NodeId, text: String) -> Result<MessageId, NodeError> {
        if to == self.me {
            return Err(NodeError::Message("that is this node's own id".into()));
        }
        let body = ChatBody {
            name: self.config.name.clone(),
            text,
        };
        let sealed = Sealed::seal(to, &body.encode(), &mut rand::rngs::OsRng)
            .map_err(|e| NodeError::Message(e.to_string()))?;
        let bytes = self.sign_envelope(Kind::Direct, Bytes::from(sealed.encode()))?;
        let id = MessageId::of(&bytes);
        let wire_bytes = Bytes::from(wire::encode(&Message::Direct(bytes.clone())));
        if self.links.contains_key(&to) {
            debug!(peer = %to.short(), "direct message over the open link");
            self.send_bytes(to, wire_bytes).await;
        } else if self.addrs.get(&to).is_some_and(|a| !a.is_empty()) {
            debug!(peer = %to.short(), "dialling for a direct message");
            let queue = self.pending_direct.entry(to).or_default();
            if queue.len() < MAX_DIAL_QUEUE {
                queue.push(bytes);
            }
            self.send_bytes(to, wire_bytes).await;
        } else {
            debug!(peer = %to.short(), "no address; relaying the direct message");
            self.proto(InEvent::Command(Command::Broadcast(bytes)))
                .await;
        }
        Ok(id)
    }

    /// Opens a direct message if it is for us and tells the subscribers.
    fn on_direct(&mut self, envelope_bytes: &[u8], via: &str) {
        let Ok(signed) = gossipnet_proto::envelope::decode_verified(envelope_bytes) else {
            debug!("dropping a direct message that does not verify");
            return;
        };
        let env = signed.envelope();
        if env.kind != Kind::Direct {
            return;
        }
        let Ok(sealed) = Sealed::decode(&env.body) else {
            return;
        };
        if sealed.to != self.me {
            return;
        }
        let Some(body) = sealed
            .open(&self.config.secret)
            .ok()
            .and_then(|plain| ChatBody::decode(&plain))
        else {
            debug!(peer = %env.origin.short(), "direct message does not open");
            return;
        };
        debug!(peer = %env.origin.short(), via, "direct message");
        let _ = self.events.send(NodeEvent::Direct(DirectMessage {
            id: MessageId::of(envelope_bytes),
            from: env.origin,
            name: body.name,
            text: body.text,
            time_ms: env.time_ms,
        }));
    }

    async fn set_name(&mut self, name: Option<String>) -> Result<(), NodeError> {
        let mut record = self.record.record().clone();
        record.name = name.clone();
        record.seq = record.seq.max(unix_ms()).saturating_add(1);
        let signed = SignedRecord::sign(&self.config.secret, record)
            .map_err(|e| NodeError::Record(e.to_string()))?;
        self.config.name = name;
        self.record = signed;
        let data = Bytes::from(self.record.encode());
        if !self.config.seed_role {
            self.proto(InEvent::Command(Command::UpdatePeerData(data)))
                .await;
        }
        Ok(())
    }

    fn status(&self) -> Status {
        let membership = self.state.membership();
        let tree = self.state.broadcast().stats();
        Status {
            id: self.me,
            name: self.config.name.clone(),
            network_id: self.config.network_id.clone(),
            listen: self.local_addr,
            advertise: self.record.record().addrs.clone(),
            uptime_s: self.started.elapsed().as_secs(),
            role: if self.config.seed_role {
                "seed"
            } else {
                "node"
            },
            active: membership
                .active_view()
                .iter()
                .map(|id| PeerStatus {
                    id: *id,
                    addr: self.links.get(id).map(|l| l.addr),
                })
                .collect(),
            passive: membership.passive_view().to_vec(),
            links: self.links.len(),
            seeds_configured: self.seeds.len(),
            seeds_reachable: self
                .seeds
                .iter()
                .filter(|s| s.id.is_some_and(|id| self.links.contains_key(&id)))
                .count(),
            registry_size: self.registry.as_ref().map(|r| r.len()),
            broadcast: tree.broadcast,
            delivered: tree.delivered,
            forwarded: tree.payload_sent,
            duplicates: tree.duplicates,
            size_estimate: self.state.size_estimate(),
            handshake_failures: self.stats.handshake_failures,
            bytes_sent: self.stats.bytes_sent,
            bytes_received: self.stats.bytes_received,
            messages_sent: self.stats.messages_sent,
            messages_received: self.stats.messages_received,
            shutting_down: self.shutdown_at.is_some(),
        }
    }

    async fn housekeeping(&mut self) {
        if self.leaving {
            return;
        }
        let now = Instant::now();
        // Close idle links to non-neighbours (shuffle replies, probes).
        let seed_ids: BTreeSet<NodeId> = self.seeds.iter().filter_map(|s| s.id).collect();
        let idle: Vec<NodeId> = self
            .links
            .iter()
            .filter(|(id, l)| {
                !self.neighbors.contains(id)
                    && !seed_ids.contains(id)
                    && !self.dialing.contains_key(id)
                    && now.duration_since(l.last_active) > IDLE_LINK
            })
            .map(|(id, _)| *id)
            .collect();
        for peer in idle {
            debug!(peer = %peer.short(), "closing idle link");
            self.close_link(peer);
        }
        // Seeds: keep registered.
        for i in 0..self.seeds.len() {
            let due = self.seeds[i]
                .registered_at
                .is_none_or(|at| now.duration_since(at) >= REFRESH_INTERVAL);
            let linked = self.seeds[i]
                .id
                .is_some_and(|id| self.links.contains_key(&id));
            if linked && due {
                self.register_with_seed(i).await;
            } else if !linked && !self.seeds[i].dialing && now >= self.seeds[i].next_try {
                self.dial_contact(Purpose::Seed(i)).await;
            }
        }
        if !self.config.seed_role && self.neighbors.is_empty() && now >= self.next_bootstrap {
            self.bootstrap().await;
        }
    }

    /// Dials whatever might get us into the overlay.
    async fn bootstrap(&mut self) {
        let now = Instant::now();
        self.next_bootstrap = now + self.bootstrap_backoff;
        self.bootstrap_backoff = (self.bootstrap_backoff * 2).min(BOOTSTRAP_BACKOFF_MAX);
        for i in 0..self.statics.len() {
            let c = &self.statics[i];
            let linked = c.id.is_some_and(|id| self.links.contains_key(&id));
            if linked {
                if let Some(id) = c.id {
                    if !self.neighbors.contains(&id) && !self.config.seed_role {
                        self.proto(InEvent::Command(Command::Join(vec![id]))).await;
                    }
                }
            } else if !c.dialing && now >= c.next_try {
                self.dial_contact(Purpose::Static(i)).await;
            }
        }
        for i in 0..self.seeds.len() {
            let linked = self.seeds[i]
                .id
                .is_some_and(|id| self.links.contains_key(&id));
            if linked {
                if let Some(id) = self.seeds[i].id {
                    self.send_seed(id, SeedMessage::ListRequest { max: 0 })
                        .await;
                }
            } else if !self.seeds[i].dialing && now >= self.seeds[i].next_try {
                self.dial_contact(Purpose::Seed(i)).await;
            }
        }
        if self.statics.is_empty() && self.seeds.is_empty() && !self.config.seed_role {
            self.bootstrap_from_book().await;
        }
        if self.config.discovery && !self.config.seed_role {
            // Where multicast does not reach, nodes on this machine still
            // find each other on the default ports.
            for addr in discovery::probe_targets(self.local_addr.port()) {
                self.spawn_dial(vec![addr], None, Purpose::Local);
            }
        }
    }

    async fn bootstrap_from_book(&mut self) {
        let Some(store) = self.store.clone() else {
            return;
        };
        let Ok(candidates) = store.candidates(BOOK_CANDIDATES).await else {
            return;
        };
        let mut peers = Vec::new();
        for c in candidates {
            if c.id == Some(self.me) {
                continue;
            }
            if let (Some(id), Some(record)) = (c.id, &c.record) {
                self.addrs.insert(id, c.addrs.clone());
                peers.push(PeerInfo {
                    id,
                    data: Bytes::from(record.encode()),
                });
            }
            if !c.addrs.is_empty() && !c.id.is_some_and(|id| self.links.contains_key(&id)) {
                self.spawn_dial(c.addrs.clone(), c.id, Purpose::Book);
            }
        }
        if !peers.is_empty() {
            self.proto(InEvent::Command(Command::AddPeers(peers))).await;
        }
    }

    async fn dial_contact(&mut self, purpose: Purpose) {
        let contact = match purpose {
            Purpose::Static(i) => &mut self.statics[i],
            Purpose::Seed(i) => &mut self.seeds[i],
            _ => return,
        };
        contact.dialing = true;
        let text = contact.addr_text.clone();
        let resolved = tokio::net::lookup_host(text.clone()).await;
        match resolved {
            Ok(addrs) => {
                let addrs: Vec<SocketAddr> = addrs.collect();
                self.spawn_dial(addrs, None, purpose);
            }
            Err(e) => {
                warn!("cannot resolve {text}: {e}");
                let contact = match purpose {
                    Purpose::Static(i) => &mut self.statics[i],
                    Purpose::Seed(i) => &mut self.seeds[i],
                    _ => return,
                };
                contact.failed();
            }
        }
    }

    fn start_mdns(&mut self) {
        // Announce on the interface we listen on, or on all of them.
        let ip = self.local_addr.ip();
        let addrs = if ip.is_unspecified() {
            Vec::new()
        } else {
            vec![ip]
        };
        match Mdns::start_named(
            self.me,
            self.config.name.as_deref(),
            &self.config.network_id,
            self.local_addr.port(),
            addrs,
            self.discovered_tx.clone(),
        ) {
            Ok(mdns) => {
                info!("LAN discovery on (mDNS {})", discovery::SERVICE_TYPE);
                self.mdns = Some(mdns);
            }
            Err(e) => info!("LAN discovery by mDNS unavailable: {e}; probing local ports"),
        }
    }

    /// A node of our network found on the LAN: a contact if we are alone, a
    /// passive peer otherwise.
    async fn on_discovered(&mut self, found: Discovered) {
        if found.id == self.me || found.addrs.is_empty() || self.leaving {
            return;
        }
        let known = self.addrs.contains_key(&found.id);
        self.addrs.entry(found.id).or_insert(found.addrs);
        if self.neighbors.contains(&found.id) {
            return;
        }
        if self.neighbors.is_empty() {
            debug!(peer = %found.id.short(), "found on the LAN; joining through it");
            self.proto(InEvent::Command(Command::Join(vec![found.id])))
                .await;
        } else if !known {
            let peer = PeerInfo {
                id: found.id,
                data: Bytes::new(),
            };
            self.proto(InEvent::Command(Command::AddPeers(vec![peer])))
                .await;
        }
    }

    async fn register_with_seed(&mut self, i: usize) {
        let Some(seed) = self.seeds.get(i).and_then(|s| s.id) else {
            return;
        };
        self.seeds[i].registered_at = Some(Instant::now());
        if self.config.seed_role {
            return;
        }
        self.send_seed(seed, SeedMessage::Register(self.record.clone()))
            .await;
        self.send_seed(seed, SeedMessage::ListRequest { max: 0 })
            .await;
    }

    async fn send_seed(&mut self, seed: NodeId, msg: SeedMessage) {
        let bytes = Bytes::from(wire::encode(&Message::Seed(msg)));
        self.send_bytes(seed, bytes).await;
    }

    async fn on_seed_message(&mut self, from: NodeId, msg: SeedMessage) {
        if self.registry.is_some() {
            self.registry_input(SeedInput::Message { from, msg }).await;
            return;
        }
        let Some(i) = self.seeds.iter().position(|s| s.id == Some(from)) else {
            debug!(peer = %from.short(), "seed message from a node that is not our seed");
            return;
        };
        match msg {
            SeedMessage::Registered { .. } => {
                if !self.seeds[i].registered {
                    self.seeds[i].registered = true;
                    let n = self.seeds.iter().filter(|s| s.registered).count();
                    let total = self.seeds.len();
                    info!(
                        "registered with seed {} ({n}/{total})",
                        self.seeds[i].addr_text
                    );
                    if n == total / 2 + 1 {
                        info!("registered with a majority of seeds");
                    }
                }
            }
            SeedMessage::List(records) => self.on_seed_list(records).await,
            other => debug!("unexpected seed message {other:?}"),
        }
    }

    /// A seed's sample of live nodes: their addresses, passive peers, and a
    /// contact to join through if we have no neighbour yet.
    async fn on_seed_list(&mut self, records: Vec<SignedRecord>) {
        let mut peers = Vec::new();
        for record in records {
            let id = record.id();
            if id == self.me || record.verify().is_err() {
                continue;
            }
            self.addrs.insert(id, record.record().addrs.clone());
            peers.push(PeerInfo {
                id,
                data: Bytes::from(record.encode()),
            });
            if let Some(store) = &self.store {
                store.record(record);
            }
        }
        if peers.is_empty() {
            return;
        }
        let contact = peers.choose(&mut self.rng).map(|p| p.id);
        self.proto(InEvent::Command(Command::AddPeers(peers))).await;
        if self.neighbors.is_empty() {
            if let Some(contact) = contact {
                self.proto(InEvent::Command(Command::Join(vec![contact])))
                    .await;
            }
        }
    }

    async fn registry_input(&mut self, input: SeedInput) {
        let now = self.now_std();
        let Some(registry) = self.registry.as_mut() else {
            return;
        };
        let outs = registry.handle(input, now, &mut self.rng);
        for out in outs {
            match out {
                SeedOutput::Send { to, msg } => self.send_seed(to, msg).await,
                SeedOutput::Probe { id, record } => {
                    let addrs = record.record().addrs.clone();
                    self.spawn_dial(addrs, Some(id), Purpose::Probe(id));
                }
                SeedOutput::Added { id } => info!(node = %id, "node registered"),
                SeedOutput::Removed { id, reason } => {
                    let why = match reason {
                        RemoveReason::Expired => "expired",
                        RemoveReason::Left => "left",
                        RemoveReason::Dead => "dead",
                    };
                    info!(node = %id, reason = why, "removed node from registry");
                }
                SeedOutput::Refused { from, reason } => {
                    warn!(peer = %from.short(), "refused seed message: {reason:?}")
                }
            }
        }
    }

    /// Graceful leave: neighbours and seeds are told, queued messages are
    /// written, then every link is closed.
    async fn leave(&mut self) {
        if self.leaving {
            return;
        }
        info!("leaving the network");
        if let Some(mdns) = self.mdns.take() {
            // Sending the goodbye blocks for a moment; not on this thread.
            tokio::task::spawn_blocking(move || mdns.stop());
        }
        if !self.config.seed_role {
            self.proto(InEvent::Command(Command::Quit)).await;
            let seeds: Vec<NodeId> = self.seeds.iter().filter_map(|s| s.id).collect();
            for seed in seeds {
                if self.links.contains_key(&seed) {
                    self.send_seed(seed, SeedMessage::Leave).await;
                }
            }
        }
        self.leaving = true;
        let writers: Vec<JoinHandle<()>> = self
            .links
            .drain()
            .map(|(_, entry)| {
                drop(entry.tx);
                entry.writer
            })
            .collect();
        let _ = tokio::time::timeout(LEAVE_FLUSH, async {
            for w in writers {
                let _ = w.await;
            }
        })
        .await;
    }

    /// Abrupt stop, as if the process had been killed: nobody is told, and
    /// queued messages are not written. Aborting a link's tasks drops both
    /// halves of its socket, so the peer sees the connection end (EOF or
    /// reset) and nothing else, as it would from a dead process.
    fn crash(&mut self) {
        info!("crashing: links dropped without goodbyes");
        self.leaving = true;
        for (_, entry) in self.links.drain() {
            entry.reader.abort();
            entry.writer.abort();
        }
        // LAN discovery is left to its drop, which withdraws the
        // announcement: its daemon thread cannot be stopped silently.
        self.mdns = None;
    }
}

/// Reads messages off a link and hands them to the actor. A message that
/// does not decode closes the link: the peer is broken or hostile.
async fn read_link(mut reader: LinkReader, conn: u64, tx: mpsc::Sender<LinkEvent>) {
    let peer = reader.peer();
    let error = loop {
        match reader.recv().await {
            Ok(Some(bytes)) => match wire::decode(&bytes) {
                Ok(msg) => {
                    let len = bytes.len();
                    if tx
                        .send(LinkEvent::Message { peer, msg, len })
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                Err(e) => {
                    warn!("closing link: bad message from peer: {e}");
                    break Some(format!("bad message: {e}"));
                }
            },
            Ok(None) => break None,
            Err(e) => break Some(e.to_string()),
        }
    };
    let _ = tx.send(LinkEvent::Closed { peer, conn, error }).await;
}

/// Writes queued messages to a link, as many as are waiting in one batch
/// (one encryption pass and one write), until the queue closes.
async fn write_link(mut writer: LinkWriter, mut rx: mpsc::Receiver<Bytes>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(more) => batch.push(more),
                Err(_) => break,
            }
        }
        if let Err(e) = writer.send(&batch).await {
            debug!("write failed: {e}");
            return;
        }
        batch.clear();
    }
    let _ = writer.shutdown().await;
}

/// Sleeps until `at`; forever when there is no `at` (its `select!` branch
/// is disabled then anyway).
async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
