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
//!    status byte (0 = accepted) and a reason of at most [`MAX_REASON_BYTES`]
//!    bytes, preceded by its length in one byte. The preamble exists so that a
//!    peer refused for its version, network, key or the listener's load learns
//!    why, in words, instead of watching a Noise handshake fail.
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

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use gossipnet_proto::identity::{NodeId, SecretKey, Signature};
use snow::{HandshakeState, StatelessTransportState};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

// The version sent in the hello (a peer with another one is refused with
// [`HandshakeError::WrongVersion`]) and the bound on one message are the
// wire's: a link carries exactly what `wire` encodes, so both live there.
pub use gossipnet_proto::wire::{MAX_MESSAGE_BYTES, PROTOCOL_VERSION};

/// Time allowed for preamble and handshake together when the caller has no
/// opinion: a few round trips over the worst link we expect, with margin.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest refusal reason sent or accepted: one sentence; it must fit the
/// one-byte length of a status record.
pub const MAX_REASON_BYTES: usize = 200;

/// Bound on one Noise handshake message. Ours are at most 192 bytes; the rest
/// is room for later payload fields, while an unauthenticated peer still cannot
/// make us buffer more than this.
const MAX_HANDSHAKE_MESSAGE_BYTES: usize = 1024;

/// The Noise protocol's own limit on a message, hence on a transport frame.
const MAX_FRAME_BYTES: usize = 65535;

/// The ChaChaPoly authentication tag that each frame carries.
const TAG_BYTES: usize = 16;

/// Plaintext that fits one frame.
const MAX_FRAME_PLAINTEXT: usize = MAX_FRAME_BYTES - TAG_BYTES;

/// Bytes of a message's length prefix in the plaintext stream.
const MESSAGE_HEADER_BYTES: usize = 4;

/// Bytes of a frame's (and a handshake message's) length prefix on the wire.
const FRAME_HEADER_BYTES: usize = 2;

/// A batch is encrypted into one buffer and written at once up to this size;
/// a larger batch goes out in several writes so the buffer stays bounded.
const MAX_WRITE_BUFFER_BYTES: usize = 1 << 20;

/// Send-buffer capacity kept between batches: enough for the common batch
/// without reallocating, while one huge batch does not pin its memory forever.
const RETAINED_WRITE_BUFFER_BYTES: usize = 256 << 10;

/// Spare room offered to each socket read: a few frames of small messages, so
/// a busy link is drained in few system calls.
const READ_CHUNK_BYTES: usize = 16 << 10;

/// First bytes of every hello; tells a gossipnet peer from a stray client.
const MAGIC: [u8; 4] = *b"GSPN";

/// Bytes of the network id hash carried in the hello: enough to tell networks
/// apart by accident; the Noise prologue binds the full id anyway.
const NETWORK_TAG_BYTES: usize = 8;

/// Hello: magic, version, network tag, flags.
const HELLO_BYTES: usize = MAGIC.len() + 2 + NETWORK_TAG_BYTES + 1;

/// Hello flag: this side uses a pre-shared key (a private network).
const FLAG_PSK: u8 = 0x01;

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
const PROOF_BYTES: usize = 32 + 64;

/// Length of an X25519 public key, the Noise static key we sign.
const NOISE_KEY_BYTES: usize = 32;

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

/// The reading half of a link.
///
/// `recv` is cancel-safe: partly received frames and messages are kept in the
/// struct, and its one await point, a socket read, loses nothing if dropped.
/// Memory is bounded: one message being assembled (at most
/// [`MAX_MESSAGE_BYTES`]) plus about two frames.
pub struct LinkReader {
    peer: NodeId,
    stream: OwnedReadHalf,
    noise: Arc<StatelessTransportState>,
    /// Nonce of the next frame from the peer.
    nonce: u64,
    /// Bytes read from the socket and not yet decrypted.
    wire: BytesMut,
    /// Decrypted bytes not yet returned as messages.
    plain: BytesMut,
}

impl LinkReader {
    /// The peer's proven node id.
    pub fn peer(&self) -> NodeId {
        self.peer
    }

