//! Plumtree: broadcast along a spanning tree of the active view, repaired
//! lazily.
//!
//! This follows Leitão, Pereira and Rodrigues, "Epidemic Broadcast Trees"
//! (SRDS 2007). Each neighbour is either *eager* (messages are pushed to it
//! in full) or *lazy* (it is only told the ids of new messages, in batched
//! `IHave`s). All neighbours start eager, so the first message floods; a node
//! that receives a message twice answers the second sender with `Prune`, and
//! both ends make that link lazy. What is left eager is a spanning tree of
//! the fastest paths, over which later messages travel exactly once per node.
//!
//! When a tree link breaks, a node hears of a message by `IHave` but does not
//! receive it; after a timeout it sends `Graft` to the announcer, which sends
//! the message and makes the link eager again: the tree heals where it broke.
//! Messages are kept for a while to answer grafts, and the ids of messages
//! seen are kept for longer, so nothing is delivered twice.
//!
//! Departures from the paper, each for a failure it has under load:
//! - one tree per origin (`trees.rs`), with `Prune` and `Graft` naming the
//!   origin: with one shared tree, messages of several origins crossing a
//!   cycle prune different edges of it and split the tree over and over;
//! - a first copy from a neighbour we hold lazy is answered with a `Graft`:
//!   it had not yet read our `Prune` when it pushed, and would otherwise
//!   apply it after we took it back, leaving the link eager at our end and
//!   lazy at its own;
//! - graft waits scale with the measured round trip of the announcer
//!   ([`InEvent::RoundTrip`]) and with how late eager copies usually run
//!   behind announcements here, and are spread per node and message,
//!   rather than one fixed 200 ms: a message held behind a stalled link is
//!   fetched from a lazy neighbour soon, a busy node does not graft copies
//!   that are merely queued, and the border nodes of a cut-off part of a
//!   tree do not all graft in the same instant;
//! - a new neighbour is sent an `IHave` of the recent messages, so a node
//!   whose links broke mid-broadcast catches up once it is linked again;
//!   and the paper's tree optimisation (graft a lazy path that is shorter
//!   by `optimization_threshold` hops) keeps the tree short.
//!
//! Everything a neighbour can make us hold or send is bounded. The cache
//! keeps to a count and a byte budget ([`MAX_CACHE_BYTES`]), and one origin
//! to its share of both ([`ORIGIN_SHARE`]), so a flood pushes out the
//! flooder's own messages. The table of announced-but-missing messages
//! keeps to a total and a share per announcer
//! ([`MAX_MISSING_PER_ANNOUNCER`]), so made-up `IHave`s cannot crowd out
//! real ones. `IHave` and `Graft` count only from neighbours, and grafts
//! are answered within a byte budget per neighbour ([`GRAFT_BURST_BYTES`]).
//!
//! The module is sans-IO: [`Plumtree::handle`] takes an [`InEvent`] and the
//! current time and appends [`OutEvent`]s to a queue the caller drains.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::{MessageId, NodeId};
use cache::MessageCache;
use trees::Trees;
pub use trees::{tree_of, MAX_TREES, MAX_TREE_NEIGHBORS};

mod cache;
mod trees;

/// Tunables of the broadcast layer.
#[derive(Debug, Clone)]
pub struct Config {
    /// Longest wait after the first `IHave` of a missing message before
    /// grafting (the eager copy is usually on its way and a graft would
    /// only add a copy), and the wait while the announcer's round trip is
    /// not yet measured; see [`GRAFT_WAIT_RTTS`].
    pub graft_timeout_1: Duration,
    /// Longest wait before grafting the next announcer when the first did
    /// not answer.
    pub graft_timeout_2: Duration,
    /// Lazy announcements are held this long and sent as one `IHave` batch.
    pub dispatch_timeout: Duration,
    /// Messages are kept this long to answer grafts and catch new
    /// neighbours up.
    pub message_cache_retention: Duration,
    /// Ids of seen messages are kept this long; a message older than this is
    /// no longer recognised as a duplicate, so it must exceed any path delay.
    pub message_id_retention: Duration,
    /// Period of the cache cleanup.
    pub cache_evict_interval: Duration,
    /// A lazy path this many hops shorter than the eager one replaces it.
    pub optimization_threshold: u16,
    /// Most messages kept for grafts (a memory bound under a burst).
    pub max_cached_messages: usize,
    /// Most content bytes kept for grafts, whatever the count; see
    /// [`MAX_CACHE_BYTES`].
    pub max_cached_bytes: usize,
    /// Most ids remembered as seen (a memory bound under a burst).
    pub max_seen_ids: usize,
    /// Most recent ids announced to a new neighbour.
    pub catch_up_count: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            graft_timeout_1: Duration::from_millis(300),
            graft_timeout_2: Duration::from_millis(100),
            dispatch_timeout: Duration::from_millis(20),
            message_cache_retention: Duration::from_secs(30),
            message_id_retention: Duration::from_secs(120),
            cache_evict_interval: Duration::from_secs(1),
            optimization_threshold: 7,
            max_cached_messages: 16_384,
            max_cached_bytes: MAX_CACHE_BYTES,
            max_seen_ids: 262_144,
            catch_up_count: 256,
        }
    }
}

