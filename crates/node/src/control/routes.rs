//! The router: which handler answers which path, behind the cookie check
//! and a cap on request bodies; and the handlers that read the node's
//! status or give it a command. The event stream, the crawl and the
//! metrics have modules of their own.

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use gossipnet_proto::NodeId;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::watch;

use super::{auth, dashboard, events, metrics, network, MAX_REQUEST_BYTES};
use crate::{Node, NodeError, Status};

/// What every handler shares.
pub(super) struct ApiState {
    /// The node served.
    pub(super) node: Node,
    /// The cookie requests must present.
    pub(super) cookie: String,
    /// Turns true when the server is stopping: streams end then.
    pub(super) closing: watch::Receiver<bool>,
    /// The last messages delivered, for `/api/messages`.
    pub(super) recent: events::Recent,
    /// The last crawl, served again while it is fresh.
    pub(super) crawl: network::CrawlCache,
}

impl ApiState {
    pub(super) fn new(node: Node, cookie: String, closing: watch::Receiver<bool>) -> Self {
        Self {
            node,
            cookie,
            closing,
            recent: events::Recent::default(),
            crawl: network::CrawlCache::default(),
        }
    }
}

/// Every path of docs/API.md.
pub(super) fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/", get(dashboard::dashboard))
        .route("/api/status", get(status))
        .route("/api/peers", get(peers))
        .route("/api/messages", get(events::messages))
        .route("/api/history", get(events::history))
        .route("/api/send", post(send))
        .route("/api/dm", post(dm))
        .route("/api/leave", post(leave))
        .route("/api/events", get(events::events))
        .route("/api/network", get(network::network))
        .route("/api/shutdown", post(shutdown))
        .route("/metrics", get(metrics::metrics))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), auth::auth))
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .with_state(state)
}

/// An error answer: a status and a JSON body saying what to do.
pub(super) struct ApiError(pub(super) StatusCode, pub(super) String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

fn bad_request(e: impl std::fmt::Display) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, e.to_string())
}

/// The node refused what was asked: the error and each of its sources, as
/// one line, so a client sees why (a bad signature, a message too large).
fn refused(e: NodeError) -> ApiError {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    ApiError(StatusCode::BAD_REQUEST, text)
}

/// The node could not answer (it has stopped, say).
pub(super) fn unavailable(e: impl std::fmt::Display) -> ApiError {
    ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
}

async fn not_found() -> ApiError {
    ApiError(
        StatusCode::NOT_FOUND,
        "no such endpoint; see docs/API.md".into(),
    )
}

async fn status(State(state): State<Arc<ApiState>>) -> Result<Json<Status>, ApiError> {
    state.node.status().await.map(Json).map_err(unavailable)
}

async fn peers(State(state): State<Arc<ApiState>>) -> Result<Json<Value>, ApiError> {
    let peers = state.node.peers().await.map_err(unavailable)?;
    Ok(Json(serde_json::to_value(peers).unwrap_or_default()))
}

#[derive(Debug, Deserialize)]
pub(crate) struct SendBody {
    pub(crate) text: String,
}

async fn send(
    State(state): State<Arc<ApiState>>,
    Json(body): Json<SendBody>,
) -> Result<Json<Value>, ApiError> {
    let text = body.text.trim_end();
    if text.is_empty() {
        return Err(bad_request("the text is empty"));
    }
    let id = state.node.broadcast_text(text).await.map_err(refused)?;
    Ok(Json(json!({ "id": id.to_string() })))
}

#[derive(Debug, Deserialize)]
pub(crate) struct DmBody {
    pub(crate) to: String,
    pub(crate) text: String,
}

async fn dm(
    State(state): State<Arc<ApiState>>,
    Json(body): Json<DmBody>,
) -> Result<Json<Value>, ApiError> {
    let to: NodeId = body
        .to
        .parse()
        .map_err(|e| bad_request(format!("'{}' is not a node id: {e}", body.to)))?;
    if body.text.trim().is_empty() {
        return Err(bad_request("the text is empty"));
    }
    let id = state
        .node
        .send_direct(to, &body.text)
        .await
        .map_err(refused)?;
    Ok(Json(json!({ "id": id.to_string() })))
}

async fn leave(State(state): State<Arc<ApiState>>) -> Json<Value> {
    let node = state.node.clone();
    // Answer first; the node's process exits once it has left.
    tokio::spawn(async move {
        let _ = node.leave().await;
    });
    Json(json!({ "ok": true }))
}

#[derive(Debug, Deserialize)]
pub(crate) struct ShutdownBody {
    pub(crate) command: String,
}

async fn shutdown(
    State(state): State<Arc<ApiState>>,
    Json(body): Json<ShutdownBody>,
) -> Result<Json<Value>, ApiError> {
    let bytes = data_encoding::HEXLOWER_PERMISSIVE
        .decode(body.command.trim().as_bytes())
        .map_err(|_| bad_request("the command must be hex"))?;
    let id = state
        .node
        .publish_admin(Bytes::from(bytes))
        .await
        .map_err(refused)?;
    Ok(Json(json!({ "id": id.to_string() })))
}
