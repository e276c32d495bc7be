//! `Node::crash`: a node that stops as if its process were killed. Two real
//! nodes over TCP on loopback; once they are neighbours one crashes, and
//! the other must see it go from the broken connection alone, while the
//! crashed node's handle reports it stopped. Beside it, the same pair with a
//! graceful leave, to tell the two apart in the event.

use std::time::Duration;

use gossipnet_node::{DownReason, Events, EventsError, Node, NodeError, NodeEvent};
use gossipnet_proto::NodeId;
use tokio::time::timeout;

/// Longest wait for a link to come up or be noticed gone on a loaded CI
/// machine; on an idle one both take milliseconds.
const DEADLINE: Duration = Duration::from_secs(30);

async fn node(peer: Option<&Node>) -> Node {
    let mut builder = Node::builder().discovery(false);
    if let Some(peer) = peer {
        builder = builder.peer(peer.local_addr().to_string());
    }
    builder.spawn().await.unwrap()
}

/// Waits for the first event that `pick` accepts.
async fn wait_for(events: &mut Events, what: &str, mut pick: impl FnMut(&NodeEvent) -> bool) {
    let found = timeout(DEADLINE, async {
        loop {
            match events.recv().await {
                Ok(ev) if pick(&ev) => return,
                Ok(_) | Err(EventsError::Lagged(_)) => {}
                Err(EventsError::Closed) => panic!("events closed"),
            }
        }
    })
    .await;
    found.unwrap_or_else(|_| panic!("no {what} within {DEADLINE:?}"));
}

fn is_up(ev: &NodeEvent, id: NodeId) -> bool {
    matches!(ev, NodeEvent::NeighborUp(p) if *p == id)
}

/// The reason of the first NeighborDown for `id`.
async fn down_reason(events: &mut Events, id: NodeId) -> DownReason {
    let mut reason = None;
    wait_for(events, "NeighborDown", |ev| match ev {
        NodeEvent::NeighborDown(p, why) if *p == id => {
            reason = Some(*why);
            true
        }
        _ => false,
    })
    .await;
    reason.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_nodes_neighbour_sees_it_go() {
    let survivor = node(None).await;
    let mut events = survivor.subscribe();
    let victim = node(Some(&survivor)).await;
    let victim_id = victim.id();
    wait_for(&mut events, "NeighborUp", |ev| is_up(ev, victim_id)).await;

    timeout(DEADLINE, victim.crash())
        .await
        .expect("crash returns once the node has stopped");
    timeout(DEADLINE, victim.stopped())
        .await
        .expect("stopped() resolves after a crash");
    assert!(matches!(victim.status().await, Err(NodeError::Stopped)));

    assert_eq!(
        down_reason(&mut events, victim_id).await,
        DownReason::Unreachable
    );
    // The survivor itself carries on, with the crashed node out of its view.
    let peers = survivor.status().await.unwrap().views.active;
    assert!(peers.iter().all(|p| p.id != victim_id), "{peers:?}");
    survivor.leave().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_neighbour_that_leaves_is_reported_as_left() {
    let stayer = node(None).await;
    let mut events = stayer.subscribe();
    let leaver = node(Some(&stayer)).await;
    let mut leaver_events = leaver.subscribe();
    let leaver_id = leaver.id();
    wait_for(&mut events, "NeighborUp", |ev| is_up(ev, leaver_id)).await;
    // The goodbye goes to the leaver's neighbours: it must count the
    // stayer as one too (a join is taken before it is answered).
    let stayer_id = stayer.id();
    let up = leaver
        .peers()
        .await
        .unwrap()
        .iter()
        .any(|p| p.id == stayer_id);
    if !up {
        wait_for(&mut leaver_events, "NeighborUp", |ev| is_up(ev, stayer_id)).await;
    }

    leaver.leave().await.unwrap();
    assert_eq!(down_reason(&mut events, leaver_id).await, DownReason::Left);
    stayer.leave().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashing_twice_or_after_leave_is_harmless() {
    let alone = node(None).await;
    timeout(DEADLINE, alone.crash()).await.unwrap();
    timeout(DEADLINE, alone.crash()).await.unwrap();
    timeout(DEADLINE, alone.leave()).await.unwrap().unwrap();

    let other = node(None).await;
    other.leave().await.unwrap();
    timeout(DEADLINE, other.crash()).await.unwrap();
}
