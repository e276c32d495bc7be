//! The Noise handshake that turns a TCP stream into a link: Noise XX, or
//! XXpsk3 on a private network, and the proof that binds the peer's lasting
//! ed25519 id to the Noise static key it used.
//!
//! This follows the Noise Protocol Framework (Perrin, revision 34,
//! <https://noiseprotocol.org/noise.html>): the patterns `XX` and `XXpsk3`
//! over 25519, ChaChaPoly and BLAKE2s, with the network id in the prologue.
//! Noise static keys are fresh for each link; the identity proof, carried
//! in the encrypted payloads of messages 2 and 3, is what names the peer.
//! The exact messages, framing and abort records are set out in
//! [`crate::transport`]; the plaintext hello before them is
//! [`super::preamble`]'s, and the halves a finished handshake hands over
//! are [`super::frame`]'s.

use std::time::Duration;

use gossipnet_proto::identity::{NodeId, SecretKey, Signature};
use snow::HandshakeState;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::frame::{self, FRAME_HEADER_BYTES};
use super::preamble::{
    peer_error, put_status, read_hello, read_status, reply_hello, wire_status, Hello, Status,
};
use super::{HandshakeError, Link, LinkConfig};

/// Bound on one Noise handshake message. Ours are at most 192 bytes; the rest
/// is room for later payload fields, while an unauthenticated peer still cannot
/// make us buffer more than this.
const MAX_HANDSHAKE_MESSAGE_BYTES: usize = 1024;

/// Noise pattern of an open network.
const NOISE_PARAMS: &str = "Noise_XX_25519_ChaChaPoly_BLAKE2s";

/// Noise pattern of a private network: the key is mixed in last, with the
/// dialler's message 3, so the identities are hidden from outsiders either way.
const NOISE_PARAMS_PSK: &str = "Noise_XXpsk3_25519_ChaChaPoly_BLAKE2s";

/// Where `psk3` puts the key in the pattern.
const PSK_LOCATION: u8 = 3;

/// Prefix of the Noise prologue; the network id follows.
const PROLOGUE_PREFIX: &[u8] = b"gossipnet/v1/";

/// Domain separation for the identity proof, so the signature cannot be
/// taken for a signature over anything else a node signs.
const PROOF_DOMAIN: &[u8] = b"gossipnet-noise-static-v1";

/// Identity proof: node id then signature.
pub(super) const PROOF_BYTES: usize = 32 + 64;

/// Length of an X25519 public key, the Noise static key we sign.
pub(super) const NOISE_KEY_BYTES: usize = 32;

/// Makes the identity proof for our Noise static key. A parameter of the
/// handshake so tests can forge one.
pub(super) type ProveFn = fn(&SecretKey, &[u8]) -> [u8; PROOF_BYTES];

pub(super) fn make_proof(secret: &SecretKey, noise_static: &[u8]) -> [u8; PROOF_BYTES] {
    let signature = secret.sign(&proof_message(noise_static));
    let mut proof = [0u8; PROOF_BYTES];
    proof[..32].copy_from_slice(secret.node_id().as_bytes());
    proof[32..].copy_from_slice(&signature.0);
    proof
}

pub(super) fn proof_message(noise_static: &[u8]) -> Vec<u8> {
    [PROOF_DOMAIN, noise_static].concat()
}

/// Checks the peer's proof against the Noise static key it used.
pub(super) fn check_proof(
    payload: &[u8],
    remote_static: Option<&[u8]>,
) -> Result<NodeId, HandshakeError> {
    let remote_static = remote_static
        .filter(|key| key.len() == NOISE_KEY_BYTES)
        .ok_or(HandshakeError::BadIdentity)?;
    let proof: &[u8; PROOF_BYTES] = payload
        .try_into()
        .map_err(|_| HandshakeError::BadIdentity)?;
    let (id, signature) = proof.split_at(32);
    let id = NodeId::from_bytes(id.try_into().map_err(|_| HandshakeError::BadIdentity)?);
    let signature = Signature(
        signature
            .try_into()
            .map_err(|_| HandshakeError::BadIdentity)?,
    );
    // A small-order key lets anyone forge "signatures" that verify for it, so
    // such an id would be shared by whoever claims it; it proves nothing.
    let weak = id.verifying_key().map_or(true, |key| key.is_weak());
    if weak {
        return Err(HandshakeError::BadIdentity);
    }
    id.verify(&proof_message(remote_static), &signature)
        .map_err(|_| HandshakeError::BadIdentity)?;
    Ok(id)
}

