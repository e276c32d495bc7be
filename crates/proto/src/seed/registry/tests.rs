//! Tests of the registry and of the seed messages' codec.

use super::*;
use crate::identity::SecretKey;
use crate::record::{NodeRecord, MAX_ADDRS, MAX_NAME_LEN, MAX_RECORD_BYTES};
use crate::seed::*;
use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::net::{Ipv6Addr, SocketAddr};

fn key(seed: u64) -> SecretKey {
    SecretKey::generate(&mut ChaCha8Rng::seed_from_u64(seed))
}

fn record(key: &SecretKey, seq: u64) -> SignedRecord {
    let record = NodeRecord {
        id: key.node_id(),
        addrs: vec![SocketAddr::from(([192, 0, 2, 1], 8000))],
        seq,
        roles: vec![],
        name: None,
    };
    SignedRecord::sign(key, record).unwrap()
}

/// The largest record the bounds allow.
fn big_record(key: &SecretKey) -> SignedRecord {
    let record = NodeRecord {
        id: key.node_id(),
        addrs: (1..=MAX_ADDRS as u16)
            .map(|i| SocketAddr::from((Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, i), 65535)))
            .collect(),
        seq: u64::MAX,
        roles: vec![crate::record::Role::Seed; crate::record::MAX_ROLES],
        name: Some("n".repeat(MAX_NAME_LEN)),
    };
    SignedRecord::sign(key, record).unwrap()
}

struct Harness {
    reg: SeedRegistry,
    rng: ChaCha8Rng,
    now: Instant,
}

impl Harness {
    fn new(config: SeedConfig) -> Self {
        Self {
            reg: SeedRegistry::new(config),
            rng: ChaCha8Rng::seed_from_u64(42),
            // Tests only: the registry itself never reads the clock, and
            // every later time is this one plus a fixed offset.
            now: Instant::now(),
        }
    }

    fn input(&mut self, input: SeedInput) -> Vec<SeedOutput> {
        let out = self.reg.handle(input, self.now, &mut self.rng);
        check_invariants(&self.reg);
        out
    }

    fn msg(&mut self, from: NodeId, msg: SeedMessage) -> Vec<SeedOutput> {
        self.input(SeedInput::Message { from, msg })
    }

    fn register(&mut self, key: &SecretKey, seq: u64) -> Vec<SeedOutput> {
        self.msg(key.node_id(), SeedMessage::Register(record(key, seq)))
    }

    /// A dead report from `reporter`, registered first if it is not.
    fn report(&mut self, reporter: &SecretKey, id: NodeId) -> Vec<SeedOutput> {
        if !self.reg.contains(&reporter.node_id()) {
            self.register(reporter, 1);
        }
        self.msg(reporter.node_id(), SeedMessage::DeadReport(id))
    }

    fn tick_after(&mut self, d: Duration) -> Vec<SeedOutput> {
        self.now += d;
        self.input(SeedInput::Tick)
    }

    fn list(&mut self, from: NodeId, max: u16) -> Vec<SignedRecord> {
        let out = self.msg(from, SeedMessage::ListRequest { max });
        match out.as_slice() {
            [SeedOutput::Send {
                to,
                msg: SeedMessage::List(list),
            }] if *to == from => list.clone(),
            other => panic!("expected one list reply, got {other:?}"),
        }
    }
}

/// The indices agree with each other: every record has one slot and one
/// expiry, and every probe is of a registered node.
fn check_invariants(reg: &SeedRegistry) {
    assert_eq!(reg.slots.len(), reg.records.len());
    assert_eq!(reg.expiries.len(), reg.records.len());
    for (i, id) in reg.slots.iter().enumerate() {
        let entry = &reg.records[id];
        assert_eq!(entry.slot, i);
        assert_eq!(entry.record.id(), *id);
        assert!(reg.expiries.contains(&(entry.expires, *id)));
    }
    assert!(reg.probes.keys().all(|id| reg.records.contains_key(id)));
    assert!(reg.probes.len() <= reg.config.max_pending_probes);
    assert!(reg.records.len() <= reg.config.max_records);
}

