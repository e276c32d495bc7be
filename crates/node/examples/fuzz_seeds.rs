//! Writes the seed corpus of the fuzz targets in `fuzz/`: a few valid inputs
//! per target, made by the real encoders, each prefixed with the byte that
//! picks its parser where a target has several.
//!
//! `cargo run -p gossipnet-node --features fuzzing --example fuzz_seeds -- fuzz/corpus`

use std::path::Path;

use bytes::Bytes;
use gossipnet_node::chat::ChatBody;
use gossipnet_proto::direct::Sealed;
use gossipnet_proto::envelope::{Envelope, Kind, SignedEnvelope};
use gossipnet_proto::hyparview::{self, PeerInfo, Priority};
use gossipnet_proto::record::{NodeRecord, Role, SignedRecord};
use gossipnet_proto::seed::SeedMessage;
use gossipnet_proto::wire::{self, Message};
use gossipnet_proto::{plumtree, query, size, sync, SecretKey};
use rand::SeedableRng;

fn write(dir: &Path, target: &str, name: &str, bytes: &[u8]) {
    let dir = dir.join(target);
    std::fs::create_dir_all(&dir).expect("create the corpus dir");
    std::fs::write(dir.join(name), bytes).expect("write a seed");
}

fn with(which: u8, bytes: &[u8]) -> Vec<u8> {
    [&[which][..], bytes].concat()
}

fn hello(network: &str) -> Vec<u8> {
    let mut hello = b"GSPN".to_vec();
    hello.extend_from_slice(&gossipnet_proto::wire::PROTOCOL_VERSION.to_be_bytes());
    hello.extend_from_slice(&blake3::hash(network.as_bytes()).as_bytes()[..8]);
    hello.push(0);
    hello
}

fn status(code: u8, reason: &str) -> Vec<u8> {
    [&[code, reason.len() as u8][..], reason.as_bytes()].concat()
}

/// A plaintext stream of `msgs`, cut into frames of at most `cut` bytes, in
/// the layout of the `plaintext_stream` harness: a length byte per frame.
fn frames(msgs: &[&[u8]], cut: u8) -> Vec<u8> {
    let mut plain = Vec::new();
    for m in msgs {
        plain.extend_from_slice(&(m.len() as u32).to_be_bytes());
        plain.extend_from_slice(m);
    }
    let mut out = Vec::new();
    for chunk in plain.chunks(usize::from(cut)) {
        out.push(chunk.len() as u8);
        out.extend_from_slice(chunk);
    }
    out
}

