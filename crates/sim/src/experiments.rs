//! The experiments of the HyParView and Plumtree papers, as functions that
//! build a network in the simulator, run it, and return a report.
//!
//! - [`broadcast`]: reliability, relative message redundancy (RMR) and last
//!   delivery hop (LDH) of a stable overlay (Plumtree paper, section 5);
//! - [`failure`]: reliability of the first broadcast after a fraction of the
//!   nodes crash at once, time to heal, and reliability after healing
//!   (HyParView paper, section 5);
//! - [`size`]: the error of the gossip size estimate;
//! - [`catchup`]: nodes offline while messages are sent come back with
//!   their history and catch up by anti-entropy: the share of missed
//!   messages recovered, the time it takes, and the bytes it costs;
//! - [`stream`]: a steady stream of broadcasts from random origins, which
//!   overlap in flight as in a real chat or feed: delivery times, the share
//!   of full copies that were duplicates, and whether the eager graph stays
//!   one tree (Plumtree's tree under concurrent origins).
//!
//! Each report carries the invariant violations found on the way (an
//! asymmetric link, a view over capacity, an isolated node, a message
//! delivered twice); a correct run has none.

use std::time::{Duration, Instant};

use rand::seq::SliceRandom;
use rand::Rng;
use serde::Serialize;

use crate::sim::{Idx, SimConfig, Simulator, Violations};

/// Virtual time between two joins: 2,000 joins a second, a flash crowd that
/// the join protocol must absorb.
const JOIN_INTERVAL: Duration = Duration::from_micros(500);
/// Virtual time for the overlay to settle after the last join: one shuffle
/// period, by which the evictions of a flash crowd of joins (nodes short of
/// neighbours asking full ones with high priority) have died down.
const SETTLE: Duration = Duration::from_secs(30);
/// Virtual time a broadcast round is given (the slowest delivery at 100,000
/// nodes takes well under a second; grafts and IHAVE batches finish too).
const ROUND_TIME: Duration = Duration::from_secs(5);
/// Virtual time the first broadcast after a mass failure is given: the
/// overlay repairs and catches nodes up within it.
const FAILURE_ROUND_TIME: Duration = Duration::from_secs(10);
/// Virtual time a network runs before a mass failure: three shuffle periods,
/// so passive views are full and mixed, as in the paper's runs.
const WARM: Duration = Duration::from_secs(90);
/// How often the heal condition is checked.
const HEAL_STEP: Duration = Duration::from_millis(100);
/// Longest virtual time allowed for healing after a mass failure.
const HEAL_LIMIT: Duration = Duration::from_secs(600);
/// Payload size of simulated broadcasts.
const PAYLOAD: usize = 64;
/// Virtual time between two broadcasts while nodes are offline.
const CATCHUP_SEND_GAP: Duration = Duration::from_millis(100);
/// Longest virtual time allowed for the returning nodes to catch up: ten
/// anti-entropy periods.
const CATCHUP_LIMIT: Duration = Duration::from_secs(300);
/// Virtual time the overlay runs before a stream starts, after the build's
/// settling: two more shuffle periods. Right after the build, HyParView is
/// still replacing links (nodes evicted by the flash crowd, the first
/// shuffles): a hundred-node overlay changes a third of its links in the
/// next ten seconds. The stream measures the tree, not that settling.
const STREAM_STEADY: Duration = Duration::from_secs(60);
/// Virtual time a stream is given after its last broadcast: every delivery,
/// graft and lazy batch of the last messages is over well within it.
const STREAM_DRAIN: Duration = Duration::from_secs(5);
/// How often the eager graph is sampled during a stream: often enough to
/// catch a split that a graft repairs within a few hundred milliseconds.
const EAGER_SAMPLE: Duration = Duration::from_millis(100);
/// Start of a stream left out of the eager-graph samples: the first
/// messages flood and prune the all-eager start into a tree.
const STREAM_WARMUP: Duration = Duration::from_secs(2);

/// Who sends in a broadcast experiment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Senders {
    /// One node sends every round.
    Single,
    /// A random live node sends each round.
    Random,
    /// Every live node sends once each round, all at once.
    All,
}

impl std::str::FromStr for Senders {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "single" => Ok(Self::Single),
            "random" => Ok(Self::Random),
            "all" => Ok(Self::All),
            _ => Err(format!("unknown senders '{s}': use single, random or all")),
        }
    }
}

