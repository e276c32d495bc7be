//! Direct messages: sealed to the recipient, signed by us, sent over a link
//! to the recipient if there is one or one can be dialled, and otherwise
//! relayed through the overlay, where every node forwards it and only the
//! recipient can open it.
//!
//! A message waiting for a dial is kept here as its envelope: if the dial
//! fails it goes into the overlay instead, so a direct message is never
//! lost to an unreachable address.

use std::collections::HashMap;

use bytes::Bytes;
use gossipnet_proto::direct::{DirectDedupe, Sealed};
use gossipnet_proto::envelope::Kind;
use gossipnet_proto::wire::Message;
use gossipnet_proto::{Command, InEvent, MessageId, NodeId};
use tracing::debug;

use super::driver::Encoded;
use super::{Actor, MAX_DIAL_QUEUE};
use crate::chat::ChatBody;
use crate::{DirectMessage, NodeError, NodeEvent};

/// Direct messages waiting for a dial to their recipient.
#[derive(Debug, Default)]
pub(super) struct Pending {
    envelopes: HashMap<NodeId, Vec<Bytes>>,
    /// Direct messages opened, so a repeat over a link is dropped.
    seen: DirectDedupe,
}

impl Pending {
    /// Keeps `envelope` for `to` until its dial ends, up to
    /// [`MAX_DIAL_QUEUE`] per recipient.
    fn hold(&mut self, to: NodeId, envelope: Bytes) {
        let queue = self.envelopes.entry(to).or_default();
        if queue.len() < MAX_DIAL_QUEUE {
            queue.push(envelope);
        }
    }

    /// A link to `peer` is up: what waited went over it.
    pub(super) fn linked(&mut self, peer: &NodeId) {
        self.envelopes.remove(peer);
    }

    /// The dial to `peer` failed: what waited, to relay.
    pub(super) fn failed(&mut self, peer: &NodeId) -> Vec<Bytes> {
        self.envelopes.remove(peer).unwrap_or_default()
    }
}

impl Actor {
    /// Sends a direct message; see the module docs.
    pub(super) async fn send_direct(
        &mut self,
        to: NodeId,
        text: String,
    ) -> Result<MessageId, NodeError> {
        if to == self.me {
            return Err(NodeError::DirectToSelf);
        }
        let body = ChatBody {
            name: self.config.name.clone(),
            text,
        };
        let sealed = Sealed::seal(to, &body.encode(), &mut rand::rngs::OsRng)?;
        let bytes = self.local.sign_envelope(
            &self.config.secret,
            Kind::Direct,
            Bytes::from(sealed.encode()),
        )?;
        let id = MessageId::of(&bytes);
        let wire_msg = Encoded::new(&Message::Direct(bytes.clone()));
        if self.links.contains(&to) {
            debug!(peer = %to.short(), "direct message over the open link");
            self.send_bytes(to, wire_msg).await;
        } else if self.dialer.addrs_of(&to).is_some() {
            debug!(peer = %to.short(), "dialling for a direct message");
            self.direct.hold(to, bytes);
            self.send_bytes(to, wire_msg).await;
        } else {
            debug!(peer = %to.short(), "no address; relaying the direct message");
            self.proto(InEvent::Command(Command::Broadcast(bytes)))
                .await;
        }
        Ok(id)
    }

    /// The dial for direct messages to `peer` failed: they go through the
    /// overlay instead.
    pub(super) async fn relay_direct(&mut self, peer: NodeId) {
        for envelope in self.direct.failed(&peer) {
            debug!(peer = %peer.short(), "relaying a direct message through the overlay");
            self.proto(InEvent::Command(Command::Broadcast(envelope)))
                .await;
        }
    }

    /// Opens a direct message if it is for us and tells the subscribers.
    pub(super) fn on_direct(&mut self, envelope_bytes: &[u8], via: &str) {
        let Ok(signed) = gossipnet_proto::envelope::decode_verified(envelope_bytes) else {
            debug!("dropping a direct message that does not verify");
            return;
        };
        let env = signed.envelope();
        if env.kind != Kind::Direct {
            return;
        }
        let Ok(sealed) = Sealed::decode(&env.body) else {
            return;
        };
        if sealed.to != self.me {
            return;
        }
        let id = MessageId::of(envelope_bytes);
        if let Err(e) = self
            .direct
            .seen
            .admit(id, env.time_ms, crate::time::unix_ms())
        {
            debug!(peer = %env.origin.short(), via, "dropping a direct message: {e}");
            return;
        }
        let Some(body) = sealed
            .open(&self.config.secret)
            .ok()
            .and_then(|plain| ChatBody::decode(&plain))
        else {
            debug!(peer = %env.origin.short(), "direct message does not open");
            return;
        };
        debug!(peer = %env.origin.short(), via, "direct message");
        let _ = self.events.send(NodeEvent::Direct(DirectMessage {
            id,
            from: env.origin,
            name: body.name,
            text: body.text,
            time_ms: env.time_ms,
        }));
    }
}

#[cfg(test)]
mod tests {
    use gossipnet_proto::SecretKey;
    use rand::SeedableRng;

    use super::*;

    fn id(seed: u64) -> NodeId {
        SecretKey::generate(&mut rand::rngs::StdRng::seed_from_u64(seed)).node_id()
    }

    #[test]
    fn waiting_messages_are_relayed_if_the_dial_fails_and_dropped_if_it_links() {
        let (a, b) = (id(1), id(2));
        let mut pending = Pending::default();
        pending.hold(a, Bytes::from_static(b"1"));
        pending.hold(a, Bytes::from_static(b"2"));
        pending.hold(b, Bytes::from_static(b"3"));
        pending.linked(&b);
        assert!(pending.failed(&b).is_empty(), "went over the link");
        assert_eq!(
            pending.failed(&a),
            vec![Bytes::from_static(b"1"), Bytes::from_static(b"2")]
        );
        assert!(pending.failed(&a).is_empty(), "relayed once");
    }

    #[test]
    fn waiting_messages_are_bounded_per_recipient() {
        let a = id(1);
        let mut pending = Pending::default();
        for _ in 0..MAX_DIAL_QUEUE + 5 {
            pending.hold(a, Bytes::from_static(b"m"));
        }
        assert_eq!(pending.failed(&a).len(), MAX_DIAL_QUEUE);
    }
}