/// Most entries in one `IHave`: a bound on what is read from the wire.
pub const MAX_IHAVE_ENTRIES: usize = 1024;
/// Most announcers remembered for one missing message: enough to survive
/// several dead ones, without letting `IHave` floods grow memory.
const MAX_ANNOUNCERS: usize = 8;
/// Most messages waiting to be grafted at once.
pub const MAX_MISSING: usize = 16_384;
/// Most missing messages one announcer may have us wait for: an active view
/// holds a handful of neighbours, so even all but one of them flooding
/// bogus `IHave`s leave room for the real announcements of the last.
pub const MAX_MISSING_PER_ANNOUNCER: usize = MAX_MISSING / 8;
/// Default byte budget of the message cache: a few hundred of the largest
/// messages, or thousands of chat lines, are plenty to answer the grafts of
/// the retention window; 16,384 of the largest would be a gigabyte.
pub const MAX_CACHE_BYTES: usize = 64 * 1024 * 1024;
/// One origin may hold at most this fraction (1/n) of the cache's entries
/// and of its bytes, so one member flooding its own messages pushes out its
/// own oldest, not everyone else's.
pub const ORIGIN_SHARE: usize = 8;
/// Bytes of cached messages one neighbour may pull by grafts at once: a
/// catch-up of a few hundred chat lines, or dozens of the largest messages.
pub const GRAFT_BURST_BYTES: u64 = 4 * 1024 * 1024;
/// Bytes per second a neighbour's graft budget refills: grafts repair a
/// tree, so an honest neighbour pulls far less; more is a neighbour using
/// us to amplify its traffic.
pub const GRAFT_REFILL_BYTES_PER_SEC: u64 = 1024 * 1024;

/// Round trips of the announcer waited before grafting a missing message:
/// the eager copy, if it comes, is rarely later than that behind an
/// announcement (which waits for its batch); a graft sooner mostly fetches
/// a second copy. In the simulator (round trips of 20-100 ms, 100 nodes,
/// 20-100 msg/s from random origins) 2 left 1.5-4% of full copies
/// duplicates after the warm-up, 4 left 0.9-1.5%, 8 left 0.3-0.6%, at
/// the same median latency.
pub const GRAFT_WAIT_RTTS: u32 = 8;
/// Round trips waited on a grafted announcer before grafting the next: it
/// answers at once from its cache.
pub const ANSWER_WAIT_RTTS: u32 = 2;
/// A graft waits at least this many times the usual lateness of an eager
/// copy behind its first announcement ([`Plumtree::lateness`]). A busy node
/// queues messages far longer than a ping's round trip: on loopback at 100
/// msg/s over 2 cores (`gossipnet bench --rate 100`), waits from round
/// trips alone (the 5 ms floor) grafted copies that were on their way and
/// 24% of all full copies were duplicates; twice the lateness left 8%,
/// four times 1.2%.
pub const LATENESS_MARGIN: u32 = 4;
/// Shortest graft wait, whatever the round trip: on loopback a round trip
/// is a fraction of a millisecond, less than a busy node's queue.
pub const MIN_GRAFT_WAIT: Duration = Duration::from_millis(5);
/// A new round-trip sample counts for 1/n of the smoothed one, as TCP's
/// does: a single slow pong does not make every graft wait.
const RTT_SMOOTHING: u32 = 8;