/// Counts of invariant violations, for reports.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct ViolationCounts {
    /// Links listed at one end only.
    pub asymmetric: usize,
    /// Views over capacity.
    pub over_capacity: usize,
    /// Live nodes with no neighbour listing them back.
    pub isolated: usize,
    /// Messages delivered twice at a node.
    pub duplicate_deliveries: usize,
}

impl ViolationCounts {
    fn add(&mut self, v: &Violations) {
        self.asymmetric += v.asymmetric.len();
        self.over_capacity += v.over_capacity.len();
        self.isolated += v.isolated.len();
        self.duplicate_deliveries += v.duplicate_deliveries.len();
    }

    /// Whether there were none.
    pub fn is_clean(&self) -> bool {
        self.asymmetric + self.over_capacity + self.isolated + self.duplicate_deliveries == 0
    }
}

/// Result of [`broadcast`].
#[derive(Debug, Clone, Serialize)]
pub struct BroadcastReport {
    /// Nodes in the network.
    pub nodes: usize,
    /// Who sent.
    pub senders: Senders,
    /// Rounds run.
    pub rounds: usize,
    /// Share of (message, live node) pairs delivered.
    pub delivery: f64,
    /// Relative message redundancy, averaged over rounds after the first.
    pub rmr: f64,
    /// Last delivery hop, averaged over rounds after the first.
    pub ldh: f64,
    /// (message, node) deliveries that never happened.
    pub missed: u64,
    /// Simulator events processed per wall-clock second.
    pub events_per_s: f64,
    /// Peak resident memory of the process.
    pub peak_rss_mb: f64,
    /// Wall-clock seconds of the whole run.
    pub wall_s: f64,
    /// The seed.
    pub seed: u64,
    /// Invariant violations found.
    pub violations: ViolationCounts,
}

/// Result of [`failure`].
#[derive(Debug, Clone, Serialize)]
pub struct FailureReport {
    /// Nodes before the failure.
    pub nodes: usize,
    /// Fraction crashed.
    pub fail: f64,
    /// Delivery ratio of the first broadcast after the crash.
    pub reliability_first: f64,
    /// Delivery ratio of a broadcast after the overlay healed.
    pub reliability_after_heal: f64,
    /// Virtual seconds until every survivor's active view was refilled and
    /// the survivors formed one component (-1 if never within the limit).
    pub heal_s: f64,
    /// Components of the survivors after healing.
    pub components_after_heal: usize,
    /// Survivors left isolated after healing.
    pub isolated_after_heal: usize,
    /// Wall-clock seconds.
    pub wall_s: f64,
    /// Peak resident memory of the process.
    pub peak_rss_mb: f64,
    /// The seed.
    pub seed: u64,
    /// Invariant violations found (before the failure and after healing).
    pub violations: ViolationCounts,
}

/// Result of [`size`].
#[derive(Debug, Clone, Serialize)]
pub struct SizeReport {
    /// Nodes in the network.
    pub nodes: usize,
    /// Mean of the nodes' estimates.
    pub estimate: f64,
    /// Relative error of the mean estimate.
    pub error: f64,
    /// Largest relative error of any single node's estimate.
    pub worst_node_error: f64,
    /// Wall-clock seconds.
    pub wall_s: f64,
    /// Peak resident memory of the process.
    pub peak_rss_mb: f64,
    /// The seed.
    pub seed: u64,
}

/// Result of [`catchup`].
#[derive(Debug, Clone, Serialize)]
pub struct CatchupReport {
    /// Nodes in the network.
    pub nodes: usize,
    /// Nodes taken offline.
    pub offline: usize,
    /// Messages broadcast while they were away.
    pub messages: usize,
    /// (offline node, message) pairs missed.
    pub missed: u64,
    /// Of those, delivered after the node came back.
    pub recovered: u64,
    /// `recovered / missed`.
    pub recovered_share: f64,
    /// Virtual seconds from the restart to the last recovery.
    pub recover_s: f64,
    /// Anti-entropy bytes sent network wide while the nodes caught up
    /// (background sessions of every node included).
    pub sync_bytes: u64,
    /// `sync_bytes / recovered`.
    pub bytes_per_recovered: f64,
    /// Messages the live nodes missed (0 in a correct run).
    pub live_missed: u64,
    /// Invariant violations (duplicate deliveries among them).
    pub violations: ViolationCounts,
    /// Wall-clock seconds.
    pub wall_s: f64,
    /// The seed.
    pub seed: u64,
}

