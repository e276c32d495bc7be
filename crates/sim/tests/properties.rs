//! Seeded simulations of whole networks running the real protocol core,
//! checked against the overlay's invariants and the broadcast's promises.
//!
//! A property test builds networks of random size under random latency and
//! checks that every live node delivers every broadcast exactly once, that
//! active views are symmetric and bounded, and, once the overlay has
//! settled, that no node is isolated and the overlay is one component; a
//! round that turns into a message storm fails at once instead of running
//! forever. Fixed scenarios then check that a run is a
//! pure function of its seed, and that the overlay heals after 30% of the
//! nodes crash, after graceful leaves, after a partition, and under message
//! loss. A failing proptest case prints its (seed, nodes, latency), which
//! replays it exactly.

use std::collections::BTreeSet;
use std::time::Duration;

use gossipnet_sim::experiments::{self, Senders};
use gossipnet_sim::sim::{Idx, Tracked};
use gossipnet_sim::{Latency, SimConfig, Simulator};
use proptest::prelude::*;
use proptest::test_runner::RngSeed;
use rand::seq::SliceRandom;
use rand::Rng;

/// Time a broadcast round is given: deliveries take well under a second,
/// grafts and lazy batches a little more.
const ROUND: Duration = Duration::from_secs(5);

/// Time after which a built overlay is steady: two shuffle periods, so every
/// passive view has been filled and mixed.
const SETTLED: Duration = Duration::from_secs(60);

/// Messages a node may send in one round, background traffic included: a
/// correct round needs a few dozen; a storm (say, duplicates re-forwarded)
/// passes this within a fraction of a second instead of running forever.
const MESSAGES_PER_NODE_PER_ROUND: u64 = 500;

/// Runs one broadcast round, failing at once on a message storm.
fn run_round(sim: &mut Simulator) {
    let budget = MESSAGES_PER_NODE_PER_ROUND * sim.len() as u64;
    let start = sim.stats().messages;
    let step = ms(100);
    let mut run = Duration::ZERO;
    while run < ROUND {
        sim.run_for(step);
        run += step;
        let sent = sim.stats().messages - start;
        assert!(sent <= budget, "message storm: {sent} messages in {run:?}");
    }
}

fn config(seed: u64, latency: Latency) -> SimConfig {
    SimConfig {
        seed,
        latency,
        ..SimConfig::default()
    }
}

fn network(config: SimConfig, nodes: usize) -> Simulator {
    let mut sim = Simulator::new(config);
    experiments::build(&mut sim, nodes, &mut |_| {});
    sim
}

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

/// Broadcasts one message from each of `count` random live nodes at once.
fn broadcast_from_random(sim: &mut Simulator, count: usize) -> Vec<u64> {
    let alive = sim.alive();
    (0..count)
        .map(|_| {
            let origin = *alive.choose(sim.rng()).unwrap();
            sim.broadcast(origin, 64)
        })
        .collect()
}

/// Nodes among `live` (other than the origin) that did not deliver the
/// message exactly once, with their delivery counts.
fn not_delivered_once(t: &Tracked, live: &[Idx]) -> Vec<(Idx, u8)> {
    live.iter()
        .filter(|i| **i != t.origin)
        .map(|i| (*i, t.deliveries[*i as usize]))
        .filter(|(_, n)| *n != 1)
        .collect()
}

/// Checks every tracked message reached every node of `live` exactly once.
fn check_delivery(sim: &Simulator, tags: &[u64], live: &[Idx]) -> Result<(), String> {
    for tag in tags {
        let t = sim.tracked(*tag).ok_or("untracked message")?;
        if t.deliveries[t.origin as usize] != 0 {
            return Err(format!("message {tag} delivered back to its origin"));
        }
        let bad = not_delivered_once(t, live);
        if !bad.is_empty() {
            return Err(format!(
                "message {tag} from {}: (node, deliveries) not once: {bad:?}",
                t.origin
            ));
        }
    }
    Ok(())
}