/// The acknowledgement of a registration under the default TTL.
fn registered_to(id: NodeId) -> SeedOutput {
    SeedOutput::Send {
        to: id,
        msg: SeedMessage::Registered { ttl_secs: 90 },
    }
}

#[test]
fn register_adds_and_acknowledges() {
    let mut h = Harness::new(SeedConfig::default());
    let a = key(1);
    let out = h.register(&a, 1);
    assert_eq!(
        out,
        vec![
            SeedOutput::Added { id: a.node_id() },
            registered_to(a.node_id())
        ]
    );
    assert!(h.reg.contains(&a.node_id()));
    assert_eq!(h.reg.len(), 1);
    assert_eq!(h.reg.get(&a.node_id()), Some(&record(&a, 1)));
    assert_eq!(h.reg.records().count(), 1);
    // A refresh acknowledges again but adds nothing.
    assert_eq!(h.register(&a, 1), vec![registered_to(a.node_id())]);
}

#[test]
fn registering_someone_elses_record_is_refused() {
    let mut h = Harness::new(SeedConfig::default());
    let a = key(1);
    let b = key(2);
    let out = h.msg(b.node_id(), SeedMessage::Register(record(&a, 1)));
    assert_eq!(
        out,
        vec![SeedOutput::Refused {
            from: b.node_id(),
            reason: RefuseReason::NotSender
        }]
    );
    assert!(h.reg.is_empty());
}

#[test]
fn a_record_with_a_bad_signature_is_refused() {
    let mut h = Harness::new(SeedConfig::default());
    let a = key(1);
    // Re-signing seq 1's signature onto seq 2 forges the record.
    let good = record(&a, 1);
    let mut bytes = good.encode();
    let seq_at = 32 + 1 + 7; // id, address count, one IPv4 address (tag, 4 bytes, port 2)
    assert_eq!(bytes[seq_at], 1);
    bytes[seq_at] = 2;
    let forged = SignedRecord::decode(&bytes).unwrap();
    assert_eq!(forged.record().seq, 2);
    let out = h.msg(a.node_id(), SeedMessage::Register(forged));
    assert_eq!(
        out,
        vec![SeedOutput::Refused {
            from: a.node_id(),
            reason: RefuseReason::BadRecord(RecordError::BadSignature)
        }]
    );
    assert!(h.reg.is_empty());
}

#[test]
fn the_highest_seq_wins() {
    let mut h = Harness::new(SeedConfig::default());
    let a = key(1);
    h.register(&a, 5);
    h.register(&a, 7);
    assert_eq!(h.reg.get(&a.node_id()).unwrap().record().seq, 7);
    // An older record refreshes the node (it spoke over its own link)
    // but does not replace the newer one.
    h.now += Duration::from_secs(60);
    assert_eq!(h.register(&a, 6), vec![registered_to(a.node_id())]);
    assert_eq!(h.reg.get(&a.node_id()).unwrap().record().seq, 7);
    assert!(h.tick_after(Duration::from_secs(60)).is_empty());
    assert!(h.reg.contains(&a.node_id()));
}

