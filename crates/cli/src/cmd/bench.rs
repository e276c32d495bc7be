//! `gossipnet bench`: the broadcast benchmark of docs/PERFORMANCE.md, run
//! as the shared contract (gossip-bench v1) lays it out.
//!
//! N real nodes live in this one process on one multi-thread runtime, each
//! with its own listener on 127.0.0.1, Noise-encrypted TCP links and signed
//! envelopes, exactly as `gossipnet node` runs them; only LAN discovery and
//! the data directory are left out. Node i joins through min(3, i) random
//! earlier nodes and the protocol does the rest during the warm-up. Then M
//! messages are published at a fixed rate from random live nodes, and one
//! subscriber per node reports each first receipt, with the time it saw
//! it, over a bounded channel to a collector. The run ends when every live
//! node but the origin has every message, or at the timeout.
//!
//! The figures are one JSON line on standard output; everything else (the
//! phases, counts, hints) goes to standard error.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use clap::Args;
use gossipnet_node::{Events, EventsError, Node, NodeEvent, PerClass};
use gossipnet_proto::envelope::{Kind, MAX_BODY_BYTES};
use gossipnet_proto::{MessageId, SecretKey};
use nix::sys::resource::{getrusage, UsageWho};
use nix::sys::time::TimeValLike;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

/// The kind every benchmark message carries, so that nothing else a node
/// might deliver is counted.
const BENCH_KIND: Kind = Kind::Custom(1);
/// Bootstrap peers per joining node, fixed by the contract.
const JOIN_PEERS: usize = 3;
/// Depth of the channel from the subscribers to the collector: a few
/// seconds of deliveries at the rates we run, so a subscriber rarely waits
/// (and, waiting, falls behind on its node's event buffer).
const RECORD_QUEUE: usize = 64 * 1024;
/// How often a progress line is printed while publishing and draining.
const PROGRESS: Duration = Duration::from_secs(1);
/// The schedule counts as kept if publishing ends no later than this after
/// its last due time.
const SCHEDULE_SLACK: Duration = Duration::from_millis(100);

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, disable_help_subcommand = true)]
pub struct BenchArgs {
    #[command(subcommand)]
    command: Option<super::bench_link::BenchCommand>,
    /// Nodes in this process.
    #[arg(long, default_value_t = 100)]
    nodes: usize,
    /// Seconds for the overlay to settle before anything is measured.
    #[arg(long, default_value_t = 5.0)]
    warmup_s: f64,
    /// Messages to publish.
    #[arg(long, default_value_t = 1000)]
    messages: usize,
    /// Payload bytes per message.
    #[arg(long, default_value_t = 256)]
    size: usize,
    /// Messages published per second.
    #[arg(long, default_value_t = 500.0)]
    rate: f64,
    /// Seed of the joining, churn, origin and key choices.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Seconds to wait for deliveries after the last publish.
    #[arg(long, default_value_t = 10.0)]
    timeout_s: f64,
    /// Fraction of the nodes (0 to <1) crashed right after the warm-up.
    #[arg(long, default_value_t = 0.0)]
    kill_fraction: f64,
    /// Seconds between the crashes and the first publish.
    #[arg(long, default_value_t = 0.0)]
    heal_s: f64,
}

impl BenchArgs {
    /// Checks the flags, and returns how many nodes are crashed.
    fn check(&self) -> Result<usize> {
        if self.nodes < 2 {
            bail!("--nodes must be at least 2: a broadcast needs someone to hear it");
        }
        if self.messages == 0 {
            bail!("--messages must be at least 1");
        }
        if self.size == 0 || self.size > MAX_BODY_BYTES {
            bail!("--size must be from 1 to {MAX_BODY_BYTES} bytes (the largest message body)");
        }
        if !(self.rate.is_finite() && self.rate > 0.0) {
            bail!("--rate must be a number of messages per second above 0");
        }
        if !(0.0..1.0).contains(&self.kill_fraction) {
            bail!("--kill-fraction must be at least 0 and below 1");
        }
        for (flag, secs) in [
            ("--warmup-s", self.warmup_s),
            ("--timeout-s", self.timeout_s),
            ("--heal-s", self.heal_s),
        ] {
            if !(secs.is_finite() && secs >= 0.0) {
                bail!("{flag} must be a number of seconds, 0 or more");
            }
        }
        let killed = (self.kill_fraction * self.nodes as f64).round() as usize;
        if self.nodes - killed < 2 {
            bail!(
                "--kill-fraction {} leaves fewer than 2 of {} nodes; lower it or add nodes",
                self.kill_fraction,
                self.nodes
            );
        }
        Ok(killed)
    }
}

