//! What the node hears, as the API shows it: the live event stream
//! (server-sent events at `/api/events`) and `/api/messages`, the feed the
//! dashboard reads on load.
//!
//! The feed is the node's history ([`crate::Node::history`], kept in the
//! data dir, so it outlives a restart) joined with a ring of what this
//! server heard since it started. The ring is still needed: the history
//! keeps broadcasts only, not direct messages, nor how far each broadcast
//! travelled; and a node without a data dir has no history at all, so its
//! feed is the ring alone.

use std::collections::{HashSet, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::Json;
use gossipnet_proto::envelope::Kind;
use serde::Deserialize;
use serde_json::{json, Value};

use super::routes::ApiState;
use super::{DEFAULT_MESSAGES, RECENT_MESSAGES};
use crate::chat::ChatBody;
use crate::{Events, EventsError, NodeEvent, Received};

/// The last [`RECENT_MESSAGES`] messages delivered, oldest first, each as
/// its event's JSON with its `kind`.
#[derive(Debug, Default)]
pub(super) struct Recent(Mutex<VecDeque<Value>>);

impl Recent {
    /// Keeps `value`, forgetting the oldest when full.
    fn push(&self, value: Value) {
        if let Ok(mut recent) = self.0.lock() {
            if recent.len() == RECENT_MESSAGES {
                recent.pop_front();
            }
            recent.push_back(value);
        }
    }

    /// The last `limit` kept, oldest first.
    fn last(&self, limit: usize) -> Vec<Value> {
        let recent = self.0.lock().map(|r| r.clone()).unwrap_or_default();
        let skip = recent.len().saturating_sub(limit);
        recent.into_iter().skip(skip).collect()
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct Limit {
    limit: Option<usize>,
}

/// `/api/messages`: the last messages delivered here, oldest first. With a
/// data dir they include broadcasts from before the node restarted; without
/// one (or when the history cannot be read) they are the ring's alone.
pub(super) async fn messages(
    State(state): State<Arc<ApiState>>,
    Query(q): Query<Limit>,
) -> Json<Value> {
    let limit = q.limit.unwrap_or(DEFAULT_MESSAGES).min(RECENT_MESSAGES);
    // The ring first: what arrives between the two reads then lands in the
    // history's tail, which `feed` drops, so nothing shows twice.
    let heard = state.recent.last(limit);
    let stored = state.node.history(limit).await.unwrap_or_else(|err| {
        tracing::debug!(%err, "no history; the feed is the ring alone");
        Vec::new()
    });
    Json(Value::Array(feed(&stored, heard, limit)))
}

/// The last `limit` of: the stored broadcasts older than anything the ring
/// holds, then the ring. Both are in order of arrival, so the stored ones
/// the ring never heard (from before a restart, or pushed out of it) are
/// those before the first it did hear; the ring's entry wins where both
/// have a message, since it knows the hops.
fn feed(stored: &[Received], heard: Vec<Value>, limit: usize) -> Vec<Value> {
    let in_ring: HashSet<&str> = heard.iter().filter_map(|m| m["id"].as_str()).collect();
    let mut all: Vec<Value> = stored
        .iter()
        .take_while(|m| !in_ring.contains(m.id.to_string().as_str()))
        .map(message_json)
        .collect();
    all.extend(heard);
    let skip = all.len().saturating_sub(limit);
    all.split_off(skip)
}

/// The live stream: delivered messages and neighbour changes.
pub(super) async fn events(
    State(state): State<Arc<ApiState>>,
) -> Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>> {
    let rx = state.node.subscribe();
    let closing = state.closing.clone();
    let stream = futures_util::stream::unfold((rx, closing), |(mut rx, mut closing)| async move {
        loop {
            let received = tokio::select! {
                received = rx.recv() => received,
                // A stream that never ends would hold the server's
                // graceful shutdown open.
                _ = closing.wait_for(|c| *c) => return None,
            };
            match received {
                Ok(event) => {
                    if let Some((kind, data)) = event_json(&event) {
                        let event = Event::default().event(kind).data(data.to_string());
                        return Some((Ok(event), (rx, closing)));
                    }
                }
                Err(EventsError::Lagged(_)) => continue,
                Err(EventsError::Closed) => return None,
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// An event as the API shows it: its type and JSON.
fn event_json(event: &NodeEvent) -> Option<(&'static str, Value)> {
    Some(match event {
        NodeEvent::Message(m) => ("message", message_json(m)),
        NodeEvent::Direct(d) => (
            "direct",
            json!({
                "id": d.id.to_string(),
                "origin": d.from.to_string(),
                "name": d.name,
                "text": d.text,
                "time": d.time_ms,
            }),
        ),
        NodeEvent::NeighborUp(p) => ("neighbor_up", json!({ "peer": p.to_string() })),
        NodeEvent::NeighborDown(p, why) => (
            "neighbor_down",
            json!({ "peer": p.to_string(), "reason": why.as_str() }),
        ),
    })
}

/// `/api/history?since=MS&from=ID&limit=N`: the stored broadcasts that
/// match, oldest first, the newest `limit` (default 50, at most
/// [`crate::MAX_HISTORY_QUERY`]), each as a `message` event's data.
pub(super) async fn history(
    State(state): State<Arc<ApiState>>,
    Query(q): Query<HistoryParams>,
) -> Result<Json<Value>, super::routes::ApiError> {
    let query = crate::HistoryQuery {
        since_ms: q.since,
        from: q.from,
        limit: q.limit.unwrap_or(DEFAULT_MESSAGES),
    };
    let stored = state
        .node
        .history_query(query)
        .await
        .map_err(super::routes::unavailable)?;
    Ok(Json(Value::Array(
        stored.iter().map(message_json).collect(),
    )))
}

#[derive(Debug, Deserialize)]
pub(super) struct HistoryParams {
    since: Option<u64>,
    from: Option<String>,
    limit: Option<usize>,
}

/// A delivered message as the API shows it (the data of a `message` event,
/// an entry of `/api/messages` and `/api/history`).
pub fn message_json(m: &Received) -> Value {
    let chat = (m.kind == Kind::Chat)
        .then(|| ChatBody::decode(&m.body))
        .flatten();
    let kind = match m.kind {
        Kind::Chat => "chat".to_string(),
        Kind::Direct => "direct".to_string(),
        Kind::Shutdown => "shutdown".to_string(),
        Kind::Custom(n) => format!("custom-{n}"),
    };
    json!({
        "id": m.id.to_string(),
        "origin": m.origin.to_string(),
        "name": chat.as_ref().and_then(|c| c.name.clone()),
        "text": chat.map(|c| c.text),
        "time": m.time_ms,
        "hops": m.hops,
        "seq": m.seq,
        "kind": kind,
        "own": m.own,
        "caught_up": m.caught_up,
    })
}

/// Keeps the last messages for `/api/messages`, until the server stops.
pub(super) async fn keep_recent(state: Arc<ApiState>, mut rx: Events) {
    let mut closing = state.closing.clone();
    loop {
        let received = tokio::select! {
            received = rx.recv() => received,
            _ = closing.wait_for(|c| *c) => return,
        };
        let value = match received {
            Ok(NodeEvent::Message(m)) => message_json(&m),
            Ok(event @ NodeEvent::Direct(_)) => match event_json(&event) {
                Some((_, mut v)) => {
                    v["kind"] = json!("direct");
                    v
                }
                None => continue,
            },
            Ok(_) | Err(EventsError::Lagged(_)) => continue,
            Err(EventsError::Closed) => return,
        };
        state.recent.push(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_keeps_the_newest() {
        let recent = Recent::default();
        for i in 0..RECENT_MESSAGES + 5 {
            recent.push(json!(i));
        }
        let all = recent.last(usize::MAX);
        assert_eq!(all.len(), RECENT_MESSAGES);
        assert_eq!(all[0], json!(5));
        assert_eq!(
            recent.last(2),
            vec![json!(RECENT_MESSAGES + 3), json!(RECENT_MESSAGES + 4)]
        );
    }

    fn stored(n: u8) -> Received {
        Received {
            id: gossipnet_proto::MessageId::of(&[n]),
            origin: gossipnet_proto::SecretKey::from_bytes(&[1; 32]).node_id(),
            seq: u64::from(n),
            time_ms: u64::from(n),
            kind: Kind::Custom(9),
            body: bytes::Bytes::new(),
            hops: 0,
            own: false,
            caught_up: false,
        }
    }

    #[test]
    fn the_feed_puts_what_the_ring_missed_first() {
        let history: Vec<Received> = (1..=4).map(stored).collect();
        // The ring heard 3, then a direct message, then 4, then 5 (which the
        // history read came too early to hold).
        let mut three = message_json(&history[2]);
        three["hops"] = json!(2);
        let direct = json!({ "id": "d", "kind": "direct" });
        let four = message_json(&history[3]);
        let five = message_json(&stored(5));
        let ring = vec![three.clone(), direct.clone(), four.clone(), five.clone()];
        let ids = |feed: &[Value]| -> Vec<Value> { feed.iter().map(|m| m["id"].clone()).collect() };

        let got = feed(&history, ring.clone(), 10);
        let one = message_json(&history[0]);
        let two = message_json(&history[1]);
        assert_eq!(
            got,
            vec![one, two.clone(), three, direct, four, five.clone()]
        );
        assert_eq!(ids(&feed(&history, ring, 5))[0], two["id"]);
        // No ring (a restart): the history alone; no history: the ring alone.
        assert_eq!(feed(&history, Vec::new(), 2).len(), 2);
        assert_eq!(feed(&[], vec![five.clone()], 10), vec![five]);
        assert_eq!(feed(&history, Vec::new(), 2)[1]["kind"], "custom-9");
    }
}
