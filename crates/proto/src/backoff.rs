//! Exponential backoff for retries: a delay that doubles after each failure
//! up to a cap, as a plain value that takes `now`.
//!
//! The seed client backs off redialling an unreachable seed with it, and the
//! node runtime its bootstrap rounds and static peers, so every retry in a
//! node follows one rule.

use std::time::{Duration, Instant};

/// A retry schedule; see the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    delay: Duration,
    /// Not before this; `None` until the first deferral, so a fresh
    /// schedule is ready at once.
    next: Option<Instant>,
}

impl Backoff {
    /// A schedule whose first delay is `min`, doubling up to `max`.
    pub fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max: max.max(min),
            delay: min,
            next: None,
        }
    }

    /// Whether a try is allowed at `now`.
    pub fn ready(&self, now: Instant) -> bool {
        self.next.is_none_or(|next| now >= next)
    }

    /// A try failed (or a round was spent) at `now`: the next waits the
    /// current delay, and the delay after it is twice as long.
    pub fn defer(&mut self, now: Instant) {
        self.next = Some(now + self.delay);
        self.delay = (self.delay * 2).min(self.max);
    }

    /// A try succeeded: the next failure waits only the first delay again.
    /// A deferral already in force stands.
    pub fn reset(&mut self) {
        self.delay = self.min;
    }

    /// The delay the next failure will wait.
    pub fn delay(&self) -> Duration {
        self.delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn a_fresh_schedule_is_ready_at_once() {
        let b = Backoff::new(S, 30 * S);
        assert!(b.ready(Instant::now()));
    }

    #[test]
    fn each_failure_doubles_the_wait_up_to_the_cap() {
        let t0 = Instant::now();
        let mut b = Backoff::new(S, 5 * S);
        let mut now = t0;
        let mut waits = Vec::new();
        for _ in 0..5 {
            b.defer(now);
            assert!(!b.ready(now));
            let wait = b.next.unwrap() - now;
            assert!(b.ready(now + wait));
            waits.push(wait.as_secs());
            now += wait;
        }
        assert_eq!(waits, vec![1, 2, 4, 5, 5]);
    }

    #[test]
    fn reset_starts_over_without_lifting_a_wait_in_force() {
        let t0 = Instant::now();
        let mut b = Backoff::new(S, 30 * S);
        b.defer(t0);
        b.defer(t0);
        assert_eq!(b.delay(), 4 * S);
        b.reset();
        assert_eq!(b.delay(), S);
        assert!(!b.ready(t0 + S));
        assert!(b.ready(t0 + 2 * S));
    }
}
