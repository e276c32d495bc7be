//! The driver: feeds inputs to [`gossipnet_proto::State`] and carries out
//! what comes back. [`Actor::apply`] is the one function that turns
//! protocol output into I/O, and [`Actor::send_bytes`] the one path a
//! message takes to a peer (over its link, held for a dial, or given up on)
//! and where what is sent is counted, by [`Class`] too: each message is
//! classed from its value as it is encoded ([`Encoded`]), never by reading
//! the bytes back.
//!
//! Carrying out an output can produce a new input (a send that fails is a
//! disconnected peer); such inputs queue behind the current one, so the
//! protocol always sees them in order and never re-entrantly.

use std::collections::{BTreeSet, HashMap, VecDeque};

use bytes::Bytes;
use gossipnet_proto::envelope::{Kind, SignedEnvelope};
use gossipnet_proto::hyparview;
use gossipnet_proto::plumtree::{self, Gossip};
use gossipnet_proto::record::SignedRecord;
use gossipnet_proto::wire::{self, Class, Message};
use gossipnet_proto::{Event, InEvent, OutEvent, State};
use rand::rngs::StdRng;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::links::Sent;
use super::Actor;
use crate::{DownReason, NodeEvent, Received};

/// The protocol state and what the actor keeps about its output.
pub(super) struct Driver {
    pub(super) state: State<StdRng>,
    /// Inputs produced while carrying out outputs, fed in next.
    inputs: VecDeque<InEvent>,
    /// The active view as the protocol last reported it.
    pub(super) neighbors: BTreeSet<gossipnet_proto::NodeId>,
    gossip: GossipEncoder,
    /// New neighbours to ping once the step that made them is carried out,
    /// to learn the link's round-trip time (see [`Actor::send_probes`]).
    probes: Vec<gossipnet_proto::NodeId>,
    /// Why a neighbour is about to go, as seen before the protocol reports
    /// it down (a goodbye read, a link that failed). Neighbours only, so it
    /// is bounded by the active view.
    down_hints: HashMap<gossipnet_proto::NodeId, DownReason>,
}

impl Driver {
    pub(super) fn new(state: State<StdRng>) -> Self {
        Self {
            state,
            inputs: VecDeque::new(),
            neighbors: BTreeSet::new(),
            gossip: GossipEncoder::default(),
            probes: Vec::new(),
            down_hints: HashMap::new(),
        }
    }

    /// Notes why neighbour `peer` is going, unless a reason is noted
    /// already (the first sign is the true one: a goodbye, then the close).
    /// Queues a ping to time the link to neighbour `peer`.
    pub(super) fn probe(&mut self, peer: gossipnet_proto::NodeId) {
        self.probes.push(peer);
    }

    pub(super) fn hint_down(&mut self, peer: gossipnet_proto::NodeId, why: DownReason) {
        if self.neighbors.contains(&peer) {
            self.down_hints.entry(peer).or_insert(why);
        }
    }

    /// Queues an input behind those waiting.
    pub(super) fn push(&mut self, input: InEvent) {
        self.inputs.push_back(input);
    }

    /// Feeds the next waiting input; its outputs, or `None` when no input
    /// waits.
    fn step(&mut self) -> Option<Vec<OutEvent>> {
        let input = self.inputs.pop_front()?;
        // Envelope ages are judged by the wall clock.
        self.state.set_wall_clock(crate::time::unix_ms());
        Some(
            self.state
                .handle(input, Instant::now().into_std())
                .collect(),
        )
    }

    /// The wire bytes of a message for a peer.
    fn encode(&mut self, msg: &Message) -> Encoded {
        let bytes = match msg {
            Message::Broadcast(plumtree::Message::Gossip(g)) => self.gossip.encode(g),
            _ => Bytes::from(wire::encode(msg)),
        };
        Encoded {
            class: msg.class(),
            bytes,
        }
    }
}

/// A message encoded for a link, with its class beside the bytes: the
/// counters split what is sent by class, and the message value is gone by
/// the time the bytes are queued (or held for a dial, then queued).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Encoded {
    pub(super) class: Class,
    pub(super) bytes: Bytes,
}

impl Encoded {
    /// Encodes `msg` and notes its class.
    pub(super) fn new(msg: &Message) -> Self {
        Self {
            class: msg.class(),
            bytes: Bytes::from(wire::encode(msg)),
        }
    }
}

/// Encodes a gossip message once for all the peers it is pushed to:
/// Plumtree emits the eager pushes of one message one after another, with
/// the same payload buffer and round, so the last encoding is reused and
/// the payload is not copied once per peer.
#[derive(Default)]
struct GossipEncoder {
    /// The last gossip encoded: (payload, round, encoding).
    last: Option<(Bytes, u16, Bytes)>,
}

