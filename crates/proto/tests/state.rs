//! Tests of the router, `State`, which composes membership, broadcast,
//! liveness and the size estimate: broadcast payloads are checked (hash
//! first, so a duplicate is known without a signature check; then the
//! signature, whose failure closes the link and delivers nothing), pings
//! are answered (with a disconnect too when the pinger is no longer our
//! neighbour), a silent neighbour is declared dead, and size sketches are
//! merged and sent on, and the runtime's messages are handed back
//! untouched. Each test drives one `State` with a seeded RNG and
//! an explicit clock.

use std::time::{Duration, Instant};

use bytes::Bytes;
use gossipnet_proto::envelope::{Envelope, Kind, SignedEnvelope};
use gossipnet_proto::hyparview::{Message as HpvMessage, Priority};
use gossipnet_proto::plumtree::{tree_of, Gossip, Message as TreeMessage};
use gossipnet_proto::query::Query;
use gossipnet_proto::seed::SeedMessage;
use gossipnet_proto::size::{Message as SizeMessage, REGISTERS};
use gossipnet_proto::state::{LivenessConfig, RTT_REFRESH};
use gossipnet_proto::wire::Message;
use gossipnet_proto::{
    Command, Config, Event, InEvent, MessageId, NodeId, OutEvent, Route, RuntimeMessage, SecretKey,
    State, Timer,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn id(i: u32) -> NodeId {
    let mut b = [0u8; 32];
    b[..4].copy_from_slice(&i.to_le_bytes());
    b[31] = 0x77;
    NodeId::from_bytes(b)
}

struct Node {
    state: State<ChaCha8Rng>,
    start: Instant,
    now: Instant,
}

impl Node {
    fn new(config: Config) -> Self {
        let start = Instant::now();
        Self {
            state: State::new(
                id(0),
                Bytes::from_static(b"me"),
                config,
                ChaCha8Rng::seed_from_u64(42),
            ),
            start,
            now: start,
        }
    }

    /// A verifying node with these neighbours, taken in at time zero.
    fn with_neighbors(peers: &[u32]) -> Self {
        let mut node = Self::new(Config::default());
        for p in peers {
            let out = node.recv(
                *p,
                Message::Membership(HpvMessage::Neighbor {
                    priority: Priority::Low,
                    data: Bytes::new(),
                    request: 1,
                }),
            );
            assert!(events(&out).contains(&Event::NeighborUp(id(*p))));
        }
        node
    }

    fn at(&mut self, since_start: Duration) {
        self.now = self.start + since_start;
    }

    fn handle(&mut self, event: InEvent) -> Vec<OutEvent> {
        self.state.handle(event, self.now).collect()
    }

    fn recv(&mut self, from: u32, message: Message) -> Vec<OutEvent> {
        self.handle(InEvent::RecvMessage(id(from), message))
    }

    fn active(&self, p: u32) -> bool {
        self.state.membership().active_view().contains(&id(p))
    }
}

fn events(out: &[OutEvent]) -> Vec<Event> {
    out.iter()
        .filter_map(|o| match o {
            OutEvent::EmitEvent(e) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

fn sends(out: &[OutEvent]) -> Vec<(NodeId, Message)> {
    out.iter()
        .filter_map(|o| match o {
            OutEvent::SendMessage(to, m) => Some((*to, m.clone())),
            _ => None,
        })
        .collect()
}

fn closes(out: &[OutEvent]) -> Vec<NodeId> {
    out.iter()
        .filter_map(|o| match o {
            OutEvent::DisconnectPeer(p) => Some(*p),
            _ => None,
        })
        .collect()
}

fn delivered(out: &[OutEvent]) -> usize {
    events(out)
        .iter()
        .filter(|e| matches!(e, Event::Received(_)))
        .count()
}

fn misbehaved(out: &[OutEvent]) -> Vec<NodeId> {
    events(out)
        .iter()
        .filter_map(|e| match e {
            Event::Misbehaved { peer, .. } => Some(*peer),
            _ => None,
        })
        .collect()
}

fn gossip(content: Bytes) -> Message {
    Message::Broadcast(TreeMessage::Gossip(Gossip { content, round: 1 }))
}

fn signed_envelope(body: &'static [u8]) -> Bytes {
    let key = SecretKey::generate(&mut ChaCha8Rng::seed_from_u64(7));
    let envelope = Envelope {
        origin: key.node_id(),
        seq: 1,
        time_ms: 1_700_000_000_000,
        kind: Kind::Chat,
        body: Bytes::from_static(body),
    };
    SignedEnvelope::sign(&key, envelope).unwrap().encode()
}

/// A well-formed envelope whose body was changed after signing.
fn tampered_envelope() -> Bytes {
    let mut bytes = signed_envelope(b"hello, world").to_vec();
    let at = bytes
        .windows(5)
        .position(|w| w == b"hello")
        .expect("body in the encoding");
    bytes[at] = b'j';
    Bytes::from(bytes)
}

#[test]
fn valid_envelope_is_delivered_and_forwarded() {
    let mut node = Node::with_neighbors(&[1, 2]);
    let content = signed_envelope(b"hello, world");
    let out = node.recv(1, gossip(content.clone()));
    assert_eq!(delivered(&out), 1);
    assert!(misbehaved(&out).is_empty());
    assert!(sends(&out).iter().any(|(to, m)| *to == id(2)
        && matches!(m, Message::Broadcast(TreeMessage::Gossip(g)) if g.content == content)));
    assert_eq!(node.state.stats().bad_envelopes, 0);
}

#[test]
fn badly_signed_envelope_is_refused_and_its_sender_disconnected() {
    for (what, content) in [
        ("tampered", tampered_envelope()),
        ("garbage", Bytes::from_static(b"not an envelope at all")),
        ("empty", Bytes::new()),
    ] {
        let mut node = Node::with_neighbors(&[1, 2]);
        let out = node.recv(1, gossip(content.clone()));
        assert_eq!(delivered(&out), 0, "{what}: delivered");
        assert_eq!(misbehaved(&out), vec![id(1)], "{what}");
        assert!(closes(&out).contains(&id(1)), "{what}: link kept");
        assert!(!node.active(1), "{what}: still a neighbour");
        assert!(events(&out).contains(&Event::NeighborDown(id(1))));
        // Not forwarded, and not remembered as seen: a valid copy from
        // elsewhere could not share its id anyway.
        assert!(!sends(&out)
            .iter()
            .any(|(_, m)| matches!(m, Message::Broadcast(TreeMessage::Gossip(_)))));
        assert!(!node
            .state
            .broadcast()
            .has_seen(&gossipnet_proto::MessageId::of(&content)));
        assert_eq!(node.state.stats().bad_envelopes, 1);
    }
}

#[test]
fn without_verification_any_content_is_delivered() {
    let mut node = Node::new(Config {
        verify_envelopes: false,
        ..Config::default()
    });
    let out = node.recv(1, gossip(tampered_envelope()));
    assert_eq!(delivered(&out), 1);
    assert!(misbehaved(&out).is_empty());
}

#[test]
fn duplicate_is_recognised_before_verification() {
    // A payload we broadcast ourselves is seen without being verified. If
    // the router verified before looking the id up, this invalid payload
    // arriving from a neighbour would be taken for misbehaviour.
    let mut node = Node::with_neighbors(&[1, 2]);
    let bad = tampered_envelope();
    node.handle(InEvent::Command(Command::Broadcast(bad.clone())));
    let origin = tree_of(&bad);
    let out = node.recv(1, gossip(bad));
    assert!(misbehaved(&out).is_empty());
    assert_eq!(delivered(&out), 0);
    assert_eq!(
        sends(&out),
        vec![(id(1), Message::Broadcast(TreeMessage::Prune { origin }))]
    );
    assert!(node.active(1));
    assert_eq!(node.state.stats().bad_envelopes, 0);
}

#[test]
fn valid_duplicate_is_pruned_not_delivered_again() {
    let mut node = Node::with_neighbors(&[1, 2]);
    let content = signed_envelope(b"once");
    assert_eq!(delivered(&node.recv(1, gossip(content.clone()))), 1);
    let origin = tree_of(&content);
    let out = node.recv(2, gossip(content));
    assert_eq!(delivered(&out), 0);
    assert!(misbehaved(&out).is_empty());
    assert_eq!(
        sends(&out),
        vec![(id(2), Message::Broadcast(TreeMessage::Prune { origin }))]
    );
}

#[test]
fn ping_is_answered_with_pong() {
    let mut node = Node::with_neighbors(&[1]);
    let out = node.recv(1, Message::Ping(0xdead_beef));
    assert_eq!(sends(&out), vec![(id(1), Message::Pong(0xdead_beef))]);
}

#[test]
fn ping_over_a_link_we_dropped_is_answered_with_a_disconnect() {
    // Only neighbours ping. A ping from a peer we no longer list means the
    // peer kept a link we dropped (say, declared dead during a partition,
    // the close lost on the way): a pong alone would keep it alive there
    // for good, one end listing the other.
    let liveness = LivenessConfig::default();
    let mut node = Node::with_neighbors(&[1, 2]);
    node.at(liveness.dead_after);
    node.recv(2, Message::Pong(0));
    let out = node.handle(InEvent::TimerExpired(Timer::Liveness));
    assert_eq!(closes(&out), vec![id(1)]);
    let out = node.recv(1, Message::Ping(9));
    assert_eq!(
        sends(&out),
        vec![
            (id(1), Message::Pong(9)),
            (
                id(1),
                Message::Membership(HpvMessage::Disconnect { alive: true })
            ),
        ]
    );
    assert!(!node.active(1));
    // A neighbour's ping gets the pong alone.
    let out = node.recv(2, Message::Ping(10));
    assert_eq!(sends(&out), vec![(id(2), Message::Pong(10))]);
}

#[test]
fn silent_neighbour_is_pinged_then_declared_dead() {
    let liveness = LivenessConfig::default();
    let mut node = Node::with_neighbors(&[1, 2]);
    let mut t = Duration::ZERO;
    let mut pinged = false;
    let mut dead_at = None;
    while t <= liveness.dead_after + liveness.tick {
        t += liveness.tick;
        node.at(t);
        // Neighbour 2 keeps talking; neighbour 1 is silent.
        node.recv(2, Message::Pong(0));
        let out = node.handle(InEvent::TimerExpired(Timer::Liveness));
        pinged |= sends(&out)
            .iter()
            .any(|(to, m)| *to == id(1) && matches!(m, Message::Ping(_)));
        assert!(!closes(&out).contains(&id(2)), "a talking neighbour died");
        if closes(&out).contains(&id(1)) {
            assert!(events(&out).contains(&Event::NeighborDown(id(1))));
            dead_at = Some(t);
            break;
        }
        assert!(node.active(1), "dead before its time at {t:?}");
    }
    assert!(pinged, "never pinged");
    assert_eq!(dead_at, Some(liveness.dead_after));
    assert!(!node.active(1));
    assert!(node.active(2));
    assert_eq!(node.state.stats().dead_by_silence, 1);
    assert!(node.state.stats().pings_sent >= 1);
}

#[test]
fn the_runtimes_messages_are_handed_back_and_are_no_sign_of_life() {
    let liveness = LivenessConfig::default();
    let mut node = Node::with_neighbors(&[1]);
    let runtime = [
        RuntimeMessage::Seed(SeedMessage::Leave),
        RuntimeMessage::Direct(Bytes::from_static(b"sealed")),
        RuntimeMessage::Query(Query::Status { nonce: 3 }),
        RuntimeMessage::Admin(Bytes::from_static(b"command")),
    ];
    let wire = [
        Message::Seed(SeedMessage::Leave),
        Message::Direct(Bytes::from_static(b"sealed")),
        Message::Query(Query::Status { nonce: 3 }),
        Message::Admin(Bytes::from_static(b"command")),
    ];
    node.at(liveness.dead_after - Duration::from_secs(1));
    for (message, expected) in wire.into_iter().zip(runtime) {
        assert_eq!(
            RuntimeMessage::route(message.clone()),
            Route::Runtime(expected.clone())
        );
        let out = node.recv(1, message);
        assert!(
            matches!(out.as_slice(), [OutEvent::Runtime(from, m)] if *from == id(1) && *m == expected),
            "{out:?}"
        );
    }
    assert_eq!(
        RuntimeMessage::route(Message::Pong(1)),
        Route::State(Message::Pong(1))
    );
    node.at(liveness.dead_after);
    let out = node.handle(InEvent::TimerExpired(Timer::Liveness));
    assert_eq!(
        closes(&out),
        vec![id(1)],
        "only the overlay's messages count"
    );
}

#[test]
fn any_message_counts_as_a_sign_of_life() {
    let liveness = LivenessConfig::default();
    let mut node = Node::with_neighbors(&[1]);
    // A pong just before the deadline resets it; it answers the ping that
    // times the new link, sent at the first tick.
    let heard = liveness.dead_after - Duration::from_secs(1);
    node.at(heard);
    let out = node.handle(InEvent::TimerExpired(Timer::Liveness));
    let nonce = ping_to(&out, 1).expect("a new link is timed");
    node.recv(1, Message::Pong(nonce));
    node.at(liveness.dead_after);
    let out = node.handle(InEvent::TimerExpired(Timer::Liveness));
    assert!(closes(&out).is_empty());
    assert!(sends(&out).is_empty(), "pinged a busy link");
    node.at(heard + liveness.dead_after - Duration::from_secs(1));
    let out = node.handle(InEvent::TimerExpired(Timer::Liveness));
    assert!(closes(&out).is_empty());
    assert!(sends(&out)
        .iter()
        .any(|(to, m)| *to == id(1) && matches!(m, Message::Ping(_))));
    node.at(heard + liveness.dead_after);
    let out = node.handle(InEvent::TimerExpired(Timer::Liveness));
    assert_eq!(closes(&out), vec![id(1)]);
}

#[test]
fn size_sketches_merge_and_are_sent_to_neighbours() {
    let mut node = Node::with_neighbors(&[1, 2]);
    let alone = node.state.size_estimate().unwrap();
    assert!((alone - 1.0).abs() < 0.1, "{alone}");
    // A sketch of a large network: every register at rank 1 (about 1,500
    // nodes by the HyperLogLog estimate).
    node.recv(
        1,
        Message::Size(SizeMessage {
            epoch: 0,
            registers: Bytes::from(vec![1u8; REGISTERS]),
        }),
    );
    let merged = node.state.size_estimate().unwrap();
    assert!(merged > 1000.0, "{merged}");

    let out = node.handle(InEvent::TimerExpired(Timer::Size));
    let sketches: Vec<(NodeId, SizeMessage)> = sends(&out)
        .into_iter()
        .filter_map(|(to, m)| match m {
            Message::Size(s) => Some((to, s)),
            _ => None,
        })
        .collect();
    let mut to: Vec<NodeId> = sketches.iter().map(|(p, _)| *p).collect();
    to.sort();
    let mut want = vec![id(1), id(2)];
    want.sort();
    assert_eq!(to, want, "a grown sketch goes to every neighbour");
    // What is sent is the merged sketch (every register at least 1).
    assert!(sketches
        .iter()
        .all(|(_, s)| s.registers.len() == REGISTERS && s.registers.iter().all(|r| *r >= 1)));
    assert!(out
        .iter()
        .any(|o| matches!(o, OutEvent::ScheduleTimer(_, Timer::Size))));
}

#[test]
fn quit_command_tells_neighbours_and_closes_links() {
    let mut node = Node::with_neighbors(&[1, 2]);
    let out = node.handle(InEvent::Command(Command::Quit));
    for p in [1, 2] {
        assert!(sends(&out).contains(&(
            id(p),
            Message::Membership(HpvMessage::Disconnect { alive: false })
        )));
        assert!(closes(&out).contains(&id(p)));
    }
}

// Replays: an envelope delivered once is never delivered again while it
// could be accepted at all.

const NOW_MS: u64 = 1_700_000_000_000;

fn envelope_of(key: &SecretKey, seq: u64, time_ms: u64) -> Bytes {
    let envelope = Envelope {
        origin: key.node_id(),
        seq,
        time_ms,
        kind: Kind::Chat,
        body: Bytes::from_static(b"once only"),
    };
    SignedEnvelope::sign(key, envelope).unwrap().encode()
}

/// A node with history and neighbours 1 and 2, its wall clock at `NOW_MS`.
fn node_with_history(config: Config) -> Node {
    let mut node = Node::new(config);
    node.state.set_wall_clock(NOW_MS);
    for p in [1, 2] {
        node.recv(
            p,
            Message::Membership(HpvMessage::Neighbor {
                priority: Priority::Low,
                data: Bytes::new(),
                request: 1,
            }),
        );
    }
    node
}

#[test]
fn a_replay_past_the_seen_window_is_not_delivered_again() {
    let config = Config::default();
    let mut node = node_with_history(config.clone());
    let key = SecretKey::generate(&mut ChaCha8Rng::seed_from_u64(11));
    let content = envelope_of(&key, 1, NOW_MS);
    assert_eq!(delivered(&node.recv(1, gossip(content.clone()))), 1);
    // Long past the seen-id window, well inside the history's.
    let later = config.broadcast.message_id_retention * 3;
    node.at(later);
    node.state.set_wall_clock(NOW_MS + later.as_millis() as u64);
    node.handle(InEvent::TimerExpired(Timer::Broadcast(
        gossipnet_proto::plumtree::Timer::EvictCache,
    )));
    assert!(!node.state.broadcast().has_seen(&MessageId::of(&content)));
    assert_eq!(delivered(&node.recv(2, gossip(content))), 0);
}

#[test]
fn a_replay_after_a_flood_of_cheap_messages_is_not_delivered_again() {
    // Small bounds, so a flood of a few dozen does what hundreds of
    // thousands would do to the defaults.
    let mut config = Config::default();
    config.broadcast.max_seen_ids = 8;
    let sync = config.sync.as_mut().unwrap();
    sync.history.max_messages = 4;
    let mut node = node_with_history(config);
    let key = SecretKey::generate(&mut ChaCha8Rng::seed_from_u64(12));
    let content = envelope_of(&key, 1, NOW_MS);
    assert_eq!(delivered(&node.recv(1, gossip(content.clone()))), 1);
    // Every flood message from a fresh key, a little newer than the real one.
    for i in 0..64u64 {
        let flooder = SecretKey::generate(&mut ChaCha8Rng::seed_from_u64(1000 + i));
        let out = node.recv(1, gossip(envelope_of(&flooder, 1, NOW_MS + 1 + i)));
        assert_eq!(delivered(&out), 1);
    }
    assert!(!node.state.broadcast().has_seen(&MessageId::of(&content)));
    assert_eq!(delivered(&node.recv(2, gossip(content))), 0);
    // What was written after the flood is still delivered.
    let next = envelope_of(&key, 2, NOW_MS + 1000);
    assert_eq!(delivered(&node.recv(1, gossip(next))), 1);
}

#[test]
fn a_busy_link_is_timed_every_refresh_and_plumtree_gets_the_round_trip() {
    let liveness = LivenessConfig::default();
    let mut node = Node::with_neighbors(&[1]);
    let t = liveness.tick;
    node.at(t);
    let out = node.handle(InEvent::TimerExpired(Timer::Liveness));
    let nonce = ping_to(&out, 1).expect("a new link is timed at the first tick");
    assert_eq!(node.state.broadcast().round_trip(&id(1)), None);
    // A pong with another nonce times nothing.
    node.at(t + Duration::from_millis(3));
    node.recv(1, Message::Pong(nonce.wrapping_add(7)));
    assert_eq!(node.state.broadcast().round_trip(&id(1)), None);
    node.at(t + Duration::from_millis(20));
    node.recv(1, Message::Pong(nonce));
    assert_eq!(
        node.state.broadcast().round_trip(&id(1)),
        Some(Duration::from_millis(20))
    );
    // Timed: the next ticks send nothing while the link is busy...
    let mut at = t + liveness.tick;
    while at < t + Duration::from_millis(20) + RTT_REFRESH {
        node.at(at);
        node.recv(1, Message::Pong(0));
        let out = node.handle(InEvent::TimerExpired(Timer::Liveness));
        assert!(sends(&out).is_empty(), "pinged a timed busy link at {at:?}");
        at += liveness.tick;
    }
    // ...until the timing is stale.
    node.at(at);
    node.recv(1, Message::Pong(0));
    let out = node.handle(InEvent::TimerExpired(Timer::Liveness));
    assert!(ping_to(&out, 1).is_some());
}

/// The nonce of a ping sent to peer `p`, if one was.
fn ping_to(out: &[OutEvent], p: u32) -> Option<u64> {
    sends(out).iter().find_map(|(to, m)| match m {
        Message::Ping(n) if *to == id(p) => Some(*n),
        _ => None,
    })
}
