//! The framing of an established link: length-delimited messages inside a
//! stream of Noise transport frames, and the two halves that carry them.
//!
//! Once [`super::handshake`] is done, each direction is independent: a
//! [`LinkReader`] and a [`LinkWriter`] each own their half of the socket and
//! their own nonce counter over one shared stateless Noise transport state, so
//! a reading task and a writing task never wait on each other. The format is
//! the one described in [`crate::transport`]: a u32 BE length before each
//! message in the plaintext stream, a u16 BE length before each frame of at
//! most 65535 bytes of ciphertext on the wire. Every buffer here is bounded by
//! [`MAX_MESSAGE_BYTES`] or by a constant below.
//!
//! Every write is bounded in time as well: a write that makes no progress
//! for the writer's timeout fails ([`LinkError::WriteTimeout`]), so a peer
//! that stops reading cannot pin the writer, its socket and its queue. The
//! socket itself carries TCP keepalive and `TCP_USER_TIMEOUT`, so the kernel
//! also gives up on a peer that vanished without a word.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use gossipnet_proto::identity::NodeId;
use snow::StatelessTransportState;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

use super::{LinkError, MAX_MESSAGE_BYTES};
use crate::config::DEFAULT_SLOW_LINK_TIMEOUT;

/// The Noise protocol's own limit on a message, hence on a transport frame.
const MAX_FRAME_BYTES: usize = 65535;

/// The ChaChaPoly authentication tag that each frame carries.
const TAG_BYTES: usize = 16;

/// Plaintext that fits one frame.
const MAX_FRAME_PLAINTEXT: usize = MAX_FRAME_BYTES - TAG_BYTES;

/// Bytes of a message's length prefix in the plaintext stream.
const MESSAGE_HEADER_BYTES: usize = 4;

/// Bytes of a frame's (and a handshake message's) length prefix on the wire.
pub(super) const FRAME_HEADER_BYTES: usize = 2;

/// A batch is encrypted into one buffer and written at once up to this size;
/// a larger batch goes out in several writes so the buffer stays bounded.
const MAX_WRITE_BUFFER_BYTES: usize = 1 << 20;

/// Buffer capacity a half keeps while it waits: enough for a ping or a
/// message or two, the common case on a settled link, without allocating;
/// a larger buffer, grown for a busy moment, is given back when it passes,
/// so the memory of an idle link does not stay at its busiest.
pub(super) const IDLE_BUFFER_BYTES: usize = 2 << 10;

/// Smallest spare room offered to a socket read: what an idle link needs
/// for the pings and single messages it mostly gets.
const MIN_READ_CHUNK_BYTES: usize = 2 << 10;

/// Largest spare room offered to a socket read: a full frame, so a busy
/// link is drained in few system calls.
const MAX_READ_CHUNK_BYTES: usize = 64 << 10;

/// An idle link is probed by TCP keepalive after this long: the protocol
/// pings its neighbours, but a link to a seed or a probe may be idle, and
/// a peer that vanished must not hold its slot until the idle timer.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(30);

/// Time between keepalive probes once probing has begun.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);

/// Unanswered keepalive probes after which the kernel drops the connection:
/// a few, so one lost probe does not cut a live link.
#[cfg(any(target_os = "linux", target_os = "android", target_os = "fuchsia"))]
const KEEPALIVE_RETRIES: u32 = 3;

/// Sets keepalive and the user timeout on a link's socket. A failure is
/// only logged: the write deadline bounds the link without them.
fn tune_socket(stream: &TcpStream, user_timeout: Duration) {
    let sock = socket2::SockRef::from(stream);
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(KEEPALIVE_IDLE)
        .with_interval(KEEPALIVE_INTERVAL);
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "fuchsia"))]
    let keepalive = keepalive.with_retries(KEEPALIVE_RETRIES);
    if let Err(err) = sock.set_tcp_keepalive(&keepalive) {
        tracing::debug!(%err, "cannot set TCP keepalive on a link");
    }
    set_user_timeout(stream, user_timeout);
}