pub(super) async fn connect_with(
    mut stream: TcpStream,
    cfg: &LinkConfig,
    expected: Option<NodeId>,
    prove: ProveFn,
) -> Result<Link, HandshakeError> {
    stream.set_nodelay(true)?;
    let result = run_with_timeout(
        cfg.handshake_timeout,
        initiate(&mut stream, cfg, expected, prove),
    )
    .await;
    finish(stream, result, "outbound")
}

pub(super) async fn accept_with(
    stream: TcpStream,
    cfg: &LinkConfig,
    prove: ProveFn,
) -> Result<Link, HandshakeError> {
    accept_gated_with(stream, cfg, prove, &|_| None).await
}

/// Asked, once the dialler's id is proven, whether to take it: `Some`
/// refuses the link with that reason, which the dialler reads in the
/// listener's verdict (so a discouraged peer learns why).
pub(crate) type Gate = dyn Fn(&NodeId) -> Option<&'static str> + Send + Sync;

/// Answers a dial as [`super::accept`] does, but refuses a proven id that
/// `gate` turns away.
pub(crate) async fn accept_gated(
    stream: TcpStream,
    cfg: &LinkConfig,
    gate: &Gate,
) -> Result<Link, HandshakeError> {
    accept_gated_with(stream, cfg, make_proof, gate).await
}

async fn accept_gated_with(
    mut stream: TcpStream,
    cfg: &LinkConfig,
    prove: ProveFn,
    gate: &Gate,
) -> Result<Link, HandshakeError> {
    stream.set_nodelay(true)?;
    let result = run_with_timeout(
        cfg.handshake_timeout,
        respond(&mut stream, cfg, prove, gate),
    )
    .await;
    finish(stream, result, "inbound")
}

pub(super) async fn run_with_timeout<T>(
    limit: Duration,
    work: impl std::future::Future<Output = Result<T, HandshakeError>>,
) -> Result<T, HandshakeError> {
    tokio::time::timeout(limit, work)
        .await
        .unwrap_or(Err(HandshakeError::Timeout))
}

fn finish(
    stream: TcpStream,
    result: Result<(HandshakeState, NodeId), HandshakeError>,
    direction: &str,
) -> Result<Link, HandshakeError> {
    let (handshake, peer) = match result {
        Ok(done) => done,
        Err(err) => {
            tracing::debug!(%err, direction, "link handshake failed");
            return Err(err);
        }
    };
    // Stateless transport mode takes the nonce as an argument and `&self`, so
    // the reader and the writer share one state through an Arc and each keeps
    // its own direction's counter: no lock, and neither half waits for the
    // other. (snow's stateful TransportState needs `&mut` for both
    // directions, which would force a mutex between the two tasks.)
    let noise = handshake
        .into_stateless_transport_mode()
        .map_err(HandshakeError::Noise)?;
    tracing::debug!(peer = %peer.short(), direction, "link up");
    let (reader, writer) = frame::halves(peer, stream, noise);
    Ok(Link {
        peer,
        reader,
        writer,
    })
}

