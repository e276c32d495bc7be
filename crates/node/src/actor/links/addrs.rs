//! Pruning the map of where peers listen. Records, seeds' samples and LAN
//! discovery keep adding to it, so without pruning it grows with every node
//! the network ever showed us. An address is needed while its peer is
//! linked, in either HyParView view, a seed, or being dialled; one that
//! stops being needed is kept for a grace period (so entries just taken
//! from the address book or a sample live long enough to be used), then
//! forgotten. A cap bounds the map even under a flood of records: past it,
//! the entries unneeded the longest go first.

use std::collections::HashMap;
use std::time::Duration;

use gossipnet_proto::NodeId;
use tokio::time::Instant;
use tracing::debug;

use crate::actor::Actor;

/// Most peers whose addresses are kept: far more than the views and links
/// of any node (tens), so only strangers are ever evicted, while a flood
/// of records costs at most a few hundred KiB.
pub(in crate::actor) const MAX_ADDRS: usize = 4096;

/// How long an address nobody needs is kept: long enough for a candidate
/// from the address book or a seed's sample to be dialled and joined,
/// short enough that strangers do not pile up.
pub(in crate::actor) const ADDR_GRACE: Duration = Duration::from_secs(600);

/// Since when each known peer's address has not been needed.
#[derive(Debug, Default)]
pub(in crate::actor) struct AddrAges {
    unneeded_since: HashMap<NodeId, Instant>,
}

impl AddrAges {
    /// Removes from `addrs` the entries unneeded for `grace` or more, and
    /// then the oldest unneeded ones while it holds more than `cap`.
    /// Returns the ids removed.
    pub(in crate::actor) fn prune<V>(
        &mut self,
        addrs: &mut HashMap<NodeId, V>,
        now: Instant,
        needed: impl Fn(&NodeId) -> bool,
        grace: Duration,
        cap: usize,
    ) -> Vec<NodeId> {
        self.unneeded_since.retain(|id, _| addrs.contains_key(id));
        let mut unneeded = Vec::new();
        for id in addrs.keys() {
            if needed(id) {
                self.unneeded_since.remove(id);
            } else {
                let since = *self.unneeded_since.entry(*id).or_insert(now);
                unneeded.push((since, *id));
            }
        }
        unneeded.sort_unstable();
        let over = addrs.len().saturating_sub(cap);
        let removed: Vec<NodeId> = unneeded
            .into_iter()
            .enumerate()
            .filter(|(i, (since, _))| *i < over || now.duration_since(*since) >= grace)
            .map(|(_, (_, id))| id)
            .collect();
        for id in &removed {
            addrs.remove(id);
            self.unneeded_since.remove(id);
        }
        removed
    }
}

impl Actor {
    /// Forgets the addresses of peers the node no longer needs (see the
    /// module docs). Run from housekeeping.
    pub(in crate::actor) fn prune_addrs(&mut self) {
        let membership = self.driver.state.membership();
        let (active, passive) = (membership.active_view(), membership.passive_view());
        let seeds: Vec<NodeId> = self.seeds.seeds().iter().filter_map(|s| s.id()).collect();
        let links = &self.links;
        let held = &self.dialer.held;
        let needed = |id: &NodeId| {
            links.contains(id)
                || active.contains(id)
                || passive.contains(id)
                || seeds.contains(id)
                || held.dialing(id)
        };
        let removed = self.addr_ages.prune(
            &mut self.dialer.addrs,
            Instant::now(),
            needed,
            ADDR_GRACE,
            MAX_ADDRS,
        );
        for id in &removed {
            self.dialer.forget_name(id);
        }
        if !removed.is_empty() {
            debug!(
                removed = removed.len(),
                kept = self.dialer.addrs.len(),
                "forgot addresses of peers no longer known"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> NodeId {
        NodeId::from_bytes([n; 32])
    }

    const GRACE: Duration = Duration::from_secs(10);

    #[test]
    fn unneeded_addresses_go_after_the_grace_and_needed_ones_stay() {
        let mut ages = AddrAges::default();
        let mut addrs: HashMap<NodeId, ()> = (1..=3).map(|n| (id(n), ())).collect();
        let t0 = Instant::now();
        let needed = |i: &NodeId| *i == id(1);
        assert!(ages.prune(&mut addrs, t0, needed, GRACE, 100).is_empty());
        // Needed again before the grace is out: its clock restarts.
        let t1 = t0 + GRACE / 2;
        let needed_2 = |i: &NodeId| *i == id(1) || *i == id(2);
        assert!(ages.prune(&mut addrs, t1, needed_2, GRACE, 100).is_empty());
        let t2 = t0 + GRACE;
        assert_eq!(ages.prune(&mut addrs, t2, needed, GRACE, 100), vec![id(3)]);
        assert!(addrs.contains_key(&id(1)) && addrs.contains_key(&id(2)));
        // Unneeded from t2 on: its grace runs from then.
        let t3 = t2 + GRACE;
        assert_eq!(ages.prune(&mut addrs, t3, needed, GRACE, 100), vec![id(2)]);
        assert_eq!(addrs.len(), 1);
        assert_eq!(ages.unneeded_since.len(), 0);
    }

    #[test]
    fn past_the_cap_the_longest_unneeded_go_first_and_needed_ones_never() {
        let mut ages = AddrAges::default();
        let mut addrs: HashMap<NodeId, ()> = HashMap::new();
        let t0 = Instant::now();
        let needed = |i: &NodeId| *i == id(0);
        addrs.insert(id(0), ());
        addrs.insert(id(1), ());
        ages.prune(&mut addrs, t0, needed, GRACE, 100);
        let t1 = t0 + Duration::from_secs(1);
        for n in 2..=5 {
            addrs.insert(id(n), ());
        }
        let removed = ages.prune(&mut addrs, t1, needed, GRACE, 3);
        assert_eq!(removed.len(), 3);
        assert!(removed.contains(&id(1)), "the oldest stranger goes first");
        assert!(addrs.contains_key(&id(0)), "a needed peer is never evicted");
        assert_eq!(addrs.len(), 3);
        assert!(ages.unneeded_since.len() <= addrs.len());
    }
}
