//! Real mDNS between [`Mdns`] instances, and localhost probing.
//!
//! Where the tests may run matters: mDNS multicasts to the whole link, and
//! the machine's own network is not ours to talk to. So, as root, each mDNS
//! test re-runs itself inside a fresh network namespace that has only a
//! loopback interface (and, for the two-host test, a veth pair between two
//! namespaces): nothing leaves the machine and nothing from elsewhere (an
//! avahi on the host, another test) gets in. Without root they run on the
//! host, restricted to 127.0.0.1. Where multicast does not work at all,
//! `Mdns::start` fails and the test says why and skips.
//!
//! Waits are on the discovery channel with a deadline, never bare sleeps;
//! only the "was never reported" checks collect for a bounded time, which is
//! the only way to observe an absence.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;
use std::time::Duration;

use gossipnet_proto::identity::SecretKey;
use gossipnet_proto::NodeId;
use tokio::sync::mpsc;
use tokio::time::{timeout, Instant};

use super::{net_tag, probe_targets, Discovered, Mdns};
use crate::config::{DEFAULT_PORT, DEFAULT_PORT_RANGE};

/// Set in the environment of a test re-run inside a namespace.
const IN_NETNS: &str = "GOSSIPNET_TEST_IN_NETNS";
/// Set for the helper run in each namespace of the two-host test: the
/// network id to use.
const HELPER_NET: &str = "GOSSIPNET_TEST_MDNS_HELPER_NET";

/// Longest wait for a discovery: mDNS probes for ~750 ms before it
/// announces, then queries back off; 20 s covers a loaded CI machine.
const FIND_TIMEOUT: Duration = Duration::from_secs(20);
/// How long to keep listening, after the positive result, for a report that
/// must not come.
const ABSENCE_WINDOW: Duration = Duration::from_secs(3);
/// The helper lingers this long after finding its peer, so the peer (which
/// may have started later) finds it too before its goodbye.
const HELPER_LINGER: Duration = Duration::from_secs(5);
/// Channel depth for the tests: a few peers, repeated.
const QUEUE: usize = 64;

fn new_id() -> NodeId {
    SecretKey::generate(&mut rand::rngs::OsRng).node_id()
}

/// A network id of this test run only, so concurrent runs on one host never
/// see each other.
fn fresh_network(label: &str) -> String {
    format!("test-{label}-{}", new_id().short())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A network namespace, deleted (with its interfaces) when dropped.
struct Netns(String);

impl Netns {
    /// Creates `gnt-<pid>-<tag>` with its loopback up, or says why not.
    /// `tag` must be unique within this process (tests run concurrently).
    fn new(tag: &str) -> Result<Netns, String> {
        let name = format!("gnt-{}-{tag}", std::process::id());
        ip(&["netns", "add", &name])?;
        let ns = Netns(name);
        ns.exec_ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    fn exec_ip(&self, args: &[&str]) -> Result<(), String> {
        let mut all = vec!["netns", "exec", &self.0, "ip"];
        all.extend_from_slice(args);
        ip(&all)
    }

    /// Runs the test `name` of this module, from this binary, inside the
    /// namespace.
    fn run_test(&self, name: &str, env: &[(&str, &str)]) -> std::process::Child {
        let exe = std::env::current_exe().unwrap();
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.0])
            .arg(exe)
            .args([
                &test_path(name),
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(IN_NETNS, "1")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.spawn().unwrap()
    }
}

/// The name the test harness knows the test `name` of this module by: its
/// path within the crate (`discovery::lan_tests::<name>`), which `--exact`
/// needs.
fn test_path(name: &str) -> String {
    let module = module_path!();
    let in_crate = module.split_once("::").map_or(module, |(_, rest)| rest);
    format!("{in_crate}::{name}")
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.0]);
    }
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Waits for the child, echoes its output, and returns its stdout.
fn finish(child: std::process::Child, what: &str) -> String {
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    println!("--- {what} stdout ---\n{stdout}");
    eprintln!(
        "--- {what} stderr ---\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{what} failed: {}", out.status);
    // A test path that matches nothing also exits 0: make sure it ran.
    assert!(
        stdout.contains("test result: ok. 1 passed"),
        "{what} ran no test; is its path right?"
    );
    stdout
}

/// Runs `body` isolated as the module doc says. `body` gets the addresses to
/// restrict mDNS to (empty inside a namespace: its only interface is lo).
fn isolated(test: &str, body: impl FnOnce(Vec<IpAddr>)) {
    if std::env::var_os(IN_NETNS).is_some() {
        return body(Vec::new());
    }
    match Netns::new(test) {
        Ok(ns) => {
            let child = ns.run_test(test, &[]);
            finish(child, &format!("{test} in netns {}", ns.0));
        }
        Err(reason) => {
            println!("no network namespace ({reason}); running on host loopback");
            body(vec![IpAddr::V4(Ipv4Addr::LOCALHOST)]);
        }
    }
}