impl GossipEncoder {
    fn encode(&mut self, gossip: &Gossip) -> Bytes {
        if let Some((content, round, encoded)) = &self.last {
            if content.as_ptr() == gossip.content.as_ptr()
                && content.len() == gossip.content.len()
                && *round == gossip.round
            {
                return encoded.clone();
            }
        }
        let encoded = Bytes::from(wire::encode(&Message::Broadcast(
            plumtree::Message::Gossip(gossip.clone()),
        )));
        self.last = Some((gossip.content.clone(), gossip.round, encoded.clone()));
        encoded
    }
}

impl Actor {
    /// Feeds one input to the protocol and carries out what comes back,
    /// then any inputs that carrying it out produced.
    pub(super) async fn proto(&mut self, input: InEvent) {
        self.driver.push(input);
        self.drain_inputs().await;
    }

    pub(super) async fn drain_inputs(&mut self) {
        while let Some(outs) = self.driver.step() {
            for out in outs {
                self.apply(out).await;
            }
        }
        self.send_probes().await;
    }

    /// Pings each new neighbour once, to time the link: a figure for
    /// `gossipnet peers` before the protocol's own pings (of quiet links
    /// only) give one. Sent after the outputs that made the neighbour, so
    /// the peer has read the message that took us in before our ping: a
    /// ping from outside its active view would make it disconnect us.
    pub(super) async fn send_probes(&mut self) {
        for peer in std::mem::take(&mut self.driver.probes) {
            if !self.driver.neighbors.contains(&peer) {
                continue;
            }
            let nonce = rand::Rng::gen(&mut self.rng);
            self.links.pinged(&peer, nonce);
            self.send_bytes(peer, Encoded::new(&Message::Ping(nonce)))
                .await;
        }
    }

    /// The one place protocol output becomes I/O.
    async fn apply(&mut self, out: OutEvent) {
        match out {
            OutEvent::SendMessage(peer, msg) => {
                match msg {
                    Message::Ping(nonce) => self.links.pinged(&peer, nonce),
                    // We give the neighbour up.
                    Message::Membership(hyparview::Message::Disconnect { .. }) => {
                        self.driver.hint_down(peer, DownReason::Dropped)
                    }
                    _ => {}
                }
                let encoded = self.driver.encode(&msg);
                self.send_bytes(peer, encoded).await;
            }
            OutEvent::ScheduleTimer(delay, timer) => {
                self.timers.insert(Instant::now() + delay, timer);
            }
            OutEvent::DisconnectPeer(peer) => self.links.close(peer),
            OutEvent::EmitEvent(event) => self.on_proto_event(event).await,
            OutEvent::PeerData(peer, data) => self.learn_record(peer, &data),
            // The actor routes before it feeds the protocol, so this comes
            // only from a bug; handling it anyway needs a boxed future, as
            // its handlers feed the protocol in turn.
            OutEvent::Runtime(peer, msg) => Box::pin(self.on_runtime_message(peer, msg)).await,
        }
    }

    /// Sends an encoded message to `peer`: over its link, held for a dial
    /// that is out, or dialled at a known address. A peer that cannot be
    /// reached is reported to the protocol as disconnected. Counted as sent
    /// once queued to a link (held messages when their dial links).
    pub(super) async fn send_bytes(&mut self, peer: gossipnet_proto::NodeId, msg: Encoded) {
        if peer == self.me {
            return;
        }
        let Encoded { class, bytes } = msg;
        let len = bytes.len() as u64;
        let bytes = match self.links.send(peer, bytes) {
            Sent::Queued => {
                self.counters.sent(class, len);
                return;
            }
            Sent::Cut => {
                self.counters.sent(class, len);
                self.driver.push(InEvent::PeerDisconnected(peer));
                return;
            }
            Sent::NoLink(bytes) => Encoded { class, bytes },
        };
        let Err(msg) = self.dialer.held.hold(peer, bytes) else {
            return;
        };
        if !self.dialer.dial_peer(peer, msg) {
            debug!(peer = %peer.short(), "no address known; cannot reach");
            self.driver.push(InEvent::PeerDisconnected(peer));
        }
    }

    /// Sends `msg` to `peer` in answer to its request (`what`, for the
    /// log), if its link's reply budget covers it; else drops it. The one
    /// path for replies the runtime makes to a peer's requests.
    pub(super) async fn send_reply(
        &mut self,
        peer: gossipnet_proto::NodeId,
        msg: Encoded,
        what: &str,
    ) {
        if self.links.allow_reply(&peer, msg.bytes.len(), what) {
            self.send_bytes(peer, msg).await;
        }
    }

