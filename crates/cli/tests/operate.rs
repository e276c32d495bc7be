//! Operating a network: real testnets of real processes on loopback, seen
//! and driven through the CLI and the control API.
//!
//! - a 20-node testnet: crawled size, estimate, components, the SVG picture,
//!   the API's cookie and loopback rules, `/metrics` read by a Prometheus
//!   parser we did not write (python's prometheus_client), and the
//!   send/dm/peers/status/leave subcommands;
//! - a network shutdown: refused without a key, with a bad signature, with
//!   the wrong key and as a replay after a restart; obeyed with the admin
//!   key, every process exiting 0;
//! - `gossipnet peers` on a 5-node testnet: each neighbour by its name and
//!   listen address, as that neighbour's own status gives them;
//! - logs appended to a file as JSON lines.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::testnet::{api_get, api_post, cli, overlay, poll, str_field, Testnet, POLL};
use common::{args, Proc, TempDir, DEADLINE};
use serde_json::{json, Value};

/// Nodes in the big testnet.
const NODES: usize = 20;
/// The estimate must be within this fraction of the crawled count.
const ESTIMATE_TOLERANCE: f64 = 0.25;
/// Every process must have exited this soon after a shutdown command.
const SHUTDOWN_BOUND: Duration = Duration::from_secs(10);

fn data_dir(node: &Value) -> &str {
    str_field(node, "data_dir")
}

#[test]
fn a_twenty_node_testnet_is_seen_whole() {
    let dir = TempDir::new("operate20");
    let net = Testnet::start(&dir, NODES, 1, &[]);
    let node1 = net.node("node-1");

    // Size from two different nodes: exact from the crawl, and the gossip
    // estimate within 25% once it has spread.
    for name in ["node-7", "node-13"] {
        let node = net.node(name);
        poll(&format!("{name} to count {NODES} nodes"), || {
            let run = cli(&["network", "size", "--json", "--data-dir", data_dir(node)]);
            if !run.ok {
                return Err(run.stderr);
            }
            let v: Value = serde_json::from_str(&run.stdout).map_err(|e| e.to_string())?;
            let nodes = v["nodes"].as_u64().unwrap_or(0);
            let estimate = v["estimate"].as_f64().unwrap_or(0.0);
            let off = (estimate - NODES as f64).abs() / NODES as f64;
            if nodes == NODES as u64 && off <= ESTIMATE_TOLERANCE {
                Ok(())
            } else {
                Err(v.to_string())
            }
        });
    }
    let run = cli(&["network", "size", "--data-dir", data_dir(node1)]);
    assert!(run.ok, "{}", run.stderr);
    assert!(run.stdout.contains("(crawled)"), "{}", run.stdout);

    // One component, no unreachable node.
    let summary = poll("the crawl to see one component", || {
        let run = cli(&["network", "status", "--json", "--data-dir", data_dir(node1)]);
        let v: Value = serde_json::from_str(&run.stdout).map_err(|_| run.stderr.clone())?;
        if v["nodes"] == NODES && v["components"] == 1 && v["unreachable"] == json!([]) {
            Ok(v)
        } else {
            Err(v.to_string())
        }
    });
    assert!(summary["degree_min"].as_u64().unwrap() >= 1, "{summary}");
    let text = cli(&["network", "status", "--data-dir", data_dir(node1)]);
    assert!(
        text.ok && text.stdout.contains("components"),
        "{}",
        text.stdout
    );

    // The picture: a node shape per node, an edge per crawled link.
    let svg_path = dir.join("net.svg");
    let run = cli(&[
        "network",
        "graph",
        "--format",
        "svg",
        "-o",
        &svg_path,
        "--data-dir",
        data_dir(node1),
    ]);
    assert!(run.ok, "{}", run.stderr);
    let svg = std::fs::read_to_string(&svg_path).unwrap();
    let (nodes, links) = wrote_counts(&run.stderr);
    assert_eq!(nodes, NODES, "{}", run.stderr);
    assert_eq!(svg.matches("<circle class=\"node").count(), NODES);
    assert_eq!(svg.matches("<circle class=\"node me\"").count(), 1);
    assert_eq!(svg.matches("<line class=\"link\"").count(), links);
    assert_eq!(svg.matches("<rect class=\"seed\"").count(), 1);
    assert!(svg.starts_with("<svg") || svg.starts_with("<?xml"));
    assert!(svg.trim_end().ends_with("</svg>"));
    let dot = cli(&[
        "network",
        "graph",
        "--format",
        "dot",
        "--data-dir",
        data_dir(node1),
    ]);
    assert!(
        dot.ok && dot.stdout.starts_with("graph gossipnet"),
        "{}",
        dot.stdout
    );
    let topo = cli(&[
        "network",
        "graph",
        "--format",
        "json",
        "--data-dir",
        data_dir(node1),
    ]);
    let topo: Value = serde_json::from_str(&topo.stdout).unwrap();
    assert_eq!(overlay(&topo).unwrap(), (NODES, 1));

    check_api_access(node1);
    check_metrics(node1);
    check_subcommands(&net);
}

