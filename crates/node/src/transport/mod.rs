//! Links: a TCP stream turned into an authenticated, encrypted, message-framed
//! channel to one peer whose ed25519 [`NodeId`] has been proven.
//!
//! A link is set up in two steps, both bounded by
//! [`LinkConfig::handshake_timeout`]:
//!
//! 1. **Plaintext preamble.** The dialler ([`connect`]) sends a fixed-size
//!    hello; the listener ([`accept`] or [`refuse`]) reads it and answers with
//!    its own hello and a status record. The hello is, in this order and never
//!    to change across versions so that any two versions can tell each other
//!    apart: the magic `b"GSPN"`, the protocol version (u16 BE), the first 8
//!    bytes of `blake3(network_id)`, and a flag byte (bit 0: a pre-shared key is
//!    in use; other bits are ignored, kept for later). A status record is one
//!    status byte (0 = accepted) and a reason of at most
//!    [`MAX_REASON_BYTES`](preamble::MAX_REASON_BYTES) bytes, preceded by its
//!    length in one byte. The preamble exists so that a peer refused for its
//!    version, network, key or the listener's load learns why, in words,
//!    instead of watching a Noise handshake fail.
//! 2. **Noise.** `Noise_XX_25519_ChaChaPoly_BLAKE2s`, or
//!    `Noise_XXpsk3_25519_ChaChaPoly_BLAKE2s` on a private network, with the
//!    prologue `b"gossipnet/v1/" || network_id`. The Noise static keys are made
//!    fresh for each link; the node's lasting identity is its ed25519 key,
//!    bound to the Noise static key by a proof carried in the encrypted payload
//!    of message 2 (listener) and message 3 (dialler): the 32-byte node id
//!    followed by its signature over `b"gossipnet-noise-static-v1" || the
//!    sender's Noise static public key`. Handshake messages are framed with a
//!    u16 BE length; a length of 0 instead announces an abort and is followed by
//!    a status record, and after message 3 the listener sends a status record
//!    as its verdict. So a failure on either side, a wrong pre-shared key
//!    included, is reported on both. Those records are not authenticated: they
//!    can only explain a failure, never turn one into a success, since a forged
//!    "accepted" leaves a link whose first frame fails to decrypt.
//!
//! After the handshake the two directions are independent ([`Link::into_split`]).
//! The application's messages are written into a logical plaintext stream,
//! each as a u32 BE length and its bytes; that stream is cut into Noise
//! transport frames of at most 65535 bytes of ciphertext, each preceded on the
//! wire by its u16 BE length. A message larger than a frame spans several and
//! many small messages share one, so a batch of messages costs one write.
//!
//! End of stream is plain TCP EOF at a frame boundary; there is no
//! authenticated close, which is fine for gossip, where a link that ends early
//! loses nothing the overlay does not repair.
//!
//! The parts: `preamble` (the plaintext hello and status records),
//! `handshake` (Noise and the identity proof) and `frame` (the framed,
//! encrypted halves of an established link). This module is their face to
//! the rest of the crate: the config, the errors, [`connect`], [`accept`]
//! and [`refuse`]. It is not public: an embedder gets links through a
//! [`Node`](crate::Node), never by hand.

use std::fmt;
use std::io;
use std::time::Duration;

use gossipnet_proto::identity::{NodeId, SecretKey};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

mod frame;
#[cfg(feature = "fuzzing")]
pub(crate) mod fuzz;
mod handshake;
#[cfg(test)]
mod link_tests;
mod preamble;
#[cfg(test)]
mod tests;

pub use frame::{LinkReader, LinkWriter};
// The version sent in the hello (a peer with another one is refused with
// [`HandshakeError::WrongVersion`]) and the bound on one message are the
// wire's: a link carries exactly what `wire` encodes, so both live there.
pub use gossipnet_proto::wire::{MAX_MESSAGE_BYTES, PROTOCOL_VERSION};

