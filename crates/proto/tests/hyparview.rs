//! Unit tests of the HyParView rules, driving one `hyparview::HyParView`
//! directly with a seeded RNG and a fixed clock: joins and their random
//! walks, neighbour requests by priority and their replies (matched by
//! request number), disconnects, repair after a failure, request timeouts,
//! shuffles and the passive view's bound, and leaving. Each test builds the
//! views it needs through the same messages a peer would send, then checks
//! the outputs and the views.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use gossipnet_proto::hyparview::{
    Config, Event, HyParView, InEvent, Message, OutEvent, PeerInfo, Priority, Timer,
    FORWARD_JOIN_BURST, FORWARD_JOIN_REFILL, MAX_SHUFFLE_PEERS,
};
use gossipnet_proto::record::{NodeRecord, SignedRecord};
use gossipnet_proto::{NodeId, SecretKey};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn id(i: u32) -> NodeId {
    let mut b = [0u8; 32];
    b[..4].copy_from_slice(&i.to_le_bytes());
    b[31] = 0xaa;
    NodeId::from_bytes(b)
}

fn info(i: u32) -> PeerInfo {
    PeerInfo {
        id: id(i),
        data: data(i),
    }
}

fn data(i: u32) -> Bytes {
    Bytes::from(format!("data of {i}"))
}

const ME: u32 = 0;

/// One HyParView node with its RNG, clock and output queue.
struct Node {
    hpv: HyParView,
    rng: ChaCha8Rng,
    now: Instant,
}

impl Node {
    fn new(seed: u64) -> Self {
        Self::with_config(seed, Config::default())
    }

    fn with_config(seed: u64, config: Config) -> Self {
        Self {
            hpv: HyParView::new(id(ME), data(ME), config),
            rng: ChaCha8Rng::seed_from_u64(seed),
            now: Instant::now(),
        }
    }

    fn handle(&mut self, event: InEvent) -> Vec<OutEvent> {
        let mut out = VecDeque::new();
        self.hpv.handle(event, self.now, &mut self.rng, &mut out);
        out.into()
    }

    fn recv(&mut self, from: u32, message: Message) -> Vec<OutEvent> {
        self.handle(InEvent::RecvMessage(id(from), message))
    }

    fn timer(&mut self, timer: Timer) -> Vec<OutEvent> {
        self.handle(InEvent::TimerExpired(timer))
    }

    /// Takes these peers into the active view by low-priority requests.
    fn with_active(mut self, peers: &[u32]) -> Self {
        for p in peers {
            let out = self.recv(*p, neighbor(Priority::Low, *p, 1000 + *p));
            assert!(replies(&out).contains(&(id(*p), true)), "{p} not accepted");
        }
        assert_eq!(self.hpv.active_view().len(), peers.len());
        self
    }

    /// Puts these peers into the passive view through a shuffle reply.
    fn with_passive(mut self, peers: &[u32]) -> Self {
        for chunk in peers.chunks(MAX_SHUFFLE_PEERS) {
            self.recv(
                chunk[0],
                Message::ShuffleReply {
                    nodes: chunk.iter().map(|p| info(*p)).collect(),
                },
            );
        }
        for p in peers {
            assert!(self.passive(*p), "{p} not passive");
        }
        self
    }

    fn active(&self, p: u32) -> bool {
        self.hpv.active_view().contains(&id(p))
    }

    fn passive(&self, p: u32) -> bool {
        self.hpv.passive_view().contains(&id(p))
    }
}

