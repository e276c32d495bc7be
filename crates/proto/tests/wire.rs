//! Property and bound tests of the wire codec (`wire::encode` /
//! `wire::decode`): every message of every variant, generated within its
//! bounds, decodes to itself; arbitrary or corrupted bytes never make
//! `decode` panic, and whatever it accepts is within bounds; messages over a
//! bound (shuffle lists, peer data, broadcast and direct content, size
//! registers, `IHave` entries, seed lists) are refused, as are oversized inputs and
//! trailing bytes. Messages exactly at a bound are accepted. Every message
//! falls in the traffic class its kind names.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use bytes::Bytes;
use gossipnet_proto::hyparview::{Message as HpvMessage, PeerInfo, Priority, MAX_SHUFFLE_PEERS};
use gossipnet_proto::plumtree::{Gossip, IHave, Message as TreeMessage, MAX_IHAVE_ENTRIES};
use gossipnet_proto::record::{NodeRecord, Role, SignedRecord, MAX_ADDRS, MAX_ROLES};
use gossipnet_proto::seed::{SeedMessage, MAX_LIST_LEN};
use gossipnet_proto::size::{Message as SizeMessage, REGISTERS};
use gossipnet_proto::wire::{
    decode, encode, kind, validate, Class, DecodeError, Message, MAX_GOSSIP_BYTES,
    MAX_MESSAGE_BYTES, MAX_PEER_DATA_BYTES,
};
use gossipnet_proto::{MessageId, NodeId, SecretKey};
use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn bytes(max: usize) -> impl Strategy<Value = Bytes> {
    prop::collection::vec(any::<u8>(), 0..=max).prop_map(Bytes::from)
}

fn node_id() -> impl Strategy<Value = NodeId> {
    any::<[u8; 32]>().prop_map(NodeId::from_bytes)
}

fn message_id() -> impl Strategy<Value = MessageId> {
    any::<[u8; 32]>().prop_map(MessageId)
}

/// Peer data: mostly short, sometimes up to the bound.
fn peer_data() -> impl Strategy<Value = Bytes> {
    prop_oneof![3 => bytes(32), 1 => bytes(MAX_PEER_DATA_BYTES)]
}

fn peer_info() -> impl Strategy<Value = PeerInfo> {
    (node_id(), peer_data()).prop_map(|(id, data)| PeerInfo { id, data })
}

fn peers() -> impl Strategy<Value = Vec<PeerInfo>> {
    prop::collection::vec(
        (node_id(), bytes(16)).prop_map(|(id, data)| PeerInfo { id, data }),
        0..=MAX_SHUFFLE_PEERS,
    )
}

fn priority() -> impl Strategy<Value = Priority> {
    prop_oneof![Just(Priority::High), Just(Priority::Low)]
}

fn membership() -> impl Strategy<Value = HpvMessage> {
    prop_oneof![
        peer_data().prop_map(HpvMessage::Join),
        (peer_info(), any::<u16>()).prop_map(|(peer, ttl)| HpvMessage::ForwardJoin { peer, ttl }),
        (peer_info(), peers(), any::<u16>()).prop_map(|(origin, nodes, ttl)| HpvMessage::Shuffle {
            origin,
            nodes,
            ttl
        }),
        peers().prop_map(|nodes| HpvMessage::ShuffleReply { nodes }),
        (priority(), peer_data(), any::<u32>()).prop_map(|(priority, data, request)| {
            HpvMessage::Neighbor {
                priority,
                data,
                request,
            }
        }),
        (any::<bool>(), peer_data(), any::<u32>()).prop_map(|(accepted, data, request)| {
            HpvMessage::NeighborReply {
                accepted,
                data,
                request,
            }
        }),
        any::<bool>().prop_map(|alive| HpvMessage::Disconnect { alive }),
    ]
}

fn broadcast() -> impl Strategy<Value = TreeMessage> {
    prop_oneof![
        (bytes(4096), any::<u16>())
            .prop_map(|(content, round)| TreeMessage::Gossip(Gossip { content, round })),
        prop::collection::vec(
            (message_id(), any::<u16>()).prop_map(|(id, round)| IHave { id, round }),
            0..64,
        )
        .prop_map(TreeMessage::IHave),
        (
            prop::option::of(message_id()),
            any::<u16>(),
            prop::option::of(node_id())
        )
            .prop_map(|(id, round, origin)| TreeMessage::Graft { id, round, origin }),
        node_id().prop_map(|origin| TreeMessage::Prune { origin }),
    ]
}

