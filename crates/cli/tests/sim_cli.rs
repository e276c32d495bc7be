//! Runs the built `gossipnet` binary's `sim` subcommands as a user would:
//! `sim broadcast`, `sim failure`, `sim size` and `sim stream` with
//! `--json -q` print one JSON object with the documented keys and figures a
//! correct protocol gives (full delivery, one component after healing, a
//! size estimate within 10%, delivery times in order); the same seed prints the same figures; and a bad flag value
//! exits non-zero with a message on stderr and nothing on stdout.

use std::process::{Command, Output};

use serde_json::Value;

fn gossipnet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gossipnet"))
        .args(args)
        .output()
        .expect("the gossipnet binary runs")
}

/// Runs a subcommand that must succeed and print one JSON object.
fn json(args: &[&str]) -> Value {
    let out = gossipnet(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?} failed: {stderr}");
    assert!(stderr.is_empty(), "-q printed to stderr: {stderr}");
    let stdout = String::from_utf8(out.stdout).expect("utf-8 output");
    assert_eq!(stdout.lines().count(), 1, "one JSON line: {stdout}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

fn has_keys(v: &Value, keys: &[&str]) {
    for key in keys {
        assert!(v.get(key).is_some(), "key {key} missing from {v}");
    }
}

fn num(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} is not a number in {v}"))
}

const BROADCAST: &[&str] = &[
    "sim",
    "broadcast",
    "--nodes",
    "300",
    "--rounds",
    "3",
    "--seed",
    "7",
    "--json",
    "-q",
];

#[test]
fn sim_broadcast_reports_full_delivery() {
    let v = json(BROADCAST);
    has_keys(
        &v,
        &[
            "nodes",
            "senders",
            "rounds",
            "delivery",
            "rmr",
            "ldh",
            "missed",
            "events_per_s",
            "peak_rss_mb",
        ],
    );
    assert_eq!(v["nodes"], 300);
    assert_eq!(v["rounds"], 3);
    assert_eq!(num(&v, "delivery"), 1.0);
    assert_eq!(v["missed"], 0);
    assert!(num(&v, "rmr") >= 0.0);
    assert!(num(&v, "ldh") >= 1.0, "{v}");
    assert!(num(&v, "events_per_s") > 0.0);
}

#[test]
fn sim_broadcast_replays_its_seed() {
    let a = json(BROADCAST);
    let b = json(BROADCAST);
    // Wall-clock figures differ between runs; the simulated ones may not.
    for key in ["delivery", "rmr", "ldh", "missed", "violations"] {
        assert_eq!(a[key], b[key], "{key} differs between two runs of seed 7");
    }
}

#[test]
fn sim_failure_reports_healing() {
    let v = json(&[
        "sim", "failure", "--nodes", "300", "--fail", "0.5", "--json", "-q",
    ]);
    has_keys(
        &v,
        &[
            "nodes",
            "fail",
            "reliability_first",
            "reliability_after_heal",
            "heal_s",
            "components_after_heal",
        ],
    );
    assert_eq!(v["nodes"], 300);
    assert_eq!(num(&v, "fail"), 0.5);
    assert!(num(&v, "heal_s") >= 0.0, "never healed: {v}");
    assert_eq!(v["components_after_heal"], 1);
    assert_eq!(num(&v, "reliability_after_heal"), 1.0);
    let first = num(&v, "reliability_first");
    assert!((0.0..=1.0).contains(&first), "{v}");
}

#[test]
fn sim_size_estimates_within_ten_percent() {
    let v = json(&["sim", "size", "--nodes", "300", "--json", "-q"]);
    has_keys(&v, &["nodes", "estimate", "error"]);
    assert_eq!(v["nodes"], 300);
    let error = num(&v, "error");
    assert!(error.abs() <= 0.1, "error {error} in {v}");
    let estimate = num(&v, "estimate");
    assert!((estimate - 300.0).abs() <= 30.0, "{v}");
}

#[test]
fn sim_stream_reports_delivery_times_and_copies() {
    let args = [
        "sim",
        "stream",
        "--nodes",
        "60",
        "--rate",
        "20",
        "--messages",
        "40",
        "--latency-ms",
        "10..50",
        "--seed",
        "3",
        "--json",
        "-q",
    ];
    let v = json(&args);
    has_keys(
        &v,
        &[
            "nodes",
            "rate",
            "delivery",
            "p50_ms",
            "p99_ms",
            "duplicates",
            "rmr",
            "eager_components_max",
            "grafts",
        ],
    );
    assert_eq!(v["nodes"], 60);
    assert_eq!(num(&v, "delivery"), 1.0, "{v}");
    let (p50, p99) = (num(&v, "p50_ms"), num(&v, "p99_ms"));
    // One hop takes at least the lowest link latency.
    assert!(10.0 <= p50 && p50 <= p99, "{v}");
    let duplicates = num(&v, "duplicates");
    assert!((0.0..1.0).contains(&duplicates), "{v}");
    assert!(num(&v, "eager_components_max") >= 1.0, "{v}");
    // Wall time is the machine's; every other figure is the seed's.
    let figures = |mut v: Value| {
        v.as_object_mut().map(|o| o.remove("wall_s"));
        v
    };
    assert_eq!(figures(json(&args)), figures(v), "same seed, other figures");
}

#[test]
fn bad_flag_values_exit_non_zero_with_a_message() {
    for args in [
        &[
            "sim", "failure", "--nodes", "50", "--fail", "2", "--json", "-q",
        ][..],
        &["sim", "broadcast", "--nodes", "1", "--json", "-q"][..],
        &[
            "sim",
            "broadcast",
            "--nodes",
            "50",
            "--latency",
            "fast",
            "-q",
        ][..],
        &["sim", "broadcast", "--nodes", "50", "--loss", "1.5", "-q"][..],
        &["sim", "broadcast", "--nodes", "lots"][..],
        &["sim", "stream", "--nodes", "50", "--rate", "0", "-q"][..],
    ] {
        let out = gossipnet(args);
        assert!(!out.status.success(), "{args:?} succeeded");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.trim().is_empty(), "{args:?}: no message on stderr");
        assert!(out.stdout.is_empty(), "{args:?}: printed a result");
    }
    let out = gossipnet(&["sim", "failure", "--fail", "2"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--fail"),
        "message does not name the flag: {stderr}"
    );
}