/// Whether every live node has at least `floor` neighbours and the live
/// nodes form one component.
fn healed(sim: &Simulator, floor: usize) -> bool {
    sim.alive().iter().all(|i| {
        sim.state(*i)
            .is_some_and(|s| s.membership().active_view().len() >= floor)
    }) && sim.components() == 1
}

/// The repair floor: every view within one of full (see
/// `hyparview::Config::high_priority_below`).
fn floor(sim_config: &SimConfig) -> usize {
    sim_config.proto.membership.active_view_capacity - 1
}

/// The seed of the property test's case generator (see `proptest!` below).
const CASE_SEED: u64 = 1;

fn latency() -> impl Strategy<Value = Latency> {
    prop_oneof![
        (1u64..100).prop_map(|v| Latency::Fixed(ms(v))),
        (1u64..50, 0u64..150).prop_map(|(lo, extra)| Latency::Range(ms(lo), ms(lo + extra))),
    ]
}

proptest! {
    // A fixed seed for the case generator: the suite checks the same 96
    // networks on every run, so it passes or fails on the code alone. To
    // explore new cases, change CASE_SEED for a run.
    #![proptest_config(ProptestConfig {
        cases: 96,
        max_shrink_iters: 32,
        rng_seed: RngSeed::Fixed(CASE_SEED),
        ..ProptestConfig::default()
    })]

    #[test]
    fn every_live_node_delivers_every_broadcast_exactly_once(
        seed in any::<u64>(),
        nodes in 10usize..120,
        latency in latency(),
    ) {
        let mut sim = network(config(seed, latency), nodes);
        // Right after the joins the overlay is still settling: passive
        // views fill only with the first shuffles, so a node with few
        // neighbours can be evicted and briefly left alone while it asks
        // again. Broadcasts must still reach everyone exactly once, over
        // symmetric, bounded views.
        let first = broadcast_from_random(&mut sim, 3);
        run_round(&mut sim);
        let live = sim.alive();
        prop_assert_eq!(live.len(), nodes);
        if let Err(e) = check_delivery(&sim, &first, &live) {
            return Err(TestCaseError::fail(e));
        }
        let v = sim.check_invariants();
        prop_assert!(
            v.asymmetric.is_empty()
                && v.over_capacity.is_empty()
                && v.duplicate_deliveries.is_empty(),
            "invariants while settling: {:?}",
            v
        );
        // Two shuffle periods on, the overlay is steady: no node alone, one
        // component, and a second wave crosses the tree the first pruned.
        sim.run_for(SETTLED);
        let more = broadcast_from_random(&mut sim, 2);
        run_round(&mut sim);
        let all: Vec<u64> = first.into_iter().chain(more).collect();
        if let Err(e) = check_delivery(&sim, &all, &live) {
            return Err(TestCaseError::fail(e));
        }
        let v = sim.check_invariants();
        prop_assert!(v.is_empty(), "invariants: {:?}", v);
        prop_assert_eq!(sim.components(), 1);
    }
}

/// Everything observable about a run, for comparing two runs.
#[derive(Debug, PartialEq)]
struct Fingerprint {
    events: u64,
    messages: u64,
    dropped: u64,
    /// (deliveries, hops) per node of each tracked message.
    deliveries: Vec<(u8, u16)>,
    /// Active then passive view of each node.
    views: Vec<Vec<[u8; 32]>>,
}

fn fingerprint(seed: u64) -> Fingerprint {
    let mut sim = network(config(seed, Latency::Range(ms(5), ms(80))), 60);
    let tags = broadcast_from_random(&mut sim, 3);
    let victims: Vec<Idx> = (0..6).map(|_| sim.rng().gen_range(0..60)).collect();
    for v in victims {
        sim.crash(v);
    }
    run_round(&mut sim);
    let more = broadcast_from_random(&mut sim, 2);
    run_round(&mut sim);
    let stats = sim.stats();
    let deliveries = tags
        .iter()
        .chain(&more)
        .flat_map(|t| {
            let t = sim.tracked(*t).unwrap();
            t.deliveries.iter().copied().zip(t.hops.iter().copied())
        })
        .collect();
    let views = (0..sim.len() as Idx)
        .map(|i| {
            sim.state(i)
                .map(|s| {
                    s.membership()
                        .active_view()
                        .iter()
                        .chain(s.membership().passive_view())
                        .map(|p| *p.as_bytes())
                        .collect()
                })
                .unwrap_or_default()
        })
        .collect();
    Fingerprint {
        events: stats.events,
        messages: stats.messages,
        dropped: stats.dropped,
        deliveries,
        views,
    }
}