/// A message carried in full.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gossip {
    /// The encoded, signed envelope; its hash is the message id.
    pub content: Bytes,
    /// Hops from the origin, counting this one.
    pub round: u16,
}

/// One announcement in an `IHave`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IHave {
    /// The message announced.
    pub id: MessageId,
    /// Hops it had taken to the announcer, plus one.
    pub round: u16,
}

/// Plumtree wire messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// A message in full.
    Gossip(Gossip),
    /// Ids of messages the sender has.
    IHave(Vec<IHave>),
    /// Send me this message, and push future ones of its origin to me
    /// eagerly.
    Graft {
        /// The message wanted, if any.
        id: Option<MessageId>,
        /// Its round at the announcer.
        round: u16,
        /// The tree to join: the message's origin, if the grafter knows it
        /// (a grafter of a missing message does not: the announcer reads it
        /// from the message).
        origin: Option<NodeId>,
    },
    /// Stop pushing messages of this origin to me eagerly.
    Prune {
        /// Whose tree the link leaves.
        origin: NodeId,
    },
}

/// Inputs to the broadcast layer.
#[derive(Debug, Clone)]
pub enum InEvent {
    /// A message from a neighbour. For `Gossip`, the router has computed the
    /// id (hashing once per receipt) and checked the content if asked to.
    RecvMessage(NodeId, Message),
    /// Broadcast this encoded envelope.
    Broadcast(Bytes),
    /// A timer fired.
    TimerExpired(Timer),
    /// A neighbour came up in the active view.
    NeighborUp(NodeId),
    /// A neighbour left the active view.
    NeighborDown(NodeId),
    /// The link to a neighbour was replaced by a new connection: what was
    /// queued on the old one may never arrive, so what we hold is
    /// announced again (the neighbour grafts what it lacks).
    LinkReplaced(NodeId),
    /// A round trip to a neighbour was measured (a ping and its pong).
    RoundTrip(NodeId, Duration),
}

/// Outputs of the broadcast layer.
#[derive(Debug, Clone)]
pub enum OutEvent {
    /// Send a message to a neighbour.
    SendMessage(NodeId, Message),
    /// Call back with [`InEvent::TimerExpired`] after the delay.
    ScheduleTimer(Duration, Timer),
    /// Something for the user.
    EmitEvent(Event),
}

/// Timers of the broadcast layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Timer {
    /// Graft the next announcer of this message if it is still missing.
    SendGraft(MessageId),
    /// Send the batched lazy announcements.
    DispatchLazyPush,
    /// Drop expired cache entries.
    EvictCache,
}

/// A message delivered to this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// Its id.
    pub id: MessageId,
    /// The encoded envelope.
    pub content: Bytes,
    /// The neighbour it came from.
    pub delivered_from: NodeId,
    /// Hops from the origin (0 when caught up: the path is not known).
    pub hops: u16,
    /// Delivered by anti-entropy rather than by the broadcast itself.
    pub caught_up: bool,
}

/// Events for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A new message arrived (exactly once per message).
    Received(Delivered),
}

/// Counters, for status and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Messages this node originated.
    pub broadcast: u64,
    /// Messages delivered here from the network.
    pub delivered: u64,
    /// Full-message sends (originated, forwarded and graft answers).
    pub payload_sent: u64,
    /// Copies received of messages already seen.
    pub duplicates: u64,
    /// Grafts sent.
    pub grafts_sent: u64,
    /// Prunes sent.
    pub prunes_sent: u64,
}

/// A neighbour's graft budget in bytes (a token bucket).
#[derive(Debug, Clone, Copy)]
struct GraftBudget {
    bytes: u64,
    since: Instant,
}

/// A message announced but not received.
#[derive(Debug)]
struct Missing {
    /// Who announced it, at which round, in the order to graft them.
    announcers: VecDeque<(NodeId, u16)>,
    /// Who was grafted for it already (and so pushes to us again).
    grafted: Vec<NodeId>,
    /// When it was first announced.
    since: Instant,
}