pub(crate) use handshake::accept_gated;
use handshake::{accept_with, connect_with, make_proof, run_with_timeout};
use preamble::{put_status, read_hello, reply_hello, Hello, Status};

/// Time allowed for preamble and handshake together when the caller has no
/// opinion: a few round trips over the worst link we expect, with margin.
/// Only tests build a [`LinkConfig`] by hand; a node derives its own from
/// its [`Limits`](crate::Limits).
#[cfg(test)]
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How one end of a link identifies itself and which network it joins.
#[derive(Clone)]
pub struct LinkConfig {
    /// The node's ed25519 key; its public half is the id the peer sees.
    pub secret: SecretKey,
    /// Name of the network; peers with another name are refused.
    pub network_id: String,
    /// Pre-shared key of a private network; `None` for an open network.
    pub psk: Option<[u8; 32]>,
    /// Bound on preamble and Noise handshake together.
    pub handshake_timeout: Duration,
}

impl LinkConfig {
    /// An open-network config with [`DEFAULT_HANDSHAKE_TIMEOUT`].
    #[cfg(test)]
    pub fn new(secret: SecretKey, network_id: impl Into<String>) -> Self {
        Self {
            secret,
            network_id: network_id.into(),
            psk: None,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        }
    }
}

impl fmt::Debug for LinkConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The pre-shared key is a secret: say whether there is one, never what.
        f.debug_struct("LinkConfig")
            .field("secret", &self.secret)
            .field("network_id", &self.network_id)
            .field("psk", &self.psk.map(|_| "<set>"))
            .field("handshake_timeout", &self.handshake_timeout)
            .finish()
    }
}

/// Why a link could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// The socket failed.
    #[error("i/o error during handshake: {0}")]
    Io(io::Error),
    /// The peer closed the connection before the handshake was done.
    #[error("peer closed the connection during the handshake")]
    Closed,
    /// Preamble and handshake did not finish within the configured timeout.
    #[error("handshake timed out")]
    Timeout,
    /// The peer does not speak gossipnet (bad magic, or garbage).
    #[error("peer is not speaking the gossipnet protocol")]
    NotGossipnet,
    /// The peer speaks another protocol version.
    #[error("protocol version mismatch: we speak {ours}, the peer speaks {theirs}")]
    WrongVersion {
        /// Our [`PROTOCOL_VERSION`].
        ours: u16,
        /// The peer's.
        theirs: u16,
    },
    /// The peer belongs to another network (its network id differs).
    #[error("peer is on a different network (network ids differ)")]
    WrongNetwork,
    /// One side is on a private network (pre-shared key), the other is not.
    #[error("pre-shared key mismatch: one side uses a pre-shared key, the other does not")]
    PskMismatch,
    /// The peer refused the link, for the reason it gave.
    #[error("peer refused the link: {0}")]
    Refused(String),
    /// A handshake message failed to decrypt, here or at the peer.
    #[error("handshake failed to decrypt: wrong pre-shared key or corrupted handshake")]
    Crypto,
    /// The peer's identity proof is malformed or its signature does not verify.
    #[error("peer's identity proof is invalid")]
    BadIdentity,
    /// The peer proved an identity other than the one we dialled.
    #[error("expected peer {} but reached {}", .expected.short(), .got.short())]
    UnexpectedPeer {
        /// The id we dialled.
        expected: NodeId,
        /// The id the peer proved.
        got: NodeId,
    },
    /// A handshake message broke the framing rules.
    #[error("malformed handshake: {0}")]
    Malformed(&'static str),
    /// The Noise library failed on our side (not on the peer's input).
    #[error("noise protocol error: {0}")]
    Noise(snow::Error),
}

impl From<io::Error> for HandshakeError {
    fn from(err: io::Error) -> Self {
        // A stream that ends mid-handshake is the peer hanging up, which
        // deserves its own words rather than "unexpected end of file".
        if err.kind() == io::ErrorKind::UnexpectedEof {
            Self::Closed
        } else {
            Self::Io(err)
        }
    }
}