#[test]
fn a_seed_replays_the_same_run() {
    let a = fingerprint(11);
    let b = fingerprint(11);
    assert!(a == b, "two runs of seed 11 differ");
    // The comparison can tell runs apart.
    assert!(fingerprint(12) != a, "seeds 11 and 12 gave identical runs");
}

#[test]
fn overlay_heals_after_thirty_percent_crash() {
    for seed in [1, 2, 3] {
        let cfg = config(seed, Latency::Range(ms(10), ms(50)));
        let floor = floor(&cfg);
        let mut sim = network(cfg, 150);
        // Three shuffle periods, so passive views are full and mixed.
        sim.run_for(Duration::from_secs(90));
        let mut order = sim.alive();
        order.shuffle(sim.rng());
        for i in order.iter().take(45) {
            sim.crash(*i);
        }
        let survivors = sim.alive();
        assert_eq!(survivors.len(), 105);
        let ok = sim.run_until_cond(ms(100), Duration::from_secs(120), |s| healed(s, floor));
        assert!(ok, "seed {seed}: not healed within 120 s");
        assert_eq!(sim.components(), 1, "seed {seed}");
        let tags = broadcast_from_random(&mut sim, 3);
        run_round(&mut sim);
        check_delivery(&sim, &tags, &survivors).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        let v = sim.check_invariants();
        assert!(v.is_empty(), "seed {seed}: {v:?}");
    }
}

#[test]
fn first_broadcast_after_a_crash_reaches_nearly_everyone() {
    // The paper's headline: with 30% of nodes gone at once, the first
    // broadcast still reaches almost every survivor, because repair and the
    // catch-up IHAVE to new neighbours run while it spreads.
    let report = experiments::failure(
        config(5, SimConfig::default().latency),
        300,
        0.3,
        &mut |_| {},
    );
    assert!(
        report.reliability_first >= 0.99,
        "reliability {}",
        report.reliability_first
    );
    assert!(report.heal_s >= 0.0, "never healed");
    assert_eq!(report.reliability_after_heal, 1.0);
    assert_eq!(report.components_after_heal, 1);
    assert_eq!(report.isolated_after_heal, 0);
    assert!(report.violations.is_clean(), "{:?}", report.violations);
}

#[test]
fn graceful_leaves_are_repaired_at_once() {
    let cfg = config(21, Latency::Range(ms(10), ms(50)));
    let floor = floor(&cfg);
    let mut sim = network(cfg, 80);
    sim.run_for(Duration::from_secs(60));
    let mut order = sim.alive();
    order.shuffle(sim.rng());
    for leaver in order.iter().take(8).copied() {
        let id = sim.id(leaver);
        let neighbours = sim
            .state(leaver)
            .unwrap()
            .membership()
            .active_view()
            .to_vec();
        sim.leave(leaver);
        assert!(!sim.is_alive(leaver));
        // One link latency later every neighbour has dropped it, and
        // forgotten it rather than keeping it as a passive peer.
        sim.run_for(ms(60));
        for n in neighbours {
            let n = sim.index_of(&n).unwrap();
            let Some(s) = sim.state(n) else { continue };
            assert!(
                !s.membership().active_view().contains(&id),
                "{n} kept {leaver}"
            );
            assert!(
                !s.membership().passive_view().contains(&id),
                "{n} kept {leaver} as passive"
            );
        }
    }
    let ok = sim.run_until_cond(ms(100), Duration::from_secs(30), |s| healed(s, floor));
    assert!(ok, "views not refilled after the leaves");
    let live = sim.alive();
    let tags = broadcast_from_random(&mut sim, 3);
    run_round(&mut sim);
    check_delivery(&sim, &tags, &live).unwrap();
    let v = sim.check_invariants();
    assert!(v.is_empty(), "{v:?}");
}

