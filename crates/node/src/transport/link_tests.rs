//! Real-socket tests of whole links through the module's face ([`connect`],
//! [`accept`], [`refuse`] and the halves of a [`Link`]): two ends over TCP on
//! 127.0.0.1 with ephemeral ports, each refusal checked on both sides, and
//! the framing checked with messages larger than a frame and batches of many
//! small ones. Nothing here waits on a sleep; the only clock is the handshake
//! timeout.

use std::time::Duration;

use bytes::Bytes;
use gossipnet_proto::identity::SecretKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::{
    accept, connect, refuse, HandshakeError, Link, LinkConfig, LinkError, LinkReader, LinkWriter,
    MAX_MESSAGE_BYTES, PROTOCOL_VERSION,
};

/// Long enough for any loaded CI machine to finish a loopback handshake, and
/// short enough that the timeout tests end quickly.
const SHORT_TIMEOUT: Duration = Duration::from_millis(300);

fn config(seed: u8, network: &str) -> LinkConfig {
    LinkConfig::new(SecretKey::from_bytes(&[seed; 32]), network)
}

fn private(seed: u8, network: &str, psk: [u8; 32]) -> LinkConfig {
    LinkConfig {
        psk: Some(psk),
        ..config(seed, network)
    }
}

/// A hello as the module docs lay it out, for peers we play by hand.
fn raw_hello(version: u16, network: &str, psk: bool) -> Vec<u8> {
    let mut hello = b"GSPN".to_vec();
    hello.extend_from_slice(&version.to_be_bytes());
    hello.extend_from_slice(&blake3::hash(network.as_bytes()).as_bytes()[..8]);
    hello.push(u8::from(psk));
    hello
}

async fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (dialled, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
    (dialled.unwrap(), accepted.unwrap().0)
}

/// Runs `connect` with `dialler` against `accept` with `listener`.
async fn handshake(
    dialler: &LinkConfig,
    listener: &LinkConfig,
) -> (Result<Link, HandshakeError>, Result<Link, HandshakeError>) {
    let (a, b) = tcp_pair().await;
    tokio::join!(connect(a, dialler, None), accept(b, listener))
}

#[tokio::test]
async fn handshake_proves_both_identities() {
    let (ca, cb) = (config(1, "net"), config(2, "net"));
    let (a, b) = tcp_pair().await;
    let expected = Some(cb.secret.node_id());
    let (dialler, listener) = tokio::join!(connect(a, &ca, expected), accept(b, &cb));
    let (dialler, listener) = (dialler.unwrap(), listener.unwrap());
    assert_eq!(dialler.peer, cb.secret.node_id());
    assert_eq!(listener.peer, ca.secret.node_id());

    // Both directions carry data, each half from its own task.
    let (mut a_reader, mut a_writer) = dialler.into_split();
    let (mut b_reader, mut b_writer) = listener.into_split();
    let ping = tokio::spawn(async move {
        a_writer.send(&[Bytes::from_static(b"ping")]).await.unwrap();
        a_writer
    });
    assert_eq!(b_reader.recv().await.unwrap().unwrap(), "ping");
    b_writer.send(&[Bytes::from_static(b"pong")]).await.unwrap();
    assert_eq!(a_reader.recv().await.unwrap().unwrap(), "pong");

    // A clean shutdown reads as the end of the stream.
    let mut a_writer = ping.await.unwrap();
    a_writer.shutdown().await.unwrap();
    assert!(b_reader.recv().await.unwrap().is_none());
}

#[tokio::test]
async fn dialling_the_wrong_node_is_refused_on_both_sides() {
    let (ca, cb) = (config(1, "net"), config(2, "net"));
    let (a, b) = tcp_pair().await;
    let someone_else = config(3, "net").secret.node_id();
    let (dialler, listener) = tokio::join!(connect(a, &ca, Some(someone_else)), accept(b, &cb));
    match dialler {
        Err(HandshakeError::UnexpectedPeer { expected, got }) => {
            assert_eq!(expected, someone_else);
            assert_eq!(got, cb.secret.node_id());
        }
        other => panic!("dialler got {other:?}"),
    }
    assert!(matches!(listener, Err(HandshakeError::Refused(_))));
}

#[tokio::test]
async fn private_network_links_with_the_same_psk() {
    let (ca, cb) = (private(1, "net", [9; 32]), private(2, "net", [9; 32]));
    let (dialler, listener) = handshake(&ca, &cb).await;
    assert_eq!(dialler.unwrap().peer, cb.secret.node_id());
    assert_eq!(listener.unwrap().peer, ca.secret.node_id());
}