fn neighbor(priority: Priority, from: u32, request: u32) -> Message {
    Message::Neighbor {
        priority,
        data: data(from),
        request,
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

/// (requester, accepted) of every neighbour reply sent.
fn replies(out: &[OutEvent]) -> Vec<(NodeId, bool)> {
    sends(out)
        .into_iter()
        .filter_map(|(to, m)| match m {
            Message::NeighborReply { accepted, .. } => Some((to, accepted)),
            _ => None,
        })
        .collect()
}

/// (peer, priority, request) of every neighbour request sent.
fn requests(out: &[OutEvent]) -> Vec<(NodeId, Priority, u32)> {
    sends(out)
        .into_iter()
        .filter_map(|(to, m)| match m {
            Message::Neighbor {
                priority, request, ..
            } => Some((to, priority, request)),
            _ => None,
        })
        .collect()
}

fn disconnects(out: &[OutEvent]) -> Vec<(NodeId, bool)> {
    sends(out)
        .into_iter()
        .filter_map(|(to, m)| match m {
            Message::Disconnect { alive } => Some((to, alive)),
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

fn events(out: &[OutEvent]) -> Vec<Event> {
    out.iter()
        .filter_map(|o| match o {
            OutEvent::EmitEvent(e) => Some(*e),
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
fn request_join_sends_join_to_the_contact() {
    let mut node = Node::new(1);
    let out = node.handle(InEvent::RequestJoin(id(7)));
    assert_eq!(sends(&out), vec![(id(7), Message::Join(data(ME)))]);
    // The first input also starts the shuffle and repair timers.
    let timers: Vec<Timer> = timers(&out).into_iter().map(|(_, t)| t).collect();
    assert!(timers.contains(&Timer::Shuffle) && timers.contains(&Timer::Repair));
    assert!(node.hpv.active_view().is_empty());
}

#[test]
fn contact_takes_joiner_in_and_forwards_join_to_other_neighbours() {
    let mut node = Node::new(2).with_active(&[1, 2, 3]);
    let out = node.recv(9, Message::Join(data(9)));

    assert!(node.active(9));
    assert!(events(&out).contains(&Event::NeighborUp(id(9))));
    // The joiner is told it was taken in (a high-priority notice)...
    let to_joiner = sends_to(&out, 9);
    assert_eq!(to_joiner.len(), 1, "{to_joiner:?}");
    assert!(matches!(
        to_joiner[0],
        Message::Neighbor {
            priority: Priority::High,
            ..
        }
    ));
    // ...and every other neighbour starts a random walk of length ARWL.
    let arwl = Config::default().active_random_walk_length;
    for p in [1, 2, 3] {
        assert_eq!(
            sends_to(&out, p),
            vec![Message::ForwardJoin {
                peer: info(9),
                ttl: arwl
            }],
            "neighbour {p}"
        );
    }
    assert_eq!(node.hpv.peer_data(&id(9)), Some(&data(9)));
}

/// A join from a peer already in the active view: after a simultaneous
/// dial, the losing connection can close at the peer's end before the
/// winning one is up there, so the peer dropped us while we kept it. It
/// joins again; we must tell it we are neighbours, or the link stays
/// one-sided (its broadcasts reach nobody) until liveness notices.
#[test]
fn a_join_from_a_neighbour_is_answered_with_a_neighbour_notice() {
    let mut node = Node::new(2).with_active(&[1, 9]);
    let out = node.recv(9, Message::Join(data(9)));
    assert!(node.active(9));
    let to_joiner = sends_to(&out, 9);
    assert_eq!(to_joiner.len(), 1, "{to_joiner:?}");
    assert!(matches!(
        to_joiner[0],
        Message::Neighbor {
            priority: Priority::High,
            ..
        }
    ));
    // No neighbour event: nothing changed here.
    assert!(!events(&out).contains(&Event::NeighborUp(id(9))));
}

#[test]
fn forward_join_with_ttl_zero_adds_the_joiner() {
    let mut node = Node::new(3).with_active(&[1, 2, 3]);
    let out = node.recv(
        1,
        Message::ForwardJoin {
            peer: info(9),
            ttl: 0,
        },
    );
    assert!(node.active(9));
    assert!(events(&out).contains(&Event::NeighborUp(id(9))));
    let to_joiner = sends_to(&out, 9);
    assert!(
        matches!(
            to_joiner.as_slice(),
            [Message::Neighbor {
                priority: Priority::High,
                ..
            }]
        ),
        "{to_joiner:?}"
    );
    // The walk ends here.
    assert!(!sends(&out)
        .iter()
        .any(|(_, m)| matches!(m, Message::ForwardJoin { .. })));
}

#[test]
fn forward_join_at_a_node_with_one_neighbour_adds_the_joiner() {
    // From the neighbour itself the walk could not go on anyway.
    let mut node = Node::new(4).with_active(&[1]);
    let out = node.recv(
        1,
        Message::ForwardJoin {
            peer: info(9),
            ttl: 5,
        },
    );
    assert!(node.active(9));
    assert!(!sends(&out)
        .iter()
        .any(|(_, m)| matches!(m, Message::ForwardJoin { .. })));
}

#[test]
fn forward_join_at_prwl_leaves_the_joiner_passive_and_walks_on() {
    let prwl = Config::default().passive_random_walk_length;
    let mut node = Node::new(5).with_active(&[1, 2, 3]);
    let out = node.recv(
        1,
        Message::ForwardJoin {
            peer: info(9),
            ttl: prwl,
        },
    );
    assert!(node.passive(9));
    assert!(!node.active(9));
    let walks: Vec<(NodeId, Message)> = sends(&out)
        .into_iter()
        .filter(|(_, m)| matches!(m, Message::ForwardJoin { .. }))
        .collect();
    assert_eq!(walks.len(), 1, "{walks:?}");
    let (next, message) = &walks[0];
    // Never back to the sender, never to the joiner itself.
    assert!(*next == id(2) || *next == id(3), "{next:?}");
    assert_eq!(
        *message,
        Message::ForwardJoin {
            peer: info(9),
            ttl: prwl - 1
        }
    );
}

#[test]
fn forward_join_away_from_prwl_neither_adds_nor_keeps_the_joiner() {
    let prwl = Config::default().passive_random_walk_length;
    let mut node = Node::new(6).with_active(&[1, 2, 3]);
    let out = node.recv(
        1,
        Message::ForwardJoin {
            peer: info(9),
            ttl: prwl + 1,
        },
    );
    assert!(!node.passive(9) && !node.active(9));
    assert!(sends(&out).iter().any(|(to, m)| *to != id(1)
        && *m
            == Message::ForwardJoin {
                peer: info(9),
                ttl: prwl
            }));
}

#[test]
fn low_priority_request_is_refused_when_the_active_view_is_full() {
    let mut node = Node::new(7).with_active(&[1, 2, 3, 4, 5]);
    let out = node.recv(9, neighbor(Priority::Low, 9, 77));
    assert!(!node.active(9));
    assert_eq!(node.hpv.active_view().len(), 5);
    assert_eq!(
        sends(&out),
        vec![(
            id(9),
            Message::NeighborReply {
                accepted: false,
                data: data(ME),
                request: 77
            }
        )]
    );
    assert!(events(&out).is_empty());
}

#[test]
fn low_priority_request_is_accepted_when_there_is_room() {
    let mut node = Node::new(8).with_active(&[1, 2]);
    let out = node.recv(9, neighbor(Priority::Low, 9, 78));
    assert!(node.active(9));
    assert!(events(&out).contains(&Event::NeighborUp(id(9))));
    assert_eq!(
        sends(&out),
        vec![(
            id(9),
            Message::NeighborReply {
                accepted: true,
                data: data(ME),
                request: 78
            }
        )]
    );
}

#[test]
fn high_priority_request_is_accepted_when_full_by_evicting_a_neighbour() {
    let old = [1, 2, 3, 4, 5];
    let mut node = Node::new(9).with_active(&old);
    let out = node.recv(9, neighbor(Priority::High, 9, 79));

    assert!(node.active(9));
    assert_eq!(node.hpv.active_view().len(), 5);
    assert!(replies(&out).contains(&(id(9), true)));
    let evicted: Vec<u32> = old.iter().copied().filter(|p| !node.active(*p)).collect();
    assert_eq!(evicted.len(), 1, "exactly one neighbour makes room");
    let victim = evicted[0];
    // The victim is told it is still alive, its link closed, and it is kept
    // as a passive peer.
    assert_eq!(disconnects(&out), vec![(id(victim), true)]);
    assert_eq!(closes(&out), vec![id(victim)]);
    assert!(node.passive(victim));
    let ev = events(&out);
    assert!(ev.contains(&Event::NeighborDown(id(victim))));
    assert!(ev.contains(&Event::NeighborUp(id(9))));
}

/// A node with one neighbour (1) and one passive peer (9) whose repair
/// timer has just sent a neighbour request to 9; returns the request number.
fn node_asking_9(seed: u64) -> (Node, u32) {
    let mut node = Node::new(seed).with_active(&[1]).with_passive(&[9]);
    let out = node.timer(Timer::Repair);
    let reqs = requests(&out);
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    let (to, _, request) = reqs[0];
    assert_eq!(to, id(9));
    assert!(timers(&out).contains(&(
        Config::default().neighbor_request_timeout,
        Timer::NeighborRequest(id(9), request)
    )));
    (node, request)
}

fn reply(accepted: bool, request: u32) -> Message {
    Message::NeighborReply {
        accepted,
        data: data(9),
        request,
    }
}

#[test]
fn accepted_reply_to_the_pending_request_adds_the_peer() {
    let (mut node, request) = node_asking_9(10);
    let out = node.recv(9, reply(true, request));
    assert!(node.active(9));
    assert!(!node.passive(9));
    assert!(events(&out).contains(&Event::NeighborUp(id(9))));
    assert!(disconnects(&out).is_empty());
}

#[test]
fn accepted_reply_with_another_request_number_is_undone_not_added() {
    let (mut node, request) = node_asking_9(11);
    let out = node.recv(9, reply(true, request.wrapping_add(100)));
    assert!(!node.active(9));
    assert!(!events(&out).contains(&Event::NeighborUp(id(9))));
    assert_eq!(disconnects(&out), vec![(id(9), true)]);
}

#[test]
fn accepted_reply_after_the_request_timed_out_is_undone_not_added() {
    let (mut node, request) = node_asking_9(12);
    node.timer(Timer::NeighborRequest(id(9), request));
    let out = node.recv(9, reply(true, request));
    assert!(!node.active(9));
    assert!(!events(&out).contains(&Event::NeighborUp(id(9))));
    assert_eq!(disconnects(&out), vec![(id(9), true)]);
}

#[test]
fn refusal_is_not_asked_again_until_the_next_repair_tick() {
    let (mut node, request) = node_asking_9(13);
    let out = node.recv(9, reply(false, request));
    assert!(!node.active(9));
    assert!(
        requests(&out).is_empty(),
        "refused peer asked again at once"
    );
    let out = node.timer(Timer::Repair);
    assert_eq!(requests(&out).len(), 1);
    assert_eq!(requests(&out)[0].0, id(9));
}

#[test]
fn neighbor_request_timeout_removes_the_peer_from_the_passive_view() {
    let (mut node, request) = node_asking_9(14);
    // A timer for an older request to the same peer changes nothing.
    node.timer(Timer::NeighborRequest(id(9), request.wrapping_sub(1)));
    assert!(node.passive(9));
    node.timer(Timer::NeighborRequest(id(9), request));
    assert!(!node.passive(9));
    assert!(!node.active(9));
}

#[test]
fn disconnect_not_alive_forgets_the_peer() {
    let mut node = Node::new(15).with_active(&[1, 2]).with_passive(&[8]);
    let out = node.recv(1, Message::Disconnect { alive: false });
    assert!(!node.active(1) && !node.passive(1));
    assert_eq!(node.hpv.peer_data(&id(1)), None);
    assert!(events(&out).contains(&Event::NeighborDown(id(1))));
    assert!(closes(&out).contains(&id(1)));
    // A passive peer that leaves is forgotten too.
    node.recv(8, Message::Disconnect { alive: false });
    assert!(!node.passive(8));
}

#[test]
fn disconnect_alive_keeps_the_peer_passive() {
    let mut node = Node::new(16).with_active(&[1, 2]);
    let out = node.recv(1, Message::Disconnect { alive: true });
    assert!(!node.active(1));
    assert!(node.passive(1));
    assert_eq!(node.hpv.peer_data(&id(1)), Some(&data(1)));
    assert!(events(&out).contains(&Event::NeighborDown(id(1))));
    assert!(closes(&out).contains(&id(1)));
}

#[test]
fn a_neighbour_that_drops_us_is_asked_again_only_over_a_new_link() {
    // It is the only peer to ask: the link closes before the request goes,
    // so the runtime dials anew instead of sending it down the closing one.
    let mut node = Node::new(20).with_active(&[1]);
    let out = node.recv(1, Message::Disconnect { alive: true });
    let close = out
        .iter()
        .position(|o| matches!(o, OutEvent::DisconnectPeer(p) if *p == id(1)));
    let ask = out.iter().position(
        |o| matches!(o, OutEvent::SendMessage(p, Message::Neighbor { .. }) if *p == id(1)),
    );
    let (Some(close), Some(ask)) = (close, ask) else {
        panic!("expected a close and a new request: {out:?}");
    };
    assert!(
        close < ask,
        "asked again over the link being closed: {out:?}"
    );
}

#[test]
fn failed_neighbour_is_replaced_from_the_passive_view_by_priority() {
    let config = Config::default();
    assert_eq!(config.high_priority_below, 4);
    let mut node = Node::new(17)
        .with_active(&[1, 2, 3, 4, 5])
        .with_passive(&[20, 21, 22, 23]);

    // Four left: at the threshold, so a low-priority request.
    let out = node.handle(InEvent::PeerDisconnected(id(1)));
    assert!(
        !node.active(1) && !node.passive(1),
        "a failed peer is dropped"
    );
    assert!(events(&out).contains(&Event::NeighborDown(id(1))));
    let first = requests(&out);
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(first[0].1, Priority::Low);
    assert!([20, 21, 22, 23].iter().any(|p| id(*p) == first[0].0));

    // Three left: below the threshold, so high priority; one request is
    // already out, so one more fills the view.
    let out = node.handle(InEvent::PeerDisconnected(id(2)));
    let second = requests(&out);
    assert_eq!(second.len(), 1, "{second:?}");
    assert_eq!(second[0].1, Priority::High);
    assert_ne!(second[0].0, first[0].0, "a pending peer is not asked twice");
}

#[test]
fn with_the_papers_threshold_only_an_empty_view_asks_with_high_priority() {
    let config = Config {
        high_priority_below: 1,
        ..Config::default()
    };
    let mut node = Node::with_config(18, config)
        .with_active(&[1, 2])
        .with_passive(&[20, 21, 22, 23, 24, 25]);
    let out = node.handle(InEvent::PeerDisconnected(id(1)));
    assert!(requests(&out).iter().all(|r| r.1 == Priority::Low));
    assert_eq!(requests(&out).len(), 4);
    let mut node = Node::with_config(
        18,
        Config {
            high_priority_below: 1,
            ..Config::default()
        },
    )
    .with_active(&[1])
    .with_passive(&[20, 21]);
    let out = node.handle(InEvent::PeerDisconnected(id(1)));
    let reqs = requests(&out);
    assert_eq!(reqs.len(), 2);
    assert!(reqs.iter().all(|r| r.1 == Priority::High));
}

#[test]
fn shuffle_goes_to_an_active_peer_with_a_bounded_sample() {
    let config = Config::default();
    let passive: Vec<u32> = (100..125).collect();
    let mut node = Node::new(19)
        .with_active(&[1, 2, 3, 4, 5])
        .with_passive(&passive);
    let out = node.timer(Timer::Shuffle);
    let shuffles: Vec<(NodeId, Message)> = sends(&out)
        .into_iter()
        .filter(|(_, m)| matches!(m, Message::Shuffle { .. }))
        .collect();
    assert_eq!(shuffles.len(), 1);
    let (target, Message::Shuffle { origin, nodes, ttl }) = &shuffles[0] else {
        unreachable!()
    };
    assert!(node.hpv.active_view().contains(target));
    assert_eq!(*origin, info(ME));
    assert_eq!(*ttl, config.shuffle_random_walk_length);
    let bound = config.shuffle_active_view_count + config.shuffle_passive_view_count;
    assert_eq!(nodes.len(), bound, "sample of both views");
    assert!(nodes.iter().all(|n| n.id != *target && n.id != id(ME)));
    let from_active = nodes
        .iter()
        .filter(|n| node.hpv.active_view().contains(&n.id))
        .count();
    assert_eq!(from_active, config.shuffle_active_view_count);
    // The next shuffle is set, jittered around the interval.
    let (delay, _) = timers(&out)
        .into_iter()
        .find(|(_, t)| *t == Timer::Shuffle)
        .expect("shuffle rescheduled");
    let base = config.shuffle_interval;
    assert!(
        delay >= base.mul_f64(0.8) && delay < base.mul_f64(1.2),
        "{delay:?}"
    );
}

#[test]
fn shuffle_with_an_empty_active_view_sends_nothing() {
    let mut node = Node::new(20).with_passive(&[100, 101]);
    let out = node.timer(Timer::Shuffle);
    assert!(sends(&out).is_empty());
}

#[test]
fn shuffle_walks_on_while_ttl_remains() {
    let mut node = Node::new(21).with_active(&[1, 2, 3]);
    let out = node.recv(
        1,
        Message::Shuffle {
            origin: info(50),
            nodes: vec![info(51)],
            ttl: 3,
        },
    );
    let s = sends(&out);
    assert_eq!(s.len(), 1, "{s:?}");
    assert!(s[0].0 == id(2) || s[0].0 == id(3));
    assert_eq!(
        s[0].1,
        Message::Shuffle {
            origin: info(50),
            nodes: vec![info(51)],
            ttl: 2
        }
    );
    assert!(!node.passive(50) && !node.passive(51));
}

#[test]
fn shuffle_at_its_end_is_answered_and_integrated() {
    let mut node = Node::new(22)
        .with_active(&[1, 2])
        .with_passive(&[100, 101, 102, 103]);
    let out = node.recv(
        1,
        Message::Shuffle {
            origin: info(50),
            nodes: vec![info(51), info(52)],
            ttl: 0,
        },
    );
    let to_origin = sends_to(&out, 50);
    assert_eq!(to_origin.len(), 1);
    let Message::ShuffleReply { nodes } = &to_origin[0] else {
        panic!("{to_origin:?}")
    };
    // As many peers as were sent, from the passive view.
    assert_eq!(nodes.len(), 2);
    assert!(nodes
        .iter()
        .all(|n| [100, 101, 102, 103].iter().any(|p| id(*p) == n.id)));
    for p in [50, 51, 52] {
        assert!(node.passive(p), "{p}");
        assert_eq!(node.hpv.peer_data(&id(p)), Some(&data(p)));
    }
}

#[test]
fn shuffle_reply_integrates_peers_and_the_passive_view_stays_bounded() {
    let cap = Config::default().passive_view_capacity;
    let mut node = Node::new(23).with_active(&[1, 2, 3]);
    node.timer(Timer::Shuffle);
    let mut next = 1000;
    for round in 0..20 {
        let batch: Vec<u32> = (next..next + MAX_SHUFFLE_PEERS as u32).collect();
        next += MAX_SHUFFLE_PEERS as u32;
        node.recv(
            1,
            Message::ShuffleReply {
                nodes: batch.iter().map(|p| info(*p)).collect(),
            },
        );
        assert!(
            node.hpv.passive_view().len() <= cap,
            "round {round}: {}",
            node.hpv.passive_view().len()
        );
        // New peers are taken in, evicting older ones.
        assert!(batch.iter().any(|p| node.passive(*p)));
        // Active peers and ourselves are never passive.
        assert!(!node.passive(ME) && !node.passive(1));
        node.timer(Timer::Shuffle);
    }
    assert_eq!(node.hpv.passive_view().len(), cap);
    // A reply naming ourselves or a neighbour adds neither.
    node.recv(
        2,
        Message::ShuffleReply {
            nodes: vec![info(ME), info(3)],
        },
    );
    assert!(!node.passive(ME) && !node.passive(3));
}

#[test]
fn quit_tells_every_neighbour_we_are_leaving_and_goes_silent() {
    let mut node = Node::new(24).with_active(&[1, 2, 3]).with_passive(&[8]);
    let out = node.handle(InEvent::Quit);
    let mut d = disconnects(&out);
    d.sort();
    let mut want = vec![(id(1), false), (id(2), false), (id(3), false)];
    want.sort();
    assert_eq!(d, want);
    let mut c = closes(&out);
    c.sort();
    assert_eq!(c, vec![id(1), id(2), id(3)]);
    assert!(node.hpv.active_view().is_empty());
    // A node that left answers nothing.
    assert!(node.recv(9, Message::Join(data(9))).is_empty());
    assert!(node.timer(Timer::Repair).is_empty());
}

#[test]
fn join_notice_is_accepted_even_when_full() {
    // The joiner's side of a join: the contact's high-priority notice must
    // be taken in, and answered with a yes.
    let mut node = Node::new(25).with_active(&[1, 2, 3, 4, 5]);
    let out = node.recv(9, neighbor(Priority::High, 9, 3));
    assert!(node.active(9));
    assert_eq!(
        sends_to(&out, 9),
        vec![Message::NeighborReply {
            accepted: true,
            data: data(ME),
            request: 3
        }]
    );
}

// Hostile walks and data: what one linked peer can do to our views.

fn is_misbehaved(out: &[OutEvent], p: u32) -> bool {
    out.iter()
        .any(|o| matches!(o, OutEvent::Misbehaved(peer, _) if *peer == id(p)))
}

fn forward_join(joiner: u32, ttl: u16) -> Message {
    Message::ForwardJoin {
        peer: info(joiner),
        ttl,
    }
}

#[test]
fn forward_join_from_a_non_neighbour_or_with_a_huge_ttl_evicts_no_one() {
    let full: Vec<u32> = (1..=5).collect();
    let mut node = Node::new(21).with_active(&full);
    // ttl 0 from a peer that is no neighbour: would put its pick in our
    // view in place of a random neighbour.
    let out = node.recv(7, forward_join(9, 0));
    assert!(!node.active(9));
    assert!(disconnects(&out).is_empty(), "{out:?}");
    assert_eq!(
        node.hpv.active_view(),
        full.iter().map(|p| id(*p)).collect::<Vec<_>>()
    );
    // A 65,535-hop walk, from a non-neighbour and from a neighbour, is
    // never walked on: the sender misbehaved.
    for from in [7, 1] {
        let out = node.recv(from, forward_join(9, u16::MAX));
        assert!(is_misbehaved(&out, from), "{from}: {out:?}");
        assert!(sends(&out).is_empty(), "{from}: {out:?}");
        assert!(!node.active(9) && !node.passive(9));
    }
    assert_eq!(node.hpv.active_view().len(), 5);
}

#[test]
fn a_shuffle_from_a_non_neighbour_or_with_a_huge_ttl_is_not_taken() {
    let mut node = Node::new(22).with_active(&[1, 2, 3]);
    let shuffle = |ttl| Message::Shuffle {
        origin: info(40),
        nodes: vec![info(41)],
        ttl,
    };
    let out = node.recv(7, shuffle(0));
    assert!(sends(&out).is_empty(), "{out:?}");
    assert!(!node.passive(40) && !node.passive(41));
    let out = node.recv(1, shuffle(u16::MAX));
    assert!(is_misbehaved(&out, 1));
    assert!(sends(&out).is_empty(), "{out:?}");
    // At the walk length, from a neighbour, it is an ordinary shuffle.
    let ttl = Config::default().shuffle_random_walk_length;
    let out = node.recv(1, shuffle(ttl));
    assert!(!is_misbehaved(&out, 1));
    assert!(!sends(&out).is_empty());
}

#[test]
fn a_flood_of_forward_joins_from_one_neighbour_churns_the_view_only_within_its_budget() {
    let mut node = Node::new(23).with_active(&[1, 2, 3, 4, 5]);
    let mut taken = 0;
    for joiner in 100..300 {
        let out = node.recv(1, forward_join(joiner, 0));
        if events(&out).contains(&Event::NeighborUp(id(joiner))) {
            taken += 1;
        }
        if !node.active(1) {
            // Evicted by one of its own joiners; take it back, so the rest
            // of the flood still comes from a neighbour.
            node.recv(1, neighbor(Priority::High, 1, 5000 + joiner));
        }
    }
    assert!(
        (1..=FORWARD_JOIN_BURST as usize).contains(&taken),
        "{taken} joiners taken in"
    );
    // The budget refills with time.
    node.now += FORWARD_JOIN_REFILL;
    if !node.active(1) {
        node.recv(1, neighbor(Priority::High, 1, 9999));
    }
    let out = node.recv(1, forward_join(400, 0));
    assert!(
        events(&out).contains(&Event::NeighborUp(id(400))),
        "{out:?}"
    );
}

/// A real key, its id and a signed record of it with this sequence number.
fn record(seed: u64, seq: u64) -> (NodeId, Bytes) {
    let key = SecretKey::generate(&mut ChaCha8Rng::seed_from_u64(seed));
    let record = NodeRecord {
        id: key.node_id(),
        addrs: vec![SocketAddr::from(([192, 0, 2, 7], 8000 + seq as u16))],
        seq,
        roles: vec![],
        name: None,
    };
    let signed = SignedRecord::sign(&key, record).unwrap();
    (key.node_id(), Bytes::from(signed.encode()))
}

fn seq_of(data: &Bytes) -> u64 {
    SignedRecord::decode(data).unwrap().record().seq
}

#[test]
fn where_records_are_carried_a_joiner_needs_a_valid_one_of_its_own() {
    let (_, mine) = record(100, 1);
    let mut node = Node {
        hpv: HyParView::new(id(ME), mine, Config::default()),
        rng: ChaCha8Rng::seed_from_u64(24),
        now: Instant::now(),
    }
    .with_active(&[1, 2]);
    let (joiner, good) = record(101, 1);
    let (_, someone_elses) = record(102, 1);
    let mut forged = good.to_vec();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    for data in [Bytes::new(), data(9), someone_elses, Bytes::from(forged)] {
        let out = node.recv(
            1,
            Message::ForwardJoin {
                peer: PeerInfo { id: joiner, data },
                ttl: 0,
            },
        );
        assert!(!node.hpv.active_view().contains(&joiner), "{out:?}");
        assert!(disconnects(&out).is_empty());
    }
    node.recv(
        1,
        Message::ForwardJoin {
            peer: PeerInfo {
                id: joiner,
                data: good.clone(),
            },
            ttl: 0,
        },
    );
    assert!(node.hpv.active_view().contains(&joiner));
    assert_eq!(node.hpv.peer_data(&joiner), Some(&good));
}

#[test]
fn an_older_record_never_replaces_a_newer_one() {
    let mut node = Node::new(25).with_active(&[1]);
    let (peer, newer) = record(103, 5);
    let (_, older) = record(103, 3);
    let (_, newest) = record(103, 7);
    let (_, other) = record(104, 9);
    let reply = |data: &Bytes| Message::ShuffleReply {
        nodes: vec![PeerInfo {
            id: peer,
            data: data.clone(),
        }],
    };
    node.recv(1, reply(&newer));
    assert_eq!(node.hpv.peer_data(&peer).map(seq_of), Some(5));
    // Relayed by anyone, an old record must not roll the addresses back.
    let out = node.recv(1, reply(&older));
    assert_eq!(node.hpv.peer_data(&peer).map(seq_of), Some(5));
    assert!(!out.iter().any(|o| matches!(o, OutEvent::PeerData(..))));
    // Nor may another node's record stand for it.
    node.recv(1, reply(&other));
    assert_eq!(node.hpv.peer_data(&peer), Some(&newer));
    node.recv(1, reply(&newest));
    assert_eq!(node.hpv.peer_data(&peer).map(seq_of), Some(7));
}

#[test]
fn data_is_kept_only_for_peers_in_a_view() {
    let mut node = Node::new(26).with_active(&[1, 2, 3, 4, 5]);
    let out = node.recv(50, neighbor(Priority::Low, 50, 1));
    assert!(replies(&out).contains(&(id(50), false)));
    assert!(!node.active(50) && !node.passive(50));
    assert_eq!(node.hpv.peer_data(&id(50)), None);
}

#[test]
fn where_records_are_carried_a_join_must_carry_the_senders_own() {
    let (_, mine) = record(100, 1);
    let mut node = Node {
        hpv: HyParView::new(id(ME), mine, Config::default()),
        rng: ChaCha8Rng::seed_from_u64(26),
        now: Instant::now(),
    }
    .with_active(&[1, 2]);
    let (joiner, good) = record(105, 1);
    let (_, someone_elses) = record(106, 1);
    let out = node.handle(InEvent::RecvMessage(joiner, Message::Join(someone_elses)));
    assert!(
        out.iter()
            .any(|o| matches!(o, OutEvent::Misbehaved(p, _) if *p == joiner)),
        "{out:?}"
    );
    assert!(!node.hpv.active_view().contains(&joiner));
    node.handle(InEvent::RecvMessage(joiner, Message::Join(good)));
    assert!(node.hpv.active_view().contains(&joiner));
}
