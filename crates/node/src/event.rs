//! What a subscriber to a [`Node`](crate::Node) hears: delivered broadcast
//! messages (our own broadcasts among them, marked), direct messages and
//! neighbour changes, and the hub that hands them out.
//!
//! Each subscriber has a queue of its own, which holds memory only for the
//! events it has not read yet: a node with idle subscribers costs a few
//! kilobytes, where a shared ring sized for the worst backlog would cost
//! that backlog's size from the start, subscriber or not. The actor never
//! waits on a subscriber: a full queue loses the events that do not fit,
//! and the subscriber is told how many at the point of the gap.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use gossipnet_proto::envelope::Kind;
use gossipnet_proto::{MessageId, NodeId};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Events a subscriber may fall behind by before it misses some: a few
/// seconds of deliveries at the highest rates a node keeps up with.
pub(crate) const EVENT_QUEUE: usize = 4096;

/// How long the events from a node's start are kept for
/// [`Node::startup_events`](crate::Node::startup_events): the time an
/// embedder takes to ask for them after spawning the node, with a wide
/// margin. Past it, nobody is coming, and the queue would only hold memory.
const STARTUP_EVENTS_KEPT: Duration = Duration::from_secs(30);

/// A message delivered to this node.
#[derive(Debug, Clone)]
pub struct Received {
    /// The message's id (the hash of its signed envelope), the same on
    /// every node it reaches.
    pub id: MessageId,
    /// Who wrote and signed it.
    pub origin: NodeId,
    /// The origin's sequence number.
    pub seq: u64,
    /// When the origin sent it (its clock, Unix milliseconds).
    pub time_ms: u64,
    /// What kind of message, and so how to read the body (`Chat`: a
    /// [`chat::ChatBody`](crate::chat::ChatBody)).
    pub kind: Kind,
    /// The body as the origin signed it.
    pub body: Bytes,
    /// How many links it crossed from the origin to this node (0 for our
    /// own, for one caught up, and for one read back from the history).
    pub hops: u16,
    /// This node broadcast it: an embedder's feed shows its own messages
    /// from the same stream as everyone else's.
    pub own: bool,
    /// It arrived by catch-up (anti-entropy), after being missed while
    /// this node was away or cut off, rather than as it was broadcast.
    pub caught_up: bool,
}

/// A direct message to this node, opened.
#[derive(Debug, Clone)]
pub struct DirectMessage {
    /// The message's id, as [`Node::send_direct`](crate::Node::send_direct) returned it to the sender.
    pub id: MessageId,
    /// Who wrote and signed it.
    pub from: NodeId,
    /// The name the sender goes by.
    pub name: Option<String>,
    /// What the sender wrote, decrypted.
    pub text: String,
    /// When the sender sent it (its clock, Unix milliseconds).
    pub time_ms: u64,
}

/// What a subscriber hears.
#[derive(Debug, Clone)]
pub enum NodeEvent {
    /// A broadcast message arrived, or this node broadcast one (once per
    /// message, across restarts).
    Message(Received),
    /// A direct message to this node arrived.
    Direct(DirectMessage),
    /// A peer became a neighbour.
    NeighborUp(NodeId),
    /// A peer is a neighbour no longer, and why.
    NeighborDown(NodeId, DownReason),
}

/// Why a neighbour went, as far as this node can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownReason {
    /// It said it is leaving the network (a graceful leave).
    Left,
    /// One end gave the link up to make room or to rebalance; the peer is
    /// still in the network.
    Dropped,
    /// Its link failed or it fell silent: crashed, cut off, or too slow.
    /// The node keeps its views full, so it may come back.
    Unreachable,
}

impl DownReason {
    /// `"left"`, `"dropped"` or `"unreachable"`.
    pub fn as_str(self) -> &'static str {
        match self {
            DownReason::Left => "left",
            DownReason::Dropped => "dropped",
            DownReason::Unreachable => "unreachable",
        }
    }
}

/// What a subscriber's queue carries: an event, or the count of those that
/// did not fit, at the place where they were lost.
#[derive(Debug)]
enum Item {
    Event(NodeEvent),
    Missed(u64),
}

/// The events of one node from the moment of
/// [`Node::subscribe`](crate::Node::subscribe) on, in the order the node emitted them.
#[derive(Debug)]
pub struct Events {
    rx: mpsc::Receiver<Item>,
}

