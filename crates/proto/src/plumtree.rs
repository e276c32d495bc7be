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
//! Two additions: a new neighbour is sent an `IHave` of the recent messages,
//! so a node whose links broke mid-broadcast catches up once it is linked
//! again; and the paper's tree optimisation (graft a lazy path that is
//! shorter by `optimization_threshold` hops) keeps the tree short.
//!
//! The module is sans-IO: [`Plumtree::handle`] takes an [`InEvent`] and the
//! current time and appends [`OutEvent`]s to a queue the caller drains.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::{MessageId, NodeId};

/// Tunables of the broadcast layer.
#[derive(Debug, Clone)]
pub struct Config {
    /// Wait after the first `IHave` of a missing message before grafting: the
    /// eager copy is usually on its way and a graft would only add a copy.
    pub graft_timeout_1: Duration,
    /// Wait before grafting the next announcer when the first did not answer.
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
    /// Most ids remembered as seen (a memory bound under a burst).
    pub max_seen_ids: usize,
    /// Most recent ids announced to a new neighbour.
    pub catch_up_count: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            graft_timeout_1: Duration::from_millis(200),
            graft_timeout_2: Duration::from_millis(100),
            dispatch_timeout: Duration::from_millis(20),
            message_cache_retention: Duration::from_secs(30),
            message_id_retention: Duration::from_secs(120),
            cache_evict_interval: Duration::from_secs(1),
            optimization_threshold: 7,
            max_cached_messages: 16_384,
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
const MAX_MISSING: usize = 16_384;

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
    /// Send me this message, and push future ones to me eagerly.
    Graft {
        /// The message wanted, if any.
        id: Option<MessageId>,
        /// Its round at the announcer.
        round: u16,
    },
    /// Stop pushing messages to me eagerly.
    Prune,
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

#[derive(Debug)]
struct Cached {
    content: Bytes,
    round: u16,
}

/// The Plumtree state of one node.
#[derive(Debug)]
pub struct Plumtree {
    me: NodeId,
    config: Config,
    eager: BTreeSet<NodeId>,
    lazy: BTreeSet<NodeId>,
    /// Ids seen, with when, oldest first in `seen_order`.
    seen: HashMap<MessageId, Instant>,
    seen_order: VecDeque<(Instant, MessageId)>,
    /// Messages kept to answer grafts, oldest first in `cache_order`.
    cache: HashMap<MessageId, Cached>,
    cache_order: VecDeque<(Instant, MessageId)>,
    /// Announced but not received: who announced, at which round.
    missing: BTreeMap<MessageId, VecDeque<(NodeId, u16)>>,
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
            config,
            eager: BTreeSet::new(),
            lazy: BTreeSet::new(),
            seen: HashMap::new(),
            seen_order: VecDeque::new(),
            cache: HashMap::new(),
            cache_order: VecDeque::new(),
            missing: BTreeMap::new(),
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

    /// Neighbours messages are pushed to in full.
    pub fn eager_peers(&self) -> impl Iterator<Item = &NodeId> {
        self.eager.iter()
    }

    /// Neighbours that are only told of messages.
    pub fn lazy_peers(&self) -> impl Iterator<Item = &NodeId> {
        self.lazy.iter()
    }