/// The figures, in the contract's order.
#[derive(Debug, Serialize)]
struct Figures {
    #[serde(rename = "impl")]
    implementation: &'static str,
    nodes: usize,
    messages: usize,
    size: usize,
    rate: f64,
    kill_fraction: f64,
    heal_s: f64,
    expected: u64,
    delivered: u64,
    delivery_ratio: f64,
    latency_ms: Latency,
    lo_tx_bytes: Option<u64>,
    amplification: Option<f64>,
    cpu_s: f64,
    cpu_us_per_delivery: Option<f64>,
    rss_mb: f64,
    setup_rss_kb_per_node: f64,
}

/// Percentiles of the delivery latency (None when nothing was delivered).
#[derive(Debug, Serialize)]
struct Latency {
    p50: Option<f64>,
    p90: Option<f64>,
    p99: Option<f64>,
    max: Option<f64>,
}

/// What the collector hears.
#[derive(Debug)]
enum Record {
    /// A message was handed to its origin at `at`.
    Published { id: MessageId, at: Instant },
    /// Node `node` delivered message `id` at `at`.
    Received {
        node: usize,
        id: MessageId,
        at: Instant,
    },
}

/// What the collector hands back at the end.
#[derive(Debug, Default)]
struct Collected {
    published: HashMap<MessageId, Instant>,
    /// First receipts at live nodes, in arrival order.
    received: Vec<(MessageId, Instant)>,
}

pub fn run(args: BenchArgs) -> Result<()> {
    if let Some(command) = args.command {
        return super::bench_link::run(command);
    }
    let killed = args.check()?;
    // Every node holds a listener and two sockets per link in this one
    // process, which can pass the usual soft limit of 1024 descriptors.
    crate::util::raise_fd_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let figures = runtime.block_on(bench(&args, killed));
    // The nodes are not asked to leave: the process is about to end, and
    // a hundred goodbyes would only delay it.
    runtime.shutdown_background();
    let figures = figures?;
    println!(
        "{}",
        serde_json::to_string(&figures).context("cannot encode the figures")?
    );
    Ok(())
}

macro_rules! progress {
    ($($arg:tt)*) => { eprintln!("bench: {}", format_args!($($arg)*)) };
}

