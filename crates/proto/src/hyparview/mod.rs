//! HyParView: the membership layer, a small active view of open links and a
//! larger passive view of known peers.
//!
//! This follows Leitão, Pereira and Rodrigues, "HyParView: a membership
//! protocol for reliable gossip-based broadcast" (DSN 2007). Each node keeps:
//!
//! - an **active view** of about log2(N)+1 peers (default 5) to which it holds
//!   open links. The relation is symmetric: if A lists B, B lists A. Broadcast
//!   (Plumtree) runs over these links only.
//! - a **passive view** of more peers (default 30) it knows but is not linked
//!   to. It is kept fresh by a periodic **shuffle**, a random walk that swaps
//!   samples of both views with a distant node: this is the peer exchange.
//!
//! A new node joins by sending `Join` to a contact, which takes it into its
//! active view and starts random walks (`ForwardJoin`) that end by adding it
//! elsewhere (the active random walk length, ARWL) and leave it in passive
//! views on the way (the passive random walk length, PRWL). When a link fails,
//! the node asks passive peers to become neighbours, with *high* priority when
//! its active view is (nearly) empty (the request cannot be refused) and *low*
//! priority otherwise (it is accepted only where there is room). That
//! reactive repair is why HyParView keeps delivering after most of the
//! network fails at once.
//!
//! Two departures from the paper, both for operation rather than theory:
//! a neighbour request is answered with an explicit `NeighborReply`, so a
//! refusal is known at once, and a periodic repair timer keeps retrying while
//! the active view is below its capacity.
//!
//! The module is sans-IO: [`HyParView::handle`] takes an [`InEvent`] and the
//! current time and appends [`OutEvent`]s to a queue the caller drains.
//!
//! This file holds the vocabulary (messages, inputs, outputs, timers) and
//! the state machine's entry point, which routes each input to a handler:
//! `handle_*` for local inputs, `on_<message>` for wire messages. Most
//! handlers live beside it by concern: `join` (joining and the
//! `ForwardJoin` walk), `shuffle` (the peer exchange) and `neighbor`
//! (neighbour requests, disconnects and the repair that follows), over
//! `views` (the bookkeeping of both views). The few that belong to no one
//! part (timers, new data of our own, quitting) stay here.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::record::SignedRecord;
use crate::NodeId;

mod join;
mod neighbor;
mod shuffle;
mod views;

/// Opaque data a node publishes about itself, carried with its id through
/// the views: in the real network its encoded signed record (addresses,
/// name, roles); in the simulator, empty.
pub type PeerData = Bytes;

/// Tunables of the membership layer.
#[derive(Debug, Clone)]
pub struct Config {
    /// Active view size. The paper uses log2(N)+1; 5 serves networks of up to
    /// tens of thousands with a fanout of 4 for the broadcast tree.
    pub active_view_capacity: usize,
    /// Passive view size. The paper's 30 keeps enough spare peers to repair
    /// after 80% of the network fails at once.
    pub passive_view_capacity: usize,
    /// Hops a `ForwardJoin` walks before the node it names is taken into an
    /// active view (ARWL; the paper's 6).
    pub active_random_walk_length: u16,
    /// Hop at which a `ForwardJoin` also leaves the joiner in a passive view
    /// (PRWL; the paper's 3).
    pub passive_random_walk_length: u16,
    /// Hops a shuffle request walks before it is answered.
    pub shuffle_random_walk_length: u16,
    /// Active peers sampled into a shuffle.
    pub shuffle_active_view_count: usize,
    /// Passive peers sampled into a shuffle.
    pub shuffle_passive_view_count: usize,
    /// Period of the shuffle (the peer exchange), jittered by +-20% so that
    /// nodes started together do not shuffle together.
    pub shuffle_interval: Duration,
    /// How long a neighbour request may stay unanswered before the peer is
    /// taken for dead.
    pub neighbor_request_timeout: Duration,
    /// Period at which a node whose active view is below capacity asks
    /// passive peers again.
    pub repair_interval: Duration,
    /// A node with fewer neighbours than this asks with high priority (the
    /// paper: only with none). Below it a node can sit in a small island
    /// (nodes linked only to each other), or stay short for good, because
    /// every full node refuses low-priority requests; high priority lets it
    /// in at the cost of one eviction elsewhere, which leaves the evicted
    /// node one short, never more. The default, capacity - 1, thus keeps
    /// every view within one of full.
    pub high_priority_below: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            active_view_capacity: 5,
            passive_view_capacity: 30,
            active_random_walk_length: 6,
            passive_random_walk_length: 3,
            shuffle_random_walk_length: 6,
            shuffle_active_view_count: 3,
            shuffle_passive_view_count: 4,
            shuffle_interval: Duration::from_secs(30),
            neighbor_request_timeout: Duration::from_secs(2),
            repair_interval: Duration::from_secs(1),
            high_priority_below: 4,
        }
    }
}