fn size() -> impl Strategy<Value = SizeMessage> {
    (
        any::<u64>(),
        prop::collection::vec(0u8..=64, REGISTERS..=REGISTERS),
    )
        .prop_map(|(epoch, registers)| SizeMessage {
            epoch,
            registers: Bytes::from(registers),
        })
}

fn socket_addr() -> impl Strategy<Value = SocketAddr> {
    let ip = prop_oneof![
        (1u32..).prop_map(|v| IpAddr::V4(Ipv4Addr::from(v))),
        (1u128..).prop_map(|v| IpAddr::V6(Ipv6Addr::from(v))),
    ];
    (ip, 1u16..).prop_map(|(ip, port)| SocketAddr::new(ip, port))
}

/// A record signed by a key drawn from the seed.
fn record() -> impl Strategy<Value = SignedRecord> {
    (
        any::<u64>(),
        prop::collection::vec(socket_addr(), 0..=MAX_ADDRS),
        any::<u64>(),
        prop::collection::vec(Just(Role::Seed), 0..=MAX_ROLES),
        prop::option::of("[a-zA-Z0-9 ]{1,64}"),
    )
        .prop_map(|(key, addrs, seq, roles, name)| {
            let key = SecretKey::generate(&mut ChaCha8Rng::seed_from_u64(key));
            let record = NodeRecord {
                id: key.node_id(),
                addrs,
                seq,
                roles,
                name,
            };
            SignedRecord::sign(&key, record).expect("generated within bounds")
        })
}

fn seed() -> impl Strategy<Value = SeedMessage> {
    prop_oneof![
        record().prop_map(SeedMessage::Register),
        any::<u32>().prop_map(|ttl_secs| SeedMessage::Registered { ttl_secs }),
        any::<u16>().prop_map(|max| SeedMessage::ListRequest { max }),
        prop::collection::vec(record(), 0..4).prop_map(SeedMessage::List),
        node_id().prop_map(SeedMessage::DeadReport),
        Just(SeedMessage::Leave),
    ]
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        membership().prop_map(Message::Membership),
        broadcast().prop_map(Message::Broadcast),
        any::<u64>().prop_map(Message::Ping),
        any::<u64>().prop_map(Message::Pong),
        size().prop_map(Message::Size),
        seed().prop_map(Message::Seed),
        bytes(4096).prop_map(Message::Direct),
    ]
}

/// The class a message's fine-grained kind belongs to, written apart from
/// `Message::class` so that each checks the other.
fn class_of_kind(kind: &str) -> Class {
    match kind {
        "gossip" => Class::Gossip,
        "ihave" => Class::IHave,
        "graft" => Class::Graft,
        "prune" => Class::Prune,
        "ping" | "pong" => Class::Ping,
        "join" | "forward_join" | "shuffle" | "shuffle_reply" | "neighbor" | "neighbor_reply"
        | "disconnect" => Class::Membership,
        "size" => Class::Size,
        "sync_summary" | "sync_fill" => Class::Sync,
        "seed" => Class::Seed,
        "direct" | "query" | "admin" => Class::Other,
        other => panic!("kind {other} has no class here; add it"),
    }
}

