//! The protocol state of one node: membership, broadcast, liveness and the
//! size estimate, composed behind one input and one output vocabulary.
//!
//! [`State`] is what a runtime drives. It feeds in [`InEvent`]s (a message
//! from a peer, a user command, a timer, a failed link) with the current time
//! and carries out the [`OutEvent`]s that come back (send a message, set a
//! timer, close a link, tell the user). The simulator and the tokio node both
//! drive exactly this type, which is why a behaviour seen at 100,000
//! simulated nodes is the behaviour of the real program.
//!
//! The router's own rules are few: HyParView's neighbour changes become
//! Plumtree's eager/lazy peers; every message from a peer counts as a sign of
//! life; a quiet neighbour is pinged and, if it stays quiet, declared dead and
//! handed to HyParView's repair; and a broadcast payload is checked (hash
//! first, then, if asked, its signature) before Plumtree sees it.
//!
//! With anti-entropy on ([`Config::sync`]), the router also keeps the
//! history ([`crate::history`]): every envelope delivered or broadcast is
//! recorded, one already held is never delivered again (even after a
//! restart, once the runtime has given it back with [`State::restore`]),
//! one outside the age window is dropped, and each new link starts a
//! catch-up session ([`crate::sync`]) in place of Plumtree's `IHave` of
//! recent messages. The age window needs the wall clock, which the runtime
//! passes in with [`State::set_wall_clock`].
//!
//! Not every [`Message`] is the overlay's to decide on: [`RuntimeMessage`]
//! names the variants that belong to the runtime, and why. A runtime splits
//! what arrives with [`RuntimeMessage::route`] before feeding `State`; one
//! fed in anyway comes back as [`OutEvent::Runtime`], never silently lost.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::Rng;

use crate::envelope::SignedEnvelope;
use crate::history::{Age, Meta};
use crate::identity::KeyCache;
use crate::plumtree::Delivered;
use crate::query::Query;
use crate::seed::SeedMessage;
use crate::sync::AntiEntropy;
use crate::wire::Message;
use crate::{hyparview, plumtree, size, sync, MessageId, NodeId};

/// Liveness tunables.
#[derive(Debug, Clone)]
pub struct LivenessConfig {
    /// How often neighbours' silence is checked.
    pub tick: Duration,
    /// A neighbour quiet this long is pinged. Busy links carry traffic and
    /// are never pinged.
    pub ping_after: Duration,
    /// A neighbour quiet this long is dead: three missed pings at the
    /// default tick.
    pub dead_after: Duration,
}

impl Default for LivenessConfig {
    fn default() -> Self {
        Self {
            tick: Duration::from_secs(5),
            ping_after: Duration::from_secs(10),
            dead_after: Duration::from_secs(30),
        }
    }
}

/// Configuration of the whole protocol.
#[derive(Debug, Clone)]
pub struct Config {
    /// HyParView.
    pub membership: hyparview::Config,
    /// Plumtree.
    pub broadcast: plumtree::Config,
    /// Size estimate; `None` turns it off.
    pub size: Option<size::Config>,
    /// Liveness.
    pub liveness: LivenessConfig,
    /// History and anti-entropy; `None` keeps no history (and Plumtree's
    /// `IHave` of recent messages is then how a new link catches up).
    pub sync: Option<sync::Config>,
    /// Verify each broadcast envelope's signature before delivering or
    /// forwarding it. The real node always does; the simulator may skip it
    /// because its payloads are not envelopes.
    pub verify_envelopes: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            membership: hyparview::Config::default(),
            broadcast: plumtree::Config::default(),
            size: Some(size::Config::default()),
            liveness: LivenessConfig::default(),
            sync: Some(sync::Config::default()),
            verify_envelopes: true,
        }
    }
}

/// What the user (or embedding program) asks of the node.
#[derive(Debug, Clone)]
pub enum Command {
    /// Join the network through these contacts.
    Join(Vec<NodeId>),
    /// Broadcast an encoded, signed envelope.
    Broadcast(Bytes),
    /// Our own published data (signed record) changed.
    UpdatePeerData(Bytes),
    /// Peers learned outside the overlay (from a seed, the address book or
    /// LAN discovery), with their data: kept as passive peers, so repair
    /// can reach beyond our own component.
    AddPeers(Vec<hyparview::PeerInfo>),
    /// Leave the network gracefully.
    Quit,
}

