//! Tests of the seed client on its own: dialling and backoff, registration
//! and refresh, lists, reports and leaving.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::*;
use crate::identity::SecretKey;
use crate::record::NodeRecord;

fn key(seed: u64) -> SecretKey {
    SecretKey::generate(&mut ChaCha8Rng::seed_from_u64(seed))
}

fn record(key: &SecretKey) -> SignedRecord {
    let record = NodeRecord {
        id: key.node_id(),
        addrs: vec![SocketAddr::from(([192, 0, 2, 1], 8000))],
        seq: 1,
        roles: vec![],
        name: None,
    };
    SignedRecord::sign(key, record).unwrap()
}

struct Harness {
    client: SeedClient,
    me: SecretKey,
    now: Instant,
    linked: BTreeSet<NodeId>,
    rng: ChaCha8Rng,
}

impl Harness {
    fn new(seeds: usize, mode: ClientMode) -> Self {
        let me = key(100);
        let addrs = (0..seeds).map(|i| format!("seed{i}:7465")).collect();
        let config = ClientConfig {
            mode,
            ..ClientConfig::default()
        };
        Self {
            client: SeedClient::new(record(&me), addrs, config),
            me,
            // Tests only: the client never reads the clock.
            now: Instant::now(),
            linked: BTreeSet::new(),
            rng: ChaCha8Rng::seed_from_u64(7),
        }
    }

    fn tick(&mut self) -> Vec<ClientOutput> {
        let linked = self.linked.clone();
        self.client.handle_tick(self.now, |id| linked.contains(id))
    }

    fn link(&mut self, seed: usize, id: NodeId) -> Vec<ClientOutput> {
        self.linked.insert(id);
        self.client
            .handle_dial(seed, DialResult::Linked(id), self.now)
    }

    fn message(&mut self, from: NodeId, msg: SeedMessage) -> Vec<ClientOutput> {
        self.client.on_message(from, msg, &mut self.rng)
    }
}

fn dials(out: &[ClientOutput]) -> Vec<usize> {
    out.iter()
        .filter_map(|o| match o {
            ClientOutput::Dial { seed, .. } => Some(*seed),
            _ => None,
        })
        .collect()
}

fn register_and_ask(to: NodeId, record: SignedRecord) -> Vec<ClientOutput> {
    vec![
        ClientOutput::Send {
            to,
            msg: SeedMessage::Register(record),
        },
        ClientOutput::Send {
            to,
            msg: SeedMessage::ListRequest { max: 0 },
        },
    ]
}

#[test]
fn every_seed_is_dialled_once_until_the_dial_ends() {
    let mut h = Harness::new(3, ClientMode::Register);
    let out = h.tick();
    assert_eq!(dials(&out), vec![0, 1, 2]);
    assert_eq!(
        out[1],
        ClientOutput::Dial {
            seed: 1,
            addr: "seed1:7465".into()
        }
    );
    assert!(h.tick().is_empty(), "no second dial while one is out");
}

#[test]
fn an_unreachable_seed_is_redialled_with_growing_waits_until_it_links() {
    let mut h = Harness::new(1, ClientMode::Register);
    // Answers the dial out now with a failure; returns how long until the
    // client dials again.
    let fail_and_wait = |h: &mut Harness| {
        h.client.handle_dial(0, DialResult::Failed, h.now);
        let start = h.now;
        loop {
            h.now += Duration::from_millis(500);
            if dials(&h.tick()) == vec![0] {
                return (h.now - start).as_millis();
            }
        }
    };
    assert_eq!(dials(&h.tick()), vec![0]);
    let waits: Vec<u128> = (0..7).map(|_| fail_and_wait(&mut h)).collect();
    assert_eq!(waits, vec![1000, 2000, 4000, 8000, 16000, 30000, 30000]);
    // A link resets the backoff: once it is gone the seed is dialled at
    // once, and a failure then waits the first delay again.
    let seed = key(1).node_id();
    h.link(0, seed);
    h.linked.clear();
    assert_eq!(dials(&h.tick()), vec![0]);
    assert_eq!(fail_and_wait(&mut h), 1000);
}

#[test]
fn a_dial_that_reaches_ourselves_is_not_registered_with() {
    let mut h = Harness::new(1, ClientMode::Register);
    h.tick();
    assert!(h
        .client
        .handle_dial(0, DialResult::Myself, h.now)
        .is_empty());
    assert_eq!(h.client.seeds()[0].id(), None);
}

#[test]
fn a_linked_seed_is_registered_with_and_refreshed() {
    let mut h = Harness::new(1, ClientMode::Register);
    let seed = key(1).node_id();
    h.tick();
    let mine = record(&h.me);
    assert_eq!(h.link(0, seed), register_and_ask(seed, mine.clone()));
    assert_eq!(h.client.seeds()[0].id(), Some(seed));
    h.now += REFRESH_INTERVAL - Duration::from_secs(1);
    assert!(h.tick().is_empty(), "not due yet");
    h.now += Duration::from_secs(1);
    assert_eq!(h.tick(), register_and_ask(seed, mine));
    assert!(h.tick().is_empty());
}

