//! The message history a node keeps in memory: every envelope it delivered
//! or broadcast within the retention window, indexed by origin and sequence
//! number, and the compact summaries anti-entropy ([`crate::sync`]) trades.
//!
//! The history is what makes "exactly once" hold for as long as a message
//! can be accepted at all: an envelope is accepted only inside the age
//! window ([`Config::max_age`], with [`Config::max_clock_skew`] of slack
//! either way), and while it is inside that window the history remembers
//! it, unless the count or byte bound pushed it out first. For those, the
//! origin's *floor* (the highest sequence number evicted by a bound) is
//! kept, and anything at or below it counts as known: a message is refused
//! rather than delivered twice. Floors are bounded too: one pushed out by
//! that bound (only a flood of messages from many origins does it) raises
//! the *horizon*, and every message written at or before it is refused,
//! so forgetting costs late messages, never a second delivery.
//!
//! A summary lists, per origin, the sequence numbers held as ranges. A
//! node's own sequence numbers rise by one per message and jump forward at
//! a restart (they start at the wall clock), so an origin costs about one
//! range per run: the summary is small, and what one end lacks is read off
//! the other's ranges exactly. The runtime persists the envelopes (the
//! node's SQLite store) and loads them back with [`History::insert`] at
//! start; this module only keeps the index and the bytes.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::envelope::SignedEnvelope;
use crate::{MessageId, NodeId};

/// Bounds and windows of the history.
#[derive(Debug, Clone)]
pub struct Config {
    /// Messages older than this (by their origin's clock) are dropped from
    /// the history and refused when they arrive: a day covers a night's
    /// downtime or a long partition.
    pub max_age: Duration,
    /// Clocks disagree: a message may be this much older than `max_age`, or
    /// this far in the future, and still count as inside the window.
    pub max_clock_skew: Duration,
    /// Most messages kept: 100,000 chat lines are about 30 MB.
    pub max_messages: usize,
    /// Most envelope bytes kept, whatever their count: large custom
    /// messages cannot push memory (or the disk copy) past this.
    pub max_bytes: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_age: Duration::from_secs(24 * 3600),
            max_clock_skew: Duration::from_secs(600),
            max_messages: 100_000,
            max_bytes: 256 * 1024 * 1024,
        }
    }
}

/// Most origins one summary lists; a node that knows more lists them over
/// several rounds, a slice of the id space at a time. 512 origins with a
/// few ranges each are about 30 KB.
pub const MAX_SUMMARY_ORIGINS: usize = 512;
/// Most ranges listed for one origin: each restart of the origin, and each
/// hole, costs one; past this, only the newest ranges are listed and the
/// older part of the origin's log is left out of that round.
pub const MAX_SUMMARY_RANGES: usize = 32;

/// What one origin's log holds, as a summary lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OriginRanges {
    /// The origin.
    pub origin: NodeId,
    /// Sequence numbers below this are not spoken for: the sender holds
    /// them or is past them (its floor), or left them out of the list.
    pub from: u64,
    /// Inclusive ranges of sequence numbers held, ascending, disjoint.
    pub ranges: Vec<(u64, u64)>,
}

/// A summary of a slice of the history: every origin in `lo..=hi` that the
/// sender holds anything of is listed, so an origin in the slice that is not
/// listed is one the sender lacks entirely.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// First origin id of the slice.
    pub lo: NodeId,
    /// Last origin id of the slice.
    pub hi: NodeId,
    /// The origins held in the slice, ascending.
    pub origins: Vec<OriginRanges>,
}

impl Summary {
    /// Whether the bounds hold.
    pub fn check(&self) -> bool {
        self.origins.len() <= MAX_SUMMARY_ORIGINS
            && self
                .origins
                .iter()
                .all(|o| o.ranges.len() <= MAX_SUMMARY_RANGES)
    }
}