async fn bench(args: &BenchArgs, killed: usize) -> Result<Figures> {
    let n = args.nodes;
    let mut rng = StdRng::seed_from_u64(args.seed);
    let lo_hint = lo_hint();
    let rss_before = proc_status_kb("VmRSS")?;

    progress!("starting {n} nodes");
    let start = Instant::now();
    let mut nodes: Vec<Node> = Vec::with_capacity(n);
    for i in 0..n {
        let peers = rand::seq::index::sample(&mut rng, i, i.min(JOIN_PEERS))
            .into_iter()
            .map(|j| nodes[j].local_addr().to_string());
        let node = Node::builder()
            .secret(SecretKey::generate(&mut rng))
            .listen(SocketAddr::from(([127, 0, 0, 1], 0)))
            .discovery(false)
            .peers(peers.collect::<Vec<_>>())
            .spawn()
            .await
            .with_context(|| format!("cannot start node {i}"))?;
        nodes.push(node);
    }

    let (record_tx, record_rx) = mpsc::channel(RECORD_QUEUE);
    let lagged = Arc::new(AtomicU64::new(0));
    for (i, node) in nodes.iter().enumerate() {
        tokio::spawn(subscriber(
            i,
            node.subscribe(),
            record_tx.clone(),
            lagged.clone(),
        ));
    }
    progress!(
        "{n} nodes up in {:.1} s; warming up for {} s",
        start.elapsed().as_secs_f64(),
        args.warmup_s
    );
    tokio::time::sleep(Duration::from_secs_f64(args.warmup_s)).await;
    let sent_at_warmup = report_overlay(&nodes, "after warm-up").await;
    let rss_after = proc_status_kb("VmRSS")?;

    let mut live = vec![true; n];
    if killed > 0 {
        let victims = rand::seq::index::sample(&mut rng, n, killed).into_vec();
        progress!("crashing {killed} nodes; healing for {} s", args.heal_s);
        futures_util::future::join_all(victims.iter().map(|&v| nodes[v].crash())).await;
        for v in victims {
            live[v] = false;
        }
        tokio::time::sleep(Duration::from_secs_f64(args.heal_s)).await;
        report_overlay(&nodes, "after healing").await;
    }
    let live_nodes: Vec<usize> = (0..n).filter(|&i| live[i]).collect();
    let expected = (args.messages * (live_nodes.len() - 1)) as u64;

    // The measured phase: publish, then drain.
    let (delivered_tx, mut delivered_rx) = watch::channel(0u64);
    let (finish_tx, finish_rx) = oneshot::channel();
    let collector = tokio::spawn(collect(record_rx, live.clone(), delivered_tx, finish_rx));
    let published = Arc::new(AtomicU64::new(0));
    let progress = tokio::spawn(report_progress(
        published.clone(),
        delivered_rx.clone(),
        args.messages,
        expected,
    ));
    progress!(
        "publishing {} messages of {} bytes at {}/s from {} live nodes",
        args.messages,
        args.size,
        args.rate,
        live_nodes.len()
    );
    let lo_before = lo_tx_bytes();
    let cpu_before = cpu_seconds()?;
    let t0 = Instant::now();
    for k in 0..args.messages {
        let due = t0 + Duration::from_secs_f64(k as f64 / args.rate);
        tokio::time::sleep_until(due).await;
        let origin = live_nodes[rng.gen_range(0..live_nodes.len())];
        let body = body(k, args.size);
        let at = Instant::now();
        let id = nodes[origin]
            .broadcast(BENCH_KIND, body)
            .await
            .with_context(|| format!("node {origin} could not broadcast message {k}"))?;
        if record_tx.send(Record::Published { id, at }).await.is_err() {
            bail!("the collector stopped");
        }
        published.fetch_add(1, Ordering::Relaxed);
    }
    let last_publish = Instant::now();
    let deadline = last_publish + Duration::from_secs_f64(args.timeout_s);
    let complete = tokio::time::timeout_at(deadline, delivered_rx.wait_for(|d| *d >= expected))
        .await
        .is_ok();
    let end = Instant::now();
    let cpu_s = cpu_seconds()? - cpu_before;
    let lo_after = lo_tx_bytes();
    progress.abort();

    let _ = finish_tx.send(end);
    let collected = collector.await.context("the collector failed")?;
    let publish_s = (last_publish - t0).as_secs_f64();
    let planned = Duration::from_secs_f64((args.messages - 1) as f64 / args.rate);
    if last_publish - t0 > planned + SCHEDULE_SLACK {
        progress!(
            "publishing fell behind: {} messages took {publish_s:.2} s ({:.0}/s, not {}/s)",
            args.messages,
            args.messages as f64 / publish_s,
            args.rate
        );
    }
    let delivered = collected.received.len() as u64;
    progress!(
        "{}: {delivered} of {expected} deliveries, {:.2} s after the last publish",
        if complete { "complete" } else { "timed out" },
        (end - last_publish).as_secs_f64()
    );
    let lost = lagged.load(Ordering::Relaxed);
    if lost > 0 {
        progress!("subscribers lagged and missed {lost} events: those deliveries are not counted");
    }
    let sent_at_end = report_overlay(&nodes, "at the end").await;
    report_bytes(&sent_at_warmup, &sent_at_end);
    if let Some(hint) = lo_hint {
        progress!("{hint}");
    }

    let mut latencies: Vec<f64> = collected
        .received
        .iter()
        .filter_map(|(id, at)| {
            let sent = collected.published.get(id)?;
            Some(at.saturating_duration_since(*sent).as_secs_f64() * 1e3)
        })
        .collect();
    latencies.sort_by(f64::total_cmp);
    let lo_tx_bytes = match (lo_before, lo_after) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a)),
        _ => None,
    };
    let payload = (expected * args.size as u64) as f64;
    let hwm_kb = proc_status_kb("VmHWM")?;
    Ok(Figures {
        implementation: "gossipnet",
        nodes: n,
        messages: args.messages,
        size: args.size,
        rate: args.rate,
        kill_fraction: args.kill_fraction,
        heal_s: args.heal_s,
        expected,
        delivered,
        delivery_ratio: delivered as f64 / expected as f64,
        latency_ms: Latency {
            p50: percentile(&latencies, 0.50),
            p90: percentile(&latencies, 0.90),
            p99: percentile(&latencies, 0.99),
            max: latencies.last().copied().map(round3),
        },
        lo_tx_bytes,
        amplification: lo_tx_bytes.map(|b| round3(b as f64 / payload)),
        cpu_s: round3(cpu_s),
        cpu_us_per_delivery: (delivered > 0).then(|| round3(cpu_s * 1e6 / delivered as f64)),
        rss_mb: round3(hwm_kb as f64 / 1024.0),
        setup_rss_kb_per_node: round3(rss_after.saturating_sub(rss_before) as f64 / n as f64),
    })
}

