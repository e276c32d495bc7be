//! The link table: one link per peer id, each with a reader and a writer
//! task, a bounded send queue and the caps on inbound links.
//!
//! When two nodes dial each other at once, both keep the connection dialled
//! by the smaller id ([`keeps_new`]), a rule both ends compute alike. Once a
//! link is replaced, what still comes in on the old one is dropped
//! ([`Links::superseded`]): the peer's messages must arrive in the order it
//! sent them, and two links do not keep it.
//!
//! The actor never waits for a peer. A send only queues; each link counts
//! the bytes queued and not yet written (shared with its writer task), and
//! a send that would take a link over its byte budget, or find its queue
//! full, cuts the link at once: the peer is not reading, and waiting for it
//! would stall every other link, timer and call. The writer bounds each
//! write by the slow-link timeout and closes the link when one makes no
//! progress. A link closed on purpose still writes what is queued, and its
//! reader lingers so that the peer's last words arrive. The actor owns the
//! table; the tasks talk to it only through the bounded [`LinkEvent`]
//! channel.
//!
//! Answers to a peer's requests (a crawl's status query) are paid from a
//! token bucket of bytes per link ([`ReplyBucket`]), so small requests
//! cannot buy a stream of large replies.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use gossipnet_proto::wire::{self, Message};
use gossipnet_proto::InEvent;
use gossipnet_proto::NodeId;
use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinHandle};
use tokio::time::Instant;
use tracing::{debug, info, warn, Instrument};

mod addrs;
pub(super) use addrs::AddrAges;

use super::dial::Purpose;
use super::{Actor, Direction, LINGER, LINK_EVENT_QUEUE, MAX_BATCH};
use crate::config::Limits;
use crate::transport::{Link, LinkReader, LinkWriter};

/// What the dial, accept and link tasks tell the actor.
#[derive(Debug)]
pub(super) enum LinkEvent {
    Established {
        link: Link,
        direction: Direction,
        addr: SocketAddr,
        purpose: Purpose,
    },
    Failed {
        addr: Option<SocketAddr>,
        purpose: Purpose,
        expected: Option<NodeId>,
        error: String,
    },
    Message {
        peer: NodeId,
        /// The link it came on (see [`Links::superseded`]).
        conn: u64,
        msg: Message,
        len: usize,
    },
    Closed {
        peer: NodeId,
        conn: u64,
        error: Option<String>,
    },
}

/// The one-link rule: whether a new link to `peer` replaces the existing
/// one. The connection dialled by the smaller id wins; if both were dialled
/// by the same side, the newer wins (the older may be a dead connection the
/// peer replaced).
pub(super) fn keeps_new(me: NodeId, peer: NodeId, new: Direction, existing: Direction) -> bool {
    let dialer = |d: Direction| if d == Direction::Outbound { me } else { peer };
    dialer(new) == dialer(existing) || dialer(new) == me.min(peer)
}

/// How a send went.
#[derive(Debug)]
pub(super) enum Sent {
    /// Queued on the peer's link.
    Queued,
    /// The link could not keep up or is gone, and has been closed.
    Cut,
    /// There is no link to the peer; the bytes come back.
    NoLink(Bytes),
}

struct LinkEntry {
    conn: u64,
    tx: mpsc::Sender<Bytes>,
    /// Bytes queued on `tx` or in the writer's batch and not yet written:
    /// the actor adds, the writer takes off.
    queued: Arc<AtomicUsize>,
    /// What the peer may still draw in answers to its requests.
    replies: ReplyBucket,
    direction: Direction,
    addr: SocketAddr,
    last_active: Instant,
    established: Instant,
    bytes_sent: u64,
    bytes_received: u64,
    /// The ping in flight, to time its pong: its nonce and when it went.
    ping: Option<(u64, Instant)>,
    /// The round trip of the last ping answered.
    rtt: Option<Duration>,
    reader: AbortHandle,
    writer: JoinHandle<()>,
}

/// A token bucket of reply bytes: full at `burst`, refilled at `rate` bytes
/// a second. Pure: the caller passes the time.
#[derive(Debug, Clone)]
pub(super) struct ReplyBucket {
    tokens: f64,
    burst: f64,
    rate: f64,
    last: Instant,
}

