//! Bad input from the network against real `gossipnet node` processes: one
//! test per attack. Each starts three honest nodes on loopback, linked to
//! each other, attacks one of them (`a`) with the hostile peer of
//! `gossipnet_node::testing` (the real preamble and Noise handshake, then
//! whatever bytes the attack needs) or with raw sockets, and then checks
//! what must hold after any attack:
//!
//! - the node says so in its log (a warning or info line, matched loosely);
//! - only the offending link closes: the attacker sees end of stream or a
//!   refusal, no honest node logs an honest neighbour going down, and the
//!   honest nodes' neighbour lists (`/api/peers`) still hold each other;
//! - delivery between the honest nodes goes on: a line from each reaches
//!   the other two, exactly once;
//! - the attacked node's memory stays bounded (VmRSS under a generous cap).
//!
//! Randomness is seeded, and each row prints its seed.

mod common;

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use common::{args, exchange_all, listener, port_of, Proc, TempDir, DEADLINE};
use gossipnet_node::testing::{
    first_noise_message, hello, HostileConfig, HostilePeer, HELLO_BYTES,
};
use gossipnet_node::DEFAULT_NETWORK_ID;
use gossipnet_proto::envelope::{Envelope, Kind, SignedEnvelope};
use gossipnet_proto::hyparview::{self, PeerInfo};
use gossipnet_proto::plumtree::{self, Gossip};
use gossipnet_proto::record::{NodeRecord, SignedRecord};
use gossipnet_proto::wire::{Message, PROTOCOL_VERSION};
use gossipnet_proto::{NodeId, SecretKey};
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The attacked node's resident memory must stay below this after any
/// attack: far above what three idle nodes use (tens of MB), far below
/// what buffering an attacker's claims would cost.
const RSS_BOUND_KB: u64 = 300 * 1024;

/// One API request.
const REQUEST: Duration = Duration::from_secs(30);

/// The pause between two looks at something that is not there yet.
const POLL: Duration = Duration::from_millis(200);
/// How long the honest overlay must go without a neighbour going down
/// before an attack: many polls, far longer than a link replacement takes.
const QUIET: Duration = Duration::from_secs(2);

/// Three honest nodes, `a` (the one attacked), `b` and `c`, each linked to
/// the other two, and a runtime for the hostile peers.
struct Net {
    dir: TempDir,
    nodes: Vec<Proc>,
    rt: tokio::runtime::Runtime,
    rng: ChaCha8Rng,
    seed: u64,
}

/// How far each node's log had got when an attack began.
struct Mark(Vec<usize>);

impl Net {
    /// Starts the three with `config` (TOML) as their network config.
    fn start(tag: &str, seed: u64, config: &str) -> Net {
        eprintln!("seed {seed}");
        let dir = TempDir::new(tag);
        let config_path = dir.join("network.toml");
        std::fs::write(&config_path, config).unwrap();
        let listeners: Vec<TcpListener> = (0..3).map(|_| listener()).collect();
        let ports: Vec<u16> = listeners.iter().map(port_of).collect();
        let names = ["a", "b", "c"];
        let nodes: Vec<Proc> = listeners
            .into_iter()
            .enumerate()
            .map(|(i, l)| {
                let others = [
                    format!("127.0.0.1:{}", ports[(i + 1) % 3]),
                    format!("127.0.0.1:{}", ports[(i + 2) % 3]),
                ];
                let mut a = node_args(ports[i], &dir, names[i], &config_path);
                a.extend(others);
                Proc::start_on(names[i], &a, l)
            })
            .collect();
        let net = Net {
            dir,
            nodes,
            rt: tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap(),
            rng: ChaCha8Rng::seed_from_u64(seed),
            seed,
        };
        for i in 0..3 {
            net.poll(
                &format!("{} linked to both others", net.nodes[i].name),
                || {
                    let have = net.neighbours(i)?;
                    net.others(i)
                        .all(|id| have.contains(&id))
                        .then_some(())
                        .ok_or(format!("{have:?}"))
                },
            );
        }
        net.settle();
        net
    }