/// Most peers in one shuffle or shuffle reply: a bound on what is read from
/// the wire, well above `1 + shuffle_active_view_count +
/// shuffle_passive_view_count` of any sane configuration.
pub const MAX_SHUFFLE_PEERS: usize = 32;

/// ForwardJoins that end here (take their joiner into the active view) one
/// neighbour may send in a burst: an honest neighbour ends a walk here only
/// now and then, even while many nodes join at once, so a few suffice.
pub const FORWARD_JOIN_BURST: u32 = 4;
/// One more ForwardJoin of a neighbour may end here per this period: with
/// the burst, a neighbour can replace at most one of our neighbours every
/// few seconds, however fast it sends.
pub const FORWARD_JOIN_REFILL: Duration = Duration::from_secs(5);

/// A peer's id with the data it published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerInfo {
    /// The peer's id.
    pub id: NodeId,
    /// Its published data (may be empty).
    pub data: PeerData,
}

/// How hard a neighbour request insists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Priority {
    /// Sent by a node whose active view is empty: the receiver must accept,
    /// evicting a neighbour if it has to.
    High,
    /// Accepted only if the receiver has room.
    Low,
}

/// HyParView wire messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// A new node asks its contact to take it in; carries the joiner's data.
    Join(PeerData),
    /// A random walk announcing a joiner.
    ForwardJoin {
        /// The joiner.
        peer: PeerInfo,
        /// Hops left.
        ttl: u16,
    },
    /// A random walk carrying a sample of the origin's views.
    Shuffle {
        /// Who started the shuffle; the reply goes straight to it.
        origin: PeerInfo,
        /// The sample.
        nodes: Vec<PeerInfo>,
        /// Hops left.
        ttl: u16,
    },
    /// The answer to a shuffle: a sample of the receiver's passive view.
    ShuffleReply {
        /// The sample.
        nodes: Vec<PeerInfo>,
    },
    /// A request to become neighbours, or, with high priority, a notice that
    /// the sender has taken the receiver in (after a join); carries the
    /// sender's data. Both are answered: a notice that crossed a disconnect
    /// from the receiver is undone when the answer comes back.
    Neighbor {
        /// How hard the request insists.
        priority: Priority,
        /// The sender's data.
        data: PeerData,
        /// Number of the request, echoed in the reply.
        request: u32,
    },
    /// The answer to a neighbour request.
    NeighborReply {
        /// Whether the sender is now in the replier's active view.
        accepted: bool,
        /// The replier's data.
        data: PeerData,
        /// The request answered. Replies are matched to requests by number,
        /// because two requests to one peer can be out at once.
        request: u32,
    },
    /// The sender has removed the receiver from its active view.
    Disconnect {
        /// False when the sender is leaving the network: the receiver then
        /// forgets it instead of keeping it as a passive peer.
        alive: bool,
    },
}

/// Inputs to the membership layer.
#[derive(Debug, Clone)]
pub enum InEvent {
    /// A message from a peer.
    RecvMessage(NodeId, Message),
    /// A timer set through [`OutEvent::ScheduleTimer`] fired.
    TimerExpired(Timer),
    /// The transport to this peer failed (dial refused, link reset, liveness
    /// timeout). Not sent when a link is closed on purpose.
    PeerDisconnected(NodeId),
    /// Join the network through this contact.
    RequestJoin(NodeId),
    /// Our own published data changed.
    UpdatePeerData(PeerData),
    /// Peers learned outside the overlay, for the passive view.
    AddPassive(Vec<PeerInfo>),
    /// Leave the network: tell every neighbour.
    Quit,
}

