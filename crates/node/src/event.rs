//! What a subscriber to a [`Node`](crate::Node) hears: delivered broadcast
//! messages (our own broadcasts among them, marked), direct messages and
//! neighbour changes.

use bytes::Bytes;
use gossipnet_proto::envelope::Kind;
use gossipnet_proto::{MessageId, NodeId};
use tokio::sync::broadcast;

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

/// The events of one node from the moment of
/// [`Node::subscribe`](crate::Node::subscribe) on, in the order the node emitted them.
#[derive(Debug)]
pub struct Events {
    rx: broadcast::Receiver<NodeEvent>,
}

/// Why [`Events::recv`] returned no event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EventsError {
    /// The subscriber fell behind and this many events were dropped; the
    /// next call returns the oldest event still kept.
    #[error("missed {0} events")]
    Lagged(u64),
    /// The node has stopped and every event it sent has been read.
    #[error("the node has stopped")]
    Closed,
}

impl Events {
    pub(crate) fn new(rx: broadcast::Receiver<NodeEvent>) -> Self {
        Self { rx }
    }

    /// The next event. Cancel-safe: an event is taken from the stream only
    /// when this returns it.
    pub async fn recv(&mut self) -> Result<NodeEvent, EventsError> {
        self.rx.recv().await.map_err(|e| match e {
            broadcast::error::RecvError::Lagged(n) => EventsError::Lagged(n),
            broadcast::error::RecvError::Closed => EventsError::Closed,
        })
    }
}