    /// Waits until no node has logged a neighbour going down for
    /// [`QUIET`]. Three nodes that are each other's static peers dial each
    /// other at once, and the duplicate links are settled (and views
    /// evened out) just after all are linked; an attack must start from a
    /// settled overlay, or its checks would blame it for that.
    fn settle(&self) {
        let downs = || -> usize {
            self.nodes
                .iter()
                .map(|n| {
                    n.stderr
                        .snapshot()
                        .iter()
                        .filter(|l| l.contains("neighbor down"))
                        .count()
                })
                .sum()
        };
        let until = std::time::Instant::now() + DEADLINE;
        let mut seen = downs();
        let mut quiet_since = std::time::Instant::now();
        while quiet_since.elapsed() < QUIET {
            assert!(
                std::time::Instant::now() < until,
                "seed {}: the three nodes never settled\n{}",
                self.seed,
                self.logs()
            );
            std::thread::sleep(POLL);
            let now = downs();
            if now != seen {
                seen = now;
                quiet_since = std::time::Instant::now();
            }
        }
        for i in 0..3 {
            self.poll(
                &format!("{} linked to both others", self.nodes[i].name),
                || {
                    let have = self.neighbours(i)?;
                    self.others(i)
                        .all(|id| have.contains(&id))
                        .then_some(())
                        .ok_or(format!("{have:?}"))
                },
            );
        }
    }

    fn addr(&self) -> SocketAddr {
        self.nodes[0].addr.parse().unwrap()
    }