/// Starts an instance, or prints why mDNS is unavailable and returns None.
fn start(
    id: NodeId,
    network: &str,
    port: u16,
    addrs: &[IpAddr],
) -> Option<(Mdns, mpsc::Receiver<Discovered>)> {
    let (tx, rx) = mpsc::channel(QUEUE);
    match Mdns::start(id, network, port, addrs.to_vec(), tx) {
        Ok(mdns) => Some((mdns, rx)),
        Err(err) => {
            println!("skipped: mDNS unavailable here: {err}");
            None
        }
    }
}

/// Receives until `want` is reported, returning it and every id seen.
async fn wait_for(
    rx: &mut mpsc::Receiver<Discovered>,
    want: NodeId,
    seen: &mut BTreeSet<NodeId>,
) -> Discovered {
    let found = timeout(FIND_TIMEOUT, async {
        loop {
            let d = rx.recv().await.expect("discovery channel closed");
            seen.insert(d.id);
            if d.id == want {
                return d;
            }
        }
    })
    .await;
    found.unwrap_or_else(|_| panic!("{} not discovered within {FIND_TIMEOUT:?}", want.short()))
}

/// Collects every id reported during `window`.
async fn collect(
    rx: &mut mpsc::Receiver<Discovered>,
    window: Duration,
    seen: &mut BTreeSet<NodeId>,
) {
    let end = Instant::now() + window;
    while let Ok(Some(d)) = tokio::time::timeout_at(end, rx.recv()).await {
        seen.insert(d.id);
    }
}

#[test]
fn two_nodes_discover_each_other() {
    isolated("two_nodes_discover_each_other", |addrs| {
        runtime().block_on(async {
            let network = fresh_network("pair");
            let (a, b) = (new_id(), new_id());
            let Some((ma, mut ra)) = start(a, &network, 40101, &addrs) else {
                return;
            };
            let Some((mb, mut rb)) = start(b, &network, 40102, &addrs) else {
                return;
            };
            let (mut seen_a, mut seen_b) = (BTreeSet::new(), BTreeSet::new());
            let at_a = wait_for(&mut ra, b, &mut seen_a).await;
            let at_b = wait_for(&mut rb, a, &mut seen_b).await;
            println!("a found {at_a:?}\nb found {at_b:?}");
            assert!(!at_a.addrs.is_empty() && !at_b.addrs.is_empty());
            assert!(at_a.addrs.iter().all(|s| s.port() == 40102), "{at_a:?}");
            assert!(at_b.addrs.iter().all(|s| s.port() == 40101), "{at_b:?}");
            assert!(!seen_a.contains(&a), "a reported itself");
            assert!(!seen_b.contains(&b), "b reported itself");
            tokio::task::spawn_blocking(move || {
                ma.stop();
                mb.stop();
            })
            .await
            .unwrap();
        });
    });
}

#[test]
fn other_network_is_not_reported() {
    isolated("other_network_is_not_reported", |addrs| {
        runtime().block_on(async {
            let network = fresh_network("same");
            let other_network = fresh_network("other");
            let (a, b, c) = (new_id(), new_id(), new_id());
            // The stranger starts first, so it is announcing throughout.
            let Some((_mc, mut rc)) = start(c, &other_network, 40203, &addrs) else {
                return;
            };
            let Some((_ma, mut ra)) = start(a, &network, 40201, &addrs) else {
                return;
            };
            let Some((_mb, mut rb)) = start(b, &network, 40202, &addrs) else {
                return;
            };
            let (mut seen_a, mut seen_b, mut seen_c) =
                (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
            wait_for(&mut ra, b, &mut seen_a).await;
            wait_for(&mut rb, a, &mut seen_b).await;
            tokio::join!(
                collect(&mut ra, ABSENCE_WINDOW, &mut seen_a),
                collect(&mut rb, ABSENCE_WINDOW, &mut seen_b),
                collect(&mut rc, ABSENCE_WINDOW, &mut seen_c),
            );
            assert_eq!(seen_a, BTreeSet::from([b]), "a saw only b");
            assert_eq!(seen_b, BTreeSet::from([a]), "b saw only a");
            assert!(seen_c.is_empty(), "c saw {seen_c:?}");
        });
    });
}

/// Two hosts: namespaces joined by a veth pair, one node in each, each must
/// find the other at its veth address. Root only.
#[test]
fn two_hosts_discover_each_other_over_veth() {
    if std::env::var_os(IN_NETNS).is_some() {
        return; // only the helper below runs inside
    }
    let (ns1, ns2) = match (Netns::new("h1"), Netns::new("h2")) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(reason), _) | (_, Err(reason)) => {
            println!("skipped: no network namespaces ({reason})");
            return;
        }
    };
    // Addresses of our own test hosts, inside the namespaces only.
    let veth = || -> Result<(), String> {
        let veth1 = format!("gv{}a", std::process::id());
        let veth2 = format!("gv{}b", std::process::id());
        ip(&[
            "link", "add", &veth1, "type", "veth", "peer", "name", &veth2,
        ])?;
        ip(&["link", "set", &veth1, "netns", &ns1.0])?;
        ip(&["link", "set", &veth2, "netns", &ns2.0])?;
        for (ns, dev, addr) in [
            (&ns1, &veth1, "10.201.0.1/24"),
            (&ns2, &veth2, "10.201.0.2/24"),
        ] {
            ns.exec_ip(&["addr", "add", addr, "dev", dev])?;
            ns.exec_ip(&["link", "set", dev, "up"])?;
        }
        Ok(())
    };
    if let Err(reason) = veth() {
        println!("skipped: no veth pair ({reason})");
        return;
    }
    let network = fresh_network("veth");
    let env = [(HELPER_NET, network.as_str())];
    let h1 = ns1.run_test("mdns_helper", &env);
    let h2 = ns2.run_test("mdns_helper", &env);
    let out1 = finish(h1, "host 1");
    let out2 = finish(h2, "host 2");
    if out1.contains("skipped:") || out2.contains("skipped:") {
        return;
    }
    let self_id = |out: &str| {
        out.lines()
            .find_map(|l| l.split_once("SELF ").map(|(_, id)| id.trim()))
            .unwrap()
            .to_string()
    };
    let found = |out: &str, id: &str| {
        out.lines()
            .find_map(|l| {
                l.split_once(&format!("FOUND {id} "))
                    .map(|(_, a)| a.to_string())
            })
            .unwrap_or_else(|| panic!("{id} not found"))
    };
    let at1 = found(&out1, &self_id(&out2));
    let at2 = found(&out2, &self_id(&out1));
    assert!(at1.contains("10.201.0.2:40302"), "host 1 found {at1}");
    assert!(at2.contains("10.201.0.1:40302"), "host 2 found {at2}");
}