fn main() {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "fuzz/corpus".into());
    let dir = Path::new(&dir);
    let key = SecretKey::from_bytes(&[3; 32]);
    let other = SecretKey::from_bytes(&[4; 32]);
    let admin = gossipnet_node::fuzzing::admin_key();
    let mut rng = rand_chacha_seed();

    let chat = ChatBody {
        name: Some("ada".into()),
        text: "hello, world".into(),
    }
    .encode();
    let envelope = |kind: Kind, body: Vec<u8>, seq: u64| {
        SignedEnvelope::sign(
            &other,
            Envelope {
                origin: other.node_id(),
                seq,
                time_ms: 1_800_000_000_000,
                kind,
                body: Bytes::from(body),
            },
        )
        .expect("sign")
        .encode()
    };
    let chat_env = envelope(Kind::Chat, chat.clone(), 1);
    let sealed = Sealed::seal(key.node_id(), &chat, &mut rng).expect("seal");
    let direct_env = envelope(Kind::Direct, sealed.encode(), 2);
    let record = SignedRecord::sign(
        &other,
        NodeRecord {
            id: other.node_id(),
            addrs: vec!["127.0.0.1:7465".parse().expect("addr")],
            seq: 5,
            roles: vec![Role::Seed],
            name: Some("seed-1".into()),
        },
    )
    .expect("sign record");
    let shutdown = gossipnet_node::admin::sign_shutdown(&admin, "fuzz", 1_800_000_000_000)
        .expect("sign shutdown");

    // link_frame
    let h = hello("fuzz");
    write(dir, "link_frame", "hello", &with(0, &h));
    write(
        dir,
        "link_frame",
        "preamble_ok",
        &with(1, &[h.clone(), status(0, "")].concat()),
    );
    write(
        dir,
        "link_frame",
        "preamble_refused",
        &with(1, &[h, status(4, "too many inbound links")].concat()),
    );
    write(
        dir,
        "link_frame",
        "status",
        &with(2, &status(2, "different network id")),
    );
    let ping = wire::encode(&Message::Ping(7));
    write(
        dir,
        "link_frame",
        "stream",
        &with(3, &frames(&[&ping, &chat_env, b""], 64)),
    );
    write(dir, "link_frame", "raw", &with(4, &[0, 20, 1, 2, 3]));

    // handshake
    let secret = [9u8; 32];
    let noise_static = [5u8; 32];
    write(
        dir,
        "handshake",
        "proof",
        &with(0, &[&noise_static[..], &[0u8; 96][..]].concat()),
    );
    write(
        dir,
        "handshake",
        "tampered",
        &with(
            1,
            &[&secret[..], &noise_static[..], &[0, 0, 1][..]].concat(),
        ),
    );
    write(
        dir,
        "handshake",
        "message",
        &with(2, &[&[0u8, 4][..], b"abcd"].concat()),
    );
    write(
        dir,
        "handshake",
        "abort",
        &with(
            2,
            &[&[0u8, 0][..], &status(6, "handshake failed to decrypt")].concat(),
        ),
    );
    let proof = [&key.node_id().as_bytes()[..], &[1u8; 64][..]].concat();
    write(dir, "handshake", "message2", &with(3, &proof));
    write(dir, "handshake", "message3", &with(4, &proof));

    // wire: one of each kind
    let peer = PeerInfo {
        id: other.node_id(),
        data: Bytes::from(record.encode()),
    };
    let messages = [
        Message::Membership(hyparview::Message::Join(Bytes::from(record.encode()))),
        Message::Membership(hyparview::Message::ForwardJoin {
            peer: peer.clone(),
            ttl: 6,
        }),
        Message::Membership(hyparview::Message::Shuffle {
            origin: peer.clone(),
            nodes: vec![peer.clone()],
            ttl: 3,
        }),
        Message::Membership(hyparview::Message::ShuffleReply {
            nodes: vec![peer.clone()],
        }),
        Message::Membership(hyparview::Message::Neighbor {
            priority: Priority::High,
            data: Bytes::new(),
            request: 1,
        }),
        Message::Membership(hyparview::Message::NeighborReply {
            accepted: true,
            data: Bytes::new(),
            request: 1,
        }),
        Message::Membership(hyparview::Message::Disconnect { alive: false }),
        Message::Broadcast(plumtree::Message::Gossip(plumtree::Gossip {
            content: chat_env.clone(),
            round: 2,
        })),
        Message::Broadcast(plumtree::Message::IHave(vec![plumtree::IHave {
            id: gossipnet_proto::MessageId::of(&chat_env),
            round: 3,
        }])),
        Message::Broadcast(plumtree::Message::Graft {
            id: Some(gossipnet_proto::MessageId::of(&chat_env)),
            round: 1,
            origin: None,
        }),
        Message::Broadcast(plumtree::Message::Graft {
            id: None,
            round: 1,
            origin: Some(plumtree::tree_of(&chat_env)),
        }),
        Message::Broadcast(plumtree::Message::Prune {
            origin: plumtree::tree_of(&chat_env),
        }),
        Message::Ping(1),
        Message::Pong(1),
        Message::Size(size::Message {
            epoch: 4,
            registers: Bytes::from(vec![1u8; size::REGISTERS]),
        }),
        Message::Seed(SeedMessage::Register(record.clone())),
        Message::Seed(SeedMessage::List(vec![record.clone()])),
        Message::Seed(SeedMessage::ListRequest { max: 8 }),
        Message::Seed(SeedMessage::DeadReport(other.node_id())),
        Message::Direct(direct_env.clone()),
        Message::Query(query::Query::Status { nonce: 9 }),
        Message::Admin(shutdown.clone()),
        Message::Sync(sync::Message::Fill(sync::Fill {
            envelopes: vec![chat_env.clone()],
            more: false,
        })),
    ];
    for (i, m) in messages.iter().enumerate() {
        let name = format!("{i:02}_{}", wire::kind(m));
        write(dir, "wire", &name, &wire::encode(m));
    }

    // envelope
    write(dir, "envelope", "chat_envelope", &with(0, &chat_env));
    write(dir, "envelope", "direct_envelope", &with(1, &direct_env));
    write(dir, "envelope", "record", &with(2, &record.encode()));
    write(dir, "envelope", "chat_body", &with(3, &chat));
    write(dir, "envelope", "sealed", &with(4, &sealed.encode()));
    write(dir, "envelope", "seal", &with(5, &chat));
    write(
        dir,
        "envelope",
        "sign",
        &with(6, &[&[0u8; 16][..], &chat].concat()),
    );
    write(dir, "envelope", "shutdown", &with(7, &shutdown));
    let body = postcard_network_id("fuzz");
    let mut fields = 5u64.to_le_bytes().to_vec();
    fields.extend_from_slice(&1_800_000_000_000u64.to_le_bytes());
    write(
        dir,
        "envelope",
        "shutdown_body",
        &with(8, &[fields, body].concat()),
    );

    // config
    write(
        dir,
        "config",
        "full.toml",
        format!(
            "network_id = \"lab\"\npsk_file = \"psk.hex\"\nadmin_keys = [\"{}\"]\n\
             seeds = [\"127.0.0.1:7465\"]\npeers = [\"[::1]:7466\"]\n\n[limits]\n\
             max_inbound = 64\nmax_inbound_per_ip = 8\nhandshake_timeout_ms = 5000\n\n\
             [protocol]\nactive_view = 5\npassive_view = 30\nping_after_ms = 1000\n\
             dead_after_ms = 5000\nshuffle_interval_ms = 30000\nsize_tick_ms = 10000\n",
            admin.node_id()
        )
        .as_bytes(),
    );
    write(dir, "config", "small.toml", b"network_id = \"home\"\n");

    // api_json
    write(dir, "api_json", "send", &with(0, br#"{"text":"hello"}"#));
    write(
        dir,
        "api_json",
        "dm",
        &with(
            1,
            format!(r#"{{"to":"{}","text":"hi"}}"#, key.node_id()).as_bytes(),
        ),
    );
    let hex: String = shutdown.iter().map(|b| format!("{b:02x}")).collect();
    write(
        dir,
        "api_json",
        "shutdown",
        &with(2, format!(r#"{{"command":"{hex}"}}"#).as_bytes()),
    );
    write(
        dir,
        "api_json",
        "control_file",
        &with(
            3,
            br#"{"api":"127.0.0.1:9000","cookie":"c0ffee","pid":42,"id":"x","name":null,"listen":"127.0.0.1:7465","role":"node"}"#,
        ),
    );
}

/// The postcard body of a shutdown command for `network_id`: its length as
/// one varint byte, then the bytes.
fn postcard_network_id(network_id: &str) -> Vec<u8> {
    [&[network_id.len() as u8][..], network_id.as_bytes()].concat()
}

fn rand_chacha_seed() -> rand::rngs::StdRng {
    rand::rngs::StdRng::seed_from_u64(1)
}