    async fn on_proto_event(&mut self, event: Event) {
        match event {
            Event::NeighborUp(peer) => {
                info!(peer = %peer.short(), "neighbor up");
                self.driver.neighbors.insert(peer);
                self.driver.down_hints.remove(&peer);
                self.driver.probes.push(peer);
                if let Some(store) = &self.store {
                    store.seen(peer);
                }
                let _ = self.events.send(NodeEvent::NeighborUp(peer));
            }
            Event::NeighborDown(peer) => {
                info!(peer = %peer.short(), "neighbor down");
                self.driver.neighbors.remove(&peer);
                // No sign before the protocol's own verdict: it fell silent.
                let why = self
                    .driver
                    .down_hints
                    .remove(&peer)
                    .unwrap_or(DownReason::Unreachable);
                let _ = self.events.send(NodeEvent::NeighborDown(peer, why));
            }
            Event::Received(delivered) => {
                // Verified by the protocol before it was delivered.
                let Ok(signed) = SignedEnvelope::decode(&delivered.content) else {
                    return;
                };
                let env = signed.envelope();
                // Every kind is kept, so that none is delivered twice after
                // a restart and neighbours can fetch any of them; but for
                // shutdown commands, whose record is the admin replay guard
                // in the data dir: a replay must reach it to be refused in
                // words rather than vanish as a duplicate.
                if let (Some(store), false) = (&self.store, env.kind == Kind::Shutdown) {
                    store.message(
                        delivered.id,
                        env.origin,
                        env.time_ms,
                        delivered.content.clone(),
                    );
                }
                match env.kind {
                    // Relayed through the overlay: open it if it is ours.
                    Kind::Direct => self.on_direct(&delivered.content, "overlay"),
                    Kind::Shutdown => {
                        let content = delivered.content.clone();
                        if self.on_admin(&content, delivered.delivered_from) {
                            self.hand_to_seeds(content).await;
                        }
                    }
                    _ => {
                        self.emit_message(
                            &signed,
                            delivered.id,
                            delivered.hops,
                            false,
                            delivered.caught_up,
                        );
                    }
                }
            }
            Event::Misbehaved { peer, reason } => {
                warn!(peer = %peer.short(), "closing link: {reason}");
                self.discourage(peer, super::discourage::Offence::Misbehaved);
            }
        }
    }

    /// Stores a message we broadcast and tells subscribers, marked as ours.
    pub(super) fn record_delivery(
        &mut self,
        id: gossipnet_proto::MessageId,
        signed: &SignedEnvelope,
        content: &Bytes,
        hops: u16,
        own: bool,
        caught_up: bool,
    ) {
        let env = signed.envelope();
        if let Some(store) = &self.store {
            store.message(id, env.origin, env.time_ms, content.clone());
        }
        self.emit_message(signed, id, hops, own, caught_up);
    }

    fn emit_message(
        &self,
        signed: &SignedEnvelope,
        id: gossipnet_proto::MessageId,
        hops: u16,
        own: bool,
        caught_up: bool,
    ) {
        let env = signed.envelope();
        let _ = self.events.send(NodeEvent::Message(Received {
            id,
            origin: env.origin,
            seq: env.seq,
            time_ms: env.time_ms,
            kind: env.kind,
            body: env.body.clone(),
            hops,
            own,
            caught_up,
        }));
    }

    /// Takes a peer's published record: verified, it gives the addresses to
    /// dial the peer at.
    fn learn_record(&mut self, peer: gossipnet_proto::NodeId, data: &[u8]) {
        let Ok(record) = SignedRecord::decode(data) else {
            debug!(peer = %peer.short(), "undecodable peer record");
            return;
        };
        if record.id() != peer || record.verify().is_err() {
            debug!(peer = %peer.short(), "peer record does not verify");
            return;
        }
        self.dialer.learn(&record);
        if let Some(store) = &self.store {
            store.record(record);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gossip(content: &Bytes, round: u16) -> Gossip {
        Gossip {
            content: content.clone(),
            round,
        }
    }

    #[test]
    fn pushes_of_one_message_share_one_encoding() {
        let mut enc = GossipEncoder::default();
        let content = Bytes::from(vec![7u8; 1000]);
        let first = enc.encode(&gossip(&content, 1));
        let again = enc.encode(&gossip(&content, 1));
        assert_eq!(first.as_ptr(), again.as_ptr(), "encoded once");
        let expected = wire::encode(&Message::Broadcast(plumtree::Message::Gossip(gossip(
            &content, 1,
        ))));
        assert_eq!(first, expected);
    }

    #[test]
    fn another_round_or_payload_is_encoded_afresh() {
        let mut enc = GossipEncoder::default();
        let content = Bytes::from(vec![7u8; 100]);
        let first = enc.encode(&gossip(&content, 1));
        let next_round = enc.encode(&gossip(&content, 2));
        assert_ne!(first, next_round);
        // Equal bytes in another buffer: the cache goes by buffer, not by
        // value, so it is never wrong, at worst encodes again.
        let copy = Bytes::from(content.to_vec());
        let other = enc.encode(&gossip(&copy, 2));
        assert_ne!(other.as_ptr(), next_round.as_ptr());
        assert_eq!(other, next_round);
    }
}