/// Data unacknowledged this long makes the kernel drop the connection.
#[cfg(any(target_os = "linux", target_os = "android", target_os = "fuchsia"))]
fn set_user_timeout(stream: &TcpStream, timeout: Duration) {
    if let Err(err) = socket2::SockRef::from(stream).set_tcp_user_timeout(Some(timeout)) {
        tracing::debug!(%err, "cannot set TCP_USER_TIMEOUT on a link");
    }
}

/// Elsewhere there is no such option; the write deadline suffices.
#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "fuchsia")))]
fn set_user_timeout(_stream: &TcpStream, _timeout: Duration) {}

/// The two halves of a link whose handshake with `peer` is done, over the
/// transport state the handshake ended in.
pub(super) fn halves(
    peer: NodeId,
    stream: TcpStream,
    noise: StatelessTransportState,
) -> (LinkReader, LinkWriter) {
    // One state for both halves; each keeps its own direction's nonce.
    let noise = Arc::new(noise);
    tune_socket(&stream, DEFAULT_SLOW_LINK_TIMEOUT);
    let (read, write) = stream.into_split();
    let reader = LinkReader {
        peer,
        stream: read,
        noise: Arc::clone(&noise),
        nonce: 0,
        wire: BytesMut::new(),
        plain: BytesMut::new(),
        chunk: MIN_READ_CHUNK_BYTES,
    };
    let writer = LinkWriter {
        peer,
        stream: write,
        noise,
        nonce: 0,
        plain: Vec::new(),
        wire: Vec::new(),
        broken: false,
        write_timeout: DEFAULT_SLOW_LINK_TIMEOUT,
    };
    (reader, writer)
}