/// Parses "wrote FILE (N nodes, L links)".
fn wrote_counts(stderr: &str) -> (usize, usize) {
    let line = stderr
        .lines()
        .find(|l| l.starts_with("wrote "))
        .unwrap_or_else(|| panic!("no 'wrote' line in {stderr}"));
    let inner = line.rsplit_once('(').unwrap().1;
    let numbers: Vec<usize> = inner
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    (numbers[0], numbers[1])
}

/// The cookie is required, and the API listens on loopback only.
fn check_api_access(node: &Value) {
    let api = str_field(node, "api");
    assert!(api.starts_with("127.0.0.1:"), "{api}");
    for path in ["/api/status", "/metrics", "/", "/api/events"] {
        let url = format!("http://{api}{path}");
        match ureq::get(&url).call() {
            Err(ureq::Error::Status(code, _)) => assert_eq!(code, 401, "{url}"),
            other => panic!("{url} without the cookie: {other:?}"),
        }
    }
    match ureq::get(&format!("http://{api}/api/status"))
        .set("Authorization", "Bearer 0000")
        .call()
    {
        Err(ureq::Error::Status(code, _)) => assert_eq!(code, 401),
        other => panic!("a wrong cookie: {other:?}"),
    }
    // The cookie in the URL opens the page and its event stream only.
    let cookie = str_field(node, "cookie");
    for path in ["/", "/api/events"] {
        let url = format!("http://{api}{path}?cookie={cookie}");
        let answer = ureq::get(&url).call().unwrap();
        assert_eq!(answer.status(), 200, "{url}");
    }
    for path in ["/api/status", "/api/peers", "/metrics"] {
        let url = format!("http://{api}{path}?cookie={cookie}");
        match ureq::get(&url).call() {
            Err(ureq::Error::Status(code, _)) => assert_eq!(code, 401, "{url}"),
            other => panic!("{url}, the cookie in the URL: {other:?}"),
        }
    }
    let status: Value = ureq::get(&format!("http://{api}/api/status"))
        .set("Authorization", &format!("Bearer {cookie}"))
        .call()
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(status["id"], node["id"]);

    let control = Path::new(data_dir(node)).join("control.json");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&control).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "{}", control.display());

    // A non-loopback API address is refused at start.
    let run = cli(&["node", "--port", "0", "--no-mdns", "--api", "0.0.0.0:0"]);
    assert!(!run.ok);
    assert!(run.stderr.contains("loopback"), "{}", run.stderr);
}

/// `/metrics`, read by python's prometheus_client parser.
fn check_metrics(node: &Value) {
    let url = format!("http://{}/metrics", str_field(node, "api"));
    let text = ureq::get(&url)
        .set(
            "Authorization",
            &format!("Bearer {}", str_field(node, "cookie")),
        )
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    const PARSE: &str = "import sys\n\
        from prometheus_client.parser import text_string_to_metric_families\n\
        for f in text_string_to_metric_families(sys.stdin.read()):\n\
        \x20   for s in f.samples:\n\
        \x20       print(f.type, s.name, s.value)\n";
    let mut child = Command::new("python3")
        .args(["-c", PARSE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 (scripts/test installs it and prometheus_client)");
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), text.as_bytes()).unwrap();
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    let parsed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the parser refused /metrics: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        "gauge gossipnet_links ",
        "gauge gossipnet_active_view_size ",
        "gauge gossipnet_passive_view_size ",
        "counter gossipnet_messages_delivered_total ",
        "counter gossipnet_messages_forwarded_total ",
        "counter gossipnet_messages_duplicate_total ",
        "counter gossipnet_bytes_sent_total ",
        "counter gossipnet_handshake_failures_total ",
        "gauge gossipnet_network_size_estimate ",
        "gauge gossipnet_node_info ",
    ] {
        assert!(parsed.contains(expected), "no '{expected}' in:\n{parsed}");
    }
}