#[test]
fn a_new_record_is_what_the_next_registration_carries() {
    let mut h = Harness::new(1, ClientMode::Register);
    let seed = key(1).node_id();
    h.tick();
    h.link(0, seed);
    let renamed = {
        let mut r = record(&h.me).record().clone();
        r.seq = 2;
        r.name = Some("renamed".into());
        SignedRecord::sign(&h.me, r).unwrap()
    };
    h.client.set_record(renamed.clone());
    h.now += REFRESH_INTERVAL;
    assert_eq!(h.tick(), register_and_ask(seed, renamed));
}

#[test]
fn a_seed_in_dial_only_mode_links_but_never_registers() {
    let mut h = Harness::new(2, ClientMode::DialOnly);
    let other = key(1).node_id();
    assert_eq!(dials(&h.tick()), vec![0, 1]);
    assert!(h.link(0, other).is_empty());
    h.now += REFRESH_INTERVAL;
    assert!(h.tick().is_empty(), "linked, and its refresh sends nothing");
    assert!(h.client.handle_leave(|_| true).is_empty());
}

#[test]
fn registrations_are_counted_once_and_the_majority_is_told() {
    let mut h = Harness::new(3, ClientMode::Register);
    let ids: Vec<NodeId> = (1..=3).map(|i| key(i).node_id()).collect();
    h.tick();
    for (i, id) in ids.iter().enumerate() {
        h.link(i, *id);
    }
    let ack = || SeedMessage::Registered { ttl_secs: 90 };
    let registered = |seed, count, majority| {
        vec![ClientOutput::Registered {
            seed,
            count,
            total: 3,
            majority,
        }]
    };
    assert_eq!(h.message(ids[1], ack()), registered(1, 1, false));
    assert!(
        h.message(ids[1], ack()).is_empty(),
        "a refresh's ack is no news"
    );
    assert_eq!(h.message(ids[0], ack()), registered(0, 2, true));
    assert_eq!(h.message(ids[2], ack()), registered(2, 3, false));
    assert!(h.client.seeds().iter().all(|s| s.registered()));
}

#[test]
fn a_list_keeps_verified_records_of_others_and_picks_a_contact_among_them() {
    let mut h = Harness::new(1, ClientMode::Register);
    let seed = key(1).node_id();
    h.tick();
    h.link(0, seed);
    let others: Vec<SignedRecord> = (10..14).map(|i| record(&key(i))).collect();
    let forged = {
        // Another node's record under a signature that is not its own.
        let mut bytes = record(&key(20)).encode();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        SignedRecord::decode(&bytes).unwrap()
    };
    let mut list = others.clone();
    list.push(record(&h.me));
    list.push(forged);
    let out = h.message(seed, SeedMessage::List(list));
    let [ClientOutput::Peers { records, contact }] = out.as_slice() else {
        panic!("expected one list of peers, got {out:?}");
    };
    assert_eq!(records, &others);
    assert!(others.iter().any(|r| r.id() == *contact));
    assert!(h.message(seed, SeedMessage::List(vec![])).is_empty());
}

#[test]
fn seed_messages_from_others_or_of_the_wrong_kind_are_refused() {
    let mut h = Harness::new(1, ClientMode::Register);
    let seed = key(1).node_id();
    let stranger = key(2).node_id();
    h.tick();
    h.link(0, seed);
    assert_eq!(
        h.message(stranger, SeedMessage::Registered { ttl_secs: 90 }),
        vec![ClientOutput::NotASeed { from: stranger }]
    );
    assert_eq!(
        h.message(seed, SeedMessage::Leave),
        vec![ClientOutput::Unexpected {
            from: seed,
            msg: SeedMessage::Leave
        }]
    );
}

#[test]
fn a_lost_neighbour_is_reported_to_every_known_seed_and_leave_to_linked_ones() {
    let mut h = Harness::new(3, ClientMode::Register);
    let a = key(1).node_id();
    let b = key(2).node_id();
    let dead = key(3).node_id();
    h.tick();
    h.link(0, a);
    h.link(2, b);
    h.linked.remove(&b);
    let report = |to| ClientOutput::Send {
        to,
        msg: SeedMessage::DeadReport(dead),
    };
    // Seed 1 was never reached, so its id is unknown.
    assert_eq!(
        h.client.handle_neighbor_lost(dead),
        vec![report(a), report(b)]
    );
    let linked = h.linked.clone();
    assert_eq!(
        h.client.handle_leave(|id| linked.contains(id)),
        vec![ClientOutput::Send {
            to: a,
            msg: SeedMessage::Leave
        }]
    );
    assert_eq!(
        h.client
            .linked(|id| linked.contains(id))
            .collect::<Vec<_>>(),
        vec![a]
    );
}

#[test]
fn bootstrap_asks_linked_seeds_for_lists_and_dials_the_rest() {
    let mut h = Harness::new(2, ClientMode::Register);
    let a = key(1).node_id();
    h.tick();
    h.link(0, a);
    h.client.handle_dial(1, DialResult::Failed, h.now);
    let linked = h.linked.clone();
    let out = h.client.handle_bootstrap(h.now, |id| linked.contains(id));
    assert_eq!(
        out,
        vec![ClientOutput::Send {
            to: a,
            msg: SeedMessage::ListRequest { max: 0 }
        }],
        "seed 1 is backing off"
    );
    h.now += DEFAULT_REDIAL_MIN;
    let out = h.client.handle_bootstrap(h.now, |id| linked.contains(id));
    assert_eq!(dials(&out), vec![1]);
}