/// The Plumtree state of one node.
#[derive(Debug)]
pub struct Plumtree {
    me: NodeId,
    config: Config,
    /// The neighbours, and each origin's split of them into eager and lazy.
    trees: Trees,
    /// Smoothed round trips of the neighbours.
    round_trips: BTreeMap<NodeId, Duration>,
    /// Smoothed lateness of an eager copy behind its first announcement.
    lateness: Option<Duration>,
    /// Ids seen, with when, oldest first in `seen_order`.
    seen: HashMap<MessageId, Instant>,
    seen_order: VecDeque<(Instant, MessageId)>,
    /// Messages kept to answer grafts.
    cache: MessageCache,
    /// Announced but not received.
    missing: BTreeMap<MessageId, Missing>,
    /// How many announcements in `missing` each announcer holds.
    announced: HashMap<NodeId, usize>,
    /// Graft budgets of the neighbours.
    graft_budgets: BTreeMap<NodeId, GraftBudget>,
    /// Announcements waiting for the next lazy dispatch.
    lazy_queue: BTreeMap<NodeId, Vec<IHave>>,
    dispatch_scheduled: bool,
    started: bool,
    stats: Stats,
}

impl Plumtree {
    /// A node with no neighbours yet.
    pub fn new(me: NodeId, config: Config) -> Self {
        Self {
            me,
            cache: MessageCache::new(config.max_cached_messages, config.max_cached_bytes),
            config,
            trees: Trees::default(),
            round_trips: BTreeMap::new(),
            lateness: None,
            seen: HashMap::new(),
            seen_order: VecDeque::new(),
            missing: BTreeMap::new(),
            announced: HashMap::new(),
            graft_budgets: BTreeMap::new(),
            lazy_queue: BTreeMap::new(),
            dispatch_scheduled: false,
            started: false,
            stats: Stats::default(),
        }
    }

    /// Whether a message with this id was seen (broadcast or received) within
    /// the retention window. The router asks before any signature check.
    pub fn has_seen(&self, id: &MessageId) -> bool {
        self.seen.contains_key(id)
    }

    /// Marks a message seen without delivering it: one the history holds
    /// (from before a restart) or one caught up by anti-entropy, so a live
    /// copy that arrives later counts as the duplicate it is.
    pub fn note_seen(&mut self, id: MessageId, now: Instant) {
        if !self.seen.contains_key(&id) {
            self.mark_seen(id, now);
        }
    }

    /// Neighbours a new origin's messages would be pushed to in full: the
    /// tree that new trees copy.
    pub fn eager_peers(&self) -> Vec<NodeId> {
        self.trees.default_split().0
    }

    /// Neighbours a new origin's messages would only be announced to.
    pub fn lazy_peers(&self) -> Vec<NodeId> {
        self.trees.default_split().1
    }

    /// Neighbours `origin`'s messages are pushed to in full.
    pub fn eager_peers_for(&self, origin: &NodeId) -> Vec<NodeId> {
        self.trees.split_of(origin).0
    }

    /// Neighbours `origin`'s messages are only announced to.
    pub fn lazy_peers_for(&self, origin: &NodeId) -> Vec<NodeId> {
        self.trees.split_of(origin).1
    }

    /// Whether `peer` is lazy in the tree of `origin`'s messages.
    pub fn is_lazy_for(&self, origin: &NodeId, peer: &NodeId) -> bool {
        self.trees.is_lazy(origin, peer)
    }

    /// Origins with a broadcast tree of their own here.
    pub fn trees(&self) -> usize {
        self.trees.len()
    }

    /// A neighbour's smoothed round trip, once measured.
    pub fn round_trip(&self, peer: &NodeId) -> Option<Duration> {
        self.round_trips.get(peer).copied()
    }

    /// Counters since start.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Messages held in the cache.
    pub fn cached_messages(&self) -> usize {
        self.cache.len()
    }

    /// Content bytes held in the cache.
    pub fn cached_bytes(&self) -> usize {
        self.cache.bytes()
    }

    /// Messages announced but not yet received.
    pub fn missing_messages(&self) -> usize {
        self.missing.len()
    }