    /// The ids of the honest nodes other than `i`.
    fn others(&self, i: usize) -> impl Iterator<Item = String> + '_ {
        (0..3)
            .filter(move |&j| j != i)
            .map(|j| self.nodes[j].id.clone())
    }

    fn control(&self, i: usize) -> Value {
        let path = Path::new(&self.dir.join(&self.nodes[i].name)).join("control.json");
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    }

    /// `GET path` on node `i`'s control API.
    fn api(&self, i: usize, path: &str) -> Result<Value, String> {
        let control = self.control(i);
        let url = format!("http://{}{path}", control["api"].as_str().unwrap());
        let auth = format!("Bearer {}", control["cookie"].as_str().unwrap());
        ureq::get(&url)
            .timeout(REQUEST)
            .set("Authorization", &auth)
            .call()
            .map_err(|e| format!("{url}: {e}"))?
            .into_json()
            .map_err(|e| format!("{url}: {e}"))
    }

    /// The ids in node `i`'s neighbour list.
    fn neighbours(&self, i: usize) -> Result<Vec<String>, String> {
        let peers = self.api(i, "/api/peers")?;
        Ok(peers
            .as_array()
            .ok_or(format!("not a list: {peers}"))?
            .iter()
            .filter_map(|p| p["id"].as_str().map(str::to_string))
            .collect())
    }

    fn poll<T>(&self, what: &str, mut probe: impl FnMut() -> Result<T, String>) -> T {
        let until = std::time::Instant::now() + DEADLINE;
        loop {
            match probe() {
                Ok(v) => return v,
                Err(last) if std::time::Instant::now() >= until => panic!(
                    "seed {}: timed out waiting for {what}; last seen: {last}\n{}",
                    self.seed,
                    self.logs()
                ),
                Err(_) => std::thread::sleep(POLL),
            }
        }
    }

    fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(Proc::logs)
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn mark(&self) -> Mark {
        Mark(
            self.nodes
                .iter()
                .map(|n| n.stderr.snapshot().len())
                .collect(),
        )
    }

    fn key(&mut self) -> SecretKey {
        SecretKey::generate(&mut self.rng)
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut out = vec![0u8; n];
        self.rng.fill_bytes(&mut out);
        out
    }

    /// A hostile peer with a finished handshake to `a`.
    fn attacker(&mut self) -> HostilePeer {
        let cfg = HostileConfig::new(self.key(), DEFAULT_NETWORK_ID);
        let addr = self.addr();
        self.rt
            .block_on(HostilePeer::connect(addr, &cfg))
            .expect("the hostile peer's honest handshake")
    }

    /// A hostile peer that `a` has taken in as a neighbour: it joined with
    /// a valid record whose address nobody can dial.
    fn neighbour_attacker(&mut self) -> HostilePeer {
        let mut peer = self.attacker();
        let record = record_for(peer.key());
        self.rt
            .block_on(peer.send(&Message::Membership(hyparview::Message::Join(record))))
            .unwrap();
        let id = peer.id().to_string();
        self.poll("a to take the attacker in", || {
            let have = self.neighbours(0)?;
            have.contains(&id).then_some(()).ok_or(format!("{have:?}"))
        });
        peer
    }

    /// What must hold after every attack: `a` logged one of `said` since
    /// `mark`, no honest link went down, the honest nodes still list each
    /// other, a line from each honest node reaches the other two once, and
    /// `a`'s memory is bounded.
    fn after_attack(&mut self, mark: &Mark, said: &[&str], tag: &str) {
        let logged = self.nodes[0].stderr.wait(DEADLINE, |lines| {
            lines[mark.0[0].min(lines.len())..].iter().any(|l| {
                let l = l.to_lowercase();
                (l.contains("warn") || l.contains("info"))
                    && said.iter().any(|s| l.contains(&s.to_lowercase()))
            })
        });
        assert!(
            logged,
            "seed {}: a logged none of {said:?}\n{}",
            self.seed,
            self.nodes[0].logs()
        );
        self.honest_links_held(mark);
        exchange_all(&mut self.nodes, tag);
        self.honest_links_held(mark);
        let rss = self.rss_kb(0);
        assert!(
            rss < RSS_BOUND_KB,
            "seed {}: a holds {rss} kB after the attack",
            self.seed
        );
    }

    /// No honest node logged an honest neighbour going down since `mark`,
    /// and each lists the other two.
    fn honest_links_held(&self, mark: &Mark) {
        // The line names the node itself too (in its span): match the peer.
        let shorts: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("peer={}", n.short()))
            .collect();
        for (i, node) in self.nodes.iter().enumerate() {
            let lines = node.stderr.snapshot();
            let downs: Vec<&String> = lines[mark.0[i].min(lines.len())..]
                .iter()
                .filter(|l| l.contains("neighbor down") && shorts.iter().any(|s| l.contains(s)))
                .collect();
            assert!(
                downs.is_empty(),
                "seed {}: {} lost an honest neighbour: {downs:?}\n{}",
                self.seed,
                node.name,
                self.logs()
            );
            let have = self.neighbours(i).unwrap();
            for id in self.others(i) {
                assert!(
                    have.contains(&id),
                    "seed {}: {} no longer lists {id}: {have:?}\n{}",
                    self.seed,
                    node.name,
                    self.logs()
                );
            }
        }
    }

    /// Node `i`'s resident memory, from /proc.
    fn rss_kb(&self, i: usize) -> u64 {
        let pid = self.control(i)["pid"].as_u64().unwrap();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/PID/status")
    }

    /// The attacker sees the node close its link.
    fn assert_closed(&self, peer: &mut HostilePeer, what: &str) {
        let closed = self.rt.block_on(peer.closed_within(DEADLINE));
        assert!(
            closed,
            "seed {}: a kept the link open after {what}\n{}",
            self.seed,
            self.nodes[0].logs()
        );
    }

    /// Sends `messages` from `peer`; a send that fails means the node
    /// already closed the link, which the caller checks next.
    fn send_all(&self, peer: &mut HostilePeer, messages: &[Message]) {
        let bytes: Vec<Bytes> = messages
            .iter()
            .map(|m| Bytes::from(gossipnet_proto::wire::encode(m)))
            .collect();
        for chunk in bytes.chunks(64) {
            if self.rt.block_on(peer.send_bytes(chunk)).is_err() {
                return;
            }
        }
    }

    /// Whether any node printed `text`.
    fn printed_anywhere(&self, text: &str) -> bool {
        self.nodes.iter().any(|n| n.count_output(text) > 0)
    }
}

fn node_args(port: u16, dir: &TempDir, name: &str, config: &str) -> Vec<String> {
    args(&[
        "node",
        &port.to_string(),
        "--host",
        "127.0.0.1",
        "--data-dir",
        &dir.join(name),
        "--name",
        name,
        "--config",
        config,
        // Tests running side by side must not find each other on the LAN.
        "--no-mdns",
    ])
}

/// A valid record of `key`'s node, at an address nobody can dial (port 1
/// on loopback: nothing listens there).
fn record_for(key: &SecretKey) -> Bytes {
    let record = NodeRecord {
        id: key.node_id(),
        addrs: vec!["127.0.0.1:1".parse().unwrap()],
        seq: 1,
        roles: vec![],
        name: None,
    };
    Bytes::from(SignedRecord::sign(key, record).unwrap().encode())
}

