//! The node actor: one task that owns the protocol state, the links, the
//! timers and the seed logic, and reads as a router between the parts that
//! do the work.
//!
//! Everything that touches the protocol state happens on this task, so the
//! state needs no lock. Around it, small tasks do the waiting: a dial or
//! handshake task per new connection and a reader and a writer task per
//! link. They talk to the actor over bounded channels only, so a flood from
//! the network turns into TCP backpressure, never into unbounded memory.
//!
//! The parts, each owned by [`Actor`]:
//! - [`driver`]: feeds `gossipnet_proto::State` and carries out its output
//!   (the one place protocol output becomes I/O);
//! - [`timers`]: the protocol's timers;
//! - [`links`]: the link table, one link per peer, byte budgets, inbound
//!   caps;
//! - [`dial`]: dialling and accepting, and what a dial ends in;
//! - [`bootstrap`]: static peers, the address book, LAN discovery, retries;
//! - [`seeds`]: the node's role and the seed protocol's I/O (the client
//!   and registry themselves are `gossipnet_proto::seed`);
//! - [`direct`]: direct messages;
//! - [`shutdown`]: admin shutdown commands;
//! - [`report`]: status, crawl answers, counters.
//!
//! The `select!` serves, in priority order, local commands, due timers,
//! link events, the listener, housekeeping, LAN discovery and the seed
//! registry's tick: local work before new remote work.

mod bootstrap;
mod dial;
mod direct;
mod discourage;
mod driver;
mod links;
mod report;
mod seeds;
mod shutdown;
#[cfg(test)]
mod sync_tests;
mod timers;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use gossipnet_proto::envelope::{Envelope, Kind, SignedEnvelope};
use gossipnet_proto::query::Query;
use gossipnet_proto::record::SignedRecord;
use gossipnet_proto::seed::{ClientConfig, ClientMode, SeedClient, SeedInput};
use gossipnet_proto::wire::Message;
use gossipnet_proto::{
    Command, InEvent, MessageId, NodeId, Route, RuntimeMessage, SecretKey, State, Timer,
};
use rand::rngs::StdRng;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::{debug, info, Instrument};

use crate::admin::AdminState;
use crate::config::NodeConfig;
use crate::event::EventHub;
use crate::store::StoreHandle;
use crate::{NodeError, Status};

use crate::time::unix_ms;
pub(crate) use report::Counters;

use bootstrap::Bootstrap;
use dial::Dialer;
use driver::{Driver, Encoded};
use links::{LinkEvent, Links};
use seeds::Role;
use shutdown::Shutdown;
use timers::Timers;

/// Capacity of the channel from link tasks to the actor: deep enough to
/// absorb a burst from many links, shallow enough that a flood stalls the
/// readers (and so the senders' TCP windows) instead of growing memory.
const LINK_EVENT_QUEUE: usize = 4096;
/// Capacity of the command channel from handles to the actor.
pub(crate) const COMMAND_QUEUE: usize = 256;
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
/// A neighbour's link still without a round trip this long after its last
/// ping (or its start) is pinged again: a lost probe must not leave
/// `gossipnet peers` blank, and a few seconds is an age for a ping.
const PROBE_RETRY: Duration = Duration::from_secs(3);
/// After closing a link on purpose, its reader waits this long for the peer
/// to close its end (so messages already sent still arrive), then stops.
const LINGER: Duration = Duration::from_secs(5);
/// First delay between bootstrap attempts (and redials of a static peer or
/// a seed) while they fail.
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
/// How long the loop sleeps when no protocol timer is set.
const NO_TIMER: Duration = Duration::from_secs(3600);

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
    /// Stop at once, as a killed process would: no goodbyes. Sent only by
    /// the `test-utils` hook `Node::crash`.
    #[cfg_attr(not(feature = "test-utils"), allow(dead_code))]
    Crash,
    /// An admin command signed elsewhere, to broadcast.
    Admin {
        command: Bytes,
        reply: oneshot::Sender<Result<MessageId, NodeError>>,
    },
    /// Stored broadcasts, from the store.
    History {
        query: crate::HistoryQuery,
        reply: crate::history::HistoryReply,
    },
}

// Which way a link was opened: reported in the status, so it lives there.
pub(crate) use crate::status::Direction;

/// What this node is: its record, where it listens, since when, and the
/// sequence of the envelopes it signs.
struct Local {
    record: SignedRecord,
    listen: SocketAddr,
    started: Instant,
    /// Starts at the wall clock, so a restarted node's envelopes are not
    /// taken for replays of the last run's.
    envelope_seq: u64,
}

impl Local {
    fn sign_envelope(
        &mut self,
        secret: &SecretKey,
        kind: Kind,
        body: Bytes,
    ) -> Result<Bytes, NodeError> {
        self.envelope_seq += 1;
        let envelope = Envelope {
            origin: secret.node_id(),
            seq: self.envelope_seq,
            time_ms: unix_ms(),
            kind,
            body,
        };
        let signed = SignedEnvelope::sign(secret, envelope)?;
        Ok(signed.encode())
    }
}

