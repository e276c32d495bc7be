//! `gossipnet sim`: the papers' experiments in the simulator, printed as a
//! table or, with `--json`, as one JSON object per run.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use gossipnet_sim::experiments::{self, Senders};
use gossipnet_sim::{Latency, SimConfig};
use serde_json::json;

#[derive(Debug, Subcommand)]
pub enum SimCommand {
    /// Broadcast over a stable overlay: delivery, redundancy (RMR), last
    /// delivery hop (LDH).
    Broadcast(BroadcastArgs),
    /// Crash a fraction of the nodes at once, then broadcast: reliability
    /// right after, time to heal, reliability after healing.
    Failure(FailureArgs),
    /// Error of the gossip estimate of the network size.
    Size(SizeArgs),
    /// A steady stream of broadcasts from random origins, overlapping in
    /// flight: delivery times, duplicate copies, and whether the eager
    /// graph stays one tree.
    Stream(StreamArgs),
    /// Take a fraction of the nodes offline while messages are sent, then
    /// bring them back: share of missed messages recovered by anti-entropy,
    /// time to recover, bytes per recovered message.
    Catchup(CatchupArgs),
}

#[derive(Debug, Args)]
pub struct CatchupArgs {
    #[command(flatten)]
    common: Common,
    /// Fraction of the nodes offline while the messages are sent (0 to 1).
    #[arg(long, default_value_t = 0.1)]
    offline: f64,
    /// Messages broadcast while they are away.
    #[arg(long, default_value_t = 100)]
    messages: usize,
}