/// Not a test on its own: the node run in each namespace by
/// `two_hosts_discover_each_other_over_veth`. Prints `SELF <id>`, then
/// `FOUND <id> <addrs>` for each peer, and stops a little after the first.
#[test]
fn mdns_helper() {
    let Some(network) = std::env::var_os(HELPER_NET) else {
        return;
    };
    let network = network.to_string_lossy().into_owned();
    runtime().block_on(async {
        let id = new_id();
        println!("SELF {id}");
        let Some((mdns, mut rx)) = start(id, &network, 40302, &[]) else {
            return;
        };
        let first = timeout(FIND_TIMEOUT, rx.recv())
            .await
            .expect("no peer within the deadline")
            .expect("channel closed");
        println!("FOUND {} {:?}", first.id, first.addrs);
        let mut seen = BTreeSet::new();
        collect(&mut rx, HELPER_LINGER, &mut seen).await;
        tokio::task::spawn_blocking(move || mdns.stop())
            .await
            .unwrap();
    });
}

/// An mDNS implementation we did not write (python-zeroconf, through
/// `scripts/mdns_browse.py`) lists our service with its port and TXT entries.
/// Skipped where python3 or its zeroconf package is missing.
#[test]
fn zeroconf_lists_our_service() {
    let has_zeroconf = Command::new("python3")
        .args(["-c", "import zeroconf"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_zeroconf {
        println!("skipped: python3 with zeroconf not found (pip install zeroconf)");
        return;
    }
    isolated("zeroconf_lists_our_service", |addrs| {
        runtime().block_on(async {
            let network = fresh_network("zeroconf");
            let id = new_id();
            let Some((mdns, _rx)) = start(id, &network, 40401, &addrs) else {
                return;
            };
            let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/mdns_browse.py");
            let mut cmd = Command::new("python3");
            cmd.arg(script).args(["--seconds", "5"]);
            for a in &addrs {
                cmd.args(["--interface", &a.to_string()]);
            }
            let out = tokio::task::spawn_blocking(move || cmd.output())
                .await
                .unwrap()
                .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            println!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
            let ours = stdout
                .lines()
                .find(|l| l.contains(&format!("\"id\": \"{id}\"")))
                .unwrap_or_else(|| panic!("zeroconf did not list {}", id.short()));
            assert!(
                ours.contains(&format!("\"name\": \"{}", mdns.fullname())),
                "{ours}"
            );
            assert!(ours.contains("\"port\": 40401"), "{ours}");
            assert!(ours.contains("\"v\": \"1\""), "{ours}");
            let net = net_tag(&network);
            assert!(ours.contains(&format!("\"net\": \"{net}\"")), "{ours}");
            assert!(!ours.contains(&network), "the network id is not published");
            tokio::task::spawn_blocking(move || mdns.stop())
                .await
                .unwrap();
        });
    });
}

#[test]
fn probe_targets_cover_the_default_range_but_us() {
    let own = DEFAULT_PORT + 3;
    let targets = probe_targets(own);
    assert_eq!(targets.len(), usize::from(DEFAULT_PORT_RANGE) - 1);
    assert!(targets
        .iter()
        .all(|t| t.ip() == IpAddr::V4(Ipv4Addr::LOCALHOST)));
    assert!(targets.iter().all(|t| t.port() != own));
    assert!(targets
        .iter()
        .all(|t| (DEFAULT_PORT..DEFAULT_PORT + DEFAULT_PORT_RANGE).contains(&t.port())));
    // A port outside the range excludes nothing.
    assert_eq!(probe_targets(1).len(), usize::from(DEFAULT_PORT_RANGE));
}
