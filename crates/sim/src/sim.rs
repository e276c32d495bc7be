//! The discrete-event engine: virtual time, a seeded event heap, and links
//! with latency, loss and partitions between nodes that run the real
//! protocol code.
//!
//! Every node is a `gossipnet_proto::State`, driven exactly as the tokio node
//! drives it: messages, timers and link failures go in, sends, timers and
//! closes come out. Events are ordered by (time, sequence number), so two
//! runs with one seed are identical, and all maps that outputs depend on are
//! ordered. Links are modelled on TCP between processes:
//!
//! - latency is fixed per link (drawn once per pair from the configured
//!   range), so messages on one link stay in order, as on a TCP stream;
//! - a message to a node that is not running fails back to the sender after
//!   one round trip (connection refused), which the sender's protocol sees as
//!   a failed peer;
//! - when a node crashes, the kernel resets its connections: each neighbour
//!   learns after one link latency; when a node closes a link on purpose, the
//!   other end learns the same way, and treats it as a failure only if it
//!   still counted the closer as a neighbour (the runtime's rule);
//! - a partition silently drops what crosses it (a cut cable, not a reset),
//!   and liveness timeouts find the dead links;
//! - a node taken offline keeps its history, as the real node keeps it on
//!   disk, and is given it back when it restarts.
//!
//! Every node's wall clock (by which envelope ages are judged) is
//! [`SIM_EPOCH_MS`] plus the virtual time.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::time::{Duration, Instant};

use bytes::Bytes;
use gossipnet_proto::envelope::{Envelope, Kind, SignedEnvelope};
use gossipnet_proto::hyparview::Message as HpvMessage;
use gossipnet_proto::plumtree::Message as TreeMessage;
use gossipnet_proto::wire::Message;
use gossipnet_proto::{
    Command, Config, Event, InEvent, MessageId, NodeId, OutEvent, SecretKey, State, Timer,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Link latency model.
#[derive(Debug, Clone, Copy)]
pub enum Latency {
    /// Every link has this latency.
    Fixed(Duration),
    /// Each link's latency is drawn once, uniformly from this range.
    Range(Duration, Duration),
}

/// Simulator settings.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Seeds every random choice: the simulator's and each node's RNG.
    pub seed: u64,
    /// Link latency.
    pub latency: Latency,
    /// Probability that a message is lost.
    pub loss: f64,
    /// The protocol configuration of every node.
    pub proto: Config,
}

impl Default for SimConfig {
    fn default() -> Self {
        // Simulated payloads are tagged bytes, not signed envelopes; the
        // size estimate and anti-entropy run only in their own experiments.
        let proto = Config {
            verify_envelopes: false,
            size: None,
            sync: None,
            ..Config::default()
        };
        Self {
            seed: 1,
            latency: Latency::Range(Duration::from_millis(10), Duration::from_millis(50)),
            loss: 0.0,
            proto,
        }
    }
}

/// Index of a node in the simulator.
pub type Idx = u32;

/// The wall clock at virtual time zero (Unix ms): any fixed value works,
/// this one reads as a date in 2023.
pub const SIM_EPOCH_MS: u64 = 1_700_000_000_000;

/// Per-message delivery record, for messages broadcast with [`Simulator::broadcast`].
#[derive(Debug, Clone)]
pub struct Tracked {
    /// Who broadcast it.
    pub origin: Idx,
    /// When (virtual microseconds).
    pub sent_at: u64,
    /// Deliveries per node (more than one is a protocol bug).
    pub deliveries: Vec<u8>,
    /// Hops of the delivery at each node (0 where not delivered).
    pub hops: Vec<u16>,
    /// Full-payload sends of this message, network wide.
    pub payload_sends: u64,
    /// Nodes that delivered it.
    pub delivered: u64,
    /// Virtual microseconds from the broadcast to each first delivery, in
    /// the order they happened.
    pub delays_us: Vec<u64>,
}

