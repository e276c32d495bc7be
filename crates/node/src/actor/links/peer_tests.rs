//! The link table's budgets against a real node over real links: a peer
//! that stops reading is cut once its queue passes the byte budget, or once
//! a write makes no progress for the slow-link timeout, while the node goes
//! on serving an honest neighbour; and a peer that floods status queries
//! gets answers only as far as its reply budget goes; and what a peer says
//! on a link its newer one replaced is not taken. The hostile peers are
//! played by hand with the crate's own transport.

use std::time::Duration;

use bytes::Bytes;
use gossipnet_proto::envelope::{Kind, MAX_BODY_BYTES};
use gossipnet_proto::query::Query;
use gossipnet_proto::record::{NodeRecord, SignedRecord};
use gossipnet_proto::state::LivenessConfig;
use gossipnet_proto::wire::{self, Message};
use gossipnet_proto::{hyparview, NodeId, SecretKey};
use tokio::net::TcpSocket;
use tokio::time::timeout;

use crate::config::DEFAULT_LINK_QUEUE_BYTES;
use crate::transport::{connect, LinkConfig, LinkReader, LinkWriter};
use crate::{Events, EventsError, Limits, Node, NodeEvent, DEFAULT_NETWORK_ID};

/// Longest wait for anything on a loaded machine.
const DEADLINE: Duration = Duration::from_secs(60);

/// The hostile peer's receive buffer, kept small so the kernel takes little
/// of what the node writes and the node's own queue is what fills.
const HOSTILE_RCVBUF: u32 = 64 << 10;

/// What the kernel may hold of a link's unread bytes beyond the node's
/// queue: the node's send buffer grows to `tcp_wmem`'s 4 MiB maximum, the
/// hostile's receive buffer is small; doubled, for other kernels' defaults.
const SOCKET_SLACK: usize = 16 << 20;

/// Broadcasts of the largest body that make up far more than the byte
/// budget and the socket buffers together, yet fewer messages than the old
/// message-count queue held, so only a byte budget cuts within them.
const MAX_BROADCASTS: usize = 700;

/// A protocol whose liveness check never fires within a test: a stalled
/// link must be cut by the link table, not by the neighbour's silence.
fn patient() -> gossipnet_proto::Config {
    gossipnet_proto::Config {
        liveness: LivenessConfig {
            tick: Duration::from_secs(5),
            ping_after: Duration::from_secs(3600),
            dead_after: Duration::from_secs(3600),
        },
        ..gossipnet_proto::Config::default()
    }
}

/// A raw peer linked to `node` over a socket with a small receive buffer.
async fn hostile(node: &Node, seed: u8) -> (SecretKey, LinkReader, LinkWriter) {
    let key = SecretKey::from_bytes(&[seed; 32]);
    let cfg = LinkConfig::new(key.clone(), DEFAULT_NETWORK_ID);
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(HOSTILE_RCVBUF).unwrap();
    let stream = socket.connect(node.local_addr()).await.unwrap();
    let link = connect(stream, &cfg, Some(node.id())).await.unwrap();
    let (reader, writer) = link.into_split();
    (key, reader, writer)
}

async fn send(writer: &mut LinkWriter, message: Message) {
    writer
        .send(&[Bytes::from(wire::encode(&message))])
        .await
        .unwrap();
}

/// Asks to be the node's neighbour.
async fn join(key: &SecretKey, writer: &mut LinkWriter) {
    let record = NodeRecord {
        id: key.node_id(),
        addrs: Vec::new(),
        seq: 1,
        roles: Vec::new(),
        name: None,
    };
    let data = Bytes::from(SignedRecord::sign(key, record).unwrap().encode());
    send(writer, Message::Membership(hyparview::Message::Join(data))).await;
}

/// Joins and waits until the node lists the peer as its neighbour.
async fn join_as_neighbour(
    key: &SecretKey,
    writer: &mut LinkWriter,
    events: &mut Events,
    what: &str,
) {
    join(key, writer).await;
    let peer = key.node_id();
    wait_event(
        events,
        what,
        |e| matches!(e, NodeEvent::NeighborUp(p) if *p == peer),
    )
    .await;
}

async fn wait_event(events: &mut Events, what: &str, want: impl Fn(&NodeEvent) -> bool) {
    let got = timeout(DEADLINE, async {
        loop {
            if let Ok(ev) = events.recv().await {
                if want(&ev) {
                    return;
                }
            }
        }
    })
    .await;
    assert!(got.is_ok(), "{what} never came");
}

