//! Faults injected into networks of real `gossipnet` processes, and what
//! must still hold afterwards: every broadcast reaches every node that
//! should have it, each exactly once.
//!
//! - a partition: 12 hosts (one network namespace and one node each, on a
//!   bridge) cut 6 from 6 for 30 s by nftables at the bridge, then healed:
//!   one overlay again, the lines of the cut caught up, new lines everywhere;
//! - loss and slow links: 10 hosts, each dropping 10% of what it sends
//!   (nftables `numgen random`), four of them behind 1 mbit/s (htb);
//! - churn: 30 nodes on loopback, one SIGKILLed and one started every few
//!   seconds while 10 lines a second are said;
//! - a crash: 40% of 25 nodes SIGKILLed at once.
//!
//! The namespace tests need root and nftables and print why when skipped.
//! Delivery is read from each node's standard output (`--json`, one line
//! per message delivered); a node never prints its own lines. Randomness
//! (who sends, who dies) comes from one seed, printed at the start of each
//! test; `GN_FAULTS_SEED` replays one. docs/RELIABILITY.md holds what these
//! tests measured.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use common::netns::{can_use_nft, exec_in, Lan};
use common::{args, Proc, TempDir, DEADLINE};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

/// The port every node listens on inside its own namespace (the namespace
/// is the test's, so nothing else can hold the port).
const PORT: u16 = 7000;
/// The pause between two looks at something not there yet.
const POLL: Duration = Duration::from_millis(250);
/// Processes the tests of this file may run at once, summed over the tests
/// running: the machine has two cores, and a test that starves its nodes
/// measures the machine, not the protocol.
const PROCESS_BUDGET: usize = 45;

/// How long the partition lasts: as long as a link takes to be declared
/// dead by default, so both the "link survived" and "link was replaced"
/// paths may be taken.
const CUT: Duration = Duration::from_secs(30);
/// Liveness in the partition test: a quiet link is pinged after this...
const PING_AFTER: Duration = Duration::from_secs(2);
/// ... and given up after this, well inside [`CUT`].
const DEAD_AFTER: Duration = Duration::from_secs(6);
/// After the heal, the overlay must be whole again within this.
const HEAL_BOUND: Duration = Duration::from_secs(90);

/// Default length of the churn (`GN_CHURN_SECS` overrides it).
const CHURN_DEFAULT: Duration = Duration::from_secs(120);
/// One node killed and one started this often during the churn.
const CHURN_EVERY: Duration = Duration::from_secs(4);
/// Lines said per second during the churn.
const CHURN_RATE: u32 = 10;
/// A node counts for a message if it was up (printed its readiness line)
/// at least this long before the message was said: time to join.
const JOIN_GRACE: Duration = Duration::from_secs(5);
/// ... and was not killed until at least this long after: time for the
/// message to spread, also around links that broke on the way.
const SPREAD_GRACE: Duration = Duration::from_secs(10);

/// A line counts only if its sender was not killed within this after
/// saying it: time for the line to leave the process.
const SENDER_GRACE: Duration = Duration::from_secs(2);

/// Takes `n` of [`PROCESS_BUDGET`] until dropped.
struct Budget(usize);

static BUDGET: (Mutex<usize>, Condvar) = (Mutex::new(0), Condvar::new());

impl Budget {
    fn take(n: usize) -> Budget {
        let n = n.min(PROCESS_BUDGET);
        let (used, freed) = &BUDGET;
        let mut used = used.lock().unwrap_or_else(|e| e.into_inner());
        while *used + n > PROCESS_BUDGET {
            used = freed.wait(used).unwrap_or_else(|e| e.into_inner());
        }
        *used += n;
        Budget(n)
    }
}

impl Drop for Budget {
    fn drop(&mut self) {
        let (used, freed) = &BUDGET;
        *used.lock().unwrap_or_else(|e| e.into_inner()) -= self.0;
        freed.notify_all();
    }
}

/// The seed of this test's randomness, printed so a failure can be replayed.
fn seed(test: &str) -> ChaCha8Rng {
    let seed = std::env::var("GN_FAULTS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    println!("{test}: seed {seed} (replay with GN_FAULTS_SEED={seed})");
    ChaCha8Rng::seed_from_u64(seed)
}

/// How many times a node printed each chat line, by text.
fn received(node: &Proc) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for line in node.stdout.snapshot() {
        let Ok(v) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        if let Some(text) = v["text"].as_str() {
            *counts.entry(text.to_string()).or_insert(0) += 1;
        }
    }
    counts
}