/// The catch-up experiment: build a network with anti-entropy on, take a
/// fraction `offline` of the nodes offline (keeping their histories, as
/// their disks would), broadcast `messages` signed envelopes from random
/// live nodes, then restart the offline nodes (each joining through a
/// random live node) and run until every one holds every message.
pub fn catchup(
    mut config: SimConfig,
    nodes: usize,
    offline: f64,
    messages: usize,
    progress: Progress<'_>,
) -> CatchupReport {
    let started = Instant::now();
    let seed = config.seed;
    if config.proto.sync.is_none() {
        config.proto.sync = Some(gossipnet_proto::sync::Config::default());
    }
    let mut sim = Simulator::new(config);
    build(&mut sim, nodes, progress);
    let mut violations = ViolationCounts::default();

    let alive = sim.alive();
    let count = ((nodes as f64) * offline).round() as usize;
    let down: Vec<Idx> = alive
        .choose_multiple(sim.rng(), count.min(nodes - 1))
        .copied()
        .collect();
    for i in &down {
        sim.take_offline(*i);
    }
    // The overlay repairs around the departed before anything is sent, so
    // what the live nodes miss is not counted against catch-up.
    sim.run_for(SETTLE);
    progress(&format!("{} nodes offline", down.len()));
    let live = sim.alive();
    let tags: Vec<u64> = (0..messages)
        .map(|_| {
            let origin = *live.choose(sim.rng()).unwrap_or(&0);
            let tag = sim.broadcast_envelope(origin, PAYLOAD);
            sim.run_for(CATCHUP_SEND_GAP);
            tag
        })
        .collect();
    sim.run_for(ROUND_TIME);
    let holds = |sim: &Simulator, i: Idx, tag: u64| {
        sim.tracked(tag)
            .is_some_and(|t| t.origin == i || t.deliveries[i as usize] > 0)
    };
    let live_missed = live
        .iter()
        .map(|i| tags.iter().filter(|t| !holds(&sim, *i, **t)).count() as u64)
        .sum();
    progress(&format!(
        "{messages} messages sent; restarting the offline nodes"
    ));

    let missed = (down.len() * tags.len()) as u64;
    let bytes_before = sim.stats().sync_bytes;
    let restarted_at = sim.now();
    for i in &down {
        let contact = *live.choose(sim.rng()).unwrap_or(&0);
        sim.restart(*i, contact);
    }
    let all_back = |sim: &Simulator| down.iter().all(|i| tags.iter().all(|t| holds(sim, *i, *t)));
    sim.run_until_cond(HEAL_STEP, CATCHUP_LIMIT, all_back);
    let recover_s = (sim.now() - restarted_at).as_secs_f64();
    let sync_bytes = sim.stats().sync_bytes - bytes_before;
    let recovered = down
        .iter()
        .map(|i| tags.iter().filter(|t| holds(&sim, *i, **t)).count() as u64)
        .sum::<u64>();
    // A little longer, so a second delivery, if any, would be seen.
    sim.run_for(ROUND_TIME);
    violations.add(&sim.check_invariants());
    progress(&format!(
        "recovered {recovered}/{missed} in {recover_s:.1} s"
    ));
    CatchupReport {
        nodes,
        offline: down.len(),
        messages,
        missed,
        recovered,
        recovered_share: ratio(recovered, missed),
        recover_s,
        sync_bytes,
        bytes_per_recovered: sync_bytes as f64 / recovered.max(1) as f64,
        live_missed,
        violations,
        wall_s: started.elapsed().as_secs_f64(),
        seed,
    }
}

/// Result of [`stream`].
#[derive(Debug, Clone, Serialize)]
pub struct StreamReport {
    /// Nodes in the network.
    pub nodes: usize,
    /// Broadcasts per virtual second.
    pub rate: f64,
    /// Broadcasts sent.
    pub messages: usize,
    /// Share of (message, live node other than the origin) pairs delivered.
    pub delivery: f64,
    /// Median delivery time, broadcast to first delivery, over all
    /// deliveries (virtual milliseconds).
    pub p50_ms: f64,
    /// 99th percentile of the delivery times (virtual milliseconds).
    pub p99_ms: f64,
    /// Share of full copies sent that reached a node which already had the
    /// message.
    pub duplicates: f64,
    /// The same share, over the messages sent after the warm-up (the first
    /// two virtual seconds, in which the first messages flood).
    pub duplicates_after_warmup: f64,
    /// Relative message redundancy over the whole stream.
    pub rmr: f64,
    /// Most components of the eager graph in any sample after the warm-up,
    /// in the broadcast tree of the latest message's origin (1: its eager
    /// links are one connected graph).
    pub eager_components_max: usize,
    /// Grafts sent during the stream, network wide.
    pub grafts: u64,
    /// Wall-clock seconds.
    pub wall_s: f64,
    /// The seed.
    pub seed: u64,
    /// Invariant violations found (after the build and at the end).
    pub violations: ViolationCounts,
}