#[derive(Debug, Args)]
pub struct Common {
    /// Nodes in the simulated network.
    #[arg(long, default_value_t = 1000)]
    nodes: usize,
    /// Seed of every random choice; the same seed replays the same run.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// One-way link latency in milliseconds: a fixed value ("20") or a range
    /// drawn once per link ("10-50" or "10..50").
    #[arg(long, visible_alias = "latency-ms", default_value = "10-50")]
    latency: String,
    /// Probability that a message is lost (0 to 1).
    #[arg(long, default_value_t = 0.0)]
    loss: f64,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// No progress lines on stderr.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Debug, Args)]
pub struct BroadcastArgs {
    #[command(flatten)]
    common: Common,
    /// Who sends: one node every round (single), a random node each round
    /// (random), or every node each round (all; for small networks).
    #[arg(long, default_value = "single")]
    senders: Senders,
    /// Broadcast rounds.
    #[arg(long, default_value_t = 10)]
    rounds: usize,
}

#[derive(Debug, Args)]
pub struct FailureArgs {
    #[command(flatten)]
    common: Common,
    /// Fraction of the nodes that crash at once (0 to 1).
    #[arg(long, default_value_t = 0.5)]
    fail: f64,
}

#[derive(Debug, Args)]
pub struct StreamArgs {
    #[command(flatten)]
    common: Common,
    /// Broadcasts per virtual second, each from a random live node.
    #[arg(long, default_value_t = 20.0)]
    rate: f64,
    /// Broadcasts in the stream.
    #[arg(long, default_value_t = 400)]
    messages: usize,
}

#[derive(Debug, Args)]
pub struct SizeArgs {
    #[command(flatten)]
    common: Common,
}

pub fn run(command: SimCommand) -> Result<()> {
    match command {
        SimCommand::Broadcast(a) => {
            let (config, mut progress) = setup(&a.common)?;
            if a.rounds == 0 {
                bail!("--rounds must be at least 1");
            }
            let r =
                experiments::broadcast(config, a.common.nodes, a.senders, a.rounds, &mut progress);
            if a.common.json {
                print_json(&json!({
                    "nodes": r.nodes, "senders": r.senders, "rounds": r.rounds,
                    "delivery": r.delivery, "rmr": r.rmr, "ldh": r.ldh, "missed": r.missed,
                    "events_per_s": r.events_per_s.round(), "peak_rss_mb": round1(r.peak_rss_mb),
                    "wall_s": round1(r.wall_s), "seed": r.seed, "violations": r.violations,
                }))
            } else {
                table(&[
                    ("nodes", r.nodes.to_string()),
                    ("senders", format!("{:?}", r.senders).to_lowercase()),
                    ("rounds", r.rounds.to_string()),
                    ("delivery", format!("{:.4}", r.delivery)),
                    ("rmr", format!("{:.4}", r.rmr)),
                    ("ldh", format!("{:.1}", r.ldh)),
                    ("missed", r.missed.to_string()),
                    ("events/s", format!("{:.0}", r.events_per_s)),
                    ("peak rss", format!("{:.1} MiB", r.peak_rss_mb)),
                    ("wall time", format!("{:.1} s", r.wall_s)),
                    ("seed", r.seed.to_string()),
                    ("violations", violations_text(&r.violations)),
                ])
            }
        }
        SimCommand::Failure(a) => {
            if !(0.0..1.0).contains(&a.fail) {
                bail!("--fail is the fraction of nodes that crash: give a number from 0 up to (not including) 1");
            }
            let (config, mut progress) = setup(&a.common)?;
            let r = experiments::failure(config, a.common.nodes, a.fail, &mut progress);
            if a.common.json {
                print_json(&json!({
                    "nodes": r.nodes, "fail": r.fail,
                    "reliability_first": r.reliability_first,
                    "reliability_after_heal": r.reliability_after_heal,
                    "heal_s": round1(r.heal_s), "components_after_heal": r.components_after_heal,
                    "isolated_after_heal": r.isolated_after_heal,
                    "peak_rss_mb": round1(r.peak_rss_mb), "wall_s": round1(r.wall_s),
                    "seed": r.seed, "violations": r.violations,
                }))
            } else {
                table(&[
                    ("nodes", r.nodes.to_string()),
                    ("crashed", format!("{:.0}%", r.fail * 100.0)),
                    ("reliability, first", format!("{:.4}", r.reliability_first)),
                    (
                        "reliability, healed",
                        format!("{:.4}", r.reliability_after_heal),
                    ),
                    ("heal time", format!("{:.1} s (virtual)", r.heal_s)),
                    ("components", r.components_after_heal.to_string()),
                    ("isolated", r.isolated_after_heal.to_string()),
                    ("peak rss", format!("{:.1} MiB", r.peak_rss_mb)),
                    ("wall time", format!("{:.1} s", r.wall_s)),
                    ("seed", r.seed.to_string()),
                    ("violations", violations_text(&r.violations)),
                ])
            }
        }
        SimCommand::Catchup(a) => {
            if !(0.0..1.0).contains(&a.offline) {
                bail!("--offline is the fraction of nodes away: give a number from 0 up to (not including) 1");
            }
            let (config, mut progress) = setup(&a.common)?;
            let r =
                experiments::catchup(config, a.common.nodes, a.offline, a.messages, &mut progress);
            if a.common.json {
                print_json(&json!({
                    "nodes": r.nodes, "offline": r.offline, "messages": r.messages,
                    "missed": r.missed, "recovered": r.recovered,
                    "recovered_share": r.recovered_share, "recover_s": round1(r.recover_s),
                    "sync_bytes": r.sync_bytes,
                    "bytes_per_recovered": r.bytes_per_recovered.round(),
                    "live_missed": r.live_missed, "wall_s": round1(r.wall_s),
                    "seed": r.seed, "violations": r.violations,
                }))
            } else {
                table(&[
                    ("nodes", r.nodes.to_string()),
                    ("offline", r.offline.to_string()),
                    ("messages", r.messages.to_string()),
                    ("missed", r.missed.to_string()),
                    ("recovered", r.recovered.to_string()),
                    ("recovered share", format!("{:.4}", r.recovered_share)),
                    ("time to recover", format!("{:.1} s (virtual)", r.recover_s)),
                    ("sync bytes", r.sync_bytes.to_string()),
                    ("bytes/recovered", format!("{:.0}", r.bytes_per_recovered)),
                    ("live missed", r.live_missed.to_string()),
                    ("wall time", format!("{:.1} s", r.wall_s)),
                    ("seed", r.seed.to_string()),
                    ("violations", violations_text(&r.violations)),
                ])
            }
        }
        SimCommand::Stream(a) => {
            if !(a.rate > 0.0 && a.rate <= 100_000.0) {
                bail!("--rate is broadcasts per second: give a number above 0 (at most 100000)");
            }
            if a.messages == 0 {
                bail!("--messages must be at least 1");
            }
            let (config, mut progress) = setup(&a.common)?;
            let r = experiments::stream(config, a.common.nodes, a.rate, a.messages, &mut progress);
            if a.common.json {
                print_json(&json!({
                    "nodes": r.nodes, "rate": r.rate, "messages": r.messages,
                    "delivery": r.delivery, "p50_ms": round1(r.p50_ms), "p99_ms": round1(r.p99_ms),
                    "duplicates": r.duplicates,
                    "duplicates_after_warmup": r.duplicates_after_warmup, "rmr": r.rmr,
                    "eager_components_max": r.eager_components_max, "grafts": r.grafts,
                    "wall_s": round1(r.wall_s), "seed": r.seed, "violations": r.violations,
                }))
            } else {
                table(&[
                    ("nodes", r.nodes.to_string()),
                    ("rate", format!("{} msg/s", r.rate)),
                    ("messages", r.messages.to_string()),
                    ("delivery", format!("{:.4}", r.delivery)),
                    ("p50", format!("{:.1} ms (virtual)", r.p50_ms)),
                    ("p99", format!("{:.1} ms (virtual)", r.p99_ms)),
                    (
                        "duplicates",
                        format!("{:.2}% of full copies", r.duplicates * 100.0),
                    ),
                    (
                        "after warm-up",
                        format!("{:.2}% of full copies", r.duplicates_after_warmup * 100.0),
                    ),
                    ("rmr", format!("{:.4}", r.rmr)),
                    (
                        "eager components",
                        format!("{} at most", r.eager_components_max),
                    ),
                    ("grafts", r.grafts.to_string()),
                    ("wall time", format!("{:.1} s", r.wall_s)),
                    ("seed", r.seed.to_string()),
                    ("violations", violations_text(&r.violations)),
                ])
            }
        }
        SimCommand::Size(a) => {
            let (config, mut progress) = setup(&a.common)?;
            let r = experiments::size(config, a.common.nodes, &mut progress);
            if a.common.json {
                print_json(&json!({
                    "nodes": r.nodes, "estimate": r.estimate.round(), "error": r.error,
                    "worst_node_error": r.worst_node_error,
                    "peak_rss_mb": round1(r.peak_rss_mb), "wall_s": round1(r.wall_s), "seed": r.seed,
                }))
            } else {
                table(&[
                    ("nodes", r.nodes.to_string()),
                    ("estimate", format!("{:.0}", r.estimate)),
                    ("error", format!("{:+.2}%", r.error * 100.0)),
                    ("worst node", format!("{:.2}%", r.worst_node_error * 100.0)),
                    ("peak rss", format!("{:.1} MiB", r.peak_rss_mb)),
                    ("wall time", format!("{:.1} s", r.wall_s)),
                    ("seed", r.seed.to_string()),
                ])
            }
        }
    }
}

fn setup(c: &Common) -> Result<(SimConfig, impl FnMut(&str))> {
    if c.nodes < 2 {
        bail!("--nodes must be at least 2");
    }
    if !(0.0..1.0).contains(&c.loss) {
        bail!("--loss is a probability: give a number from 0 up to (not including) 1");
    }
    let latency = parse_latency(&c.latency)?;
    let config = SimConfig {
        seed: c.seed,
        latency,
        loss: c.loss,
        ..SimConfig::default()
    };
    let quiet = c.quiet;
    let started = std::time::Instant::now();
    let progress = move |line: &str| {
        if !quiet {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "[{:>6.1}s] {line}", started.elapsed().as_secs_f64());
        }
    };
    Ok((config, progress))
}

