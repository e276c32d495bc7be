//! Unit tests of the Plumtree rules, driving one `plumtree::Plumtree`
//! directly with a fixed clock: eager push to eager peers and batched
//! `IHave`s to lazy ones, `Prune` on duplicates, `Graft` after an `IHave` of
//! a missing message (and the announcer's answer from its cache), grafts and
//! prunes moving links between eager and lazy, the tree optimisation, expiry
//! and bounds of the seen-id cache, the catch-up `IHave` to a new
//! neighbour, and exactly-once delivery (a property test over random
//! arrival orders).

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use gossipnet_proto::envelope::{Envelope, Kind, SignedEnvelope, MAX_BODY_BYTES};
use gossipnet_proto::plumtree::{
    Config, Event, Gossip, IHave, InEvent, Message, OutEvent, Plumtree, Timer, GRAFT_BURST_BYTES,
    MAX_CACHE_BYTES, MAX_IHAVE_ENTRIES, MAX_MISSING_PER_ANNOUNCER, ORIGIN_SHARE,
};
use gossipnet_proto::{MessageId, NodeId, SecretKey};
use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn id(i: u32) -> NodeId {
    let mut b = [0u8; 32];
    b[..4].copy_from_slice(&i.to_le_bytes());
    b[31] = 0x55;
    NodeId::from_bytes(b)
}

fn content(n: u32) -> Bytes {
    Bytes::from(format!("message number {n}"))
}

fn mid(n: u32) -> MessageId {
    MessageId::of(&content(n))
}

fn gossip(n: u32, round: u16) -> Message {
    Message::Gossip(Gossip {
        content: content(n),
        round,
    })
}

const ME: u32 = 0;

struct Node {
    tree: Plumtree,
    start: Instant,
    now: Instant,
}

impl Node {
    fn new(config: Config) -> Self {
        let start = Instant::now();
        Self {
            tree: Plumtree::new(id(ME), config),
            start,
            now: start,
        }
    }

    fn with_neighbors(mut self, peers: &[u32]) -> Self {
        for p in peers {
            self.handle(InEvent::NeighborUp(id(*p)));
        }
        self
    }

    fn at(&mut self, since_start: Duration) {
        self.now = self.start + since_start;
    }

    fn handle(&mut self, event: InEvent) -> Vec<OutEvent> {
        let mut out = VecDeque::new();
        self.tree.handle(event, self.now, &mut out);
        out.into()
    }

    fn recv(&mut self, from: u32, message: Message) -> Vec<OutEvent> {
        self.handle(InEvent::RecvMessage(id(from), message))
    }

    fn timer(&mut self, timer: Timer) -> Vec<OutEvent> {
        self.handle(InEvent::TimerExpired(timer))
    }

    fn eager(&self) -> Vec<NodeId> {
        self.tree.eager_peers().copied().collect()
    }

    fn lazy(&self) -> Vec<NodeId> {
        self.tree.lazy_peers().copied().collect()
    }
}

fn sends(out: &[OutEvent]) -> Vec<(NodeId, Message)> {
    out.iter()
        .filter_map(|o| match o {
            OutEvent::SendMessage(to, m) => Some((*to, m.clone())),
            _ => None,
        })
        .collect()
}

fn sends_to(out: &[OutEvent], p: u32) -> Vec<Message> {
    sends(out)
        .into_iter()
        .filter(|(to, _)| *to == id(p))
        .map(|(_, m)| m)
        .collect()
}

fn received(out: &[OutEvent]) -> Vec<MessageId> {
    out.iter()
        .filter_map(|o| match o {
            OutEvent::EmitEvent(Event::Received(d)) => Some(d.id),
            _ => None,
        })
        .collect()
}

fn timers(out: &[OutEvent]) -> Vec<(Duration, Timer)> {
    out.iter()
        .filter_map(|o| match o {
            OutEvent::ScheduleTimer(d, t) => Some((*d, *t)),
            _ => None,
        })
        .collect()
}