/// Inputs.
#[derive(Debug, Clone)]
pub enum InEvent {
    /// A decoded message from a peer: one of the overlay's, as
    /// [`RuntimeMessage::route`] tells them apart.
    RecvMessage(NodeId, Message),
    /// A user command.
    Command(Command),
    /// A timer fired.
    TimerExpired(Timer),
    /// The transport to this peer failed (dial refused, link reset). Not for
    /// links closed on purpose.
    PeerDisconnected(NodeId),
    /// The link to this peer was replaced by a new connection (the one-link
    /// rule settling a simultaneous dial, or a redial): messages the peer
    /// sent on the old one may be lost, so recent ones are announced again.
    LinkReplaced(NodeId),
}

/// Outputs.
#[derive(Debug, Clone)]
pub enum OutEvent {
    /// Send a message, opening a link if there is none.
    SendMessage(NodeId, Message),
    /// Call back with [`InEvent::TimerExpired`] after the delay.
    ScheduleTimer(Duration, Timer),
    /// Close the link to this peer once queued messages are out.
    DisconnectPeer(NodeId),
    /// Tell the user.
    EmitEvent(Event),
    /// New data for a peer, for the address book.
    PeerData(NodeId, Bytes),
    /// A message from this peer that is the runtime's, handed back
    /// untouched; see [`RuntimeMessage`].
    Runtime(NodeId, RuntimeMessage),
}

/// The link messages that belong to the runtime, not to the overlay: the
/// one place that says which variants of [`Message`] `State` does not
/// decide on, and why.
///
/// - `Seed`: the seed protocol runs beside the overlay, between a node's
///   [`SeedClient`](crate::seed::SeedClient) and a seed's
///   [`SeedRegistry`](crate::seed::SeedRegistry); a seed runs no overlay at
///   all, so these cannot need a `State`.
/// - `Direct`: sealed to one node; opening it takes the node's secret key,
///   and sending it takes link and dial decisions, both the runtime's.
/// - `Query`: a crawl's status query, answered with what only the runtime
///   knows (links, uptime, seeds, a seed's registry).
/// - `Admin`: whether to obey a command depends on the configured admin
///   keys, the wall clock and the data directory.
///
/// None of them counts as a sign of life of a neighbour: only what the
/// overlay hears does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuntimeMessage {
    /// The seed protocol.
    Seed(SeedMessage),
    /// A direct message (an encoded signed envelope of kind `Direct`).
    Direct(Bytes),
    /// A status query of a crawl, or its answer.
    Query(Query),
    /// An admin command (an encoded signed envelope).
    Admin(Bytes),
}

/// Where an incoming message goes; see [`RuntimeMessage::route`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// To [`State`], as [`InEvent::RecvMessage`].
    State(Message),
    /// To the runtime.
    Runtime(RuntimeMessage),
}

impl RuntimeMessage {
    /// Splits an incoming message by who decides on it.
    pub fn route(message: Message) -> Route {
        match message {
            Message::Seed(m) => Route::Runtime(Self::Seed(m)),
            Message::Direct(b) => Route::Runtime(Self::Direct(b)),
            Message::Query(q) => Route::Runtime(Self::Query(q)),
            Message::Admin(b) => Route::Runtime(Self::Admin(b)),
            m @ (Message::Membership(_)
            | Message::Broadcast(_)
            | Message::Sync(_)
            | Message::Ping(_)
            | Message::Pong(_)
            | Message::Size(_)) => Route::State(m),
        }
    }
}

/// Timers of all layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Timer {
    /// Membership.
    Membership(hyparview::Timer),
    /// Broadcast.
    Broadcast(plumtree::Timer),
    /// Liveness check.
    Liveness,
    /// Size-estimate exchange.
    Size,
    /// Anti-entropy.
    Sync(sync::Timer),
}

/// What the user learns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A peer entered the active view.
    NeighborUp(NodeId),
    /// A peer left the active view.
    NeighborDown(NodeId),
    /// A broadcast message arrived (exactly once per message).
    Received(Delivered),
    /// A peer broke the protocol; its link is being closed.
    Misbehaved {
        /// The peer.
        peer: NodeId,
        /// What it did.
        reason: &'static str,
    },
}