/// Problems the invariant checks find.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Violations {
    /// Active-view links listed at one end only, with nothing in flight that
    /// would settle them.
    pub asymmetric: Vec<(Idx, Idx)>,
    /// Views over their capacity.
    pub over_capacity: Vec<Idx>,
    /// Live nodes with no active neighbour that lists them back.
    pub isolated: Vec<Idx>,
    /// Messages delivered more than once at a node: (message tag, node).
    pub duplicate_deliveries: Vec<(u64, Idx)>,
}

impl Violations {
    /// Whether nothing was found.
    pub fn is_empty(&self) -> bool {
        self.asymmetric.is_empty()
            && self.over_capacity.is_empty()
            && self.isolated.is_empty()
            && self.duplicate_deliveries.is_empty()
    }
}

enum Payload {
    Message(Idx, Message),
    Timer(Timer),
    /// The link from this node was closed or reset.
    LinkClosed(Idx),
    /// A message to this node could not be delivered.
    Unreachable(Idx),
    Command(Command),
}

struct Scheduled {
    at: u64,
    seq: u64,
    to: Idx,
    payload: Payload,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at && self.seq == other.seq
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    // Reversed: BinaryHeap is a max-heap and we want the earliest first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

struct SimNode {
    state: Option<State<ChaCha8Rng>>,
    /// The history of a node taken offline, given back when it restarts.
    kept: Vec<Bytes>,
    /// Restarts so far, so each run's RNG differs.
    runs: u64,
}

/// Counters over a run.
#[derive(Debug, Clone, Copy, Default)]
pub struct SimStats {
    /// Events processed.
    pub events: u64,
    /// Messages sent.
    pub messages: u64,
    /// Messages lost to loss or partitions.
    pub dropped: u64,
    /// Encoded bytes of anti-entropy messages (summaries and fills) sent.
    pub sync_bytes: u64,
}

/// The simulator. See the module docs.
pub struct Simulator {
    config: SimConfig,
    base: Instant,
    now: u64,
    seq: u64,
    rng: ChaCha8Rng,
    nodes: Vec<SimNode>,
    ids: Vec<NodeId>,
    index: HashMap<NodeId, Idx>,
    queue: BinaryHeap<Scheduled>,
    groups: Option<Vec<u16>>,
    /// Active-view-changing messages in flight per unordered pair, so the
    /// symmetry check can tell a settling link from a broken one.
    in_flight: HashMap<(Idx, Idx), u32>,
    tracked: HashMap<u64, Tracked>,
    next_tag: u64,
    duplicate_deliveries: Vec<(u64, Idx)>,
    /// Tags of tracked envelopes, by message id (their bytes carry no tag
    /// up front, as the plain payloads do).
    envelope_tags: HashMap<MessageId, u64>,
    /// Signing keys and next sequence number of nodes that broadcast
    /// envelopes.
    keys: HashMap<Idx, (SecretKey, u64)>,
    out_buf: Vec<OutEvent>,
    stats: SimStats,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator")
            .field("nodes", &self.nodes.len())
            .field("now_us", &self.now)
            .field("queued", &self.queue.len())
            .finish()
    }
}

impl Simulator {
    /// An empty simulation.
    pub fn new(config: SimConfig) -> Self {
        let rng = ChaCha8Rng::seed_from_u64(config.seed);
        Self {
            config,
            base: Instant::now(),
            now: 0,
            seq: 0,
            rng,
            nodes: Vec::new(),
            ids: Vec::new(),
            index: HashMap::new(),
            queue: BinaryHeap::new(),
            groups: None,
            in_flight: HashMap::new(),
            tracked: HashMap::new(),
            next_tag: 0,
            duplicate_deliveries: Vec::new(),
            envelope_tags: HashMap::new(),
            keys: HashMap::new(),
            out_buf: Vec::new(),
            stats: SimStats::default(),
        }
    }

