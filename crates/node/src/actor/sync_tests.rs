//! Hostile catch-up data against a real node over real links: a peer that
//! sends a fill nobody asked for, one that answers a summary with a forged
//! envelope, and one that sends a summary over its bounds each lose their
//! link, and the node goes on serving an honest neighbour. The hostile
//! peers are played by hand with the crate's own transport.

use std::time::Duration;

use bytes::Bytes;
use gossipnet_proto::envelope::{Envelope, Kind, SignedEnvelope};
use gossipnet_proto::history::{OriginRanges, Summary, FIRST_ID, LAST_ID, MAX_SUMMARY_ORIGINS};
use gossipnet_proto::record::{NodeRecord, SignedRecord};
use gossipnet_proto::sync::{self, Fill};
use gossipnet_proto::wire::{self, Message};
use gossipnet_proto::{hyparview, NodeId, SecretKey};
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::transport::{connect, LinkConfig, LinkReader, LinkWriter};
use crate::{Node, NodeEvent, DEFAULT_NETWORK_ID};

/// Longest wait for anything on a loaded machine.
const DEADLINE: Duration = Duration::from_secs(30);

async fn hostile(node: &Node, seed: u8) -> (SecretKey, LinkReader, LinkWriter) {
    let key = SecretKey::from_bytes(&[seed; 32]);
    let cfg = LinkConfig::new(key.clone(), DEFAULT_NETWORK_ID);
    let stream = TcpStream::connect(node.local_addr()).await.unwrap();
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

/// Reads until the node closes the link; panics if it does not.
async fn wait_closed(reader: &mut LinkReader) {
    let closed = timeout(DEADLINE, async {
        while let Ok(Some(_)) = reader.recv().await {}
    })
    .await;
    assert!(closed.is_ok(), "the node kept the link open");
}

/// Reads until the node sends a summary.
async fn wait_summary(reader: &mut LinkReader) {
    let got = timeout(DEADLINE, async {
        loop {
            let bytes = reader.recv().await.unwrap().expect("link open");
            if let Ok(Message::Sync(sync::Message::Summary(_))) = wire::decode(&bytes) {
                return;
            }
        }
    })
    .await;
    assert!(got.is_ok(), "no summary from the node");
}

fn forged(key: &SecretKey) -> Bytes {
    let env = Envelope {
        origin: key.node_id(),
        seq: 1,
        time_ms: crate::time::unix_ms(),
        kind: Kind::Chat,
        body: Bytes::from_static(b"genuine"),
    };
    let good = SignedEnvelope::sign(key, env).unwrap().encode().to_vec();
    // Same length, other body: the signature no longer covers it.
    let text = good.windows(7).position(|w| w == b"genuine").unwrap();
    let mut bad = good;
    bad[text..text + 7].copy_from_slice(b"forgery");
    Bytes::from(bad)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_catch_up_data_closes_the_link_and_the_node_serves_others() {
    let node = Node::builder().discovery(false).spawn().await.unwrap();
    let mut events = node.subscribe();
    let honest = Node::builder()
        .discovery(false)
        .peer(node.local_addr().to_string())
        .spawn()
        .await
        .unwrap();
    let up = timeout(DEADLINE, async {
        while !matches!(events.recv().await, Ok(NodeEvent::NeighborUp(p)) if p == honest.id()) {}
    })
    .await;
    assert!(up.is_ok(), "the honest neighbour never came up");

    // A fill nobody asked for.
    let (_, mut reader, mut writer) = hostile(&node, 11).await;
    let fill = Fill {
        envelopes: Vec::new(),
        more: true,
    };
    send(&mut writer, Message::Sync(sync::Message::Fill(fill))).await;
    wait_closed(&mut reader).await;

    // A neighbour that answers the node's summary with a forged envelope.
    let (key, mut reader, mut writer) = hostile(&node, 12).await;
    let record = NodeRecord {
        id: key.node_id(),
        addrs: Vec::new(),
        seq: 1,
        roles: Vec::new(),
        name: None,
    };
    let data = Bytes::from(SignedRecord::sign(&key, record).unwrap().encode());
    send(
        &mut writer,
        Message::Membership(hyparview::Message::Join(data)),
    )
    .await;
    wait_summary(&mut reader).await;
    let fill = Fill {
        envelopes: vec![forged(&key)],
        more: false,
    };
    send(&mut writer, Message::Sync(sync::Message::Fill(fill))).await;
    wait_closed(&mut reader).await;

    // A summary over its bounds.
    let (_, mut reader, mut writer) = hostile(&node, 13).await;
    let origins = (0..=MAX_SUMMARY_ORIGINS as u32)
        .map(|i| {
            let mut b = [0u8; 32];
            b[..4].copy_from_slice(&i.to_be_bytes());
            OriginRanges {
                origin: NodeId::from_bytes(b),
                from: 0,
                ranges: vec![(1, 1)],
            }
        })
        .collect();
    let summary = Summary {
        lo: FIRST_ID,
        hi: LAST_ID,
        origins,
    };
    send(&mut writer, Message::Sync(sync::Message::Summary(summary))).await;
    wait_closed(&mut reader).await;

    // The honest neighbour is still served, and nothing forged was taken.
    let id = honest.broadcast_text("still here").await.unwrap();
    let heard = timeout(DEADLINE, async {
        loop {
            if let Ok(NodeEvent::Message(m)) = events.recv().await {
                assert_ne!(m.body, Bytes::from_static(b"forgery"));
                if m.id == id {
                    return;
                }
            }
        }
    })
    .await;
    assert!(heard.is_ok(), "the honest neighbour's message never came");
    assert!(node
        .history(10)
        .await
        .unwrap()
        .iter()
        .all(|m| m.body != *"forgery"));
}