/// Why [`Events::recv`] returned no event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EventsError {
    /// The subscriber fell behind and this many events were dropped here,
    /// between the event before this error and the one after it.
    #[error("missed {0} events")]
    Lagged(u64),
    /// The node has stopped and every event it sent has been read.
    #[error("the node has stopped")]
    Closed,
}

impl Events {
    /// The next event. Cancel-safe: an event is taken from the stream only
    /// when this returns it.
    pub async fn recv(&mut self) -> Result<NodeEvent, EventsError> {
        match self.rx.recv().await {
            Some(Item::Event(event)) => Ok(event),
            Some(Item::Missed(n)) => Err(EventsError::Lagged(n)),
            None => Err(EventsError::Closed),
        }
    }
}

/// One subscriber, as the hub sees it.
#[derive(Debug)]
struct Subscriber {
    tx: mpsc::Sender<Item>,
    /// Events lost since the last one that fit, not yet reported.
    missed: u64,
}

impl Subscriber {
    /// Queues `event`, reporting an earlier gap first; false once the
    /// subscriber has gone. The queue's last free slot is kept for the
    /// count of what is lost, so that a subscriber learns of a gap where
    /// it happened, even if no event follows it for a long time.
    fn offer(&mut self, event: &NodeEvent) -> bool {
        if self.tx.is_closed() {
            return false;
        }
        // Only the actor sends, under the hub's lock, so the room can only
        // grow (as the subscriber reads) between here and the sends below.
        let mut room = self.tx.capacity();
        if self.missed > 0 && room > 0 {
            let _ = self.tx.try_send(Item::Missed(self.missed));
            self.missed = 0;
            room -= 1;
        }
        if room > 1 {
            let _ = self.tx.try_send(Item::Event(event.clone()));
            return true;
        }
        self.missed += 1;
        if room == 1 {
            let _ = self.tx.try_send(Item::Missed(self.missed));
            self.missed = 0;
        }
        true
    }
}

/// The events subscribed to from the node's start, until taken or until
/// [`STARTUP_EVENTS_KEPT`] has passed.
#[derive(Debug)]
struct Startup {
    events: Events,
    until: Instant,
}

#[derive(Debug, Default)]
struct Hub {
    subscribers: Vec<Subscriber>,
    startup: Option<Startup>,
    /// Set when the node stopped: later subscribers hear the end at once.
    closed: bool,
}

impl Hub {
    fn subscribe(&mut self) -> Events {
        let (tx, rx) = mpsc::channel(EVENT_QUEUE);
        if !self.closed {
            self.subscribers.push(Subscriber { tx, missed: 0 });
        }
        Events { rx }
    }
}

/// Hands a node's events to its subscribers. Cheap to clone: the node's
/// handles and its actor share one.
#[derive(Debug, Clone, Default)]
pub(crate) struct EventHub {
    inner: Arc<Mutex<Hub>>,
}

impl EventHub {
    /// A hub whose first subscription, kept for
    /// [`EventHub::take_startup`], starts now.
    pub(crate) fn with_startup() -> Self {
        Self::with_startup_kept(STARTUP_EVENTS_KEPT)
    }