#[test]
fn broadcast_experiment_reports_a_tree() {
    let report = experiments::broadcast(
        config(3, SimConfig::default().latency),
        200,
        Senders::Single,
        4,
        &mut |_| {},
    );
    assert_eq!(report.delivery, 1.0);
    assert_eq!(report.missed, 0);
    // After the first round prunes the flood, the tree carries each message
    // about once per node.
    assert!(report.rmr < 1.0, "rmr {}", report.rmr);
    assert!(report.ldh >= 2.0, "ldh {}", report.ldh);
    assert!(report.violations.is_clean(), "{:?}", report.violations);
    // A single round is all flood: every link carries the message, so the
    // redundancy is well above zero.
    let flood = experiments::broadcast(
        config(3, SimConfig::default().latency),
        200,
        Senders::Single,
        1,
        &mut |_| {},
    );
    assert!(flood.rmr > 1.0, "rmr of a flood {}", flood.rmr);
}

/// The live nodes linked to `start` over symmetric active-view links.
fn component_of(sim: &Simulator, start: Idx) -> BTreeSet<Idx> {
    let mut seen = BTreeSet::from([start]);
    let mut stack = vec![start];
    while let Some(i) = stack.pop() {
        let Some(s) = sim.state(i) else { continue };
        for peer in s.membership().active_view() {
            let Some(p) = sim.index_of(peer) else {
                continue;
            };
            let back = sim
                .state(p)
                .is_some_and(|ps| ps.membership().active_view().contains(&sim.id(i)));
            if back && seen.insert(p) {
                stack.push(p);
            }
        }
    }
    seen
}

#[test]
fn each_side_of_a_partition_repairs_and_heals_into_one_overlay() {
    for seed in [1, 2, 3] {
        let mut sim = network(config(seed, Latency::Range(ms(10), ms(50))), 100);
        sim.run_for(Duration::from_secs(60));
        let side = |i: Idx| (i % 2) as u16;
        sim.partition(side);
        // Past the liveness timeout: every cut link is found dead and
        // replaced from the passive view within each side.
        sim.run_for(Duration::from_secs(60));
        assert_eq!(sim.components(), 2, "seed {seed}");
        let v = sim.check_invariants();
        assert!(v.is_empty(), "seed {seed}, partitioned: {v:?}");
        let even: Vec<Idx> = sim.alive().into_iter().filter(|i| side(*i) == 0).collect();
        let tag = sim.broadcast(0, 64);
        run_round(&mut sim);
        check_delivery(&sim, &[tag], &even).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        let t = sim.tracked(tag).unwrap();
        assert!(
            (1..100).step_by(2).all(|i| t.deliveries[i] == 0),
            "seed {seed}: crossed the partition"
        );

        sim.heal_partition();
        sim.run_for(Duration::from_secs(60));
        let v = sim.check_invariants();
        assert!(v.is_empty(), "seed {seed}, healed: {v:?}");
        // Repair reaches across only through passive peers from before the
        // split; those the split outlasted are gone, and with them any path
        // back. A contact from outside the overlay (a seed, the address
        // book) then joins the halves, modelled here by one join.
        if sim.components() > 1 {
            sim.join(1, 0, Duration::ZERO);
            sim.run_for(Duration::from_secs(10));
        }
        assert_eq!(sim.components(), 1, "seed {seed}");
        let live = sim.alive();
        let tags = broadcast_from_random(&mut sim, 3);
        run_round(&mut sim);
        check_delivery(&sim, &tags, &live).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        let v = sim.check_invariants();
        assert!(v.is_empty(), "seed {seed}, rejoined: {v:?}");
    }
}