/// Outputs of the membership layer.
#[derive(Debug, Clone)]
pub enum OutEvent {
    /// Send a message to a peer, opening a link if there is none.
    SendMessage(NodeId, Message),
    /// Call back with [`InEvent::TimerExpired`] after the delay.
    ScheduleTimer(Duration, Timer),
    /// Close the link to a peer once the queued messages are sent.
    DisconnectPeer(NodeId),
    /// Something the layers above or the user should know.
    EmitEvent(Event),
    /// New data learned for a peer (for the address book).
    PeerData(NodeId, PeerData),
    /// A peer broke the protocol: its link should be closed.
    Misbehaved(NodeId, &'static str),
}

/// Timers of the membership layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Timer {
    /// Time to shuffle.
    Shuffle,
    /// Time to look at the active view and repair it.
    Repair,
    /// A neighbour request to this peer is due for an answer.
    NeighborRequest(NodeId, u32),
}

/// Membership changes, for the broadcast layer and the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A peer entered the active view.
    NeighborUp(NodeId),
    /// A peer left the active view.
    NeighborDown(NodeId),
}

/// What a neighbour has left of its ForwardJoin budget (a token bucket).
#[derive(Debug, Clone, Copy)]
struct Budget {
    tokens: u32,
    /// When the last token was added (or the bucket was made).
    since: Instant,
}

/// The HyParView state of one node.
#[derive(Debug)]
pub struct HyParView {
    me: NodeId,
    my_data: PeerData,
    config: Config,
    /// In insertion order, so that behaviour is reproducible under a seed.
    active: Vec<NodeId>,
    passive: Vec<NodeId>,
    /// Data of the peers in either view.
    data: BTreeMap<NodeId, PeerData>,
    /// Neighbour requests awaiting an answer, by peer, with their number.
    pending: BTreeMap<NodeId, u32>,
    next_request: u32,
    /// Peers that refused a low-priority request since the last repair tick;
    /// not asked again until then, so full peers are not hammered.
    refused: BTreeSet<NodeId>,
    /// The peers last sent out in a shuffle: evicted first when the reply
    /// brings new ones (the paper's rule).
    last_shuffled: Vec<NodeId>,
    /// ForwardJoin budgets of the active peers.
    budgets: BTreeMap<NodeId, Budget>,
    /// Whether our own data is a signed record: a network whose nodes
    /// publish records asks one of every joiner taken into a view by a walk.
    records: bool,
    started: bool,
    quit: bool,
}

impl HyParView {
    /// A node with no neighbours yet.
    pub fn new(me: NodeId, my_data: PeerData, config: Config) -> Self {
        Self {
            records: SignedRecord::decode(&my_data).is_ok(),
            my_data,
            me,
            config,
            active: Vec::new(),
            passive: Vec::new(),
            data: BTreeMap::new(),
            pending: BTreeMap::new(),
            next_request: 0,
            refused: BTreeSet::new(),
            last_shuffled: Vec::new(),
            budgets: BTreeMap::new(),
            started: false,
            quit: false,
        }
    }

    /// The active view: peers we hold links to.
    pub fn active_view(&self) -> &[NodeId] {
        &self.active
    }

    /// The passive view: peers we know of.
    pub fn passive_view(&self) -> &[NodeId] {
        &self.passive
    }

    /// The data a peer in either view published, if known.
    pub fn peer_data(&self, id: &NodeId) -> Option<&PeerData> {
        self.data.get(id)
    }

    /// The configuration in use.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Handles one input, appending outputs to `out`.
    pub fn handle<R: Rng>(
        &mut self,
        event: InEvent,
        now: Instant,
        rng: &mut R,
        out: &mut VecDeque<OutEvent>,
    ) {
        if self.quit {
            return;
        }
        if !self.started {
            self.started = true;
            let first = jitter(self.config.shuffle_interval, rng);
            out.push_back(OutEvent::ScheduleTimer(first, Timer::Shuffle));
            out.push_back(OutEvent::ScheduleTimer(
                self.config.repair_interval,
                Timer::Repair,
            ));
        }
        match event {
            InEvent::RecvMessage(from, message) => self.on_message(from, message, now, rng, out),
            InEvent::TimerExpired(timer) => self.on_timer(timer, rng, out),
            InEvent::PeerDisconnected(peer) => self.on_peer_disconnected(peer, rng, out),
            InEvent::RequestJoin(contact) => self.handle_join(contact, out),
            InEvent::UpdatePeerData(data) => self.handle_update_data(data, out),
            InEvent::AddPassive(peers) => {
                for peer in peers.into_iter().take(self.config.passive_view_capacity) {
                    self.add_passive(peer.id, peer.data, rng, out);
                }
            }
            InEvent::Quit => self.handle_quit(out),
        }
        self.prune();
    }

