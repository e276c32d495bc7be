//! Clients and registries driven against each other, the way the simulator
//! or a test network would run them: every message goes through a queue,
//! and every dial links at once.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::*;
use crate::identity::{NodeId, SecretKey};
use crate::record::{NodeRecord, SignedRecord};

fn key(seed: u64) -> SecretKey {
    SecretKey::generate(&mut ChaCha8Rng::seed_from_u64(seed))
}

fn record(key: &SecretKey, port: u16) -> SignedRecord {
    let record = NodeRecord {
        id: key.node_id(),
        addrs: vec![SocketAddr::from(([192, 0, 2, 1], port))],
        seq: 1,
        roles: vec![],
        name: None,
    };
    SignedRecord::sign(key, record).unwrap()
}

/// A little network of seeds and nodes with one message queue.
struct Net {
    now: Instant,
    rng: ChaCha8Rng,
    seeds: BTreeMap<NodeId, SeedRegistry>,
    /// The seeds' ids in configured order (the address `seedN` is index N).
    seed_ids: Vec<NodeId>,
    nodes: BTreeMap<NodeId, SeedClient>,
    /// Which (node, seed) pairs have a link.
    links: BTreeSet<(NodeId, NodeId)>,
    queue: VecDeque<(NodeId, NodeId, SeedMessage)>,
    /// What each node was told by lists, and who registered, in order.
    heard: BTreeMap<NodeId, BTreeSet<NodeId>>,
    registered: BTreeMap<NodeId, usize>,
    probes: Vec<NodeId>,
}

impl Net {
    fn new(seeds: u64, nodes: u64) -> Self {
        let seed_ids: Vec<NodeId> = (0..seeds).map(|i| key(1000 + i).node_id()).collect();
        let addrs: Vec<String> = (0..seeds).map(|i| format!("seed{i}")).collect();
        Self {
            // Tests only: nothing here reads the clock after this.
            now: Instant::now(),
            rng: ChaCha8Rng::seed_from_u64(1),
            seeds: seed_ids
                .iter()
                .map(|id| (*id, SeedRegistry::new(SeedConfig::default())))
                .collect(),
            seed_ids,
            nodes: (0..nodes)
                .map(|i| {
                    let k = key(i);
                    let client = SeedClient::new(
                        record(&k, 8000 + i as u16),
                        addrs.clone(),
                        ClientConfig::default(),
                    );
                    (k.node_id(), client)
                })
                .collect(),
            links: BTreeSet::new(),
            queue: VecDeque::new(),
            heard: BTreeMap::new(),
            registered: BTreeMap::new(),
            probes: Vec::new(),
        }
    }

    fn ids(&self) -> Vec<NodeId> {
        self.nodes.keys().copied().collect()
    }

    fn tick_all(&mut self) {
        for id in self.ids() {
            let links = self.links.clone();
            let out = self
                .nodes
                .get_mut(&id)
                .unwrap()
                .handle_tick(self.now, |s| links.contains(&(id, *s)));
            self.client_outputs(id, out);
        }
        self.run();
    }

    fn client_outputs(&mut self, me: NodeId, out: Vec<ClientOutput>) {
        for o in out {
            match o {
                ClientOutput::Send { to, msg } => self.queue.push_back((me, to, msg)),
                ClientOutput::Dial { seed, addr } => {
                    assert_eq!(addr, format!("seed{seed}"));
                    let id = self.seed_ids[seed];
                    self.links.insert((me, id));
                    let out = self.nodes.get_mut(&me).unwrap().handle_dial(
                        seed,
                        DialResult::Linked(id),
                        self.now,
                    );
                    self.client_outputs(me, out);
                }
                ClientOutput::Peers { records, contact } => {
                    assert!(records.iter().any(|r| r.id() == contact));
                    let heard = self.heard.entry(me).or_default();
                    heard.extend(records.iter().map(|r| r.id()));
                }
                ClientOutput::Registered { count, .. } => {
                    self.registered.insert(me, count);
                }
                other => panic!("{} got {other:?}", me.short()),
            }
        }
    }

    /// Delivers messages until the queue is empty.
    fn run(&mut self) {
        while let Some((from, to, msg)) = self.queue.pop_front() {
            if let Some(reg) = self.seeds.get_mut(&to) {
                let out = reg.handle(SeedInput::Message { from, msg }, self.now, &mut self.rng);
                for o in out {
                    match o {
                        SeedOutput::Send { to: node, msg } => self.queue.push_back((to, node, msg)),
                        SeedOutput::Probe { id, .. } => self.probes.push(id),
                        SeedOutput::Added { .. } | SeedOutput::Removed { .. } => {}
                        SeedOutput::Refused { reason, .. } => panic!("refused: {reason:?}"),
                    }
                }
            } else if let Some(client) = self.nodes.get_mut(&to) {
                let out = client.on_message(from, msg, &mut self.rng);
                self.client_outputs(to, out);
            }
        }
    }
}

#[test]
fn clients_register_with_every_seed_and_hear_of_each_other() {
    let mut net = Net::new(3, 6);
    // The first tick links and registers; each list may come before
    // other nodes registered, so a refresh later fills the gaps.
    net.tick_all();
    net.now += REFRESH_INTERVAL;
    net.tick_all();
    let ids = net.ids();
    for id in &ids {
        assert_eq!(
            net.registered.get(id),
            Some(&3),
            "{} registered",
            id.short()
        );
        let expected: BTreeSet<NodeId> = ids.iter().copied().filter(|o| o != id).collect();
        assert_eq!(
            net.heard[id],
            expected,
            "{} heard of the others",
            id.short()
        );
    }
    for reg in net.seeds.values() {
        assert_eq!(reg.len(), ids.len());
    }
}

#[test]
fn leaving_and_dead_reports_empty_the_registries() {
    let mut net = Net::new(2, 3);
    net.tick_all();
    let ids = net.ids();
    let (leaver, reporter, dead) = (ids[0], ids[1], ids[2]);
    let links = net.links.clone();
    let out = net.nodes[&leaver].handle_leave(|s| links.contains(&(leaver, *s)));
    net.client_outputs(leaver, out);
    let out = net.nodes[&reporter].handle_neighbor_lost(dead);
    net.client_outputs(reporter, out);
    net.run();
    assert!(net.seeds.values().all(|r| !r.contains(&leaver)));
    // A report is only a hint: each seed probes, and only a failed probe
    // removes the node.
    assert_eq!(net.probes, vec![dead, dead]);
    assert!(net.seeds.values().all(|r| r.contains(&dead)));
    for reg in net.seeds.values_mut() {
        let alive = false;
        reg.handle(
            SeedInput::ProbeResult { id: dead, alive },
            net.now,
            &mut net.rng,
        );
        assert!(!reg.contains(&dead));
        assert!(reg.contains(&reporter));
    }
    // Past the TTL, only the nodes that still refresh stay listed.
    net.nodes.retain(|id, _| *id == reporter);
    net.now += DEFAULT_RECORD_TTL + Duration::from_secs(1);
    net.tick_all();
    for reg in net.seeds.values_mut() {
        reg.handle(SeedInput::Tick, net.now, &mut net.rng);
        assert_eq!(
            reg.records().map(|r| r.id()).collect::<Vec<_>>(),
            vec![reporter]
        );
    }
}