#[tokio::test]
async fn wrong_network_is_refused_on_both_sides() {
    let (dialler, listener) = handshake(&config(1, "red"), &config(2, "blue")).await;
    let (dialler, listener) = (dialler.unwrap_err(), listener.unwrap_err());
    assert!(matches!(dialler, HandshakeError::WrongNetwork));
    assert!(matches!(listener, HandshakeError::WrongNetwork));
    assert!(dialler.to_string().contains("different network"));
}

#[tokio::test]
async fn psk_on_one_side_only_is_refused_on_both_sides() {
    let open = config(1, "net");
    let closed = private(2, "net", [9; 32]);
    for (dialler, listener) in [(&open, &closed), (&closed, &open)] {
        let (dialler, listener) = handshake(dialler, listener).await;
        let (dialler, listener) = (dialler.unwrap_err(), listener.unwrap_err());
        assert!(matches!(dialler, HandshakeError::PskMismatch));
        assert!(matches!(listener, HandshakeError::PskMismatch));
        assert!(dialler.to_string().contains("pre-shared key"));
    }
}

#[tokio::test]
async fn different_psks_fail_as_crypto_on_both_sides() {
    let (ca, cb) = (private(1, "net", [9; 32]), private(2, "net", [8; 32]));
    let (dialler, listener) = handshake(&ca, &cb).await;
    let (dialler, listener) = (dialler.unwrap_err(), listener.unwrap_err());
    assert!(matches!(dialler, HandshakeError::Crypto));
    assert!(matches!(listener, HandshakeError::Crypto));
    assert!(listener
        .to_string()
        .contains("wrong pre-shared key or corrupted handshake"));
}

#[tokio::test]
async fn garbage_is_not_gossipnet_and_the_listener_keeps_serving() {
    let cfg = config(2, "net");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (results, mut outcomes) = mpsc::channel(4);
    let server_cfg = cfg.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let result = accept(stream, &server_cfg).await.map(|link| link.peer);
            if results.send(result).await.is_err() {
                return;
            }
        }
    });

    let mut stray = TcpStream::connect(addr).await.unwrap();
    stray
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let first = outcomes.recv().await.unwrap();
    assert!(matches!(first, Err(HandshakeError::NotGossipnet)));

    let good = config(1, "net");
    let link = connect(TcpStream::connect(addr).await.unwrap(), &good, None)
        .await
        .unwrap();
    assert_eq!(link.peer, cfg.secret.node_id());
    assert_eq!(
        outcomes.recv().await.unwrap().unwrap(),
        good.secret.node_id()
    );
}

#[tokio::test]
async fn silent_peer_times_out() {
    let cfg = LinkConfig {
        handshake_timeout: SHORT_TIMEOUT,
        ..config(1, "net")
    };

    // A dialler that never says hello.
    let (silent, b) = tcp_pair().await;
    assert!(matches!(
        accept(b, &cfg).await,
        Err(HandshakeError::Timeout)
    ));
    drop(silent);

    // A listener that never answers.
    let (a, silent) = tcp_pair().await;
    assert!(matches!(
        connect(a, &cfg, None).await,
        Err(HandshakeError::Timeout)
    ));
    drop(silent);
}

#[tokio::test]
async fn wrong_version_is_refused_on_both_sides() {
    let cfg = config(1, "net");
    let theirs = PROTOCOL_VERSION + 1;

    // A future dialler, by hand, against our listener.
    let (mut a, b) = tcp_pair().await;
    a.write_all(&raw_hello(theirs, "net", false)).await.unwrap();
    let err = accept(b, &cfg).await.unwrap_err();
    assert!(matches!(
        err,
        HandshakeError::WrongVersion { ours, theirs: t } if ours == PROTOCOL_VERSION && t == theirs
    ));
    assert!(err.to_string().contains("version"));
    let mut answer = [0u8; 17];
    a.read_exact(&mut answer).await.unwrap();
    assert_eq!(answer[..15], raw_hello(PROTOCOL_VERSION, "net", false)[..]);
    assert_eq!(answer[15], 1, "status byte: wrong version");

    // A future listener, by hand, answering our dialler.
    let (a, mut b) = tcp_pair().await;
    let future_listener = async {
        let mut hello = [0u8; 15];
        b.read_exact(&mut hello).await.unwrap();
        let mut answer = raw_hello(theirs, "net", false);
        answer.extend_from_slice(&[1, 0]);
        b.write_all(&answer).await.unwrap();
    };
    let (result, ()) = tokio::join!(connect(a, &cfg, None), future_listener);
    assert!(matches!(
        result,
        Err(HandshakeError::WrongVersion { ours, theirs: t }) if ours == PROTOCOL_VERSION && t == theirs
    ));
}