/// Progress callback: a short line for the user's terminal.
pub type Progress<'a> = &'a mut dyn FnMut(&str);

/// Builds a network of `n` nodes: node 0 starts alone and each next node
/// joins through a uniformly random earlier one, `JOIN_INTERVAL` apart; then
/// the overlay settles.
pub fn build(sim: &mut Simulator, n: usize, progress: Progress<'_>) {
    let first = sim.add_node();
    sim.start(first);
    let report_every = (n / 10).max(1);
    for k in 1..n {
        let i = sim.add_node();
        let contact = sim.rng().gen_range(0..k) as Idx;
        sim.join(i, contact, Duration::ZERO);
        sim.run_for(JOIN_INTERVAL);
        if k % report_every == 0 {
            progress(&format!("joined {k}/{n} nodes"));
        }
    }
    sim.run_for(SETTLE);
    progress(&format!("overlay of {n} nodes settled"));
}

/// Relative message redundancy of one message: payload sends per live
/// receiver, minus the one send each receiver needs.
fn rmr(payload_sends: u64, live: usize) -> f64 {
    if live <= 1 {
        return 0.0;
    }
    payload_sends as f64 / (live - 1) as f64 - 1.0
}

/// The broadcast experiment. See the module docs.
pub fn broadcast(
    config: SimConfig,
    nodes: usize,
    senders: Senders,
    rounds: usize,
    progress: Progress<'_>,
) -> BroadcastReport {
    let started = Instant::now();
    let seed = config.seed;
    let mut sim = Simulator::new(config);
    build(&mut sim, nodes, progress);
    let mut violations = ViolationCounts::default();
    violations.add(&sim.check_invariants());

    let alive = sim.alive();
    let single = *alive.choose(sim.rng()).unwrap_or(&0);
    let (mut expected, mut delivered) = (0u64, 0u64);
    let (mut rmr_sum, mut ldh_sum, mut measured) = (0.0, 0.0, 0usize);
    for round in 0..rounds {
        let alive = sim.alive();
        let origins: Vec<Idx> = match senders {
            Senders::Single => vec![single],
            Senders::Random => vec![*alive.choose(sim.rng()).unwrap_or(&0)],
            Senders::All => alive.clone(),
        };
        let tags: Vec<u64> = origins.iter().map(|o| sim.broadcast(*o, PAYLOAD)).collect();
        sim.run_for(ROUND_TIME);
        let (mut round_rmr, mut round_ldh) = (0.0, 0u16);
        for tag in &tags {
            let Some(t) = sim.untrack(*tag) else { continue };
            let receivers = alive.len().saturating_sub(1) as u64;
            let got = alive
                .iter()
                .filter(|i| **i != t.origin && t.deliveries[**i as usize] > 0)
                .count() as u64;
            expected += receivers;
            delivered += got;
            round_rmr += rmr(t.payload_sends, alive.len());
            round_ldh = round_ldh.max(t.hops.iter().copied().max().unwrap_or(0));
        }
        round_rmr /= tags.len().max(1) as f64;
        if round > 0 || rounds == 1 {
            rmr_sum += round_rmr;
            ldh_sum += f64::from(round_ldh);
            measured += 1;
        }
        progress(&format!(
            "round {}/{rounds}: rmr {round_rmr:.3}, ldh {round_ldh}",
            round + 1
        ));
    }
    violations.add(&sim.check_invariants());
    let wall = started.elapsed().as_secs_f64();
    BroadcastReport {
        nodes,
        senders,
        rounds,
        delivery: ratio(delivered, expected),
        rmr: rmr_sum / measured.max(1) as f64,
        ldh: ldh_sum / measured.max(1) as f64,
        missed: expected - delivered,
        events_per_s: sim.stats().events as f64 / wall.max(1e-9),
        peak_rss_mb: peak_rss_mb(),
        wall_s: wall,
        seed,
        violations,
    }
}