/// The smallest node id, where the first slice starts.
pub const FIRST_ID: NodeId = NodeId::from_bytes([0; 32]);
/// The largest node id, where the last slice ends.
pub const LAST_ID: NodeId = NodeId::from_bytes([0xff; 32]);

/// What the history needs to know of an envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// Its id.
    pub id: MessageId,
    /// Its author.
    pub origin: NodeId,
    /// The author's sequence number.
    pub seq: u64,
    /// The author's clock when written, Unix ms.
    pub time_ms: u64,
}

impl Meta {
    /// The metadata of a decoded envelope whose encoding is `content`.
    pub fn of(signed: &SignedEnvelope, content: &[u8]) -> Self {
        let env = signed.envelope();
        Self {
            id: MessageId::of(content),
            origin: env.origin,
            seq: env.seq,
            time_ms: env.time_ms,
        }
    }

    /// The metadata of `content` if it is an envelope (not verified).
    pub fn decode(content: &[u8]) -> Option<Self> {
        SignedEnvelope::decode(content)
            .ok()
            .map(|s| Self::of(&s, content))
    }
}

#[derive(Debug)]
struct Entry {
    id: MessageId,
    time_ms: u64,
    content: Bytes,
}

/// Where a message stands against the age window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Age {
    /// Inside the window.
    Fresh,
    /// Older than the window.
    TooOld,
    /// Further in the future than clock skew explains.
    TooNew,
}

/// The in-memory history. See the module docs.
#[derive(Debug)]
pub struct History {
    config: Config,
    by_origin: BTreeMap<NodeId, BTreeMap<u64, Entry>>,
    ids: HashMap<MessageId, (NodeId, u64)>,
    /// Eviction order: oldest claimed time first, then arrival.
    by_time: BTreeSet<(u64, u64, MessageId)>,
    arrivals: u64,
    /// Per origin, the highest sequence number a bound evicted, with that
    /// message's time (the floor ages out with it).
    floors: BTreeMap<NodeId, (u64, u64)>,
    /// Messages at or before this time (Unix ms) count as known: where the
    /// bound on floors made us forget one, everything up to the forgotten
    /// floor's time is refused, so nothing that floor covered can come back.
    horizon_ms: u64,
    bytes: usize,
}