    /// The next message, or `None` when the peer closed the link cleanly.
    ///
    /// A returned message may share its allocation with its neighbours on the
    /// wire; copy it if it is to be kept long. Cancel-safe (see the type).
    pub async fn recv(&mut self) -> Result<Option<Bytes>, LinkError> {
        loop {
            if let Some(msg) = self.take_message()? {
                return Ok(Some(msg));
            }
            if self.open_frame()? {
                continue;
            }
            // Only reached with less than a frame buffered, so `wire` stays
            // within a frame plus one chunk.
            self.wire.reserve(READ_CHUNK_BYTES);
            if self.stream.read_buf(&mut self.wire).await? == 0 {
                return if self.wire.is_empty() && self.plain.is_empty() {
                    Ok(None)
                } else {
                    Err(LinkError::Truncated)
                };
            }
        }
    }

    /// Splits one complete message off the plaintext, if there is one.
    fn take_message(&mut self) -> Result<Option<Bytes>, LinkError> {
        let Some(&[a, b, c, d]) = self.plain.get(..MESSAGE_HEADER_BYTES) else {
            return Ok(None);
        };
        let announced = u32::from_be_bytes([a, b, c, d]);
        let len = usize::try_from(announced).unwrap_or(usize::MAX);
        // Refused as soon as the length is seen, before buffering the body.
        if len > MAX_MESSAGE_BYTES {
            return Err(LinkError::MessageTooLarge {
                len,
                max: MAX_MESSAGE_BYTES,
            });
        }
        if self.plain.len() - MESSAGE_HEADER_BYTES < len {
            return Ok(None);
        }
        self.plain.advance(MESSAGE_HEADER_BYTES);
        Ok(Some(self.plain.split_to(len).freeze()))
    }

    /// Decrypts one complete frame from `wire` into `plain`; false if none is
    /// complete yet.
    fn open_frame(&mut self) -> Result<bool, LinkError> {
        let Some(&[hi, lo]) = self.wire.get(..FRAME_HEADER_BYTES) else {
            return Ok(false);
        };
        let len = usize::from(u16::from_be_bytes([hi, lo]));
        if len < TAG_BYTES {
            return Err(LinkError::ShortFrame { len });
        }
        let Some(frame) = self.wire.get(FRAME_HEADER_BYTES..FRAME_HEADER_BYTES + len) else {
            return Ok(false);
        };
        let start = self.plain.len();
        self.plain.resize(start + len - TAG_BYTES, 0);
        match self
            .noise
            .read_message(self.nonce, frame, &mut self.plain[start..])
        {
            Ok(n) => self.plain.truncate(start + n),
            Err(err) => {
                self.plain.truncate(start);
                return Err(match err {
                    snow::Error::State(_) => LinkError::NonceExhausted,
                    _ => LinkError::Decrypt,
                });
            }
        }
        self.nonce += 1;
        self.wire.advance(FRAME_HEADER_BYTES + len);
        Ok(true)
    }
}

impl fmt::Debug for LinkReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LinkReader")
            .field("peer", &self.peer)
            .field("nonce", &self.nonce)
            .finish_non_exhaustive()
    }
}

/// The writing half of a link.
///
/// `send` is not cancel-safe: dropped midway, it may leave part of a batch on
/// the wire, so the writer refuses further sends ([`LinkError::Broken`]) and
/// the link must be closed.
pub struct LinkWriter {
    peer: NodeId,
    stream: OwnedWriteHalf,
    noise: Arc<StatelessTransportState>,
    /// Nonce of our next frame.
    nonce: u64,
    /// Plaintext of the frame being filled; never more than one frame.
    plain: Vec<u8>,
    /// Sealed frames waiting to be written.
    wire: Vec<u8>,
    /// Set while a send is in flight; still set after one failed or was dropped.
    broken: bool,
}

impl LinkWriter {
    /// The peer's proven node id.
    pub fn peer(&self) -> NodeId {
        self.peer
    }