/// The streaming experiment: on a settled overlay, a random live node
/// broadcasts every `1 / rate` virtual seconds, `messages` times, so that
/// messages of many origins are in flight at once. See [`StreamReport`].
pub fn stream(
    config: SimConfig,
    nodes: usize,
    rate: f64,
    messages: usize,
    progress: Progress<'_>,
) -> StreamReport {
    let started = Instant::now();
    let seed = config.seed;
    let mut sim = Simulator::new(config);
    build(&mut sim, nodes, progress);
    sim.run_for(STREAM_STEADY);
    let mut violations = ViolationCounts::default();
    violations.add(&sim.check_invariants());
    let grafts_before = total_grafts(&sim);

    let interval = Duration::from_secs_f64(1.0 / rate.max(1e-6));
    let stream_start = sim.now();
    let mut next_sample = stream_start + STREAM_WARMUP;
    let mut eager_components_max = 0;
    let mut tags = Vec::with_capacity(messages);
    let report_every = (messages / 10).max(1);
    let total = interval * messages as u32 + STREAM_DRAIN;
    for k in 0..messages {
        let origin = *sim.alive().choose(sim.rng()).unwrap_or(&0);
        tags.push(sim.broadcast(origin, PAYLOAD));
        let until = stream_start + interval * (k as u32 + 1);
        while next_sample <= until {
            sim.run_until(next_sample);
            eager_components_max = eager_components_max.max(sim.eager_components(origin));
            next_sample += EAGER_SAMPLE;
        }
        sim.run_until(until);
        if (k + 1) % report_every == 0 {
            progress(&format!(
                "sent {}/{messages}; eager components at most {eager_components_max}",
                k + 1
            ));
        }
    }
    sim.run_until(stream_start + total);

    let alive = sim.alive();
    let (mut expected, mut delivered, mut sends) = (0u64, 0u64, 0u64);
    let (mut warm_delivered, mut warm_sends) = (0u64, 0u64);
    let warm_from = (stream_start + STREAM_WARMUP).as_micros() as u64;
    let mut delays = Vec::new();
    for tag in tags {
        let Some(t) = sim.untrack(tag) else { continue };
        expected += alive.iter().filter(|i| **i != t.origin).count() as u64;
        delivered += t.delivered;
        sends += t.payload_sends;
        if t.sent_at >= warm_from {
            warm_delivered += t.delivered;
            warm_sends += t.payload_sends;
        }
        delays.extend(t.delays_us);
    }
    delays.sort_unstable();
    let receivers = alive.len().saturating_sub(1) as f64 * messages as f64;
    violations.add(&sim.check_invariants());
    StreamReport {
        nodes,
        rate,
        messages,
        delivery: ratio(delivered, expected),
        p50_ms: percentile_ms(&delays, 0.50),
        p99_ms: percentile_ms(&delays, 0.99),
        duplicates: ratio(sends.saturating_sub(delivered), sends.max(1)),
        duplicates_after_warmup: ratio(
            warm_sends.saturating_sub(warm_delivered),
            warm_sends.max(1),
        ),
        rmr: if receivers > 0.0 {
            sends as f64 / receivers - 1.0
        } else {
            0.0
        },
        eager_components_max,
        grafts: total_grafts(&sim) - grafts_before,
        wall_s: started.elapsed().as_secs_f64(),
        seed,
        violations,
    }
}

fn total_grafts(sim: &Simulator) -> u64 {
    sim.alive()
        .iter()
        .filter_map(|i| sim.state(*i))
        .map(|s| s.broadcast().stats().grafts_sent)
        .sum()
}

/// The `q` quantile of sorted microsecond delays, in milliseconds.
fn percentile_ms(sorted_us: &[u64], q: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let rank = ((sorted_us.len() - 1) as f64 * q).round() as usize;
    sorted_us[rank.min(sorted_us.len() - 1)] as f64 / 1000.0
}

/// Whether every live node has an active view at its repair floor (full, or
/// one short: a node one short whose candidates are all full is settled) and
/// the live nodes form one component.
fn healed(sim: &Simulator, floor: usize) -> bool {
    let all_filled = sim.alive().iter().all(|i| {
        sim.state(*i)
            .is_some_and(|s| s.membership().active_view().len() >= floor)
    });
    all_filled && sim.components() == 1
}

