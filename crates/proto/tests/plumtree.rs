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
    tree_of, Config, Event, Gossip, IHave, InEvent, Message, OutEvent, Plumtree, Timer,
    GRAFT_BURST_BYTES, GRAFT_WAIT_RTTS, LATENESS_MARGIN, MAX_CACHE_BYTES, MAX_IHAVE_ENTRIES,
    MAX_MISSING_PER_ANNOUNCER, MAX_TREES, MIN_GRAFT_WAIT, ORIGIN_SHARE,
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

/// The origin of the test messages: their content starts with its id, as
/// an envelope's does, so they all travel one tree.
fn origin() -> NodeId {
    id(77)
}

fn content(n: u32) -> Bytes {
    content_of(origin(), n)
}

fn prune() -> Message {
    Message::Prune { origin: origin() }
}

/// The wait of the first graft timer set, if one was.
fn graft_wait(out: &[OutEvent]) -> Option<Duration> {
    timers(out)
        .into_iter()
        .find(|(_, t)| matches!(t, Timer::SendGraft(_)))
        .map(|(d, _)| d)
}

/// An announcement of one message.
fn ihave(n: u32, round: u16) -> Message {
    Message::IHave(vec![IHave { id: mid(n), round }])
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

    /// The eager neighbours in the test messages' tree.
    fn eager(&self) -> Vec<NodeId> {
        self.tree.eager_peers_for(&origin())
    }

    /// The lazy neighbours in the test messages' tree.
    fn lazy(&self) -> Vec<NodeId> {
        self.tree.lazy_peers_for(&origin())
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
    node.recv(3, prune());
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
    assert_eq!(sends(&out), vec![(id(2), prune())]);
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
    let out = node.recv(2, prune());
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
    node.recv(2, prune());
    node.recv(3, prune());
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
                round: 3,
                origin: None,
            }
        )]
    );
    // Which tree the announcer joins is not known before the message
    // comes: its answer makes it eager (see the test after this one).
    assert!(node.lazy().contains(&id(2)));
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
                round: 4,
                origin: None,
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
    node.recv(2, prune());
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
    node.recv(1, prune());
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
    announcer.recv(1, prune());
    announcer.handle(InEvent::Broadcast(content(5)));
    let out = announcer.recv(
        1,
        Message::Graft {
            id: Some(mid(5)),
            round: 3,
            origin: None,
        },
    );
    assert_eq!(sends(&out), vec![(id(1), gossip(5, 3))]);
    assert_eq!(announcer.eager(), vec![id(1)], "graft makes the link eager");
}

#[test]
fn a_grafted_announcers_answer_makes_it_eager_without_another_graft() {
    let mut node = Node::new(Config::default()).with_neighbors(&[1, 2]);
    node.recv(2, prune());
    node.recv(2, ihave(5, 1));
    node.timer(Timer::SendGraft(mid(5)));
    let out = node.recv(2, gossip(5, 1));
    assert_eq!(received(&out), vec![mid(5)]);
    assert_eq!(node.eager(), vec![id(1), id(2)]);
    // It made us eager when it answered: no graft of the tree is needed.
    assert!(!sends_to(&out, 2)
        .iter()
        .any(|m| matches!(m, Message::Graft { .. })));
}

#[test]
fn graft_for_an_unknown_message_makes_the_link_eager_in_the_tree_it_names() {
    let mut node = Node::new(Config::default()).with_neighbors(&[1]);
    node.recv(1, prune());
    assert_eq!(node.lazy(), vec![id(1)]);
    // Neither the message nor its tree known: nothing to change.
    let out = node.recv(
        1,
        Message::Graft {
            id: Some(mid(99)),
            round: 1,
            origin: None,
        },
    );
    assert!(sends(&out).is_empty());
    assert_eq!(node.lazy(), vec![id(1)]);
    let out = node.recv(
        1,
        Message::Graft {
            id: Some(mid(99)),
            round: 1,
            origin: Some(origin()),
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
            origin: None,
        },
    );
    assert!(sends(&out).is_empty());
}

