//! The seed client: what a node does to stay listed with its seeds, as a
//! sans-IO state machine beside the [registry](super::SeedRegistry).
//!
//! A node is configured with seed addresses, not ids; it learns each seed's
//! id when a dial to the address links. It then registers its record and asks
//! for a list, re-registers every [`ClientConfig::refresh_interval`], and
//! redials a seed it has no link to, backing off after each failure. A list
//! from a seed becomes passive peers (and a contact to join through, chosen
//! with the caller's RNG). When a neighbour's link fails the node reports it
//! to every seed, which probes it before believing the report; when the node
//! leaves it says so to the seeds it is linked to.
//!
//! The client never touches a socket or a clock: the runtime passes `now`,
//! whether a seed is linked, and the results of the dials it asked for, and
//! carries out the [`ClientOutput`]s. A seed node runs the client too, in
//! [`ClientMode::DialOnly`]: it keeps links to the other seeds but registers
//! with none of them.

use std::time::{Duration, Instant};

use rand::seq::SliceRandom;
use rand::Rng;

use super::{SeedMessage, REFRESH_INTERVAL};
use crate::backoff::Backoff;
use crate::identity::NodeId;
use crate::record::SignedRecord;

/// Default [`ClientConfig::redial_min`]: a seed that is restarting is back
/// within seconds.
pub const DEFAULT_REDIAL_MIN: Duration = Duration::from_secs(1);

/// Default [`ClientConfig::redial_max`]: a seed that is down for long costs
/// a dial every half minute, and is found again within that once it is up.
pub const DEFAULT_REDIAL_MAX: Duration = Duration::from_secs(30);

/// Whether the client registers with its seeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientMode {
    /// An ordinary node: register, refresh, ask for lists, report, leave.
    Register,
    /// A seed: keep links to the other seeds, but stay out of their
    /// registries (a seed is not a peer to hand out).
    DialOnly,
}

/// Settings of a [`SeedClient`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// How often to re-register with each linked seed.
    pub refresh_interval: Duration,
    /// First wait before redialling a seed that could not be reached.
    pub redial_min: Duration,
    /// Longest wait between redials.
    pub redial_max: Duration,
    /// Register, or only keep links.
    pub mode: ClientMode,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            refresh_interval: REFRESH_INTERVAL,
            redial_min: DEFAULT_REDIAL_MIN,
            redial_max: DEFAULT_REDIAL_MAX,
            mode: ClientMode::Register,
        }
    }
}

/// How a dial the client asked for ([`ClientOutput::Dial`]) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialResult {
    /// A link to the seed, whose id the handshake gave.
    Linked(NodeId),
    /// The address turned out to be this node's own.
    Myself,
    /// The address did not resolve, or no link could be made.
    Failed,
}

/// An output of the client, for the runtime to act on, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientOutput {
    /// Send `msg` to the seed `to`.
    Send {
        /// The seed.
        to: NodeId,
        /// The message.
        msg: SeedMessage,
    },
    /// Dial the seed configured at `addr` and answer with
    /// [`SeedClient::handle_dial`].
    Dial {
        /// The seed's index in the configured list.
        seed: usize,
        /// Its address as configured (a name may need resolving).
        addr: String,
    },
    /// A seed's list: verified records of other nodes, and one of them to
    /// join through if the node has no neighbour.
    Peers {
        /// The records, own record and bad signatures left out.
        records: Vec<SignedRecord>,
        /// A random one of them.
        contact: NodeId,
    },
    /// A seed acknowledged our first registration with it.
    Registered {
        /// The seed's index.
        seed: usize,
        /// Seeds we are registered with now.
        count: usize,
        /// Seeds configured.
        total: usize,
        /// Whether this one made a majority.
        majority: bool,
    },
    /// A seed message from a node that is not one of our seeds; ignored.
    NotASeed {
        /// The sender.
        from: NodeId,
    },
    /// A message a seed should not send to a node; ignored.
    Unexpected {
        /// The seed.
        from: NodeId,
        /// What it sent.
        msg: SeedMessage,
    },
}

/// One configured seed and what the client knows of it.
#[derive(Debug, Clone)]
pub struct SeedContact {
    addr: String,
    id: Option<NodeId>,
    dialing: bool,
    redial: Backoff,
    registered_at: Option<Instant>,
    registered: bool,
}

impl SeedContact {
    /// The address as configured.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The seed's id, once a dial to it has linked.
    pub fn id(&self) -> Option<NodeId> {
        self.id
    }

    /// Whether the seed has acknowledged a registration.
    pub fn registered(&self) -> bool {
        self.registered
    }
}

/// The seed client of one node; see the module docs.
#[derive(Debug)]
pub struct SeedClient {
    me: NodeId,
    record: SignedRecord,
    config: ClientConfig,
    seeds: Vec<SeedContact>,
}

impl SeedClient {
    /// A client for the seeds at `addrs`, registering `record` (our own).
    pub fn new(record: SignedRecord, addrs: Vec<String>, config: ClientConfig) -> Self {
        let seeds = addrs
            .into_iter()
            .map(|addr| SeedContact {
                addr,
                id: None,
                dialing: false,
                redial: Backoff::new(config.redial_min, config.redial_max),
                registered_at: None,
                registered: false,
            })
            .collect();
        Self {
            me: record.id(),
            record,
            config,
            seeds,
        }
    }

    /// The configured seeds, in order.
    pub fn seeds(&self) -> &[SeedContact] {
        &self.seeds
    }