/// Why a link failed after its handshake. Any of them ends the link: drop both
/// halves.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The socket failed.
    #[error("i/o error on link: {0}")]
    Io(#[from] io::Error),
    /// A message is over [`MAX_MESSAGE_BYTES`] (sent by us or announced by the peer).
    #[error("message of {len} bytes is over the {max} byte limit")]
    MessageTooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A frame failed to decrypt: corrupted, forged, replayed or reordered.
    #[error("frame failed to decrypt")]
    Decrypt,
    /// A frame is too short to hold its authentication tag.
    #[error("frame of {len} bytes is shorter than its tag")]
    ShortFrame {
        /// Its announced length.
        len: usize,
    },
    /// The peer closed the link in the middle of a frame or a message.
    #[error("link closed in the middle of a frame or message")]
    Truncated,
    /// 2^64 - 1 frames went one way; a new link is needed.
    #[error("nonces exhausted")]
    NonceExhausted,
    /// An earlier send failed or was cancelled midway, so the peer's view of
    /// the stream is unknown.
    #[error("link broken by an earlier failed or cancelled send")]
    Broken,
    /// A write made no progress for this long: the peer is not reading.
    #[error("write made no progress for {0:?}; the peer is not reading")]
    WriteTimeout(Duration),
}

/// An established link to a peer whose identity is proven.
pub struct Link {
    /// The peer's proven node id.
    pub peer: NodeId,
    reader: LinkReader,
    writer: LinkWriter,
}

impl Link {
    /// The two directions, for two tasks: a reader and a writer.
    pub fn into_split(self) -> (LinkReader, LinkWriter) {
        (self.reader, self.writer)
    }
}

impl fmt::Debug for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Link")
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

/// Dials: runs the handshake as initiator over `stream`. With `expected`, a
/// peer that proves another id is refused ([`HandshakeError::UnexpectedPeer`]).
///
/// Not cancel-safe in any useful sense: a dropped handshake leaves the stream
/// mid-protocol, and the stream is dropped with it.
pub async fn connect(
    stream: TcpStream,
    cfg: &LinkConfig,
    expected: Option<NodeId>,
) -> Result<Link, HandshakeError> {
    connect_with(stream, cfg, expected, make_proof).await
}

/// Answers a dial: runs the handshake as responder over `stream`.
///
/// Not cancel-safe in any useful sense, as [`connect`].
// The node answers through `accept_gated`; tests and the link benchmark
// answer without a gate.
pub async fn accept(stream: TcpStream, cfg: &LinkConfig) -> Result<Link, HandshakeError> {
    accept_with(stream, cfg, make_proof).await
}

/// Turns a dial away for `reason` (say, "too many inbound links"): reads the
/// dialler's hello, so the answer is not lost to a reset, and answers with the
/// reason, which the dialler reports as [`HandshakeError::Refused`]. `Ok`
/// means the peer was told.
pub async fn refuse(
    mut stream: TcpStream,
    cfg: &LinkConfig,
    reason: &str,
) -> Result<(), HandshakeError> {
    let ours = Hello::ours(cfg);
    let told = async {
        match read_hello(&mut stream).await {
            Ok(_) => {}
            Err(err) => {
                reply_hello(&mut stream, &ours, &err).await;
                return Err(err);
            }
        }
        let mut out = ours.encode().to_vec();
        put_status(&mut out, Status::Refused, reason);
        stream.write_all(&out).await?;
        // Send our FIN now, so the dialler reads the reason and then EOF.
        stream.shutdown().await?;
        Ok(())
    };
    let result = run_with_timeout(cfg.handshake_timeout, told).await;
    match &result {
        Ok(()) => tracing::debug!(reason, "refused inbound link"),
        Err(err) => tracing::debug!(%err, reason, "refusing inbound link failed"),
    }
    result
}
