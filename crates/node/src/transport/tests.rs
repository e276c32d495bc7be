//! Unit tests of the link internals the module's face cannot reach: the
//! hello codec, status records, the identity proof, forged proofs on either
//! side, and readers and writers fed raw or broken frames. Whole links
//! through [`connect`], [`accept`] and [`refuse`] are tested in
//! `link_tests`.

use bytes::Bytes;
use gossipnet_proto::identity::Signature;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use super::handshake::{check_proof, proof_message, NOISE_KEY_BYTES, PROOF_BYTES};
use super::preamble::{MAX_REASON_BYTES, NETWORK_TAG_BYTES};
use super::*;

fn config(seed: u8) -> LinkConfig {
    LinkConfig::new(SecretKey::from_bytes(&[seed; 32]), "unit-test-net")
}

/// Signs a Noise static key other than the one in use, as a peer that
/// replays someone else's proof would.
fn forge(secret: &SecretKey, _noise_static: &[u8]) -> [u8; PROOF_BYTES] {
    make_proof(secret, &[7u8; NOISE_KEY_BYTES])
}

async fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (dialled, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
    (dialled.unwrap(), accepted.unwrap().0)
}

async fn linked_pair() -> (Link, Link) {
    let (a, b) = tcp_pair().await;
    let (ca, cb) = (config(1), config(2));
    let (dialler, listener) = tokio::join!(connect(a, &ca, None), accept(b, &cb));
    (dialler.unwrap(), listener.unwrap())
}

#[test]
fn hello_round_trips_and_is_checked_version_first() {
    let ours = Hello::ours(&config(1));
    assert_eq!(Hello::decode(&ours.encode()).unwrap(), ours);
    assert!(ours.check(&ours).is_ok());
    let other = Hello {
        version: 9,
        network_tag: [0; NETWORK_TAG_BYTES],
        psk: true,
    };
    assert!(matches!(
        ours.check(&other),
        Err(HandshakeError::WrongVersion {
            ours: PROTOCOL_VERSION,
            theirs: 9
        })
    ));
    let mut garbage = ours.encode();
    garbage[0] = b'X';
    assert!(matches!(
        Hello::decode(&garbage),
        Err(HandshakeError::NotGossipnet)
    ));
}

#[test]
fn long_reasons_are_cut_on_a_char_boundary() {
    let mut out = Vec::new();
    put_status(&mut out, Status::Refused, &"é".repeat(MAX_REASON_BYTES));
    assert_eq!(out[0], Status::Refused as u8);
    assert_eq!(usize::from(out[1]), out.len() - 2);
    assert!(out.len() - 2 <= MAX_REASON_BYTES);
    assert!(std::str::from_utf8(&out[2..]).is_ok());
}

#[test]
fn a_small_order_id_proves_nothing() {
    // The identity point with R = identity and s = 0 "signs" every message
    // under plain ed25519 verification; the strict check refuses it, and
    // so does the proof check, independently.
    let mut identity_point = [0u8; 32];
    identity_point[0] = 1;
    let mut signature = [0u8; 64];
    signature[..32].copy_from_slice(&identity_point);
    let noise_static = [5u8; NOISE_KEY_BYTES];
    let id = NodeId::from_bytes(identity_point);
    assert!(id
        .verify(&proof_message(&noise_static), &Signature(signature))
        .is_err());
    let proof = [identity_point.as_slice(), &signature].concat();
    assert!(matches!(
        check_proof(&proof, Some(&noise_static)),
        Err(HandshakeError::BadIdentity)
    ));
    let honest = make_proof(&SecretKey::from_bytes(&[3; 32]), &noise_static);
    assert!(check_proof(&honest, Some(&noise_static)).is_ok());
    assert!(check_proof(&honest[..95], Some(&noise_static)).is_err());
}

#[tokio::test]
async fn forged_proof_from_the_dialler_is_refused_on_both_sides() {
    let (a, b) = tcp_pair().await;
    let (ca, cb) = (config(1), config(2));
    let (dialler, listener) = tokio::join!(connect_with(a, &ca, None, forge), accept(b, &cb));
    assert!(matches!(listener, Err(HandshakeError::BadIdentity)));
    match dialler {
        Err(HandshakeError::Refused(reason)) => assert!(reason.contains("identity")),
        other => panic!("dialler got {other:?}"),
    }
}