/// The dialler's side: hello, then `-> e`, `<- e, ee, s, es`, `-> s, se`
/// (`psk`), then the listener's verdict.
async fn initiate(
    stream: &mut TcpStream,
    cfg: &LinkConfig,
    expected: Option<NodeId>,
    prove: ProveFn,
) -> Result<(HandshakeState, NodeId), HandshakeError> {
    let ours = Hello::ours(cfg);
    stream.write_all(&ours.encode()).await?;
    let theirs = read_hello(stream).await?;
    let (status, reason) = read_status(stream).await?;
    if status != Status::Ok as u8 {
        return Err(peer_error(status, reason, Some(&theirs)));
    }

    let noise = NoiseSetup::new(cfg)?;
    let mut handshake = noise
        .builder(cfg)?
        .build_initiator()
        .map_err(HandshakeError::Noise)?;
    let mut out = vec![0u8; MAX_HANDSHAKE_MESSAGE_BYTES];
    let mut payload = vec![0u8; MAX_HANDSHAKE_MESSAGE_BYTES];

    let n = handshake
        .write_message(&[], &mut out)
        .map_err(HandshakeError::Noise)?;
    write_handshake_message(stream, &out[..n]).await?;

    let msg = read_handshake_message(stream).await?;
    let peer = match handshake.read_message(&msg, &mut payload) {
        Err(err) => Err(noise_read_error(err)),
        Ok(n) => check_proof(&payload[..n], handshake.get_remote_static()),
    };
    let peer = match (peer, expected) {
        (Ok(got), Some(expected)) if got != expected => {
            Err(HandshakeError::UnexpectedPeer { expected, got })
        }
        (peer, _) => peer,
    };
    let peer = match peer {
        Ok(peer) => peer,
        Err(err) => {
            send_abort(stream, &err).await;
            return Err(err);
        }
    };

    let proof = prove(&cfg.secret, &noise.keypair.public);
    let n = handshake
        .write_message(&proof, &mut out)
        .map_err(HandshakeError::Noise)?;
    write_handshake_message(stream, &out[..n]).await?;

    let (status, reason) = read_status(stream).await?;
    if status != Status::Ok as u8 {
        return Err(peer_error(status, reason, None));
    }
    Ok((handshake, peer))
}

/// The listener's side, mirror of [`initiate`].
async fn respond(
    stream: &mut TcpStream,
    cfg: &LinkConfig,
    prove: ProveFn,
    gate: &Gate,
) -> Result<(HandshakeState, NodeId), HandshakeError> {
    let ours = Hello::ours(cfg);
    let checked = match read_hello(stream).await {
        Ok(theirs) => ours.check(&theirs),
        Err(err) => Err(err),
    };
    if let Err(err) = checked {
        reply_hello(stream, &ours, &err).await;
        return Err(err);
    }
    let mut accepted = ours.encode().to_vec();
    put_status(&mut accepted, Status::Ok, "");
    stream.write_all(&accepted).await?;

    let noise = NoiseSetup::new(cfg)?;
    let mut handshake = noise
        .builder(cfg)?
        .build_responder()
        .map_err(HandshakeError::Noise)?;
    let mut out = vec![0u8; MAX_HANDSHAKE_MESSAGE_BYTES];
    let mut payload = vec![0u8; MAX_HANDSHAKE_MESSAGE_BYTES];

    let msg = read_handshake_message(stream).await?;
    if let Err(err) = handshake.read_message(&msg, &mut payload) {
        let err = noise_read_error(err);
        send_abort(stream, &err).await;
        return Err(err);
    }

    let proof = prove(&cfg.secret, &noise.keypair.public);
    let n = handshake
        .write_message(&proof, &mut out)
        .map_err(HandshakeError::Noise)?;
    write_handshake_message(stream, &out[..n]).await?;

    let msg = read_handshake_message(stream).await?;
    let peer = match handshake.read_message(&msg, &mut payload) {
        Err(err) => Err(noise_read_error(err)),
        Ok(n) => check_proof(&payload[..n], handshake.get_remote_static()),
    };
    let peer = match peer {
        Ok(id) => gate(&id).map_or(Ok(id), |reason| {
            Err(HandshakeError::Refused(reason.to_string()))
        }),
        err => err,
    };
    let mut verdict = Vec::new();
    match &peer {
        Ok(_) => put_status(&mut verdict, Status::Ok, ""),
        // The gate's reason is for the peer to read.
        Err(HandshakeError::Refused(reason)) => put_status(&mut verdict, Status::Refused, reason),
        Err(err) => {
            let (status, reason) = wire_status(err).unwrap_or((Status::Malformed, "failed"));
            put_status(&mut verdict, status, reason);
        }
    }
    // The verdict is best effort when refusing: our own error matters more
    // than whether the peer heard it.
    let sent = stream.write_all(&verdict).await;
    let peer = peer?;
    sent?;
    Ok((handshake, peer))
}