#[test]
fn much_shorter_lazy_path_replaces_the_eager_parent() {
    let config = Config::default();
    let mut node = Node::new(config.clone()).with_neighbors(&[1, 2]);
    node.recv(2, prune());
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
    assert!(sends_to(&out, 2).contains(&Message::Graft {
        id: None,
        round: 1,
        origin: Some(origin())
    }));
    assert!(sends_to(&out, 1).contains(&prune()));
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
        .any(|(_, m)| matches!(m, Message::Graft { .. } | Message::Prune { .. })));
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
    node.recv(2, prune());
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
    node.recv(2, prune());
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
    assert_eq!(sends(&out), vec![(id(1), prune())]);
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
                    Message::Graft { id: Some(mid(msg)), round: 1, origin: None, },
                ),
                Step::Prune { peer } => node.recv(peer, prune()),
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
        origin: None,
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
        origin: None,
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

/// Content whose tree is `origin`'s.
fn content_of(origin: NodeId, n: u32) -> Bytes {
    let mut b = origin.as_bytes().to_vec();
    b.extend_from_slice(format!("message number {n}").as_bytes());
    Bytes::from(b)
}

/// Message `n` of `origin`, one hop from it.
fn from(origin: NodeId, n: u32) -> Message {
    Message::Gossip(Gossip {
        content: content_of(origin, n),
        round: 1,
    })
}

#[test]
fn a_duplicate_prunes_the_link_from_its_origins_tree_only() {
    // Before, one split served every origin: a duplicate of origin A's
    // message made the link lazy for B's too, and messages of two origins
    // crossing a cycle pruned two of its edges, splitting the tree.
    let (a, b) = (id(100), id(200));
    let mut node = Node::new(Config::default()).with_neighbors(&[1, 2, 3]);
    node.recv(3, from(b, 1));
    node.recv(1, from(a, 1));
    let out = node.recv(2, from(a, 1));
    assert_eq!(sends(&out), vec![(id(2), Message::Prune { origin: a })]);
    assert_eq!(node.tree.lazy_peers_for(&a), vec![id(2)]);
    // B's tree keeps 2 eager: its next message is pushed to 2 in full.
    let out = node.recv(3, from(b, 2));
    assert!(matches!(sends_to(&out, 2)[..], [Message::Gossip(_)]));
    // A prune naming B leaves A's tree as it was.
    node.recv(1, Message::Prune { origin: b });
    assert_eq!(node.tree.lazy_peers_for(&b), vec![id(1)]);
    assert_eq!(node.tree.lazy_peers_for(&a), vec![id(2)]);
}

#[test]
fn a_new_origins_first_message_travels_the_smallest_origins_tree() {
    let (small, large, new) = (id(100), id(200), id(300));
    let mut node = Node::new(Config::default()).with_neighbors(&[1, 2, 3]);
    node.recv(1, from(small, 1));
    node.recv(2, from(small, 1));
    node.recv(1, from(large, 1));
    node.recv(3, from(large, 1));
    assert_eq!(node.tree.lazy_peers_for(&small), vec![id(2)]);
    // Large began as a copy of small's tree.
    assert_eq!(node.tree.lazy_peers_for(&large), vec![id(2), id(3)]);
    // Every node copies the same tree, whichever origin it heard last.
    assert_eq!(node.tree.lazy_peers(), vec![id(2)]);
    let out = node.recv(1, from(new, 1));
    assert!(matches!(sends_to(&out, 3)[..], [Message::Gossip(_)]));
    assert!(sends_to(&out, 2).is_empty());
}

#[test]
fn a_first_copy_from_a_neighbour_we_hold_lazy_is_answered_with_a_graft() {
    // We pruned 2, but it pushed the next message before reading the
    // prune. Taking 2 back as eager without telling it left the link eager
    // here and lazy there once it read the prune.
    let mut node = Node::new(Config::default()).with_neighbors(&[1, 2]);
    node.recv(1, gossip(1, 1));
    node.recv(2, gossip(1, 1));
    assert_eq!(node.lazy(), vec![id(2)]);
    let out = node.recv(2, gossip(2, 3));
    assert_eq!(received(&out), vec![mid(2)]);
    assert_eq!(
        sends_to(&out, 2),
        vec![Message::Graft {
            id: None,
            round: 3,
            origin: Some(origin()),
        }]
    );
    assert_eq!(node.eager(), vec![id(1), id(2)]);
}