    /// Virtual time since the start.
    pub fn now(&self) -> Duration {
        Duration::from_micros(self.now)
    }

    /// Counters so far.
    pub fn stats(&self) -> SimStats {
        self.stats
    }

    /// Number of nodes ever added.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether no node was added.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Whether a node is running.
    pub fn is_alive(&self, i: Idx) -> bool {
        self.nodes[i as usize].state.is_some()
    }

    /// Indices of running nodes.
    pub fn alive(&self) -> Vec<Idx> {
        (0..self.nodes.len() as Idx)
            .filter(|i| self.is_alive(*i))
            .collect()
    }

    /// A running node's protocol state.
    pub fn state(&self, i: Idx) -> Option<&State<ChaCha8Rng>> {
        self.nodes[i as usize].state.as_ref()
    }

    /// The id of a node.
    pub fn id(&self, i: Idx) -> NodeId {
        self.ids[i as usize]
    }

    /// The index of a node id.
    pub fn index_of(&self, id: &NodeId) -> Option<Idx> {
        self.index.get(id).copied()
    }

    /// The simulator's own RNG, for experiments' random choices.
    pub fn rng(&mut self) -> &mut ChaCha8Rng {
        &mut self.rng
    }

    /// Adds a node; it does nothing until it is told to join.
    pub fn add_node(&mut self) -> Idx {
        let i = self.nodes.len() as Idx;
        let id = sim_id(self.config.seed, i);
        let rng = ChaCha8Rng::seed_from_u64(self.config.seed ^ (u64::from(i) << 20) ^ 0x9e37_79b9);
        let state = State::new(id, Bytes::new(), self.config.proto.clone(), rng);
        self.nodes.push(SimNode {
            state: Some(state),
            kept: Vec::new(),
            runs: 0,
        });
        self.ids.push(id);
        self.index.insert(id, i);
        i
    }

    /// Tells node `i` to join through `contact`, `delay` from now.
    pub fn join(&mut self, i: Idx, contact: Idx, delay: Duration) {
        let contact = self.id(contact);
        self.schedule(
            micros(delay),
            i,
            Payload::Command(Command::Join(vec![contact])),
        );
    }

    /// Starts a node that joins nobody (the first node of a network).
    pub fn start(&mut self, i: Idx) {
        self.schedule(0, i, Payload::Command(Command::Join(Vec::new())));
    }

    /// Node `i` broadcasts a tagged payload of `size` bytes now; returns the
    /// tag under which its deliveries are tracked.
    pub fn broadcast(&mut self, i: Idx, size: usize) -> u64 {
        let tag = self.next_tag;
        self.next_tag += 1;
        // Laid out as an envelope begins: the origin's id first, which
        // names the broadcast tree the message travels.
        let mut content = vec![0u8; size.max(TAG_AT + 12)];
        content[..TAG_AT].copy_from_slice(self.ids[i as usize].as_bytes());
        content[TAG_AT..TAG_AT + 8].copy_from_slice(&tag.to_le_bytes());
        content[TAG_AT + 8..TAG_AT + 12].copy_from_slice(&i.to_le_bytes());
        self.track(tag, i);
        self.schedule(
            0,
            i,
            Payload::Command(Command::Broadcast(Bytes::from(content))),
        );
        tag
    }

    /// Starts tracking the deliveries of broadcast `tag` from node `i`, sent
    /// now.
    fn track(&mut self, tag: u64, i: Idx) {
        let n = self.nodes.len();
        self.tracked.insert(
            tag,
            Tracked {
                origin: i,
                sent_at: self.now,
                deliveries: vec![0; n],
                hops: vec![0; n],
                payload_sends: 0,
                delivered: 0,
                delays_us: Vec::new(),
            },
        );
    }

