//! Entry points into the transport's decoders for the fuzz targets (feature
//! `fuzzing`), reached through [`crate::fuzzing`]; no program calls them.
//!
//! Each one feeds hostile bytes to the real parser in the way a peer would:
//! the pure ones (the hello, the identity proof) directly, the ones that read
//! from a socket over a real loopback TCP connection made for the call, and
//! the frame layer through a real Noise transport state. Each checks what the
//! parser promises (bounds, sanitised reasons, messages that match the
//! plaintext stream) and panics when a promise is broken, which is what a
//! fuzzer reports.

use std::cell::RefCell;
use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use gossipnet_proto::identity::{NodeId, SecretKey};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;

use super::frame::{self, FRAME_HEADER_BYTES};
use super::handshake::{
    accept_with, check_proof, connect_with, make_proof, read_handshake_message, PROOF_BYTES,
};
use super::preamble::{peer_error, read_hello, read_status, Hello, HELLO_BYTES, MAX_REASON_BYTES};
use super::{accept, connect, HandshakeError, LinkConfig, LinkError, MAX_MESSAGE_BYTES};

/// Bound on one input's socket work: loopback answers at once, so only a
/// parser that hangs waiting for bytes that never come reaches it, and that is
/// a finding.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Noise pattern and prologue of an open network, as the module docs of
/// [`crate::transport`] give them: the harness plays the sending peer.
const NOISE_PARAMS: &str = "Noise_XX_25519_ChaChaPoly_BLAKE2s";
const NETWORK_ID: &str = "fuzz";
const PROLOGUE: &[u8] = b"gossipnet/v1/fuzz";

/// The ChaChaPoly tag each frame carries.
const TAG_BYTES: usize = 16;

struct Harness {
    runtime: Runtime,
    listener: TcpListener,
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for the fuzz harness");
        let listener = runtime
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .expect("a loopback listener for the fuzz harness");
        Harness { runtime, listener }
    })
}

fn config(seed: u8) -> LinkConfig {
    LinkConfig {
        secret: SecretKey::from_bytes(&[seed; 32]),
        network_id: NETWORK_ID.to_string(),
        psk: None,
        handshake_timeout: CALL_TIMEOUT,
    }
}