#[test]
fn graft_waits_scale_with_the_announcers_round_trip() {
    let config = Config::default();
    let wait_for = |rtt: Option<Duration>| {
        let mut node = Node::new(config.clone()).with_neighbors(&[1, 2]);
        node.recv(2, prune());
        if let Some(rtt) = rtt {
            node.handle(InEvent::RoundTrip(id(2), rtt));
        }
        graft_wait(&node.recv(2, ihave(5, 1))).expect("a graft timer")
    };
    // Unmeasured: the configured longest wait.
    assert_eq!(wait_for(None), config.graft_timeout_1);
    // Measured: a few round trips, spread by at most one more.
    let rtt = Duration::from_millis(10);
    let wait = wait_for(Some(rtt));
    assert!(wait >= rtt * GRAFT_WAIT_RTTS, "{wait:?}");
    assert!(wait <= rtt * (GRAFT_WAIT_RTTS + 1), "{wait:?}");
    // A loopback round trip waits the floor; a slow link, the ceiling.
    assert_eq!(wait_for(Some(Duration::from_micros(50))), MIN_GRAFT_WAIT);
    assert_eq!(
        wait_for(Some(Duration::from_secs(1))),
        config.graft_timeout_1
    );
}

#[test]
fn graft_waits_are_spread_over_the_nodes_that_wait_for_one_message() {
    let rtt = Duration::from_millis(20);
    let waits: std::collections::BTreeSet<Duration> = (0..16u32)
        .map(|me| {
            let mut tree = Plumtree::new(id(1000 + me), Config::default());
            let mut out = VecDeque::new();
            let now = Instant::now();
            tree.handle(InEvent::NeighborUp(id(2)), now, &mut out);
            tree.handle(InEvent::RoundTrip(id(2), rtt), now, &mut out);
            out.clear();
            tree.handle(InEvent::RecvMessage(id(2), ihave(5, 1)), now, &mut out);
            graft_wait(&Vec::from(out)).expect("a graft timer")
        })
        .collect();
    assert!(waits.len() > 8, "{waits:?}");
}

#[test]
fn a_prune_for_an_origin_we_have_no_tree_for_cannot_push_out_real_trees() {
    let mut node = Node::new(Config::default()).with_neighbors(&[1, 2]);
    node.recv(1, gossip(1, 1));
    let made_up = |i: usize| {
        let mut b = [0xeeu8; 32];
        b[..8].copy_from_slice(&(i as u64).to_le_bytes());
        NodeId::from_bytes(b)
    };
    for i in 0..MAX_TREES + 100 {
        node.recv(2, Message::Prune { origin: made_up(i) });
    }
    assert_eq!(node.tree.trees(), MAX_TREES);
    // The real origin's tree is still there, and still its own: 2 eager.
    assert!(!node.tree.is_lazy_for(&origin(), &id(2)));
    let out = node.recv(1, gossip(2, 1));
    assert!(matches!(sends_to(&out, 2)[..], [Message::Gossip(_)]));
}

#[test]
fn an_envelopes_tree_is_its_origins() {
    // Plumtree names a message's tree by its content's first 32 bytes,
    // without decoding it: an encoded envelope must begin with the origin.
    let key = SecretKey::generate(&mut ChaCha8Rng::seed_from_u64(4));
    let envelope = Envelope {
        origin: key.node_id(),
        seq: 300,
        time_ms: 1_700_000_000_000,
        kind: Kind::Chat,
        body: Bytes::from_static(b"hello"),
    };
    let encoded = SignedEnvelope::sign(&key, envelope).unwrap().encode();
    assert_eq!(tree_of(&encoded), key.node_id());
}

#[test]
fn graft_waits_grow_with_how_late_eager_copies_run() {
    // On a busy node the eager copy runs far behind the announcements of
    // lazy neighbours, much longer than a ping's round trip: grafting
    // after a few round trips then fetched copies already on their way.
    let mut node = Node::new(Config::default()).with_neighbors(&[1, 2]);
    node.recv(2, prune());
    node.handle(InEvent::RoundTrip(id(2), Duration::from_micros(100)));
    let wait = |out: Vec<OutEvent>| graft_wait(&out).expect("a graft timer");
    assert_eq!(wait(node.recv(2, ihave(1, 1))), MIN_GRAFT_WAIT);
    // The eager copy comes 40 ms after the announcement.
    node.at(Duration::from_millis(40));
    node.recv(1, gossip(1, 2));
    assert_eq!(node.tree.lateness(), Some(Duration::from_millis(40)));
    let waited = wait(node.recv(2, ihave(2, 1)));
    assert_eq!(waited, Duration::from_millis(40) * LATENESS_MARGIN);
    // A copy fetched by a graft says nothing of how late pushes run.
    node.timer(Timer::SendGraft(mid(2)));
    node.at(Duration::from_millis(400));
    node.recv(2, gossip(2, 2));
    assert_eq!(node.tree.lateness(), Some(Duration::from_millis(40)));
}