/// The mass-failure experiment. See the module docs.
pub fn failure(
    config: SimConfig,
    nodes: usize,
    fail: f64,
    progress: Progress<'_>,
) -> FailureReport {
    let started = Instant::now();
    let seed = config.seed;
    let floor = config
        .proto
        .membership
        .active_view_capacity
        .saturating_sub(1)
        .max(1);
    let mut sim = Simulator::new(config);
    build(&mut sim, nodes, progress);
    sim.run_for(WARM);
    let passive: usize = sim
        .alive()
        .iter()
        .filter_map(|i| sim.state(*i))
        .map(|s| s.membership().passive_view().len())
        .sum();
    progress(&format!(
        "warmed up; mean passive view {:.1}",
        passive as f64 / nodes as f64
    ));
    let mut violations = ViolationCounts::default();
    violations.add(&sim.check_invariants());

    let mut order = sim.alive();
    order.shuffle(sim.rng());
    let crash_count = ((nodes as f64) * fail).round() as usize;
    for i in order.iter().take(crash_count) {
        sim.crash(*i);
    }
    let survivors = sim.alive();
    progress(&format!(
        "crashed {crash_count} of {nodes} nodes; {} survive",
        survivors.len()
    ));
    let crash_at = sim.now();

    let origin = *survivors.choose(sim.rng()).unwrap_or(&0);
    let tag = sim.broadcast(origin, PAYLOAD);
    // Watch for the heal while the first broadcast runs its course.
    let mut healed_at = None;
    loop {
        let since = sim.now() - crash_at;
        if healed_at.is_none() && healed(&sim, floor) {
            healed_at = Some(since);
        }
        if since >= HEAL_LIMIT || (since >= FAILURE_ROUND_TIME && healed_at.is_some()) {
            break;
        }
        sim.run_for(HEAL_STEP);
    }
    let reliability_first = delivery_ratio(&sim, tag, &survivors);
    progress(&format!(
        "first broadcast after the crash: {reliability_first:.4}"
    ));
    let heal_s = healed_at.map_or(-1.0, |d| d.as_secs_f64());
    progress(&format!("healed after {heal_s:.1} s (virtual)"));
    let survivors = sim.alive();
    let origin = *survivors.choose(sim.rng()).unwrap_or(&0);
    let tag = sim.broadcast(origin, PAYLOAD);
    sim.run_for(ROUND_TIME);
    let reliability_after_heal = delivery_ratio(&sim, tag, &survivors);
    let after = sim.check_invariants();
    violations.add(&after);
    FailureReport {
        nodes,
        fail,
        reliability_first,
        reliability_after_heal,
        heal_s,
        components_after_heal: sim.components(),
        isolated_after_heal: after.isolated.len(),
        wall_s: started.elapsed().as_secs_f64(),
        peak_rss_mb: peak_rss_mb(),
        seed,
        violations,
    }
}

/// The size-estimate experiment. See the module docs.
pub fn size(mut config: SimConfig, nodes: usize, progress: Progress<'_>) -> SizeReport {
    let started = Instant::now();
    let seed = config.seed;
    let size_config = config.proto.size.clone().unwrap_or_default();
    config.proto.size = Some(size_config.clone());
    let mut sim = Simulator::new(config);
    build(&mut sim, nodes, progress);
    // One whole epoch and most of the next: every node then reports a
    // finished epoch's sketch.
    let epoch = size_config.tick * size_config.epoch_ticks;
    sim.run_for(epoch + epoch / 2);
    let alive = sim.alive();
    let n = alive.len() as f64;
    let estimates: Vec<f64> = alive
        .iter()
        .filter_map(|i| sim.state(*i).and_then(|s| s.size_estimate()))
        .collect();
    let mean = estimates.iter().sum::<f64>() / estimates.len().max(1) as f64;
    let worst = estimates
        .iter()
        .map(|e| ((e - n) / n).abs())
        .fold(0.0, f64::max);
    progress(&format!("estimate {mean:.0} for {n} nodes"));
    SizeReport {
        nodes,
        estimate: mean,
        error: (mean - n) / n,
        worst_node_error: worst,
        wall_s: started.elapsed().as_secs_f64(),
        peak_rss_mb: peak_rss_mb(),
        seed,
    }
}

fn delivery_ratio(sim: &Simulator, tag: u64, live: &[Idx]) -> f64 {
    let Some(t) = sim.tracked(tag) else {
        return 0.0;
    };
    let receivers = live.iter().filter(|i| **i != t.origin).count() as u64;
    let got = live
        .iter()
        .filter(|i| **i != t.origin && sim.is_alive(**i) && t.deliveries[**i as usize] > 0)
        .count() as u64;
    ratio(got, receivers)
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        1.0
    } else {
        a as f64 / b as f64
    }
}

/// Peak resident set size of this process in MiB (VmHWM), or 0 where the
/// platform does not say.
pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}