/// Counters of the router.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Pings sent: on quiet links, and to time new and busy ones.
    pub pings_sent: u64,
    /// Neighbours declared dead after silence.
    pub dead_by_silence: u64,
    /// Envelopes refused for a bad signature.
    pub bad_envelopes: u64,
    /// Broadcast envelopes dropped for being outside the age window.
    pub outside_window: u64,
    /// Broadcasts dropped because the history held them already (from
    /// before a restart, or caught up).
    pub known_from_history: u64,
}

/// Origins whose decompressed keys a node keeps: every active sender of a
/// network of thousands, at about 200 bytes a key, and only as many as it
/// has heard from.
const KEY_CACHE_CAPACITY: usize = 1024;

/// A neighbour's round trip is measured again after this long: it changes
/// with load, and one ping per neighbour this often keeps Plumtree's graft
/// waits current at a cost that does not grow with the message rate. A new
/// link is first timed at the next liveness tick, not at once: a ping that
/// overtakes the answer making us neighbours (or finds it lost) is taken
/// for a stale link and closes it, which under loss cut nodes off.
pub const RTT_REFRESH: Duration = Duration::from_secs(30);

/// Round-trip timing of one neighbour.
#[derive(Debug, Default, Clone, Copy)]
struct Timing {
    /// The ping that times it, if one was sent and not answered: its nonce
    /// and when it left.
    pending: Option<(u64, Instant)>,
    /// When it was last timed.
    measured: Option<Instant>,
}

impl Timing {
    /// Whether a timing ping is out and may still be answered: one out for
    /// longer than [`RTT_REFRESH`] was lost, or its link.
    fn waiting(&self, now: Instant) -> bool {
        self.pending
            .is_some_and(|(_, sent)| now.saturating_duration_since(sent) < RTT_REFRESH)
    }
}

/// The protocol state of one node. See the module docs.
#[derive(Debug)]
pub struct State<R> {
    me: NodeId,
    config: Config,
    rng: R,
    membership: hyparview::HyParView,
    broadcast: plumtree::Plumtree,
    size: Option<size::SizeEstimator>,
    sync: Option<AntiEntropy>,
    /// The wall clock (Unix ms) as the runtime last gave it.
    now_ms: Option<u64>,
    /// When each neighbour was last heard from.
    last_heard: BTreeMap<NodeId, Instant>,
    /// Round-trip timing of each neighbour.
    timing: BTreeMap<NodeId, Timing>,
    ping_nonce: u64,
    started: bool,
    stats: Stats,
    /// The origins' decompressed keys, for checking their envelopes.
    keys: KeyCache,
    out: VecDeque<OutEvent>,
    hpv_out: VecDeque<hyparview::OutEvent>,
    tree_out: VecDeque<plumtree::OutEvent>,
    size_out: VecDeque<(NodeId, size::Message)>,
    sync_out: VecDeque<sync::OutEvent>,
}

impl<R: Rng> State<R> {
    /// A node that has not joined yet. `data` is what it publishes about
    /// itself (its encoded signed record); `rng` drives every random choice,
    /// so a seeded one makes the node reproducible.
    pub fn new(me: NodeId, data: Bytes, config: Config, rng: R) -> Self {
        let size = config.size.clone().map(|c| size::SizeEstimator::new(me, c));
        let sync = config.sync.clone().map(AntiEntropy::new);
        let mut tree_config = config.broadcast.clone();
        if sync.is_some() {
            // A new link catches up by anti-entropy, which covers the whole
            // history; an `IHave` of the recent ones as well would only race
            // it and deliver out of order.
            tree_config.catch_up_count = 0;
        }
        Self {
            me,
            membership: hyparview::HyParView::new(me, data, config.membership.clone()),
            broadcast: plumtree::Plumtree::new(me, tree_config),
            size,
            sync,
            now_ms: None,
            config,
            rng,
            last_heard: BTreeMap::new(),
            timing: BTreeMap::new(),
            ping_nonce: 0,
            started: false,
            stats: Stats::default(),
            keys: KeyCache::new(KEY_CACHE_CAPACITY),
            out: VecDeque::new(),
            hpv_out: VecDeque::new(),
            tree_out: VecDeque::new(),
            size_out: VecDeque::new(),
            sync_out: VecDeque::new(),
        }
    }

