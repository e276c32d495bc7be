//! Several hosts on one machine: nodes in Linux network namespaces that the
//! test makes itself (`ip netns` and veth pairs through a bridge), so that
//! what crosses a network, addresses, multicast DNS, is really tested, and
//! no packet leaves the machine.
//!
//! The namespaces need root; elsewhere each test prints why it is skipped.

mod common;

use std::process::Command;

use common::netns::{can_use_netns, ip, tag};
use common::{args, exchange_all, Proc, TempDir, DEADLINE};

/// A set of namespaces: two hosts, `h1` (10.77.N.1) and `h2` (10.77.N.2),
/// wired through a bridge that lives in a third namespace, `sw`. Removed
/// when dropped.
struct Hosts {
    names: Vec<String>,
    h1: String,
    h2: String,
    ip1: String,
    ip2: String,
    /// The bridge's namespace and h1's port on the bridge, to cut h1 off.
    sw: String,
    port1: String,
}

impl Hosts {
    fn new(subnet: u8) -> Hosts {
        let t = tag();
        let (h1, h2, sw) = (format!("gn{t}a"), format!("gn{t}b"), format!("gn{t}s"));
        let mut hosts = Hosts {
            names: Vec::new(),
            h1: h1.clone(),
            h2: h2.clone(),
            ip1: format!("10.77.{subnet}.1"),
            ip2: format!("10.77.{subnet}.2"),
            sw: sw.clone(),
            port1: format!("v{t}a1"),
        };
        for ns in [&h1, &h2, &sw] {
            assert!(ip(&["netns", "add", ns]), "cannot create namespace {ns}");
            hosts.names.push(ns.clone());
            assert!(ip(&["-n", ns, "link", "set", "lo", "up"]));
        }
        assert!(ip(&["-n", &sw, "link", "add", "br0", "type", "bridge"]));
        assert!(ip(&["-n", &sw, "link", "set", "br0", "up"]));
        for (host, addr, side) in [(&h1, &hosts.ip1, "a"), (&h2, &hosts.ip2, "b")] {
            let (inner, outer) = (format!("v{t}{side}0"), format!("v{t}{side}1"));
            assert!(ip(&[
                "-n", host, "link", "add", &inner, "type", "veth", "peer", "name", &outer, "netns",
                &sw
            ]));
            assert!(ip(&["-n", &sw, "link", "set", &outer, "master", "br0"]));
            assert!(ip(&["-n", &sw, "link", "set", &outer, "up"]));
            assert!(ip(&[
                "-n",
                host,
                "addr",
                "add",
                &format!("{addr}/24"),
                "dev",
                &inner
            ]));
            assert!(ip(&["-n", host, "link", "set", &inner, "up"]));
        }
        hosts
    }
}