fn parse_latency(text: &str) -> Result<Latency> {
    let ms = |s: &str| -> Result<Duration> {
        let v: f64 = s.trim().parse().with_context(|| {
            format!("latency '{text}' is not milliseconds: use e.g. 20, 10-50 or 10..50")
        })?;
        if !(0.0..=60_000.0).contains(&v) {
            bail!("latency {v} ms is out of range (0 to 60000)");
        }
        Ok(Duration::from_secs_f64(v / 1000.0))
    };
    match text.split_once("..").or_else(|| text.split_once('-')) {
        Some((lo, hi)) => {
            let (lo, hi) = (ms(lo)?, ms(hi)?);
            if hi < lo {
                bail!("latency range '{text}' has its high end below its low end");
            }
            Ok(Latency::Range(lo, hi))
        }
        None => Ok(Latency::Fixed(ms(text)?)),
    }
}

fn violations_text(v: &experiments::ViolationCounts) -> String {
    if v.is_clean() {
        "none".to_string()
    } else {
        format!(
            "{} asymmetric, {} over capacity, {} isolated, {} duplicate deliveries",
            v.asymmetric, v.over_capacity, v.isolated, v.duplicate_deliveries
        )
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn print_json(v: &serde_json::Value) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{v}")?;
    Ok(())
}

fn table(rows: &[(&str, String)]) -> Result<()> {
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut out = std::io::stdout().lock();
    let _ = std::io::stdout().is_terminal();
    for (k, v) in rows {
        writeln!(out, "{k:<width$}  {v}")?;
    }
    Ok(())
}