/// A body of `size` bytes that starts with the message's number, so no two
/// are alike.
fn body(k: usize, size: usize) -> Bytes {
    let mut body = vec![0u8; size];
    let tag = (k as u64).to_be_bytes();
    let len = tag.len().min(size);
    body[..len].copy_from_slice(&tag[..len]);
    Bytes::from(body)
}

/// Forwards node `node`'s deliveries of benchmark messages to the
/// collector, stamped with the time it saw them.
async fn subscriber(
    node: usize,
    mut events: Events,
    tx: mpsc::Sender<Record>,
    lagged: Arc<AtomicU64>,
) {
    loop {
        match events.recv().await {
            Ok(NodeEvent::Message(m)) if m.kind == BENCH_KIND && !m.own => {
                let at = Instant::now();
                let record = Record::Received { node, id: m.id, at };
                if tx.send(record).await.is_err() {
                    return;
                }
            }
            Ok(_) => {}
            Err(EventsError::Lagged(n)) => {
                lagged.fetch_add(n, Ordering::Relaxed);
            }
            Err(EventsError::Closed) => return,
        }
    }
}

/// Keeps the publishes and the first receipt of each message at each live
/// node, counting the latter on `delivered`, until told the measured phase
/// ended; records still queued then count if they came before the end.
async fn collect(
    mut rx: mpsc::Receiver<Record>,
    live: Vec<bool>,
    delivered: watch::Sender<u64>,
    mut finish: oneshot::Receiver<Instant>,
) -> Collected {
    let mut out = Collected::default();
    let mut seen: HashSet<(usize, MessageId)> = HashSet::new();
    let mut keep = |record: Record, out: &mut Collected| match record {
        Record::Published { id, at } => {
            out.published.insert(id, at);
        }
        Record::Received { node, id, at } => {
            if live[node] && seen.insert((node, id)) {
                out.received.push((id, at));
                delivered.send_modify(|d| *d += 1);
            }
        }
    };
    let end = loop {
        tokio::select! {
            biased;
            end = &mut finish => break end.ok(),
            record = rx.recv() => match record {
                Some(record) => keep(record, &mut out),
                None => break None,
            },
        }
    };
    while let Ok(record) = rx.try_recv() {
        let in_time = match (&record, end) {
            (Record::Received { at, .. }, Some(end)) => *at <= end,
            _ => true,
        };
        if in_time {
            keep(record, &mut out);
        }
    }
    out
}

/// Prints how far publishing and delivery have got, once a second.
async fn report_progress(
    published: Arc<AtomicU64>,
    delivered: watch::Receiver<u64>,
    messages: usize,
    expected: u64,
) {
    let mut tick = tokio::time::interval(PROGRESS);
    tick.tick().await;
    loop {
        tick.tick().await;
        progress!(
            "published {}/{messages}, delivered {}/{expected}",
            published.load(Ordering::Relaxed),
            *delivered.borrow()
        );
    }
}