    /// Sends `msgs` in order. The batch is coalesced into frames and written
    /// with one `write_all` (several only for a batch past 1 MiB, which keeps
    /// the buffer bounded).
    /// A message over [`MAX_MESSAGE_BYTES`] fails the whole batch before
    /// anything is sent. Not cancel-safe (see the type).
    pub async fn send(&mut self, msgs: &[Bytes]) -> Result<(), LinkError> {
        if self.broken {
            return Err(LinkError::Broken);
        }
        if let Some(msg) = msgs.iter().find(|m| m.len() > MAX_MESSAGE_BYTES) {
            return Err(LinkError::MessageTooLarge {
                len: msg.len(),
                max: MAX_MESSAGE_BYTES,
            });
        }
        self.broken = true;
        for msg in msgs {
            // Checked above: the length fits in u32.
            let header = u32::try_from(msg.len()).map_err(|_| LinkError::MessageTooLarge {
                len: msg.len(),
                max: MAX_MESSAGE_BYTES,
            })?;
            self.push_plain(&header.to_be_bytes())?;
            self.push_plain(msg)?;
            if self.wire.len() >= MAX_WRITE_BUFFER_BYTES {
                self.flush_wire().await?;
            }
        }
        if !self.plain.is_empty() {
            self.seal_frame()?;
        }
        self.flush_wire().await?;
        self.broken = false;
        Ok(())
    }

    /// Closes our direction; the peer's reader sees a clean end of stream.
    pub async fn shutdown(&mut self) -> Result<(), LinkError> {
        self.stream.shutdown().await?;
        Ok(())
    }

    /// Appends to the plaintext stream, sealing each frame as it fills.
    fn push_plain(&mut self, mut data: &[u8]) -> Result<(), LinkError> {
        while !data.is_empty() {
            let take = (MAX_FRAME_PLAINTEXT - self.plain.len()).min(data.len());
            let (now, later) = data.split_at(take);
            self.plain.extend_from_slice(now);
            data = later;
            if self.plain.len() == MAX_FRAME_PLAINTEXT {
                self.seal_frame()?;
            }
        }
        Ok(())
    }

    /// Encrypts `plain` as one frame at the end of `wire`.
    fn seal_frame(&mut self) -> Result<(), LinkError> {
        let sealed = self.plain.len() + TAG_BYTES;
        // Cannot fail: `plain` never holds more than a frame's plaintext.
        let header = u16::try_from(sealed).map_err(|_| LinkError::ShortFrame { len: sealed })?;
        let start = self.wire.len() + FRAME_HEADER_BYTES;
        self.wire.extend_from_slice(&header.to_be_bytes());
        self.wire.resize(start + sealed, 0);
        self.noise
            .write_message(self.nonce, &self.plain, &mut self.wire[start..])
            .map_err(|_| LinkError::NonceExhausted)?;
        self.nonce += 1;
        self.plain.clear();
        Ok(())
    }

    /// Writes the sealed frames in one call and empties the buffer.
    async fn flush_wire(&mut self) -> Result<(), LinkError> {
        if self.wire.is_empty() {
            return Ok(());
        }
        self.stream.write_all(&self.wire).await?;
        self.wire.clear();
        self.wire.shrink_to(RETAINED_WRITE_BUFFER_BYTES);
        Ok(())
    }
}

impl fmt::Debug for LinkWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LinkWriter")
            .field("peer", &self.peer)
            .field("nonce", &self.nonce)
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

/// Makes the identity proof for our Noise static key. A parameter of the
/// handshake so tests can forge one.
type ProveFn = fn(&SecretKey, &[u8]) -> [u8; PROOF_BYTES];

fn make_proof(secret: &SecretKey, noise_static: &[u8]) -> [u8; PROOF_BYTES] {
    let signature = secret.sign(&proof_message(noise_static));
    let mut proof = [0u8; PROOF_BYTES];
    proof[..32].copy_from_slice(secret.node_id().as_bytes());
    proof[32..].copy_from_slice(&signature.0);
    proof
}

fn proof_message(noise_static: &[u8]) -> Vec<u8> {
    [PROOF_DOMAIN, noise_static].concat()
}