    /// Node `i` broadcasts a signed envelope (its origin a key of the
    /// node's own, its sequence numbers rising by one) with a body of
    /// `size` bytes now; returns the tag under which its deliveries are
    /// tracked. For runs with anti-entropy, whose history is keyed by
    /// origin and sequence.
    pub fn broadcast_envelope(&mut self, i: Idx, size: usize) -> u64 {
        let tag = self.next_tag;
        self.next_tag += 1;
        let seed = self.config.seed;
        let (key, seq) = self.keys.entry(i).or_insert_with(|| {
            let mut b = [0u8; 32];
            b[..8].copy_from_slice(&mix(seed ^ u64::from(i)).to_le_bytes());
            b[8..16].copy_from_slice(&mix(u64::from(i)).to_le_bytes());
            (SecretKey::from_bytes(&b), 0)
        });
        *seq += 1;
        let envelope = Envelope {
            origin: key.node_id(),
            seq: *seq,
            time_ms: SIM_EPOCH_MS + self.now / 1000,
            kind: Kind::Custom(1),
            body: Bytes::from(vec![0u8; size]),
        };
        let content = SignedEnvelope::sign(key, envelope)
            .expect("the key is the origin's and the body is small")
            .encode();
        self.envelope_tags.insert(MessageId::of(&content), tag);
        self.track(tag, i);
        self.schedule(0, i, Payload::Command(Command::Broadcast(content)));
        tag
    }

    /// Takes node `i` offline: like a crash, but what it holds in its
    /// history is kept for [`Simulator::restart`], as a disk would keep it.
    pub fn take_offline(&mut self, i: Idx) {
        let kept = self.nodes[i as usize]
            .state
            .as_ref()
            .and_then(|s| s.sync().map(|s| s.history().export()))
            .unwrap_or_default();
        self.crash(i);
        self.nodes[i as usize].kept = kept;
    }

    /// Starts an offline node again, with its kept history, joining through
    /// `contact`.
    pub fn restart(&mut self, i: Idx, contact: Idx) {
        let node = &mut self.nodes[i as usize];
        if node.state.is_some() {
            return;
        }
        node.runs += 1;
        let rng = ChaCha8Rng::seed_from_u64(
            self.config.seed ^ (u64::from(i) << 20) ^ node.runs.wrapping_mul(0x9e37_79b9),
        );
        let id = self.ids[i as usize];
        let mut state = State::new(id, Bytes::new(), self.config.proto.clone(), rng);
        state.set_wall_clock(SIM_EPOCH_MS + self.now / 1000);
        state.restore(std::mem::take(&mut node.kept));
        node.state = Some(state);
        self.join(i, contact, Duration::ZERO);
    }

    /// The delivery record of a tracked message.
    pub fn tracked(&self, tag: u64) -> Option<&Tracked> {
        self.tracked.get(&tag)
    }

    /// Forgets a tracked message (frees its per-node arrays).
    pub fn untrack(&mut self, tag: u64) -> Option<Tracked> {
        self.tracked.remove(&tag)
    }

    /// Crashes a node: its state is gone, its neighbours' links reset.
    pub fn crash(&mut self, i: Idx) {
        let Some(state) = self.nodes[i as usize].state.take() else {
            return;
        };
        for peer in state.membership().active_view() {
            if let Some(p) = self.index_of(peer) {
                let delay = self.latency(i, p);
                self.schedule(delay, p, Payload::LinkClosed(i));
            }
        }
    }

    /// Node `i` leaves gracefully: it tells its neighbours, then stops.
    pub fn leave(&mut self, i: Idx) {
        if self.nodes[i as usize].state.is_none() {
            return;
        }
        self.dispatch(i, InEvent::Command(Command::Quit));
        self.nodes[i as usize].state = None;
    }

    /// Splits the network: nodes in different groups cannot reach each
    /// other until [`Simulator::heal_partition`].
    pub fn partition(&mut self, group_of: impl Fn(Idx) -> u16) {
        let groups = (0..self.nodes.len() as Idx).map(group_of).collect();
        self.groups = Some(groups);
    }

    /// Ends a partition.
    pub fn heal_partition(&mut self) {
        self.groups = None;
    }