impl ReplyBucket {
    pub(super) fn new(burst: usize, rate: usize, now: Instant) -> Self {
        Self {
            tokens: burst as f64,
            burst: burst as f64,
            rate: rate as f64,
            last: now,
        }
    }

    /// Takes `len` bytes if the bucket holds them; false (and nothing
    /// taken) if not.
    pub(super) fn take(&mut self, len: usize, now: Instant) -> bool {
        let earned = now.saturating_duration_since(self.last).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + earned).min(self.burst);
        self.last = now;
        let len = len as f64;
        if self.tokens < len {
            return false;
        }
        self.tokens -= len;
        true
    }
}

/// What the link table tells about one link, for the status.
#[derive(Debug, Clone, Copy)]
pub(super) struct LinkInfo {
    pub addr: SocketAddr,
    pub direction: Direction,
    pub age: Duration,
    pub rtt: Option<Duration>,
    pub bytes_sent: u64,
    pub bytes_received: u64,
}

/// Inbound links counted against the caps, in total and per address.
#[derive(Debug)]
pub(super) struct Inbound {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
    max: usize,
    max_per_ip: usize,
}

impl Inbound {
    pub(super) fn new(limits: &Limits) -> Self {
        Self {
            total: 0,
            per_ip: HashMap::new(),
            max: limits.max_inbound,
            max_per_ip: limits.max_inbound_per_ip,
        }
    }

    /// Why a new inbound link from `ip` is refused, if it is. Loopback is
    /// exempt from the per-address cap: every local test node shares it.
    pub(super) fn refusal(&self, ip: IpAddr) -> Option<&'static str> {
        let per_ip = self.per_ip.get(&ip).copied().unwrap_or(0);
        if self.total >= self.max {
            Some("too many inbound links")
        } else if !ip.is_loopback() && per_ip >= self.max_per_ip {
            Some("too many links from your address")
        } else {
            None
        }
    }

    fn add(&mut self, ip: IpAddr) {
        self.total += 1;
        *self.per_ip.entry(ip).or_default() += 1;
    }

    fn remove(&mut self, ip: IpAddr) {
        self.total = self.total.saturating_sub(1);
        if let Some(n) = self.per_ip.get_mut(&ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_ip.remove(&ip);
            }
        }
    }
}

/// The link table; see the module docs.
pub(super) struct Links {
    me: NodeId,
    links: HashMap<NodeId, LinkEntry>,
    /// Numbers connections, so a late close of a replaced one is known.
    next_conn: u64,
    inbound: Inbound,
    events_tx: mpsc::Sender<LinkEvent>,
    events_rx: mpsc::Receiver<LinkEvent>,
    queue_len: usize,
    queue_bytes: usize,
    slow_link_timeout: Duration,
    reply_burst: usize,
    reply_rate: usize,
    /// Replies not sent because the asking link's bucket was empty.
    replies_dropped: u64,
}

impl Links {
    pub(super) fn new(me: NodeId, limits: &Limits) -> Self {
        let (events_tx, events_rx) = mpsc::channel(LINK_EVENT_QUEUE);
        Self {
            me,
            links: HashMap::new(),
            next_conn: 0,
            inbound: Inbound::new(limits),
            events_tx,
            events_rx,
            queue_len: limits.link_queue.max(1),
            queue_bytes: limits.link_queue_bytes,
            slow_link_timeout: limits.slow_link_timeout,
            reply_burst: limits.reply_burst_bytes,
            reply_rate: limits.reply_bytes_per_sec,
            replies_dropped: 0,
        }
    }

    /// Where dial and accept tasks report.
    pub(super) fn events_tx(&self) -> mpsc::Sender<LinkEvent> {
        self.events_tx.clone()
    }

    /// The next event from a link task. Cancel-safe (a channel receive).
    pub(super) async fn recv(&mut self) -> Option<LinkEvent> {
        self.events_rx.recv().await
    }

    pub(super) fn contains(&self, peer: &NodeId) -> bool {
        self.links.contains_key(peer)
    }

    pub(super) fn len(&self) -> usize {
        self.links.len()
    }

    /// The address we dialled `peer` at: one it listens on.
    pub(super) fn dialled_addr(&self, peer: &NodeId) -> Option<SocketAddr> {
        self.links
            .get(peer)
            .filter(|l| l.direction == Direction::Outbound)
            .map(|l| l.addr)
    }