/// A chat line signed by `key`.
fn chat(key: &SecretKey, text: &str) -> Vec<u8> {
    let env = Envelope {
        origin: key.node_id(),
        seq: 1,
        time_ms: gossipnet_node::time::unix_ms(),
        kind: Kind::Chat,
        body: Bytes::from(
            gossipnet_node::chat::ChatBody {
                name: None,
                text: text.to_string(),
            }
            .encode(),
        ),
    };
    SignedEnvelope::sign(key, env).unwrap().encode().to_vec()
}

fn gossip(content: Vec<u8>) -> Message {
    Message::Broadcast(plumtree::Message::Gossip(Gossip {
        content: Bytes::from(content),
        round: 1,
    }))
}

/// Replaces the first copy of `from` in `bytes` with `to`.
fn replace(bytes: &mut [u8], from: &[u8], to: &[u8]) {
    let at = bytes
        .windows(from.len())
        .position(|w| w == from)
        .expect("the bytes to replace");
    bytes[at..at + to.len()].copy_from_slice(to);
}

/// Reads from a raw socket until end of stream or an error: true if that
/// came within the deadline.
async fn raw_closed(stream: &mut TcpStream) -> bool {
    let mut buf = vec![0u8; 64 << 10];
    tokio::time::timeout(DEADLINE, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

#[test]
fn random_bytes_close_only_their_link() {
    let mut net = Net::start("hostile-random", 1, "");
    let mark = net.mark();
    let noise = net.bytes(64 << 10);
    let addr = net.addr();
    let closed = net.rt.block_on(async {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let _ = s.write_all(&noise).await;
        raw_closed(&mut s).await
    });
    assert!(closed, "a kept a socket of random bytes open");
    let mut peer = net.attacker();
    let garbage = net.bytes(4096);
    let _ = net.rt.block_on(peer.send_raw(&garbage));
    net.assert_closed(&mut peer, "random bytes after the handshake");
    net.after_attack(
        &mark,
        &["not speaking", "not a gossipnet", "decrypt", "refused"],
        "after random bytes",
    );
}

#[test]
fn five_hundred_handshakes_stopped_half_way_are_dropped() {
    let mut net = Net::start("hostile-halfway", 2, "");
    let mark = net.mark();
    let addr = net.addr();
    let keys: Vec<Vec<u8>> = (0..500).map(|_| net.bytes(32)).collect();
    let mut held = net.rt.block_on(async {
        let mut held = Vec::new();
        for key in keys {
            let Ok(mut s) = TcpStream::connect(addr).await else {
                continue;
            };
            let mut out = hello(PROTOCOL_VERSION, DEFAULT_NETWORK_ID, false).to_vec();
            out.extend(first_noise_message(key.try_into().unwrap()));
            if s.write_all(&out).await.is_ok() {
                held.push(s);
            }
        }
        held
    });
    net.after_attack(
        &mark,
        &["handshake", "refusing link", "refused"],
        "after half handshakes",
    );
    let open = net.rt.block_on(async {
        let mut open = 0;
        for s in &mut held {
            if !raw_closed(s).await {
                open += 1;
            }
        }
        open
    });
    assert_eq!(open, 0, "a kept half-done handshakes open");
}

#[test]
fn a_four_gib_message_length_closes_the_link() {
    let mut net = Net::start("hostile-4gib", 3, "");
    let mark = net.mark();
    let mut peer = net.attacker();
    let _ = net.rt.block_on(peer.send_frame(&u32::MAX.to_be_bytes()));
    net.assert_closed(&mut peer, "a 4 GiB message length");
    net.after_attack(&mark, &["limit", "too large", "over"], "after 4 GiB");
}

/// A hello with `version`: the node answers with a refusal and hangs up.
#[test]
fn a_wrong_protocol_version_is_refused() {
    let mut net = Net::start("hostile-version", 4, "");
    let mark = net.mark();
    let addr = net.addr();
    let (status, closed) = net.rt.block_on(async {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(&hello(PROTOCOL_VERSION + 1, DEFAULT_NETWORK_ID, false))
            .await
            .unwrap();
        let mut answer = [0u8; HELLO_BYTES + 1];
        s.read_exact(&mut answer).await.unwrap();
        (answer[HELLO_BYTES], raw_closed(&mut s).await)
    });
    assert_ne!(status, 0, "a accepted another protocol version");
    assert!(closed, "a kept the link of another version open");
    net.after_attack(&mark, &["version"], "after a wrong version");
}

#[test]
fn a_wrong_network_id_is_refused() {
    let mut net = Net::start("hostile-network", 5, "");
    let mark = net.mark();
    let cfg = HostileConfig::new(net.key(), "another-network");
    let addr = net.addr();
    let refused = net.rt.block_on(HostilePeer::connect(addr, &cfg));
    let err = refused
        .expect_err("a linked with another network")
        .to_string();
    assert!(err.contains("network"), "{err}");
    net.after_attack(&mark, &["network"], "after a wrong network");
}

#[test]
fn a_wrong_pre_shared_key_is_refused() {
    let dir = TempDir::new("hostile-psk-file");
    let psk_file = dir.join("psk");
    std::fs::write(&psk_file, format!("{}\n", "ab".repeat(32))).unwrap();
    let mut net = Net::start("hostile-psk", 6, &format!("psk_file = \"{psk_file}\"\n"));
    let mark = net.mark();
    let addr = net.addr();
    for psk in [Some([0xcd; 32]), None] {
        let mut cfg = HostileConfig::new(net.key(), DEFAULT_NETWORK_ID);
        cfg.psk = psk;
        let refused = net.rt.block_on(HostilePeer::connect(addr, &cfg));
        let err = refused.expect_err("a linked with a wrong key").to_string();
        assert!(
            err.contains("pre-shared") || err.contains("decrypt"),
            "{err}"
        );
    }
    net.after_attack(
        &mark,
        &["pre-shared", "decrypt", "refused"],
        "after a wrong key",
    );
}

#[test]
fn an_envelope_with_a_bad_signature_is_not_delivered() {
    let mut net = Net::start("hostile-badsig", 7, "");
    let mark = net.mark();
    let mut peer = net.neighbour_attacker();
    let mut content = chat(peer.key(), "genuine words");
    replace(&mut content, b"genuine", b"forgery");
    net.send_all(&mut peer, &[gossip(content)]);
    net.assert_closed(&mut peer, "a bad signature");
    net.after_attack(
        &mark,
        &["signature", "closing link"],
        "after a bad signature",
    );
    assert!(
        !net.printed_anywhere("forgery words"),
        "a forgery was delivered"
    );
}

#[test]
fn an_envelope_with_a_forged_origin_is_not_delivered() {
    let mut net = Net::start("hostile-origin", 8, "");
    let mark = net.mark();
    let mut peer = net.neighbour_attacker();
    let mut content = chat(peer.key(), "words in b's name");
    let b: NodeId = net.nodes[1].id.parse().unwrap();
    replace(&mut content, peer.id().as_bytes(), b.as_bytes());
    net.send_all(&mut peer, &[gossip(content)]);
    net.assert_closed(&mut peer, "a forged origin");
    net.after_attack(
        &mark,
        &["signature", "closing link"],
        "after a forged origin",
    );
    assert!(
        !net.printed_anywhere("words in b's name"),
        "a forged origin was delivered"
    );
}

#[test]
fn a_record_claiming_another_id_is_refused() {
    let mut net = Net::start("hostile-record", 9, "");
    let mark = net.mark();
    let mut peer = net.attacker();
    let other = net.key();
    let record = record_for(&other);
    net.send_all(
        &mut peer,
        &[Message::Membership(hyparview::Message::Join(record))],
    );
    net.assert_closed(&mut peer, "a record of another node");
    net.after_attack(&mark, &["record", "closing link"], "after a stolen record");
    let other = other.node_id().to_string();
    for i in 0..3 {
        let have = net.neighbours(i).unwrap();
        assert!(
            !have.contains(&other),
            "{} lists {other}",
            net.nodes[i].name
        );
    }
}

#[test]
fn a_replayed_message_is_not_delivered_twice() {
    let mut net = Net::start("hostile-replay", 10, "");
    let mark = net.mark();
    let mut peer = net.neighbour_attacker();
    net.nodes[1].say("original line");
    // Pushed to us in full, or announced: then we ask for it as a
    // neighbour in the lazy part of the tree does.
    let captured = net.rt.block_on(async {
        loop {
            let got = peer
                .wait_for(DEADLINE, |m| match m {
                    Message::Broadcast(plumtree::Message::Gossip(g))
                        if g.content.windows(13).any(|w| w == b"original line") =>
                    {
                        Some(Ok(g.content.to_vec()))
                    }
                    Message::Broadcast(plumtree::Message::IHave(entries)) => {
                        Some(Err(entries.clone()))
                    }
                    _ => None,
                })
                .await
                .expect("the honest line reaches the attacker");
            match got {
                Ok(content) => return content,
                Err(entries) => {
                    for e in entries {
                        let graft = plumtree::Message::Graft {
                            id: Some(e.id),
                            round: e.round,
                            origin: None,
                        };
                        peer.send(&Message::Broadcast(graft)).await.unwrap();
                    }
                }
            }
        }
    });
    let own = chat(peer.key(), "attacker line");
    net.send_all(&mut peer, &[gossip(own.clone())]);
    for n in &net.nodes {
        assert!(n.wait_output("attacker line"), "{}", n.logs());
    }
    // Again, on this link and on a new one, many times over.
    let replays: Vec<Message> = (0..50)
        .flat_map(|_| [gossip(captured.clone()), gossip(own.clone())])
        .collect();
    net.send_all(&mut peer, &replays);
    let mut again = net.attacker();
    net.send_all(&mut again, &replays);
    net.nodes[1].say("replay marker");
    for n in [&net.nodes[0], &net.nodes[2]] {
        assert!(n.wait_output("replay marker"), "{}", n.logs());
    }
    for (i, n) in net.nodes.iter().enumerate() {
        if i != 1 {
            assert_eq!(n.count_output("original line"), 1, "{}", n.logs());
        }
        assert_eq!(n.count_output("attacker line"), 1, "{}", n.logs());
    }
    net.after_attack(
        &mark,
        &["replay", "duplicate", "closing link", "neighbor up"],
        "after replays",
    );
}

/// Random peers, each with a valid record at an address nobody can dial.
fn random_peers(net: &mut Net, n: usize) -> Vec<PeerInfo> {
    (0..n)
        .map(|_| {
            let key = net.key();
            PeerInfo {
                id: key.node_id(),
                data: record_for(&key),
            }
        })
        .collect()
}

#[test]
fn a_join_flood_leaves_the_honest_neighbours_in_place() {
    let mut net = Net::start("hostile-joins", 11, "");
    let mark = net.mark();
    let mut peer = net.neighbour_attacker();
    let peers = random_peers(&mut net, 2000);
    let flood: Vec<Message> = peers
        .into_iter()
        .enumerate()
        .map(|(i, peer)| {
            Message::Membership(hyparview::Message::ForwardJoin {
                peer,
                ttl: if i % 2 == 0 { 0 } else { u16::MAX },
            })
        })
        .collect();
    net.send_all(&mut peer, &flood);
    net.assert_closed(&mut peer, "a join flood");
    net.after_attack(
        &mark,
        &["forward_join", "join", "closing link", "budget"],
        "after a join flood",
    );
}

#[test]
fn a_shuffle_flood_leaves_the_honest_neighbours_in_place() {
    let mut net = Net::start("hostile-shuffles", 12, "");
    let mark = net.mark();
    let mut peer = net.neighbour_attacker();
    let mut flood = Vec::new();
    for i in 0..1000 {
        let mut sample = random_peers(&mut net, 5);
        let origin = sample.pop().unwrap();
        flood.push(Message::Membership(hyparview::Message::Shuffle {
            origin,
            nodes: sample,
            ttl: if i % 2 == 0 { 0 } else { u16::MAX },
        }));
    }
    net.send_all(&mut peer, &flood);
    net.assert_closed(&mut peer, "a shuffle flood");
    net.after_attack(
        &mark,
        &["shuffle", "closing link", "budget"],
        "after a shuffle flood",
    );
}

#[test]
fn a_burst_of_two_thousand_connections_leaves_room_for_an_honest_node() {
    let mut net = Net::start("hostile-burst", 13, "");
    let mark = net.mark();
    let addr = net.addr();
    let open = net.rt.block_on(async {
        let tasks: Vec<_> = (0..2000)
            .map(|_| {
                tokio::spawn(async move {
                    match TcpStream::connect(addr).await {
                        Ok(mut s) => !raw_closed(&mut s).await,
                        Err(_) => false,
                    }
                })
            })
            .collect();
        let mut open = 0;
        for t in tasks {
            open += usize::from(t.await.unwrap());
        }
        open
    });
    assert_eq!(open, 0, "a kept idle connections open");
    let late = Proc::start(
        "d",
        &args(&[
            "node",
            "0",
            "--host",
            "127.0.0.1",
            "--data-dir",
            &net.dir.join("d"),
            "--name",
            "d",
            "--no-mdns",
            &net.nodes[0].addr,
        ]),
    );
    assert!(late.wait_neighbors(1), "d could not link\n{}", late.logs());
    net.after_attack(
        &mark,
        &["refusing link", "refused", "handshake", "too many"],
        "after a burst",
    );
}

#[test]
fn a_peer_that_never_reads_does_not_stall_the_node() {
    let mut net = Net::start("hostile-noread", 14, "");
    let mark = net.mark();
    let peer = net.neighbour_attacker();
    let (mut reader, mut writer) = peer.split();
    // Pings the node must answer, and broadcasts it must forward: all of
    // it goes to a peer that reads none of it.
    let pings: Vec<Message> = (0..20_000).map(Message::Ping).collect();
    net.rt.block_on(async {
        for p in &pings {
            if writer.send(p).await.is_err() {
                break;
            }
        }
    });
    // Below the chat's 16 KiB line limit, so each is sent.
    let line = "x".repeat(12_000);
    for i in 0..400 {
        net.nodes[1].say(&format!("bulk {i} {line}"));
    }
    assert!(
        net.nodes[2].wait_output("bulk 399 "),
        "c missed the bulk\n{}",
        net.logs()
    );
    assert!(
        net.api(0, "/api/status").is_ok(),
        "a's API stopped answering"
    );
    net.after_attack(
        &mark,
        // Cut at the byte budget, or by the write deadline (the
        // writer's own, or the socket's TCP_USER_TIMEOUT: "timed out").
        &["not reading", "closing", "deadline", "budget", "timed out"],
        "after a silent peer",
    );
    let closed = net.rt.block_on(async {
        tokio::time::timeout(DEADLINE, async {
            while let Ok(Some(_)) = reader.recv().await {}
        })
        .await
        .is_ok()
    });
    assert!(closed, "a kept the link to a peer that never reads");
}

/// Nodes that obey `admin`'s shutdown commands.
fn admin_config(admin: &SecretKey) -> String {
    format!("admin_keys = [\"{}\"]\n", admin.node_id())
}

#[test]
fn a_shutdown_signed_by_another_key_is_not_obeyed() {
    // Seeded apart from the attackers' keys, which come from the row's seed.
    let admin = SecretKey::generate(&mut ChaCha8Rng::seed_from_u64(1015));
    let mut net = Net::start("hostile-shutdown-key", 15, &admin_config(&admin));
    let mark = net.mark();
    let mut peer = net.neighbour_attacker();
    let now = gossipnet_node::time::unix_ms();
    let command = gossipnet_node::admin::sign_shutdown(peer.key(), DEFAULT_NETWORK_ID, now)
        .unwrap()
        .to_vec();
    net.send_all(
        &mut peer,
        &[
            gossip(command.clone()),
            Message::Admin(Bytes::from(command)),
        ],
    );
    net.after_attack(&mark, &["refusing shutdown"], "after a stranger's shutdown");
    for n in &mut net.nodes {
        assert!(n.running(), "{} obeyed a stranger's shutdown", n.name);
    }
}

#[test]
fn a_shutdown_with_a_broken_signature_is_not_obeyed() {
    let admin = SecretKey::generate(&mut ChaCha8Rng::seed_from_u64(1016));
    let mut net = Net::start("hostile-shutdown-sig", 16, &admin_config(&admin));
    let mark = net.mark();
    let mut peer = net.neighbour_attacker();
    let now = gossipnet_node::time::unix_ms();
    let mut command = gossipnet_node::admin::sign_shutdown(&admin, DEFAULT_NETWORK_ID, now)
        .unwrap()
        .to_vec();
    // The signature is the last 64 bytes: the admin's name on a command it
    // never signed.
    let at = command.len() - 64;
    let zero = net.rng.gen_range(at..command.len());
    command[zero] ^= 0xff;
    net.send_all(&mut peer, &[gossip(command.clone())]);
    net.assert_closed(&mut peer, "a shutdown with a broken signature");
    let mut other = net.attacker();
    net.send_all(&mut other, &[Message::Admin(Bytes::from(command))]);
    net.after_attack(
        &mark,
        &["refusing shutdown", "signature", "closing link"],
        "after a broken shutdown",
    );
    for n in &mut net.nodes {
        assert!(n.running(), "{} obeyed an unsigned shutdown", n.name);
    }
}
