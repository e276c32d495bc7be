//! The control API: HTTP + JSON on loopback, for the CLI subcommands, the
//! dashboard and scripts (the contract is docs/API.md).
//!
//! Access works as bitcoind's cookie does: at start the node writes its API
//! address and a fresh random cookie into `<data-dir>/control.json`, readable
//! by its owner only, and every request must present the cookie. Whoever can
//! read the data directory can drive the node; nobody else can, even on the
//! same machine. The API listens on loopback only, since it has no TLS.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use gossipnet_node::chat::ChatBody;
use gossipnet_node::crawl::Topology;
use gossipnet_node::{Node, NodeEvent, Received, Status};
use gossipnet_proto::envelope::Kind;
use gossipnet_proto::NodeId;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc, watch};

/// The file in the data directory that says where the API is.
pub const CONTROL_FILE: &str = "control.json";
/// Largest request body: a chat line or a shutdown command, with room.
const MAX_REQUEST_BYTES: usize = 256 * 1024;
/// Messages kept for `/api/messages` (the dashboard's feed on load).
const RECENT_MESSAGES: usize = 200;
/// A crawl younger than this is served again instead of crawling anew, so
/// several dashboards do not each crawl the network.
const CRAWL_CACHE: Duration = Duration::from_millis(1500);
/// Progress lines queued for a streaming crawl; more are dropped (the next
/// one says the same, newer).
const PROGRESS_QUEUE: usize = 16;

/// What `control.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ControlFile {
    /// The API's address.
    pub api: SocketAddr,
    /// The cookie every request must present.
    pub cookie: String,
    /// The node's process.
    pub pid: u32,
    /// The node's id.
    pub id: String,
    /// Its name.
    pub name: Option<String>,
    /// Where its node listens.
    pub listen: SocketAddr,
    /// "node" or "seed".
    pub role: String,
}

impl ControlFile {
    /// Reads `control.json` from a data directory.
    pub fn read(data_dir: &Path) -> Result<ControlFile> {
        let path = data_dir.join(CONTROL_FILE);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "no running node found: cannot read {} (is the node running with this data directory?)",
                path.display()
            )
        })?;
        serde_json::from_str(&text).with_context(|| format!("{} is not valid", path.display()))
    }
}

/// The running API: removes the control file when dropped.
#[derive(Debug)]
pub struct ApiHandle {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The cookie.
    pub cookie: String,
    control_path: Option<PathBuf>,
    stop: watch::Sender<bool>,
}

impl Drop for ApiHandle {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(path) = &self.control_path {
            let _ = std::fs::remove_file(path);
        }
    }
}

struct ApiState {
    node: Node,
    cookie: String,
    role: &'static str,
    recent: Mutex<VecDeque<Value>>,
    crawl: tokio::sync::Mutex<Option<(Instant, Arc<Topology>)>>,
}

/// Starts the API for `node` on `addr` (loopback only) and writes the
/// control file into `data_dir`.
pub async fn start(
    node: Node,
    addr: SocketAddr,
    data_dir: Option<&Path>,
    role: &'static str,
) -> Result<ApiHandle> {
    if !addr.ip().is_loopback() {
        bail!(
            "the control API has no TLS, so it listens on loopback only; \
             pick an address such as 127.0.0.1:{}",
            addr.port()
        );
    }
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| {
        format!("cannot listen for the control API on {addr}; pick another with --api")
    })?;
    let addr = listener.local_addr()?;
    let cookie = new_cookie();
    let state = Arc::new(ApiState {
        node: node.clone(),
        cookie: cookie.clone(),
        role,
        recent: Mutex::new(VecDeque::new()),
        crawl: tokio::sync::Mutex::new(None),
    });
    tokio::spawn(keep_recent(state.clone(), node.subscribe()));
    let app = router(state);
    let (stop, mut stopped) = watch::channel(false);
    tokio::spawn(async move {
        let shutdown = async move {
            let _ = stopped.wait_for(|s| *s).await;
        };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::warn!("control API stopped: {e}");
        }
    });
    let control_path = match data_dir {
        Some(dir) => {
            let control = ControlFile {
                api: addr,
                cookie: cookie.clone(),
                pid: std::process::id(),
                id: node.id().to_string(),
                name: node.name(),
                listen: node.local_addr(),
                role: role.to_string(),
            };
            let path = dir.join(CONTROL_FILE);
            write_private(&path, &serde_json::to_string_pretty(&control)?)?;
            Some(path)
        }
        None => None,
    };
    tracing::info!(%addr, "control API listening");
    Ok(ApiHandle {
        addr,
        cookie,
        control_path,
        stop,
    })
}