    pub(super) fn inbound_refusal(&self, ip: IpAddr) -> Option<&'static str> {
        self.inbound.refusal(ip)
    }

    /// Whether a new link to `peer` in `direction` is to be kept: always
    /// if there is none, else by [`keeps_new`]. A kept one replaces (and
    /// closes) the existing link.
    pub(super) fn admit(&mut self, peer: NodeId, direction: Direction) -> bool {
        let Some(existing) = self.links.get(&peer) else {
            return true;
        };
        if !keeps_new(self.me, peer, direction, existing.direction) {
            debug!(peer = %peer.short(), "duplicate link; keeping the existing one");
            return false;
        }
        debug!(peer = %peer.short(), "duplicate link; replacing the existing one");
        self.close(peer);
        true
    }

    /// Takes a new link into the table and starts its tasks.
    pub(super) fn insert(&mut self, link: Link, direction: Direction, addr: SocketAddr) {
        let peer = link.peer;
        self.next_conn += 1;
        let conn = self.next_conn;
        let (reader, mut writer) = link.into_split();
        writer.set_write_timeout(self.slow_link_timeout);
        let (tx, rx) = mpsc::channel(self.queue_len);
        let queued = Arc::new(AtomicUsize::new(0));
        let span = tracing::info_span!("link", peer = %peer.short());
        let reader_task =
            tokio::spawn(read_link(reader, conn, self.events_tx.clone()).instrument(span.clone()));
        let queue = WriteQueue {
            rx,
            queued: Arc::clone(&queued),
        };
        let writer_task =
            tokio::spawn(write_link(writer, queue, conn, self.events_tx.clone()).instrument(span));
        if direction == Direction::Inbound {
            self.inbound.add(addr.ip());
        }
        let now = Instant::now();
        self.links.insert(
            peer,
            LinkEntry {
                conn,
                tx,
                queued,
                replies: ReplyBucket::new(self.reply_burst, self.reply_rate, now),
                direction,
                addr,
                last_active: now,
                established: now,
                bytes_sent: 0,
                bytes_received: 0,
                ping: None,
                rtt: None,
                reader: reader_task.abort_handle(),
                writer: writer_task,
            },
        );
    }

    /// Notes `len` bytes read from the link to `peer`, which keeps it from
    /// going idle.
    pub(super) fn touch(&mut self, peer: &NodeId, len: usize) {
        if let Some(link) = self.links.get_mut(peer) {
            link.last_active = Instant::now();
            link.bytes_received += len as u64;
        }
    }

    /// What is known of the link to `peer`, if there is one.
    pub(super) fn info(&self, peer: &NodeId) -> Option<LinkInfo> {
        self.links.get(peer).map(|l| LinkInfo {
            addr: l.addr,
            direction: l.direction,
            age: l.established.elapsed(),
            rtt: l.rtt,
            bytes_sent: l.bytes_sent,
            bytes_received: l.bytes_received,
        })
    }

    /// Notes a ping with `nonce` queued to `peer`, to time its pong. Only
    /// the newest ping is timed: one pong is enough for a figure.
    pub(super) fn pinged(&mut self, peer: &NodeId, nonce: u64) {
        if let Some(link) = self.links.get_mut(peer) {
            link.ping = Some((nonce, Instant::now()));
        }
    }

    /// Links to peers `want` picks that have no round trip yet and no ping
    /// sent in the last `retry`: a probe's ping or pong was lost, or went
    /// on a link since replaced.
    pub(super) fn untimed(
        &self,
        now: Instant,
        retry: Duration,
        want: impl Fn(&NodeId) -> bool,
    ) -> Vec<NodeId> {
        self.links
            .iter()
            .filter(|(id, l)| {
                l.rtt.is_none()
                    && want(id)
                    && l.ping.is_none_or(|(_, at)| now.duration_since(at) >= retry)
                    && now.duration_since(l.established) >= retry
            })
            .map(|(id, _)| *id)
            .collect()
    }

    /// A pong with `nonce` from `peer`: if it answers the ping in flight,
    /// the link's round-trip time.
    pub(super) fn ponged(&mut self, peer: &NodeId, nonce: u64) {
        if let Some(link) = self.links.get_mut(peer) {
            if let Some((sent_nonce, at)) = link.ping {
                if sent_nonce == nonce {
                    link.rtt = Some(at.elapsed());
                    link.ping = None;
                }
            }
        }
    }

    /// Queues `bytes` on the link to `peer`, never waiting. A link whose
    /// unwritten bytes would pass the byte budget, or whose queue is full,
    /// is cut at once: its peer is not reading. One message always fits an
    /// empty queue, whatever its size.
    pub(super) fn send(&mut self, peer: NodeId, bytes: Bytes) -> Sent {
        let Some(link) = self.links.get_mut(&peer) else {
            return Sent::NoLink(bytes);
        };
        let len = bytes.len();
        let queued = link.queued.load(Ordering::Relaxed);
        if queued > 0 && queued.saturating_add(len) > self.queue_bytes {
            warn!(
                peer = %peer.short(),
                queued,
                budget = self.queue_bytes,
                "peer is not reading; closing its link"
            );
            self.cut(peer);
            return Sent::Cut;
        }
        link.queued.fetch_add(len, Ordering::Relaxed);
        match link.tx.try_send(bytes) {
            Ok(()) => {
                link.last_active = Instant::now();
                link.bytes_sent += len as u64;
                Sent::Queued
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                warn!(
                    peer = %peer.short(),
                    messages = self.queue_len,
                    "peer is not reading; closing its link"
                );
                self.cut(peer);
                Sent::Cut
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                debug!(peer = %peer.short(), "link writer gone; closing the link");
                self.cut(peer);
                Sent::Cut
            }
        }
    }

    /// Whether `peer` may be sent an answer of `len` bytes now, paid from
    /// its link's bucket. False, counted and logged, if the bucket is
    /// short or there is no link to answer over.
    pub(super) fn allow_reply(&mut self, peer: &NodeId, len: usize, what: &str) -> bool {
        let now = Instant::now();
        if self
            .links
            .get_mut(peer)
            .is_some_and(|l| l.replies.take(len, now))
        {
            return true;
        }
        self.replies_dropped += 1;
        debug!(
            peer = %peer.short(),
            len,
            dropped = self.replies_dropped,
            "reply budget spent; not answering {what}"
        );
        false
    }

    /// Cuts the link to `peer` at once: both tasks stop, what was queued
    /// is dropped and the socket closes.
    pub(super) fn cut(&mut self, peer: NodeId) {
        if let Some(entry) = self.links.remove(&peer) {
            self.forget(&entry);
            entry.reader.abort();
            entry.writer.abort();
        }
    }

    /// A link task ended. True if it was the current link to `peer` (and
    /// so is gone now); false for a connection replaced or closed before.
    /// Whether a message read on link `conn` comes from a link to `peer`
    /// that a newer one has replaced. Such a message is dropped: what the
    /// peer says on its new link may already have overtaken it, and read
    /// after that it would undo it (a neighbour's disconnect read after
    /// its new request, say). What the peer sent on a link we closed with
    /// no other in its place still counts: its last words.
    pub(super) fn superseded(&self, peer: &NodeId, conn: u64) -> bool {
        self.links.get(peer).is_some_and(|l| l.conn != conn)
    }

    pub(super) fn closed(&mut self, peer: NodeId, conn: u64) -> bool {
        if self.links.get(&peer).is_none_or(|l| l.conn != conn) {
            return false;
        }
        if let Some(entry) = self.links.remove(&peer) {
            self.forget(&entry);
            // The writer may have ended it; the reader is then not needed.
            entry.reader.abort();
        }
        true
    }

    /// Closes a link on purpose: queued messages are still written, then
    /// the connection is shut down.
    pub(super) fn close(&mut self, peer: NodeId) {
        if let Some(entry) = self.links.remove(&peer) {
            self.forget(&entry);
            let reader = entry.reader;
            drop(entry.tx);
            tokio::spawn(async move {
                tokio::time::sleep(LINGER).await;
                reader.abort();
            });
        }
    }

    /// Links quiet for longer than `idle` whose peer `keep` does not claim.
    pub(super) fn idle(
        &self,
        now: Instant,
        idle: Duration,
        keep: impl Fn(&NodeId) -> bool,
    ) -> Vec<NodeId> {
        self.links
            .iter()
            .filter(|(id, l)| !keep(id) && now.duration_since(l.last_active) > idle)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Stops taking messages on every link; the writers finish what is
    /// queued, and are returned so the caller can wait for them.
    pub(super) fn close_all(&mut self) -> Vec<JoinHandle<()>> {
        self.links
            .drain()
            .map(|(_, entry)| {
                drop(entry.tx);
                entry.writer
            })
            .collect()
    }

    /// Aborts every link's tasks: both halves of each socket are dropped,
    /// so peers see the connection end and nothing else.
    pub(super) fn abort_all(&mut self) {
        for (_, entry) in self.links.drain() {
            entry.reader.abort();
            entry.writer.abort();
        }
    }

    fn forget(&mut self, entry: &LinkEntry) {
        if entry.direction == Direction::Inbound {
            self.inbound.remove(entry.addr.ip());
        }
    }
}