    /// Handles one input, appending outputs to `out`. For a received
    /// `Gossip`, use [`Plumtree::handle_gossip`], which takes the id.
    pub fn handle(&mut self, event: InEvent, now: Instant, out: &mut VecDeque<OutEvent>) {
        if !self.started {
            self.started = true;
            out.push_back(OutEvent::ScheduleTimer(
                self.config.cache_evict_interval,
                Timer::EvictCache,
            ));
        }
        match event {
            InEvent::RecvMessage(from, message) => match message {
                Message::Gossip(gossip) => {
                    let id = MessageId::of(&gossip.content);
                    self.handle_gossip(from, gossip, id, now, out)
                }
                Message::IHave(entries) => self.on_ihave(from, entries, now, out),
                Message::Graft { id, round, origin } => {
                    self.on_graft(from, id, round, origin, now, out)
                }
                Message::Prune { origin } => self.on_prune(from, origin),
            },
            InEvent::Broadcast(content) => self.handle_broadcast(content, now, out),
            InEvent::TimerExpired(timer) => self.on_timer(timer, now, out),
            InEvent::NeighborUp(peer) => self.on_neighbor_up(peer, out),
            InEvent::NeighborDown(peer) => self.on_neighbor_down(peer),
            InEvent::LinkReplaced(peer) => {
                if self.is_neighbor(&peer) {
                    self.catch_up(peer, out);
                }
            }
            InEvent::RoundTrip(peer, sample) => {
                if self.is_neighbor(&peer) {
                    let smoothed = match self.round_trips.get(&peer) {
                        Some(old) => (*old * (RTT_SMOOTHING - 1) + sample) / RTT_SMOOTHING,
                        None => sample,
                    };
                    self.round_trips.insert(peer, smoothed);
                }
            }
        }
    }

    /// Handles a received `Gossip` whose id the caller computed.
    pub fn handle_gossip(
        &mut self,
        from: NodeId,
        gossip: Gossip,
        id: MessageId,
        now: Instant,
        out: &mut VecDeque<OutEvent>,
    ) {
        let origin = tree_of(&gossip.content);
        if self.seen.contains_key(&id) {
            self.stats.duplicates += 1;
            // A second copy: this link is not on the origin's tree.
            if self.is_neighbor(&from) {
                self.trees.set_lazy(origin, &from, true);
                self.stats.prunes_sent += 1;
                out.push_back(OutEvent::SendMessage(from, Message::Prune { origin }));
            }
            return;
        }
        self.mark_seen(id, now);
        self.stats.delivered += 1;
        let missing = self.remove_missing(&id);
        if let Some(m) = missing.as_ref().filter(|m| !m.grafted.contains(&from)) {
            // Pushed, not fetched: how late an eager copy runs behind an
            // announcement here.
            self.note_lateness(now.saturating_duration_since(m.since));
        }
        if self.is_neighbor(&from) && self.trees.is_lazy(&origin, &from) {
            // The sender is on the fastest path after all. If we pruned it
            // and it pushed before reading that, it will make us lazy after
            // we made it eager: the graft, read after the prune, keeps both
            // ends eager. One we grafted for this message knows already.
            self.trees.set_lazy(origin, &from, false);
            if !missing.as_ref().is_some_and(|m| m.grafted.contains(&from)) {
                self.stats.grafts_sent += 1;
                out.push_back(OutEvent::SendMessage(
                    from,
                    Message::Graft {
                        id: None,
                        round: gossip.round,
                        origin: Some(origin),
                    },
                ));
            }
        }
        let announcers = missing.map(|m| m.announcers);
        out.push_back(OutEvent::EmitEvent(Event::Received(Delivered {
            id,
            content: gossip.content.clone(),
            delivered_from: from,
            hops: gossip.round,
            caught_up: false,
        })));
        let next_round = gossip.round.saturating_add(1);
        self.push(id, &gossip.content, next_round, Some(from), out);
        self.cache.insert(id, gossip.content, gossip.round, now);
        // Tree optimisation: an announcer that had the message much sooner
        // makes a better parent than the sender.
        if let Some(announcers) = announcers {
            if let Some((better, round)) = announcers
                .iter()
                .filter(|(p, _)| *p != from && self.is_neighbor(p))
                .min_by_key(|(_, r)| *r)
                .copied()
            {
                if round.saturating_add(self.config.optimization_threshold) < gossip.round {
                    self.trees.set_lazy(origin, &better, false);
                    self.stats.grafts_sent += 1;
                    out.push_back(OutEvent::SendMessage(
                        better,
                        Message::Graft {
                            id: None,
                            round,
                            origin: Some(origin),
                        },
                    ));
                    if self.is_neighbor(&from) {
                        self.trees.set_lazy(origin, &from, true);
                        self.stats.prunes_sent += 1;
                        out.push_back(OutEvent::SendMessage(from, Message::Prune { origin }));
                    }
                }
            }
        }
    }