/// Writes a file only its owner can read, replacing any old one whole.
pub(crate) fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// 32 random bytes as hex.
fn new_cookie() -> String {
    let bytes: [u8; 32] = rand::random();
    data_encoding::HEXLOWER.encode(&bytes)
}

fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/", get(dashboard))
        .route("/api/status", get(status))
        .route("/api/peers", get(peers))
        .route("/api/messages", get(messages))
        .route("/api/send", post(send))
        .route("/api/dm", post(dm))
        .route("/api/leave", post(leave))
        .route("/api/events", get(events))
        .route("/api/network", get(network))
        .route("/api/shutdown", post(shutdown))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), auth))
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .with_state(state)
}

/// An error answer: a status and a JSON body saying what to do.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

fn bad_request(e: impl std::fmt::Display) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, e.to_string())
}

fn unavailable(e: impl std::fmt::Display) -> ApiError {
    ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
}

/// Lets a request through only with the cookie, as a bearer token or as the
/// `cookie` query parameter (for the browser's page and event stream).
async fn auth(State(state): State<Arc<ApiState>>, req: Request, next: Next) -> Response {
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let query = req.uri().query().and_then(|q| {
        q.split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == "cookie")
            .map(|(_, v)| v)
    });
    let ok = bearer
        .into_iter()
        .chain(query)
        .any(|given| same(given.as_bytes(), state.cookie.as_bytes()));
    if !ok {
        return ApiError(
            StatusCode::UNAUTHORIZED,
            "this API needs the cookie from the node's control.json, as \
             'Authorization: Bearer COOKIE' or '?cookie=COOKIE'"
                .into(),
        )
        .into_response();
    }
    next.run(req).await
}

/// Compares in time that does not depend on where the inputs differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn not_found() -> ApiError {
    ApiError(
        StatusCode::NOT_FOUND,
        "no such endpoint; see docs/API.md".into(),
    )
}