#[test]
fn records_expire_unless_refreshed() {
    let mut h = Harness::new(SeedConfig::default());
    let a = key(1);
    let b = key(2);
    h.register(&a, 1);
    h.register(&b, 1);
    assert_eq!(h.reg.next_deadline(), Some(h.now + DEFAULT_RECORD_TTL));
    // a refreshes on schedule, b falls silent.
    for _ in 0..2 {
        assert!(h.tick_after(REFRESH_INTERVAL).is_empty());
        h.register(&a, 1);
    }
    let a_expires = h.now + DEFAULT_RECORD_TTL;
    assert_eq!(
        h.tick_after(REFRESH_INTERVAL),
        vec![SeedOutput::Removed {
            id: b.node_id(),
            reason: RemoveReason::Expired
        }]
    );
    assert!(h.reg.contains(&a.node_id()));
    assert_eq!(h.reg.next_deadline(), Some(a_expires));
    // a goes out at exactly its TTL after the last refresh.
    let before = a_expires - h.now - Duration::from_millis(1);
    assert!(h.tick_after(before).is_empty());
    assert_eq!(
        h.tick_after(Duration::from_millis(1)),
        vec![SeedOutput::Removed {
            id: a.node_id(),
            reason: RemoveReason::Expired
        }]
    );
    assert!(h.reg.is_empty());
    assert_eq!(h.reg.next_deadline(), None);
}

#[test]
fn an_expired_record_is_gone_before_the_next_input_is_handled() {
    let mut h = Harness::new(SeedConfig::default());
    let a = key(1);
    let b = key(2);
    h.register(&a, 1);
    h.now += DEFAULT_RECORD_TTL;
    // No tick: the list request itself retires a first.
    let out = h.msg(b.node_id(), SeedMessage::ListRequest { max: 10 });
    assert_eq!(
        out,
        vec![
            SeedOutput::Removed {
                id: a.node_id(),
                reason: RemoveReason::Expired
            },
            SeedOutput::Send {
                to: b.node_id(),
                msg: SeedMessage::List(vec![])
            }
        ]
    );
}

#[test]
fn expiry_is_reported_once_with_its_reason() {
    let mut h = Harness::new(SeedConfig::default());
    let a = key(1);
    h.register(&a, 1);
    let out = h.tick_after(DEFAULT_RECORD_TTL);
    assert_eq!(
        out,
        vec![SeedOutput::Removed {
            id: a.node_id(),
            reason: RemoveReason::Expired
        }]
    );
    assert!(h.tick_after(DEFAULT_RECORD_TTL).is_empty());
}

#[test]
fn leave_removes_only_the_sender() {
    let mut h = Harness::new(SeedConfig::default());
    let a = key(1);
    let b = key(2);
    h.register(&a, 1);
    h.register(&b, 1);
    assert_eq!(
        h.msg(a.node_id(), SeedMessage::Leave),
        vec![SeedOutput::Removed {
            id: a.node_id(),
            reason: RemoveReason::Left
        }]
    );
    assert!(!h.reg.contains(&a.node_id()));
    assert!(h.reg.contains(&b.node_id()));
    assert!(h.msg(a.node_id(), SeedMessage::Leave).is_empty());
}

#[test]
fn a_dead_report_alone_never_removes_a_node() {
    let mut h = Harness::new(SeedConfig::default());
    let a = key(1);
    let id = a.node_id();
    h.register(&a, 1);
    let out = h.report(&key(2), id);
    assert_eq!(
        out,
        vec![SeedOutput::Probe {
            id,
            record: record(&a, 1)
        }]
    );
    // More reports, from anyone, while the probe is out: no second probe.
    for reporter in 2..20 {
        assert!(h.report(&key(reporter), id).is_empty());
    }
    assert_eq!(h.reg.pending_probes(), 1);
    assert!(h.reg.contains(&id));
    // A result nobody asked for about another node changes nothing.
    assert!(h
        .input(SeedInput::ProbeResult {
            id: key(3).node_id(),
            alive: false
        })
        .is_empty());
    assert!(h.reg.contains(&id));
}

#[test]
fn a_failed_probe_removes_the_node() {
    let mut h = Harness::new(SeedConfig::default());
    let a = key(1);
    let id = a.node_id();
    h.register(&a, 1);
    h.report(&key(2), id);
    let out = h.input(SeedInput::ProbeResult { id, alive: false });
    assert_eq!(
        out,
        vec![SeedOutput::Removed {
            id,
            reason: RemoveReason::Dead
        }]
    );
    assert!(!h.reg.contains(&id));
    assert_eq!(h.reg.pending_probes(), 0);
}

