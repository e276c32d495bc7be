//! The seed registry: the list of live nodes a seed keeps, as a sans-IO
//! state machine.
//!
//! A seed is a well-known node that newcomers ask for a first set of peers,
//! much as a BitTorrent tracker is asked for a swarm. Every node registers its
//! [`SignedRecord`] with a few seeds and re-registers every
//! [`REFRESH_INTERVAL`]; a seed keeps a record until it goes
//! [`SeedConfig::record_ttl`] without a refresh, so a node that dies without a
//! word drops out on its own. Any node may ask for a list; the reply is a
//! uniform random sample of the live records, so load spreads over the
//! network and no node learns the whole registry by asking once.
//!
//! The sender of every message is the node at the other end of an
//! authenticated link (the runtime passes it as `from`), which is why a node
//! may register only its own record, and a `Leave` removes only its sender.
//! A report that some *other* node is dead is only a hint: a liar could
//! otherwise empty the registry. The registry asks the runtime to probe the
//! reported node ([`SeedOutput::Probe`]) and removes it only if that probe
//! fails or gets no answer within [`SeedConfig::probe_timeout`].
//!
//! Everything is bounded: the number of records, the probes in flight, the
//! size of a list reply. Outputs depend only on the inputs, `now` and the
//! caller's RNG (ordered maps, no hash iteration), so the simulator replays a
//! seed exactly.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::{Duration, Instant};

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::identity::NodeId;
use crate::record::{bounded_vec, RecordError, SignedRecord};

/// How often a node re-registers with each seed.
///
/// Frequent enough that a seed's list is at most a couple of minutes stale,
/// rare enough that 100,000 nodes cost a seed about 3,000 registrations a
/// second at most.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(30);

/// Default [`SeedConfig::record_ttl`]: three refresh intervals, so one or two
/// lost refreshes do not drop a live node, and three do.
pub const DEFAULT_RECORD_TTL: Duration = Duration::from_secs(3 * REFRESH_INTERVAL.as_secs());

/// Default [`SeedConfig::max_records`]: a large network, within about 60 MB
/// even if every record is of the largest size.
pub const DEFAULT_MAX_RECORDS: usize = 100_000;

/// Default [`SeedConfig::sample_size`]: enough to fill a HyParView passive
/// view in one reply.
pub const DEFAULT_SAMPLE_SIZE: usize = 32;

/// Default [`SeedConfig::max_sample`]: the most the wire allows.
pub const DEFAULT_MAX_SAMPLE: usize = MAX_LIST_LEN;

/// Default [`SeedConfig::probe_timeout`]: a TCP connect and a Noise handshake
/// across the world take well under this, so silence means unreachable.
pub const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Default [`SeedConfig::max_pending_probes`]: dials a seed will have in
/// flight for dead reports, so a flood of reports costs it little.
pub const DEFAULT_MAX_PENDING_PROBES: usize = 64;

/// Most records a [`SeedMessage::List`] may carry.
///
/// Several times what a node needs to join; bounds what a reply can make the
/// receiver hold.
pub const MAX_LIST_LEN: usize = 256;

/// Largest encoded [`SeedMessage`].
///
/// At least 128 records of the largest size, and in practice all
/// [`MAX_LIST_LEN`]; a seed answers thousands of nodes, so small replies
/// keep its upload bounded. The registry trims its replies to fit.
pub const MAX_SEED_MESSAGE_BYTES: usize = 64 * 1024;

/// Bytes of a [`SeedMessage::List`] that are not records: the variant tag
/// and the list length, two varints of at most 2 bytes here, with margin.
const LIST_HEADER_BYTES: usize = 8;

/// Longest duration the registry adds to an `Instant`.
///
/// Beyond any sensible TTL or timeout, and far enough from the end of the
/// `Instant` range that a misconfigured duration cannot make it overflow.
const MAX_CONFIG_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// Settings of a [`SeedRegistry`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedConfig {
    /// How long a record lives without a refresh.
    pub record_ttl: Duration,
    /// Most records kept; registrations of new ids beyond it are refused.
    pub max_records: usize,
    /// Records in a list reply when the request leaves it to the seed.
    pub sample_size: usize,
    /// Most records a request may ask for (further capped by
    /// [`MAX_LIST_LEN`]).
    pub max_sample: usize,
    /// How long a probe may go unanswered before it counts as failed.
    pub probe_timeout: Duration,
    /// Most probes in flight; dead reports beyond it are dropped.
    pub max_pending_probes: usize,
}

impl Default for SeedConfig {
    fn default() -> Self {
        Self {
            record_ttl: DEFAULT_RECORD_TTL,
            max_records: DEFAULT_MAX_RECORDS,
            sample_size: DEFAULT_SAMPLE_SIZE,
            max_sample: DEFAULT_MAX_SAMPLE,
            probe_timeout: DEFAULT_PROBE_TIMEOUT,
            max_pending_probes: DEFAULT_MAX_PENDING_PROBES,
        }
    }
}

/// Errors from [`SeedMessage::decode`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SeedError {
    /// The message is larger than [`MAX_SEED_MESSAGE_BYTES`].
    #[error("seed message too large: {0} bytes (at most {MAX_SEED_MESSAGE_BYTES})")]
    TooLarge(usize),
    /// The bytes are not a seed message, or a list or record in it is over
    /// its bound.
    #[error("malformed seed message")]
    Malformed,
    /// Bytes follow the encoded message.
    #[error("trailing bytes after seed message")]
    TrailingBytes,
}