/// Prints the shape of the overlay (active-view sizes over running nodes)
/// and the protocol's broadcast counters summed over them; returns the
/// bytes they have sent, by class of message.
async fn report_overlay(nodes: &[Node], when: &str) -> PerClass {
    let mut sizes = Vec::new();
    let (mut forwarded, mut duplicates) = (0, 0);
    let mut bytes = PerClass::default();
    for node in nodes {
        if let Ok(status) = node.status().await {
            sizes.push(status.views.active.len());
            forwarded += status.counters.forwarded;
            duplicates += status.counters.duplicates;
            bytes += status.counters.bytes_sent_by_kind;
        }
    }
    let (Some(min), Some(max)) = (sizes.iter().min(), sizes.iter().max()) else {
        return bytes;
    };
    let mean = sizes.iter().sum::<usize>() as f64 / sizes.len() as f64;
    let isolated = sizes.iter().filter(|&&s| s == 0).count();
    progress!(
        "overlay {when}: {} nodes, active view min {min} mean {mean:.1} max {max}, \
         {isolated} without a neighbour; {forwarded} full copies sent, {duplicates} duplicates",
        sizes.len()
    );
    bytes
}

/// Prints where the bytes of the measured part went: message bytes queued
/// to links between the two readings, by class, largest first. Crashed
/// nodes answer no status, so with churn the split covers the survivors.
fn report_bytes(before: &PerClass, after: &PerClass) {
    let mut classes: Vec<(&str, u64)> = after
        .iter()
        .map(|(class, n)| (class.name(), n.saturating_sub(before.get(class))))
        .collect();
    let total: u64 = classes.iter().map(|(_, n)| n).sum();
    if total == 0 {
        return;
    }
    classes.sort_by_key(|c| std::cmp::Reverse(c.1));
    let split: Vec<String> = classes
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(name, n)| format!("{name} {n} ({:.1}%)", 100.0 * *n as f64 / total as f64))
        .collect();
    progress!(
        "message bytes sent while measured: {total}, by kind: {}",
        split.join(", ")
    );
}

/// The nearest-rank percentile of sorted values, to the microsecond.
fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    Some(round3(sorted[rank.clamp(1, sorted.len()) - 1]))
}

fn round3(x: f64) -> f64 {
    (x * 1e3).round() / 1e3
}

/// User plus system CPU time of this process so far.
fn cpu_seconds() -> Result<f64> {
    let usage = getrusage(UsageWho::RUSAGE_SELF).context("getrusage failed")?;
    let micros = usage.user_time().num_microseconds() + usage.system_time().num_microseconds();
    Ok(micros as f64 / 1e6)
}

/// A `kB` field of /proc/self/status (VmRSS, VmHWM).
fn proc_status_kb(field: &str) -> Result<u64> {
    let status =
        std::fs::read_to_string("/proc/self/status").context("cannot read /proc/self/status")?;
    status
        .lines()
        .find_map(|line| {
            let rest = line.strip_prefix(field)?.strip_prefix(':')?;
            rest.split_whitespace().next()?.parse().ok()
        })
        .with_context(|| format!("no {field} in /proc/self/status"))
}

/// The interfaces of this network namespace with their counters, as
/// /proc/self/net/dev lists them (name, numbers).
fn net_dev() -> Vec<(String, Vec<u64>)> {
    let Ok(text) = std::fs::read_to_string("/proc/self/net/dev") else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|line| {
            let (name, numbers) = line.split_once(':')?;
            let numbers = numbers
                .split_whitespace()
                .map(str::parse)
                .collect::<Result<Vec<u64>, _>>()
                .ok()?;
            Some((name.trim().to_string(), numbers))
        })
        .collect()
}

/// Bytes sent on the loopback device so far: the 9th number of its line.
fn lo_tx_bytes() -> Option<u64> {
    net_dev()
        .into_iter()
        .find(|(name, _)| name == "lo")
        .and_then(|(_, numbers)| numbers.get(8).copied())
}

/// Why `lo_tx_bytes` may not measure this run alone, if it may not.
fn lo_hint() -> Option<String> {
    let devices = net_dev();
    if !devices.iter().any(|(name, _)| name == "lo") {
        return Some("no lo in /proc/self/net/dev: lo_tx_bytes is null".into());
    }
    let others: Vec<&str> = devices
        .iter()
        .map(|(name, _)| name.as_str())
        .filter(|name| *name != "lo")
        .collect();
    if others.is_empty() {
        return None;
    }
    Some(format!(
        "this network namespace also has {}, so other programs may share lo and \
         lo_tx_bytes counts their traffic too; for a clean figure run in a private \
         namespace (as root): unshare -n sh -c 'ip link set lo up && exec gossipnet bench ...'",
        others.join(", ")
    ))
}
