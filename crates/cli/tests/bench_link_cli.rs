//! Runs `gossipnet bench link` with a tiny budget, as a user would: one
//! JSON line on stdout with every field, every payload size measured over
//! the link and over plain TCP, and counts that agree with each other
//! (whole batches, every byte of every message). No timing is asserted:
//! the machine may be busy. Bad flags exit 2 with a message and no JSON,
//! and the broadcast bench's flags do not mix with the subcommand.

use std::process::{Command, Output};

use serde_json::Value;

/// Every top-level field of the figures.
const FIELDS: &[&str] = &[
    "impl",
    "bench",
    "seconds",
    "cores",
    "link",
    "tcp",
    "chacha20poly1305",
    "ed25519",
    "link_1mib_vs_chacha20poly1305",
    "link_1mib_vs_tcp",
];
/// Every field of a row of `link` and `tcp`.
const ROW_FIELDS: &[&str] = &[
    "payload",
    "batch",
    "messages",
    "bytes",
    "elapsed_s",
    "messages_per_s",
    "mb_per_s",
];
/// The payload sizes, in order, and the batch a node writes each in.
const PAYLOADS: &[(u64, u64)] = &[(64, 256), (1 << 10, 256), (64 << 10, 128), (1 << 20, 8)];

fn gossipnet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gossipnet"))
        .args(args)
        .output()
        .expect("the gossipnet binary runs")
}

fn uint(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} is not a count in {v}"))
}

fn number(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} is not a number in {v}"))
}

#[test]
fn a_tiny_run_carries_every_byte_of_every_size() {
    let args = ["bench", "link", "--seconds", "0.02"];
    let out = gossipnet(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?} failed: {stderr}");
    assert!(
        stderr.contains("bench link:"),
        "progress on stderr: {stderr}"
    );
    let stdout = String::from_utf8(out.stdout).expect("utf-8 output");
    assert_eq!(stdout.lines().count(), 1, "one JSON line: {stdout}");
    let v: Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"));
    for field in FIELDS {
        assert!(v.get(field).is_some(), "{field} missing from {v}");
    }
    assert_eq!(v["impl"], "gossipnet");
    assert_eq!(v["bench"], "link");
    assert_eq!(number(&v, "seconds"), 0.02);

    for side in ["link", "tcp"] {
        let rows = v[side]
            .as_array()
            .unwrap_or_else(|| panic!("{side} in {v}"));
        assert_eq!(rows.len(), PAYLOADS.len(), "{side}: {v}");
        for (row, &(payload, batch)) in rows.iter().zip(PAYLOADS) {
            for field in ROW_FIELDS {
                assert!(row.get(field).is_some(), "{side}: {field} missing in {row}");
            }
            assert_eq!(uint(row, "payload"), payload, "{side}: {row}");
            assert_eq!(uint(row, "batch"), batch, "{side}: {row}");
            let messages = uint(row, "messages");
            // At least one batch, and only whole ones: nothing lost or cut.
            assert!(messages >= batch, "{side}: {row}");
            assert_eq!(messages % batch, 0, "{side}: {row}");
            assert_eq!(uint(row, "bytes"), messages * payload, "{side}: {row}");
            assert!(number(row, "mb_per_s") > 0.0, "{side}: {row}");
        }
    }

    let cipher = &v["chacha20poly1305"];
    assert_eq!(uint(cipher, "frame"), 64 << 10, "{v}");
    assert_eq!(uint(cipher, "bytes") % (64 << 10), 0, "whole frames: {v}");
    assert!(number(cipher, "mb_per_s") > 0.0, "{v}");
    let ed = &v["ed25519"];
    assert_eq!(uint(ed, "batch"), 64, "{v}");
    assert!(number(ed, "verify_per_s") > 0.0, "{v}");
    assert!(number(ed, "batch_verify_per_s") > 0.0, "{v}");
    assert!(number(&v, "link_1mib_vs_chacha20poly1305") > 0.0, "{v}");
    assert!(number(&v, "link_1mib_vs_tcp") > 0.0, "{v}");
}

#[test]
fn bad_seconds_exit_2_with_the_flag_named() {
    for value in ["0", "-1", "nan", "inf", "1e9"] {
        let flag = format!("--seconds={value}");
        let out = gossipnet(&["bench", "link", &flag]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag}: {stderr}");
        assert!(out.stdout.is_empty(), "{flag} printed figures");
        assert!(stderr.contains("--seconds"), "{flag}: {stderr}");
    }
}

#[test]
fn broadcast_flags_and_the_subcommand_do_not_mix() {
    for args in [
        &["bench", "--rate", "100", "link"][..],
        &["bench", "link", "--rate", "100"],
    ] {
        let out = gossipnet(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?} printed figures");
        assert!(stderr.contains("--rate"), "{args:?}: {stderr}");
    }
    // The broadcast bench keeps its flags, and its help names the new one.
    let out = gossipnet(&["bench", "--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for word in ["--rate", "--messages", "--kill-fraction", "link"] {
        assert!(help.contains(word), "{word} not in: {help}");
    }
}