/// status, peers, send, dm and leave, each through the CLI.
fn check_subcommands(net: &Testnet) {
    let n1 = net.node("node-1");
    let status = cli(&["status", "--json", "--data-dir", data_dir(n1)]);
    let status: Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(status["id"], n1["id"]);
    assert_eq!(status["role"], "node");
    assert_eq!(status["seeds_reachable"], 1);
    let text = cli(&["status", "--data-dir", data_dir(n1)]);
    assert!(text.stdout.contains("active view"), "{}", text.stdout);

    let peers = cli(&["peers", "--json", "--data-dir", data_dir(n1)]);
    let peers: Value = serde_json::from_str(&peers.stdout).unwrap();
    assert!(!peers.as_array().unwrap().is_empty(), "{peers}");
    assert!(peers[0]["id"].is_string(), "{peers}");

    let marker = format!("operate-marker-{}", std::process::id());
    // node-9's live stream, opened before the line is sent.
    let node9 = net.node("node-9");
    let events = ureq::get(&format!("http://{}/api/events", str_field(node9, "api")))
        .set(
            "Authorization",
            &format!("Bearer {}", str_field(node9, "cookie")),
        )
        .timeout(DEADLINE)
        .call()
        .expect("node-9's event stream");
    assert_eq!(events.content_type(), "text/event-stream");
    let want = marker.clone();
    let stream = std::thread::spawn(move || {
        let mut kind = String::new();
        for line in std::io::BufRead::lines(std::io::BufReader::new(events.into_reader())) {
            let Ok(line) = line else { return None };
            if let Some(k) = line.strip_prefix("event: ") {
                kind = k.to_string();
            } else if let Some(data) = line.strip_prefix("data: ") {
                let v: Value = serde_json::from_str(data).ok()?;
                if v["text"] == want.as_str() {
                    return Some((kind.clone(), v));
                }
            }
        }
        None
    });
    let run = cli(&["send", "--data-dir", data_dir(net.node("node-2")), &marker]);
    assert!(run.ok, "{}", run.stderr);
    let (kind, event) = stream
        .join()
        .unwrap()
        .expect("the line on node-9's event stream");
    assert_eq!(kind, "message");
    assert_eq!(event["origin"], net.node("node-2")["id"]);
    assert_eq!(event["name"], "node-2");
    poll("node-9 to deliver the line sent from node-2", || {
        let list = api_get(node9, "/api/messages?limit=50")?;
        if list.as_array().unwrap().iter().any(|m| m["text"] == marker) {
            Ok(())
        } else {
            Err(list.to_string())
        }
    });

    let to = net.node("node-5");
    let secret = format!("dm-marker-{}", std::process::id());
    let run = cli(&[
        "dm",
        "--data-dir",
        data_dir(net.node("node-4")),
        str_field(to, "id"),
        &secret,
    ]);
    assert!(run.ok, "{}", run.stderr);
    poll("node-5 to receive the direct message", || {
        let list = api_get(to, "/api/messages?limit=50")?;
        if list
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["text"] == secret && m["kind"] == "direct")
        {
            Ok(())
        } else {
            Err(list.to_string())
        }
    });
    // Only the recipient reads it.
    let other = api_get(net.node("node-6"), "/api/messages?limit=50").unwrap();
    assert!(!other.to_string().contains(&secret));

    // A bad request gets a clear error and a non-zero exit.
    let run = cli(&["dm", "--data-dir", data_dir(n1), "zzzz", "hello"]);
    assert!(!run.ok);
    assert!(run.stderr.contains("not a node id"), "{}", run.stderr);
    let bad = api_post(n1, "/api/send", json!({ "text": "" }));
    assert!(bad.unwrap_err().contains("400"));

    let run = cli(&["leave", "--data-dir", data_dir(net.node("node-20"))]);
    assert!(run.ok, "{}", run.stderr);
    assert!(
        net.wait_log("node-20 exited (exit status: 0)"),
        "{}",
        net.log()
    );
}

