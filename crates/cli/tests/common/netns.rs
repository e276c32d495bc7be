//! Network namespaces a test makes itself, and the faults it injects into
//! them: a LAN of hosts (one namespace each, a veth into a bridge that
//! lives in a switch namespace), cuts between groups of hosts (nftables in
//! the switch), random loss (nftables `numgen random` on a host's output)
//! and slow links (an htb rate limit on a veth). Every namespace is removed
//! when its owner is dropped, also when the test fails. Nothing leaves the
//! machine: the bridge has no port outside the test's namespaces.
//!
//! All of it needs root, iproute2 and, for the faults, nftables; tests ask
//! [`can_use_netns`] and [`can_use_nft`] first and skip with the reason.

use std::io::Write;
use std::process::{Command, Output, Stdio};

/// Runs `ip ARGS`; whether it succeeded.
pub fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .status()
        .is_ok_and(|s| s.success())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Why namespaces cannot be made here, if they cannot.
pub fn can_use_netns() -> Option<&'static str> {
    if !is_root() {
        return Some("network namespaces need root");
    }
    let iproute = Command::new("ip")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if !iproute {
        return Some("iproute2 (`ip`) is not installed");
    }
    None
}

/// Why namespaces with nftables rules and tc qdiscs cannot be made here,
/// if they cannot.
pub fn can_use_nft() -> Option<&'static str> {
    if let Some(why) = can_use_netns() {
        return Some(why);
    }
    let nft = Command::new("nft")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !nft {
        return Some("nftables (`nft`) is not installed; scripts/test installs it");
    }
    let tc = Command::new("tc")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if !tc {
        return Some("`tc` (iproute2) is not installed");
    }
    None
}

/// A short tag unique to this test process and call, for interface and
/// namespace names (interface names are at most 15 bytes).
pub fn tag() -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    // Twelve bits of the process id and four of a counter: four hex digits.
    format!("{:x}", ((std::process::id() & 0xfff) << 4) | (n & 0xf))
}

/// Runs `PROGRAM ARGS` inside namespace `ns` to the end.
pub fn exec_in(ns: &str, program: &str, args: &[&str]) -> Output {
    Command::new("ip")
        .args(["netns", "exec", ns, program])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run ip netns exec")
}