/// The dashboard: one page with its style and script inline.
async fn dashboard() -> Html<String> {
    const PAGE: &str = include_str!("dashboard/index.html");
    const STYLE: &str = include_str!("dashboard/style.css");
    const SCRIPT: &str = include_str!("dashboard/app.js");
    Html(
        PAGE.replace("/*GOSSIPNET_STYLE*/", STYLE)
            .replace("/*GOSSIPNET_SCRIPT*/", SCRIPT),
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
struct Limit {
    limit: Option<usize>,
}

async fn messages(State(state): State<Arc<ApiState>>, Query(q): Query<Limit>) -> Json<Value> {
    let limit = q.limit.unwrap_or(50).min(RECENT_MESSAGES);
    let recent = state.recent.lock().map(|r| r.clone()).unwrap_or_default();
    let skip = recent.len().saturating_sub(limit);
    Json(Value::Array(recent.into_iter().skip(skip).collect()))
}

#[derive(Debug, Deserialize)]
struct SendBody {
    text: String,
}

async fn send(
    State(state): State<Arc<ApiState>>,
    Json(body): Json<SendBody>,
) -> Result<Json<Value>, ApiError> {
    let text = body.text.trim_end();
    if text.is_empty() {
        return Err(bad_request("the text is empty"));
    }
    let id = state.node.broadcast_text(text).await.map_err(bad_request)?;
    Ok(Json(json!({ "id": id.to_string() })))
}

#[derive(Debug, Deserialize)]
struct DmBody {
    to: String,
    text: String,
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
        .map_err(bad_request)?;
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
struct ShutdownBody {
    command: String,
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
        .map_err(bad_request)?;
    Ok(Json(json!({ "id": id.to_string() })))
}

/// The live stream: delivered messages and neighbour changes.
async fn events(
    State(state): State<Arc<ApiState>>,
) -> Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>> {
    let rx = state.node.subscribe();
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(event) => {
                    if let Some((kind, data)) = event_json(&event) {
                        let event = Event::default().event(kind).data(data.to_string());
                        return Some((Ok(event), rx));
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
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
        NodeEvent::NeighborDown(p) => ("neighbor_down", json!({ "peer": p.to_string() })),
    })
}

fn message_json(m: &Received) -> Value {
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
        "kind": kind,
    })
}

/// Keeps the last messages for `/api/messages`.
async fn keep_recent(state: Arc<ApiState>, mut rx: broadcast::Receiver<NodeEvent>) {
    loop {
        let value = match rx.recv().await {
            Ok(NodeEvent::Message(m)) => message_json(&m),
            Ok(event @ NodeEvent::Direct(_)) => match event_json(&event) {
                Some((_, mut v)) => {
                    v["kind"] = json!("direct");
                    v
                }
                None => continue,
            },
            Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => return,
        };
        if let Ok(mut recent) = state.recent.lock() {
            if recent.len() == RECENT_MESSAGES {
                recent.pop_front();
            }
            recent.push_back(value);
        }
    }
}

#[derive(Debug, Deserialize)]
struct NetworkQuery {
    stream: Option<u8>,
}

/// A crawl of the network from this node; with `stream=1`, JSON lines of
/// progress and then the topology.
async fn network(State(state): State<Arc<ApiState>>, Query(q): Query<NetworkQuery>) -> Response {
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
    let mut cache = state.crawl.lock().await;
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

/// Prometheus text exposition of the node's counters and gauges.
async fn metrics(State(state): State<Arc<ApiState>>) -> Result<Response, ApiError> {
    let s = state.node.status().await.map_err(unavailable)?;
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, value: f64| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        let _ = writeln!(out, "{name} {value}");
    };
    metric("gossipnet_up", "gauge", "1 while the node runs.", 1.0);
    metric(
        "gossipnet_uptime_seconds",
        "gauge",
        "Seconds since the node started.",
        s.uptime_s as f64,
    );
    metric(
        "gossipnet_links",
        "gauge",
        "Open links to other nodes.",
        s.links as f64,
    );
    metric(
        "gossipnet_active_view_size",
        "gauge",
        "Neighbours in the active view (HyParView).",
        s.active.len() as f64,
    );
    metric(
        "gossipnet_passive_view_size",
        "gauge",
        "Peers in the passive view (HyParView).",
        s.passive.len() as f64,
    );
    metric(
        "gossipnet_seeds_reachable",
        "gauge",
        "Configured seeds with an open link.",
        s.seeds_reachable as f64,
    );
    metric(
        "gossipnet_messages_broadcast_total",
        "counter",
        "Messages this node broadcast.",
        s.broadcast as f64,
    );
    metric(
        "gossipnet_messages_delivered_total",
        "counter",
        "Broadcast messages delivered here, each once.",
        s.delivered as f64,
    );
    metric(
        "gossipnet_messages_forwarded_total",
        "counter",
        "Full copies of broadcast messages sent to neighbours.",
        s.forwarded as f64,
    );
    metric(
        "gossipnet_messages_duplicate_total",
        "counter",
        "Duplicate copies of broadcast messages received.",
        s.duplicates as f64,
    );
    metric(
        "gossipnet_link_messages_sent_total",
        "counter",
        "Protocol messages queued to links.",
        s.messages_sent as f64,
    );
    metric(
        "gossipnet_link_messages_received_total",
        "counter",
        "Protocol messages read from links.",
        s.messages_received as f64,
    );
    metric(
        "gossipnet_bytes_sent_total",
        "counter",
        "Bytes of protocol messages queued to links.",
        s.bytes_sent as f64,
    );
    metric(
        "gossipnet_bytes_received_total",
        "counter",
        "Bytes of protocol messages read from links.",
        s.bytes_received as f64,
    );
    metric(
        "gossipnet_handshake_failures_total",
        "counter",
        "Links that failed their handshake, either way.",
        s.handshake_failures as f64,
    );
    if let Some(e) = s.size_estimate {
        metric(
            "gossipnet_network_size_estimate",
            "gauge",
            "Gossip estimate of the number of nodes in the network.",
            e,
        );
    }
    if let Some(r) = s.registry_size {
        metric(
            "gossipnet_registry_size",
            "gauge",
            "Live nodes in this seed's registry.",
            r as f64,
        );
    }
    let _ = writeln!(out, "# HELP gossipnet_node_info The node's identity.");
    let _ = writeln!(out, "# TYPE gossipnet_node_info gauge");
    let _ = writeln!(
        out,
        "gossipnet_node_info{{id=\"{}\",name=\"{}\",role=\"{}\"}} 1",
        s.id,
        label(s.name.as_deref().unwrap_or("")),
        state.role
    );
    let mut response = out.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(response)
}

/// Escapes a Prometheus label value.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_compare_whole() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"abcd"));
        assert!(!same(b"", b"a"));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
