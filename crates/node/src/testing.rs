//! A hostile peer for tests (feature `test-utils`): it opens a link to a
//! node exactly as the transport does, with the real preamble and Noise
//! handshake, and then lets a test put whatever it likes on that link:
//! well-formed messages a node should refuse, arbitrary message bytes,
//! arbitrary plaintext in one sealed frame (a message length no honest
//! peer would announce), or raw bytes on the socket past the framing. It
//! reads what the node sends back and tells when the node has closed the
//! link. Beside it, the pieces of a handshake a test needs to stop half
//! way or to lie in: the plaintext hello and the bytes of a first Noise
//! message.
//!
//! Nothing here is for programs: a node never needs it, and it skips every
//! check an honest peer would make on itself.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use gossipnet_proto::wire::{self, Message};
use gossipnet_proto::{NodeId, SecretKey};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::transport::{connect, LinkConfig, LinkReader, LinkWriter};

/// The magic that opens a hello; see [`crate::transport`] for the layout.
const MAGIC: &[u8; 4] = b"GSPN";

/// Bytes of the network id's hash in a hello.
const NETWORK_TAG_BYTES: usize = 8;

/// Bytes of a whole hello: magic, version, network tag, flags.
pub const HELLO_BYTES: usize = MAGIC.len() + 2 + NETWORK_TAG_BYTES + 1;

/// Bytes of an X25519 public key: all the first Noise XX message holds.
const NOISE_KEY_BYTES: usize = 32;

/// Time a hostile peer allows its own handshake: as long as a node's
/// default, so a loaded machine does not fail a test by itself.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a hostile peer could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum HostileError {
    /// The node refused the handshake or it failed; the transport's words.
    #[error("handshake failed: {0}")]
    Handshake(String),
    /// The socket failed, or the node closed the link.
    #[error("link failed: {0}")]
    Link(String),
    /// Nothing arrived within the time given.
    #[error("nothing arrived in time")]
    Timeout,
}

/// How a hostile peer presents itself in its handshake.
#[derive(Debug, Clone)]
pub struct HostileConfig {
    /// The key it proves; its id is the one the node sees.
    pub key: SecretKey,
    /// The network it claims to be on.
    pub network_id: String,
    /// The pre-shared key it uses, if any.
    pub psk: Option<[u8; 32]>,
}

impl HostileConfig {
    /// An open-network peer with key `key` on `network_id`.
    pub fn new(key: SecretKey, network_id: impl Into<String>) -> Self {
        Self {
            key,
            network_id: network_id.into(),
            psk: None,
        }
    }

    fn link(&self) -> LinkConfig {
        LinkConfig {
            secret: self.key.clone(),
            network_id: self.network_id.clone(),
            psk: self.psk,
            handshake_timeout: HANDSHAKE_TIMEOUT,
        }
    }
}

/// A peer with an established link to a node, which sends what the test
/// says and reads what comes back.
#[derive(Debug)]
pub struct HostilePeer {
    key: SecretKey,
    node: NodeId,
    reader: LinkReader,
    writer: LinkWriter,
}