#[test]
fn broadcast_pushes_to_eager_peers_and_batches_ihave_to_lazy_ones() {
    let config = Config::default();
    let mut node = Node::new(config.clone()).with_neighbors(&[1, 2, 3]);
    node.recv(3, Message::Prune);
    assert_eq!(node.lazy(), vec![id(3)]);

    let out = node.handle(InEvent::Broadcast(content(1)));
    for p in [1, 2] {
        assert_eq!(sends_to(&out, p), vec![gossip(1, 1)], "eager peer {p}");
    }
    assert!(sends_to(&out, 3).is_empty(), "lazy peer gets no payload");
    assert!(timers(&out).contains(&(config.dispatch_timeout, Timer::DispatchLazyPush)));

    // A second message joins the same batch: no second dispatch timer.
    let out = node.handle(InEvent::Broadcast(content(2)));
    assert!(!timers(&out)
        .iter()
        .any(|(_, t)| *t == Timer::DispatchLazyPush));
    assert!(sends_to(&out, 3).is_empty());

    let out = node.timer(Timer::DispatchLazyPush);
    assert_eq!(
        sends(&out),
        vec![(
            id(3),
            Message::IHave(vec![
                IHave {
                    id: mid(1),
                    round: 1
                },
                IHave {
                    id: mid(2),
                    round: 1
                },
            ])
        )]
    );
    assert_eq!(node.tree.stats().broadcast, 2);
    assert_eq!(node.tree.stats().payload_sent, 4);
}