/// `network shutdown --command FILE`, through `node`.
fn send_command(file: &str, node: &Value) -> common::testnet::Run {
    cli(&[
        "network",
        "shutdown",
        "--command",
        file,
        "--data-dir",
        data_dir(node),
    ])
}

/// Waits until the crawl from `node` sees `n` nodes in one component.
fn wait_connected(node: &Value, n: usize) {
    poll(&format!("the overlay to connect all {n} nodes"), || {
        let topo = api_get(node, "/api/network")?;
        match overlay(&topo)? {
            (count, 1) if count == n => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
}

/// Waits until every given log file holds a line with `text`.
fn wait_logs(net: &Testnet, names: &[&str], text: &str) {
    for name in names {
        let log = Path::new(data_dir(net.node(name))).join("node.log");
        poll(&format!("{name} to log '{text}'"), || {
            let content = std::fs::read_to_string(&log).unwrap_or_default();
            if content.contains(text) {
                Ok(())
            } else {
                Err(format!("{} lines", content.lines().count()))
            }
        });
    }
}

#[test]
fn peers_show_each_neighbours_name_and_listen_address() {
    let dir = TempDir::new("peers5");
    let net = Testnet::start(&dir, 5, 1, &[]);
    let nodes: Vec<&Value> = net.nodes().iter().filter(|n| n["role"] == "node").collect();
    // Each node's own account of itself.
    let statuses: Vec<Value> = nodes
        .iter()
        .map(|n| {
            let run = cli(&["status", "--json", "--data-dir", data_dir(n)]);
            assert!(run.ok, "{}", run.stderr);
            serde_json::from_str(&run.stdout).unwrap()
        })
        .collect();
    let mut inbound = 0;
    for node in &nodes {
        let name = str_field(node, "name");
        // Names travel in records, which follow the links up, and each new
        // neighbour is pinged once: poll until every one is named and timed.
        let peers = poll(&format!("{name}'s neighbours, all named and timed"), || {
            let run = cli(&["peers", "--json", "--data-dir", data_dir(node)]);
            if !run.ok {
                return Err(run.stderr);
            }
            let peers: Value = serde_json::from_str(&run.stdout).map_err(|e| e.to_string())?;
            let list = peers.as_array().cloned().unwrap_or_default();
            if !list.is_empty()
                && list
                    .iter()
                    .all(|p| p["name"].is_string() && p["rtt_ms"].is_f64())
            {
                Ok(list)
            } else {
                Err(peers.to_string())
            }
        });
        for p in &peers {
            let own = statuses
                .iter()
                .find(|s| s["id"] == p["id"])
                .unwrap_or_else(|| panic!("{name} lists {p}, which is no node of the testnet"));
            assert_eq!(p["name"], own["name"], "{name}'s peer {p} against {own}");
            assert_eq!(
                p["listen"], own["advertise"],
                "{name}'s peer {p} against {own}"
            );
            assert_eq!(p["transport"], "tcp", "{p}");
            assert!(p["link_age_s"].is_u64(), "{p}");
            assert!(p["bytes_received"].as_u64().unwrap_or(0) > 0, "{p}");
            match p["direction"].as_str() {
                Some("outbound") => {}
                Some("inbound") => {
                    inbound += 1;
                    // The link's own address is the peer's source port,
                    // not where it can be dialled.
                    assert_ne!(Some(&p["addr"]), p["listen"].get(0), "{p}");
                }
                other => panic!("direction {other:?} in {p}"),
            }
        }
        let text = cli(&["peers", "--data-dir", data_dir(node)]);
        assert!(text.stdout.starts_with("NAME"), "{}", text.stdout);
        for p in &peers {
            let row = format!("{}  {}", str_field(p, "name"), &str_field(p, "id")[..8]);
            assert!(
                text.stdout.contains(&row),
                "no row '{row}' in\n{}",
                text.stdout
            );
        }
    }
    // Every link is inbound at one end.
    assert!(inbound > 0, "no inbound link among 5 nodes");
}

#[test]
fn only_the_admin_key_shuts_the_network_down() {
    let dir = TempDir::new("shutdown");
    let cfg = dir.join("cfg");
    for name in ["prod", "rogue"] {
        let run = cli(&["network", "init", name, "--dir", &cfg]);
        assert!(run.ok, "{}", run.stderr);
    }
    let key = format!("{cfg}/prod.admin.key");
    let key_mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&key).unwrap().permissions());
    assert_eq!(key_mode & 0o777, 0o600);
    let config = format!("{cfg}/prod.toml");
    let net_dir = TempDir::new("shutdown-net");
    let nodes = ["node-1", "node-2", "node-3", "node-4", "node-5"];
    let mut net = Testnet::start(&net_dir, nodes.len(), 1, &["--config", &config]);
    let n1 = net.node("node-1").clone();
    wait_connected(&n1, nodes.len());

    // No key: the CLI will not send an unsigned command.
    let run = cli(&["network", "shutdown", "--data-dir", data_dir(&n1)]);
    assert!(!run.ok);
    assert!(run.stderr.contains("--admin-key"), "{}", run.stderr);

    // A bad signature: refused by the node it is handed to, never sent on.
    let good = dir.join("good.cmd");
    let run = cli(&[
        "network",
        "shutdown",
        "--admin-key",
        &key,
        "--network-id",
        "prod",
        "--save",
        &good,
    ]);
    assert!(run.ok, "{}", run.stderr);
    let hex = std::fs::read_to_string(&good).unwrap();
    let hex = hex.trim();
    let flipped = if hex.ends_with('0') { "1" } else { "0" };
    let tampered = dir.join("tampered.cmd");
    std::fs::write(&tampered, format!("{}{flipped}", &hex[..hex.len() - 1])).unwrap();
    let run = send_command(&tampered, &n1);
    assert!(!run.ok);
    assert!(run.stderr.contains("signature"), "{}", run.stderr);
    wait_logs(
        &net,
        &["node-1"],
        "refusing shutdown command: it is not signed",
    );

    // The wrong key: every node hears it and refuses it.
    let run = cli(&[
        "network",
        "shutdown",
        "--admin-key",
        &format!("{cfg}/rogue.admin.key"),
        "--data-dir",
        data_dir(net.node("node-2")),
    ]);
    assert!(run.ok, "{}", run.stderr);
    wait_logs(&net, &nodes, "which is not an admin key");
    assert!(!net.log().contains("exited"), "{}", net.log());

    // The admin key: every process leaves and exits 0 within 10 s (the
    // issue's bound, as a deadline; how long it took is printed).
    let sent = Instant::now();
    let run = send_command(&good, net.node("node-3"));
    assert!(run.ok, "{}", run.stderr);
    for name in nodes.iter().chain(&["seed-1"]) {
        let exited = format!("{name} exited (exit status: 0)");
        while !net.log().contains(&exited) {
            assert!(
                sent.elapsed() < SHUTDOWN_BOUND,
                "{name} did not exit 0 within {SHUTDOWN_BOUND:?}:\n{}",
                net.log()
            );
            std::thread::sleep(POLL);
        }
    }
    println!(
        "every process exited 0, {:?} after the command was sent",
        sent.elapsed()
    );
    assert!(net.stop().success());

    // The same network again: a replay of the command is refused.
    let mut net = Testnet::start(&net_dir, nodes.len(), 1, &["--config", &config]);
    let n1 = net.node("node-1").clone();
    wait_connected(&n1, nodes.len());
    let run = send_command(&good, &n1);
    assert!(run.ok, "{}", run.stderr);
    wait_logs(&net, &nodes, "refusing shutdown command: it is a replay");
    assert!(!net.log().contains("exited"), "{}", net.log());
    assert!(net.stop().success());
}

#[test]
fn logs_are_appended_as_json_lines() {
    let dir = TempDir::new("jsonlog");
    let log = dir.join("node.log");
    let start = || {
        Proc::start(
            "logger",
            &args(&[
                "node",
                "--port",
                "0",
                "--host",
                "127.0.0.1",
                "--no-mdns",
                "--data-dir",
                &dir.join("data"),
                "--log-file",
                &log,
                "--log-format",
                "json",
            ]),
        )
    };
    let count_started = || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        for line in text.lines() {
            let v: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
            assert!(v["level"].is_string() && v["fields"].is_object(), "{line}");
        }
        text.matches("control API listening").count()
    };
    let mut first = start();
    poll("the first run to log its start", || match count_started() {
        1 => Ok(()),
        n => Err(format!("{n}")),
    });
    assert!(first.terminate().success());
    let mut second = start();
    poll(
        "the second run to append to the same file",
        || match count_started() {
            2 => Ok(()),
            n => Err(format!("{n}")),
        },
    );
    assert!(second.terminate().success());
}