impl HostilePeer {
    /// Dials `addr` and runs the real handshake as `cfg` says. The node's
    /// id is whatever it proves.
    pub async fn connect(addr: SocketAddr, cfg: &HostileConfig) -> Result<Self, HostileError> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| HostileError::Handshake(e.to_string()))?;
        let link = connect(stream, &cfg.link(), None)
            .await
            .map_err(|e| HostileError::Handshake(e.to_string()))?;
        let node = link.peer;
        let (reader, writer) = link.into_split();
        Ok(Self {
            key: cfg.key.clone(),
            node,
            reader,
            writer,
        })
    }

    /// Our id, as the node sees it.
    pub fn id(&self) -> NodeId {
        self.key.node_id()
    }

    /// Our key, to sign with.
    pub fn key(&self) -> &SecretKey {
        &self.key
    }

    /// The id the node proved.
    pub fn node(&self) -> NodeId {
        self.node
    }

    /// Sends one wire message, encoded as an honest peer would.
    pub async fn send(&mut self, message: &Message) -> Result<(), HostileError> {
        self.send_bytes(&[Bytes::from(wire::encode(message))]).await
    }

    /// Sends each of `messages` as one message of the link, whatever its
    /// bytes (up to the link's limit on a message), in one batch.
    pub async fn send_bytes(&mut self, messages: &[Bytes]) -> Result<(), HostileError> {
        self.writer
            .send(messages)
            .await
            .map_err(|e| HostileError::Link(e.to_string()))
    }

    /// Seals `plaintext` as one encrypted frame and writes it, with no
    /// message length of ours in front: the test writes the lengths it
    /// wants (a 4 GiB one, say). At most one frame's plaintext.
    pub async fn send_frame(&mut self, plaintext: &[u8]) -> Result<(), HostileError> {
        let w = &mut self.writer;
        // A plaintext of exactly one frame is sealed by `push_plain`, and the
        // seal after it adds an empty frame, which any reader accepts.
        let sealed = w.push_plain(plaintext).and_then(|()| w.seal_frame());
        sealed.map_err(|e| HostileError::Link(e.to_string()))?;
        w.flush_wire()
            .await
            .map_err(|e| HostileError::Link(e.to_string()))
    }

    /// Writes `bytes` on the socket as they are, past the framing and the
    /// encryption.
    pub async fn send_raw(&mut self, bytes: &[u8]) -> Result<(), HostileError> {
        self.writer
            .stream
            .write_all(bytes)
            .await
            .map_err(|e| HostileError::Link(e.to_string()))
    }

    /// The next message from the node, decoded if it decodes; `Ok(None)`
    /// once the node has closed the link cleanly.
    pub async fn recv(
        &mut self,
        within: Duration,
    ) -> Result<Option<Result<Message, Bytes>>, HostileError> {
        match tokio::time::timeout(within, self.reader.recv()).await {
            Err(_) => Err(HostileError::Timeout),
            Ok(Err(e)) => Err(HostileError::Link(e.to_string())),
            Ok(Ok(None)) => Ok(None),
            Ok(Ok(Some(bytes))) => Ok(Some(wire::decode(&bytes).map_err(|_| bytes))),
        }
    }

    /// Reads and drops what the node sends until it closes the link (end of
    /// stream or a failed socket): true if it did within `within`.
    pub async fn closed_within(&mut self, within: Duration) -> bool {
        let until = tokio::time::Instant::now() + within;
        loop {
            let left = until.saturating_duration_since(tokio::time::Instant::now());
            match self.recv(left).await {
                Ok(Some(_)) => continue,
                Ok(None) | Err(HostileError::Link(_)) => return true,
                Err(_) => return false,
            }
        }
    }

    /// Reads messages until `pick` takes one, for at most `within`; every
    /// message passed over is dropped.
    pub async fn wait_for<T>(
        &mut self,
        within: Duration,
        mut pick: impl FnMut(&Message) -> Option<T>,
    ) -> Result<T, HostileError> {
        let until = tokio::time::Instant::now() + within;
        loop {
            let left = until.saturating_duration_since(tokio::time::Instant::now());
            match self.recv(left).await? {
                None => return Err(HostileError::Link("closed by the node".into())),
                Some(Ok(msg)) => {
                    if let Some(found) = pick(&msg) {
                        return Ok(found);
                    }
                }
                Some(Err(_)) => {}
            }
        }
    }

    /// The two halves, for a test that reads and writes from two tasks or
    /// that holds the link and never reads.
    pub fn split(self) -> (HostileReader, HostileWriter) {
        (
            HostileReader {
                reader: self.reader,
            },
            HostileWriter {
                writer: self.writer,
            },
        )
    }
}

/// The reading half of a [`HostilePeer`]; dropping it does not close the
/// link.
#[derive(Debug)]
pub struct HostileReader {
    reader: LinkReader,
}

impl HostileReader {
    /// The next message's bytes; `Ok(None)` once the node closed the link.
    pub async fn recv(&mut self) -> Result<Option<Bytes>, HostileError> {
        self.reader
            .recv()
            .await
            .map_err(|e| HostileError::Link(e.to_string()))
    }
}

/// The writing half of a [`HostilePeer`].
#[derive(Debug)]
pub struct HostileWriter {
    writer: LinkWriter,
}

impl HostileWriter {
    /// Sends one wire message.
    pub async fn send(&mut self, message: &Message) -> Result<(), HostileError> {
        self.writer
            .send(&[Bytes::from(wire::encode(message))])
            .await
            .map_err(|e| HostileError::Link(e.to_string()))
    }
}

/// A plaintext hello of protocol `version` for `network_id`, with the
/// pre-shared-key flag set as `psk` says: what a dialler sends first.
pub fn hello(version: u16, network_id: &str, psk: bool) -> [u8; HELLO_BYTES] {
    let mut out = [0u8; HELLO_BYTES];
    out[..4].copy_from_slice(MAGIC);
    out[4..6].copy_from_slice(&version.to_be_bytes());
    let tag = blake3::hash(network_id.as_bytes());
    out[6..6 + NETWORK_TAG_BYTES].copy_from_slice(&tag.as_bytes()[..NETWORK_TAG_BYTES]);
    out[HELLO_BYTES - 1] = u8::from(psk);
    out
}

/// The first Noise XX message as the wire carries it: a u16 length and an
/// ephemeral public key. Any 32 bytes are a key to the listener, which
/// cannot tell these from a real one until the third message.
pub fn first_noise_message(ephemeral: [u8; NOISE_KEY_BYTES]) -> Vec<u8> {
    let len = u16::try_from(NOISE_KEY_BYTES).unwrap_or(u16::MAX);
    let mut out = len.to_be_bytes().to_vec();
    out.extend_from_slice(&ephemeral);
    out
}