/// A line said by the node named `from`.
#[derive(Clone)]
struct Said {
    from: String,
    text: String,
}

/// What `node` lacks of `lines` (its own aside), and what it has twice.
fn shortfall(node: &Proc, lines: &[&Said]) -> (Vec<String>, Vec<String>) {
    let got = received(node);
    let mut missing = Vec::new();
    let mut twice = Vec::new();
    for said in lines.iter().filter(|s| s.from != node.name) {
        match got.get(&said.text).copied().unwrap_or(0) {
            0 => missing.push(said.text.clone()),
            1 => {}
            _ => twice.push(said.text.clone()),
        }
    }
    (missing, twice)
}

/// Waits until each node has printed every line of `lines` it did not say,
/// then asserts each exactly once; returns how long the wait took.
fn wait_delivered(nodes: &[&Proc], lines: &[Said], bound: Duration, what: &str) -> Duration {
    let start = Instant::now();
    let all: Vec<&Said> = lines.iter().collect();
    loop {
        let mut lacking = Vec::new();
        for node in nodes {
            let (missing, twice) = shortfall(node, &all);
            assert!(
                twice.is_empty(),
                "{what}: {} printed {} lines twice: {:?}\n{}",
                node.name,
                twice.len(),
                &twice[..twice.len().min(5)],
                node.logs()
            );
            if !missing.is_empty() {
                lacking.push((node, missing));
            }
        }
        if lacking.is_empty() {
            return start.elapsed();
        }
        if start.elapsed() >= bound {
            let report: Vec<String> = lacking
                .iter()
                .map(|(n, m)| format!("{} lacks {}: {:?}", n.name, m.len(), &m[..m.len().min(5)]))
                .collect();
            panic!(
                "{what}: not delivered within {bound:?}:\n{}\n{}",
                report.join("\n"),
                lacking[0].0.logs()
            );
        }
        std::thread::sleep(POLL);
    }
}

/// Says a marker from `nodes[among[0]]` and waits for it at the others
/// of `among`: any duplicate of what was said before would have arrived by
/// then too (links are ordered, and the tree and the catch-up carry both).
/// Then checks each line of `lines` again at them: exactly once.
fn check_once(nodes: &mut [Proc], among: &[usize], lines: &[Said], what: &str) {
    let from = &mut nodes[among[0]];
    let marker = Said {
        from: from.name.clone(),
        text: format!("{what}: marker"),
    };
    from.say(&marker.text);
    let others: Vec<&Proc> = among[1..].iter().map(|&i| &nodes[i]).collect();
    wait_delivered(&others, std::slice::from_ref(&marker), DEADLINE, what);
    wait_delivered(&others, lines, Duration::ZERO, what);
}

/// `gossipnet node` on host `i` of the LAN, joining through the hosts
/// `peers`, with `extra` arguments.
fn lan_node(lan: &Lan, dir: &TempDir, i: usize, peers: &[usize], extra: &[String]) -> Proc {
    let name = format!("n{i}");
    let mut a = args(&[
        "node",
        "--port",
        &PORT.to_string(),
        "--host",
        &lan.addrs[i],
        "--data-dir",
        &dir.join(&name),
        "--name",
        &name,
        "--no-mdns",
        "--json",
    ]);
    for &p in peers {
        a.push("--peer".into());
        a.push(format!("{}:{PORT}", lan.addrs[p]));
    }
    a.extend(extra.iter().cloned());
    Proc::start_in(Some(&lan.hosts[i]), &name, &a)
}

/// Starts one node per host, each joining through host 0 and one other
/// earlier host, and waits until each has a neighbour.
fn lan_nodes(lan: &Lan, dir: &TempDir, rng: &mut ChaCha8Rng, extra: &[String]) -> Vec<Proc> {
    let mut nodes: Vec<Proc> = Vec::new();
    for i in 0..lan.hosts.len() {
        let mut peers = Vec::new();
        if i > 0 {
            peers.push(0);
            peers.push(rng.gen_range(0..i));
            peers.dedup();
        }
        nodes.push(lan_node(lan, dir, i, &peers, extra));
    }
    for n in &nodes {
        assert!(n.wait_neighbors(1), "{}", n.logs());
    }
    nodes
}