    fn handle_broadcast(&mut self, content: Bytes, now: Instant, out: &mut VecDeque<OutEvent>) {
        let id = MessageId::of(&content);
        if self.seen.contains_key(&id) {
            return;
        }
        self.mark_seen(id, now);
        self.stats.broadcast += 1;
        self.push(id, &content, 1, None, out);
        self.cache.insert(id, content, 0, now);
    }

    /// Eager push to the eager peers, lazy announcement to the lazy ones.
    fn push(
        &mut self,
        id: MessageId,
        content: &Bytes,
        round: u16,
        except: Option<NodeId>,
        out: &mut VecDeque<OutEvent>,
    ) {
        let (eager, lazy) = self.trees.split(tree_of(content), except);
        for peer in eager {
            self.stats.payload_sent += 1;
            out.push_back(OutEvent::SendMessage(
                peer,
                Message::Gossip(Gossip {
                    content: content.clone(),
                    round,
                }),
            ));
        }
        for peer in lazy {
            self.queue_lazy(peer, IHave { id, round }, out);
        }
    }

    fn queue_lazy(&mut self, peer: NodeId, entry: IHave, out: &mut VecDeque<OutEvent>) {
        self.lazy_queue.entry(peer).or_default().push(entry);
        if !self.dispatch_scheduled {
            self.dispatch_scheduled = true;
            out.push_back(OutEvent::ScheduleTimer(
                self.config.dispatch_timeout,
                Timer::DispatchLazyPush,
            ));
        }
    }

    /// Notes announcements. Only a neighbour's count (one that left had its
    /// announcements dropped, and would never be grafted), and each
    /// announcer has its own share of the table, so one flooding made-up
    /// ids cannot leave no room for the real ones of the others.
    fn on_ihave(
        &mut self,
        from: NodeId,
        entries: Vec<IHave>,
        now: Instant,
        out: &mut VecDeque<OutEvent>,
    ) {
        if !self.is_neighbor(&from) {
            return;
        }
        for entry in entries.into_iter().take(MAX_IHAVE_ENTRIES) {
            if self.seen.contains_key(&entry.id) {
                continue;
            }
            let held = self.announced.get(&from).copied().unwrap_or(0);
            if held >= MAX_MISSING_PER_ANNOUNCER {
                break;
            }
            match self.missing.get_mut(&entry.id) {
                Some(missing) => {
                    let announcers = &mut missing.announcers;
                    if announcers.len() < MAX_ANNOUNCERS
                        && !announcers.iter().any(|(p, _)| *p == from)
                        && !missing.grafted.contains(&from)
                    {
                        announcers.push_back((from, entry.round));
                        *self.announced.entry(from).or_default() += 1;
                    }
                }
                None => {
                    if self.missing.len() >= MAX_MISSING {
                        continue;
                    }
                    *self.announced.entry(from).or_default() += 1;
                    self.missing.insert(
                        entry.id,
                        Missing {
                            announcers: VecDeque::from([(from, entry.round)]),
                            grafted: Vec::new(),
                            since: now,
                        },
                    );
                    let late = self.lateness.unwrap_or_default() * LATENESS_MARGIN;
                    let wait = self.graft_wait(
                        &from,
                        &entry.id,
                        GRAFT_WAIT_RTTS,
                        late,
                        self.config.graft_timeout_1,
                    );
                    out.push_back(OutEvent::ScheduleTimer(wait, Timer::SendGraft(entry.id)));
                }
            }
        }
    }

