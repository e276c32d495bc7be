//! Real nodes on a real network: `gossipnet node` and `gossipnet seed`
//! processes on loopback, with real TCP, Noise handshakes and SQLite.
//!
//! Each test starts its own processes on ports the kernel handed out (port
//! 0, read back from the readiness line; or, where nodes must know each
//! other's addresses before they start, a listening socket the test binds
//! and hands over), and waits for what it checks by watching their output
//! with deadlines. Every process is killed when its test ends, pass or fail.

mod common;

use std::net::TcpListener;

use common::{args, established_to, exchange_all, listener, port_of, Proc, TempDir};

fn node_args(port: u16, dir: &TempDir, name: &str, extra: &[String]) -> Vec<String> {
    let mut a = args(&[
        "node",
        &port.to_string(),
        "--host",
        "127.0.0.1",
        "--data-dir",
        &dir.join(name),
        "--name",
        name,
        // Tests running side by side must not find each other on the LAN.
        "--no-mdns",
    ]);
    a.extend(extra.iter().cloned());
    a
}

fn peer(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

/// Nodes a, b, c started as `gossipnet node 8001 127.0.0.1:8002
/// 127.0.0.1:8003` and its two rotations, on ports the kernel handed out
/// (each node is handed its bound listening socket).
fn classic_three(dir: &TempDir) -> Vec<Proc> {
    let listeners: Vec<TcpListener> = (0..3).map(|_| listener()).collect();
    let ports: Vec<u16> = listeners.iter().map(port_of).collect();
    let names = ["a", "b", "c"];
    listeners
        .into_iter()
        .enumerate()
        .map(|(i, l)| {
            let others = [peer(ports[(i + 1) % 3]), peer(ports[(i + 2) % 3])];
            Proc::start_on(names[i], &node_args(ports[i], dir, names[i], &others), l)
        })
        .collect()
}

#[test]
fn three_nodes_in_the_classic_form_deliver_everything_exactly_once() {
    let dir = TempDir::new("classic");
    let mut nodes = classic_three(&dir);
    for n in &nodes {
        assert!(
            n.wait_neighbors(2),
            "{} did not link with both\n{}",
            n.name,
            n.logs()
        );
    }
    exchange_all(&mut nodes, "hello");
    for n in &mut nodes {
        assert!(n.terminate().success(), "{} did not exit cleanly", n.name);
    }
}

fn write_config(dir: &TempDir, seeds: &[u16], extra: &str) -> String {
    let seeds: Vec<String> = seeds.iter().map(|p| format!("\"127.0.0.1:{p}\"")).collect();
    let text = format!(
        "network_id = \"testnet\"\nseeds = [{}]\n{extra}\n",
        seeds.join(", ")
    );
    let path = dir.join("network.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A seed on the listening socket `l` (its address is in the config, so
/// it is bound before the config is written).
fn start_seed(dir: &TempDir, name: &str, l: TcpListener, config: &str) -> Proc {
    let port = port_of(&l);
    Proc::start_on(
        name,
        &args(&[
            "seed",
            &port.to_string(),
            "--host",
            "127.0.0.1",
            "--config",
            config,
            "--data-dir",
            &dir.join(name),
        ]),
        l,
    )
}

#[test]
fn seeds_form_one_overlay_that_survives_five_crashes() {
    let dir = TempDir::new("seeds");
    let seed_listeners = [listener(), listener()];
    let seed_ports: Vec<u16> = seed_listeners.iter().map(port_of).collect();
    let config = write_config(&dir, &seed_ports, "");
    let seeds: Vec<Proc> = seed_listeners
        .into_iter()
        .enumerate()
        .map(|(i, l)| start_seed(&dir, &format!("seed{i}"), l, &config))
        .collect();
    let mut nodes: Vec<Proc> = (0..20)
        .map(|i| {
            let name = format!("n{i:02}");
            let cfg = args(&["--config", &config]);
            Proc::start(&name, &node_args(0, &dir, &name, &cfg))
        })
        .collect();
    for n in &nodes {
        assert!(
            n.wait_neighbors(1),
            "{} never got a neighbour\n{}",
            n.name,
            n.logs()
        );
    }
    // One broadcast reaching all 20 shows the overlay is one component.
    nodes[0].say("first broadcast");
    for n in nodes.iter().skip(1) {
        assert!(
            n.wait_output("first broadcast"),
            "{} missed it\n{}",
            n.name,
            n.logs()
        );
    }
    let dead: Vec<String> = nodes[15..].iter().map(|n| n.id.clone()).collect();
    for n in &mut nodes[15..] {
        n.kill9();
    }
    nodes[3].say("after the crash");
    for (i, n) in nodes.iter().enumerate().take(15) {
        if i != 3 {
            assert!(
                n.wait_output("after the crash"),
                "{} missed it\n{}",
                n.name,
                n.logs()
            );
        }
    }
    // The seeds drop each dead node once their own probe of it fails.
    for seed in &seeds {
        for id in &dead {
            assert!(
                seed.wait_log(&["removed node from registry", id, "dead"]),
                "{} kept {id}\n{}",
                seed.name,
                seed.logs()
            );
        }
    }
}

#[test]
fn a_restarted_node_keeps_its_id_and_rejoins_from_its_address_book() {
    let dir = TempDir::new("restart");
    let seed_listener = listener();
    let config = write_config(&dir, &[port_of(&seed_listener)], "");
    let mut seed = start_seed(&dir, "seed", seed_listener, &config);
    let cfg = args(&["--config", &config]);
    let mut nodes: Vec<Proc> = (0..4)
        .map(|i| {
            let name = format!("r{i}");
            Proc::start(&name, &node_args(0, &dir, &name, &cfg))
        })
        .collect();
    for n in &nodes {
        assert!(n.wait_neighbors(1), "{}", n.logs());
    }
    nodes[0].say("warm up");
    for n in nodes.iter().skip(1) {
        assert!(n.wait_output("warm up"), "{}", n.logs());
    }
    let mut leaver = nodes.remove(0);
    let id = leaver.id.clone();
    assert!(leaver.terminate().success());
    assert!(seed.terminate().success());
    // Same data dir and network, no peers, no seeds: only the address book
    // is left. (A new port: the book is what it dials out from.)
    let same_network = args(&["--network-id", "testnet"]);
    let mut back = Proc::start("r0-again", &node_args(0, &dir, "r0", &same_network));
    assert_eq!(back.id, id, "the restarted node has a new identity");
    assert!(back.wait_neighbors(1), "{}", back.logs());
    back.say("i am back");
    for n in &nodes {
        assert!(
            n.wait_output("i am back"),
            "{} missed it\n{}",
            n.name,
            n.logs()
        );
    }
    nodes[1].say("welcome back");
    assert!(back.wait_output("welcome back"), "{}", back.logs());
    assert!(back.terminate().success());
}

#[test]
fn bad_peers_are_refused_and_good_ones_still_served() {
    use std::io::Write;
    let dir = TempDir::new("refuse");
    let psk_a = dir.join("a.psk");
    std::fs::write(&psk_a, "11".repeat(32)).unwrap();
    let psk_b = dir.join("b.psk");
    std::fs::write(&psk_b, "22".repeat(32)).unwrap();
    let cfg_path = dir.join("fast.toml");
    std::fs::write(
        &cfg_path,
        "network_id = \"alpha\"\n[limits]\nhandshake_timeout_ms = 500\n",
    )
    .unwrap();
    let a = Proc::start(
        "a",
        &node_args(
            0,
            &dir,
            "a",
            &args(&["--config", &cfg_path, "--psk-file", &psk_a]),
        ),
    );
    let a_addr = a.addr.clone();

    // Another network.
    let wrong_net = Proc::start(
        "wrong-net",
        &node_args(
            0,
            &dir,
            "wrong-net",
            &args(&["--network-id", "beta", "--psk-file", &psk_a, &a_addr]),
        ),
    );
    assert!(
        a.wait_log(&["refused", "different network"]),
        "{}",
        a.logs()
    );
    assert!(
        wrong_net.wait_log(&["refused", "different network"]),
        "{}",
        wrong_net.logs()
    );

    // The right network, the wrong key.
    let wrong_key = Proc::start(
        "wrong-key",
        &node_args(
            0,
            &dir,
            "wrong-key",
            &args(&["--network-id", "alpha", "--psk-file", &psk_b, &a_addr]),
        ),
    );
    assert!(a.wait_log(&["refused", "pre-shared key"]), "{}", a.logs());
    assert!(
        wrong_key.wait_log(&["refused", "pre-shared key"]),
        "{}",
        wrong_key.logs()
    );

    // Garbage instead of a handshake.
    let mut garbage = std::net::TcpStream::connect(&a_addr).unwrap();
    garbage
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert!(
        a.wait_log(&["refused", "not speaking the gossipnet protocol"]),
        "{}",
        a.logs()
    );

    // A handshake that stalls.
    let stall = std::net::TcpStream::connect(&a_addr).unwrap();
    assert!(a.wait_log(&["refused", "timed out"]), "{}", a.logs());
    drop(stall);

    // A good peer still gets in, and messages flow both ways.
    let mut good = Proc::start(
        "good",
        &node_args(
            0,
            &dir,
            "good",
            &args(&["--network-id", "alpha", "--psk-file", &psk_a, &a_addr]),
        ),
    );
    let mut a = a;
    assert!(good.wait_neighbors(1), "{}", good.logs());
    assert!(a.wait_neighbors(1), "{}", a.logs());
    good.say("let me in");
    assert!(a.wait_output("let me in"), "{}", a.logs());
    a.say("welcome");
    assert!(good.wait_output("welcome"), "{}", good.logs());
    assert!(a.running());
}

#[test]
fn two_nodes_dialling_each_other_at_once_keep_one_link() {
    let dir = TempDir::new("simul");
    let (la, lb) = (listener(), listener());
    let (pa, pb) = (port_of(&la), port_of(&lb));
    let mut a = Proc::start_on("a", &node_args(pa, &dir, "a", &[peer(pb)]), la);
    let mut b = Proc::start_on("b", &node_args(pb, &dir, "b", &[peer(pa)]), lb);
    assert!(a.wait_neighbors(1), "{}", a.logs());
    assert!(b.wait_neighbors(1), "{}", b.logs());
    a.say("ping over the one link");
    assert!(b.wait_output("ping over the one link"));
    b.say("pong over the one link");
    assert!(
        a.wait_output("pong over the one link"),
        "{}\n{}",
        a.logs(),
        b.logs()
    );
    // Poll (with a deadline) until any duplicate connection has been shut.
    let deadline = std::time::Instant::now() + common::DEADLINE;
    let mut count = established_to(&[pa, pb]);
    while count != 1 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
        count = established_to(&[pa, pb]);
    }
    assert_eq!(count, 1, "expected one connection between the nodes");
    assert!(a.terminate().success());
    assert!(b.terminate().success());
}

#[test]
fn a_leaving_node_is_replaced_without_waiting_for_a_timeout() {
    let dir = TempDir::new("leave");
    let seed_listener = listener();
    // Liveness timeouts far beyond the test: only the leave itself can
    // tell the neighbours.
    let config = write_config(
        &dir,
        &[port_of(&seed_listener)],
        "[protocol]\nping_after_ms = 600000\ndead_after_ms = 900000\n",
    );
    let _seed = start_seed(&dir, "seed", seed_listener, &config);
    let cfg = args(&["--config", &config]);
    let mut nodes: Vec<Proc> = (0..6)
        .map(|i| {
            let name = format!("l{i}");
            Proc::start(&name, &node_args(0, &dir, &name, &cfg))
        })
        .collect();
    for n in &nodes {
        assert!(n.wait_neighbors(1), "{}", n.logs());
    }
    nodes[1].say("before");
    for (i, n) in nodes.iter().enumerate() {
        if i != 1 {
            assert!(n.wait_output("before"), "{}", n.logs());
        }
    }
    let mut leaver = nodes.remove(0);
    let short = leaver.short().to_string();
    assert!(leaver.terminate().success(), "{}", leaver.logs());
    // Its neighbours heard the goodbye.
    let deadline = std::time::Instant::now() + common::DEADLINE;
    let heard = |n: &Proc| {
        n.stderr
            .snapshot()
            .iter()
            .any(|l| l.contains("peer left the network") && l.contains(&short))
    };
    while !nodes.iter().any(heard) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(nodes.iter().any(heard), "no neighbour heard the leave");
    nodes[0].say("after the leave");
    for n in nodes.iter().skip(1) {
        assert!(
            n.wait_output("after the leave"),
            "{} missed it\n{}",
            n.name,
            n.logs()
        );
    }
}

/// Nothing any other node printed or logged contains `secret`.
fn nobody_else_saw(nodes: &[&Proc], secret: &str) {
    for n in nodes {
        let all = n.stdout.snapshot().join("\n") + &n.stderr.snapshot().join("\n");
        assert!(!all.contains(secret), "{} saw the direct message", n.name);
    }
}

#[test]
fn a_direct_message_reaches_its_recipient_only() {
    let dir = TempDir::new("dm");
    let mut nodes = classic_three(&dir);
    for n in &nodes {
        assert!(n.wait_neighbors(2), "{}", n.logs());
    }
    let to = nodes[2].id.clone();
    nodes[0].say(&format!("/dm {to} the eagle lands at nine"));
    assert!(nodes[2].wait_output("(dm) a ("), "{}", nodes[2].logs());
    assert!(nodes[2].wait_output("the eagle lands at nine"));
    // A broadcast sent after it has reached b: had b been given the direct
    // message in the clear, it would have printed it by now.
    nodes[0].say("after the dm");
    assert!(nodes[1].wait_output("after the dm"));
    nobody_else_saw(&[&nodes[1]], "the eagle lands at nine");
    nobody_else_saw(&[&nodes[0]], "(dm)");
}

#[test]
fn a_direct_message_is_relayed_when_no_direct_link_can_be_made() {
    let dir = TempDir::new("dm-relay");
    // c publishes an address nobody can dial, so a cannot link to it: the
    // only way from a to c is through b.
    let (_held, dead_end) = common::undialable();
    let b = Proc::start("b", &node_args(0, &dir, "b", &[]));
    let mut a = Proc::start("a", &node_args(0, &dir, "a", std::slice::from_ref(&b.addr)));
    let c = Proc::start(
        "c",
        &node_args(0, &dir, "c", &args(&["--advertise", &dead_end, &b.addr])),
    );
    assert!(a.wait_neighbors(1) && c.wait_neighbors(1) && b.wait_neighbors(2));
    a.say("warm up");
    assert!(
        c.wait_output("warm up"),
        "{}\n{}\n{}",
        c.logs(),
        b.logs(),
        a.logs()
    );
    a.say(&format!("/dm {} relayed secret 42", c.id));
    assert!(
        c.wait_output("relayed secret 42"),
        "{}\n{}",
        c.logs(),
        a.logs()
    );
    a.say("after the relayed dm");
    assert!(b.wait_output("after the relayed dm"));
    nobody_else_saw(&[&b], "relayed secret 42");
}

/// A supervisor may signal a node the moment it reads the readiness line.
/// The node must already be watching for the signal then, and leave
/// gracefully (exit 0) instead of being killed by its default action. The
/// signal is sent from the thread that reads the line, with no process in
/// between, to make the window as narrow as a supervisor's.
#[test]
fn a_sigterm_right_after_the_readiness_line_is_a_graceful_leave() {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let dir = TempDir::new("early-term");
    for i in 0..20 {
        let name = format!("t{i}");
        let mut child = Command::new(common::bin())
            .args(node_args(0, &dir, &name, &[]))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start gossipnet");
        let pid = Pid::from_raw(child.id() as i32);
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut seen = Vec::new();
        for line in lines.by_ref() {
            let line = line.expect("read stderr");
            let ready = line.contains(" listening on ");
            seen.push(line);
            if ready {
                kill(pid, Signal::SIGTERM).expect("signal the node");
                break;
            }
        }
        std::thread::spawn(move || lines.for_each(drop));
        let status = child.wait().expect("wait for the node");
        assert!(
            status.success(),
            "run {i}: the node did not leave gracefully ({status}); stderr:\n{}",
            seen.join("\n")
        );
    }
}