#[test]
fn a_successful_probe_refreshes_the_node() {
    let mut h = Harness::new(SeedConfig::default());
    let a = key(1);
    let id = a.node_id();
    h.register(&a, 1);
    h.now += Duration::from_secs(80);
    h.report(&key(2), id);
    assert!(h
        .input(SeedInput::ProbeResult { id, alive: true })
        .is_empty());
    assert_eq!(h.reg.pending_probes(), 0);
    // Past the TTL of the registration, within that of the probe.
    assert!(h.tick_after(Duration::from_secs(80)).is_empty());
    assert!(h.reg.contains(&id));
    // A late second result is not ours any more, and is ignored.
    assert!(h
        .input(SeedInput::ProbeResult { id, alive: false })
        .is_empty());
    assert!(h.reg.contains(&id));
}

#[test]
fn an_unanswered_probe_counts_as_failed() {
    let mut h = Harness::new(SeedConfig::default());
    let a = key(1);
    let id = a.node_id();
    h.register(&a, 1);
    h.report(&key(2), id);
    assert_eq!(h.reg.next_deadline(), Some(h.now + DEFAULT_PROBE_TIMEOUT));
    assert!(h
        .tick_after(DEFAULT_PROBE_TIMEOUT - Duration::from_millis(1))
        .is_empty());
    assert!(h.reg.contains(&id));
    assert_eq!(
        h.tick_after(Duration::from_millis(1)),
        vec![SeedOutput::Removed {
            id,
            reason: RemoveReason::Dead
        }]
    );
    // The answer, arriving late, is ignored.
    assert!(h
        .input(SeedInput::ProbeResult { id, alive: true })
        .is_empty());
    assert!(!h.reg.contains(&id));
}

#[test]
fn dead_reports_of_unknown_nodes_are_ignored() {
    let mut h = Harness::new(SeedConfig::default());
    assert!(h.report(&key(1), key(2).node_id()).is_empty());
    assert_eq!(h.reg.pending_probes(), 0);
}

#[test]
fn probes_in_flight_are_bounded() {
    let mut h = Harness::new(SeedConfig {
        max_pending_probes: 3,
        ..SeedConfig::default()
    });
    let keys: Vec<SecretKey> = (1..=5).map(key).collect();
    for k in &keys {
        h.register(k, 1);
    }
    let reporter = key(99);
    let probes: usize = keys
        .iter()
        .map(|k| h.report(&reporter, k.node_id()).len())
        .sum();
    assert_eq!(probes, 3);
    assert_eq!(h.reg.pending_probes(), 3);
    // A finished probe frees its place.
    h.input(SeedInput::ProbeResult {
        id: keys[0].node_id(),
        alive: true,
    });
    assert_eq!(h.report(&reporter, keys[4].node_id()).len(), 1);
}

#[test]
fn dead_reports_from_strangers_are_refused() {
    let mut h = Harness::new(SeedConfig::default());
    let a = key(1);
    h.register(&a, 1);
    let stranger = key(2).node_id();
    assert_eq!(
        h.msg(stranger, SeedMessage::DeadReport(a.node_id())),
        vec![SeedOutput::Refused {
            from: stranger,
            reason: RefuseReason::NotRegistered
        }]
    );
    assert_eq!(h.reg.pending_probes(), 0);
}

