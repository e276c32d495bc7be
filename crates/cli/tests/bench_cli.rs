//! Runs `gossipnet bench` small, as a user would: one JSON line on stdout
//! with every field of the benchmark contract (docs/PERFORMANCE.md), every
//! live node but the origin delivered every message, and with churn the
//! expected count covers only the nodes left alive. No timing is asserted:
//! the machine may be busy. A bad flag fails with a message and no JSON.

use std::process::{Command, Output};

use serde_json::Value;

/// Every field the contract names, nested ones under `latency_ms`.
const FIELDS: &[&str] = &[
    "impl",
    "nodes",
    "messages",
    "size",
    "rate",
    "kill_fraction",
    "heal_s",
    "expected",
    "delivered",
    "delivery_ratio",
    "latency_ms",
    "lo_tx_bytes",
    "amplification",
    "cpu_s",
    "cpu_us_per_delivery",
    "rss_mb",
    "setup_rss_kb_per_node",
];
const LATENCY_FIELDS: &[&str] = &["p50", "p90", "p99", "max"];

const SMALL: &[&str] = &[
    "bench",
    "--nodes",
    "8",
    "--warmup-s",
    "1",
    "--messages",
    "20",
    "--rate",
    "100",
    "--timeout-s",
    "10",
];

fn gossipnet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gossipnet"))
        .args(args)
        .output()
        .expect("the gossipnet binary runs")
}

fn bench(extra: &[&str]) -> Value {
    let args: Vec<&str> = SMALL.iter().chain(extra).copied().collect();
    let out = gossipnet(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?} failed: {stderr}");
    let stdout = String::from_utf8(out.stdout).expect("utf-8 output");
    assert_eq!(stdout.lines().count(), 1, "one JSON line: {stdout}");
    let v: Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"));
    for field in FIELDS {
        assert!(v.get(field).is_some(), "{field} missing from {v}");
    }
    for field in LATENCY_FIELDS {
        assert!(v["latency_ms"][field].is_number(), "latency {field} in {v}");
    }
    assert_eq!(v["impl"], "gossipnet");
    assert!(
        stderr.contains("bench:"),
        "progress goes to stderr: {stderr}"
    );
    v
}

fn uint(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} is not a count in {v}"))
}

#[test]
fn a_small_run_delivers_everything() {
    let v = bench(&[]);
    assert_eq!(uint(&v, "nodes"), 8);
    assert_eq!(uint(&v, "messages"), 20);
    assert_eq!(uint(&v, "expected"), 20 * 7);
    assert_eq!(uint(&v, "delivered"), uint(&v, "expected"), "{v}");
    assert_eq!(v["delivery_ratio"].as_f64(), Some(1.0));
    assert!(v["cpu_s"].as_f64().unwrap() > 0.0, "{v}");
    assert!(v["rss_mb"].as_f64().unwrap() > 0.0, "{v}");
}

#[test]
fn with_churn_only_survivors_are_expected() {
    let v = bench(&["--kill-fraction", "0.25", "--heal-s", "2"]);
    // A quarter of 8 crashed: 6 live, each message expected at 5.
    assert_eq!(uint(&v, "expected"), 20 * 5);
    assert_eq!(uint(&v, "delivered"), uint(&v, "expected"), "{v}");
    assert_eq!(v["kill_fraction"].as_f64(), Some(0.25));
}

#[test]
fn bad_flags_are_refused() {
    for args in [
        &["bench", "--nodes", "1"][..],
        &["bench", "--rate", "0"],
        &["bench", "--kill-fraction", "1"],
    ] {
        let out = gossipnet(args);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(out.stdout.is_empty(), "{args:?} printed figures");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(args[1]), "{args:?}: {stderr}");
    }
}