/// A fresh loopback connection: (dialled end, accepted end).
async fn tcp_pair(listener: &TcpListener) -> (TcpStream, TcpStream) {
    let addr = listener.local_addr().expect("listener address");
    let (dialled, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
    (
        dialled.expect("loopback connect"),
        accepted.expect("loopback accept").0,
    )
}

/// Runs `read` on one end of a fresh connection after `bytes` were written to
/// the other and that direction closed.
fn over_socket<T>(bytes: &[u8], read: impl AsyncFnOnce(&mut TcpStream) -> T) -> T {
    let h = harness();
    h.runtime.block_on(async {
        let (mut peer, mut ours) = tcp_pair(&h.listener).await;
        // Loopback buffers far more than a fuzz input, so this never waits
        // for the reader.
        peer.write_all(bytes).await.expect("write to loopback");
        peer.shutdown().await.expect("close loopback");
        tokio::time::timeout(CALL_TIMEOUT, read(&mut ours))
            .await
            .expect("a parser waited for bytes after end of stream")
    })
}

/// The fixed-size hello: decode, check against ours, and re-encode.
pub fn hello(bytes: &[u8]) {
    let Some(raw) = bytes.get(..HELLO_BYTES) else {
        return;
    };
    let raw: &[u8; HELLO_BYTES] = raw.try_into().expect("sliced to the hello size");
    let Ok(theirs) = Hello::decode(raw) else {
        assert!(!raw.starts_with(b"GSPN"), "a hello with the magic refused");
        return;
    };
    let _ = Hello::ours(&config(1)).check(&theirs);
    let again = Hello::decode(&theirs.encode()).expect("our own hello decodes");
    assert_eq!(again, theirs, "hello changed in a round trip");
}

/// What a listener sends a dialler before Noise: its hello and a status
/// record, read as the dialler reads them.
pub fn preamble(bytes: &[u8]) {
    let got = over_socket(bytes, async |s| {
        let theirs = read_hello(s).await?;
        let (status, reason) = read_status(s).await?;
        Ok::<_, HandshakeError>((theirs, status, reason))
    });
    if let Ok((theirs, status, reason)) = got {
        assert!(
            reason.len() <= MAX_REASON_BYTES * 3,
            "reason over its bound"
        );
        assert!(
            !reason.chars().any(char::is_control),
            "control character in a peer's reason: {reason:?}"
        );
        let _ = peer_error(status, reason, Some(&theirs)).to_string();
    }
}

/// A status record alone, as an abort or a verdict is read.
pub fn status(bytes: &[u8]) {
    if let Ok((status, reason)) = over_socket(bytes, async |s| read_status(s).await) {
        assert!(
            !reason.chars().any(char::is_control),
            "control character in a peer's reason: {reason:?}"
        );
        let _ = peer_error(status, reason, None).to_string();
    }
}

/// One handshake message as the peer frames it: a u16 BE length, or 0 and a
/// status record for an abort.
pub fn handshake_message(bytes: &[u8]) {
    if let Ok(msg) = over_socket(bytes, async |s| read_handshake_message(s).await) {
        let len = usize::from(u16::from_be_bytes([bytes[0], bytes[1]]));
        assert_eq!(msg.len(), len, "message length differs from its prefix");
        assert_eq!(
            &msg[..],
            &bytes[FRAME_HEADER_BYTES..FRAME_HEADER_BYTES + len]
        );
    }
}

/// The identity proof as decrypted from message 2 or 3, against the Noise
/// static key the peer used.
pub fn proof(payload: &[u8], remote_static: Option<&[u8]>) -> Option<NodeId> {
    check_proof(payload, remote_static).ok()
}

/// A genuine proof by the key made from `seed` for `noise_static`, with the
/// bytes of `flips` xored in (cycled over the proof): accepted exactly when
/// nothing was flipped.
pub fn tampered_proof(seed: [u8; 32], noise_static: [u8; 32], flips: &[u8]) {
    let secret = SecretKey::from_bytes(&seed);
    let mut proof = make_proof(&secret, &noise_static);
    for (i, flip) in flips.iter().take(PROOF_BYTES).enumerate() {
        proof[i] ^= flip;
    }
    let tampered = flips.iter().take(PROOF_BYTES).any(|&f| f != 0);
    match check_proof(&proof, Some(&noise_static)) {
        Ok(id) => {
            assert!(!tampered, "a tampered proof was accepted for {id}");
            assert_eq!(id, secret.node_id());
        }
        Err(err) => {
            // A key whose id is weak is refused even untouched.
            let weak = secret
                .node_id()
                .verifying_key()
                .map_or(true, |k| k.is_weak());
            assert!(tampered || weak, "a genuine proof was refused: {err}");
        }
    }
}

thread_local! {
    /// The 96 bytes the harness sends as its proof in the next handshake.
    static FUZZ_PROOF: RefCell<[u8; PROOF_BYTES]> = const { RefCell::new([0; PROOF_BYTES]) };
}

fn fuzz_prove(_: &SecretKey, _: &[u8]) -> [u8; PROOF_BYTES] {
    FUZZ_PROOF.with(|p| *p.borrow())
}

/// A whole handshake against a peer that sends `bytes` (padded to a proof's
/// size) as its identity proof: in message 2 when `peer_listens`, else in
/// message 3. The node's side must refuse it, unless it happens to be a valid
/// proof of the peer's static key, which no fuzzer can forge.
pub fn handshake_with_proof(bytes: &[u8], peer_listens: bool) {
    let mut proof = [0u8; PROOF_BYTES];
    let n = bytes.len().min(PROOF_BYTES);
    proof[..n].copy_from_slice(&bytes[..n]);
    FUZZ_PROOF.with(|p| *p.borrow_mut() = proof);
    let h = harness();
    let (ours, theirs) = (config(1), config(2));
    let ours_result = h.runtime.block_on(async {
        let (dialled, accepted) = tcp_pair(&h.listener).await;
        let work = async {
            if peer_listens {
                let (node, _peer) = tokio::join!(
                    connect(dialled, &ours, None),
                    accept_with(accepted, &theirs, fuzz_prove)
                );
                node.map(|link| link.peer)
            } else {
                let (_peer, node) = tokio::join!(
                    connect_with(dialled, &theirs, None, fuzz_prove),
                    accept(accepted, &ours)
                );
                node.map(|link| link.peer)
            }
        };
        tokio::time::timeout(CALL_TIMEOUT, work)
            .await
            .expect("a handshake hung on loopback")
    });
    if let Ok(peer) = ours_result {
        panic!("a forged proof was accepted as {peer}");
    }
}

/// A reader over a real connection and the Noise state that seals what the
/// peer sends it, so fuzzed plaintext arrives as a peer would send it.
fn noise_pair() -> (snow::StatelessTransportState, snow::StatelessTransportState) {
    let params: snow::params::NoiseParams = NOISE_PARAMS.parse().expect("our noise params");
    let keys = |b: &snow::Builder<'_>| b.generate_keypair().expect("a noise keypair");
    let base = snow::Builder::new(params.clone());
    let (ik, rk) = (keys(&base), keys(&base));
    let mut init = snow::Builder::new(params.clone())
        .local_private_key(&ik.private)
        .and_then(|b| b.prologue(PROLOGUE))
        .and_then(|b| b.build_initiator())
        .expect("initiator");
    let mut resp = snow::Builder::new(params)
        .local_private_key(&rk.private)
        .and_then(|b| b.prologue(PROLOGUE))
        .and_then(|b| b.build_responder())
        .expect("responder");
    let (mut msg, mut out) = ([0u8; 1024], [0u8; 1024]);
    let n = init.write_message(&[], &mut msg).expect("message 1");
    resp.read_message(&msg[..n], &mut out).expect("read 1");
    let n = resp.write_message(&[], &mut msg).expect("message 2");
    init.read_message(&msg[..n], &mut out).expect("read 2");
    let n = init.write_message(&[], &mut msg).expect("message 3");
    resp.read_message(&msg[..n], &mut out).expect("read 3");
    (
        init.into_stateless_transport_mode()
            .expect("initiator transport"),
        resp.into_stateless_transport_mode()
            .expect("responder transport"),
    )
}

/// Reads every message of the stream `wire` through a real [`frame`] reader
/// whose peer sealed with `sender`.
fn read_link(
    wire: &[u8],
    receiver: snow::StatelessTransportState,
) -> (Vec<Bytes>, Result<(), LinkError>) {
    let h = harness();
    h.runtime.block_on(async {
        let (mut peer, ours) = tcp_pair(&h.listener).await;
        peer.write_all(wire).await.expect("write to loopback");
        peer.shutdown().await.expect("close loopback");
        let (mut reader, _writer) = frame::halves(config(2).secret.node_id(), ours, receiver);
        let mut got = Vec::new();
        let end = loop {
            let next = tokio::time::timeout(CALL_TIMEOUT, reader.recv())
                .await
                .expect("the reader waited for bytes after end of stream");
            match next {
                Ok(Some(msg)) => {
                    assert!(msg.len() <= MAX_MESSAGE_BYTES, "message over its bound");
                    got.push(msg);
                }
                Ok(None) => break Ok(()),
                Err(err) => break Err(err),
            }
        };
        (got, end)
    })
}

/// The link's plaintext message stream. `bytes` is cut into frames (each
/// starts with one byte giving its plaintext length, cut short at the end),
/// each frame sealed as the peer would, and the reader's messages are
/// compared with a plain reading of the stream: each a u32 BE length and its
/// bytes.
pub fn plaintext_stream(bytes: &[u8]) {
    let (sender, receiver) = noise_pair();
    let mut plain = Vec::new();
    let mut wire = Vec::new();
    let mut rest = bytes;
    let mut nonce = 0u64;
    while let Some((&len, tail)) = rest.split_first() {
        let take = usize::from(len).min(tail.len());
        let (chunk, tail) = tail.split_at(take);
        rest = tail;
        plain.extend_from_slice(chunk);
        let mut sealed = vec![0u8; chunk.len() + TAG_BYTES];
        let n = sender
            .write_message(nonce, chunk, &mut sealed)
            .expect("seal a frame");
        nonce += 1;
        let header = u16::try_from(n).expect("a frame fits a u16");
        wire.extend_from_slice(&header.to_be_bytes());
        wire.extend_from_slice(&sealed[..n]);
    }
    let (got, end) = read_link(&wire, receiver);

    // The plain reading: whole messages, then what is left.
    let mut expected = Vec::new();
    let mut at = 0;
    let outcome = loop {
        let Some(head) = plain.get(at..at + 4) else {
            break if at == plain.len() {
                "clean"
            } else {
                "truncated"
            };
        };
        let len = u32::from_be_bytes(head.try_into().expect("4 bytes")) as usize;
        if len > MAX_MESSAGE_BYTES {
            break "too large";
        }
        let Some(body) = plain.get(at + 4..at + 4 + len) else {
            break "truncated";
        };
        expected.push(body.to_vec());
        at += 4 + len;
    };
    let got: Vec<Vec<u8>> = got.iter().map(|m| m.to_vec()).collect();
    assert_eq!(got, expected, "messages differ from the plaintext stream");
    match (outcome, &end) {
        ("clean", Ok(()))
        | ("truncated", Err(LinkError::Truncated))
        | ("too large", Err(LinkError::MessageTooLarge { .. })) => {}
        _ => panic!("stream ended {outcome} but the reader said {end:?}"),
    }
}

/// Raw bytes on the wire after the handshake: frame headers and forged
/// ciphertext, which the reader must refuse without panicking.
pub fn raw_wire(bytes: &[u8]) {
    let (_sender, receiver) = noise_pair();
    let (got, end) = read_link(bytes, receiver);
    // The key is fresh for each call: no input can carry a valid tag.
    assert!(got.is_empty(), "a forged frame decrypted");
    if bytes.is_empty() {
        assert!(end.is_ok(), "an empty stream is a clean end: {end:?}");
    }
}