/// A node, an honest neighbour of it, and the events of both.
async fn node_and_neighbour(limits: Limits) -> (Node, Events, Node, Events) {
    let node = Node::builder()
        .discovery(false)
        .limits(limits)
        .protocol(patient())
        .spawn()
        .await
        .unwrap();
    let mut events = node.subscribe();
    let honest = Node::builder()
        .discovery(false)
        .peer(node.local_addr().to_string())
        .spawn()
        .await
        .unwrap();
    let honest_events = honest.subscribe();
    let id = honest.id();
    wait_event(
        &mut events,
        "the honest neighbour",
        |e| matches!(e, NodeEvent::NeighborUp(p) if *p == id),
    )
    .await;
    (node, events, honest, honest_events)
}

/// Whether `peer` went down among the events waiting (taken without
/// waiting: a zero timeout still polls the receive once).
async fn went_down(events: &mut Events, peer: NodeId) -> bool {
    let mut down = false;
    loop {
        match timeout(Duration::ZERO, events.recv()).await {
            Ok(Ok(ev)) => down |= matches!(ev, NodeEvent::NeighborDown(p, _) if p == peer),
            Ok(Err(EventsError::Lagged(_))) => {}
            Ok(Err(EventsError::Closed)) | Err(_) => return down,
        }
    }
}

/// Broadcasts the largest bodies from `node` until `peer` goes down or
/// [`MAX_BROADCASTS`] went out, each heard by the honest neighbour before
/// the next: the node serves its API and its other link all along. The
/// broadcasts sent when `peer` went down, if it did.
async fn flood(
    node: &Node,
    events: &mut Events,
    honest_events: &mut Events,
    peer: NodeId,
) -> Option<usize> {
    let body = Bytes::from(vec![b'x'; MAX_BODY_BYTES]);
    for sent in 1..=MAX_BROADCASTS {
        let id = node.broadcast(Kind::Chat, body.clone()).await.unwrap();
        wait_event(
            honest_events,
            "a broadcast at the honest neighbour",
            |e| matches!(e, NodeEvent::Message(m) if m.id == id),
        )
        .await;
        if went_down(events, peer).await {
            eprintln!("the stalled peer went down after {sent} broadcasts");
            return Some(sent);
        }
    }
    None
}

