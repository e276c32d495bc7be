//! The registry a seed keeps: register, refresh, expire, sample, and probe a
//! reported node before removing it. See the [parent module](super) for the
//! protocol.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::{Duration, Instant};

use rand::Rng;

use super::{
    SeedMessage, DEFAULT_MAX_PENDING_PROBES, DEFAULT_MAX_RECORDS, DEFAULT_MAX_REPORTS,
    DEFAULT_MAX_SAMPLE, DEFAULT_PROBE_TIMEOUT, DEFAULT_RECORD_TTL, DEFAULT_REPORT_WINDOW,
    DEFAULT_SAMPLE_SIZE, LIST_HEADER_BYTES, MAX_CONFIG_DURATION, MAX_LIST_LEN,
    MAX_SEED_MESSAGE_BYTES,
};
use crate::identity::NodeId;
use crate::record::{RecordError, SignedRecord};

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
    /// Most dead reports one registered node may file per
    /// [`SeedConfig::report_window`]; more are refused.
    pub max_reports: u32,
    /// The window [`SeedConfig::max_reports`] counts over.
    pub report_window: Duration,
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
            max_reports: DEFAULT_MAX_REPORTS,
            report_window: DEFAULT_REPORT_WINDOW,
        }
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
    /// A dead report from a node that is not registered: only members of
    /// the registry may report on each other.
    NotRegistered,
    /// A dead report over the sender's [`SeedConfig::max_reports`].
    TooManyReports,
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
    /// Dead reports this node filed in the window that started then.
    reports: (Instant, u32),
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
        config.report_window = config.report_window.min(MAX_CONFIG_DURATION);
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
                SeedMessage::DeadReport(id) => self.on_dead_report(from, id, now, &mut out),
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
                reports: (now, 0),
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

    fn on_dead_report(
        &mut self,
        from: NodeId,
        id: NodeId,
        now: Instant,
        out: &mut Vec<SeedOutput>,
    ) {
        // Only a registered node may report, and only so often: a stranger,
        // or one member naming every other, would have the seed spend its
        // probes on nodes nobody else has trouble with.
        let Some(reporter) = self.records.get_mut(&from) else {
            out.push(SeedOutput::Refused {
                from,
                reason: RefuseReason::NotRegistered,
            });
            return;
        };
        let (since, count) = &mut reporter.reports;
        if now.saturating_duration_since(*since) >= self.config.report_window {
            *since = now;
            *count = 0;
        }
        if *count >= self.config.max_reports {
            out.push(SeedOutput::Refused {
                from,
                reason: RefuseReason::TooManyReports,
            });
            return;
        }
        *count += 1;
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
mod tests;
