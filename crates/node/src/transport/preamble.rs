//! The plaintext preamble that opens every link, before any cryptography:
//! a fixed-size hello each way and a status record from the listener.
//!
//! Its layout (magic, version, network tag, flags; then status and reason)
//! is given in [`crate::transport`] and must never change across versions,
//! so that any two versions can tell each other apart. It exists so that a
//! peer refused for its version, network, pre-shared key use or our load
//! learns why, in words, instead of watching a Noise handshake fail. The
//! status records it defines also carry aborts and the listener's verdict
//! through [`super::handshake`]. Nothing in it is authenticated: a forged
//! record can explain a failure but never turn one into a success.

use std::io;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{HandshakeError, LinkConfig, PROTOCOL_VERSION};

/// Longest refusal reason sent or accepted: one sentence; it must fit the
/// one-byte length of a status record.
pub const MAX_REASON_BYTES: usize = 200;

/// First bytes of every hello; tells a gossipnet peer from a stray client.
const MAGIC: [u8; 4] = *b"GSPN";

/// Bytes of the network id hash carried in the hello: enough to tell networks
/// apart by accident; the Noise prologue binds the full id anyway.
pub(super) const NETWORK_TAG_BYTES: usize = 8;

/// Hello: magic, version, network tag, flags.
pub(super) const HELLO_BYTES: usize = MAGIC.len() + 2 + NETWORK_TAG_BYTES + 1;

/// Hello flag: this side uses a pre-shared key (a private network).
const FLAG_PSK: u8 = 0x01;

/// The fixed-size plaintext hello.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Hello {
    pub(super) version: u16,
    pub(super) network_tag: [u8; NETWORK_TAG_BYTES],
    pub(super) psk: bool,
}

impl Hello {
    pub(super) fn ours(cfg: &LinkConfig) -> Self {
        let hash = blake3::hash(cfg.network_id.as_bytes());
        let mut network_tag = [0u8; NETWORK_TAG_BYTES];
        network_tag.copy_from_slice(&hash.as_bytes()[..NETWORK_TAG_BYTES]);
        Self {
            version: PROTOCOL_VERSION,
            network_tag,
            psk: cfg.psk.is_some(),
        }
    }

    pub(super) fn encode(&self) -> [u8; HELLO_BYTES] {
        let mut out = [0u8; HELLO_BYTES];
        out[..4].copy_from_slice(&MAGIC);
        out[4..6].copy_from_slice(&self.version.to_be_bytes());
        out[6..6 + NETWORK_TAG_BYTES].copy_from_slice(&self.network_tag);
        out[HELLO_BYTES - 1] = if self.psk { FLAG_PSK } else { 0 };
        out
    }

    pub(super) fn decode(bytes: &[u8; HELLO_BYTES]) -> Result<Self, HandshakeError> {
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
    pub(super) fn check(&self, theirs: &Hello) -> Result<(), HandshakeError> {
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
pub(super) enum Status {
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
pub(super) fn wire_status(err: &HandshakeError) -> Option<(Status, &'static str)> {
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
pub(super) fn peer_error(status: u8, reason: String, theirs: Option<&Hello>) -> HandshakeError {
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
pub(super) fn put_status(out: &mut Vec<u8>, status: Status, reason: &str) {
    let mut end = reason.len().min(MAX_REASON_BYTES);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    out.push(status as u8);
    // `end` <= MAX_REASON_BYTES < 256.
    out.push(u8::try_from(end).unwrap_or(u8::MAX));
    out.extend_from_slice(&reason.as_bytes()[..end]);
}

pub(super) async fn read_status(stream: &mut TcpStream) -> Result<(u8, String), HandshakeError> {
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

pub(super) async fn read_hello(stream: &mut TcpStream) -> Result<Hello, HandshakeError> {
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
pub(super) async fn reply_hello(stream: &mut TcpStream, ours: &Hello, err: &HandshakeError) {
    let Some((status, reason)) = wire_status(err) else {
        return;
    };
    let mut out = ours.encode().to_vec();
    put_status(&mut out, status, reason);
    // Ignored: the peer may be gone, and our own error is what we report.
    let _ = stream.write_all(&out).await;
}