impl Actor {
    /// A link's reader stopped. A neighbour's link that fails is reported
    /// to the seeds and repaired by the protocol; a link replaced or closed
    /// on purpose before is no news.
    pub(super) async fn on_closed(&mut self, peer: NodeId, conn: u64, error: Option<String>) {
        if !self.links.closed(peer, conn) {
            return;
        }
        match &error {
            Some(e) => info!(peer = %peer.short(), "link down: {e}"),
            None => debug!(peer = %peer.short(), "link closed by peer"),
        }
        self.settle_link_probes().await;
        if self.driver.neighbors.contains(&peer) {
            self.driver.hint_down(peer, crate::DownReason::Unreachable);
            let out = self.seeds.handle_neighbor_lost(peer);
            self.seed_client_outputs(out).await;
            self.proto(InEvent::PeerDisconnected(peer)).await;
        }
    }
}

/// Reads messages off a link and hands them to the actor. A message that
/// does not decode closes the link: the peer is broken or hostile.
async fn read_link(mut reader: LinkReader, conn: u64, tx: mpsc::Sender<LinkEvent>) {
    let peer = reader.peer();
    let error = loop {
        match reader.recv().await {
            Ok(Some(bytes)) => match wire::decode(&bytes) {
                Ok(msg) => {
                    let len = bytes.len();
                    if tx
                        .send(LinkEvent::Message {
                            peer,
                            conn,
                            msg,
                            len,
                        })
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                Err(e) => {
                    warn!("closing link: bad message from peer: {e}");
                    break Some(format!("bad message: {e}"));
                }
            },
            Ok(None) => break None,
            Err(e) => break Some(e.to_string()),
        }
    };
    let _ = tx.send(LinkEvent::Closed { peer, conn, error }).await;
}

/// A link's send queue as its writer sees it.
struct WriteQueue {
    rx: mpsc::Receiver<Bytes>,
    /// Shared with the actor's [`LinkEntry`].
    queued: Arc<AtomicUsize>,
}

/// Writes queued messages to a link, as many as are waiting in one batch
/// (one encryption pass and one write), until the queue closes. A write
/// that fails or makes no progress within the slow-link timeout ends the
/// link: the actor is told, which drops the queue and the reader.
async fn write_link(
    mut writer: LinkWriter,
    mut queue: WriteQueue,
    conn: u64,
    events: mpsc::Sender<LinkEvent>,
) {
    let peer = writer.peer();
    // Grown on the first busy moment, not held from the start by every
    // link, most of which never batch more than a few messages.
    let mut batch = Vec::new();
    while let Some(first) = queue.rx.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match queue.rx.try_recv() {
                Ok(more) => batch.push(more),
                Err(_) => break,
            }
        }
        if let Err(e) = writer.send(&batch).await {
            match &e {
                crate::transport::LinkError::WriteTimeout(_) => {
                    warn!("closing link: {e}")
                }
                // The socket's TCP_USER_TIMEOUT: the peer acknowledged
                // nothing for as long. Said here, since the reader may
                // see only the end of the stream.
                crate::transport::LinkError::Io(io)
                    if io.kind() == std::io::ErrorKind::TimedOut =>
                {
                    warn!("closing link: the peer is not reading ({e})")
                }
                _ => debug!("write failed: {e}"),
            }
            let error = Some(format!("write failed: {e}"));
            let _ = events.send(LinkEvent::Closed { peer, conn, error }).await;
            return;
        }
        let written: usize = batch.iter().map(Bytes::len).sum();
        queue.queued.fetch_sub(written, Ordering::Relaxed);
        batch.clear();
    }
    let _ = writer.shutdown().await;
}

#[cfg(test)]
mod peer_tests;
#[cfg(test)]
mod tests;
