//! `/api/network`: a crawl of the whole network from this node, whole or as
//! JSON lines of progress ending in the topology. One crawl runs at a time,
//! and a fresh one is served again, so several dashboards polling at once
//! cost one crawl.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc;

use super::routes::ApiState;
use super::{CRAWL_CACHE, PROGRESS_QUEUE};
use crate::crawl::Topology;

/// The last crawl and when it ended; the lock is held while a crawl runs.
#[derive(Debug, Default)]
pub(super) struct CrawlCache(tokio::sync::Mutex<Option<(Instant, Arc<Topology>)>>);

#[derive(Debug, Deserialize)]
pub(super) struct NetworkQuery {
    stream: Option<u8>,
}

/// A crawl of the network from this node; with `stream=1`, JSON lines of
/// progress and then the topology.
pub(super) async fn network(
    State(state): State<Arc<ApiState>>,
    Query(q): Query<NetworkQuery>,
) -> Response {
    if q.stream.unwrap_or(0) == 0 {
        return Json(crawl_cached(&state, None).await.as_ref().clone()).into_response();
    }
    let (tx, rx) = mpsc::channel::<Bytes>(PROGRESS_QUEUE);
    tokio::spawn(async move {
        let progress_tx = tx.clone();
        let topology = crawl_cached(&state, Some(progress_tx)).await;
        let line = json!({ "topology": topology.as_ref() });
        let _ = tx.send(Bytes::from(format!("{line}\n"))).await;
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    });
    let mut response = Body::from_stream(stream).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    response
}

/// One crawl at a time; a recent one is served again.
async fn crawl_cached(state: &ApiState, progress: Option<mpsc::Sender<Bytes>>) -> Arc<Topology> {
    let mut cache = state.crawl.0.lock().await;
    if let Some((at, topology)) = cache.as_ref() {
        if at.elapsed() < CRAWL_CACHE {
            return topology.clone();
        }
    }
    let topology = Arc::new(
        state
            .node
            .crawl(|p| {
                if let Some(tx) = &progress {
                    let line = json!({ "progress": p });
                    let _ = tx.try_send(Bytes::from(format!("{line}\n")));
                }
            })
            .await,
    );
    *cache = Some((Instant::now(), topology.clone()));
    topology
}