impl History {
    /// An empty history.
    pub fn new(config: Config) -> Self {
        Self {
            config,
            by_origin: BTreeMap::new(),
            ids: HashMap::new(),
            by_time: BTreeSet::new(),
            arrivals: 0,
            floors: BTreeMap::new(),
            horizon_ms: 0,
            bytes: 0,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Messages held.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Envelope bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Whether a message with this id is held.
    pub fn contains(&self, id: &MessageId) -> bool {
        self.ids.contains_key(id)
    }

    /// Whether the message is one this node must not deliver again: held,
    /// another message under its (origin, seq) is held, or it is at or
    /// below the origin's floor, or not after the horizon (see the module
    /// docs).
    pub fn is_known(&self, meta: &Meta) -> bool {
        (self.horizon_ms > 0 && meta.time_ms <= self.horizon_ms)
            || self.ids.contains_key(&meta.id)
            || self
                .by_origin
                .get(&meta.origin)
                .is_some_and(|log| log.contains_key(&meta.seq))
            || self
                .floors
                .get(&meta.origin)
                .is_some_and(|(floor, _)| meta.seq <= *floor)
    }

    /// Where `time_ms` stands against the window at wall-clock `now_ms`.
    pub fn age(&self, time_ms: u64, now_ms: u64) -> Age {
        let skew = self.config.max_clock_skew.as_millis() as u64;
        let window = self.config.max_age.as_millis() as u64 + skew;
        if time_ms.saturating_add(window) < now_ms {
            Age::TooOld
        } else if time_ms > now_ms.saturating_add(skew) {
            Age::TooNew
        } else {
            Age::Fresh
        }
    }

    /// Adds a message; returns whether it was new. Messages outside the
    /// window at `now_ms` are not kept.
    pub fn insert(&mut self, meta: Meta, content: Bytes, now_ms: u64) -> bool {
        if self.is_known(&meta) || self.age(meta.time_ms, now_ms) == Age::TooOld {
            return false;
        }
        self.arrivals += 1;
        self.bytes += content.len();
        self.ids.insert(meta.id, (meta.origin, meta.seq));
        self.by_time.insert((meta.time_ms, self.arrivals, meta.id));
        self.by_origin.entry(meta.origin).or_default().insert(
            meta.seq,
            Entry {
                id: meta.id,
                time_ms: meta.time_ms,
                content,
            },
        );
        self.evict(now_ms);
        true
    }

    /// Drops what is past the window or over a bound.
    pub fn evict(&mut self, now_ms: u64) {
        while let Some(&(time_ms, arrival, id)) = self.by_time.first() {
            let old = self.age(time_ms, now_ms) == Age::TooOld;
            let over =
                self.ids.len() > self.config.max_messages || self.bytes > self.config.max_bytes;
            if !old && !over {
                break;
            }
            self.by_time.remove(&(time_ms, arrival, id));
            let Some((origin, seq)) = self.ids.remove(&id) else {
                continue;
            };
            if let Some(log) = self.by_origin.get_mut(&origin) {
                if let Some(entry) = log.remove(&seq) {
                    self.bytes -= entry.content.len();
                }
                if log.is_empty() {
                    self.by_origin.remove(&origin);
                }
            }
            if !old {
                // Pushed out by a bound while still acceptable: remember
                // that this origin's messages up to here were had.
                // The floor lives as long as the newest message it
                // covers could still be accepted.
                let floor = self.floors.entry(origin).or_insert((seq, time_ms));
                floor.0 = floor.0.max(seq);
                floor.1 = floor.1.max(time_ms);
            }
        }
        // A floor can go once the message that set it would be refused as
        // too old anyway; a bound on them keeps a flood of origins in check.
        let window =
            self.config.max_age.as_millis() as u64 + self.config.max_clock_skew.as_millis() as u64;
        self.floors
            .retain(|_, (_, t)| t.saturating_add(window) >= now_ms);
        while self.floors.len() > self.config.max_messages {
            let oldest = self
                .floors
                .iter()
                .min_by_key(|(_, (_, t))| *t)
                .map(|(o, _)| *o);
            match oldest.and_then(|o| self.floors.remove(&o)) {
                Some((_, t)) => self.horizon_ms = self.horizon_ms.max(t),
                None => break,
            }
        }
    }

    /// The summary of the slice of origins from `lo` on: up to
    /// [`MAX_SUMMARY_ORIGINS`] origins, and `hi` the last listed when there
    /// are more, [`LAST_ID`] otherwise.
    pub fn summary(&self, lo: NodeId) -> Summary {
        let mut origins = Vec::new();
        let mut hi = LAST_ID;
        for (origin, log) in self.by_origin.range(lo..) {
            if origins.len() == MAX_SUMMARY_ORIGINS {
                // Stop just before this one, so it starts the next slice.
                hi = origins
                    .last()
                    .map(|o: &OriginRanges| o.origin)
                    .unwrap_or(lo);
                break;
            }
            let mut ranges: Vec<(u64, u64)> = Vec::new();
            for &seq in log.keys() {
                match ranges.last_mut() {
                    Some((_, end)) if end.checked_add(1) == Some(seq) => *end = seq,
                    _ => ranges.push((seq, seq)),
                }
            }
            let mut from = self.floors.get(origin).map_or(0, |(f, _)| f + 1);
            if ranges.len() > MAX_SUMMARY_RANGES {
                ranges.drain(..ranges.len() - MAX_SUMMARY_RANGES);
                from = from.max(ranges[0].0);
            }
            origins.push(OriginRanges {
                origin: *origin,
                from,
                ranges,
            });
        }
        Summary { lo, hi, origins }
    }

    /// What this history holds that the summary's sender lacks, in origin
    /// then sequence order, up to `budget` bytes (at least one envelope if
    /// any is missing); and whether more is left.
    pub fn missing_from(&self, summary: &Summary, budget: usize) -> (Vec<Bytes>, bool) {
        let mut out = Vec::new();
        let mut used = 0usize;
        if summary.lo > summary.hi {
            return (out, false);
        }
        let listed: BTreeMap<NodeId, &OriginRanges> =
            summary.origins.iter().map(|o| (o.origin, o)).collect();
        let slice = self
            .by_origin
            .range((Bound::Included(summary.lo), Bound::Included(summary.hi)));
        for (origin, log) in slice {
            let theirs = listed.get(origin);
            for (seq, entry) in log {
                let had = match theirs {
                    None => false,
                    Some(o) => *seq < o.from || in_ranges(&o.ranges, *seq),
                };
                if had {
                    continue;
                }
                if !out.is_empty() && used + entry.content.len() > budget {
                    return (out, true);
                }
                used += entry.content.len();
                out.push(entry.content.clone());
            }
        }
        (out, false)
    }

    /// The envelope held under this id.
    pub fn get(&self, id: &MessageId) -> Option<&Bytes> {
        let (origin, seq) = self.ids.get(id)?;
        self.by_origin.get(origin)?.get(seq).map(|e| &e.content)
    }

    /// The messages of one origin, ascending by sequence number: (seq, id,
    /// time).
    pub fn origin_log(&self, origin: &NodeId) -> Vec<(u64, MessageId, u64)> {
        self.by_origin
            .get(origin)
            .map(|log| log.iter().map(|(s, e)| (*s, e.id, e.time_ms)).collect())
            .unwrap_or_default()
    }

    /// Every envelope held, oldest first by time: what a simulated node
    /// "persists" across a restart.
    pub fn export(&self) -> Vec<Bytes> {
        self.by_time
            .iter()
            .filter_map(|(_, _, id)| self.get(id).cloned())
            .collect()
    }
}

/// The id right after `id`, where the slice after one ending at `id`
/// starts; `None` after [`LAST_ID`].
pub fn next_id(id: &NodeId) -> Option<NodeId> {
    let mut bytes = *id.as_bytes();
    for b in bytes.iter_mut().rev() {
        if *b == 0xff {
            *b = 0;
        } else {
            *b += 1;
            return Some(NodeId::from_bytes(bytes));
        }
    }
    None
}

/// Whether `seq` lies in one of the ascending, disjoint `ranges`.
fn in_ranges(ranges: &[(u64, u64)], seq: u64) -> bool {
    let i = ranges.partition_point(|(_, end)| *end < seq);
    ranges.get(i).is_some_and(|(start, _)| *start <= seq)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000_000;

    fn meta(origin: u8, seq: u64) -> Meta {
        let mut id = [0u8; 32];
        id[0] = origin;
        id[1..9].copy_from_slice(&seq.to_le_bytes());
        Meta {
            id: MessageId(id),
            origin: NodeId::from_bytes([origin; 32]),
            seq,
            time_ms: NOW,
        }
    }

    fn content(origin: u8, seq: u64) -> Bytes {
        Bytes::from(vec![origin; 10 + seq as usize % 3])
    }

    fn filled(pairs: &[(u8, u64)]) -> History {
        let mut h = History::new(Config::default());
        for &(o, s) in pairs {
            assert!(h.insert(meta(o, s), content(o, s), NOW));
        }
        h
    }

    #[test]
    fn ranges_compress_runs_and_jumps() {
        let h = filled(&[(1, 5), (1, 6), (1, 7), (1, 100), (1, 101), (2, 3)]);
        let s = h.summary(FIRST_ID);
        assert_eq!(s.hi, LAST_ID);
        assert_eq!(s.origins.len(), 2);
        assert_eq!(s.origins[0].ranges, vec![(5, 7), (100, 101)]);
        assert_eq!(s.origins[1].ranges, vec![(3, 3)]);
    }

    #[test]
    fn what_is_missing_is_read_off_the_ranges() {
        let full = filled(&[(1, 5), (1, 6), (1, 7), (1, 8), (2, 1), (3, 9)]);
        let part = filled(&[(1, 5), (1, 7), (3, 9)]);
        let (missing, more) = full.missing_from(&part.summary(FIRST_ID), usize::MAX);
        assert!(!more);
        let want: Vec<Bytes> = [(1, 6), (1, 8), (2, 1)]
            .iter()
            .map(|&(o, s)| content(o, s))
            .collect();
        assert_eq!(missing, want);
        let (none, _) = part.missing_from(&full.summary(FIRST_ID), usize::MAX);
        assert!(none.is_empty(), "the fuller side lacks nothing");
    }

    #[test]
    fn the_budget_cuts_a_fill_and_says_more() {
        let full = filled(&[(1, 1), (1, 2), (1, 3)]);
        let empty = History::new(Config::default());
        let (first, more) = full.missing_from(&empty.summary(FIRST_ID), 1);
        assert_eq!(first.len(), 1, "at least one, even over the budget");
        assert!(more);
    }

    #[test]
    fn a_bound_leaves_a_floor_so_nothing_is_delivered_twice() {
        let mut h = History::new(Config {
            max_messages: 2,
            ..Config::default()
        });
        for s in 1..=3 {
            assert!(h.insert(meta(1, s), content(1, s), NOW));
        }
        assert_eq!(h.len(), 2);
        assert!(!h.contains(&meta(1, 1).id));
        assert!(h.is_known(&meta(1, 1)), "below the floor");
        assert!(!h.insert(meta(1, 1), content(1, 1), NOW));
        assert_eq!(h.summary(FIRST_ID).origins[0].from, 2);
    }

    #[test]
    fn the_age_window_refuses_and_evicts() {
        let mut h = History::new(Config::default());
        let day = 24 * 3600 * 1000;
        let skew = 600 * 1000;
        let mut old = meta(1, 1);
        old.time_ms = NOW - day - skew - 1;
        assert_eq!(h.age(old.time_ms, NOW), Age::TooOld);
        assert!(!h.insert(old, content(1, 1), NOW));
        assert_eq!(h.age(NOW + skew + 1, NOW), Age::TooNew);
        assert!(h.insert(meta(1, 2), content(1, 2), NOW));
        h.evict(NOW + day + skew + 1);
        assert!(h.is_empty());
    }

    #[test]
    fn many_origins_are_summarised_in_slices() {
        let mut h = History::new(Config::default());
        for i in 0..600u16 {
            let mut origin = [0u8; 32];
            origin[..2].copy_from_slice(&i.to_be_bytes());
            let mut m = meta(1, 1);
            m.origin = NodeId::from_bytes(origin);
            m.id.0[20..22].copy_from_slice(&i.to_be_bytes());
            assert!(h.insert(m, content(1, 1), NOW));
        }
        let first = h.summary(FIRST_ID);
        assert_eq!(first.origins.len(), MAX_SUMMARY_ORIGINS);
        assert!(first.check());
        assert_ne!(first.hi, LAST_ID);
        let next = next_id(&first.hi).unwrap();
        let second = h.summary(next);
        assert_eq!(second.origins.len(), 600 - MAX_SUMMARY_ORIGINS);
        assert_eq!(second.hi, LAST_ID);
        // A sender that lacks everything gets the first slice's only.
        let mut empty = History::new(Config::default()).summary(FIRST_ID);
        empty.hi = first.hi;
        let (fill, more) = h.missing_from(&empty, usize::MAX);
        assert_eq!((fill.len(), more), (MAX_SUMMARY_ORIGINS, false));
        assert_eq!(next_id(&LAST_ID), None);
    }
}