    /// Counters since start.
    pub fn stats(&self) -> Stats {
        self.stats
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
                Message::IHave(entries) => self.on_ihave(from, entries, out),
                Message::Graft { id, round } => self.on_graft(from, id, round, out),
                Message::Prune => self.on_prune(from),
            },
            InEvent::Broadcast(content) => self.handle_broadcast(content, now, out),
            InEvent::TimerExpired(timer) => self.on_timer(timer, now, out),
            InEvent::NeighborUp(peer) => self.on_neighbor_up(peer, out),
            InEvent::NeighborDown(peer) => self.on_neighbor_down(peer),
            InEvent::LinkReplaced(peer) => {
                if self.eager.contains(&peer) || self.lazy.contains(&peer) {
                    self.catch_up(peer, out);
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
        if self.seen.contains_key(&id) {
            self.stats.duplicates += 1;
            // A second copy: this link is not on the tree.
            if self.eager.remove(&from) {
                self.lazy.insert(from);
            }
            if self.lazy.contains(&from) {
                self.stats.prunes_sent += 1;
                out.push_back(OutEvent::SendMessage(from, Message::Prune));
            }
            return;
        }
        self.mark_seen(id, now);
        self.stats.delivered += 1;
        let announcers = self.missing.remove(&id);
        out.push_back(OutEvent::EmitEvent(Event::Received(Delivered {
            id,
            content: gossip.content.clone(),
            delivered_from: from,
            hops: gossip.round,
            caught_up: false,
        })));
        let next_round = gossip.round.saturating_add(1);
        self.push(id, &gossip.content, next_round, Some(from), out);
        self.cache_message(id, gossip.content, gossip.round, now);
        if self.is_neighbor(&from) {
            self.lazy.remove(&from);
            self.eager.insert(from);
        }
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
                    self.lazy.remove(&better);
                    self.eager.insert(better);
                    self.stats.grafts_sent += 1;
                    out.push_back(OutEvent::SendMessage(
                        better,
                        Message::Graft { id: None, round },
                    ));
                    if self.eager.remove(&from) {
                        self.lazy.insert(from);
                    }
                    self.stats.prunes_sent += 1;
                    out.push_back(OutEvent::SendMessage(from, Message::Prune));
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
        self.cache_message(id, content, 0, now);
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
        for peer in &self.eager {
            if Some(*peer) == except {
                continue;
            }
            self.stats.payload_sent += 1;
            out.push_back(OutEvent::SendMessage(
                *peer,
                Message::Gossip(Gossip {
                    content: content.clone(),
                    round,
                }),
            ));
        }
        let lazy: Vec<NodeId> = self
            .lazy
            .iter()
            .filter(|p| Some(**p) != except)
            .copied()
            .collect();
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

    fn on_ihave(&mut self, from: NodeId, entries: Vec<IHave>, out: &mut VecDeque<OutEvent>) {
        for entry in entries.into_iter().take(MAX_IHAVE_ENTRIES) {
            if self.seen.contains_key(&entry.id) {
                continue;
            }
            match self.missing.get_mut(&entry.id) {
                Some(announcers) => {
                    if announcers.len() < MAX_ANNOUNCERS
                        && !announcers.iter().any(|(p, _)| *p == from)
                    {
                        announcers.push_back((from, entry.round));
                    }
                }
                None => {
                    if self.missing.len() >= MAX_MISSING {
                        continue;
                    }
                    self.missing
                        .insert(entry.id, VecDeque::from([(from, entry.round)]));
                    out.push_back(OutEvent::ScheduleTimer(
                        self.config.graft_timeout_1,
                        Timer::SendGraft(entry.id),
                    ));
                }
            }
        }
    }

    fn on_graft(
        &mut self,
        from: NodeId,
        id: Option<MessageId>,
        round: u16,
        out: &mut VecDeque<OutEvent>,
    ) {
        if self.is_neighbor(&from) {
            self.lazy.remove(&from);
            self.eager.insert(from);
        }
        let Some(id) = id else { return };
        if let Some(cached) = self.cache.get(&id) {
            self.stats.payload_sent += 1;
            out.push_back(OutEvent::SendMessage(
                from,
                Message::Gossip(Gossip {
                    content: cached.content.clone(),
                    round: round.max(cached.round.saturating_add(1)),
                }),
            ));
        }
    }

    fn on_prune(&mut self, from: NodeId) {
        if self.eager.remove(&from) {
            self.lazy.insert(from);
        }
    }

    fn on_neighbor_up(&mut self, peer: NodeId, out: &mut VecDeque<OutEvent>) {
        if peer == self.me {
            return;
        }
        self.lazy.remove(&peer);
        self.eager.insert(peer);
        self.catch_up(peer, out);
    }

    /// Catches up a node whose links broke mid-broadcast: announces what we
    /// hold, newest first; it grafts what it lacks.
    fn catch_up(&mut self, peer: NodeId, out: &mut VecDeque<OutEvent>) {
        let recent: Vec<IHave> = self
            .cache_order
            .iter()
            .rev()
            .take(self.config.catch_up_count)
            .filter_map(|(_, id)| {
                self.cache.get(id).map(|c| IHave {
                    id: *id,
                    round: c.round.saturating_add(1),
                })
            })
            .collect();
        if !recent.is_empty() {
            out.push_back(OutEvent::SendMessage(peer, Message::IHave(recent)));
        }
    }

    fn on_neighbor_down(&mut self, peer: NodeId) {
        self.eager.remove(&peer);
        self.lazy.remove(&peer);
        self.lazy_queue.remove(&peer);
        for announcers in self.missing.values_mut() {
            announcers.retain(|(p, _)| *p != peer);
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
            self.missing.remove(&id);
            return;
        }
        let Some(announcers) = self.missing.get_mut(&id) else {
            return;
        };
        match announcers.pop_front() {
            Some((peer, round)) => {
                // An emptied entry stays until the next timer, so later
                // announcers still queue up and get tried.
                if self.is_neighbor(&peer) {
                    self.lazy.remove(&peer);
                    self.eager.insert(peer);
                }
                self.stats.grafts_sent += 1;
                out.push_back(OutEvent::SendMessage(
                    peer,
                    Message::Graft {
                        id: Some(id),
                        round,
                    },
                ));
                out.push_back(OutEvent::ScheduleTimer(
                    self.config.graft_timeout_2,
                    Timer::SendGraft(id),
                ));
            }
            None => {
                self.missing.remove(&id);
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

    fn cache_message(&mut self, id: MessageId, content: Bytes, round: u16, now: Instant) {
        self.cache.insert(id, Cached { content, round });
        self.cache_order.push_back((now, id));
        while self.cache_order.len() > self.config.max_cached_messages {
            if let Some((_, old)) = self.cache_order.pop_front() {
                self.cache.remove(&old);
            }
        }
    }

    fn evict(&mut self, now: Instant) {
        while let Some((at, id)) = self.cache_order.front().copied() {
            if now.saturating_duration_since(at) < self.config.message_cache_retention {
                break;
            }
            self.cache_order.pop_front();
            self.cache.remove(&id);
        }
        while let Some((at, id)) = self.seen_order.front().copied() {
            if now.saturating_duration_since(at) < self.config.message_id_retention {
                break;
            }
            self.seen_order.pop_front();
            self.seen.remove(&id);
        }
    }

    fn is_neighbor(&self, peer: &NodeId) -> bool {
        self.eager.contains(peer) || self.lazy.contains(peer)
    }
}