#[test]
fn dead_reports_are_rate_limited_per_reporter() {
    let mut h = Harness::new(SeedConfig {
        max_reports: 2,
        report_window: Duration::from_secs(60),
        ..SeedConfig::default()
    });
    let keys: Vec<SecretKey> = (1..=4).map(key).collect();
    for k in &keys {
        h.register(k, 1);
    }
    let reporter = key(99);
    assert_eq!(h.report(&reporter, keys[0].node_id()).len(), 1);
    assert_eq!(h.report(&reporter, keys[1].node_id()).len(), 1);
    let from = reporter.node_id();
    assert_eq!(
        h.report(&reporter, keys[2].node_id()),
        vec![SeedOutput::Refused {
            from,
            reason: RefuseReason::TooManyReports
        }]
    );
    // Another reporter is not held to the first one's count.
    assert_eq!(h.report(&key(98), keys[2].node_id()).len(), 1);
    // A new window, a new allowance (registrations keep the reporter in).
    h.tick_after(Duration::from_secs(30));
    h.register(&reporter, 2);
    h.tick_after(Duration::from_secs(31));
    assert_eq!(h.report(&reporter, keys[3].node_id()).len(), 1);
}

#[test]
fn leaving_cancels_a_pending_probe() {
    let mut h = Harness::new(SeedConfig::default());
    let a = key(1);
    h.register(&a, 1);
    h.report(&key(2), a.node_id());
    h.msg(a.node_id(), SeedMessage::Leave);
    assert_eq!(h.reg.pending_probes(), 0);
    assert!(h.tick_after(DEFAULT_PROBE_TIMEOUT).is_empty());
}

#[test]
fn a_full_registry_refuses_new_ids_but_refreshes_known_ones() {
    let mut h = Harness::new(SeedConfig {
        max_records: 3,
        ..SeedConfig::default()
    });
    let keys: Vec<SecretKey> = (1..=4).map(key).collect();
    for k in &keys[..3] {
        h.register(k, 1);
    }
    assert_eq!(
        h.register(&keys[3], 1),
        vec![SeedOutput::Refused {
            from: keys[3].node_id(),
            reason: RefuseReason::Full
        }]
    );
    assert_eq!(h.reg.len(), 3);
    assert_eq!(
        h.register(&keys[0], 2),
        vec![registered_to(keys[0].node_id())]
    );
    assert_eq!(h.reg.get(&keys[0].node_id()).unwrap().record().seq, 2);
    // Room again once one leaves.
    h.msg(keys[1].node_id(), SeedMessage::Leave);
    assert_eq!(
        h.register(&keys[3], 1),
        vec![
            SeedOutput::Added {
                id: keys[3].node_id()
            },
            registered_to(keys[3].node_id())
        ]
    );
}

#[test]
fn list_is_a_sample_without_the_requester_or_duplicates() {
    let mut h = Harness::new(SeedConfig::default());
    let keys: Vec<SecretKey> = (1..=50).map(key).collect();
    for k in &keys {
        h.register(k, 1);
    }
    let me = keys[0].node_id();
    let mut seen = BTreeSet::new();
    for _ in 0..100 {
        let list = h.list(me, 10);
        assert_eq!(list.len(), 10);
        let ids: BTreeSet<NodeId> = list.iter().map(SignedRecord::id).collect();
        assert_eq!(ids.len(), 10, "duplicates in {ids:?}");
        assert!(!ids.contains(&me));
        assert!(list.iter().all(|r| r.verify().is_ok()));
        seen.extend(ids);
    }
    // Every other node turns up over 100 draws of 10 out of 49.
    assert_eq!(seen.len(), 49);
}

#[test]
fn list_sizes_follow_the_request_and_the_caps() {
    let mut h = Harness::new(SeedConfig {
        sample_size: 4,
        max_sample: 20,
        ..SeedConfig::default()
    });
    let keys: Vec<SecretKey> = (1..=30).map(key).collect();
    for k in &keys {
        h.register(k, 1);
    }
    let me = keys[0].node_id();
    let outsider = key(100).node_id();
    assert_eq!(h.list(me, 0).len(), 4);
    assert_eq!(h.list(me, 7).len(), 7);
    assert_eq!(h.list(me, u16::MAX).len(), 20);
    // Asking for more than there are gives all the others.
    let mut small = Harness::new(SeedConfig::default());
    for k in &keys[..5] {
        small.register(k, 1);
    }
    assert_eq!(small.list(me, 100).len(), 4);
    assert_eq!(small.list(outsider, 100).len(), 5);
    assert_eq!(small.list(outsider, 5).len(), 5);
    assert!(Harness::new(SeedConfig::default()).list(me, 10).is_empty());
}