    /// Gives the wall clock (Unix ms), by which envelope ages are judged;
    /// call it before [`State::handle`] whenever the clock may have moved.
    /// Until it is called, ages are not judged.
    pub fn set_wall_clock(&mut self, now_ms: u64) {
        self.now_ms = Some(now_ms);
    }

    /// Gives back envelopes the runtime stored (verified when they were
    /// first delivered), before the node starts: they are history again,
    /// so none is delivered a second time. Returns how many were taken.
    pub fn restore(&mut self, envelopes: impl IntoIterator<Item = Bytes>) -> usize {
        let Some(sync) = &mut self.sync else {
            return 0;
        };
        let now_ms = self.now_ms.unwrap_or(0);
        envelopes
            .into_iter()
            .filter(|content| {
                Meta::decode(content)
                    .is_some_and(|meta| sync.history_mut().insert(meta, content.clone(), now_ms))
            })
            .count()
    }

    /// Anti-entropy and the history, if enabled.
    pub fn sync(&self) -> Option<&AntiEntropy> {
        self.sync.as_ref()
    }

    /// This node's id.
    pub fn me(&self) -> NodeId {
        self.me
    }

    /// The membership layer, for inspection.
    pub fn membership(&self) -> &hyparview::HyParView {
        &self.membership
    }

    /// The broadcast layer, for inspection.
    pub fn broadcast(&self) -> &plumtree::Plumtree {
        &self.broadcast
    }

    /// The gossip estimate of the network size, if enabled.
    pub fn size_estimate(&self) -> Option<f64> {
        self.size.as_ref().map(|s| s.estimate())
    }