#[test]
fn links_dropped_at_one_end_during_a_partition_are_dropped_at_both_after_it() {
    // A partition about as long as the liveness timeout: some links are
    // declared dead at one end only before it heals. The other end's pings
    // must not keep its half of the link alive.
    for seed in [1, 2, 3, 4, 5] {
        let mut sim = network(config(seed, Latency::Range(ms(10), ms(50))), 100);
        sim.run_for(Duration::from_secs(60));
        sim.partition(|i| (i % 2) as u16);
        sim.run_for(Duration::from_secs(20));
        sim.heal_partition();
        sim.run_for(Duration::from_secs(60));
        let v = sim.check_invariants();
        assert!(v.is_empty(), "seed {seed}: {v:?}");
        assert_eq!(sim.components(), 1, "seed {seed}");
        let live = sim.alive();
        let tags = broadcast_from_random(&mut sim, 3);
        run_round(&mut sim);
        check_delivery(&sim, &tags, &live).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    }
}

#[test]
fn under_message_loss_the_overlay_still_delivers_exactly_once() {
    // Loss drops any message, membership ones included. What holds by
    // design: no message is ever delivered twice, and lazy repair (IHAVE,
    // then GRAFT to the next announcer) gets every message to every node
    // linked to its origin. A lost JOIN is never retried by the protocol
    // (the runtime re-joins through its seeds), so a node may be left
    // outside the overlay; such a node knows no peer at all.
    let (mut nodes_total, mut outside_total) = (0, 0);
    for seed in 1..=6 {
        let cfg = SimConfig {
            loss: 0.01,
            ..config(seed, Latency::Range(ms(10), ms(50)))
        };
        let mut sim = network(cfg, 100);
        sim.run_for(Duration::from_secs(60));
        let mut tags = Vec::new();
        for _ in 0..8 {
            tags.extend(broadcast_from_random(&mut sim, 1));
            sim.run_for(Duration::from_secs(2));
        }
        run_round(&mut sim);
        let v = sim.check_invariants();
        assert!(v.duplicate_deliveries.is_empty(), "seed {seed}: {v:?}");
        assert!(v.over_capacity.is_empty(), "seed {seed}: {v:?}");
        for tag in &tags {
            let t = sim.tracked(*tag).unwrap();
            let reach: Vec<Idx> = component_of(&sim, t.origin).into_iter().collect();
            check_delivery(&sim, &[*tag], &reach).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        }
        let main = sim
            .alive()
            .into_iter()
            .map(|i| component_of(&sim, i))
            .max_by_key(BTreeSet::len)
            .unwrap();
        for i in sim.alive().into_iter().filter(|i| !main.contains(i)) {
            let m = sim.state(i).unwrap().membership();
            assert!(
                m.passive_view().is_empty() && m.active_view().len() <= 1,
                "seed {seed}: node {i} knows peers but is outside the overlay"
            );
        }
        nodes_total += sim.alive().len();
        outside_total += sim.alive().len() - main.len();
    }
    assert!(
        outside_total * 50 <= nodes_total,
        "{outside_total} of {nodes_total} nodes outside the overlay"
    );
}

#[test]
fn a_stream_from_many_origins_keeps_its_broadcast_trees() {
    // Messages of many origins in flight at once. With one tree for all
    // origins, each crossing of a cycle pruned a different edge of it, and
    // 42% of full copies were duplicates from the first second to the
    // last; with a tree per origin they fall to about 1% once every
    // origin's first messages have shaped its tree.
    let r = experiments::stream(
        config(1, Latency::Range(ms(10), ms(50))),
        100,
        50.0,
        400,
        &mut |_| {},
    );
    assert_eq!(r.delivery, 1.0, "{r:?}");
    assert!(
        r.duplicates_after_warmup < 0.05,
        "duplicates after the warm-up {}",
        r.duplicates_after_warmup
    );
    assert!(r.violations.is_clean(), "{:?}", r.violations);
}