    fn with_startup_kept(kept: Duration) -> Self {
        let hub = Self::default();
        {
            let mut inner = hub.lock();
            let events = inner.subscribe();
            inner.startup = Some(Startup {
                events,
                until: Instant::now() + kept,
            });
        }
        hub
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Hub> {
        // The hub's state is consistent between statements, so a panic
        // elsewhere while it was held leaves nothing half-done.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Events from now on.
    pub(crate) fn subscribe(&self) -> Events {
        self.lock().subscribe()
    }

    /// The subscription made when the hub was, for the first caller within
    /// [`STARTUP_EVENTS_KEPT`]; `None` after.
    pub(crate) fn take_startup(&self) -> Option<Events> {
        self.lock().startup.take().map(|s| s.events)
    }

    /// Gives `event` to every subscriber whose queue has room, without
    /// waiting; returns how many subscribers there are.
    pub(crate) fn send(&self, event: NodeEvent) -> usize {
        let mut hub = self.lock();
        if hub
            .startup
            .as_ref()
            .is_some_and(|s| Instant::now() >= s.until)
        {
            // Dropping the receiver closes its queue, and the subscriber
            // goes below with the others that left.
            hub.startup = None;
        }
        hub.subscribers.retain_mut(|s| s.offer(&event));
        hub.subscribers.len()
    }

    /// The node stopped: every subscriber reads what is queued, then
    /// [`EventsError::Closed`].
    pub(crate) fn close(&self) {
        let mut hub = self.lock();
        hub.closed = true;
        hub.subscribers.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(n: u8) -> NodeEvent {
        NodeEvent::NeighborUp(NodeId::from_bytes([n; 32]))
    }

    fn which(event: NodeEvent) -> u8 {
        match event {
            NodeEvent::NeighborUp(id) => id.as_bytes()[0],
            other => panic!("unexpected event {other:?}"),
        }
    }

    /// Reads what is queued without waiting, as results.
    fn drain(events: &mut Events) -> Vec<Result<u8, EventsError>> {
        let mut out = Vec::new();
        while let Ok(item) = events.rx.try_recv() {
            out.push(match item {
                Item::Event(e) => Ok(which(e)),
                Item::Missed(n) => Err(EventsError::Lagged(n)),
            });
        }
        out
    }

    #[tokio::test]
    async fn a_full_queue_reports_its_gap_where_it_happened_and_resumes_after_it() {
        let hub = EventHub::default();
        let mut slow = hub.subscribe();
        let mut fast = hub.subscribe();
        // One more than fit beside the slot kept for the count of the lost.
        for i in 0..EVENT_QUEUE {
            assert_eq!(hub.send(up((i % 200) as u8)), 2);
            // The fast subscriber keeps up and misses nothing.
            assert_eq!(fast.recv().await.map(which), Ok((i % 200) as u8));
        }
        let got = drain(&mut slow);
        let kept = EVENT_QUEUE - 1;
        assert_eq!(got.len(), kept + 1, "every slot used, the last for the gap");
        assert!(got[..kept].iter().all(Result::is_ok));
        // Told of the gap with nothing after it, not at some later event.
        assert_eq!(got[kept], Err(EventsError::Lagged(1)));
        // Room again: what follows arrives, after the gap.
        hub.send(up(7));
        assert_eq!(drain(&mut slow), vec![Ok(7)]);
    }

    #[tokio::test]
    async fn losses_while_the_gap_cannot_be_told_are_counted_into_the_next_report() {
        let hub = EventHub::default();
        let mut slow = hub.subscribe();
        for _ in 0..EVENT_QUEUE + 10 {
            hub.send(up(1));
        }
        let first = drain(&mut slow);
        assert_eq!(first.last(), Some(&Err(EventsError::Lagged(1))));
        // The 10 after the report found no room at all.
        hub.send(up(2));
        assert_eq!(drain(&mut slow), vec![Err(EventsError::Lagged(10)), Ok(2)]);
    }

    #[tokio::test]
    async fn a_gone_subscriber_is_forgotten_and_a_stopped_hub_ends_every_stream() {
        let hub = EventHub::default();
        let gone = hub.subscribe();
        let mut stays = hub.subscribe();
        drop(gone);
        assert_eq!(hub.send(up(1)), 1);
        hub.close();
        // What was queued is still read, then the end.
        assert_eq!(stays.recv().await.map(which), Ok(1));
        assert_eq!(stays.recv().await.map(which), Err(EventsError::Closed));
        // Subscribing to a stopped node hears the end at once.
        assert_eq!(
            hub.subscribe().recv().await.map(which),
            Err(EventsError::Closed)
        );
    }

    #[tokio::test]
    async fn the_startup_subscription_is_kept_until_taken_but_not_forever() {
        let hub = EventHub::with_startup();
        hub.send(up(1));
        let mut startup = hub.take_startup().expect("kept until taken");
        assert!(hub.take_startup().is_none(), "for the first caller only");
        assert_eq!(startup.recv().await.map(which), Ok(1));

        // Kept for no time: nobody came for it, so its queue is dropped at
        // the first event, which it would only have held in memory.
        let untaken = EventHub::with_startup_kept(Duration::ZERO);
        assert_eq!(untaken.send(up(1)), 0);
        assert!(untaken.take_startup().is_none());
    }
}