/// The reading half of a link.
///
/// `recv` is cancel-safe: partly received frames and messages are kept in the
/// struct, and its one await point, a socket read, loses nothing if dropped.
/// Memory is bounded: one message being assembled (at most
/// [`MAX_MESSAGE_BYTES`]) plus about two frames. It follows the traffic:
/// each read is offered room that grows while reads fill it and shrinks
/// while they do not, and a quiet link waiting for the peer with nothing
/// buffered holds no buffer at all.
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
    /// Spare room offered to the next socket read, between
    /// [`MIN_READ_CHUNK_BYTES`] and [`MAX_READ_CHUNK_BYTES`].
    chunk: usize,
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
            self.release_idle();
            // Wait before reserving, so a link that waits holds no room.
            self.stream.readable().await?;
            // Only reached with less than a frame buffered, so `wire` stays
            // within a frame plus one chunk.
            self.wire.reserve(self.chunk);
            let room = self.wire.capacity() - self.wire.len();
            let n = match self.stream.try_read_buf(&mut self.wire) {
                Ok(n) => n,
                // Readiness can be spurious; wait again.
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => continue,
                Err(err) => return Err(err.into()),
            };
            if n == 0 {
                return if self.wire.is_empty() && self.plain.is_empty() {
                    Ok(None)
                } else {
                    Err(LinkError::Truncated)
                };
            }
            self.chunk = next_chunk(self.chunk, n, room);
        }
    }

    /// Bytes of buffer this half holds, for the tests of its memory.
    #[cfg(test)]
    pub(super) fn buffer_capacity(&self) -> usize {
        self.wire.capacity() + self.plain.capacity()
    }

    /// Gives back buffers that hold nothing and are larger than the
    /// traffic now needs. Messages already returned keep their own
    /// allocation alive for as long as they are held.
    pub(super) fn release_idle(&mut self) {
        // A quiet link (reads at the smallest room) waits with no buffer;
        // a busy one keeps the room its reads are filling.
        let quiet = self.chunk == MIN_READ_CHUNK_BYTES;
        if self.wire.is_empty() && (quiet || self.wire.capacity() > self.chunk) {
            self.wire = BytesMut::new();
        }
        if self.plain.is_empty() && self.plain.capacity() > IDLE_BUFFER_BYTES {
            self.plain = BytesMut::new();
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

/// The room to offer the next read, after one that took `n` bytes of
/// `room`: doubled when the read filled it (more is waiting), halved when
/// it took under a quarter (the link has gone quiet).
fn next_chunk(chunk: usize, n: usize, room: usize) -> usize {
    if n >= room {
        (chunk * 2).min(MAX_READ_CHUNK_BYTES)
    } else if n < chunk / 4 {
        (chunk / 2).max(MIN_READ_CHUNK_BYTES)
    } else {
        chunk
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
/// the link must be closed. Nor can it hang: each socket write that makes no
/// progress within the write timeout fails the send.
pub struct LinkWriter {
    peer: NodeId,
    /// Reached by the unit tests and the hostile peer of `testing`, which
    /// write raw bytes past the framing.
    pub(crate) stream: OwnedWriteHalf,
    noise: Arc<StatelessTransportState>,
    /// Nonce of our next frame.
    nonce: u64,
    /// Plaintext of the frame being filled; never more than one frame.
    plain: Vec<u8>,
    /// Sealed frames waiting to be written.
    wire: Vec<u8>,
    /// Set while a send is in flight; still set after one failed or was dropped.
    broken: bool,
    /// Longest a socket write may make no progress.
    write_timeout: Duration,
}

impl LinkWriter {
    /// The peer's proven node id.
    pub fn peer(&self) -> NodeId {
        self.peer
    }

    /// Sends `msgs` in order. The batch is coalesced into frames and written
    /// in one go (several only for a batch past 1 MiB, which keeps
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
        // Room for the whole batch at once (within the bounds of each
        // buffer), rather than growing by doubling as it is filled.
        let plaintext: usize = msgs.iter().map(|m| MESSAGE_HEADER_BYTES + m.len()).sum();
        self.plain.reserve(plaintext.min(MAX_FRAME_PLAINTEXT));
        let frames = plaintext.div_ceil(MAX_FRAME_PLAINTEXT);
        let sealed = plaintext + frames * (FRAME_HEADER_BYTES + TAG_BYTES);
        self.wire.reserve(sealed.min(MAX_WRITE_BUFFER_BYTES));
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
        self.release_idle();
        self.broken = false;
        Ok(())
    }

    /// How long a write may make no progress before the send fails (and
    /// the socket's `TCP_USER_TIMEOUT`); the default is the node's.
    pub fn set_write_timeout(&mut self, timeout: Duration) {
        self.write_timeout = timeout;
        set_user_timeout(self.stream.as_ref(), timeout);
    }

    /// Closes our direction; the peer's reader sees a clean end of stream.
    /// Bounded by the write timeout, as a send is.
    pub async fn shutdown(&mut self) -> Result<(), LinkError> {
        tokio::time::timeout(self.write_timeout, self.stream.shutdown())
            .await
            .map_err(|_| LinkError::WriteTimeout(self.write_timeout))??;
        Ok(())
    }

    /// Appends to the plaintext stream, sealing each frame as it fills.
    pub(crate) fn push_plain(&mut self, mut data: &[u8]) -> Result<(), LinkError> {
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
    pub(crate) fn seal_frame(&mut self) -> Result<(), LinkError> {
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

    /// Writes the sealed frames and empties the buffer. Each socket write
    /// must take some bytes within the write timeout: a peer that reads
    /// slowly is served, one that stopped reading fails the send.
    pub(crate) async fn flush_wire(&mut self) -> Result<(), LinkError> {
        let mut written = 0;
        while written < self.wire.len() {
            let write = self.stream.write(&self.wire[written..]);
            let n = tokio::time::timeout(self.write_timeout, write)
                .await
                .map_err(|_| LinkError::WriteTimeout(self.write_timeout))??;
            if n == 0 {
                return Err(io::Error::from(io::ErrorKind::WriteZero).into());
            }
            written += n;
        }
        self.wire.clear();
        Ok(())
    }

    /// Bytes of buffer this half holds, for the tests of its memory.
    #[cfg(test)]
    pub(super) fn buffer_capacity(&self) -> usize {
        self.wire.capacity() + self.plain.capacity()
    }

    /// Gives back the buffers a large batch grew. A link that stays busy
    /// allocates them once per batch, a cost small beside sealing and
    /// writing the batch; an idle one keeps a small buffer, or none.
    fn release_idle(&mut self) {
        if self.wire.capacity() > IDLE_BUFFER_BYTES {
            self.wire = Vec::new();
        }
        if self.plain.capacity() > IDLE_BUFFER_BYTES {
            self.plain = Vec::new();
        }
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
