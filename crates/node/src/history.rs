//! Reading the message history back: [`Node::history`], the broadcasts
//! delivered here most recently, from the node's store, so they outlive a
//! restart (an event subscriber only hears what arrives while it listens).
//!
//! The actor hands each request to a task of its own that waits for the
//! store thread, so a slow disk never stalls the protocol. The store keeps
//! the signed envelopes as they arrived; they are decoded again here.

use gossipnet_proto::envelope::SignedEnvelope;
use gossipnet_proto::MessageId;
use tokio::sync::oneshot;
use tracing::Instrument;

use crate::actor::ToActor;
use crate::store::{StoreError, StoreHandle};
use crate::{Node, NodeError, Received};

/// Most messages one [`Node::history`] call returns: the cap of the control
/// API's `/api/messages`, a few screens of chat. The store keeps far more,
/// but one read holds the store thread, and every write queued behind it.
pub(crate) const MAX_HISTORY_READ: usize = 200;

/// Where the actor's answer to a history request goes.
pub(crate) type HistoryReply = oneshot::Sender<Result<Vec<Received>, NodeError>>;

impl Node {
    /// The broadcasts most recently delivered here, oldest first: up to
    /// `limit`, and at most 200 whatever `limit` says. They come from the
    /// data dir's history, so they include those delivered before the
    /// node last restarted; a node without a data dir keeps no history and
    /// answers an empty list. Direct messages are not kept.
    ///
    /// The history does not keep how far a message travelled, so `hops`
    /// reads 0. Cancel-safe: dropping the future loses only the answer.
    pub async fn history(&self, limit: usize) -> Result<Vec<Received>, NodeError> {
        let (reply, rx) = oneshot::channel();
        self.cmd_tx
            .send(ToActor::History {
                limit: limit.min(MAX_HISTORY_READ),
                reply,
            })
            .await
            .map_err(|_| NodeError::Stopped)?;
        rx.await.map_err(|_| NodeError::Stopped)?
    }
}

/// Answers a history request for the actor without making it wait: the
/// store is asked, and the reply sent, from a task of its own.
pub(crate) fn answer(store: Option<&StoreHandle>, limit: usize, reply: HistoryReply) {
    let Some(store) = store.cloned() else {
        let _ = reply.send(Ok(Vec::new()));
        return;
    };
    let limit = limit.min(MAX_HISTORY_READ);
    tokio::spawn(
        async move {
            let result = match store.recent_messages(limit).await {
                Ok(newest_first) => Ok(decode(newest_first)),
                Err(StoreError::Closed) => Err(NodeError::Stopped),
                Err(err) => Err(NodeError::Store(err)),
            };
            let _ = reply.send(result);
        }
        .in_current_span(),
    );
}

/// Envelopes as the store returns them, newest first, as messages oldest
/// first. They were verified before they were stored, so a row that does not
/// decode means a damaged file or a format change: it is logged and skipped.
fn decode(newest_first: Vec<Vec<u8>>) -> Vec<Received> {
    newest_first
        .into_iter()
        .rev()
        .filter_map(|bytes| match SignedEnvelope::decode(&bytes) {
            Ok(signed) => {
                let env = signed.envelope();
                Some(Received {
                    // The id is the hash of the signed envelope, as delivered.
                    id: MessageId::of(&bytes),
                    origin: env.origin,
                    seq: env.seq,
                    time_ms: env.time_ms,
                    kind: env.kind,
                    body: env.body.clone(),
                    hops: 0,
                })
            }
            Err(err) => {
                tracing::warn!(%err, len = bytes.len(), "skipped a stored message that does not decode");
                None
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use gossipnet_proto::envelope::{Envelope, Kind};
    use gossipnet_proto::SecretKey;
    use rand::SeedableRng;

    use super::*;

    fn signed(secret: &SecretKey, seq: u64, body: &'static [u8]) -> Vec<u8> {
        let envelope = Envelope {
            origin: secret.node_id(),
            seq,
            time_ms: 1_000 + seq,
            kind: Kind::Chat,
            body: Bytes::from_static(body),
        };
        SignedEnvelope::sign(secret, envelope)
            .unwrap()
            .encode()
            .to_vec()
    }

    #[test]
    fn rows_decode_oldest_first_and_bad_ones_are_skipped() {
        let secret = SecretKey::generate(&mut rand::rngs::StdRng::seed_from_u64(7));
        let first = signed(&secret, 1, b"first");
        let second = signed(&secret, 2, b"second");
        let mut truncated = signed(&secret, 3, b"third");
        truncated.truncate(truncated.len() / 2);

        let got = decode(vec![second.clone(), truncated, Vec::new(), first.clone()]);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].body, Bytes::from_static(b"first"));
        assert_eq!(got[0].id, MessageId::of(&first));
        assert_eq!((got[0].seq, got[0].time_ms), (1, 1_001));
        assert_eq!(got[0].origin, secret.node_id());
        assert_eq!(got[0].kind, Kind::Chat);
        assert_eq!(got[1].body, Bytes::from_static(b"second"));
        assert_eq!(got[1].id, MessageId::of(&second));
    }
}