    /// Runs events until virtual time `until` (from the start).
    pub fn run_until(&mut self, until: Duration) {
        let until = micros(until);
        while let Some(top) = self.queue.peek() {
            if top.at > until {
                break;
            }
            let Some(ev) = self.queue.pop() else { break };
            self.now = ev.at;
            self.process(ev);
        }
        self.now = self.now.max(until);
    }

    /// Runs for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        let until = self.now() + d;
        self.run_until(until);
    }

    /// Runs until `done` holds, checking every `step`, for at most `limit`.
    /// Returns whether it held.
    pub fn run_until_cond(
        &mut self,
        step: Duration,
        limit: Duration,
        mut done: impl FnMut(&Simulator) -> bool,
    ) -> bool {
        let deadline = self.now() + limit;
        loop {
            if done(self) {
                return true;
            }
            if self.now() >= deadline {
                return false;
            }
            self.run_for(step);
        }
    }

    fn process(&mut self, ev: Scheduled) {
        self.stats.events += 1;
        let to = ev.to;
        let input = match ev.payload {
            Payload::Message(from, message) => {
                if affects_active_view(&message) {
                    let key = pair(from, to);
                    if let Some(n) = self.in_flight.get_mut(&key) {
                        *n -= 1;
                        if *n == 0 {
                            self.in_flight.remove(&key);
                        }
                    }
                }
                if !self.is_alive(to) {
                    // Connection refused: the sender learns after the reply
                    // crosses back.
                    if self.is_alive(from) {
                        let delay = self.latency(to, from);
                        self.schedule(delay, from, Payload::Unreachable(to));
                    }
                    return;
                }
                InEvent::RecvMessage(self.ids[from as usize], message)
            }
            Payload::Timer(timer) => InEvent::TimerExpired(timer),
            Payload::LinkClosed(from) => {
                let from_id = self.ids[from as usize];
                let Some(state) = self.nodes[to as usize].state.as_ref() else {
                    return;
                };
                if !state.membership().active_view().contains(&from_id) {
                    return;
                }
                InEvent::PeerDisconnected(from_id)
            }
            Payload::Unreachable(peer) => InEvent::PeerDisconnected(self.ids[peer as usize]),
            Payload::Command(c) => InEvent::Command(c),
        };
        if self.is_alive(to) {
            self.dispatch(to, input);
        }
    }

    fn dispatch(&mut self, to: Idx, input: InEvent) {
        let now = self.base + Duration::from_micros(self.now);
        let mut buf = std::mem::take(&mut self.out_buf);
        if let Some(state) = self.nodes[to as usize].state.as_mut() {
            state.set_wall_clock(SIM_EPOCH_MS + self.now / 1000);
            buf.extend(state.handle(input, now));
        }
        for out in buf.drain(..) {
            self.apply(to, out);
        }
        self.out_buf = buf;
    }

    fn apply(&mut self, from: Idx, out: OutEvent) {
        match out {
            OutEvent::SendMessage(peer, message) => {
                let Some(to) = self.index_of(&peer) else {
                    return;
                };
                self.stats.messages += 1;
                if let Message::Broadcast(TreeMessage::Gossip(g)) = &message {
                    let tag = self.tag(&g.content);
                    if let Some(t) = self.tracked.get_mut(&tag) {
                        t.payload_sends += 1;
                    }
                }
                if let Message::Sync(_) = &message {
                    self.stats.sync_bytes += gossipnet_proto::wire::encode(&message).len() as u64;
                }
                if self.config.loss > 0.0 && self.rng.gen_bool(self.config.loss) {
                    self.stats.dropped += 1;
                    return;
                }
                if let Some(groups) = &self.groups {
                    if groups[from as usize] != groups[to as usize] {
                        self.stats.dropped += 1;
                        return;
                    }
                }
                if affects_active_view(&message) {
                    *self.in_flight.entry(pair(from, to)).or_default() += 1;
                }
                let delay = self.latency(from, to);
                self.schedule(delay, to, Payload::Message(from, message));
            }
            OutEvent::ScheduleTimer(delay, timer) => {
                self.schedule(micros(delay), from, Payload::Timer(timer));
            }
            OutEvent::DisconnectPeer(_) => {
                // Every close the protocol makes on purpose follows a
                // `Disconnect` message that already told the other end; the
                // closes that do not (a peer declared dead, or misbehaving)
                // concern a peer that is gone or will time out itself. A
                // reset arriving later must not hit a link re-made since,
                // which is what the runtime's one-link-per-peer rule gives.
            }
            OutEvent::EmitEvent(Event::Received(d)) => {
                let tag = self.tag(&d.content);
                if let Some(t) = self.tracked.get_mut(&tag) {
                    let slot = &mut t.deliveries[from as usize];
                    *slot = slot.saturating_add(1);
                    if *slot == 1 {
                        t.hops[from as usize] = d.hops;
                        t.delivered += 1;
                        t.delays_us.push(self.now - t.sent_at);
                    } else {
                        self.duplicate_deliveries.push((tag, from));
                    }
                }
            }
            // The simulator's nodes send no seed, direct, query or admin
            // messages, so none comes back.
            OutEvent::EmitEvent(_) | OutEvent::PeerData(..) | OutEvent::Runtime(..) => {}
        }
    }

    /// The tag of a payload: looked up for an envelope, read from the
    /// first bytes otherwise.
    fn tag(&self, content: &[u8]) -> u64 {
        if self.envelope_tags.is_empty() {
            return tag_of(content);
        }
        self.envelope_tags
            .get(&MessageId::of(content))
            .copied()
            .unwrap_or_else(|| tag_of(content))
    }

    fn schedule(&mut self, delay_us: u64, to: Idx, payload: Payload) {
        self.seq += 1;
        self.queue.push(Scheduled {
            at: self.now + delay_us,
            seq: self.seq,
            to,
            payload,
        });
    }

    /// One-way latency of the link between two nodes, in microseconds: a
    /// pure function of the pair and the seed, so it is fixed per link and
    /// costs no memory.
    fn latency(&self, a: Idx, b: Idx) -> u64 {
        match self.config.latency {
            Latency::Fixed(d) => micros(d),
            Latency::Range(lo, hi) => {
                let (lo, hi) = (micros(lo), micros(hi));
                if hi <= lo {
                    return lo;
                }
                let (x, y) = pair(a, b);
                let h = mix(self.config.seed ^ (u64::from(x) << 32 | u64::from(y)));
                lo + h % (hi - lo + 1)
            }
        }
    }

    /// Checks the overlay's invariants over the running nodes.
    pub fn check_invariants(&self) -> Violations {
        let mut v = Violations {
            duplicate_deliveries: self.duplicate_deliveries.clone(),
            ..Violations::default()
        };
        let active_cap = self.config.proto.membership.active_view_capacity;
        let passive_cap = self.config.proto.membership.passive_view_capacity;
        for i in 0..self.nodes.len() as Idx {
            let Some(state) = self.state(i) else { continue };
            let m = state.membership();
            if m.active_view().len() > active_cap || m.passive_view().len() > passive_cap {
                v.over_capacity.push(i);
            }
            let mut listed_back = false;
            for peer in m.active_view() {
                let Some(p) = self.index_of(peer) else {
                    continue;
                };
                let back = self
                    .state(p)
                    .is_some_and(|s| s.membership().active_view().contains(&self.ids[i as usize]));
                if back {
                    listed_back = true;
                } else if self.is_alive(p) && !self.in_flight.contains_key(&pair(i, p)) {
                    v.asymmetric.push((i, p));
                }
            }
            if !listed_back {
                v.isolated.push(i);
            }
        }
        v
    }

    /// Connected components of the running nodes over symmetric
    /// active-view links.
    pub fn components(&self) -> usize {
        let n = self.nodes.len();
        let mut parent: Vec<Idx> = (0..n as Idx).collect();
        for i in 0..n as Idx {
            let Some(state) = self.state(i) else { continue };
            for peer in state.membership().active_view() {
                let Some(p) = self.index_of(peer) else {
                    continue;
                };
                if self.is_alive(p) {
                    union(&mut parent, i, p);
                }
            }
        }
        roots(&mut parent, (0..n as Idx).filter(|i| self.is_alive(*i)))
    }

    /// Connected components of the running nodes over the eager links of
    /// node `origin`'s broadcast tree: a link counts when both ends push to
    /// each other in full, the only kind that carries a message either way.
    /// One component means a message from that origin reaches every node
    /// without a graft.
    pub fn eager_components(&self, origin: Idx) -> usize {
        let n = self.nodes.len();
        let tree = self.ids[origin as usize];
        let mut parent: Vec<Idx> = (0..n as Idx).collect();
        for i in 0..n as Idx {
            let Some(state) = self.state(i) else { continue };
            let me = self.ids[i as usize];
            for peer in state.broadcast().eager_peers_for(&tree) {
                let Some(p) = self.index_of(&peer) else {
                    continue;
                };
                let both = self
                    .state(p)
                    .is_some_and(|s| s.broadcast().eager_peers_for(&tree).contains(&me));
                if both {
                    union(&mut parent, i, p);
                }
            }
        }
        roots(&mut parent, (0..n as Idx).filter(|i| self.is_alive(*i)))
    }
}

