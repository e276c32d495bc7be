//! Admission under abuse, against a real node over real loopback TCP: one
//! address holding connections half-open leaves room for others, a burst
//! of connections costs a bounded number of tasks, a peer that keeps
//! misbehaving is refused as "discouraged" while others are served, and a
//! seed does not probe (and so cannot be tricked into dropping) a node it
//! holds a link to. Peers are played by hand with the crate's transport;
//! "another host" is 127.0.0.2, which Linux routes over loopback.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use gossipnet_proto::record::{NodeRecord, SignedRecord};
use gossipnet_proto::seed::SeedMessage;
use gossipnet_proto::sync::{self, Fill};
use gossipnet_proto::wire::{self, Message};
use gossipnet_proto::{NodeId, SecretKey};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::time::timeout;

use super::{MAX_HANDSHAKES_PER_IP, MAX_REFUSALS};
use crate::transport::{connect, HandshakeError, Link, LinkConfig, LinkReader, LinkWriter};
use crate::{Node, DEFAULT_NETWORK_ID};

/// Longest wait for anything on a loaded machine.
const DEADLINE: Duration = Duration::from_secs(30);

fn other_host() -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)), 0)
}

async fn tcp_from(from: SocketAddr, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(from).unwrap();
    socket.connect(to).await.unwrap()
}

/// A handshake as `key` from `from` to `node`.
async fn link_from(node: &Node, key: &SecretKey, from: SocketAddr) -> Result<Link, HandshakeError> {
    let cfg = LinkConfig::new(key.clone(), DEFAULT_NETWORK_ID);
    let stream = tcp_from(from, node.local_addr()).await;
    timeout(DEADLINE, connect(stream, &cfg, Some(node.id())))
        .await
        .expect("handshake hung")
}

fn key(n: u8) -> SecretKey {
    SecretKey::from_bytes(&[n; 32])
}

async fn send(writer: &mut LinkWriter, message: Message) {
    writer
        .send(&[Bytes::from(wire::encode(&message))])
        .await
        .unwrap();
}

async fn wait_closed(reader: &mut LinkReader) {
    let closed = timeout(DEADLINE, async {
        while let Ok(Some(_)) = reader.recv().await {}
    })
    .await;
    assert!(closed.is_ok(), "the node kept the link open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_holding_handshakes_half_open_leaves_room_for_another() {
    let node = Node::builder().discovery(false).spawn().await.unwrap();
    // Every handshake slot's worth, and more, opened and left silent.
    let mut silent = Vec::new();
    for _ in 0..MAX_HANDSHAKES_PER_IP + 60 {
        silent.push(TcpStream::connect(node.local_addr()).await.unwrap());
    }
    // Accepted in order, so the node has seen them all before this one.
    let link = link_from(&node, &key(7), other_host()).await;
    assert!(link.is_ok(), "another host was kept out: {:?}", link.err());
    drop(silent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_connections_costs_bounded_tasks_and_the_node_serves_on() {
    const BURST: usize = 2000;
    let node = Node::builder().discovery(false).spawn().await.unwrap();
    let addr = node.local_addr();
    let metrics = tokio::runtime::Handle::current().metrics();
    let before = metrics.num_alive_tasks();
    // The clients run on a runtime of their own, so this runtime's task
    // count is the node's alone.
    let (done_tx, done_rx) = std::sync::mpsc::sync_channel(1);
    let clients = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let mut streams = Vec::with_capacity(BURST);
            for _ in 0..BURST {
                streams.push(TcpStream::connect(addr).await.unwrap());
            }
            // Those the node hangs up on read end of stream at once; the
            // few it answers or shakes hands with stay open.
            let mut closed = 0;
            for s in &mut streams {
                let mut byte = [0u8; 1];
                if let Ok(Ok(0)) = timeout(Duration::from_millis(1), s.read(&mut byte)).await {
                    closed += 1;
                }
            }
            let _ = done_tx.send(closed);
            // Held until the test has looked.
            std::thread::park();
            drop(streams);
        });
    });
    let mut most = 0;
    let closed = loop {
        most = most.max(metrics.num_alive_tasks());
        match done_rx.try_recv() {
            Ok(closed) => break closed,
            Err(_) => tokio::task::yield_now().await,
        }
    };
    most = most.max(metrics.num_alive_tasks());
    let bound = before + MAX_REFUSALS + 32 + 16;
    assert!(
        most <= bound,
        "{most} tasks alive during the burst (at most {bound} expected)"
    );
    assert!(closed > 0, "no connection over the limits was closed");
    let link = link_from(&node, &key(8), other_host()).await;
    assert!(link.is_ok(), "the node stopped serving: {:?}", link.err());
    clients.thread().unpark();
    clients.join().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_keeps_misbehaving_is_refused_as_discouraged() {
    let node = Node::builder().discovery(false).spawn().await.unwrap();
    let hostile = key(11);
    let loopback = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0);
    let mut refused = None;
    for attempt in 0..10 {
        match link_from(&node, &hostile, loopback).await {
            Ok(link) => {
                let (mut reader, mut writer) = link.into_split();
                // A fill nobody asked for: protocol misbehaviour.
                let fill = Fill {
                    envelopes: Vec::new(),
                    more: true,
                };
                send(&mut writer, Message::Sync(sync::Message::Fill(fill))).await;
                wait_closed(&mut reader).await;
            }
            Err(e) => {
                refused = Some((attempt, e));
                break;
            }
        }
    }
    let (attempt, e) = refused.expect("the misbehaving peer was never refused");
    assert!(attempt >= 2, "refused after {attempt} offences");
    assert!(
        matches!(&e, HandshakeError::Refused(reason) if reason.contains("discouraged")),
        "refused, but not as discouraged: {e}"
    );
    // Others from the same address are served.
    let link = link_from(&node, &key(12), loopback).await;
    assert!(link.is_ok(), "an honest peer was refused: {:?}", link.err());
}