#[test]
fn a_list_reply_fits_the_message_cap() {
    let mut h = Harness::new(SeedConfig::default());
    let keys: Vec<SecretKey> = (1..=MAX_LIST_LEN as u64 + 10).map(key).collect();
    for k in &keys {
        let out = h.msg(k.node_id(), SeedMessage::Register(big_record(k)));
        assert_eq!(out.len(), 2);
    }
    let list = h.list(key(0).node_id(), u16::MAX);
    assert!(list.len() >= MAX_SEED_MESSAGE_BYTES / MAX_RECORD_BYTES - 1);
    let bytes = SeedMessage::List(list).encode();
    assert!(bytes.len() <= MAX_SEED_MESSAGE_BYTES);
    assert!(SeedMessage::decode(&bytes).is_ok());
}

#[test]
fn replies_sent_to_a_seed_are_refused() {
    let mut h = Harness::new(SeedConfig::default());
    let a = key(1).node_id();
    for msg in [
        SeedMessage::Registered { ttl_secs: 1 },
        SeedMessage::List(vec![]),
    ] {
        assert_eq!(
            h.msg(a, msg),
            vec![SeedOutput::Refused {
                from: a,
                reason: RefuseReason::Unexpected
            }]
        );
    }
}

#[test]
fn same_inputs_give_same_outputs() {
    let run = || {
        let mut h = Harness::new(SeedConfig::default());
        let keys: Vec<SecretKey> = (1..=40).map(key).collect();
        for k in &keys {
            h.register(k, 1);
        }
        (0..10)
            .map(|i| h.list(keys[i].node_id(), 8))
            .collect::<Vec<_>>()
    };
    assert_eq!(run(), run());
}

#[test]
fn huge_durations_do_not_overflow() {
    let mut h = Harness::new(SeedConfig {
        record_ttl: Duration::MAX,
        probe_timeout: Duration::MAX,
        ..SeedConfig::default()
    });
    let a = key(1);
    let year = MAX_CONFIG_DURATION.as_secs() as u32;
    assert_eq!(
        h.register(&a, 1)[1],
        SeedOutput::Send {
            to: a.node_id(),
            msg: SeedMessage::Registered { ttl_secs: year }
        }
    );
    h.report(&key(2), a.node_id());
    assert!(h.reg.next_deadline().is_some());
    assert!(h.tick_after(Duration::from_secs(3600)).is_empty());
    assert!(h.reg.contains(&a.node_id()));
}

#[test]
fn seed_messages_round_trip() {
    let a = key(1);
    let msgs = [
        SeedMessage::Register(record(&a, 3)),
        SeedMessage::Registered { ttl_secs: 90 },
        SeedMessage::ListRequest { max: 32 },
        SeedMessage::List(vec![record(&a, 1), big_record(&key(2))]),
        SeedMessage::DeadReport(a.node_id()),
        SeedMessage::Leave,
    ];
    for msg in msgs {
        let mut bytes = msg.encode();
        assert_eq!(SeedMessage::decode(&bytes), Ok(msg));
        bytes.push(0);
        assert_eq!(SeedMessage::decode(&bytes), Err(SeedError::TrailingBytes));
    }
}