/// Noise parameters, prologue and a fresh static key for one link.
struct NoiseSetup {
    params: snow::params::NoiseParams,
    /// Binds the network id: peers of two networks whose 8-byte tags collide
    /// still fail the handshake.
    prologue: Vec<u8>,
    keypair: snow::Keypair,
}

impl NoiseSetup {
    fn new(cfg: &LinkConfig) -> Result<Self, HandshakeError> {
        let name = if cfg.psk.is_some() {
            NOISE_PARAMS_PSK
        } else {
            NOISE_PARAMS
        };
        let params: snow::params::NoiseParams = name.parse().map_err(HandshakeError::Noise)?;
        // A fresh static key per link costs one X25519 key generation and means
        // nothing long-lived but the ed25519 key, which the proof binds.
        let keypair = snow::Builder::new(params.clone())
            .generate_keypair()
            .map_err(HandshakeError::Noise)?;
        let prologue = [PROLOGUE_PREFIX, cfg.network_id.as_bytes()].concat();
        Ok(Self {
            params,
            prologue,
            keypair,
        })
    }

    fn builder<'a>(&'a self, cfg: &'a LinkConfig) -> Result<snow::Builder<'a>, HandshakeError> {
        let mut builder = snow::Builder::new(self.params.clone())
            .local_private_key(&self.keypair.private)
            .map_err(HandshakeError::Noise)?;
        if let Some(psk) = &cfg.psk {
            builder = builder
                .psk(PSK_LOCATION, psk)
                .map_err(HandshakeError::Noise)?;
        }
        builder
            .prologue(&self.prologue)
            .map_err(HandshakeError::Noise)
    }
}

/// What a failed read of a peer's Noise message means.
fn noise_read_error(err: snow::Error) -> HandshakeError {
    match err {
        snow::Error::Decrypt => HandshakeError::Crypto,
        _ => HandshakeError::Malformed("noise message rejected"),
    }
}

/// Best effort: an abort in place of our next handshake message.
async fn send_abort(stream: &mut TcpStream, err: &HandshakeError) {
    let Some((status, reason)) = wire_status(err) else {
        return;
    };
    let mut out = vec![0u8; FRAME_HEADER_BYTES];
    put_status(&mut out, status, reason);
    // Ignored: the peer may be gone, and our own error is what we report.
    let _ = stream.write_all(&out).await;
}

async fn write_handshake_message(stream: &mut TcpStream, msg: &[u8]) -> Result<(), HandshakeError> {
    let len =
        u16::try_from(msg.len()).map_err(|_| HandshakeError::Malformed("message too long"))?;
    let mut out = Vec::with_capacity(FRAME_HEADER_BYTES + msg.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(msg);
    stream.write_all(&out).await?;
    Ok(())
}

/// The peer's next handshake message; an abort in its place becomes the error
/// it announces.
pub(super) async fn read_handshake_message(
    stream: &mut TcpStream,
) -> Result<Vec<u8>, HandshakeError> {
    let mut head = [0u8; FRAME_HEADER_BYTES];
    stream.read_exact(&mut head).await?;
    let len = usize::from(u16::from_be_bytes(head));
    if len == 0 {
        let (status, reason) = read_status(stream).await?;
        return Err(peer_error(status, reason, None));
    }
    if len > MAX_HANDSHAKE_MESSAGE_BYTES {
        return Err(HandshakeError::Malformed("handshake message too long"));
    }
    let mut msg = vec![0u8; len];
    stream.read_exact(&mut msg).await?;
    Ok(msg)
}
