//! The message cache: what a node keeps to answer grafts and to announce to
//! a new neighbour.
//!
//! It keeps to a count and a byte budget, and one origin to its share of
//! both ([`super::ORIGIN_SHARE`]), so a flood pushes out the flooder's own
//! messages, not everyone else's. Entries are kept in insertion order; a
//! message cached again is a new insertion, and the stale reference to the
//! old one is skipped by its insertion number.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::ORIGIN_SHARE;
use crate::envelope::SignedEnvelope;
use crate::{MessageId, NodeId};

#[derive(Debug)]
struct Cached {
    content: Bytes,
    round: u16,
    /// The envelope's author; `None` for content that is no envelope (the
    /// simulator's), which only the totals bound.
    origin: Option<NodeId>,
    /// Number of the insertion, telling this entry from a stale reference
    /// to an earlier one under the same id.
    at: u64,
}

/// What one origin holds in the cache, oldest first.
#[derive(Debug, Default)]
struct OriginCache {
    order: VecDeque<(u64, MessageId)>,
    count: usize,
    bytes: usize,
}

/// Messages kept for grafts. See the module docs.
#[derive(Debug)]
pub(super) struct MessageCache {
    max_messages: usize,
    max_bytes: usize,
    entries: HashMap<MessageId, Cached>,
    /// Oldest first; may also hold stale references, skipped by insertion
    /// number.
    order: VecDeque<(Instant, u64, MessageId)>,
    by_origin: HashMap<NodeId, OriginCache>,
    bytes: usize,
    inserts: u64,
}

impl MessageCache {
    pub(super) fn new(max_messages: usize, max_bytes: usize) -> Self {
        Self {
            max_messages,
            max_bytes,
            entries: HashMap::new(),
            order: VecDeque::new(),
            by_origin: HashMap::new(),
            bytes: 0,
            inserts: 0,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(super) fn bytes(&self) -> usize {
        self.bytes
    }

    /// A cached message's content and the round it had here.
    pub(super) fn get(&self, id: &MessageId) -> Option<(&Bytes, u16)> {
        self.entries.get(id).map(|c| (&c.content, c.round))
    }

    /// The ids and rounds of the newest messages, newest first.
    pub(super) fn newest(&self) -> impl Iterator<Item = (MessageId, u16)> + '_ {
        self.order.iter().rev().filter_map(|(_, at, id)| {
            self.entries
                .get(id)
                .filter(|c| c.at == *at)
                .map(|c| (*id, c.round))
        })
    }

    /// Keeps a message, within the count and byte bounds and the origin's
    /// share of both: an origin over its share loses its own oldest; over
    /// the totals, the oldest of all go.
    pub(super) fn insert(&mut self, id: MessageId, content: Bytes, round: u16, now: Instant) {
        if let Some(old) = self.entries.get(&id).map(|c| c.at) {
            self.remove(&id, old);
        }
        let origin = SignedEnvelope::decode(&content)
            .ok()
            .map(|s| s.envelope().origin);
        self.inserts += 1;
        let at = self.inserts;
        let len = content.len();
        self.bytes += len;
        self.entries.insert(
            id,
            Cached {
                content,
                round,
                origin,
                at,
            },
        );
        self.order.push_back((now, at, id));
        if let Some(origin) = origin {
            let share_count = (self.max_messages / ORIGIN_SHARE).max(1);
            let share_bytes = self.max_bytes / ORIGIN_SHARE;
            let mine = self.by_origin.entry(origin).or_default();
            mine.order.push_back((at, id));
            mine.count += 1;
            mine.bytes += len;
            while mine.count > share_count || (mine.bytes > share_bytes && mine.count > 1) {
                let Some((old_at, old)) = mine.order.pop_front() else {
                    break;
                };
                if self.entries.get(&old).is_some_and(|c| c.at == old_at) {
                    // Popped from the origin's list already; the rest of
                    // `remove` must not look for it there.
                    if let Some(c) = self.entries.remove(&old) {
                        self.bytes -= c.content.len();
                        mine.count -= 1;
                        mine.bytes -= c.content.len();
                    }
                }
            }
        }
        // Stale references are dropped with the live ones, so the order
        // stays within twice the entry bound under any churn.
        while self.entries.len() > self.max_messages
            || self.bytes > self.max_bytes
            || self.order.len() > 2 * self.max_messages
        {
            let Some((_, old_at, old)) = self.order.pop_front() else {
                break;
            };
            self.remove(&old, old_at);
        }
    }

    /// Drops a cached message if `at` is its current insertion.
    fn remove(&mut self, id: &MessageId, at: u64) {
        if self.entries.get(id).is_none_or(|c| c.at != at) {
            return;
        }
        let Some(c) = self.entries.remove(id) else {
            return;
        };
        self.bytes -= c.content.len();
        let Some(origin) = c.origin else { return };
        if let Some(mine) = self.by_origin.get_mut(&origin) {
            mine.count -= 1;
            mine.bytes -= c.content.len();
            while mine
                .order
                .front()
                .is_some_and(|(a, i)| self.entries.get(i).is_none_or(|c| c.at != *a))
            {
                mine.order.pop_front();
            }
            if mine.count == 0 {
                self.by_origin.remove(&origin);
            }
        }
    }

    /// Drops what was cached more than `retention` before `now`.
    pub(super) fn evict(&mut self, now: Instant, retention: Duration) {
        while let Some((at, ins, id)) = self.order.front().copied() {
            if now.saturating_duration_since(at) < retention {
                break;
            }
            self.order.pop_front();
            self.remove(&id, ins);
        }
    }
}