#[test]
fn over_long_lists_and_messages_are_refused() {
    let r = record(&key(1), 1);
    let full = postcard::to_allocvec(&(3u8, vec![r.clone(); MAX_LIST_LEN])).unwrap();
    assert!(SeedMessage::decode(&full).is_ok());
    let bytes = postcard::to_allocvec(&(3u8, vec![r; MAX_LIST_LEN + 1])).unwrap();
    assert!(bytes.len() <= MAX_SEED_MESSAGE_BYTES);
    assert_eq!(SeedMessage::decode(&bytes), Err(SeedError::Malformed));
    // A length prefix claiming 2^32 records, with nothing behind it.
    assert_eq!(
        SeedMessage::decode(&[3, 0x80, 0x80, 0x80, 0x80, 0x10]),
        Err(SeedError::Malformed)
    );
    let big = vec![0u8; MAX_SEED_MESSAGE_BYTES + 1];
    assert_eq!(
        SeedMessage::decode(&big),
        Err(SeedError::TooLarge(MAX_SEED_MESSAGE_BYTES + 1))
    );
}

#[test]
fn a_list_holding_a_record_over_its_bounds_is_refused() {
    let a = key(1);
    let mut bytes = SeedMessage::List(vec![record(&a, 1)]).encode();
    // The record has no name (a final 0 before the signature); make the
    // name an escape character. The signature no longer matters: the
    // bounds are checked first.
    let name_at = bytes.len() - 66;
    assert_eq!(bytes[name_at], 0);
    let mut named = bytes.clone();
    named.splice(name_at..=name_at, [1, 1, b'a']);
    assert!(SeedMessage::decode(&named).is_ok());
    bytes.splice(name_at..=name_at, [1, 1, 0x1b]);
    assert_eq!(SeedMessage::decode(&bytes), Err(SeedError::Malformed));
}

/// One step of the random-operations test.
#[derive(Debug, Clone)]
enum Op {
    Register(usize, u64),
    List(usize, u16),
    Dead(usize),
    Probe(usize, bool),
    Leave(usize),
    Wait(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..8usize, 0..4u64).prop_map(|(k, s)| Op::Register(k, s)),
        (0..8usize, 0..10u16).prop_map(|(k, m)| Op::List(k, m)),
        (0..8usize).prop_map(Op::Dead),
        (0..8usize, any::<bool>()).prop_map(|(k, a)| Op::Probe(k, a)),
        (0..8usize).prop_map(Op::Leave),
        (0..60u64).prop_map(Op::Wait),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_operations_keep_the_registry_consistent(ops in proptest::collection::vec(op(), 1..80)) {
        let keys: Vec<SecretKey> = (1..=8).map(key).collect();
        let mut h = Harness::new(SeedConfig {
            max_records: 6,
            max_pending_probes: 2,
            ..SeedConfig::default()
        });
        let mut probed = BTreeSet::new();
        for op in ops {
            let out = match op {
                Op::Register(k, seq) => h.register(&keys[k], seq),
                Op::List(k, max) => {
                    let me = keys[k].node_id();
                    let list = h.list(me, max);
                    let ids: BTreeSet<NodeId> = list.iter().map(SignedRecord::id).collect();
                    prop_assert_eq!(ids.len(), list.len());
                    prop_assert!(!ids.contains(&me));
                    prop_assert!(ids.iter().all(|id| h.reg.contains(id)));
                    vec![]
                }
                Op::Dead(k) => h.msg(keys[0].node_id(), SeedMessage::DeadReport(keys[k].node_id())),
                Op::Probe(k, alive) => h.input(SeedInput::ProbeResult { id: keys[k].node_id(), alive }),
                Op::Leave(k) => h.msg(keys[k].node_id(), SeedMessage::Leave),
                Op::Wait(secs) => h.tick_after(Duration::from_secs(secs)),
            };
            for o in &out {
                match o {
                    SeedOutput::Probe { id, .. } => { probed.insert(*id); }
                    // Only a probe the registry asked for can kill a node.
                    SeedOutput::Removed { id, reason: RemoveReason::Dead } => {
                        prop_assert!(probed.remove(id));
                    }
                    SeedOutput::Removed { id, .. } => { probed.remove(id); }
                    _ => {}
                }
            }
            probed.retain(|id| h.reg.probes.contains_key(id));
        }
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..800)) {
        let _ = SeedMessage::decode(&bytes);
    }
}