/// Loads an nftables ruleset (the text `nft -f` reads) into namespace `ns`.
pub fn nft(ns: &str, ruleset: &str) {
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, "nft", "-f", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run nft");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(ruleset.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "nft refused in {ns}: {}\n{ruleset}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `tc ARGS` inside namespace `ns`, and fails the test if it fails.
pub fn tc(ns: &str, args: &[&str]) {
    let out = exec_in(ns, "tc", args);
    assert!(
        out.status.success(),
        "tc {args:?} in {ns}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Named namespaces, each removed (with every interface in it) when this
/// is dropped.
#[derive(Default)]
pub struct Namespaces(Vec<String>);

impl Namespaces {
    /// Makes a namespace with its loopback up.
    pub fn add(&mut self, name: &str) {
        assert!(
            ip(&["netns", "add", name]),
            "cannot create namespace {name}"
        );
        self.0.push(name.to_string());
        assert!(ip(&["-n", name, "link", "set", "lo", "up"]));
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in &self.0 {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// The interface every host has on the LAN.
pub const HOST_IF: &str = "eth0";

/// Hosts on one bridge: host `i` is namespace `hosts[i]`, with address
/// `addrs[i]` (10.88.0.0/16) on [`HOST_IF`], whose other end is port `p{i}`
/// of the bridge in the switch namespace.
pub struct Lan {
    pub hosts: Vec<String>,
    pub addrs: Vec<String>,
    pub switch: String,
    _spaces: Namespaces,
}

impl Lan {
    pub fn new(count: usize) -> Lan {
        assert!(count < 250 * 250, "too many hosts for one /16");
        // Namespace names are global: the process id and a counter make
        // them unique on this machine, across test binaries that run at once.
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let base = format!("gnf{}x{n}", std::process::id());
        let mut spaces = Namespaces::default();
        let switch = format!("{base}sw");
        spaces.add(&switch);
        assert!(ip(&["-n", &switch, "link", "add", "br0", "type", "bridge"]));
        assert!(ip(&["-n", &switch, "link", "set", "br0", "up"]));
        let mut hosts = Vec::new();
        let mut addrs = Vec::new();
        for i in 0..count {
            let host = format!("{base}h{i}");
            spaces.add(&host);
            let port = Self::port(i);
            assert!(ip(&[
                "-n", &host, "link", "add", HOST_IF, "type", "veth", "peer", "name", &port,
                "netns", &switch
            ]));
            assert!(ip(&["-n", &switch, "link", "set", &port, "master", "br0"]));
            assert!(ip(&["-n", &switch, "link", "set", &port, "up"]));
            let addr = format!("10.88.{}.{}", i / 250, i % 250 + 1);
            assert!(ip(&[
                "-n",
                &host,
                "addr",
                "add",
                &format!("{addr}/16"),
                "dev",
                HOST_IF
            ]));
            assert!(ip(&["-n", &host, "link", "set", HOST_IF, "up"]));
            hosts.push(host);
            addrs.push(addr);
        }
        Lan {
            hosts,
            addrs,
            switch,
            _spaces: spaces,
        }
    }

    /// The bridge port of host `i`, in the switch namespace.
    pub fn port(i: usize) -> String {
        format!("p{i}")
    }

    /// Drops every frame between a host of `a` and a host of `b`, both
    /// ways, at the bridge (a partition: packets vanish, nothing is
    /// refused); each side still reaches its own.
    pub fn cut(&self, a: &[usize], b: &[usize]) {
        let names = |side: &[usize]| {
            side.iter()
                .map(|&i| format!("\"{}\"", Self::port(i)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let (a, b) = (names(a), names(b));
        nft(
            &self.switch,
            &format!(
                "table bridge partition {{\n\
                 \x20 chain pass {{\n\
                 \x20   type filter hook forward priority 0; policy accept;\n\
                 \x20   iifname {{ {a} }} oifname {{ {b} }} drop\n\
                 \x20   iifname {{ {b} }} oifname {{ {a} }} drop\n\
                 \x20 }}\n\
                 }}\n"
            ),
        );
    }

    /// Removes the cut: every host reaches every other again.
    pub fn heal(&self) {
        nft(&self.switch, "delete table bridge partition\n");
    }

    /// Drops `percent` of the packets host `i` sends on the LAN, at random
    /// (loopback inside the host is spared).
    pub fn lossy(&self, i: usize, percent: u32) {
        nft(
            &self.hosts[i],
            &format!(
                "table inet loss {{\n\
                 \x20 chain out {{\n\
                 \x20   type filter hook output priority 0; policy accept;\n\
                 \x20   oifname \"{HOST_IF}\" numgen random mod 100 < {percent} counter drop\n\
                 \x20 }}\n\
                 }}\n"
            ),
        );
    }

    /// Packets [`Lan::lossy`] has dropped on host `i` so far.
    pub fn dropped(&self, i: usize) -> u64 {
        let out = exec_in(&self.hosts[i], "nft", &["list", "table", "inet", "loss"]);
        let text = String::from_utf8_lossy(&out.stdout);
        text.split_whitespace()
            .skip_while(|w| *w != "packets")
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no drop counter on {}: {text}", self.hosts[i]))
    }

    /// Limits host `i`'s link to `rate` (tc's notation, e.g. `1mbit`) both
    /// ways: an htb qdisc on its own end for what it sends, and on its
    /// bridge port for what it receives.
    pub fn slow(&self, i: usize, rate: &str) {
        let port = Self::port(i);
        for (ns, dev) in [(self.hosts[i].as_str(), HOST_IF), (&self.switch, &port)] {
            tc(
                ns,
                &[
                    "qdisc", "add", "dev", dev, "root", "handle", "1:", "htb", "default", "10",
                ],
            );
            tc(
                ns,
                &[
                    "class", "add", "dev", dev, "parent", "1:", "classid", "1:10", "htb", "rate",
                    rate,
                ],
            );
        }
    }
}