    /// Forgets data and budgets of peers in neither view: whatever path
    /// learned them, what is kept stays bounded by the views.
    fn prune(&mut self) {
        let listed = |id: &NodeId, active: &[NodeId], passive: &[NodeId]| {
            active.contains(id) || passive.contains(id)
        };
        if self.data.len() > self.active.len() + self.passive.len() {
            let (active, passive) = (&self.active, &self.passive);
            self.data.retain(|id, _| listed(id, active, passive));
        }
        if self.budgets.len() > self.active.len() {
            let active = &self.active;
            self.budgets.retain(|id, _| active.contains(id));
        }
    }

    fn handle_update_data(&mut self, data: PeerData, out: &mut VecDeque<OutEvent>) {
        self.records = SignedRecord::decode(&data).is_ok();
        self.my_data = data;
        // Neighbours learn the new data through a high-priority neighbour
        // message they already accept, which refreshes what they hold.
        for peer in self.active.clone() {
            out.push_back(OutEvent::SendMessage(
                peer,
                Message::Neighbor {
                    priority: Priority::High,
                    data: self.my_data.clone(),
                    request: self.new_request(),
                },
            ));
        }
    }

    fn handle_quit(&mut self, out: &mut VecDeque<OutEvent>) {
        for peer in std::mem::take(&mut self.active) {
            out.push_back(OutEvent::SendMessage(
                peer,
                Message::Disconnect { alive: false },
            ));
            out.push_back(OutEvent::DisconnectPeer(peer));
            out.push_back(OutEvent::EmitEvent(Event::NeighborDown(peer)));
        }
        self.quit = true;
    }

    fn on_message<R: Rng>(
        &mut self,
        from: NodeId,
        message: Message,
        now: Instant,
        rng: &mut R,
        out: &mut VecDeque<OutEvent>,
    ) {
        if from == self.me {
            return;
        }
        match message {
            Message::Join(data) => self.on_join(from, data, rng, out),
            Message::ForwardJoin { peer, ttl } => {
                self.on_forward_join(from, peer, ttl, now, rng, out)
            }
            Message::Shuffle { origin, nodes, ttl } => {
                self.on_shuffle(from, origin, nodes, ttl, rng, out)
            }
            Message::ShuffleReply { nodes } => self.on_shuffle_reply(nodes, rng, out),
            Message::Neighbor {
                priority,
                data,
                request,
            } => self.on_neighbor(from, priority, data, request, rng, out),
            Message::NeighborReply {
                accepted,
                data,
                request,
            } => self.on_neighbor_reply(from, accepted, data, request, rng, out),
            Message::Disconnect { alive } => self.on_disconnect(from, alive, rng, out),
        }
    }

    fn on_timer<R: Rng>(&mut self, timer: Timer, rng: &mut R, out: &mut VecDeque<OutEvent>) {
        match timer {
            Timer::Shuffle => {
                self.shuffle(rng, out);
                let next = jitter(self.config.shuffle_interval, rng);
                out.push_back(OutEvent::ScheduleTimer(next, Timer::Shuffle));
            }
            Timer::Repair => {
                self.refused.clear();
                self.repair(rng, out);
                out.push_back(OutEvent::ScheduleTimer(
                    self.config.repair_interval,
                    Timer::Repair,
                ));
            }
            Timer::NeighborRequest(peer, request) => {
                if self.pending.get(&peer) == Some(&request) {
                    self.pending.remove(&peer);
                    // No answer in time: take it for dead.
                    self.remove_passive(&peer);
                    self.repair(rng, out);
                }
            }
        }
    }
}

/// `base` scaled by a random factor in [0.8, 1.2).
fn jitter<R: Rng>(base: Duration, rng: &mut R) -> Duration {
    base.mul_f64(rng.gen_range(0.8..1.2))
}
