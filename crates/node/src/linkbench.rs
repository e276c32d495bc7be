//! Throughput of one link, measured as a node drives it: two ends in this
//! process joined by TCP on 127.0.0.1, the real preamble and Noise
//! handshake, batches written with the link writer's `send` and read back
//! one message at a time with the reader's `recv`. Beside it, the same
//! batches over a plain TCP connection on the same loopback, so that what
//! the link costs (framing, encryption, copies) can be told from what the
//! machine's sockets cost.
//!
//! This is the only way into links from outside the crate, and it hands out
//! figures, never a link: the transport stays private. `gossipnet bench
//! link` prints these figures next to the machine's crypto limits.
//!
//! Both measurements run the receiving end as a task of its own, so on a
//! multi-thread runtime sender and receiver each get a core, as two nodes
//! would. Every message is checked on arrival (its length) and counted; a
//! measurement succeeds only if every byte sent arrived.

use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use gossipnet_proto::identity::SecretKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinError, JoinHandle};
use tokio::time::Instant;

use crate::config::DEFAULT_LINK_QUEUE_BYTES;
use crate::transport::{self, LinkConfig, LinkError, MAX_MESSAGE_BYTES};

/// Most messages a node's link writer takes from its queue for one send;
/// the writer's own bound, repeated here because that one is private.
pub const MAX_BATCH_MESSAGES: usize = 256;

/// A network of its own, so these links could never pass for a real one's.
const NETWORK_ID: &str = "gossipnet-linkbench";

/// Bound on preamble and handshake: milliseconds on loopback, with margin
/// for a machine busy with other work.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The two ends' ed25519 keys: fixed, since nothing on a loopback
/// benchmark is secret, and fixed keys make every run alike.
const DIALLER_KEY: [u8; 32] = [1; 32];
/// See [`DIALLER_KEY`].
const LISTENER_KEY: [u8; 32] = [2; 32];

/// Most bytes in one batch: the plain TCP sender holds a batch as one
/// buffer, and 64 MiB is far past any batch a node writes (8 MiB).
pub const MAX_BATCH_BYTES: usize = 64 << 20;

/// The plain TCP receiver's read buffer: several of the link's frames per
/// read, so the baseline is the socket's limit, not the reader's.
const TCP_READ_BYTES: usize = 256 << 10;

/// What one measurement sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Load {
    /// Bytes of each message, from 1 to [`MAX_MESSAGE_BYTES`].
    pub payload: usize,
    /// Messages per send.
    pub batch: usize,
    /// Batches are sent until this long after the first began; at least
    /// one is always sent, so a zero duration sends exactly one.
    pub duration: Duration,
}

impl Load {
    /// Messages of `payload` bytes for `duration`, in the batches a busy
    /// node would write them in ([`node_batch`]).
    pub fn new(payload: usize, duration: Duration) -> Self {
        Self {
            payload,
            batch: node_batch(payload),
            duration,
        }
    }

    fn check(&self) -> Result<(), LinkBenchError> {
        if self.payload == 0 || self.payload > MAX_MESSAGE_BYTES {
            return Err(LinkBenchError::Payload(self.payload));
        }
        if self.batch == 0 {
            return Err(LinkBenchError::EmptyBatch);
        }
        if self.batch > MAX_BATCH_BYTES / self.payload {
            return Err(LinkBenchError::BatchTooLarge(self.batch));
        }
        Ok(())
    }

    /// One batch: `batch` handles on a single buffer, as a broadcast queued
    /// for many links shares one.
    fn messages(&self) -> Vec<Bytes> {
        vec![Bytes::from(vec![0u8; self.payload]); self.batch]
    }
}

/// The batch a busy node writes of `payload`-byte messages: all its writer
/// takes at once ([`MAX_BATCH_MESSAGES`]), and never more than a link's
/// queue may hold in bytes by default, since the writer only sees what
/// was queued.
pub fn node_batch(payload: usize) -> usize {
    (DEFAULT_LINK_QUEUE_BYTES / payload.max(1)).clamp(1, MAX_BATCH_MESSAGES)
}

/// What one measurement carried, all of it received and checked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Throughput {
    /// Bytes of each message.
    pub payload: usize,
    /// Messages per send.
    pub batch: usize,
    /// Messages received, the same number as were sent: a whole number of
    /// batches.
    pub messages: u64,
    /// Payload bytes received (`messages * payload`); length prefixes,
    /// frame headers and tags are not counted.
    pub bytes: u64,
    /// From the start of the first send to the end of the stream at the
    /// receiver.
    pub elapsed: Duration,
}

impl Throughput {
    /// Messages per second.
    pub fn messages_per_s(&self) -> f64 {
        self.messages as f64 / self.seconds()
    }