    /// The ids of the seeds that `linked` says have a link.
    pub fn linked<'a>(
        &'a self,
        linked: impl Fn(&NodeId) -> bool + 'a,
    ) -> impl Iterator<Item = NodeId> + 'a {
        self.seeds
            .iter()
            .filter_map(|s| s.id)
            .filter(move |id| linked(id))
    }

    /// Our record changed (a new name): the next registration carries it.
    pub fn set_record(&mut self, record: SignedRecord) {
        self.record = record;
    }

    /// Periodic upkeep at `now`: refresh the registration with each linked
    /// seed that is due, and dial each unlinked one that may be retried.
    pub fn handle_tick(
        &mut self,
        now: Instant,
        linked: impl Fn(&NodeId) -> bool,
    ) -> Vec<ClientOutput> {
        let mut out = Vec::new();
        for i in 0..self.seeds.len() {
            let seed = &self.seeds[i];
            let due = seed
                .registered_at
                .is_none_or(|at| now.saturating_duration_since(at) >= self.config.refresh_interval);
            let is_linked = seed.id.is_some_and(|id| linked(&id));
            if is_linked && due {
                self.register(i, now, &mut out);
            } else if !is_linked {
                self.dial_if_ready(i, now, &mut out);
            }
        }
        out
    }

    /// The node is looking for the overlay: ask each linked seed for a
    /// list, and dial each unlinked one that may be retried.
    pub fn handle_bootstrap(
        &mut self,
        now: Instant,
        linked: impl Fn(&NodeId) -> bool,
    ) -> Vec<ClientOutput> {
        let mut out = Vec::new();
        for i in 0..self.seeds.len() {
            match self.seeds[i].id.filter(|id| linked(id)) {
                Some(to) => out.push(ClientOutput::Send {
                    to,
                    msg: SeedMessage::ListRequest { max: 0 },
                }),
                None => self.dial_if_ready(i, now, &mut out),
            }
        }
        out
    }

    /// How a dial of seed `seed` ended.
    pub fn handle_dial(
        &mut self,
        seed: usize,
        result: DialResult,
        now: Instant,
    ) -> Vec<ClientOutput> {
        let mut out = Vec::new();
        let Some(contact) = self.seeds.get_mut(seed) else {
            return out;
        };
        contact.dialing = false;
        match result {
            DialResult::Linked(id) => {
                contact.redial.reset();
                contact.id = Some(id);
                self.register(seed, now, &mut out);
            }
            DialResult::Myself => contact.redial.reset(),
            DialResult::Failed => contact.redial.defer(now),
        }
        out
    }

    /// A seed message from `from`, over an authenticated link.
    pub fn on_message(
        &mut self,
        from: NodeId,
        msg: SeedMessage,
        rng: &mut impl Rng,
    ) -> Vec<ClientOutput> {
        let Some(i) = self.seeds.iter().position(|s| s.id == Some(from)) else {
            return vec![ClientOutput::NotASeed { from }];
        };
        match msg {
            SeedMessage::Registered { .. } => self.on_registered(i),
            SeedMessage::List(records) => self.on_list(records, rng),
            msg => vec![ClientOutput::Unexpected { from, msg }],
        }
    }

    /// A neighbour's link failed: every seed we know the id of hears of it.
    pub fn handle_neighbor_lost(&self, peer: NodeId) -> Vec<ClientOutput> {
        self.seeds
            .iter()
            .filter_map(|s| s.id)
            .map(|to| ClientOutput::Send {
                to,
                msg: SeedMessage::DeadReport(peer),
            })
            .collect()
    }

    /// The node is leaving: the linked seeds it registered with forget it.
    pub fn handle_leave(&self, linked: impl Fn(&NodeId) -> bool) -> Vec<ClientOutput> {
        if self.config.mode == ClientMode::DialOnly {
            return Vec::new();
        }
        self.linked(linked)
            .map(|to| ClientOutput::Send {
                to,
                msg: SeedMessage::Leave,
            })
            .collect()
    }

    fn dial_if_ready(&mut self, i: usize, now: Instant, out: &mut Vec<ClientOutput>) {
        let seed = &mut self.seeds[i];
        if seed.dialing || !seed.redial.ready(now) {
            return;
        }
        seed.dialing = true;
        out.push(ClientOutput::Dial {
            seed: i,
            addr: seed.addr.clone(),
        });
    }

    fn register(&mut self, i: usize, now: Instant, out: &mut Vec<ClientOutput>) {
        let Some(to) = self.seeds[i].id else {
            return;
        };
        // Set in either mode, so a seed's refresh check stays quiet too.
        self.seeds[i].registered_at = Some(now);
        if self.config.mode == ClientMode::DialOnly {
            return;
        }
        out.push(ClientOutput::Send {
            to,
            msg: SeedMessage::Register(self.record.clone()),
        });
        out.push(ClientOutput::Send {
            to,
            msg: SeedMessage::ListRequest { max: 0 },
        });
    }

    fn on_registered(&mut self, i: usize) -> Vec<ClientOutput> {
        if self.seeds[i].registered {
            return Vec::new();
        }
        self.seeds[i].registered = true;
        let count = self.seeds.iter().filter(|s| s.registered).count();
        let total = self.seeds.len();
        vec![ClientOutput::Registered {
            seed: i,
            count,
            total,
            majority: count == total / 2 + 1,
        }]
    }

    fn on_list(&mut self, records: Vec<SignedRecord>, rng: &mut impl Rng) -> Vec<ClientOutput> {
        let records: Vec<SignedRecord> = records
            .into_iter()
            .filter(|r| r.id() != self.me && r.verify().is_ok())
            .collect();
        match records.choose(rng).map(|r| r.id()) {
            Some(contact) => vec![ClientOutput::Peers { records, contact }],
            None => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests;