impl Hosts {
    /// Cuts h1 off the bridge (a pulled cable: packets are dropped, not
    /// refused), or plugs it back in.
    fn cable(&self, plugged: bool) {
        let state = if plugged { "up" } else { "down" };
        assert!(ip(&["-n", &self.sw, "link", "set", &self.port1, state]));
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for ns in &self.names {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn host_node(dir: &TempDir, name: &str, port: u16, extra: &[String]) -> Vec<String> {
    let mut a = args(&[
        "node",
        &port.to_string(),
        "--data-dir",
        &dir.join(name),
        "--name",
        name,
    ]);
    a.extend(extra.iter().cloned());
    a
}

#[test]
fn two_hosts_three_nodes_each_given_the_other_hosts_addresses() {
    if let Some(why) = can_use_netns() {
        println!("skipped: {why}");
        return;
    }
    let dir = TempDir::new("netns-static");
    let hosts = Hosts::new(1);
    let ports = [7001u16, 7002, 7003];
    let mut nodes = Vec::new();
    for (ns, other_ip, side) in [(&hosts.h1, &hosts.ip2, "x"), (&hosts.h2, &hosts.ip1, "y")] {
        for (i, port) in ports.iter().enumerate() {
            let mut extra: Vec<String> = ports.iter().map(|p| format!("{other_ip}:{p}")).collect();
            extra.push("--no-mdns".into());
            let name = format!("{side}{i}");
            nodes.push(Proc::start_in(
                Some(ns),
                &name,
                &host_node(&dir, &name, *port, &extra),
            ));
        }
    }
    for n in &nodes {
        assert!(n.wait_neighbors(1), "{}", n.logs());
    }
    exchange_all(&mut nodes, "across hosts");
}

#[test]
fn two_hosts_find_each_other_by_mdns_and_zeroconf_sees_them() {
    if let Some(why) = can_use_netns() {
        println!("skipped: {why}");
        return;
    }
    let dir = TempDir::new("netns-mdns");
    let hosts = Hosts::new(2);
    let mut nodes = Vec::new();
    for (ns, side) in [(&hosts.h1, "x"), (&hosts.h2, "y")] {
        for i in 0..3 {
            // No peers, no seeds: default ports, discovery on.
            let name = format!("{side}{i}");
            let port = 7465 + i as u16;
            nodes.push(Proc::start_in(
                Some(ns),
                &name,
                &host_node(&dir, &name, port, &[]),
            ));
        }
    }
    for n in &nodes {
        assert!(n.wait_neighbors(1), "{}", n.logs());
    }
    // Only mDNS crosses between the hosts: a message reaching all six shows
    // the two found each other.
    exchange_all(&mut nodes, "found by mdns");

    // An mDNS implementation we did not write lists the service, with the
    // right port, from the other host.
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/mdns_browse.py");
    let python_ok = Command::new("python3")
        .args(["-c", "import zeroconf"])
        .status()
        .is_ok_and(|s| s.success());
    if !python_ok {
        println!("zeroconf check skipped: python3 with zeroconf is not installed");
        return;
    }
    let deadline = std::time::Instant::now() + DEADLINE;
    let wanted_port = "\"port\": 7465";
    loop {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &hosts.h2,
                "python3",
                script,
                "--seconds",
                "4",
            ])
            .output()
            .expect("run mdns_browse.py");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let seen = text
            .lines()
            .any(|l| l.contains(wanted_port) && l.contains(&hosts.ip1) && l.contains(&nodes[0].id));
        if seen {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "zeroconf did not list x0 at {}:7465; it printed:\n{text}\n{}",
            hosts.ip1,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn two_default_nodes_on_one_machine_without_multicast_find_each_other() {
    if let Some(why) = can_use_netns() {
        println!("skipped: {why}");
        return;
    }
    let dir = TempDir::new("netns-probe");
    let ns = format!("gn{}p", tag());
    assert!(ip(&["netns", "add", &ns]));
    struct Cleanup(String);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
        }
    }
    let _cleanup = Cleanup(ns.clone());
    // Loopback only, and no multicast on it.
    assert!(ip(&["-n", &ns, "link", "set", "lo", "up"]));
    assert!(ip(&["-n", &ns, "link", "set", "lo", "multicast", "off"]));
    let start = |name: &str| {
        // Default settings: no port, no peers; only a data dir of its own.
        Proc::start_in(
            Some(&ns),
            name,
            &args(&["node", "--data-dir", &dir.join(name), "--name", name]),
        )
    };
    let mut nodes = vec![start("p0"), start("p1")];
    assert_ne!(nodes[0].addr, nodes[1].addr);
    for n in &nodes {
        assert!(n.wait_neighbors(1), "{}", n.logs());
    }
    exchange_all(&mut nodes, "probed");
}

#[test]
fn six_and_six_cut_apart_while_each_side_speaks_end_with_everything_once() {
    if let Some(why) = can_use_netns() {
        println!("skipped: {why}");
        return;
    }
    const SIDE: usize = 6;
    const LINES: usize = 100;
    let dir = TempDir::new("netns-partition");
    let hosts = Hosts::new(3);
    let ports: Vec<u16> = (0..SIDE as u16).map(|i| 7101 + i).collect();
    let mut nodes = Vec::new();
    for (ns, side) in [(&hosts.h1, "x"), (&hosts.h2, "y")] {
        for (i, port) in ports.iter().enumerate() {
            // Every other node, on both hosts, as a static peer.
            let mut extra: Vec<String> = ports
                .iter()
                .flat_map(|p| [format!("{}:{p}", hosts.ip1), format!("{}:{p}", hosts.ip2)])
                .collect();
            extra.push("--no-mdns".into());
            let name = format!("{side}{i}");
            nodes.push(Proc::start_in(
                Some(ns),
                &name,
                &host_node(&dir, &name, *port, &extra),
            ));
        }
    }
    for n in &nodes {
        assert!(n.wait_neighbors(1), "{}", n.logs());
    }
    exchange_all(&mut nodes, "before the cut");
    hosts.cable(false);
    // Each side says 100 lines, spread over its six nodes.
    for (k, node) in nodes.iter_mut().enumerate() {
        let side = if k < SIDE { "x" } else { "y" };
        for i in (0..LINES).filter(|i| i % SIDE == k % SIDE) {
            node.say(&format!("cut {side} {i}"));
        }
    }
    let line_of = |side: &str, i: usize| format!("cut {side} {i}");
    // Each side hears its own side's lines while cut off.
    for (k, node) in nodes.iter().enumerate() {
        let side = if k < SIDE { "x" } else { "y" };
        for i in (0..LINES).filter(|i| i % SIDE != k % SIDE) {
            assert!(node.wait_output(&line_of(side, i)), "{}", node.logs());
        }
    }
    hosts.cable(true);
    for (k, node) in nodes.iter().enumerate() {
        for side in ["x", "y"] {
            let mine = |i: &usize| (k < SIDE) == (side == "x") && i % SIDE == k % SIDE;
            for i in (0..LINES).filter(|i| !mine(i)) {
                assert!(
                    node.wait_output(&line_of(side, i)),
                    "{} lacks '{}' after the heal\n{}",
                    node.name,
                    line_of(side, i),
                    node.logs()
                );
            }
        }
    }
    // A marker after everything, then each line exactly once everywhere.
    nodes[0].say("after the heal");
    for n in &nodes[1..] {
        assert!(n.wait_output("after the heal"), "{}", n.logs());
    }
    for (k, node) in nodes.iter().enumerate() {
        let lines = node.stdout.snapshot();
        for side in ["x", "y"] {
            for i in 0..LINES {
                let text = format!("{} ", line_of(side, i));
                let ends = |l: &String| l.ends_with(&line_of(side, i)) || l.contains(&text);
                let count = lines.iter().filter(|l| ends(l)).count();
                let mine = (k < SIDE) == (side == "x") && i % SIDE == k % SIDE;
                assert_eq!(
                    count,
                    usize::from(!mine),
                    "{}: '{}'",
                    node.name,
                    line_of(side, i)
                );
            }
        }
    }
}