/// The seed protocol: what nodes and seeds say to each other.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SeedMessage {
    /// Node to seed: keep my record (sent again every [`REFRESH_INTERVAL`]).
    Register(SignedRecord),
    /// Seed to node: registered; refresh well within `ttl_secs`.
    Registered {
        /// The seed's record TTL, in seconds.
        ttl_secs: u32,
    },
    /// Node to seed: send me a sample of live records.
    ListRequest {
        /// How many records; 0 leaves it to the seed.
        max: u16,
    },
    /// Seed to node: a random sample of live records, the requester's own
    /// excluded. Records are bound-checked on decoding, not verified.
    List(#[serde(deserialize_with = "bounded_vec::<_, _, MAX_LIST_LEN>")] Vec<SignedRecord>),
    /// Node to seed: I could not reach this node.
    DeadReport(NodeId),
    /// Node to seed: I am leaving; forget my record.
    Leave,
}

impl SeedMessage {
    /// The postcard encoding.
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self)
            .expect("postcard encodes a seed message into a Vec without error")
    }

    /// Decodes one message from exactly `bytes`, checking every bound inside
    /// (record signatures are left to the receiver).
    pub fn decode(bytes: &[u8]) -> Result<Self, SeedError> {
        // Refuse oversized input before parsing, so nothing it claims can
        // make the decoder allocate more than the cap.
        if bytes.len() > MAX_SEED_MESSAGE_BYTES {
            return Err(SeedError::TooLarge(bytes.len()));
        }
        let (msg, rest) =
            postcard::take_from_bytes::<SeedMessage>(bytes).map_err(|_| SeedError::Malformed)?;
        if !rest.is_empty() {
            return Err(SeedError::TrailingBytes);
        }
        Ok(msg)
    }
}

/// An input to [`SeedRegistry::handle`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeedInput {
    /// A message from the node at the other end of an authenticated link.
    Message {
        /// The sender, as the link authenticated it.
        from: NodeId,
        /// What it sent.
        msg: SeedMessage,
    },
    /// The answer to a [`SeedOutput::Probe`]: whether the node was reached.
    ProbeResult {
        /// The probed node.
        id: NodeId,
        /// Whether a link to it could be made.
        alive: bool,
    },
    /// Time has passed; see [`SeedRegistry::next_deadline`].
    Tick,
}

/// Why a record left the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RemoveReason {
    /// It went [`SeedConfig::record_ttl`] without a refresh.
    Expired,
    /// The node said it was leaving.
    Left,
    /// It was reported dead and the seed's own probe failed.
    Dead,
}

/// Why a message was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefuseReason {
    /// A node tried to register a record for another node.
    NotSender,
    /// The record is over a bound or its signature does not verify.
    BadRecord(RecordError),
    /// The registry is full and the record's id is not in it.
    Full,
    /// A seed's reply sent to a seed; a confused or hostile peer.
    Unexpected,
}

/// An output of [`SeedRegistry::handle`], for the runtime to act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeedOutput {
    /// Send `msg` to `to`.
    Send {
        /// The recipient.
        to: NodeId,
        /// The message.
        msg: SeedMessage,
    },
    /// Try to reach `id` (at the record's addresses, or over an open link)
    /// and answer with [`SeedInput::ProbeResult`].
    Probe {
        /// The node to probe.
        id: NodeId,
        /// Its record, for the addresses.
        record: SignedRecord,
    },
    /// A new node registered.
    Added {
        /// The node.
        id: NodeId,
    },
    /// A record left the registry.
    Removed {
        /// The node.
        id: NodeId,
        /// Why.
        reason: RemoveReason,
    },
    /// A message was refused and changed nothing; worth a log line, and
    /// perhaps a count against the sender.
    Refused {
        /// The sender.
        from: NodeId,
        /// Why.
        reason: RefuseReason,
    },
}

/// One registered node.
#[derive(Debug)]
struct Entry {
    record: SignedRecord,
    /// Encoded size, so list replies can be trimmed without re-encoding.
    encoded_len: usize,
    expires: Instant,
    /// Position in [`SeedRegistry::slots`].
    slot: usize,
}

/// The live-node registry a seed keeps.
///
/// Drive it with [`SeedRegistry::handle`]: each input goes in with the
/// current time and the caller's RNG, and the outputs come back as a `Vec`,
/// in the order the runtime should act on them. Every call first retires
/// what is past due at `now` (expired records, timed-out probes), so
/// [`SeedInput::Tick`] is needed only when nothing else arrives; call it at
/// [`SeedRegistry::next_deadline`], or every second or so.
pub struct SeedRegistry {
    config: SeedConfig,
    records: BTreeMap<NodeId, Entry>,
    /// Every registered id, in no meaningful order, so a uniform sample is
    /// a few random indices rather than a walk of the map.
    slots: Vec<NodeId>,
    /// Expiry times, earliest first, so retiring costs nothing when nothing
    /// is due.
    expiries: BTreeSet<(Instant, NodeId)>,
    /// Probes in flight and when each counts as failed.
    probes: BTreeMap<NodeId, Instant>,
}

impl fmt::Debug for SeedRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The records themselves would be a hundred thousand lines.
        f.debug_struct("SeedRegistry")
            .field("config", &self.config)
            .field("records", &self.records.len())
            .field("probes", &self.probes.len())
            .finish()
    }
}

impl SeedRegistry {
    /// An empty registry.
    pub fn new(mut config: SeedConfig) -> Self {
        config.record_ttl = config.record_ttl.min(MAX_CONFIG_DURATION);
        config.probe_timeout = config.probe_timeout.min(MAX_CONFIG_DURATION);
        Self {
            config,
            records: BTreeMap::new(),
            slots: Vec::new(),
            expiries: BTreeSet::new(),
            probes: BTreeMap::new(),
        }
    }

