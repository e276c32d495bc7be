//! `Node::history`: the broadcasts a node delivered, read back from its data
//! dir. Two real nodes over TCP on loopback; one speaks, the other listens
//! with a data dir, stops, and starts again on the same dir, and must still
//! have every line: what an event subscriber, which hears only what arrives
//! while it listens, cannot give.

use std::time::Duration;

use gossipnet_node::chat::ChatBody;
use gossipnet_node::{Events, EventsError, Node, NodeEvent};
use gossipnet_proto::MessageId;

use tokio::time::timeout;

/// Longest wait for a link to come up or a line to arrive on a loaded CI
/// machine; on an idle one both take milliseconds.
const DEADLINE: Duration = Duration::from_secs(30);

/// Waits until `events` has delivered a broadcast with each of `ids`.
async fn wait_delivered(events: &mut Events, ids: &[MessageId]) {
    let mut missing = ids.to_vec();
    let done = timeout(DEADLINE, async {
        while !missing.is_empty() {
            match events.recv().await {
                Ok(NodeEvent::Message(m)) => missing.retain(|id| *id != m.id),
                Ok(_) | Err(EventsError::Lagged(_)) => {}
                Err(EventsError::Closed) => panic!("events closed"),
            }
        }
    })
    .await;
    done.unwrap_or_else(|_| panic!("lines not delivered within {DEADLINE:?}"));
}

fn texts(history: &[gossipnet_node::Received]) -> Vec<String> {
    history
        .iter()
        .map(|m| ChatBody::decode(&m.body).expect("a chat line").text)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_history_survives_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let speaker = Node::builder().discovery(false).spawn().await.unwrap();
    // Subscribed before the listener starts, so its NeighborUp is not missed.
    let mut speaker_events = speaker.subscribe();
    let listener = Node::builder()
        .discovery(false)
        .data_dir(tmp.path())
        .peer(speaker.local_addr().to_string())
        .spawn()
        .await
        .unwrap();
    let mut events = listener.subscribe();
    let up = timeout(DEADLINE, async {
        while !matches!(speaker_events.recv().await, Ok(NodeEvent::NeighborUp(p)) if p == listener.id())
        {}
    })
    .await;
    up.unwrap_or_else(|_| panic!("no link within {DEADLINE:?}"));

    let lines = ["one", "two", "three"];
    let mut ids = Vec::new();
    for line in lines {
        ids.push(speaker.broadcast_text(line).await.unwrap());
    }
    wait_delivered(&mut events, &ids).await;
    let before = listener.history(10).await.unwrap();
    assert_eq!(texts(&before), lines);
    let listener_id = listener.id();
    listener.leave().await.unwrap();

    // The same data dir, so the same identity and the same history.
    let again = Node::builder()
        .discovery(false)
        .data_dir(tmp.path())
        .spawn()
        .await
        .unwrap();
    assert_eq!(again.id(), listener_id);
    let after = again.history(10).await.unwrap();
    assert_eq!(texts(&after), lines);
    let got: Vec<MessageId> = after.iter().map(|m| m.id).collect();
    assert_eq!(got, ids);
    assert!(after.iter().all(|m| m.origin == speaker.id()));
    // The newest, still oldest first; a huge limit is capped, not refused.
    assert_eq!(texts(&again.history(2).await.unwrap()), ["two", "three"]);
    assert_eq!(again.history(usize::MAX).await.unwrap().len(), 3);

    // Without a data dir there is no history to read.
    assert!(speaker.history(10).await.unwrap().is_empty());
    again.leave().await.unwrap();
    speaker.leave().await.unwrap();
    assert!(matches!(
        again.history(1).await,
        Err(gossipnet_node::NodeError::Stopped)
    ));
}
