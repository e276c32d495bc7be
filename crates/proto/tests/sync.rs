//! Anti-entropy through the router: two `State`s wired back to back, one
//! holding messages the other never heard, linked by a join. The newcomer
//! must end with every one, once, in each origin's order, marked caught up;
//! and a node given its history back must deliver none of it again.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use gossipnet_proto::envelope::{Envelope, Kind, SignedEnvelope};
use gossipnet_proto::plumtree::Delivered;
use gossipnet_proto::{
    sync, Command, Config, Event, InEvent, NodeId, OutEvent, SecretKey, State, Timer,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

const NOW_MS: u64 = 1_700_000_000_000;

fn node(key: &SecretKey) -> State<ChaCha8Rng> {
    let mut s = State::new(
        key.node_id(),
        Bytes::from_static(b"me"),
        Config::default(),
        ChaCha8Rng::seed_from_u64(7),
    );
    s.set_wall_clock(NOW_MS);
    s
}

fn envelope(key: &SecretKey, seq: u64) -> Bytes {
    let env = Envelope {
        origin: key.node_id(),
        seq,
        time_ms: NOW_MS,
        kind: Kind::Chat,
        body: Bytes::from(format!("line {seq}")),
    };
    SignedEnvelope::sign(key, env).unwrap().encode()
}

/// Runs the two nodes until nothing is in flight; timers of anti-entropy
/// rounds fire at once, others never. Returns what each delivered.
fn run(
    nodes: &mut [(NodeId, State<ChaCha8Rng>); 2],
    first: Vec<(usize, InEvent)>,
) -> [Vec<Delivered>; 2] {
    let now = Instant::now();
    let mut queue: VecDeque<(usize, InEvent)> = first.into();
    let mut delivered = [Vec::new(), Vec::new()];
    let mut steps = 0;
    while let Some((at, input)) = queue.pop_front() {
        steps += 1;
        assert!(steps < 100_000, "quiet in the end");
        let from = nodes[at].0;
        let outs: Vec<OutEvent> = nodes[at].1.handle(input, now).collect();
        for out in outs {
            match out {
                OutEvent::SendMessage(to, m) => {
                    let other = usize::from(to == nodes[1].0);
                    assert_eq!(nodes[other].0, to);
                    queue.push_back((other, InEvent::RecvMessage(from, m)));
                }
                OutEvent::ScheduleTimer(_, t @ Timer::Sync(sync::Timer::Round(_))) => {
                    queue.push_back((at, InEvent::TimerExpired(t)));
                }
                OutEvent::EmitEvent(Event::Received(d)) => delivered[at].push(d),
                OutEvent::EmitEvent(Event::Misbehaved { reason, .. }) => {
                    panic!("honest nodes misbehaved: {reason}")
                }
                _ => {}
            }
        }
    }
    let _ = Duration::ZERO;
    delivered
}

#[test]
fn a_newcomer_catches_up_everything_once_in_order() {
    let (ka, kb) = (
        SecretKey::from_bytes(&[1; 32]),
        SecretKey::from_bytes(&[2; 32]),
    );
    let speaker = SecretKey::from_bytes(&[3; 32]);
    let mut a = node(&ka);
    let stored: Vec<Bytes> = (1..=200).map(|s| envelope(&speaker, s)).collect();
    assert_eq!(a.restore(stored.clone()), 200);
    let mut nodes = [(ka.node_id(), a), (kb.node_id(), node(&kb))];
    let delivered = run(
        &mut nodes,
        vec![(1, InEvent::Command(Command::Join(vec![ka.node_id()])))],
    );
    assert!(delivered[0].is_empty());
    let got: Vec<Bytes> = delivered[1].iter().map(|d| d.content.clone()).collect();
    assert_eq!(got, stored, "every one, once, in order");
    assert!(delivered[1].iter().all(|d| d.caught_up));
}

#[test]
fn a_restored_history_is_not_delivered_again() {
    let (ka, kb) = (
        SecretKey::from_bytes(&[1; 32]),
        SecretKey::from_bytes(&[2; 32]),
    );
    let speaker = SecretKey::from_bytes(&[3; 32]);
    let stored: Vec<Bytes> = (1..=50).map(|s| envelope(&speaker, s)).collect();
    let mut a = node(&ka);
    a.restore(stored.clone());
    let mut b = node(&kb);
    b.restore(stored[..40].to_vec());
    let mut nodes = [(ka.node_id(), a), (kb.node_id(), b)];
    let delivered = run(
        &mut nodes,
        vec![(1, InEvent::Command(Command::Join(vec![ka.node_id()])))],
    );
    let got: Vec<Bytes> = delivered[1].iter().map(|d| d.content.clone()).collect();
    assert_eq!(got, stored[40..].to_vec(), "only what it lacked");
    // A live copy of one it holds is a duplicate, not a delivery.
    let gossip = gossipnet_proto::wire::Message::Broadcast(
        gossipnet_proto::plumtree::Message::Gossip(gossipnet_proto::plumtree::Gossip {
            content: stored[3].clone(),
            round: 1,
        }),
    );
    let again = run(
        &mut nodes,
        vec![(1, InEvent::RecvMessage(ka.node_id(), gossip))],
    );
    assert!(again[1].is_empty());
}