proptest! {
    #[test]
    fn every_message_falls_in_the_class_its_kind_names(m in message()) {
        prop_assert_eq!(m.class(), class_of_kind(kind(&m)));
    }

    #[test]
    fn every_message_round_trips(m in message()) {
        let encoded = encode(&m);
        prop_assert!(encoded.len() <= MAX_MESSAGE_BYTES);
        prop_assert_eq!(decode(&encoded), Ok(m));
    }

    #[test]
    fn trailing_bytes_are_refused(
        m in message(),
        extra in prop::collection::vec(any::<u8>(), 1..16),
    ) {
        let mut encoded = encode(&m);
        encoded.extend_from_slice(&extra);
        prop_assert!(matches!(decode(&encoded), Err(DecodeError::Malformed(_))));
    }

    #[test]
    fn truncated_messages_are_refused(m in message(), cut in any::<prop::sample::Index>()) {
        let encoded = encode(&m);
        let cut = cut.index(encoded.len());
        prop_assert!(decode(&encoded[..cut]).is_err());
    }

    #[test]
    fn arbitrary_bytes_never_panic(input in prop::collection::vec(any::<u8>(), 0..4096)) {
        if let Ok(m) = decode(&input) {
            prop_assert_eq!(validate(&m), Ok(()));
        }
    }

    /// Valid encodings with a few bytes changed reach deep into the decoder
    /// (random bytes mostly fail at the first tag).
    #[test]
    fn corrupted_messages_never_panic(
        m in message(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    ) {
        let mut encoded = encode(&m);
        for (at, byte) in edits {
            let at = at.index(encoded.len());
            encoded[at] = byte;
        }
        if let Ok(m) = decode(&encoded) {
            prop_assert_eq!(validate(&m), Ok(()));
        }
    }
}

fn peer(i: u8, data_len: usize) -> PeerInfo {
    PeerInfo {
        id: NodeId::from_bytes([i; 32]),
        data: Bytes::from(vec![i; data_len]),
    }
}

fn round_trip(m: Message) -> Result<Message, DecodeError> {
    decode(&encode(&m))
}

fn over(kind: &'static str) -> Result<Message, DecodeError> {
    Err(DecodeError::OverBound(kind))
}

#[test]
fn too_many_shuffle_peers_are_refused() {
    let at = |n: usize| (0..n).map(|i| peer(i as u8, 0)).collect::<Vec<_>>();
    let shuffle = |n| {
        Message::Membership(HpvMessage::Shuffle {
            origin: peer(200, 0),
            nodes: at(n),
            ttl: 3,
        })
    };
    let reply = |n| Message::Membership(HpvMessage::ShuffleReply { nodes: at(n) });
    assert!(round_trip(shuffle(MAX_SHUFFLE_PEERS)).is_ok());
    assert!(round_trip(reply(MAX_SHUFFLE_PEERS)).is_ok());
    assert_eq!(round_trip(shuffle(MAX_SHUFFLE_PEERS + 1)), over("shuffle"));
    assert_eq!(
        round_trip(reply(MAX_SHUFFLE_PEERS + 1)),
        over("shuffle_reply")
    );
}

#[test]
fn oversize_peer_data_is_refused_in_every_message_that_carries_it() {
    let at_bound = MAX_PEER_DATA_BYTES;
    let over_bound = MAX_PEER_DATA_BYTES + 1;
    /// A membership message carrying peer data of the given length.
    type Make = Box<dyn Fn(usize) -> HpvMessage>;
    let cases: Vec<(&'static str, Make)> = vec![
        (
            "join",
            Box::new(|n| HpvMessage::Join(Bytes::from(vec![1; n]))),
        ),
        (
            "forward_join",
            Box::new(|n| HpvMessage::ForwardJoin {
                peer: peer(1, n),
                ttl: 6,
            }),
        ),
        (
            "shuffle",
            Box::new(|n| HpvMessage::Shuffle {
                origin: peer(1, n),
                nodes: vec![],
                ttl: 6,
            }),
        ),
        (
            "shuffle",
            Box::new(|n| HpvMessage::Shuffle {
                origin: peer(1, 0),
                nodes: vec![peer(2, 0), peer(3, n)],
                ttl: 6,
            }),
        ),
        (
            "shuffle_reply",
            Box::new(|n| HpvMessage::ShuffleReply {
                nodes: vec![peer(2, n)],
            }),
        ),
        (
            "neighbor",
            Box::new(|n| HpvMessage::Neighbor {
                priority: Priority::Low,
                data: Bytes::from(vec![1; n]),
                request: 1,
            }),
        ),
        (
            "neighbor_reply",
            Box::new(|n| HpvMessage::NeighborReply {
                accepted: true,
                data: Bytes::from(vec![1; n]),
                request: 1,
            }),
        ),
    ];
    for (kind, make) in cases {
        assert!(
            round_trip(Message::Membership(make(at_bound))).is_ok(),
            "{kind} at the bound"
        );
        assert_eq!(
            round_trip(Message::Membership(make(over_bound))),
            over(kind),
            "{kind} over the bound"
        );
    }
}

#[test]
fn oversize_gossip_content_is_refused() {
    let gossip = |n: usize| {
        Message::Broadcast(TreeMessage::Gossip(Gossip {
            content: Bytes::from(vec![7; n]),
            round: 1,
        }))
    };
    assert!(round_trip(gossip(MAX_GOSSIP_BYTES)).is_ok());
    assert_eq!(round_trip(gossip(MAX_GOSSIP_BYTES + 1)), over("gossip"));
}

#[test]
fn oversize_direct_message_is_refused() {
    let direct = |n: usize| Message::Direct(Bytes::from(vec![7; n]));
    assert!(round_trip(direct(MAX_GOSSIP_BYTES)).is_ok());
    assert_eq!(round_trip(direct(MAX_GOSSIP_BYTES + 1)), over("direct"));
}

#[test]
fn too_many_ihave_entries_are_refused() {
    let ihave = |n: usize| {
        Message::Broadcast(TreeMessage::IHave(
            (0..n)
                .map(|i| IHave {
                    id: MessageId([(i % 251) as u8; 32]),
                    round: i as u16,
                })
                .collect(),
        ))
    };
    assert!(round_trip(ihave(MAX_IHAVE_ENTRIES)).is_ok());
    assert_eq!(round_trip(ihave(MAX_IHAVE_ENTRIES + 1)), over("ihave"));
}

#[test]
fn size_sketch_of_the_wrong_length_is_refused() {
    let sketch = |n: usize| {
        Message::Size(SizeMessage {
            epoch: 3,
            registers: Bytes::from(vec![1; n]),
        })
    };
    assert!(round_trip(sketch(REGISTERS)).is_ok());
    for n in [0, 1, REGISTERS - 1, REGISTERS + 1, 2 * REGISTERS] {
        assert_eq!(round_trip(sketch(n)), over("size"), "{n} registers");
    }
}

#[test]
fn seed_list_over_its_bound_is_refused() {
    let key = SecretKey::generate(&mut ChaCha8Rng::seed_from_u64(1));
    let record = SignedRecord::sign(
        &key,
        NodeRecord {
            id: key.node_id(),
            addrs: vec!["10.0.0.1:8001".parse().unwrap()],
            seq: 1,
            roles: vec![],
            name: None,
        },
    )
    .unwrap();
    let list = |n: usize| Message::Seed(SeedMessage::List(vec![record.clone(); n]));
    assert!(round_trip(list(MAX_LIST_LEN)).is_ok());
    assert!(matches!(
        round_trip(list(MAX_LIST_LEN + 1)),
        Err(DecodeError::Malformed(_))
    ));
}

#[test]
fn input_over_the_message_limit_is_refused_before_parsing() {
    let input = vec![0u8; MAX_MESSAGE_BYTES + 1];
    assert_eq!(
        decode(&input),
        Err(DecodeError::TooLarge(MAX_MESSAGE_BYTES + 1))
    );
}

#[test]
fn empty_input_and_unknown_tags_are_malformed() {
    assert!(matches!(decode(&[]), Err(DecodeError::Malformed(_))));
    assert!(matches!(decode(&[0xff]), Err(DecodeError::Malformed(_))));
    assert!(matches!(
        decode(&[99, 0, 0]),
        Err(DecodeError::Malformed(_))
    ));
}

#[test]
fn one_trailing_byte_after_a_small_message_is_refused() {
    let mut encoded = encode(&Message::Ping(5));
    assert_eq!(decode(&encoded), Ok(Message::Ping(5)));
    encoded.push(0);
    assert_eq!(
        decode(&encoded),
        Err(DecodeError::Malformed("1 trailing bytes".into()))
    );
}

#[test]
fn messages_the_generator_leaves_out_fall_in_their_class() {
    use gossipnet_proto::history::Summary;
    use gossipnet_proto::query::Query;
    use gossipnet_proto::sync::{Fill, Message as SyncMessage};
    let summary = SyncMessage::Summary(Summary {
        lo: NodeId::from_bytes([0; 32]),
        hi: NodeId::from_bytes([0xff; 32]),
        origins: Vec::new(),
    });
    let fill = SyncMessage::Fill(Fill {
        envelopes: vec![Bytes::from_static(b"e")],
        more: false,
    });
    let cases = [
        (Message::Sync(summary), Class::Sync),
        (Message::Sync(fill), Class::Sync),
        (Message::Query(Query::Status { nonce: 1 }), Class::Other),
        (Message::Admin(Bytes::from_static(b"a")), Class::Other),
    ];
    for (m, class) in cases {
        assert_eq!(m.class(), class, "{}", kind(&m));
        assert_eq!(class_of_kind(kind(&m)), class);
    }
}

#[test]
fn classes_index_a_table_and_have_distinct_label_names() {
    assert_eq!(Class::COUNT, Class::ALL.len());
    let mut names = std::collections::BTreeSet::new();
    for (i, class) in Class::ALL.into_iter().enumerate() {
        assert_eq!(class.index(), i, "{class} is out of place in ALL");
        let name = class.name();
        assert!(
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase()),
            "{name} is not a plain label value"
        );
        assert!(names.insert(name), "{name} names two classes");
    }
}