    /// Payload megabytes (10^6 bytes) per second.
    pub fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.seconds()
    }

    /// The elapsed time, never zero, so that rates stay finite.
    fn seconds(&self) -> f64 {
        self.elapsed.as_secs_f64().max(f64::MIN_POSITIVE)
    }
}

/// A failure of the link or the socket, kept with its own source.
type Source = Box<dyn std::error::Error + Send + Sync>;

/// Why a measurement failed.
#[derive(Debug, thiserror::Error)]
pub enum LinkBenchError {
    /// The payload is empty or larger than a link carries.
    #[error("a payload must be from 1 to {MAX_MESSAGE_BYTES} bytes, not {0}")]
    Payload(usize),
    /// The batch holds no message.
    #[error("a batch needs at least one message")]
    EmptyBatch,
    /// The batch holds more than [`MAX_BATCH_BYTES`].
    #[error("a batch of {0} messages is over {MAX_BATCH_BYTES} bytes")]
    BatchTooLarge(usize),
    /// A loopback socket could not be bound, dialled or accepted, or failed.
    #[error("loopback socket: {0}")]
    Io(#[from] io::Error),
    /// The two ends could not set up their link.
    #[error("link handshake on loopback failed: {0}")]
    Handshake(#[source] Source),
    /// Sending or receiving on the link failed.
    #[error("link failed: {0}")]
    Link(#[source] Source),
    /// A message arrived with another length than was sent.
    #[error("a message of {got} bytes arrived where {payload} bytes were sent")]
    WrongLength {
        /// The length sent.
        payload: usize,
        /// The length received.
        got: usize,
    },
    /// The stream ended with bytes missing, or with bytes never sent.
    #[error("sent {sent} bytes but {received} arrived")]
    Lost {
        /// Payload bytes sent.
        sent: u64,
        /// Payload bytes received.
        received: u64,
    },
    /// The receiving task panicked.
    #[error("the receiving task failed: {0}")]
    Task(#[from] JoinError),
}

impl From<LinkError> for LinkBenchError {
    fn from(err: LinkError) -> Self {
        Self::Link(Box::new(err))
    }
}

/// Measures one link: dials a listener on 127.0.0.1 (port 0, the address
/// read back), runs the handshake on both ends, then sends `load` and
/// reads it back to its end.
///
/// Cancel-safe in the sense that matters: dropped, it closes both ends and
/// stops the receiving task; nothing outlives it.
pub async fn link_throughput(load: Load) -> Result<Throughput, LinkBenchError> {
    load.check()?;
    let (dialled, accepted) = tcp_pair().await?;
    let dialler = config(DIALLER_KEY);
    let listener = config(LISTENER_KEY);
    let expected = Some(listener.secret.node_id());
    let (ours, theirs) = tokio::join!(
        transport::connect(dialled, &dialler, expected),
        transport::accept(accepted, &listener),
    );
    let handshake = |e: transport::HandshakeError| LinkBenchError::Handshake(Box::new(e));
    let (ours, theirs) = (ours.map_err(handshake)?, theirs.map_err(handshake)?);

    let payload = load.payload;
    // The receiving end keeps both its halves, so that its socket closes
    // when it stops and a sender still writing fails at once.
    let receiver = Task::spawn(async move {
        let (mut reader, _writer) = theirs.into_split();
        let mut received = 0u64;
        while let Some(msg) = reader.recv().await? {
            if msg.len() != payload {
                return Err(LinkBenchError::WrongLength {
                    payload,
                    got: msg.len(),
                });
            }
            received += 1;
        }
        Ok((received * payload as u64, Instant::now()))
    });

    let (_reader, mut writer) = ours.into_split();
    let batch = load.messages();
    let start = Instant::now();
    let sent = async {
        let mut sent = 0;
        while sent == 0 || start.elapsed() < load.duration {
            writer.send(&batch).await?;
            sent += batch.len() as u64;
        }
        writer.shutdown().await?;
        Ok(sent)
    }
    .await;
    // The writer's drop closes our direction even after a failure, so the
    // receiver always reaches an end.
    drop(writer);
    finish(load, start, sent, receiver).await
}

/// Measures plain TCP the same way: the same batches, each as one write of
/// `batch * payload` bytes, on a connection set up as a link's socket is
/// (no Nagle delay), read back through a large buffer.
///
/// Cancel-safe as [`link_throughput`].
pub async fn tcp_throughput(load: Load) -> Result<Throughput, LinkBenchError> {
    load.check()?;
    let (mut ours, mut theirs) = tcp_pair().await?;
    ours.set_nodelay(true)?;
    theirs.set_nodelay(true)?;

    let receiver = Task::spawn(async move {
        let mut buf = vec![0u8; TCP_READ_BYTES];
        let mut received = 0u64;
        loop {
            match theirs.read(&mut buf).await? {
                0 => return Ok((received, Instant::now())),
                n => received += n as u64,
            }
        }
    });

    let write = vec![0u8; load.payload * load.batch];
    let start = Instant::now();
    let sent = async {
        let mut sent = 0;
        while sent == 0 || start.elapsed() < load.duration {
            ours.write_all(&write).await?;
            sent += load.batch as u64;
        }
        ours.shutdown().await?;
        Ok(sent)
    }
    .await;
    drop(ours);
    finish(load, start, sent, receiver).await
}

/// Waits for the receiver and checks that it got every byte that was sent.
async fn finish(
    load: Load,
    start: Instant,
    sent: Result<u64, LinkBenchError>,
    receiver: Task<Result<(u64, Instant), LinkBenchError>>,
) -> Result<Throughput, LinkBenchError> {
    // On loopback a send fails only because the receiving end stopped, so
    // its error, when it has one, is the cause and goes first.
    let (received, end) = receiver.join().await??;
    let messages = sent?;
    let sent = messages * load.payload as u64;
    if received != sent {
        return Err(LinkBenchError::Lost { sent, received });
    }
    Ok(Throughput {
        payload: load.payload,
        batch: load.batch,
        messages,
        bytes: received,
        elapsed: end.saturating_duration_since(start),
    })
}

fn config(key: [u8; 32]) -> LinkConfig {
    LinkConfig {
        secret: SecretKey::from_bytes(&key),
        network_id: NETWORK_ID.into(),
        psk: None,
        handshake_timeout: HANDSHAKE_TIMEOUT,
    }
}

/// A connected pair on 127.0.0.1: the dialled end and the accepted one.
async fn tcp_pair() -> io::Result<(TcpStream, TcpStream)> {
    let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await?;
    let addr = listener.local_addr()?;
    let (dialled, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
    Ok((dialled?, accepted?.0))
}

/// A spawned task that is aborted when its handle is dropped, so that a
/// measurement dropped midway leaves nothing running.
struct Task<T>(JoinHandle<T>);

impl<T: Send + 'static> Task<T> {
    fn spawn(future: impl Future<Output = T> + Send + 'static) -> Self {
        Self(tokio::spawn(future))
    }

    async fn join(mut self) -> Result<T, JoinError> {
        (&mut self.0).await
    }
}

impl<T> Drop for Task<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sends exactly one batch, whatever the machine's speed.
    fn one_batch(payload: usize, batch: usize) -> Load {
        Load {
            payload,
            batch,
            duration: Duration::ZERO,
        }
    }

    #[test]
    fn batches_are_the_nodes() {
        assert_eq!(node_batch(64), MAX_BATCH_MESSAGES);
        assert_eq!(node_batch(1 << 10), MAX_BATCH_MESSAGES);
        assert_eq!(node_batch(64 << 10), 128);
        assert_eq!(node_batch(MAX_MESSAGE_BYTES), 8);
        assert_eq!(node_batch(usize::MAX), 1);
    }

    #[tokio::test]
    async fn every_message_crosses_the_link() {
        // Small ones sharing frames, one spanning two frames, the largest.
        for (payload, batch) in [(64, 300), (70_000, 3), (MAX_MESSAGE_BYTES, 2)] {
            let t = link_throughput(one_batch(payload, batch)).await.unwrap();
            assert_eq!(t.messages, batch as u64, "{t:?}");
            assert_eq!(t.bytes, (payload * batch) as u64, "{t:?}");
            assert_eq!((t.payload, t.batch), (payload, batch));
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_timed_run_sends_whole_batches() {
        let load = Load::new(1 << 10, Duration::from_millis(30));
        for t in [
            link_throughput(load).await.unwrap(),
            tcp_throughput(load).await.unwrap(),
        ] {
            assert_eq!(t.messages % load.batch as u64, 0, "{t:?}");
            assert!(t.messages >= load.batch as u64, "{t:?}");
            assert_eq!(t.bytes, t.messages * load.payload as u64, "{t:?}");
            assert!(t.mb_per_s().is_finite() && t.messages_per_s().is_finite());
        }
    }

    #[tokio::test]
    async fn every_byte_crosses_plain_tcp() {
        let t = tcp_throughput(one_batch(1000, 7)).await.unwrap();
        assert_eq!((t.messages, t.bytes), (7, 7000));
    }

    #[tokio::test]
    async fn impossible_loads_are_refused() {
        for load in [
            one_batch(0, 1),
            one_batch(MAX_MESSAGE_BYTES + 1, 1),
            one_batch(64, 0),
            one_batch(MAX_MESSAGE_BYTES, MAX_BATCH_BYTES / MAX_MESSAGE_BYTES + 1),
        ] {
            assert!(link_throughput(load).await.is_err(), "{load:?}");
            assert!(tcp_throughput(load).await.is_err(), "{load:?}");
        }
    }
}