#[test]
fn received_gossip_is_delivered_and_forwarded_but_not_back() {
    let mut node = Node::new(Config::default()).with_neighbors(&[1, 2, 3]);
    let out = node.recv(1, gossip(7, 4));
    assert_eq!(received(&out), vec![mid(7)]);
    assert!(sends_to(&out, 1).is_empty());
    for p in [2, 3] {
        assert_eq!(sends_to(&out, p), vec![gossip(7, 5)], "peer {p}");
    }
    let delivered = out
        .iter()
        .find_map(|o| match o {
            OutEvent::EmitEvent(Event::Received(d)) => Some(d.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(delivered.delivered_from, id(1));
    assert_eq!(delivered.hops, 4);
    assert_eq!(delivered.content, content(7));
}

#[test]
fn duplicate_gossip_is_pruned_and_its_sender_made_lazy() {
    let mut node = Node::new(Config::default()).with_neighbors(&[1, 2]);
    let out = node.recv(1, gossip(7, 1));
    assert_eq!(received(&out).len(), 1);
    let out = node.recv(2, gossip(7, 1));
    assert!(received(&out).is_empty(), "delivered twice");
    assert_eq!(sends(&out), vec![(id(2), Message::Prune)]);
    assert_eq!(node.eager(), vec![id(1)]);
    assert_eq!(node.lazy(), vec![id(2)]);
    assert_eq!(node.tree.stats().duplicates, 1);
    assert_eq!(node.tree.stats().prunes_sent, 1);
    // The next message goes to 2 as an IHave only.
    let out = node.recv(1, gossip(8, 1));
    assert!(sends_to(&out, 2).is_empty());
    let out = node.timer(Timer::DispatchLazyPush);
    assert_eq!(
        sends_to(&out, 2),
        vec![Message::IHave(vec![IHave {
            id: mid(8),
            round: 2
        }])]
    );
}

#[test]
fn prune_moves_the_sender_to_lazy() {
    let mut node = Node::new(Config::default()).with_neighbors(&[1, 2]);
    let out = node.recv(2, Message::Prune);
    assert!(sends(&out).is_empty());
    assert_eq!(node.eager(), vec![id(1)]);
    assert_eq!(node.lazy(), vec![id(2)]);
    let out = node.handle(InEvent::Broadcast(content(1)));
    assert_eq!(sends(&out), vec![(id(1), gossip(1, 1))]);
}

#[test]
fn ihave_of_an_unknown_message_grafts_the_announcer_after_a_timeout() {
    let config = Config::default();
    let mut node = Node::new(config.clone()).with_neighbors(&[1, 2, 3]);
    node.recv(2, Message::Prune);
    node.recv(3, Message::Prune);
    let out = node.recv(
        2,
        Message::IHave(vec![IHave {
            id: mid(5),
            round: 3,
        }]),
    );
    assert!(sends(&out).is_empty(), "no graft before the timeout");
    assert_eq!(
        timers(&out),
        vec![(config.graft_timeout_1, Timer::SendGraft(mid(5)))]
    );
    // A second announcer queues up behind the first, without a new timer.
    let out = node.recv(
        3,
        Message::IHave(vec![IHave {
            id: mid(5),
            round: 4,
        }]),
    );
    assert!(timers(&out).is_empty());

    let out = node.timer(Timer::SendGraft(mid(5)));
    assert_eq!(
        sends(&out),
        vec![(
            id(2),
            Message::Graft {
                id: Some(mid(5)),
                round: 3
            }
        )]
    );
    assert!(node.eager().contains(&id(2)), "grafted link is eager");
    assert_eq!(
        timers(&out),
        vec![(config.graft_timeout_2, Timer::SendGraft(mid(5)))]
    );
    // No answer: the next announcer is tried.
    let out = node.timer(Timer::SendGraft(mid(5)));
    assert_eq!(
        sends(&out),
        vec![(
            id(3),
            Message::Graft {
                id: Some(mid(5)),
                round: 4
            }
        )]
    );
    // The answer arrives: delivered once; later timers do nothing.
    let out = node.recv(3, gossip(5, 4));
    assert_eq!(received(&out), vec![mid(5)]);
    let out = node.timer(Timer::SendGraft(mid(5)));
    assert!(sends(&out).is_empty());
    assert_eq!(node.tree.stats().grafts_sent, 2);
}

#[test]
fn ihave_of_a_message_that_arrives_meanwhile_sends_no_graft() {
    let mut node = Node::new(Config::default()).with_neighbors(&[1, 2]);
    node.recv(2, Message::Prune);
    node.recv(
        2,
        Message::IHave(vec![IHave {
            id: mid(5),
            round: 2,
        }]),
    );
    node.recv(1, gossip(5, 1));
    let out = node.timer(Timer::SendGraft(mid(5)));
    assert!(sends(&out).is_empty());
    // An IHave of a message already seen starts no timer.
    let out = node.recv(
        2,
        Message::IHave(vec![IHave {
            id: mid(5),
            round: 2,
        }]),
    );
    assert!(timers(&out).is_empty());
    assert_eq!(node.tree.stats().grafts_sent, 0);
}

#[test]
fn ihave_of_a_message_we_then_broadcast_ourselves_sends_no_graft() {
    let mut node = Node::new(Config::default()).with_neighbors(&[1]);
    node.recv(1, Message::Prune);
    node.recv(
        1,
        Message::IHave(vec![IHave {
            id: mid(5),
            round: 2,
        }]),
    );
    node.handle(InEvent::Broadcast(content(5)));
    let out = node.timer(Timer::SendGraft(mid(5)));
    assert!(sends(&out).is_empty(), "grafted a message we hold");
}

#[test]
fn announcer_answers_a_graft_from_its_cache() {
    let mut announcer = Node::new(Config::default()).with_neighbors(&[1]);
    announcer.recv(1, Message::Prune);
    announcer.handle(InEvent::Broadcast(content(5)));
    let out = announcer.recv(
        1,
        Message::Graft {
            id: Some(mid(5)),
            round: 3,
        },
    );
    assert_eq!(sends(&out), vec![(id(1), gossip(5, 3))]);
    assert_eq!(announcer.eager(), vec![id(1)], "graft makes the link eager");
}

#[test]
fn graft_for_an_unknown_message_makes_the_link_eager_and_sends_nothing() {
    let mut node = Node::new(Config::default()).with_neighbors(&[1]);
    node.recv(1, Message::Prune);
    assert_eq!(node.lazy(), vec![id(1)]);
    let out = node.recv(
        1,
        Message::Graft {
            id: Some(mid(99)),
            round: 1,
        },
    );
    assert!(sends(&out).is_empty());
    assert_eq!(node.eager(), vec![id(1)]);
    assert!(node.lazy().is_empty());
}

#[test]
fn graft_after_the_cache_retention_finds_nothing() {
    let config = Config::default();
    let mut node = Node::new(config.clone()).with_neighbors(&[1]);
    node.handle(InEvent::Broadcast(content(5)));
    node.at(config.message_cache_retention);
    node.timer(Timer::EvictCache);
    let out = node.recv(
        1,
        Message::Graft {
            id: Some(mid(5)),
            round: 1,
        },
    );
    assert!(sends(&out).is_empty());
}

#[test]
fn much_shorter_lazy_path_replaces_the_eager_parent() {
    let config = Config::default();
    let mut node = Node::new(config.clone()).with_neighbors(&[1, 2]);
    node.recv(2, Message::Prune);
    node.recv(
        2,
        Message::IHave(vec![IHave {
            id: mid(5),
            round: 1,
        }]),
    );
    let late = 2 + config.optimization_threshold;
    let out = node.recv(1, gossip(5, late));
    assert_eq!(received(&out), vec![mid(5)]);
    assert!(sends_to(&out, 2).contains(&Message::Graft { id: None, round: 1 }));
    assert!(sends_to(&out, 1).contains(&Message::Prune));
    assert_eq!(node.eager(), vec![id(2)]);
    assert_eq!(node.lazy(), vec![id(1)]);

    // Within the threshold the tree is left as it is.
    let out = node.recv(
        1,
        Message::IHave(vec![IHave {
            id: mid(6),
            round: 1,
        }]),
    );
    assert!(sends(&out).is_empty());
    let out = node.recv(2, gossip(6, 1 + config.optimization_threshold));
    assert!(!sends(&out)
        .iter()
        .any(|(_, m)| matches!(m, Message::Graft { .. } | Message::Prune)));
}

#[test]
fn seen_ids_expire_after_the_retention() {
    let config = Config {
        message_cache_retention: Duration::from_secs(5),
        message_id_retention: Duration::from_secs(60),
        ..Config::default()
    };
    let mut node = Node::new(config.clone()).with_neighbors(&[1]);
    let out = node.recv(1, gossip(5, 1));
    assert_eq!(received(&out).len(), 1);

    node.at(config.message_id_retention - Duration::from_millis(1));
    node.timer(Timer::EvictCache);
    assert!(node.tree.has_seen(&mid(5)));
    assert!(received(&node.recv(1, gossip(5, 1))).is_empty());

    node.at(config.message_id_retention);
    let out = node.timer(Timer::EvictCache);
    assert!(timers(&out).contains(&(config.cache_evict_interval, Timer::EvictCache)));
    assert!(!node.tree.has_seen(&mid(5)));
    // Past the window the id is new again: why the retention must exceed
    // any path delay.
    assert_eq!(received(&node.recv(1, gossip(5, 1))), vec![mid(5)]);
}

#[test]
fn seen_ids_are_bounded_by_max_seen_ids() {
    let config = Config {
        max_seen_ids: 4,
        ..Config::default()
    };
    let mut node = Node::new(config).with_neighbors(&[1]);
    for n in 0..6 {
        node.recv(1, gossip(n, 1));
    }
    for n in 0..2 {
        assert!(!node.tree.has_seen(&mid(n)), "{n} kept over the bound");
    }
    for n in 2..6 {
        assert!(node.tree.has_seen(&mid(n)), "{n} forgotten too early");
    }
}

#[test]
fn new_neighbour_is_sent_a_catch_up_ihave_of_cached_messages() {
    let config = Config {
        catch_up_count: 2,
        ..Config::default()
    };
    let mut node = Node::new(config).with_neighbors(&[1]);
    node.handle(InEvent::Broadcast(content(1)));
    node.recv(1, gossip(2, 4));
    node.handle(InEvent::Broadcast(content(3)));
    let out = node.handle(InEvent::NeighborUp(id(9)));
    // Newest first, at most catch_up_count, rounds one past ours.
    assert_eq!(
        sends(&out),
        vec![(
            id(9),
            Message::IHave(vec![
                IHave {
                    id: mid(3),
                    round: 1
                },
                IHave {
                    id: mid(2),
                    round: 5
                },
            ])
        )]
    );
    assert!(node.eager().contains(&id(9)));
    // With nothing cached, a new neighbour is sent nothing.
    let mut empty = Node::new(Config::default());
    assert!(sends(&empty.handle(InEvent::NeighborUp(id(9)))).is_empty());
}

/// A simultaneous dial ends with one of two connections closed; what the
/// peer sent on the closed one is lost, and with one neighbour there is no
/// one else to announce it. The node whose link was replaced announces what
/// it holds again, so the peer grafts what it missed; the tree is unchanged.
#[test]
fn a_replaced_link_announces_the_cached_messages_again() {
    let mut node = Node::new(Config::default()).with_neighbors(&[1, 2]);
    node.recv(2, Message::Prune);
    node.handle(InEvent::Broadcast(content(1)));
    let out = node.handle(InEvent::LinkReplaced(id(1)));
    assert_eq!(
        sends(&out),
        vec![(
            id(1),
            Message::IHave(vec![IHave {
                id: mid(1),
                round: 1
            }])
        )]
    );
    // A lazy neighbour is caught up too, and stays lazy.
    let out = node.handle(InEvent::LinkReplaced(id(2)));
    assert_eq!(sends_to(&out, 2).len(), 1);
    assert_eq!(node.lazy(), vec![id(2)]);
    assert_eq!(node.eager(), vec![id(1)]);
    // A peer that is no neighbour is sent nothing.
    assert!(sends(&node.handle(InEvent::LinkReplaced(id(7)))).is_empty());
}

#[test]
fn neighbor_down_forgets_the_peer_and_its_announcements() {
    let mut node = Node::new(Config::default()).with_neighbors(&[1, 2]);
    node.recv(2, Message::Prune);
    node.recv(
        2,
        Message::IHave(vec![IHave {
            id: mid(5),
            round: 1,
        }]),
    );
    node.handle(InEvent::NeighborDown(id(2)));
    assert!(node.lazy().is_empty());
    let out = node.timer(Timer::SendGraft(mid(5)));
    assert!(sends(&out).is_empty(), "grafted a peer that is gone");
    let out = node.handle(InEvent::Broadcast(content(1)));
    assert_eq!(sends(&out), vec![(id(1), gossip(1, 1))]);
}

#[test]
fn own_broadcast_is_not_delivered_back() {
    let mut node = Node::new(Config::default()).with_neighbors(&[1]);
    let out = node.handle(InEvent::Broadcast(content(1)));
    assert!(received(&out).is_empty());
    let out = node.recv(1, gossip(1, 2));
    assert!(received(&out).is_empty());
    assert_eq!(sends(&out), vec![(id(1), Message::Prune)]);
}

/// What a neighbour can do to the node in the exactly-once property.
#[derive(Debug, Clone)]
enum Step {
    Gossip { peer: u32, msg: u32, round: u16 },
    IHave { peer: u32, msg: u32 },
    Graft { peer: u32, msg: u32 },
    Prune { peer: u32 },
    GraftTimer { msg: u32 },
    Dispatch,
    Broadcast { msg: u32 },
    Down { peer: u32 },
    Up { peer: u32 },
}

fn step() -> impl Strategy<Value = Step> {
    let peer = 1u32..5;
    let msg = 0u32..6;
    prop_oneof![
        4 => (peer.clone(), msg.clone(), 1u16..20)
            .prop_map(|(peer, msg, round)| Step::Gossip { peer, msg, round }),
        2 => (peer.clone(), msg.clone()).prop_map(|(peer, msg)| Step::IHave { peer, msg }),
        1 => (peer.clone(), msg.clone()).prop_map(|(peer, msg)| Step::Graft { peer, msg }),
        1 => peer.clone().prop_map(|peer| Step::Prune { peer }),
        2 => msg.clone().prop_map(|msg| Step::GraftTimer { msg }),
        1 => Just(Step::Dispatch),
        1 => msg.prop_map(|msg| Step::Broadcast { msg }),
        1 => peer.clone().prop_map(|peer| Step::Down { peer }),
        1 => peer.prop_map(|peer| Step::Up { peer }),
    ]
}

proptest! {
    /// Whatever neighbours send, in whatever order, each message is
    /// delivered exactly once if any copy arrived (and never if we wrote it).
    #[test]
    fn every_message_is_delivered_exactly_once(steps in prop::collection::vec(step(), 1..80)) {
        let mut node = Node::new(Config::default()).with_neighbors(&[1, 2, 3, 4]);
        let mut delivered: BTreeMap<MessageId, usize> = BTreeMap::new();
        let mut arrived = BTreeMap::new();
        let mut ours = BTreeMap::new();
        for step in steps {
            let out = match step {
                Step::Gossip { peer, msg, round } => {
                    if !ours.contains_key(&mid(msg)) {
                        arrived.insert(mid(msg), ());
                    }
                    node.recv(peer, gossip(msg, round))
                }
                Step::IHave { peer, msg } => node.recv(
                    peer,
                    Message::IHave(vec![IHave { id: mid(msg), round: 1 }]),
                ),
                Step::Graft { peer, msg } => node.recv(
                    peer,
                    Message::Graft { id: Some(mid(msg)), round: 1 },
                ),
                Step::Prune { peer } => node.recv(peer, Message::Prune),
                Step::GraftTimer { msg } => node.timer(Timer::SendGraft(mid(msg))),
                Step::Dispatch => node.timer(Timer::DispatchLazyPush),
                Step::Broadcast { msg } => {
                    if !arrived.contains_key(&mid(msg)) {
                        ours.insert(mid(msg), ());
                    }
                    node.handle(InEvent::Broadcast(content(msg)))
                }
                Step::Down { peer } => node.handle(InEvent::NeighborDown(id(peer))),
                Step::Up { peer } => node.handle(InEvent::NeighborUp(id(peer))),
            };
            for m in received(&out) {
                *delivered.entry(m).or_default() += 1;
            }
            // Eager and lazy never overlap.
            let eager = node.eager();
            prop_assert!(node.lazy().iter().all(|p| !eager.contains(p)));
        }
        for (m, n) in &delivered {
            prop_assert_eq!(*n, 1, "message {:?} delivered {} times", m, n);
            prop_assert!(!ours.contains_key(m), "own message {:?} delivered", m);
        }
        for m in arrived.keys() {
            prop_assert!(delivered.contains_key(m), "message {:?} never delivered", m);
        }
    }
}

// Hostile neighbours: what one linked peer can make us hold or send.

fn graft(id: MessageId) -> Message {
    Message::Graft {
        id: Some(id),
        round: 1,
    }
}

fn served(out: &[OutEvent], p: u32) -> usize {
    sends_to(out, p)
        .iter()
        .filter(|m| matches!(m, Message::Gossip(_)))
        .count()
}

#[test]
fn a_bogus_ihave_flood_leaves_room_for_a_real_announcement() {
    let mut node = Node::new(Config::default()).with_neighbors(&[1, 2]);
    // Neighbour 1 announces more made-up ids than the whole table holds.
    for batch in 0..20u32 {
        let entries = (0..MAX_IHAVE_ENTRIES as u32)
            .map(|i| IHave {
                id: MessageId::of(&(batch * 100_000 + i).to_le_bytes()),
                round: 1,
            })
            .collect();
        node.recv(1, Message::IHave(entries));
    }
    assert!(node.tree.missing_messages() <= MAX_MISSING_PER_ANNOUNCER);
    // A real announcement from neighbour 2 is still taken, and grafted.
    let out = node.recv(
        2,
        Message::IHave(vec![IHave {
            id: mid(5),
            round: 1,
        }]),
    );
    assert!(
        timers(&out).contains(&(Config::default().graft_timeout_1, Timer::SendGraft(mid(5)))),
        "{out:?}"
    );
    let out = node.timer(Timer::SendGraft(mid(5)));
    assert_eq!(sends_to(&out, 2), vec![graft_round(mid(5), 1)]);
}

fn graft_round(id: MessageId, round: u16) -> Message {
    Message::Graft {
        id: Some(id),
        round,
    }
}

#[test]
fn ihave_from_a_non_neighbour_is_ignored() {
    let mut node = Node::new(Config::default()).with_neighbors(&[1]);
    let out = node.recv(
        9,
        Message::IHave(vec![IHave {
            id: mid(5),
            round: 1,
        }]),
    );
    assert!(timers(&out).is_empty(), "{out:?}");
    assert_eq!(node.tree.missing_messages(), 0);
}

#[test]
fn graft_from_a_non_neighbour_gets_nothing() {
    let mut node = Node::new(Config::default()).with_neighbors(&[1]);
    node.handle(InEvent::Broadcast(content(5)));
    let out = node.recv(9, graft(mid(5)));
    assert!(sends(&out).is_empty(), "{out:?}");
    assert!(!node.eager().contains(&id(9)));
    // A neighbour is served.
    let out = node.recv(1, graft(mid(5)));
    assert_eq!(served(&out, 1), 1);
}

fn key(seed: u64) -> SecretKey {
    SecretKey::generate(&mut ChaCha8Rng::seed_from_u64(seed))
}

/// A signed envelope of the largest size, the `seq`th of its origin.
fn big_envelope(key: &SecretKey, seq: u64) -> Bytes {
    let envelope = Envelope {
        origin: key.node_id(),
        seq,
        time_ms: 1_700_000_000_000 + seq,
        kind: Kind::Custom(1),
        body: Bytes::from(vec![seq as u8; MAX_BODY_BYTES]),
    };
    SignedEnvelope::sign(key, envelope).unwrap().encode()
}

#[test]
fn one_origins_flood_stays_within_its_share_and_others_are_still_served() {
    let mut node = Node::new(Config::default()).with_neighbors(&[1, 2]);
    let (honest, flooder) = (key(1), key(2));
    let kept = big_envelope(&honest, 1);
    node.recv(
        1,
        Message::Gossip(Gossip {
            content: kept.clone(),
            round: 1,
        }),
    );
    // Enough of the largest messages from one origin to pass its share of
    // the byte budget twice over.
    let share = MAX_CACHE_BYTES / ORIGIN_SHARE;
    let flood = 2 * share / MAX_BODY_BYTES + 1;
    let mut first = None;
    for seq in 0..flood as u64 {
        let content = big_envelope(&flooder, seq);
        first.get_or_insert(MessageId::of(&content));
        node.recv(1, Message::Gossip(Gossip { content, round: 1 }));
    }
    assert!(
        node.tree.cached_bytes() <= share + kept.len(),
        "{} bytes cached",
        node.tree.cached_bytes()
    );
    // The flooder's oldest went; the other origin's message is served.
    let out = node.recv(2, graft(first.unwrap()));
    assert_eq!(served(&out, 2), 0);
    let out = node.recv(2, graft(MessageId::of(&kept)));
    assert_eq!(served(&out, 2), 1);
}

#[test]
fn the_cache_keeps_to_its_byte_budget_over_many_origins() {
    let config = Config {
        max_cached_bytes: 1024 * 1024,
        ..Config::default()
    };
    let mut node = Node::new(config).with_neighbors(&[1]);
    for seed in 0..40 {
        let content = big_envelope(&key(100 + seed), 1);
        node.recv(1, Message::Gossip(Gossip { content, round: 1 }));
    }
    assert!(node.tree.cached_bytes() <= 1024 * 1024);
    assert!(node.tree.cached_messages() > 0);
}

#[test]
fn one_neighbour_cannot_pull_more_than_its_graft_budget() {
    let mut node = Node::new(Config::default()).with_neighbors(&[1]);
    let content = big_envelope(&key(3), 1);
    let len = content.len() as u64;
    node.handle(InEvent::Broadcast(content.clone()));
    let id = MessageId::of(&content);
    let mut pulled = 0;
    for _ in 0..1000 {
        pulled += served(&node.recv(1, graft(id)), 1) as u64;
    }
    assert!(pulled * len <= GRAFT_BURST_BYTES, "{pulled} copies");
    assert!(pulled >= 1);
    // It refills with time.
    node.at(Duration::from_secs(1));
    assert_eq!(served(&node.recv(1, graft(id)), 1), 1);
}