#[tokio::test]
async fn refusal_reason_reaches_the_dialler() {
    let (ca, cb) = (config(1, "net"), config(2, "net"));
    let (a, b) = tcp_pair().await;
    let (dialler, refused) = tokio::join!(
        connect(a, &ca, None),
        refuse(b, &cb, "too many inbound links")
    );
    refused.unwrap();
    let err = dialler.unwrap_err();
    assert!(matches!(&err, HandshakeError::Refused(reason) if reason == "too many inbound links"));
    assert_eq!(
        err.to_string(),
        "peer refused the link: too many inbound links"
    );
}

/// A payload whose bytes depend on both the message and the position, so a
/// reordered or misjoined message cannot pass for the right one.
fn payload(tag: u32, len: usize) -> Bytes {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(31).wrapping_add(tag) as u8)
        .collect::<Vec<u8>>()
        .into()
}

#[tokio::test]
async fn large_and_many_small_messages_round_trip_in_order() {
    let (dialler, listener) = handshake(&config(1, "net"), &config(2, "net")).await;
    let (_, mut writer) = dialler.unwrap().into_split();
    let (mut reader, _) = listener.unwrap().into_split();

    let mut batches = vec![vec![payload(0, 300 << 10)]];
    batches.push((1..=1000).map(|i| payload(i, (i % 50) as usize)).collect());
    batches.push(vec![
        payload(2000, MAX_MESSAGE_BYTES),
        Bytes::new(),
        payload(2001, 70_000),
    ]);
    let sent: Vec<Bytes> = batches.concat();

    let writing = tokio::spawn(async move {
        for batch in &batches {
            writer.send(batch).await.unwrap();
        }
        writer.shutdown().await.unwrap();
    });
    let mut received = Vec::new();
    while let Some(msg) = reader.recv().await.unwrap() {
        received.push(msg);
    }
    writing.await.unwrap();
    assert_eq!(received.len(), sent.len());
    assert!(received == sent, "messages differ or are out of order");
}

#[tokio::test]
async fn buffers_grown_for_a_large_message_are_given_back_when_the_link_goes_quiet() {
    let (dialler, listener) = handshake(&config(1, "net"), &config(2, "net")).await;
    let (_, mut writer) = dialler.unwrap().into_split();
    let (mut reader, _) = listener.unwrap().into_split();
    // A fresh link holds no buffer until it carries something.
    assert_eq!(writer.buffer_capacity(), 0);
    assert_eq!(reader.buffer_capacity(), 0);

    let large = payload(0, 300 << 10);
    let (sent, received) = tokio::join!(writer.send(std::slice::from_ref(&large)), reader.recv());
    sent.unwrap();
    assert!(received.unwrap().unwrap() == large);
    // The writer gave back what the batch needed as soon as it was written.
    assert!(writer.buffer_capacity() <= 2 * super::frame::IDLE_BUFFER_BYTES);

    // Then a quiet spell: single small messages, one read each.
    for tag in 1..=8 {
        let ping = payload(tag, 8);
        writer.send(std::slice::from_ref(&ping)).await.unwrap();
        assert!(reader.recv().await.unwrap().unwrap() == ping);
    }
    reader.release_idle();
    assert!(
        reader.buffer_capacity() <= super::frame::IDLE_BUFFER_BYTES,
        "a quiet reader still holds {} bytes",
        reader.buffer_capacity()
    );
    assert!(writer.buffer_capacity() <= 2 * super::frame::IDLE_BUFFER_BYTES);
}

#[tokio::test]
async fn message_over_the_limit_is_refused() {
    let (dialler, _listener) = handshake(&config(1, "net"), &config(2, "net")).await;
    let (_, mut writer) = dialler.unwrap().into_split();
    let batch = [Bytes::from_static(b"ok"), payload(0, MAX_MESSAGE_BYTES + 1)];
    assert!(matches!(
        writer.send(&batch).await,
        Err(LinkError::MessageTooLarge { len, max })
            if len == MAX_MESSAGE_BYTES + 1 && max == MAX_MESSAGE_BYTES
    ));
    // Refused before anything was written: the writer is still usable.
    writer.send(&[Bytes::from_static(b"ok")]).await.unwrap();
}

#[test]
fn halves_can_move_to_other_tasks() {
    fn is_send<T: Send + 'static>() {}
    is_send::<LinkReader>();
    is_send::<LinkWriter>();
    is_send::<Link>();
}