    /// Answers a graft: only a neighbour's (the tree is made of active
    /// links; anyone else would only be pulling messages through us), one
    /// message per graft, within the neighbour's byte budget.
    /// The tree joined is the one named (made only while the table has
    /// room, as for a prune), or else the message's, if we hold it.
    fn on_graft(
        &mut self,
        from: NodeId,
        id: Option<MessageId>,
        round: u16,
        origin: Option<NodeId>,
        now: Instant,
        out: &mut VecDeque<OutEvent>,
    ) {
        if !self.is_neighbor(&from) {
            return;
        }
        let tree = origin
            .filter(|o| self.trees.has_tree(o) || self.trees.has_room())
            .or_else(|| {
                id.and_then(|id| self.cache.get(&id))
                    .map(|(content, _)| tree_of(content))
            });
        if let Some(tree) = tree {
            self.trees.set_lazy(tree, &from, false);
        }
        let Some(id) = id else { return };
        let Some(len) = self.cache.get(&id).map(|(c, _)| c.len() as u64) else {
            return;
        };
        if !self.take_graft_budget(from, len, now) {
            return;
        }
        if let Some((content, cached_round)) = self.cache.get(&id) {
            self.stats.payload_sent += 1;
            out.push_back(OutEvent::SendMessage(
                from,
                Message::Gossip(Gossip {
                    content: content.clone(),
                    round: round.max(cached_round.saturating_add(1)),
                }),
            ));
        }
    }

    /// Spends `len` bytes of `from`'s graft budget, if it has them.
    fn take_graft_budget(&mut self, from: NodeId, len: u64, now: Instant) -> bool {
        let budget = self.graft_budgets.entry(from).or_insert(GraftBudget {
            bytes: GRAFT_BURST_BYTES,
            since: now,
        });
        let elapsed = now.saturating_duration_since(budget.since);
        let earned = (elapsed.as_millis() * u128::from(GRAFT_REFILL_BYTES_PER_SEC) / 1000)
            .min(u128::from(GRAFT_BURST_BYTES)) as u64;
        if earned > 0 {
            budget.bytes = (budget.bytes + earned).min(GRAFT_BURST_BYTES);
            budget.since = now;
        }
        if budget.bytes < len {
            return false;
        }
        budget.bytes -= len;
        true
    }

    /// A prune for an origin we have no tree for makes one only while the
    /// table has room: made-up origins can fill the free room, never push
    /// out the trees of real ones.
    fn on_prune(&mut self, from: NodeId, origin: NodeId) {
        if self.is_neighbor(&from) && (self.trees.has_tree(&origin) || self.trees.has_room()) {
            self.trees.set_lazy(origin, &from, true);
        }
    }

    fn on_neighbor_up(&mut self, peer: NodeId, out: &mut VecDeque<OutEvent>) {
        if peer == self.me {
            return;
        }
        self.trees.add_neighbor(peer);
        self.catch_up(peer, out);
    }

    /// Catches up a node whose links broke mid-broadcast: announces what we
    /// hold, newest first; it grafts what it lacks.
    fn catch_up(&mut self, peer: NodeId, out: &mut VecDeque<OutEvent>) {
        let recent: Vec<IHave> = self
            .cache
            .newest()
            .map(|(id, round)| IHave {
                id,
                round: round.saturating_add(1),
            })
            .take(self.config.catch_up_count)
            .collect();
        if !recent.is_empty() {
            out.push_back(OutEvent::SendMessage(peer, Message::IHave(recent)));
        }
    }

    fn on_neighbor_down(&mut self, peer: NodeId) {
        self.trees.remove_neighbor(&peer);
        self.round_trips.remove(&peer);
        self.lazy_queue.remove(&peer);
        self.graft_budgets.remove(&peer);
        if self.announced.remove(&peer).is_some() {
            for missing in self.missing.values_mut() {
                missing.announcers.retain(|(p, _)| *p != peer);
            }
        }
    }

    fn on_timer(&mut self, timer: Timer, now: Instant, out: &mut VecDeque<OutEvent>) {
        match timer {
            Timer::SendGraft(id) => self.send_graft(id, out),
            Timer::DispatchLazyPush => {
                self.dispatch_scheduled = false;
                for (peer, entries) in std::mem::take(&mut self.lazy_queue) {
                    for chunk in entries.chunks(MAX_IHAVE_ENTRIES) {
                        out.push_back(OutEvent::SendMessage(peer, Message::IHave(chunk.to_vec())));
                    }
                }
            }
            Timer::EvictCache => {
                self.evict(now);
                out.push_back(OutEvent::ScheduleTimer(
                    self.config.cache_evict_interval,
                    Timer::EvictCache,
                ));
            }
        }
    }