/// After the stalled link is gone: the node still answers its API and
/// still reaches the honest neighbour, and no longer lists `peer`.
async fn still_serving(node: &Node, honest_events: &mut Events, peer: NodeId) {
    let id = node.broadcast_text("still here").await.unwrap();
    wait_event(
        honest_events,
        "a broadcast after the cut",
        |e| matches!(e, NodeEvent::Message(m) if m.id == id),
    )
    .await;
    let status = node.status().await.unwrap();
    assert!(status.views.active.iter().all(|p| p.id != peer));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_never_reads_is_cut_at_its_byte_budget_and_others_are_served() {
    let (node, mut events, _honest, mut honest_events) =
        node_and_neighbour(Limits::default()).await;
    // Joins, then never reads a byte; its reader is held so the socket
    // stays open.
    let (key, _reader, mut writer) = hostile(&node, 21).await;
    let peer = key.node_id();
    join_as_neighbour(
        &key,
        &mut writer,
        &mut events,
        "the stalled peer as a neighbour",
    )
    .await;

    let cut_at = flood(&node, &mut events, &mut honest_events, peer).await;
    let Some(sent) = cut_at else {
        panic!("the stalled link was never cut: {MAX_BROADCASTS} broadcasts queued for it");
    };
    let bytes = sent * MAX_BODY_BYTES;
    assert!(
        bytes <= DEFAULT_LINK_QUEUE_BYTES + SOCKET_SLACK,
        "cut only after {bytes} bytes sent to it"
    );
    still_serving(&node, &mut honest_events, peer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_makes_no_progress_closes_the_link() {
    // A budget no test reaches: only the write deadline can cut the link.
    let limits = Limits {
        link_queue_bytes: 1 << 30,
        slow_link_timeout: Duration::from_millis(500),
        ..Limits::default()
    };
    let (node, mut events, _honest, mut honest_events) = node_and_neighbour(limits).await;
    let (key, _reader, mut writer) = hostile(&node, 22).await;
    let peer = key.node_id();
    join_as_neighbour(
        &key,
        &mut writer,
        &mut events,
        "the stalled peer as a neighbour",
    )
    .await;
    // Far more than the socket buffers hold, so the writer is stuck; the
    // link may go down before the flood ends.
    if flood(&node, &mut events, &mut honest_events, peer)
        .await
        .is_none()
    {
        wait_event(
            &mut events,
            "the stalled link's close",
            |e| matches!(e, NodeEvent::NeighborDown(p, _) if *p == peer),
        )
        .await;
    }
    still_serving(&node, &mut honest_events, peer).await;
}

/// Sends `queries` status queries and then a ping, and reads until the
/// pong: the node handles one link's messages in order, so every answer it
/// gives has come by then. The answers' count and bytes.
async fn ask(reader: &mut LinkReader, writer: &mut LinkWriter, queries: u64) -> (usize, usize) {
    let mut batch: Vec<Bytes> = (0..queries)
        .map(|nonce| Bytes::from(wire::encode(&Message::Query(Query::Status { nonce }))))
        .collect();
    batch.push(Bytes::from(wire::encode(&Message::Ping(u64::MAX))));
    writer.send(&batch).await.unwrap();
    let answers = timeout(DEADLINE, async {
        let (mut count, mut bytes) = (0, 0);
        loop {
            let msg = reader.recv().await.unwrap().expect("link open");
            match wire::decode(&msg).unwrap() {
                Message::Query(Query::StatusReply { .. }) => {
                    count += 1;
                    bytes += msg.len();
                }
                Message::Pong(u64::MAX) => return (count, bytes),
                _ => {}
            }
        }
    })
    .await;
    answers.expect("no pong from the node")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_queries_are_answered_only_within_the_reply_budget() {
    // No refill: what the bucket holds at the start is all a link gets.
    const BURST: usize = 16 << 10;
    const QUERIES: u64 = 200;
    let limits = Limits {
        reply_burst_bytes: BURST,
        reply_bytes_per_sec: 0,
        ..Limits::default()
    };
    let node = Node::builder()
        .discovery(false)
        .limits(limits)
        .spawn()
        .await
        .unwrap();
    let (_, mut reader, mut writer) = hostile(&node, 23).await;
    let (count, bytes) = ask(&mut reader, &mut writer, QUERIES).await;
    assert!(count >= 1, "not even the first query was answered");
    assert!(
        bytes <= BURST && (count as u64) < QUERIES,
        "{count} answers, {bytes} bytes, for {QUERIES} queries"
    );
    // The budget is the link's: another peer is answered.
    let (_, mut reader, mut writer) = hostile(&node, 24).await;
    let (count, _) = ask(&mut reader, &mut writer, 1).await;
    assert_eq!(count, 1, "another link's query went unanswered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_peer_says_on_a_replaced_link_is_not_taken() {
    let node = Node::builder()
        .discovery(false)
        .protocol(patient())
        .spawn()
        .await
        .unwrap();
    let mut events = node.subscribe();
    let (key, mut old_reader, mut old_writer) = hostile(&node, 31).await;
    let peer = key.node_id();
    join_as_neighbour(
        &key,
        &mut old_writer,
        &mut events,
        "the peer as a neighbour",
    )
    .await;
    // The same peer dials again: the newer link replaces the older, which
    // the node closes (its end of the old link then reads EOF).
    let (_, mut reader, mut writer) = hostile(&node, 31).await;
    let old_closed = timeout(DEADLINE, async {
        while let Ok(Some(_)) = old_reader.recv().await {}
    })
    .await;
    assert!(old_closed.is_ok(), "the replaced link was never closed");
    // A disconnect comes down the old link while the node still reads it
    // (its reader lingers for last words). Taken, it would drop the peer
    // and close the new link, which the peer never meant to leave.
    send(
        &mut old_writer,
        Message::Membership(hyparview::Message::Disconnect { alive: true }),
    )
    .await;
    // Once the old link is gone at the node, what it read there has been
    // handed to the actor ahead of anything sent on the new link after.
    let gone = timeout(DEADLINE, async {
        let ping = Bytes::from(wire::encode(&Message::Ping(1)));
        while old_writer.send(std::slice::from_ref(&ping)).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(gone.is_ok(), "the node never let go of the old link");
    let (answers, _) = ask(&mut reader, &mut writer, 1).await;
    assert_eq!(answers, 1, "the new link's query went unanswered");
    assert!(
        !went_down(&mut events, peer).await,
        "a disconnect from the replaced link dropped the peer"
    );
}
