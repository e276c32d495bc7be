//! Reading the message history back: [`Node::history`] and
//! [`Node::history_query`], the broadcasts delivered here (our own among
//! them), from the node's store, so they outlive a restart (an event
//! subscriber only hears what arrives while it listens); and
//! [`read_history`], the same read straight from a data dir whose node is
//! not running.
//!
//! The actor hands each request to a task of its own that waits for the
//! store thread, so a slow disk never stalls the protocol. The store keeps
//! the signed envelopes as they arrived; they are decoded again here.

use std::path::Path;

use gossipnet_proto::envelope::SignedEnvelope;
use gossipnet_proto::{MessageId, NodeId};
use tokio::sync::oneshot;
use tracing::Instrument;

use crate::actor::ToActor;
use crate::store::{AddressBook, DataDir, HistoryFilter, StoreError, StoreHandle};
use crate::{Node, NodeError, Received};

/// Most messages one [`Node::history`] call returns: the cap of the control
/// API's `/api/messages`, a few screens of chat.
pub(crate) const MAX_HISTORY_READ: usize = 200;

/// Most messages one [`Node::history_query`] returns: enough for a long
/// `gossipnet history`, while one read holds the store thread (and every
/// write queued behind it) for a few milliseconds only.
pub const MAX_HISTORY_QUERY: usize = 10_000;

/// Which messages a history read returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryQuery {
    /// Only messages sent at or after this time (the origin's clock, Unix
    /// ms).
    pub since_ms: Option<u64>,
    /// Only messages whose origin's id starts with this (a full id or its
    /// short form).
    pub from: Option<String>,
    /// At most this many, the newest (at most [`MAX_HISTORY_QUERY`]).
    pub limit: usize,
}

/// Where the actor's answer to a history request goes.
pub(crate) type HistoryReply = oneshot::Sender<Result<Vec<Received>, NodeError>>;

impl Node {
    /// The broadcasts most recently delivered here, oldest first: up to
    /// `limit`, and at most 200 whatever `limit` says. They come from the
    /// data dir's history, so they include those delivered before the
    /// node last restarted, and our own; a node without a data dir keeps
    /// no history and answers an empty list. Direct messages are not kept.
    ///
    /// The history does not keep how far a message travelled, so `hops`
    /// reads 0. Cancel-safe: dropping the future loses only the answer.
    pub async fn history(&self, limit: usize) -> Result<Vec<Received>, NodeError> {
        self.history_query(HistoryQuery {
            limit: limit.min(MAX_HISTORY_READ),
            ..HistoryQuery::default()
        })
        .await
    }

    /// The stored broadcasts that match `query`, oldest first, the newest
    /// `query.limit` of them. Cancel-safe, as [`Node::history`].
    pub async fn history_query(&self, query: HistoryQuery) -> Result<Vec<Received>, NodeError> {
        let (reply, rx) = oneshot::channel();
        self.cmd_tx
            .send(ToActor::History { query, reply })
            .await
            .map_err(|_| NodeError::Stopped)?;
        rx.await.map_err(|_| NodeError::Stopped)?
    }
}

/// The history in the data dir `dir`, read without a running node (its
/// database is opened read-write, as a node would, and closed at once);
/// `me` marks our own messages.
pub fn read_history(dir: &Path, query: &HistoryQuery) -> Result<Vec<Received>, NodeError> {
    let dir = DataDir::open(dir)?;
    // A data dir no node has run in has no history; reading it must not
    // give it an identity.
    if !dir.identity_path().exists() {
        return Ok(Vec::new());
    }
    let me = dir.load_or_create_identity()?.0.node_id();
    let book = AddressBook::open_in(&dir)?;
    let rows = book.query_history(&filter(query), query.limit.min(MAX_HISTORY_QUERY))?;
    book.close()?;
    Ok(decode(rows, me))
}

fn filter(query: &HistoryQuery) -> HistoryFilter {
    HistoryFilter {
        since_ms: query.since_ms,
        from: query.from.clone(),
        all_kinds: false,
    }
}

/// Answers a history request for the actor without making it wait: the
/// store is asked, and the reply sent, from a task of its own.
pub(crate) fn answer(
    store: Option<&StoreHandle>,
    me: NodeId,
    query: HistoryQuery,
    reply: HistoryReply,
) {
    let Some(store) = store.cloned() else {
        let _ = reply.send(Ok(Vec::new()));
        return;
    };
    let limit = query.limit.min(MAX_HISTORY_QUERY);
    tokio::spawn(
        async move {
            let result = match store.query_history(filter(&query), limit).await {
                Ok(newest_first) => Ok(decode(newest_first, me)),
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
fn decode(newest_first: Vec<Vec<u8>>, me: NodeId) -> Vec<Received> {
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
                    own: env.origin == me,
                    caught_up: false,
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
        let other = SecretKey::generate(&mut rand::rngs::StdRng::seed_from_u64(8));
        let first = signed(&secret, 1, b"first");
        let second = signed(&secret, 2, b"second");
        let mut truncated = signed(&secret, 3, b"third");
        truncated.truncate(truncated.len() / 2);

        let got = decode(
            vec![second.clone(), truncated, Vec::new(), first.clone()],
            secret.node_id(),
        );
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].body, Bytes::from_static(b"first"));
        assert_eq!(got[0].id, MessageId::of(&first));
        assert_eq!((got[0].seq, got[0].time_ms), (1, 1_001));
        assert_eq!(got[0].origin, secret.node_id());
        assert_eq!(got[0].kind, Kind::Chat);
        assert!(got[0].own);
        assert_eq!(got[1].body, Bytes::from_static(b"second"));
        assert_eq!(got[1].id, MessageId::of(&second));
        assert!(!decode(vec![first], other.node_id())[0].own);
    }
}