/// Checks the peer's proof against the Noise static key it used.
fn check_proof(payload: &[u8], remote_static: Option<&[u8]>) -> Result<NodeId, HandshakeError> {
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

async fn connect_with(
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

async fn accept_with(
    mut stream: TcpStream,
    cfg: &LinkConfig,
    prove: ProveFn,
) -> Result<Link, HandshakeError> {
    stream.set_nodelay(true)?;
    let result = run_with_timeout(cfg.handshake_timeout, respond(&mut stream, cfg, prove)).await;
    finish(stream, result, "inbound")
}

async fn run_with_timeout<T>(
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
    let noise = Arc::new(
        handshake
            .into_stateless_transport_mode()
            .map_err(HandshakeError::Noise)?,
    );
    let (read, write) = stream.into_split();
    tracing::debug!(peer = %peer.short(), direction, "link up");
    Ok(Link {
        peer,
        reader: LinkReader {
            peer,
            stream: read,
            noise: Arc::clone(&noise),
            nonce: 0,
            wire: BytesMut::new(),
            plain: BytesMut::new(),
        },
        writer: LinkWriter {
            peer,
            stream: write,
            noise,
            nonce: 0,
            plain: Vec::with_capacity(MAX_FRAME_PLAINTEXT),
            wire: Vec::new(),
            broken: false,
        },
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
    let mut verdict = Vec::new();
    match &peer {
        Ok(_) => put_status(&mut verdict, Status::Ok, ""),
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

/// The fixed-size plaintext hello.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Hello {
    version: u16,
    network_tag: [u8; NETWORK_TAG_BYTES],
    psk: bool,
}

impl Hello {
    fn ours(cfg: &LinkConfig) -> Self {
        let hash = blake3::hash(cfg.network_id.as_bytes());
        let mut network_tag = [0u8; NETWORK_TAG_BYTES];
        network_tag.copy_from_slice(&hash.as_bytes()[..NETWORK_TAG_BYTES]);
        Self {
            version: PROTOCOL_VERSION,
            network_tag,
            psk: cfg.psk.is_some(),
        }
    }

    fn encode(&self) -> [u8; HELLO_BYTES] {
        let mut out = [0u8; HELLO_BYTES];
        out[..4].copy_from_slice(&MAGIC);
        out[4..6].copy_from_slice(&self.version.to_be_bytes());
        out[6..6 + NETWORK_TAG_BYTES].copy_from_slice(&self.network_tag);
        out[HELLO_BYTES - 1] = if self.psk { FLAG_PSK } else { 0 };
        out
    }

    fn decode(bytes: &[u8; HELLO_BYTES]) -> Result<Self, HandshakeError> {
        if bytes[..4] != MAGIC {
            return Err(HandshakeError::NotGossipnet);
        }
        let mut network_tag = [0u8; NETWORK_TAG_BYTES];
        network_tag.copy_from_slice(&bytes[6..6 + NETWORK_TAG_BYTES]);
        Ok(Self {
            version: u16::from_be_bytes([bytes[4], bytes[5]]),
            network_tag,
            psk: bytes[HELLO_BYTES - 1] & FLAG_PSK != 0,
        })
    }

    /// Whether a peer with hello `theirs` may link with us. Version first:
    /// under another version the other fields may not mean the same.
    fn check(&self, theirs: &Hello) -> Result<(), HandshakeError> {
        if theirs.version != self.version {
            Err(HandshakeError::WrongVersion {
                ours: self.version,
                theirs: theirs.version,
            })
        } else if theirs.network_tag != self.network_tag {
            Err(HandshakeError::WrongNetwork)
        } else if theirs.psk != self.psk {
            Err(HandshakeError::PskMismatch)
        } else {
            Ok(())
        }
    }
}

/// Status codes of a status record. Unknown codes read as a refusal, so later
/// versions may add codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Status {
    Ok = 0,
    WrongVersion = 1,
    WrongNetwork = 2,
    PskMismatch = 3,
    Refused = 4,
    NotGossipnet = 5,
    Crypto = 6,
    BadIdentity = 7,
    UnexpectedPeer = 8,
    Malformed = 9,
}

/// The status and reason that tell the peer about our error; none for a
/// failed or silent socket, where nobody is listening.
fn wire_status(err: &HandshakeError) -> Option<(Status, &'static str)> {
    let status = match err {
        HandshakeError::WrongVersion { .. } => (Status::WrongVersion, "protocol version mismatch"),
        HandshakeError::WrongNetwork => (Status::WrongNetwork, "different network id"),
        HandshakeError::PskMismatch => (Status::PskMismatch, "pre-shared key use differs"),
        HandshakeError::NotGossipnet => (Status::NotGossipnet, "not a gossipnet hello"),
        HandshakeError::Crypto => (Status::Crypto, "handshake failed to decrypt"),
        HandshakeError::BadIdentity => (Status::BadIdentity, "your identity proof is invalid"),
        HandshakeError::UnexpectedPeer { .. } => (
            Status::UnexpectedPeer,
            "you are not the node that was dialled",
        ),
        HandshakeError::Refused(_) => (Status::Refused, "refused"),
        HandshakeError::Malformed(_) | HandshakeError::Noise(_) => {
            (Status::Malformed, "malformed handshake")
        }
        HandshakeError::Io(_) | HandshakeError::Closed | HandshakeError::Timeout => return None,
    };
    Some(status)
}

/// Our error for a status the peer sent. The peer's hello, when there is one,
/// gives the details of a version mismatch.
fn peer_error(status: u8, reason: String, theirs: Option<&Hello>) -> HandshakeError {
    match (status, theirs) {
        (s, Some(theirs)) if s == Status::WrongVersion as u8 => HandshakeError::WrongVersion {
            ours: PROTOCOL_VERSION,
            theirs: theirs.version,
        },
        (s, _) if s == Status::WrongNetwork as u8 => HandshakeError::WrongNetwork,
        (s, _) if s == Status::PskMismatch as u8 => HandshakeError::PskMismatch,
        (s, _) if s == Status::Crypto as u8 => HandshakeError::Crypto,
        _ => HandshakeError::Refused(reason),
    }
}

/// Appends a status record; the reason is cut to [`MAX_REASON_BYTES`] on a
/// character boundary.
fn put_status(out: &mut Vec<u8>, status: Status, reason: &str) {
    let mut end = reason.len().min(MAX_REASON_BYTES);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    out.push(status as u8);
    // `end` <= MAX_REASON_BYTES < 256.
    out.push(u8::try_from(end).unwrap_or(u8::MAX));
    out.extend_from_slice(&reason.as_bytes()[..end]);
}

async fn read_status(stream: &mut TcpStream) -> Result<(u8, String), HandshakeError> {
    let mut head = [0u8; 2];
    stream.read_exact(&mut head).await?;
    let [status, len] = head;
    let len = usize::from(len);
    if len > MAX_REASON_BYTES {
        return Err(HandshakeError::Malformed("refusal reason too long"));
    }
    let mut reason = vec![0u8; len];
    stream.read_exact(&mut reason).await?;
    // The reason ends up in logs and terminals: no control characters.
    let reason = String::from_utf8_lossy(&reason)
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    Ok((status, reason))
}

async fn read_hello(stream: &mut TcpStream) -> Result<Hello, HandshakeError> {
    let mut buf = [0u8; HELLO_BYTES];
    // The magic is judged as soon as it arrives, so a stray client (a browser,
    // a port scanner) is told apart at once rather than by the timeout.
    let got = read_up_to(stream, &mut buf[..MAGIC.len()]).await?;
    if buf[..got] != MAGIC[..got] {
        return Err(HandshakeError::NotGossipnet);
    }
    if got < MAGIC.len() {
        return Err(HandshakeError::Closed);
    }
    stream.read_exact(&mut buf[MAGIC.len()..]).await?;
    Hello::decode(&buf)
}

/// Fills `buf` or stops at end of stream; returns how much was read.
async fn read_up_to(stream: &mut TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match stream.read(&mut buf[got..]).await? {
            0 => break,
            n => got += n,
        }
    }
    Ok(got)
}

/// Best effort: our hello and the status for `err`, before hanging up.
async fn reply_hello(stream: &mut TcpStream, ours: &Hello, err: &HandshakeError) {
    let Some((status, reason)) = wire_status(err) else {
        return;
    };
    let mut out = ours.encode().to_vec();
    put_status(&mut out, status, reason);
    // Ignored: the peer may be gone, and our own error is what we report.
    let _ = stream.write_all(&out).await;
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
async fn read_handshake_message(stream: &mut TcpStream) -> Result<Vec<u8>, HandshakeError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

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
            Err(HandshakeError::WrongVersion { ours: 1, theirs: 9 })
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
}