/// `gossipnet network status --json` from host `i`'s node, inside its
/// namespace (the control API listens on that namespace's loopback).
fn network_status(lan: &Lan, dir: &TempDir, i: usize) -> Result<Value, String> {
    let data_dir = dir.join(&format!("n{i}"));
    let out = exec_in(
        &lan.hosts[i],
        common::bin(),
        &["network", "status", "--json", "--data-dir", &data_dir],
    );
    serde_json::from_str(&String::from_utf8_lossy(&out.stdout))
        .map_err(|_| String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Polls the crawl from host `i` until it sees `n` nodes in one component;
/// how long that took.
fn wait_whole(lan: &Lan, dir: &TempDir, i: usize, n: usize, bound: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let last = match network_status(lan, dir, i) {
            Ok(v) if v["nodes"] == n && v["components"] == 1 => return start.elapsed(),
            Ok(v) => v.to_string(),
            Err(e) => e,
        };
        assert!(
            start.elapsed() < bound,
            "the overlay is not one component of {n} within {bound:?}; last crawl: {last}"
        );
        std::thread::sleep(POLL);
    }
}

fn refs(nodes: &[Proc]) -> Vec<&Proc> {
    nodes.iter().collect()
}

/// 6 hosts cut from 6 for [`CUT`]; after the heal the crawl from one node
/// sees one component of 12 within [`HEAL_BOUND`], what each side said
/// during the cut reaches the other, and new lines reach everyone once.
#[test]
fn a_30s_partition_of_6_from_6_heals_into_one_overlay() {
    if let Some(why) = can_use_nft() {
        println!("skipped: {why}");
        return;
    }
    const HOSTS: usize = 12;
    const HALF: usize = HOSTS / 2;
    let _budget = Budget::take(HOSTS);
    let mut rng = seed("partition");
    let dir = TempDir::new("faults-partition");
    let lan = Lan::new(HOSTS);
    // Liveness shorter than the cut, so every link across it is declared
    // dead while it lasts: the heal must build new links, not resume old
    // ones (with the defaults a 30 s cut may end just before they die).
    let config = dir.join("liveness.toml");
    std::fs::write(
        &config,
        format!(
            "[protocol]\nping_after_ms = {}\ndead_after_ms = {}\n",
            PING_AFTER.as_millis(),
            DEAD_AFTER.as_millis()
        ),
    )
    .unwrap();
    let mut nodes = lan_nodes(&lan, &dir, &mut rng, &args(&["--config", &config]));
    let joined = wait_whole(&lan, &dir, 0, HOSTS, DEADLINE);
    println!("partition: {HOSTS} nodes one overlay {joined:?} after the last start");

    let a: Vec<usize> = (0..HALF).collect();
    let b: Vec<usize> = (HALF..HOSTS).collect();
    lan.cut(&a, &b);
    let cut_at = Instant::now();
    // Each side speaks while cut off, and hears itself.
    let mut during = Vec::new();
    for (k, node) in nodes.iter_mut().enumerate() {
        let text = format!("during the cut from {}", node.name);
        node.say(&text);
        during.push((
            k < HALF,
            Said {
                from: node.name.clone(),
                text,
            },
        ));
    }
    for (side_a, side) in [(true, &nodes[..HALF]), (false, &nodes[HALF..])] {
        let own: Vec<Said> = during
            .iter()
            .filter(|(s, _)| *s == side_a)
            .map(|(_, l)| l.clone())
            .collect();
        wait_delivered(&refs(side), &own, DEADLINE, "one side of the cut");
    }
    // The cut breaks the overlay in two: the crawl from host 0 sees its own
    // side only, once every link across has been given up.
    let broken = wait_whole(&lan, &dir, 0, HALF, CUT);
    println!("partition: the crawl from n0 sees its {HALF} alone {broken:?} into the cut");
    // The fault itself: the cut lasts its time.
    std::thread::sleep(CUT.saturating_sub(cut_at.elapsed()));
    // Nothing crossed it.
    for (k, node) in nodes.iter().enumerate() {
        let got = received(node);
        for (side_a, line) in &during {
            assert!(
                *side_a == (k < HALF) || !got.contains_key(&line.text),
                "'{}' crossed the cut to {}",
                line.text,
                node.name
            );
        }
    }
    lan.heal();
    let healed = wait_whole(&lan, &dir, 0, HOSTS, HEAL_BOUND);
    println!("partition: one overlay of {HOSTS} again {healed:?} after the heal");

    // What each side said during the cut reaches the other.
    let during: Vec<Said> = during.into_iter().map(|(_, l)| l).collect();
    let caught_up = wait_delivered(&refs(&nodes), &during, DEADLINE, "the cut's lines");
    println!("partition: the cut's lines everywhere {caught_up:?} after the whole overlay");

    // And lines said after the heal reach all twelve, once.
    let mut after = Vec::new();
    for node in nodes.iter_mut() {
        let text = format!("after the heal from {}", node.name);
        node.say(&text);
        after.push(Said {
            from: node.name.clone(),
            text,
        });
    }
    let spread = wait_delivered(&refs(&nodes), &after, DEADLINE, "after the heal");
    println!("partition: {HOSTS} lines after the heal everywhere in {spread:?}");
    let all: Vec<Said> = during.into_iter().chain(after).collect();
    check_once(
        &mut nodes,
        &(0..HOSTS).collect::<Vec<_>>(),
        &all,
        "partition",
    );
}

/// Every host drops 10% of what it sends, four hosts are behind 1 mbit/s,
/// from before the nodes start: 50 lines from 5 senders reach all 10 nodes,
/// each once.
#[test]
fn ten_percent_loss_and_slow_links_lose_no_message() {
    if let Some(why) = can_use_nft() {
        println!("skipped: {why}");
        return;
    }
    const HOSTS: usize = 10;
    const LOSS_PERCENT: u32 = 10;
    const SLOW_HOSTS: usize = 4;
    const SLOW_RATE: &str = "1mbit";
    const SENDERS: usize = 5;
    const LINES_EACH: usize = 10;
    let _budget = Budget::take(HOSTS);
    let mut rng = seed("loss");
    let dir = TempDir::new("faults-loss");
    let lan = Lan::new(HOSTS);
    for i in 0..HOSTS {
        lan.lossy(i, LOSS_PERCENT);
    }
    for i in 0..SLOW_HOSTS {
        lan.slow(i, SLOW_RATE);
    }
    let mut nodes = lan_nodes(&lan, &dir, &mut rng, &[]);
    let mut senders: Vec<usize> = (0..HOSTS).collect();
    senders.shuffle(&mut rng);
    senders.truncate(SENDERS);
    let mut lines = Vec::new();
    for round in 0..LINES_EACH {
        for &s in &senders {
            let text = format!("lossy {round} from {}", nodes[s].name);
            nodes[s].say(&text);
            lines.push(Said {
                from: nodes[s].name.clone(),
                text,
            });
        }
    }
    let took = wait_delivered(&refs(&nodes), &lines, DEADLINE, "under loss");
    let dropped: u64 = (0..HOSTS).map(|i| lan.dropped(i)).sum();
    assert!(dropped > 0, "the loss rules dropped nothing");
    println!(
        "loss: {} lines from {SENDERS} senders reached all {HOSTS} nodes in {took:?}; \
         {dropped} packets dropped on the way",
        lines.len()
    );
    check_once(&mut nodes, &(0..HOSTS).collect::<Vec<_>>(), &lines, "loss");
}

/// `gossipnet node` on loopback, port 0, joining through `peers`.
fn loopback_node(dir: &TempDir, name: &str, peers: &[String]) -> Proc {
    let mut a = args(&[
        "node",
        "--port",
        "0",
        "--host",
        "127.0.0.1",
        "--data-dir",
        &dir.join(name),
        "--name",
        name,
        "--no-mdns",
        "--json",
    ]);
    for p in peers {
        a.push("--peer".into());
        a.push(p.clone());
    }
    Proc::start(name, &a)
}

/// Up to two addresses of `nodes` to join through, at random.
fn contacts(addrs: &[String], rng: &mut ChaCha8Rng) -> Vec<String> {
    let mut c: Vec<String> = addrs.choose_multiple(rng, 2).cloned().collect();
    c.dedup();
    c
}

/// 10 of 25 nodes SIGKILLed at once; lines said straight after, before
/// anyone can have noticed, reach all 15 survivors, each once.
#[test]
fn forty_percent_killed_at_once_the_survivors_still_hear_everything() {
    const NODES: usize = 25;
    const KILLED: usize = NODES * 2 / 5;
    const SENDERS: usize = 5;
    const LINES_EACH: usize = 2;
    let _budget = Budget::take(NODES);
    let mut rng = seed("crash");
    let dir = TempDir::new("faults-crash");
    let mut nodes: Vec<Proc> = Vec::new();
    for i in 0..NODES {
        let addrs: Vec<String> = nodes.iter().map(|n| n.addr.clone()).collect();
        let peers = contacts(&addrs, &mut rng);
        nodes.push(loopback_node(&dir, &format!("c{i}"), &peers));
    }
    for n in &nodes {
        assert!(n.wait_neighbors(1), "{}", n.logs());
    }
    // One round before the crash, so the broadcast tree is built.
    let before: Vec<Said> = (0..NODES)
        .map(|i| {
            let text = format!("before the crash from c{i}");
            nodes[i].say(&text);
            Said {
                from: nodes[i].name.clone(),
                text,
            }
        })
        .collect();
    wait_delivered(&refs(&nodes), &before, DEADLINE, "before the crash");

    let mut order: Vec<usize> = (0..NODES).collect();
    order.shuffle(&mut rng);
    let (dead, alive) = order.split_at(KILLED);
    for &i in dead {
        nodes[i].kill9();
    }
    let crashed = Instant::now();
    println!(
        "crash: killed {:?}",
        dead.iter().map(|&i| &nodes[i].name).collect::<Vec<_>>()
    );
    // Straight away, without waiting for anyone to notice.
    let mut lines = Vec::new();
    for round in 0..LINES_EACH {
        for &s in &alive[..SENDERS] {
            let text = format!("after the crash {round} from {}", nodes[s].name);
            nodes[s].say(&text);
            lines.push(Said {
                from: nodes[s].name.clone(),
                text,
            });
        }
    }
    let survivors: Vec<&Proc> = alive.iter().map(|&i| &nodes[i]).collect();
    wait_delivered(&survivors, &lines, DEADLINE, "after the crash");
    println!(
        "crash: {} lines said at the crash reached all {} survivors {:?} after it",
        lines.len(),
        survivors.len(),
        crashed.elapsed()
    );
    check_once(&mut nodes, alive, &lines, "crash");
}

/// One node of the churn: when it was up and when it was killed.
struct Member {
    proc: Proc,
    up: Instant,
    killed: Option<Instant>,
}

/// A line of the churn, and when it was said.
struct Timed {
    said: Said,
    at: Instant,
}

/// Who is owed what under churn: a line is owed to node N when its sender
/// had been up [`JOIN_GRACE`] when it said it (senders are picked so) and
/// was not killed within [`SENDER_GRACE`] after; and N itself was up
/// [`JOIN_GRACE`] before the line was said and was not killed until
/// [`SPREAD_GRACE`] after. N must print every line owed to it exactly once,
/// and no node prints any line twice.
#[test]
fn churn_of_one_kill_and_one_start_every_few_seconds_loses_nothing_for_those_who_stay() {
    const NODES: usize = 30;
    let length = std::env::var("GN_CHURN_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(CHURN_DEFAULT, Duration::from_secs);
    let _budget = Budget::take(NODES);
    let mut rng = seed("churn");
    let dir = Arc::new(TempDir::new("faults-churn"));
    let members: Arc<Mutex<Vec<Member>>> = Arc::new(Mutex::new(Vec::new()));
    for i in 0..NODES {
        let addrs: Vec<String> = members
            .lock()
            .unwrap()
            .iter()
            .map(|m| m.proc.addr.clone())
            .collect();
        let peers = contacts(&addrs, &mut rng);
        let proc = loopback_node(&dir, &format!("r{i}"), &peers);
        members.lock().unwrap().push(Member {
            proc,
            up: Instant::now(),
            killed: None,
        });
    }
    for m in members.lock().unwrap().iter() {
        assert!(m.proc.wait_neighbors(1), "{}", m.proc.logs());
    }
    println!(
        "churn: {NODES} nodes, one killed and one started every {CHURN_EVERY:?} for {length:?}, \
         {CHURN_RATE} lines/s; a line counts if its sender lived {SENDER_GRACE:?} on, and a node \
         for it if the node was up {JOIN_GRACE:?} before and not killed until {SPREAD_GRACE:?} after"
    );
    let start = Instant::now();
    let mut churn_rng = ChaCha8Rng::seed_from_u64(rng.gen());
    let churner = {
        let members = members.clone();
        let dir = dir.clone();
        std::thread::spawn(move || {
            let mut next = start + CHURN_EVERY;
            let mut started = NODES;
            while next < start + length {
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
                next += CHURN_EVERY;
                // The victim: any live node.
                {
                    let mut m = members.lock().unwrap();
                    let candidates: Vec<usize> =
                        (0..m.len()).filter(|&i| m[i].killed.is_none()).collect();
                    if let Some(&v) = candidates.choose(&mut churn_rng) {
                        m[v].proc.kill9();
                        m[v].killed = Some(Instant::now());
                    }
                }
                let addrs: Vec<String> = members
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|m| m.killed.is_none())
                    .map(|m| m.proc.addr.clone())
                    .collect();
                let peers = contacts(&addrs, &mut churn_rng);
                let proc = loopback_node(&dir, &format!("r{started}"), &peers);
                started += 1;
                members.lock().unwrap().push(Member {
                    proc,
                    up: Instant::now(),
                    killed: None,
                });
            }
        })
    };
    let mut lines: Vec<Timed> = Vec::new();
    let gap = Duration::from_secs(1) / CHURN_RATE;
    let mut next = start;
    while next < start + length {
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        next += gap;
        let mut m = members.lock().unwrap();
        // The sender: a live node that has had its time to join.
        let now = Instant::now();
        let joined: Vec<usize> = (0..m.len())
            .filter(|&i| m[i].killed.is_none() && now >= m[i].up + JOIN_GRACE)
            .collect();
        // Only at the very start may none have had it yet.
        let Some(&s) = joined.choose(&mut rng) else {
            continue;
        };
        let text = format!("churn {} from {}", lines.len(), m[s].proc.name);
        m[s].proc.say(&text);
        let at = Instant::now();
        lines.push(Timed {
            said: Said {
                from: m[s].proc.name.clone(),
                text,
            },
            at,
        });
    }
    churner.join().expect("the churn thread");
    let mut members = members.lock().unwrap();
    let killed_at: HashMap<String, Instant> = members
        .iter()
        .filter_map(|m| Some((m.proc.name.clone(), m.killed?)))
        .collect();
    // A line is owed if its sender lived on for a moment (one killed
    // sooner may have died before the line left it)...
    let spread: Vec<&Timed> = lines
        .iter()
        .filter(|l| {
            killed_at
                .get(&l.said.from)
                .is_none_or(|&k| k >= l.at + SENDER_GRACE)
        })
        .collect();
    // ... to each node that counted for it.
    let owed = |m: &Member| -> Vec<Said> {
        spread
            .iter()
            .filter(|l| l.at >= m.up + JOIN_GRACE)
            .filter(|l| m.killed.is_none_or(|k| k >= l.at + SPREAD_GRACE))
            .map(|l| l.said.clone())
            .collect()
    };
    let mut checked = 0;
    for m in members.iter() {
        let owed = owed(m);
        checked += owed.iter().filter(|l| l.from != m.proc.name).count();
        // A dead node's output is final: no waiting for it.
        let bound = if m.killed.is_some() {
            Duration::ZERO
        } else {
            DEADLINE
        };
        wait_delivered(&[&m.proc], &owed, bound, "churn");
    }
    // A marker through the survivors, then nothing twice anywhere, among
    // all the lines (owed or not).
    let live: Vec<usize> = (0..members.len())
        .filter(|&i| members[i].killed.is_none())
        .collect();
    let marker = Said {
        from: members[live[0]].proc.name.clone(),
        text: "churn: marker".into(),
    };
    members[live[0]].proc.say(&marker.text);
    let others: Vec<&Proc> = live[1..].iter().map(|&i| &members[i].proc).collect();
    wait_delivered(&others, std::slice::from_ref(&marker), DEADLINE, "churn");
    let all: Vec<&Said> = lines.iter().map(|l| &l.said).collect();
    for m in members.iter() {
        let (_, twice) = shortfall(&m.proc, &all);
        assert!(
            twice.is_empty(),
            "churn: {} printed {} lines twice: {:?}",
            m.proc.name,
            twice.len(),
            &twice[..twice.len().min(5)]
        );
    }
    let killed = members.iter().filter(|m| m.killed.is_some()).count();
    println!(
        "churn: {} lines ({} owed: their sender lived {SENDER_GRACE:?} on), {} nodes in all \
         ({killed} killed), {checked} deliveries owed and made, no line twice",
        lines.len(),
        spread.len(),
        members.len()
    );
}