fn find(parent: &mut [Idx], mut x: Idx) -> Idx {
    while parent[x as usize] != x {
        parent[x as usize] = parent[parent[x as usize] as usize];
        x = parent[x as usize];
    }
    x
}

fn union(parent: &mut [Idx], a: Idx, b: Idx) {
    let (a, b) = (find(parent, a), find(parent, b));
    if a != b {
        parent[a as usize] = b;
    }
}

/// Number of distinct components among `members`.
fn roots(parent: &mut [Idx], members: impl Iterator<Item = Idx>) -> usize {
    let mut roots = std::collections::BTreeSet::new();
    for i in members {
        roots.insert(find(parent, i));
    }
    roots.len()
}

/// Whether a message can change an active view (joins, neighbour requests
/// and replies, disconnects), as opposed to shuffles and broadcast traffic.
fn affects_active_view(message: &Message) -> bool {
    matches!(
        message,
        Message::Membership(
            HpvMessage::Join(_)
                | HpvMessage::ForwardJoin { .. }
                | HpvMessage::Neighbor { .. }
                | HpvMessage::NeighborReply { .. }
                | HpvMessage::Disconnect { .. }
        )
    )
}

fn pair(a: Idx, b: Idx) -> (Idx, Idx) {
    if a < b {
        (a, b)
    } else {
        (b, a)
    }
}

fn micros(d: Duration) -> u64 {
    d.as_micros().min(u128::from(u64::MAX)) as u64
}

/// Where [`Simulator::broadcast`] writes the tag in a payload: after the
/// origin's id.
const TAG_AT: usize = 32;

/// The tag [`Simulator::broadcast`] wrote into a payload.
fn tag_of(content: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    if let Some(tag) = content.get(TAG_AT..TAG_AT + 8) {
        b.copy_from_slice(tag);
    }
    u64::from_le_bytes(b)
}

/// The id of simulated node `i`: not a key (simulated payloads are not
/// signed), but distinct, and spread like real ids.
fn sim_id(seed: u64, i: Idx) -> NodeId {
    let mut h = blake3::Hasher::new();
    h.update(&seed.to_le_bytes());
    h.update(&i.to_le_bytes());
    NodeId::from_bytes(*h.finalize().as_bytes())
}

/// SplitMix64's finaliser: a cheap, well-spread hash of a u64.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}