    fn send_graft(&mut self, id: MessageId, out: &mut VecDeque<OutEvent>) {
        if self.seen.contains_key(&id) {
            self.remove_missing(&id);
            return;
        }
        let Some(missing) = self.missing.get_mut(&id) else {
            return;
        };
        match missing.announcers.pop_front() {
            Some((peer, round)) => {
                // An emptied entry stays until the next timer, so later
                // announcers still queue up and get tried. Which tree the
                // announcer joins is its to know: it reads the origin from
                // the message.
                if missing.grafted.len() < MAX_ANNOUNCERS {
                    missing.grafted.push(peer);
                }
                self.forget_announcement(&peer);
                self.stats.grafts_sent += 1;
                out.push_back(OutEvent::SendMessage(
                    peer,
                    Message::Graft {
                        id: Some(id),
                        round,
                        origin: None,
                    },
                ));
                let wait = self.graft_wait(
                    &peer,
                    &id,
                    ANSWER_WAIT_RTTS,
                    Duration::ZERO,
                    self.config.graft_timeout_2,
                );
                out.push_back(OutEvent::ScheduleTimer(wait, Timer::SendGraft(id)));
            }
            None => {
                self.missing.remove(&id);
            }
        }
    }

    /// Takes a missing message out of the table, with its announcers.
    fn remove_missing(&mut self, id: &MessageId) -> Option<Missing> {
        let missing = self.missing.remove(id)?;
        for (peer, _) in &missing.announcers {
            self.forget_announcement(peer);
        }
        Some(missing)
    }

    /// How long to wait on `announcer` for message `id`: `rtts` of its
    /// round trips, spread by up to one more, and no less than `late`; at
    /// most `longest` (also the wait while its round trip is unknown). The
    /// spread is drawn from the message id and our own, so it differs
    /// between the nodes that graft the same message and is the same on
    /// every run.
    fn graft_wait(
        &self,
        announcer: &NodeId,
        id: &MessageId,
        rtts: u32,
        late: Duration,
        longest: Duration,
    ) -> Duration {
        let Some(rtt) = self.round_trips.get(announcer) else {
            return longest;
        };
        let (a, b) = (&id.0, self.me.as_bytes());
        let spread = u32::from(u16::from_le_bytes([a[0] ^ b[0], a[1] ^ b[1]]));
        let wait = (*rtt * rtts + *rtt * spread / u32::from(u16::MAX)).max(late);
        wait.clamp(MIN_GRAFT_WAIT.min(longest), longest)
    }

    /// Folds a sample into the smoothed lateness: up by a quarter of the
    /// difference, down by an eighth, so a burst of load lengthens the
    /// waits soon and one slow copy does not much.
    fn note_lateness(&mut self, sample: Duration) {
        self.lateness = Some(match self.lateness {
            None => sample,
            Some(old) if sample > old => old + (sample - old) / 4,
            Some(old) => old - (old - sample) / 8,
        });
    }

    /// How late an eager copy usually runs behind its first announcement
    /// here (smoothed), once one did.
    pub fn lateness(&self) -> Option<Duration> {
        self.lateness
    }

    fn forget_announcement(&mut self, peer: &NodeId) {
        if let Some(n) = self.announced.get_mut(peer) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.announced.remove(peer);
            }
        }
    }

    fn mark_seen(&mut self, id: MessageId, now: Instant) {
        self.seen.insert(id, now);
        self.seen_order.push_back((now, id));
        while self.seen_order.len() > self.config.max_seen_ids {
            if let Some((_, old)) = self.seen_order.pop_front() {
                self.seen.remove(&old);
            }
        }
    }

    fn evict(&mut self, now: Instant) {
        self.cache.evict(now, self.config.message_cache_retention);
        while let Some((at, id)) = self.seen_order.front().copied() {
            if now.saturating_duration_since(at) < self.config.message_id_retention {
                break;
            }
            self.seen_order.pop_front();
            self.seen.remove(&id);
        }
    }

    fn is_neighbor(&self, peer: &NodeId) -> bool {
        self.trees.is_neighbor(peer)
    }
}