    /// The settings in force (durations capped to a year).
    pub fn config(&self) -> &SeedConfig {
        &self.config
    }

    /// Number of live records.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether there are no records.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Whether `id` is registered.
    pub fn contains(&self, id: &NodeId) -> bool {
        self.records.contains_key(id)
    }

    /// The record of `id`, if registered.
    pub fn get(&self, id: &NodeId) -> Option<&SignedRecord> {
        self.records.get(id).map(|e| &e.record)
    }

    /// Every record, in id order.
    pub fn records(&self) -> impl Iterator<Item = &SignedRecord> + '_ {
        self.records.values().map(|e| &e.record)
    }

    /// Number of probes in flight.
    pub fn pending_probes(&self) -> usize {
        self.probes.len()
    }

    /// When something next falls due (a record expires or a probe times
    /// out), if anything is pending.
    pub fn next_deadline(&self) -> Option<Instant> {
        let expiry = self.expiries.first().map(|(t, _)| *t);
        let probe = self.probes.values().min().copied();
        expiry.into_iter().chain(probe).min()
    }

    /// Handles one input at `now`; see the type's docs.
    pub fn handle(
        &mut self,
        input: SeedInput,
        now: Instant,
        rng: &mut impl Rng,
    ) -> Vec<SeedOutput> {
        let mut out = Vec::new();
        self.retire(now, &mut out);
        match input {
            SeedInput::Message { from, msg } => match msg {
                SeedMessage::Register(record) => self.on_register(from, record, now, &mut out),
                SeedMessage::ListRequest { max } => self.on_list_request(from, max, rng, &mut out),
                SeedMessage::DeadReport(id) => self.on_dead_report(id, now, &mut out),
                SeedMessage::Leave => self.remove(from, RemoveReason::Left, &mut out),
                SeedMessage::Registered { .. } | SeedMessage::List(_) => {
                    out.push(SeedOutput::Refused {
                        from,
                        reason: RefuseReason::Unexpected,
                    })
                }
            },
            SeedInput::ProbeResult { id, alive } => self.on_probe_result(id, alive, now, &mut out),
            SeedInput::Tick => {}
        }
        out
    }

    fn on_register(
        &mut self,
        from: NodeId,
        record: SignedRecord,
        now: Instant,
        out: &mut Vec<SeedOutput>,
    ) {
        let refuse = |reason| SeedOutput::Refused { from, reason };
        // Only the node itself may register its record: a relayed old record
        // would otherwise keep a departed node listed.
        if record.id() != from {
            out.push(refuse(RefuseReason::NotSender));
            return;
        }
        if let Err(e) = record.verify() {
            out.push(refuse(RefuseReason::BadRecord(e)));
            return;
        }
        let expires = now + self.config.record_ttl;
        if let Some(entry) = self.records.get_mut(&from) {
            // The node spoke over its own link, so it is alive whichever
            // record it sent; but only a newer record replaces the one held.
            if record.record().seq > entry.record.record().seq {
                entry.encoded_len = record.encoded_len();
                entry.record = record;
            }
            self.expiries.remove(&(entry.expires, from));
            entry.expires = expires;
            self.expiries.insert((expires, from));
        } else {
            if self.records.len() >= self.config.max_records {
                out.push(refuse(RefuseReason::Full));
                return;
            }
            let entry = Entry {
                encoded_len: record.encoded_len(),
                record,
                expires,
                slot: self.slots.len(),
            };
            self.slots.push(from);
            self.expiries.insert((expires, from));
            self.records.insert(from, entry);
            out.push(SeedOutput::Added { id: from });
        }
        out.push(SeedOutput::Send {
            to: from,
            msg: SeedMessage::Registered {
                ttl_secs: u32::try_from(self.config.record_ttl.as_secs()).unwrap_or(u32::MAX),
            },
        });
    }

    fn on_list_request(
        &self,
        from: NodeId,
        max: u16,
        rng: &mut impl Rng,
        out: &mut Vec<SeedOutput>,
    ) {
        let asked = if max == 0 {
            self.config.sample_size
        } else {
            usize::from(max)
        };
        let want = asked.min(self.config.max_sample).min(MAX_LIST_LEN);
        // Draw one extra when the requester is listed, and skip it: among the
        // other records every subset of `want` stays equally likely.
        let extra = usize::from(self.records.contains_key(&from));
        let amount = (want + extra).min(self.slots.len());
        let mut list = Vec::with_capacity(want.min(amount));
        let mut bytes = LIST_HEADER_BYTES;
        // The indices come fully shuffled, so stopping early (for the byte
        // budget) still leaves a uniform sample.
        for index in rand::seq::index::sample(rng, self.slots.len(), amount) {
            if list.len() == want {
                break;
            }
            let id = self.slots[index];
            if id == from {
                continue;
            }
            let Some(entry) = self.records.get(&id) else {
                continue;
            };
            if bytes + entry.encoded_len > MAX_SEED_MESSAGE_BYTES {
                break;
            }
            bytes += entry.encoded_len;
            list.push(entry.record.clone());
        }
        out.push(SeedOutput::Send {
            to: from,
            msg: SeedMessage::List(list),
        });
    }

    fn on_dead_report(&mut self, id: NodeId, now: Instant, out: &mut Vec<SeedOutput>) {
        let Some(entry) = self.records.get(&id) else {
            return;
        };
        // One probe per node at a time, however many report it; reports
        // beyond the cap are dropped, as the node will be reported again if
        // it really is dead (or expire on its own).
        if self.probes.contains_key(&id) || self.probes.len() >= self.config.max_pending_probes {
            return;
        }
        self.probes.insert(id, now + self.config.probe_timeout);
        out.push(SeedOutput::Probe {
            id,
            record: entry.record.clone(),
        });
    }

    fn on_probe_result(
        &mut self,
        id: NodeId,
        alive: bool,
        now: Instant,
        out: &mut Vec<SeedOutput>,
    ) {
        // A result for a probe not asked for (or already timed out) is
        // ignored, so nothing but a failed probe of our own removes a node.
        if self.probes.remove(&id).is_none() {
            return;
        }
        if !alive {
            self.remove(id, RemoveReason::Dead, out);
            return;
        }
        let expires = now + self.config.record_ttl;
        if let Some(entry) = self.records.get_mut(&id) {
            self.expiries.remove(&(entry.expires, id));
            entry.expires = expires;
            self.expiries.insert((expires, id));
        }
    }

    /// Removes what is past due at `now`.
    fn retire(&mut self, now: Instant, out: &mut Vec<SeedOutput>) {
        while let Some(&(expires, id)) = self.expiries.first() {
            if expires > now {
                break;
            }
            self.remove(id, RemoveReason::Expired, out);
        }
        let failed: Vec<NodeId> = self
            .probes
            .iter()
            .filter(|(_, deadline)| **deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in failed {
            self.probes.remove(&id);
            self.remove(id, RemoveReason::Dead, out);
        }
    }

    fn remove(&mut self, id: NodeId, reason: RemoveReason, out: &mut Vec<SeedOutput>) {
        let Some(entry) = self.records.remove(&id) else {
            return;
        };
        self.expiries.remove(&(entry.expires, id));
        self.probes.remove(&id);
        self.slots.swap_remove(entry.slot);
        // The last id moved into the freed slot; tell its entry.
        if let Some(moved) = self.slots.get(entry.slot) {
            if let Some(moved) = self.records.get_mut(moved) {
                moved.slot = entry.slot;
            }
        }
        out.push(SeedOutput::Removed { id, reason });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::SecretKey;
    use crate::record::{NodeRecord, MAX_ADDRS, MAX_NAME_LEN, MAX_RECORD_BYTES};
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use std::net::{Ipv6Addr, SocketAddr};

    fn key(seed: u64) -> SecretKey {
        SecretKey::generate(&mut ChaCha8Rng::seed_from_u64(seed))
    }

    fn record(key: &SecretKey, seq: u64) -> SignedRecord {
        let record = NodeRecord {
            id: key.node_id(),
            addrs: vec![SocketAddr::from(([192, 0, 2, 1], 8000))],
            seq,
            roles: vec![],
            name: None,
        };
        SignedRecord::sign(key, record).unwrap()
    }

    /// The largest record the bounds allow.
    fn big_record(key: &SecretKey) -> SignedRecord {
        let record = NodeRecord {
            id: key.node_id(),
            addrs: (1..=MAX_ADDRS as u16)
                .map(|i| SocketAddr::from((Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, i), 65535)))
                .collect(),
            seq: u64::MAX,
            roles: vec![crate::record::Role::Seed; crate::record::MAX_ROLES],
            name: Some("n".repeat(MAX_NAME_LEN)),
        };
        SignedRecord::sign(key, record).unwrap()
    }

    struct Harness {
        reg: SeedRegistry,
        rng: ChaCha8Rng,
        now: Instant,
    }

    impl Harness {
        fn new(config: SeedConfig) -> Self {
            Self {
                reg: SeedRegistry::new(config),
                rng: ChaCha8Rng::seed_from_u64(42),
                // Tests only: the registry itself never reads the clock, and
                // every later time is this one plus a fixed offset.
                now: Instant::now(),
            }
        }

        fn input(&mut self, input: SeedInput) -> Vec<SeedOutput> {
            let out = self.reg.handle(input, self.now, &mut self.rng);
            check_invariants(&self.reg);
            out
        }

        fn msg(&mut self, from: NodeId, msg: SeedMessage) -> Vec<SeedOutput> {
            self.input(SeedInput::Message { from, msg })
        }

        fn register(&mut self, key: &SecretKey, seq: u64) -> Vec<SeedOutput> {
            self.msg(key.node_id(), SeedMessage::Register(record(key, seq)))
        }

        fn tick_after(&mut self, d: Duration) -> Vec<SeedOutput> {
            self.now += d;
            self.input(SeedInput::Tick)
        }

        fn list(&mut self, from: NodeId, max: u16) -> Vec<SignedRecord> {
            let out = self.msg(from, SeedMessage::ListRequest { max });
            match out.as_slice() {
                [SeedOutput::Send {
                    to,
                    msg: SeedMessage::List(list),
                }] if *to == from => list.clone(),
                other => panic!("expected one list reply, got {other:?}"),
            }
        }
    }

    /// The indices agree with each other: every record has one slot and one
    /// expiry, and every probe is of a registered node.
    fn check_invariants(reg: &SeedRegistry) {
        assert_eq!(reg.slots.len(), reg.records.len());
        assert_eq!(reg.expiries.len(), reg.records.len());
        for (i, id) in reg.slots.iter().enumerate() {
            let entry = &reg.records[id];
            assert_eq!(entry.slot, i);
            assert_eq!(entry.record.id(), *id);
            assert!(reg.expiries.contains(&(entry.expires, *id)));
        }
        assert!(reg.probes.keys().all(|id| reg.records.contains_key(id)));
        assert!(reg.probes.len() <= reg.config.max_pending_probes);
        assert!(reg.records.len() <= reg.config.max_records);
    }

    /// The acknowledgement of a registration under the default TTL.
    fn registered_to(id: NodeId) -> SeedOutput {
        SeedOutput::Send {
            to: id,
            msg: SeedMessage::Registered { ttl_secs: 90 },
        }
    }

    #[test]
    fn register_adds_and_acknowledges() {
        let mut h = Harness::new(SeedConfig::default());
        let a = key(1);
        let out = h.register(&a, 1);
        assert_eq!(
            out,
            vec![
                SeedOutput::Added { id: a.node_id() },
                registered_to(a.node_id())
            ]
        );
        assert!(h.reg.contains(&a.node_id()));
        assert_eq!(h.reg.len(), 1);
        assert_eq!(h.reg.get(&a.node_id()), Some(&record(&a, 1)));
        assert_eq!(h.reg.records().count(), 1);
        // A refresh acknowledges again but adds nothing.
        assert_eq!(h.register(&a, 1), vec![registered_to(a.node_id())]);
    }

    #[test]
    fn registering_someone_elses_record_is_refused() {
        let mut h = Harness::new(SeedConfig::default());
        let a = key(1);
        let b = key(2);
        let out = h.msg(b.node_id(), SeedMessage::Register(record(&a, 1)));
        assert_eq!(
            out,
            vec![SeedOutput::Refused {
                from: b.node_id(),
                reason: RefuseReason::NotSender
            }]
        );
        assert!(h.reg.is_empty());
    }

    #[test]
    fn a_record_with_a_bad_signature_is_refused() {
        let mut h = Harness::new(SeedConfig::default());
        let a = key(1);
        // Re-signing seq 1's signature onto seq 2 forges the record.
        let good = record(&a, 1);
        let mut bytes = good.encode();
        let seq_at = 32 + 1 + 7; // id, address count, one IPv4 address (tag, 4 bytes, port 2)
        assert_eq!(bytes[seq_at], 1);
        bytes[seq_at] = 2;
        let forged = SignedRecord::decode(&bytes).unwrap();
        assert_eq!(forged.record().seq, 2);
        let out = h.msg(a.node_id(), SeedMessage::Register(forged));
        assert_eq!(
            out,
            vec![SeedOutput::Refused {
                from: a.node_id(),
                reason: RefuseReason::BadRecord(RecordError::BadSignature)
            }]
        );
        assert!(h.reg.is_empty());
    }

    #[test]
    fn the_highest_seq_wins() {
        let mut h = Harness::new(SeedConfig::default());
        let a = key(1);
        h.register(&a, 5);
        h.register(&a, 7);
        assert_eq!(h.reg.get(&a.node_id()).unwrap().record().seq, 7);
        // An older record refreshes the node (it spoke over its own link)
        // but does not replace the newer one.
        h.now += Duration::from_secs(60);
        assert_eq!(h.register(&a, 6), vec![registered_to(a.node_id())]);
        assert_eq!(h.reg.get(&a.node_id()).unwrap().record().seq, 7);
        assert!(h.tick_after(Duration::from_secs(60)).is_empty());
        assert!(h.reg.contains(&a.node_id()));
    }

    #[test]
    fn records_expire_unless_refreshed() {
        let mut h = Harness::new(SeedConfig::default());
        let a = key(1);
        let b = key(2);
        h.register(&a, 1);
        h.register(&b, 1);
        assert_eq!(h.reg.next_deadline(), Some(h.now + DEFAULT_RECORD_TTL));
        // a refreshes on schedule, b falls silent.
        for _ in 0..2 {
            assert!(h.tick_after(REFRESH_INTERVAL).is_empty());
            h.register(&a, 1);
        }
        let a_expires = h.now + DEFAULT_RECORD_TTL;
        assert_eq!(
            h.tick_after(REFRESH_INTERVAL),
            vec![SeedOutput::Removed {
                id: b.node_id(),
                reason: RemoveReason::Expired
            }]
        );
        assert!(h.reg.contains(&a.node_id()));
        assert_eq!(h.reg.next_deadline(), Some(a_expires));
        // a goes out at exactly its TTL after the last refresh.
        let before = a_expires - h.now - Duration::from_millis(1);
        assert!(h.tick_after(before).is_empty());
        assert_eq!(
            h.tick_after(Duration::from_millis(1)),
            vec![SeedOutput::Removed {
                id: a.node_id(),
                reason: RemoveReason::Expired
            }]
        );
        assert!(h.reg.is_empty());
        assert_eq!(h.reg.next_deadline(), None);
    }

    #[test]
    fn an_expired_record_is_gone_before_the_next_input_is_handled() {
        let mut h = Harness::new(SeedConfig::default());
        let a = key(1);
        let b = key(2);
        h.register(&a, 1);
        h.now += DEFAULT_RECORD_TTL;
        // No tick: the list request itself retires a first.
        let out = h.msg(b.node_id(), SeedMessage::ListRequest { max: 10 });
        assert_eq!(
            out,
            vec![
                SeedOutput::Removed {
                    id: a.node_id(),
                    reason: RemoveReason::Expired
                },
                SeedOutput::Send {
                    to: b.node_id(),
                    msg: SeedMessage::List(vec![])
                }
            ]
        );
    }

    #[test]
    fn expiry_is_reported_once_with_its_reason() {
        let mut h = Harness::new(SeedConfig::default());
        let a = key(1);
        h.register(&a, 1);
        let out = h.tick_after(DEFAULT_RECORD_TTL);
        assert_eq!(
            out,
            vec![SeedOutput::Removed {
                id: a.node_id(),
                reason: RemoveReason::Expired
            }]
        );
        assert!(h.tick_after(DEFAULT_RECORD_TTL).is_empty());
    }

    #[test]
    fn leave_removes_only_the_sender() {
        let mut h = Harness::new(SeedConfig::default());
        let a = key(1);
        let b = key(2);
        h.register(&a, 1);
        h.register(&b, 1);
        assert_eq!(
            h.msg(a.node_id(), SeedMessage::Leave),
            vec![SeedOutput::Removed {
                id: a.node_id(),
                reason: RemoveReason::Left
            }]
        );
        assert!(!h.reg.contains(&a.node_id()));
        assert!(h.reg.contains(&b.node_id()));
        assert!(h.msg(a.node_id(), SeedMessage::Leave).is_empty());
    }

    #[test]
    fn a_dead_report_alone_never_removes_a_node() {
        let mut h = Harness::new(SeedConfig::default());
        let a = key(1);
        let id = a.node_id();
        h.register(&a, 1);
        let out = h.msg(key(2).node_id(), SeedMessage::DeadReport(id));
        assert_eq!(
            out,
            vec![SeedOutput::Probe {
                id,
                record: record(&a, 1)
            }]
        );
        // More reports, from anyone, while the probe is out: no second probe.
        for reporter in 2..20 {
            assert!(h
                .msg(key(reporter).node_id(), SeedMessage::DeadReport(id))
                .is_empty());
        }
        assert_eq!(h.reg.pending_probes(), 1);
        assert!(h.reg.contains(&id));
        // A result nobody asked for about another node changes nothing.
        assert!(h
            .input(SeedInput::ProbeResult {
                id: key(3).node_id(),
                alive: false
            })
            .is_empty());
        assert!(h.reg.contains(&id));
    }

    #[test]
    fn a_failed_probe_removes_the_node() {
        let mut h = Harness::new(SeedConfig::default());
        let a = key(1);
        let id = a.node_id();
        h.register(&a, 1);
        h.msg(key(2).node_id(), SeedMessage::DeadReport(id));
        let out = h.input(SeedInput::ProbeResult { id, alive: false });
        assert_eq!(
            out,
            vec![SeedOutput::Removed {
                id,
                reason: RemoveReason::Dead
            }]
        );
        assert!(h.reg.is_empty());
        assert_eq!(h.reg.pending_probes(), 0);
    }

    #[test]
    fn a_successful_probe_refreshes_the_node() {
        let mut h = Harness::new(SeedConfig::default());
        let a = key(1);
        let id = a.node_id();
        h.register(&a, 1);
        h.now += Duration::from_secs(80);
        h.msg(key(2).node_id(), SeedMessage::DeadReport(id));
        assert!(h
            .input(SeedInput::ProbeResult { id, alive: true })
            .is_empty());
        assert_eq!(h.reg.pending_probes(), 0);
        // Past the TTL of the registration, within that of the probe.
        assert!(h.tick_after(Duration::from_secs(80)).is_empty());
        assert!(h.reg.contains(&id));
        // A late second result is not ours any more, and is ignored.
        assert!(h
            .input(SeedInput::ProbeResult { id, alive: false })
            .is_empty());
        assert!(h.reg.contains(&id));
    }

    #[test]
    fn an_unanswered_probe_counts_as_failed() {
        let mut h = Harness::new(SeedConfig::default());
        let a = key(1);
        let id = a.node_id();
        h.register(&a, 1);
        h.msg(key(2).node_id(), SeedMessage::DeadReport(id));
        assert_eq!(h.reg.next_deadline(), Some(h.now + DEFAULT_PROBE_TIMEOUT));
        assert!(h
            .tick_after(DEFAULT_PROBE_TIMEOUT - Duration::from_millis(1))
            .is_empty());
        assert!(h.reg.contains(&id));
        assert_eq!(
            h.tick_after(Duration::from_millis(1)),
            vec![SeedOutput::Removed {
                id,
                reason: RemoveReason::Dead
            }]
        );
        // The answer, arriving late, is ignored.
        assert!(h
            .input(SeedInput::ProbeResult { id, alive: true })
            .is_empty());
        assert!(!h.reg.contains(&id));
    }

    #[test]
    fn dead_reports_of_unknown_nodes_are_ignored() {
        let mut h = Harness::new(SeedConfig::default());
        assert!(h
            .msg(key(1).node_id(), SeedMessage::DeadReport(key(2).node_id()))
            .is_empty());
        assert_eq!(h.reg.pending_probes(), 0);
    }

    #[test]
    fn probes_in_flight_are_bounded() {
        let mut h = Harness::new(SeedConfig {
            max_pending_probes: 3,
            ..SeedConfig::default()
        });
        let keys: Vec<SecretKey> = (1..=5).map(key).collect();
        for k in &keys {
            h.register(k, 1);
        }
        let reporter = key(99).node_id();
        let probes: usize = keys
            .iter()
            .map(|k| h.msg(reporter, SeedMessage::DeadReport(k.node_id())).len())
            .sum();
        assert_eq!(probes, 3);
        assert_eq!(h.reg.pending_probes(), 3);
        // A finished probe frees its place.
        h.input(SeedInput::ProbeResult {
            id: keys[0].node_id(),
            alive: true,
        });
        assert_eq!(
            h.msg(reporter, SeedMessage::DeadReport(keys[4].node_id()))
                .len(),
            1
        );
    }

    #[test]
    fn leaving_cancels_a_pending_probe() {
        let mut h = Harness::new(SeedConfig::default());
        let a = key(1);
        h.register(&a, 1);
        h.msg(key(2).node_id(), SeedMessage::DeadReport(a.node_id()));
        h.msg(a.node_id(), SeedMessage::Leave);
        assert_eq!(h.reg.pending_probes(), 0);
        assert!(h.tick_after(DEFAULT_PROBE_TIMEOUT).is_empty());
    }

    #[test]
    fn a_full_registry_refuses_new_ids_but_refreshes_known_ones() {
        let mut h = Harness::new(SeedConfig {
            max_records: 3,
            ..SeedConfig::default()
        });
        let keys: Vec<SecretKey> = (1..=4).map(key).collect();
        for k in &keys[..3] {
            h.register(k, 1);
        }
        assert_eq!(
            h.register(&keys[3], 1),
            vec![SeedOutput::Refused {
                from: keys[3].node_id(),
                reason: RefuseReason::Full
            }]
        );
        assert_eq!(h.reg.len(), 3);
        assert_eq!(
            h.register(&keys[0], 2),
            vec![registered_to(keys[0].node_id())]
        );
        assert_eq!(h.reg.get(&keys[0].node_id()).unwrap().record().seq, 2);
        // Room again once one leaves.
        h.msg(keys[1].node_id(), SeedMessage::Leave);
        assert_eq!(
            h.register(&keys[3], 1),
            vec![
                SeedOutput::Added {
                    id: keys[3].node_id()
                },
                registered_to(keys[3].node_id())
            ]
        );
    }

    #[test]
    fn list_is_a_sample_without_the_requester_or_duplicates() {
        let mut h = Harness::new(SeedConfig::default());
        let keys: Vec<SecretKey> = (1..=50).map(key).collect();
        for k in &keys {
            h.register(k, 1);
        }
        let me = keys[0].node_id();
        let mut seen = BTreeSet::new();
        for _ in 0..100 {
            let list = h.list(me, 10);
            assert_eq!(list.len(), 10);
            let ids: BTreeSet<NodeId> = list.iter().map(SignedRecord::id).collect();
            assert_eq!(ids.len(), 10, "duplicates in {ids:?}");
            assert!(!ids.contains(&me));
            assert!(list.iter().all(|r| r.verify().is_ok()));
            seen.extend(ids);
        }
        // Every other node turns up over 100 draws of 10 out of 49.
        assert_eq!(seen.len(), 49);
    }

    #[test]
    fn list_sizes_follow_the_request_and_the_caps() {
        let mut h = Harness::new(SeedConfig {
            sample_size: 4,
            max_sample: 20,
            ..SeedConfig::default()
        });
        let keys: Vec<SecretKey> = (1..=30).map(key).collect();
        for k in &keys {
            h.register(k, 1);
        }
        let me = keys[0].node_id();
        let outsider = key(100).node_id();
        assert_eq!(h.list(me, 0).len(), 4);
        assert_eq!(h.list(me, 7).len(), 7);
        assert_eq!(h.list(me, u16::MAX).len(), 20);
        // Asking for more than there are gives all the others.
        let mut small = Harness::new(SeedConfig::default());
        for k in &keys[..5] {
            small.register(k, 1);
        }
        assert_eq!(small.list(me, 100).len(), 4);
        assert_eq!(small.list(outsider, 100).len(), 5);
        assert_eq!(small.list(outsider, 5).len(), 5);
        assert!(Harness::new(SeedConfig::default()).list(me, 10).is_empty());
    }

    #[test]
    fn a_list_reply_fits_the_message_cap() {
        let mut h = Harness::new(SeedConfig::default());
        let keys: Vec<SecretKey> = (1..=MAX_LIST_LEN as u64 + 10).map(key).collect();
        for k in &keys {
            let out = h.msg(k.node_id(), SeedMessage::Register(big_record(k)));
            assert_eq!(out.len(), 2);
        }
        let list = h.list(key(0).node_id(), u16::MAX);
        assert!(list.len() >= MAX_SEED_MESSAGE_BYTES / MAX_RECORD_BYTES - 1);
        let bytes = SeedMessage::List(list).encode();
        assert!(bytes.len() <= MAX_SEED_MESSAGE_BYTES);
        assert!(SeedMessage::decode(&bytes).is_ok());
    }

    #[test]
    fn replies_sent_to_a_seed_are_refused() {
        let mut h = Harness::new(SeedConfig::default());
        let a = key(1).node_id();
        for msg in [
            SeedMessage::Registered { ttl_secs: 1 },
            SeedMessage::List(vec![]),
        ] {
            assert_eq!(
                h.msg(a, msg),
                vec![SeedOutput::Refused {
                    from: a,
                    reason: RefuseReason::Unexpected
                }]
            );
        }
    }

    #[test]
    fn same_inputs_give_same_outputs() {
        let run = || {
            let mut h = Harness::new(SeedConfig::default());
            let keys: Vec<SecretKey> = (1..=40).map(key).collect();
            for k in &keys {
                h.register(k, 1);
            }
            (0..10)
                .map(|i| h.list(keys[i].node_id(), 8))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(), run());
    }

    #[test]
    fn huge_durations_do_not_overflow() {
        let mut h = Harness::new(SeedConfig {
            record_ttl: Duration::MAX,
            probe_timeout: Duration::MAX,
            ..SeedConfig::default()
        });
        let a = key(1);
        let year = MAX_CONFIG_DURATION.as_secs() as u32;
        assert_eq!(
            h.register(&a, 1)[1],
            SeedOutput::Send {
                to: a.node_id(),
                msg: SeedMessage::Registered { ttl_secs: year }
            }
        );
        h.msg(key(2).node_id(), SeedMessage::DeadReport(a.node_id()));
        assert!(h.reg.next_deadline().is_some());
        assert!(h.tick_after(Duration::from_secs(3600)).is_empty());
        assert!(h.reg.contains(&a.node_id()));
    }

    #[test]
    fn seed_messages_round_trip() {
        let a = key(1);
        let msgs = [
            SeedMessage::Register(record(&a, 3)),
            SeedMessage::Registered { ttl_secs: 90 },
            SeedMessage::ListRequest { max: 32 },
            SeedMessage::List(vec![record(&a, 1), big_record(&key(2))]),
            SeedMessage::DeadReport(a.node_id()),
            SeedMessage::Leave,
        ];
        for msg in msgs {
            let mut bytes = msg.encode();
            assert_eq!(SeedMessage::decode(&bytes), Ok(msg));
            bytes.push(0);
            assert_eq!(SeedMessage::decode(&bytes), Err(SeedError::TrailingBytes));
        }
    }

    #[test]
    fn over_long_lists_and_messages_are_refused() {
        let r = record(&key(1), 1);
        let full = postcard::to_allocvec(&(3u8, vec![r.clone(); MAX_LIST_LEN])).unwrap();
        assert!(SeedMessage::decode(&full).is_ok());
        let bytes = postcard::to_allocvec(&(3u8, vec![r; MAX_LIST_LEN + 1])).unwrap();
        assert!(bytes.len() <= MAX_SEED_MESSAGE_BYTES);
        assert_eq!(SeedMessage::decode(&bytes), Err(SeedError::Malformed));
        // A length prefix claiming 2^32 records, with nothing behind it.
        assert_eq!(
            SeedMessage::decode(&[3, 0x80, 0x80, 0x80, 0x80, 0x10]),
            Err(SeedError::Malformed)
        );
        let big = vec![0u8; MAX_SEED_MESSAGE_BYTES + 1];
        assert_eq!(
            SeedMessage::decode(&big),
            Err(SeedError::TooLarge(MAX_SEED_MESSAGE_BYTES + 1))
        );
    }

    #[test]
    fn a_list_holding_a_record_over_its_bounds_is_refused() {
        let a = key(1);
        let mut bytes = SeedMessage::List(vec![record(&a, 1)]).encode();
        // The record has no name (a final 0 before the signature); make the
        // name an escape character. The signature no longer matters: the
        // bounds are checked first.
        let name_at = bytes.len() - 66;
        assert_eq!(bytes[name_at], 0);
        let mut named = bytes.clone();
        named.splice(name_at..=name_at, [1, 1, b'a']);
        assert!(SeedMessage::decode(&named).is_ok());
        bytes.splice(name_at..=name_at, [1, 1, 0x1b]);
        assert_eq!(SeedMessage::decode(&bytes), Err(SeedError::Malformed));
    }

    /// One step of the random-operations test.
    #[derive(Debug, Clone)]
    enum Op {
        Register(usize, u64),
        List(usize, u16),
        Dead(usize),
        Probe(usize, bool),
        Leave(usize),
        Wait(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0..8usize, 0..4u64).prop_map(|(k, s)| Op::Register(k, s)),
            (0..8usize, 0..10u16).prop_map(|(k, m)| Op::List(k, m)),
            (0..8usize).prop_map(Op::Dead),
            (0..8usize, any::<bool>()).prop_map(|(k, a)| Op::Probe(k, a)),
            (0..8usize).prop_map(Op::Leave),
            (0..60u64).prop_map(Op::Wait),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn random_operations_keep_the_registry_consistent(ops in proptest::collection::vec(op(), 1..80)) {
            let keys: Vec<SecretKey> = (1..=8).map(key).collect();
            let mut h = Harness::new(SeedConfig {
                max_records: 6,
                max_pending_probes: 2,
                ..SeedConfig::default()
            });
            let mut probed = BTreeSet::new();
            for op in ops {
                let out = match op {
                    Op::Register(k, seq) => h.register(&keys[k], seq),
                    Op::List(k, max) => {
                        let me = keys[k].node_id();
                        let list = h.list(me, max);
                        let ids: BTreeSet<NodeId> = list.iter().map(SignedRecord::id).collect();
                        prop_assert_eq!(ids.len(), list.len());
                        prop_assert!(!ids.contains(&me));
                        prop_assert!(ids.iter().all(|id| h.reg.contains(id)));
                        vec![]
                    }
                    Op::Dead(k) => h.msg(keys[0].node_id(), SeedMessage::DeadReport(keys[k].node_id())),
                    Op::Probe(k, alive) => h.input(SeedInput::ProbeResult { id: keys[k].node_id(), alive }),
                    Op::Leave(k) => h.msg(keys[k].node_id(), SeedMessage::Leave),
                    Op::Wait(secs) => h.tick_after(Duration::from_secs(secs)),
                };
                for o in &out {
                    match o {
                        SeedOutput::Probe { id, .. } => { probed.insert(*id); }
                        // Only a probe the registry asked for can kill a node.
                        SeedOutput::Removed { id, reason: RemoveReason::Dead } => {
                            prop_assert!(probed.remove(id));
                        }
                        SeedOutput::Removed { id, .. } => { probed.remove(id); }
                        _ => {}
                    }
                }
                probed.retain(|id| h.reg.probes.contains_key(id));
            }
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..800)) {
            let _ = SeedMessage::decode(&bytes);
        }
    }
}