/// The actor. See the module docs; each field past the first few is one
/// of the parts.
pub(crate) struct Actor {
    me: NodeId,
    config: NodeConfig,
    local: Local,
    /// For the seed client's choice of contact and the registry's samples.
    rng: StdRng,
    driver: Driver,
    timers: Timers<Timer>,
    links: Links,
    dialer: Dialer,
    bootstrap: Bootstrap,
    role: Role,
    seeds: SeedClient,
    direct: direct::Pending,
    shutdown: Shutdown,
    counters: Counters,
    cmd_rx: mpsc::Receiver<ToActor>,
    events: EventHub,
    store: Option<StoreHandle>,
    /// Set once the node starts leaving: nothing new is taken on.
    leaving: bool,
    /// How long each address in the dialler's map has gone unneeded.
    addr_ages: links::AddrAges,
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
        events: EventHub,
        store: Option<StoreHandle>,
    ) -> Self {
        let me = config.secret.node_id();
        let links = Links::new(me, &config.limits);
        let dialer = Dialer::new(&config, links.events_tx());
        let mode = if config.seed_role {
            ClientMode::DialOnly
        } else {
            ClientMode::Register
        };
        let client_config = ClientConfig {
            redial_min: BOOTSTRAP_BACKOFF_MIN,
            redial_max: BOOTSTRAP_BACKOFF_MAX,
            mode,
            ..ClientConfig::default()
        };
        Self {
            me,
            seeds: SeedClient::new(record.clone(), config.seeds.clone(), client_config),
            local: Local {
                record,
                listen: local_addr,
                started: Instant::now(),
                envelope_seq: unix_ms(),
            },
            rng,
            driver: Driver::new(state),
            timers: Timers::new(),
            links,
            dialer,
            bootstrap: Bootstrap::new(&config.peers),
            role: Role::new(config.seed_role, &config.limits),
            direct: direct::Pending::default(),
            shutdown: Shutdown::new(AdminState::load(config.data_dir.as_deref())),
            counters: Counters::default(),
            cmd_rx,
            events,
            store,
            leaving: false,
            addr_ages: links::AddrAges::default(),
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
            let is_seed = !self.role.in_overlay();
            loop {
                let next_timer = self
                    .timers
                    .next_deadline()
                    .unwrap_or_else(|| Instant::now() + NO_TIMER);
                let shutdown_at = self.shutdown.deadline();
                let accept_paused = self.dialer.backoff.paused_until();
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
                    Some(ev) = self.links.recv() => self.on_link_event(ev).await,
                    accepted = listener.accept(), if accept_paused.is_none() => match accepted {
                        Ok((stream, addr)) => self.on_accept(stream, addr),
                        Err(e) => self.on_accept_failed(&e),
                    },
                    _ = sleep_until_some(accept_paused), if accept_paused.is_some() => {
                        self.dialer.backoff.resume()
                    }
                    _ = housekeeping.tick() => self.housekeeping().await,
                    Some(found) = self.bootstrap.discovered() => self.on_discovered(found).await,
                    _ = seed_tick.tick(), if is_seed => {
                        self.registry_input(SeedInput::Tick).await
                    }
                    _ = sleep_until_some(shutdown_at), if shutdown_at.is_some() => {
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
        if self.config.discovery && self.role.in_overlay() {
            self.start_mdns();
        }
        if self.role.in_overlay() {
            // An empty join starts the protocol's timers; a seed keeps out
            // of the overlay.
            self.proto(InEvent::Command(Command::Join(Vec::new())))
                .await;
        }
        self.bootstrap().await;
    }

    async fn fire_timers(&mut self) {
        let now = Instant::now();
        while let Some(timer) = self.timers.pop_due(now) {
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
            ToActor::History { query, reply } => {
                crate::history::answer(self.store.as_ref(), self.me, query, reply);
            }
            // Both end the loop in `run`.
            ToActor::Leave { .. } | ToActor::Crash => {}
        }
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
            LinkEvent::Message {
                peer,
                conn,
                msg,
                len,
            } => {
                if self.links.superseded(&peer, conn) {
                    debug!(peer = %peer.short(), "dropping a message from a replaced link");
                    return;
                }
                self.counters.received(len as u64);
                self.links.touch(&peer, len);
                self.on_message(peer, msg).await
            }
            LinkEvent::Closed { peer, conn, error } => {
                // Scored after the close is handled, which a ban's close
                // of the same link would otherwise pre-empt.
                let offence = error.as_deref().and_then(discourage::offence_of_link_error);
                self.on_closed(peer, conn, error).await;
                if let Some(offence) = offence {
                    self.discourage(peer, offence);
                }
            }
        }
    }

    /// A message from a peer: the overlay's go to the protocol (unless we
    /// are a seed, which keeps out of it), the rest to their parts.
    async fn on_message(&mut self, peer: NodeId, msg: Message) {
        if let Message::Pong(nonce) = msg {
            self.links.ponged(&peer, nonce);
        }
        match RuntimeMessage::route(msg) {
            Route::Runtime(msg) => self.on_runtime_message(peer, msg).await,
            Route::State(_) if !self.role.in_overlay() => {}
            Route::State(msg) => {
                if let Message::Membership(gossipnet_proto::hyparview::Message::Disconnect {
                    alive,
                }) = &msg
                {
                    if *alive {
                        self.driver.hint_down(peer, crate::DownReason::Dropped);
                    } else {
                        info!(peer = %peer.short(), "peer left the network");
                        self.driver.hint_down(peer, crate::DownReason::Left);
                    }
                }
                self.proto(InEvent::RecvMessage(peer, msg)).await;
            }
        }
    }

    /// The one dispatcher of the messages `gossipnet_proto::State` leaves
    /// to the runtime (see [`RuntimeMessage`] for why each is ours).
    async fn on_runtime_message(&mut self, peer: NodeId, msg: RuntimeMessage) {
        match msg {
            RuntimeMessage::Seed(m) => self.on_seed_message(peer, m).await,
            RuntimeMessage::Direct(bytes) => self.on_direct(&bytes, "link"),
            RuntimeMessage::Query(Query::Status { nonce }) => {
                let reply = Message::Query(Query::StatusReply {
                    nonce,
                    info: self.node_info(),
                });
                self.send_reply(peer, Encoded::new(&reply), "a status query")
                    .await;
            }
            RuntimeMessage::Query(Query::StatusReply { .. }) => {}
            RuntimeMessage::Admin(bytes) => {
                // Nodes hear admin commands through the overlay; only a seed,
                // which is outside it, takes them over a link.
                if !self.role.in_overlay() {
                    self.on_admin(&bytes, peer);
                }
            }
        }
    }

    async fn broadcast(&mut self, kind: Kind, body: Bytes) -> Result<MessageId, NodeError> {
        if !self.role.in_overlay() {
            return Err(NodeError::SeedCannotBroadcast);
        }
        let bytes = self.local.sign_envelope(&self.config.secret, kind, body)?;
        let id = MessageId::of(&bytes);
        // Ours goes into the history like any other (neighbours that missed
        // it fetch it from there) and to subscribers, marked as ours.
        if let Ok(signed) = SignedEnvelope::decode(&bytes) {
            self.record_delivery(id, &signed, &bytes, 0, true, false);
        }
        self.proto(InEvent::Command(Command::Broadcast(bytes)))
            .await;
        Ok(id)
    }

    async fn set_name(&mut self, name: Option<String>) -> Result<(), NodeError> {
        let mut record = self.local.record.record().clone();
        record.name = name.clone();
        record.seq = record.seq.max(unix_ms()).saturating_add(1);
        let signed = SignedRecord::sign(&self.config.secret, record)?;
        self.config.name = name;
        self.seeds.set_record(signed.clone());
        self.local.record = signed;
        let data = Bytes::from(self.local.record.encode());
        if self.role.in_overlay() {
            self.proto(InEvent::Command(Command::UpdatePeerData(data)))
                .await;
        }
        Ok(())
    }

    /// Graceful leave: neighbours and seeds are told, queued messages are
    /// written, then every link is closed.
    async fn leave(&mut self) {
        if self.leaving {
            return;
        }
        info!("leaving the network");
        if let Some(mdns) = self.bootstrap.mdns.take() {
            // Sending the goodbye blocks for a moment; not on this thread.
            tokio::task::spawn_blocking(move || mdns.stop());
        }
        if self.role.in_overlay() {
            self.proto(InEvent::Command(Command::Quit)).await;
            let links = &self.links;
            let out = self.seeds.handle_leave(|id| links.contains(id));
            self.seed_client_outputs(out).await;
        }
        self.leaving = true;
        let writers = self.links.close_all();
        let _ = tokio::time::timeout(LEAVE_FLUSH, async {
            for w in writers {
                let _ = w.await;
            }
        })
        .await;
    }

    /// Abrupt stop, as if the process had been killed: nobody is told, and
    /// queued messages are not written.
    fn crash(&mut self) {
        info!("crashing: links dropped without goodbyes");
        self.leaving = true;
        self.links.abort_all();
        // LAN discovery is left to its drop, which withdraws the
        // announcement: its daemon thread cannot be stopped silently.
        self.bootstrap.mdns = None;
    }
}

/// Sleeps until `at`; forever when there is no `at` (its `select!` branch
/// is disabled then anyway).
async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