fn record(key: &SecretKey, addrs: Vec<SocketAddr>) -> SignedRecord {
    let record = NodeRecord {
        id: key.node_id(),
        addrs,
        seq: 1,
        roles: Vec::new(),
        name: None,
    };
    SignedRecord::sign(key, record).unwrap()
}

/// Registers `key` with the seed over `link`, waiting for the answer.
async fn register(reader: &mut LinkReader, writer: &mut LinkWriter, record: SignedRecord) {
    send(writer, Message::Seed(SeedMessage::Register(record))).await;
    next_seed_message(reader, |m| matches!(m, SeedMessage::Registered { .. })).await;
}

async fn next_seed_message(
    reader: &mut LinkReader,
    want: impl Fn(&SeedMessage) -> bool,
) -> SeedMessage {
    timeout(DEADLINE, async {
        loop {
            let bytes = reader.recv().await.unwrap().expect("link open");
            if let Ok(Message::Seed(m)) = wire::decode(&bytes) {
                if want(&m) {
                    return m;
                }
            }
        }
    })
    .await
    .expect("no answer from the seed")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seed_does_not_probe_a_reported_node_it_holds_a_link_to() {
    let seed = Node::builder()
        .discovery(false)
        .role(crate::Role::Seed)
        .spawn()
        .await
        .unwrap();
    let loopback = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0);
    // The reported node lists an address that takes connections and drops
    // them: a probe there would fail, and so would remove it.
    let trap = TcpListener::bind(loopback).await.unwrap();
    let alive = key(21);
    let (mut a_reader, mut a_writer) = link_from(&seed, &alive, loopback)
        .await
        .unwrap()
        .into_split();
    register(
        &mut a_reader,
        &mut a_writer,
        record(&alive, vec![trap.local_addr().unwrap()]),
    )
    .await;

    let liar = key(22);
    let (mut reader, mut writer) = link_from(&seed, &liar, loopback)
        .await
        .unwrap()
        .into_split();
    register(&mut reader, &mut writer, record(&liar, Vec::new())).await;
    send(
        &mut writer,
        Message::Seed(SeedMessage::DeadReport(alive.node_id())),
    )
    .await;
    // Answered after the report, on the same link, so the seed has acted
    // on the report by then.
    send(
        &mut writer,
        Message::Seed(SeedMessage::ListRequest { max: 0 }),
    )
    .await;
    let list = next_seed_message(&mut reader, |m| matches!(m, SeedMessage::List(_))).await;
    let SeedMessage::List(list) = list else {
        unreachable!()
    };
    let ids: Vec<NodeId> = list.iter().map(SignedRecord::id).collect();
    assert!(
        ids.contains(&alive.node_id()),
        "the linked node was dropped"
    );
    // A probe would have been dialled when the report was read; the seed
    // holds a link to the node, so none may come. Nothing to wait for but
    // a probe that should not exist: a short look is enough.
    let probe = timeout(Duration::from_secs(2), trap.accept()).await;
    assert!(probe.is_err(), "the seed probed a node it holds a link to");
    drop((a_reader, a_writer));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seed_probes_a_reported_node_whose_link_ends_just_after_the_report() {
    let seed = Node::builder()
        .discovery(false)
        .role(crate::Role::Seed)
        .spawn()
        .await
        .unwrap();
    let loopback = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0);
    // Takes the probe's connection and drops it: the probe fails.
    let trap = TcpListener::bind(loopback).await.unwrap();
    let dying = key(23);
    let (mut d_reader, mut d_writer) = link_from(&seed, &dying, loopback)
        .await
        .unwrap()
        .into_split();
    register(
        &mut d_reader,
        &mut d_writer,
        record(&dying, vec![trap.local_addr().unwrap()]),
    )
    .await;
    let reporter = key(24);
    let (mut reader, mut writer) = link_from(&seed, &reporter, loopback)
        .await
        .unwrap()
        .into_split();
    register(&mut reader, &mut writer, record(&reporter, Vec::new())).await;
    // The report comes before the seed's own link to the node ends, as
    // when a killed node's neighbours are quicker than the seed.
    send(
        &mut writer,
        Message::Seed(SeedMessage::DeadReport(dying.node_id())),
    )
    .await;
    send(
        &mut writer,
        Message::Seed(SeedMessage::ListRequest { max: 0 }),
    )
    .await;
    next_seed_message(&mut reader, |m| matches!(m, SeedMessage::List(_))).await;
    drop((d_reader, d_writer));
    let probe = timeout(DEADLINE, trap.accept()).await;
    assert!(
        probe.is_ok(),
        "the seed never probed a node whose link ended"
    );
    drop(probe);
    // The probe failed: the node goes from the list.
    let gone = timeout(DEADLINE, async {
        loop {
            send(
                &mut writer,
                Message::Seed(SeedMessage::ListRequest { max: 0 }),
            )
            .await;
            let list = next_seed_message(&mut reader, |m| matches!(m, SeedMessage::List(_))).await;
            let SeedMessage::List(list) = list else {
                unreachable!()
            };
            if !list.iter().any(|r| r.id() == dying.node_id()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    assert!(gone.is_ok(), "the dead node stayed listed");
}