#[tokio::test]
async fn forged_proof_from_the_listener_is_refused_on_both_sides() {
    let (a, b) = tcp_pair().await;
    let (ca, cb) = (config(1), config(2));
    let (dialler, listener) = tokio::join!(connect(a, &ca, None), accept_with(b, &cb, forge));
    assert!(matches!(dialler, Err(HandshakeError::BadIdentity)));
    match listener {
        Err(HandshakeError::Refused(reason)) => assert!(reason.contains("identity")),
        other => panic!("listener got {other:?}"),
    }
}

#[tokio::test]
async fn reader_refuses_an_announced_message_over_the_limit() {
    let (dialler, listener) = linked_pair().await;
    let (_, mut writer) = dialler.into_split();
    let (mut reader, _) = listener.into_split();
    let too_long = u32::try_from(MAX_MESSAGE_BYTES + 1).unwrap();
    // Only the header: the reader must refuse before the body arrives.
    writer.push_plain(&too_long.to_be_bytes()).unwrap();
    writer.seal_frame().unwrap();
    writer.flush_wire().await.unwrap();
    assert!(matches!(
        reader.recv().await,
        Err(LinkError::MessageTooLarge { len, .. }) if len == MAX_MESSAGE_BYTES + 1
    ));
}

#[tokio::test]
async fn reader_refuses_a_frame_that_does_not_decrypt() {
    let (dialler, listener) = linked_pair().await;
    let (_, mut writer) = dialler.into_split();
    let (mut reader, _) = listener.into_split();
    let mut forged = vec![0u8, 40];
    forged.extend_from_slice(&[0xAB; 40]);
    writer.stream.write_all(&forged).await.unwrap();
    assert!(matches!(reader.recv().await, Err(LinkError::Decrypt)));
}

#[tokio::test]
async fn reader_refuses_a_frame_shorter_than_its_tag() {
    let (dialler, listener) = linked_pair().await;
    let (_, mut writer) = dialler.into_split();
    let (mut reader, _) = listener.into_split();
    writer.stream.write_all(&[0, 3, 1, 2, 3]).await.unwrap();
    assert!(matches!(
        reader.recv().await,
        Err(LinkError::ShortFrame { len: 3 })
    ));
}

#[tokio::test]
async fn end_of_stream_inside_a_frame_is_truncation() {
    let (dialler, listener) = linked_pair().await;
    let (_, mut writer) = dialler.into_split();
    let (mut reader, _) = listener.into_split();
    writer.stream.write_all(&[0, 40, 1, 2, 3]).await.unwrap();
    writer.shutdown().await.unwrap();
    assert!(matches!(reader.recv().await, Err(LinkError::Truncated)));
}

#[tokio::test]
async fn end_of_stream_inside_a_message_is_truncation() {
    let (dialler, listener) = linked_pair().await;
    let (_, mut writer) = dialler.into_split();
    let (mut reader, _) = listener.into_split();
    // A header announcing 100 bytes, followed by only 3 of them.
    writer.push_plain(&100u32.to_be_bytes()).unwrap();
    writer.push_plain(&[1, 2, 3]).unwrap();
    writer.seal_frame().unwrap();
    writer.flush_wire().await.unwrap();
    writer.shutdown().await.unwrap();
    assert!(matches!(reader.recv().await, Err(LinkError::Truncated)));
}

#[tokio::test]
async fn a_cancelled_send_breaks_the_writer() {
    let (dialler, _listener) = linked_pair().await;
    let (_, mut writer) = dialler.into_split();
    // 32 MiB to a peer that never reads: more than loopback socket buffers
    // hold, so the send is still pending when the other branch wins.
    let batch = vec![Bytes::from(vec![0u8; MAX_MESSAGE_BYTES]); 32];
    tokio::select! {
        biased;
        _ = writer.send(&batch) => panic!("send finished without a reader"),
        () = std::future::ready(()) => {}
    }
    assert!(matches!(
        writer.send(&[Bytes::from_static(b"x")]).await,
        Err(LinkError::Broken)
    ));
}