    /// Router counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Handles one input at time `now`; the returned iterator yields the
    /// outputs and must be drained before the next call.
    pub fn handle(
        &mut self,
        event: InEvent,
        now: Instant,
    ) -> std::collections::vec_deque::Drain<'_, OutEvent> {
        if !self.started {
            self.started = true;
            self.out.push_back(OutEvent::ScheduleTimer(
                self.config.liveness.tick,
                Timer::Liveness,
            ));
            if let Some(size) = &self.size {
                self.out
                    .push_back(OutEvent::ScheduleTimer(size.tick_interval(), Timer::Size));
            }
            if let Some(sync) = &mut self.sync {
                sync.start(&mut self.sync_out);
                self.flush_sync(now);
            }
        }
        match event {
            InEvent::RecvMessage(from, message) => self.on_message(from, message, now),
            InEvent::Command(command) => self.on_command(command, now),
            InEvent::TimerExpired(timer) => self.on_timer(timer, now),
            InEvent::PeerDisconnected(peer) => {
                self.membership_input(hyparview::InEvent::PeerDisconnected(peer), now)
            }
            InEvent::LinkReplaced(peer) => {
                self.broadcast_input(plumtree::InEvent::LinkReplaced(peer), now);
                if self.membership.active_view().contains(&peer) {
                    if let Some(sync) = &mut self.sync {
                        sync.on_link_up(peer, now, &mut self.sync_out);
                    }
                    self.flush_sync(now);
                }
            }
        }
        self.out.drain(..)
    }

    fn on_message(&mut self, from: NodeId, message: Message, now: Instant) {
        let message = match RuntimeMessage::route(message) {
            Route::State(m) => m,
            Route::Runtime(m) => {
                self.out.push_back(OutEvent::Runtime(from, m));
                return;
            }
        };
        if let Some(at) = self.last_heard.get_mut(&from) {
            *at = now;
        }
        match message {
            Message::Membership(m) => {
                self.membership_input(hyparview::InEvent::RecvMessage(from, m), now)
            }
            Message::Broadcast(plumtree::Message::Gossip(gossip)) => {
                let id = MessageId::of(&gossip.content);
                if !self.broadcast.has_seen(&id) {
                    let signed = if self.config.verify_envelopes {
                        match crate::envelope::decode_verified_with(&gossip.content, &mut self.keys)
                        {
                            Ok(signed) => Some(signed),
                            Err(_) => {
                                self.stats.bad_envelopes += 1;
                                self.misbehaved(
                                    from,
                                    "broadcast envelope failed verification",
                                    now,
                                );
                                return;
                            }
                        }
                    } else {
                        // Simulated payloads need not be envelopes; those
                        // that are get a history.
                        SignedEnvelope::decode(&gossip.content).ok()
                    };
                    if let (Some(sync), Some(signed)) = (&self.sync, signed) {
                        let meta = Meta::of(&signed, &gossip.content);
                        let history = sync.history();
                        if self
                            .now_ms
                            .is_some_and(|ms| history.age(meta.time_ms, ms) != Age::Fresh)
                        {
                            // Neither delivered nor forwarded: past the
                            // window, the history could not keep it once.
                            self.stats.outside_window += 1;
                            return;
                        }
                        if history.is_known(&meta) {
                            // Held from before a restart, or caught up:
                            // Plumtree takes it for the duplicate it is.
                            self.stats.known_from_history += 1;
                            self.broadcast.note_seen(id, now);
                        }
                    }
                }
                self.broadcast
                    .handle_gossip(from, gossip, id, now, &mut self.tree_out);
                self.flush_broadcast();
            }
            Message::Broadcast(plumtree::Message::IHave(mut entries)) => {
                if let Some(sync) = &self.sync {
                    entries.retain(|e| !sync.history().contains(&e.id));
                }
                self.broadcast_input(
                    plumtree::InEvent::RecvMessage(from, plumtree::Message::IHave(entries)),
                    now,
                )
            }
            Message::Sync(m) => {
                if let Some(sync) = &mut self.sync {
                    sync.on_message(
                        from,
                        m,
                        self.config.verify_envelopes,
                        now,
                        self.now_ms,
                        &mut self.sync_out,
                    );
                }
                self.flush_sync(now);
            }
            Message::Broadcast(m) => {
                self.broadcast_input(plumtree::InEvent::RecvMessage(from, m), now)
            }
            Message::Ping(nonce) => {
                self.out
                    .push_back(OutEvent::SendMessage(from, Message::Pong(nonce)));
                // Only neighbours ping, so the sender still lists us: its
                // link is stale (we dropped it, say declared it dead, and
                // the close never reached it). Our pong alone would keep it
                // alive there for good; tell it, so both views agree.
                if !self.membership.active_view().contains(&from) {
                    self.out.push_back(OutEvent::SendMessage(
                        from,
                        Message::Membership(hyparview::Message::Disconnect { alive: true }),
                    ));
                }
            }
            Message::Pong(nonce) => {
                let Some(timing) = self.timing.get_mut(&from) else {
                    return;
                };
                if let Some((sent_nonce, sent)) = timing.pending {
                    if sent_nonce == nonce {
                        timing.pending = None;
                        timing.measured = Some(now);
                        let rtt = now.saturating_duration_since(sent);
                        self.broadcast_input(plumtree::InEvent::RoundTrip(from, rtt), now);
                    }
                }
            }
            Message::Size(m) => {
                if let Some(size) = &mut self.size {
                    size.on_message(m);
                }
            }
            // Handed back above, before they could count as life.
            Message::Seed(_) | Message::Direct(_) | Message::Query(_) | Message::Admin(_) => {}
        }
    }

    fn misbehaved(&mut self, peer: NodeId, reason: &'static str, now: Instant) {
        self.out
            .push_back(OutEvent::EmitEvent(Event::Misbehaved { peer, reason }));
        self.out.push_back(OutEvent::DisconnectPeer(peer));
        self.membership_input(hyparview::InEvent::PeerDisconnected(peer), now);
    }

    fn on_command(&mut self, command: Command, now: Instant) {
        match command {
            Command::Join(contacts) => {
                for contact in contacts {
                    self.membership_input(hyparview::InEvent::RequestJoin(contact), now);
                }
            }
            Command::Broadcast(content) => {
                if let (Some(sync), Some(meta)) = (&mut self.sync, Meta::decode(&content)) {
                    // Our own, kept so that neighbours who missed it can
                    // fetch it later.
                    sync.history_mut()
                        .insert(meta, content.clone(), self.now_ms.unwrap_or(0));
                }
                self.broadcast_input(plumtree::InEvent::Broadcast(content), now)
            }
            Command::UpdatePeerData(data) => {
                self.membership_input(hyparview::InEvent::UpdatePeerData(data), now)
            }
            Command::AddPeers(peers) => {
                self.membership_input(hyparview::InEvent::AddPassive(peers), now)
            }
            Command::Quit => self.membership_input(hyparview::InEvent::Quit, now),
        }
    }

    fn on_timer(&mut self, timer: Timer, now: Instant) {
        match timer {
            Timer::Membership(t) => self.membership_input(hyparview::InEvent::TimerExpired(t), now),
            Timer::Broadcast(t) => self.broadcast_input(plumtree::InEvent::TimerExpired(t), now),
            Timer::Liveness => {
                self.check_liveness(now);
                self.out.push_back(OutEvent::ScheduleTimer(
                    self.config.liveness.tick,
                    Timer::Liveness,
                ));
            }
            Timer::Size => {
                if let Some(size) = &mut self.size {
                    size.on_tick(
                        self.membership.active_view(),
                        &mut self.rng,
                        &mut self.size_out,
                    );
                    let tick = size.tick_interval();
                    for (peer, m) in self.size_out.drain(..) {
                        self.out
                            .push_back(OutEvent::SendMessage(peer, Message::Size(m)));
                    }
                    self.out
                        .push_back(OutEvent::ScheduleTimer(tick, Timer::Size));
                }
            }
            Timer::Sync(t) => {
                if let Some(sync) = &mut self.sync {
                    sync.on_timer(
                        t,
                        self.membership.active_view().iter(),
                        self.membership.passive_view().iter(),
                        now,
                        self.now_ms.unwrap_or(0),
                        &mut self.rng,
                        &mut self.sync_out,
                    );
                }
                self.flush_sync(now);
            }
        }
    }

    fn check_liveness(&mut self, now: Instant) {
        let mut dead = Vec::new();
        let mut ping = Vec::new();
        for (peer, at) in &self.last_heard {
            let quiet = now.saturating_duration_since(*at);
            let timing = self.timing.get(peer).copied().unwrap_or_default();
            let stale = timing
                .measured
                .is_none_or(|m| now.saturating_duration_since(m) >= RTT_REFRESH);
            if quiet >= self.config.liveness.dead_after {
                dead.push(*peer);
            } else if quiet >= self.config.liveness.ping_after || (stale && !timing.waiting(now)) {
                ping.push(*peer);
            }
        }
        for peer in ping {
            self.ping(peer, now);
        }
        for peer in dead {
            self.stats.dead_by_silence += 1;
            self.out.push_back(OutEvent::DisconnectPeer(peer));
            self.membership_input(hyparview::InEvent::PeerDisconnected(peer), now);
        }
    }

    /// Pings a neighbour; the pong times the link, unless a ping that
    /// times it is out already (the one answered is not known then).
    fn ping(&mut self, peer: NodeId, now: Instant) {
        self.ping_nonce = self.ping_nonce.wrapping_add(1);
        self.stats.pings_sent += 1;
        let timing = self.timing.entry(peer).or_default();
        if !timing.waiting(now) {
            timing.pending = Some((self.ping_nonce, now));
        }
        self.out
            .push_back(OutEvent::SendMessage(peer, Message::Ping(self.ping_nonce)));
    }

    fn membership_input(&mut self, event: hyparview::InEvent, now: Instant) {
        self.membership
            .handle(event, now, &mut self.rng, &mut self.hpv_out);
        let mut misbehaved = Vec::new();

        while let Some(out) = self.hpv_out.pop_front() {
            match out {
                hyparview::OutEvent::Misbehaved(peer, reason) => misbehaved.push((peer, reason)),
                hyparview::OutEvent::SendMessage(to, m) => self
                    .out
                    .push_back(OutEvent::SendMessage(to, Message::Membership(m))),
                hyparview::OutEvent::ScheduleTimer(delay, t) => self
                    .out
                    .push_back(OutEvent::ScheduleTimer(delay, Timer::Membership(t))),
                hyparview::OutEvent::DisconnectPeer(peer) => {
                    self.out.push_back(OutEvent::DisconnectPeer(peer))
                }
                hyparview::OutEvent::PeerData(peer, data) => {
                    self.out.push_back(OutEvent::PeerData(peer, data))
                }
                hyparview::OutEvent::EmitEvent(hyparview::Event::NeighborUp(peer)) => {
                    self.last_heard.insert(peer, now);
                    self.timing.insert(peer, Timing::default());
                    self.out
                        .push_back(OutEvent::EmitEvent(Event::NeighborUp(peer)));
                    self.broadcast.handle(
                        plumtree::InEvent::NeighborUp(peer),
                        now,
                        &mut self.tree_out,
                    );
                    self.flush_broadcast();
                    if let Some(sync) = &mut self.sync {
                        sync.on_link_up(peer, now, &mut self.sync_out);
                    }
                    self.flush_sync(now);
                }
                hyparview::OutEvent::EmitEvent(hyparview::Event::NeighborDown(peer)) => {
                    self.last_heard.remove(&peer);
                    self.timing.remove(&peer);
                    self.out
                        .push_back(OutEvent::EmitEvent(Event::NeighborDown(peer)));
                    self.broadcast.handle(
                        plumtree::InEvent::NeighborDown(peer),
                        now,
                        &mut self.tree_out,
                    );
                    self.flush_broadcast();
                    if let Some(sync) = &mut self.sync {
                        sync.on_neighbor_down(&peer, now);
                    }
                }
            }
        }
        // After the queue is drained, as closing a link feeds HyParView
        // again.
        for (peer, reason) in misbehaved {
            self.misbehaved(peer, reason, now);
        }
    }

    fn broadcast_input(&mut self, event: plumtree::InEvent, now: Instant) {
        self.broadcast.handle(event, now, &mut self.tree_out);
        self.flush_broadcast();
    }

    fn flush_broadcast(&mut self) {
        while let Some(out) = self.tree_out.pop_front() {
            self.out.push_back(match out {
                plumtree::OutEvent::SendMessage(to, m) => {
                    OutEvent::SendMessage(to, Message::Broadcast(m))
                }
                plumtree::OutEvent::ScheduleTimer(delay, t) => {
                    OutEvent::ScheduleTimer(delay, Timer::Broadcast(t))
                }
                plumtree::OutEvent::EmitEvent(plumtree::Event::Received(d)) => {
                    if let (Some(sync), Some(meta)) = (&mut self.sync, Meta::decode(&d.content)) {
                        sync.history_mut().insert(
                            meta,
                            d.content.clone(),
                            self.now_ms.unwrap_or(0),
                        );
                    }
                    OutEvent::EmitEvent(Event::Received(d))
                }
            });
        }
    }

    fn flush_sync(&mut self, now: Instant) {
        while let Some(out) = self.sync_out.pop_front() {
            match out {
                sync::OutEvent::SendMessage(to, m) => self
                    .out
                    .push_back(OutEvent::SendMessage(to, Message::Sync(m))),
                sync::OutEvent::ScheduleTimer(delay, t) => self
                    .out
                    .push_back(OutEvent::ScheduleTimer(delay, Timer::Sync(t))),
                sync::OutEvent::Deliver { from, id, content } => {
                    self.broadcast.note_seen(id, now);
                    self.out
                        .push_back(OutEvent::EmitEvent(Event::Received(Delivered {
                            id,
                            content,
                            delivered_from: from,
                            hops: 0,
                            caught_up: true,
                        })));
                }
                sync::OutEvent::Misbehaved(peer, reason) => self.misbehaved(peer, reason, now),
                sync::OutEvent::Learned(from) => {
                    let active = self.membership.active_view().to_vec();
                    if !active.contains(&from) {
                        // A peer outside our view had what we lacked: the
                        // overlay is in two parts. Joining through it links
                        // them (it takes us in and walks our join on).
                        self.membership_input(hyparview::InEvent::RequestJoin(from), now);
                    }
                    if let Some(sync) = &mut self.sync {
                        for peer in active.iter().filter(|p| **p != from) {
                            sync.start_session(*peer, now, &mut self.sync_out);
                        }
                    }
                }
            }
        }
    }
}
