//! One timer table for the actor: deadlines with a value each, earliest
//! first, ties in the order they were set.
//!
//! The protocol asks for timers with `OutEvent::ScheduleTimer`; the actor
//! keeps them here and sleeps until [`Timers::next_deadline`]. The table is
//! plain data, so its order is tested without a runtime.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use tokio::time::Instant;

/// Deadlines, each with a value to hand back when it is due.
#[derive(Debug)]
pub(super) struct Timers<T> {
    heap: BinaryHeap<Entry<T>>,
    /// Breaks ties between equal deadlines: first set, first due.
    seq: u64,
}

#[derive(Debug)]
struct Entry<T> {
    at: Instant,
    seq: u64,
    value: T,
}

impl<T> PartialEq for Entry<T> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl<T> Eq for Entry<T> {}

impl<T> PartialOrd for Entry<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<T> Ord for Entry<T> {
    // Reversed: `BinaryHeap` is a max-heap and the earliest must come out.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

impl<T> Timers<T> {
    pub(super) fn new() -> Self {
        Self {
            heap: BinaryHeap::new(),
            seq: 0,
        }
    }

    /// Sets a timer for `at`.
    pub(super) fn insert(&mut self, at: Instant, value: T) {
        self.seq += 1;
        self.heap.push(Entry {
            at,
            seq: self.seq,
            value,
        });
    }

    /// The earliest deadline, if any timer is set.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.heap.peek().map(|e| e.at)
    }

    /// Takes the earliest timer if it is due at `now`.
    pub(super) fn pop_due(&mut self, now: Instant) -> Option<T> {
        if self.heap.peek()?.at > now {
            return None;
        }
        self.heap.pop().map(|e| e.value)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn timers_come_out_earliest_first_and_only_when_due() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut timers = Timers::new();
        assert_eq!(timers.next_deadline(), None);
        timers.insert(t0 + 3 * s, "c");
        timers.insert(t0 + s, "a");
        timers.insert(t0 + 2 * s, "b");
        assert_eq!(timers.next_deadline(), Some(t0 + s));
        assert_eq!(timers.pop_due(t0), None);
        assert_eq!(timers.pop_due(t0 + 2 * s), Some("a"));
        assert_eq!(timers.pop_due(t0 + 2 * s), Some("b"));
        assert_eq!(timers.pop_due(t0 + 2 * s), None);
        assert_eq!(timers.next_deadline(), Some(t0 + 3 * s));
        assert_eq!(timers.pop_due(t0 + 9 * s), Some("c"));
        assert_eq!(timers.next_deadline(), None);
    }

    #[test]
    fn equal_deadlines_fire_in_the_order_they_were_set() {
        let at = Instant::now();
        let mut timers = Timers::new();
        for i in 0..100 {
            timers.insert(at, i);
        }
        let fired: Vec<i32> = std::iter::from_fn(|| timers.pop_due(at)).collect();
        assert_eq!(fired, (0..100).collect::<Vec<_>>());
    }
}
