//! The control API: HTTP + JSON on loopback, for the CLI's subcommands, the
//! dashboard and scripts (the contract is docs/API.md).
//!
//! Access works as bitcoind's cookie does: at start the node writes its API
//! address and a fresh random cookie into `<data-dir>/control.json`, readable
//! by its owner only, and every request must present the cookie. Whoever can
//! read the data directory can drive the node; nobody else can, even on the
//! same machine. The API listens on loopback only, since it has no TLS.
//!
//! One builder call serves it with a node, from start until the node stops:
//!
//! ```no_run
//! # async fn demo() -> Result<(), gossipnet_node::NodeError> {
//! let node = gossipnet_node::Node::builder()
//!     .control_api("127.0.0.1:0".parse().unwrap())
//!     .spawn()
//!     .await?;
//! if let Some(api) = node.control_api() {
//!     println!("dashboard: {}", api.dashboard_url());
//! }
//! # Ok(()) }
//! ```
//!
//! [`serve`] does the same for a node already running, and returns a
//! [`ControlHandle`] that stops the server when dropped.
//!
//! The server is a client of [`Node`] like any embedding program: it adds
//! no state to the node beyond a ring of recent messages. Its parts:
//! `auth` (the cookie), `routes` (the router and the commands),
//! `events` (the event stream and the recent messages), `network` (the
//! crawl), `metrics` (Prometheus text) and `dashboard` (the page).

mod auth;
mod dashboard;
mod events;
pub use events::message_json;
mod metrics;
mod network;
mod routes;
#[cfg(feature = "fuzzing")]
pub(crate) use routes::{DmBody, SendBody, ShutdownBody};

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::{Node, NodeConfig, NodeError, Role};

/// The file in the data directory that says where the API is.
pub const CONTROL_FILE: &str = "control.json";
/// Largest request body: a chat line or a shutdown command, with room.
const MAX_REQUEST_BYTES: usize = 256 * 1024;
/// Messages kept for `/api/messages` (the dashboard's feed on load).
const RECENT_MESSAGES: usize = 200;
/// Messages `/api/messages` returns when the request names no limit: a
/// screenful for the dashboard's feed.
const DEFAULT_MESSAGES: usize = 50;
/// A crawl younger than this is served again instead of crawling anew, so
/// several dashboards do not each crawl the network.
const CRAWL_CACHE: Duration = Duration::from_millis(1500);
/// Progress lines queued for a streaming crawl; more are dropped (the next
/// one says the same, newer).
const PROGRESS_QUEUE: usize = 16;

/// Errors of the control API.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The address is not a loopback one; the API has no TLS.
    #[error(
        "the control API has no TLS, so it listens on loopback only; \
         pick an address such as 127.0.0.1:{}", .0.port()
    )]
    NotLoopback(SocketAddr),
    /// The address could not be bound.
    #[error("cannot listen for the control API on {addr}")]
    Bind {
        /// The address the API was to listen on.
        addr: SocketAddr,
        /// What the OS said (the port is in use, say).
        source: std::io::Error,
    },
    /// The control file could not be written.
    #[error("cannot write {}", path.display())]
    Write {
        /// The control file, in the node's data directory.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The control file could not be read (no node runs with this data
    /// directory, say).
    #[error("cannot read {}", path.display())]
    Read {
        /// The control file looked for.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The control file is not one a node wrote.
    #[error("{} is not valid", path.display())]
    Invalid {
        /// The control file read.
        path: PathBuf,
        /// Where and how its JSON does not parse as a control file.
        source: serde_json::Error,
    },
    /// The node stopped before its control API started.
    #[error("the node has stopped")]
    Stopped,
}

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
    /// In the overlay, or keeping the registry (`"node"` or `"seed"`).
    pub role: Role,
}

impl ControlFile {
    /// Reads `control.json` from a data directory.
    pub fn read(data_dir: &Path) -> Result<ControlFile, ControlError> {
        let path = data_dir.join(CONTROL_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(source) => return Err(ControlError::Read { path, source }),
        };
        serde_json::from_str(&text).map_err(|source| ControlError::Invalid { path, source })
    }
}

/// How to serve the control API: where, and where to write the control
/// file.
#[derive(Debug, Clone)]
pub struct ControlOptions {
    addr: SocketAddr,
    data_dir: Option<PathBuf>,
}

impl ControlOptions {
    /// Listen on `addr`, a loopback address (port 0 picks a free port);
    /// write no control file.
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            data_dir: None,
        }
    }

    /// Write [`CONTROL_FILE`] into this directory (the node's data
    /// directory), so that local clients find the API and its cookie.
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }
}

/// Where a running control API listens and the cookie it asks for.
#[derive(Debug, Clone)]
pub struct ControlApiInfo {
    addr: SocketAddr,
    cookie: String,
    control_file: Option<PathBuf>,
}

impl ControlApiInfo {
    /// The address the API listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The cookie every request must present.
    pub fn cookie(&self) -> &str {
        &self.cookie
    }

    /// The control file written for it, if there is a data directory.
    pub fn control_file(&self) -> Option<&Path> {
        self.control_file.as_deref()
    }

    /// The dashboard's address, cookie included, to open in a browser.
    pub fn dashboard_url(&self) -> String {
        format!("http://{}/?cookie={}", self.addr, self.cookie)
    }
}

/// A control API started by [`serve`]. It stops, and its control file is
/// removed, when the handle is dropped or when the node stops, whichever
/// comes first.
#[derive(Debug)]
pub struct ControlHandle {
    info: Arc<ControlApiInfo>,
    /// Asks the server to stop; `None` once the handle is detached.
    stop: Option<watch::Sender<bool>>,
}

impl ControlHandle {
    /// Where the API listens and its cookie.
    pub fn info(&self) -> &ControlApiInfo {
        &self.info
    }

    /// Lets the server run until its node stops, without a handle.
    fn detach(mut self) -> Arc<ControlApiInfo> {
        // Dropping the sender unsent is no stop (see `run`).
        self.stop = None;
        self.info.clone()
    }
}

impl Drop for ControlHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
            // Now rather than in the server task: the process may be about
            // to exit, and a stale file would look like a running node.
            if let Some(path) = &self.info.control_file {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

/// Starts the control API for `node`, and writes the control file if
/// `options` name a data directory. The role reported ("node" or "seed")
/// is the node's own.
pub async fn serve(node: Node, options: ControlOptions) -> Result<ControlHandle, ControlError> {
    let (listener, addr) = bind(options.addr).await?;
    start(node, listener, addr, options.data_dir).await
}

/// Spawns a node that serves its control API on `addr`: what
/// [`NodeBuilder::control_api`](crate::NodeBuilder::control_api) asks for.
/// The address is bound first, so that a taken port starts no node.
pub(crate) async fn spawn_node(
    config: NodeConfig,
    node_listener: Option<std::net::TcpListener>,
    addr: SocketAddr,
) -> Result<Node, NodeError> {
    let (listener, addr) = bind(addr).await?;
    let data_dir = config.data_dir.clone();
    let mut node = Node::spawn(config, node_listener).await?;
    match start(node.clone(), listener, addr, data_dir).await {
        Ok(handle) => {
            node.control = Some(handle.detach());
            Ok(node)
        }
        Err(e) => {
            let _ = node.leave().await;
            Err(e.into())
        }
    }
}

/// Binds the API's address, which must be a loopback one; returns the
/// listener and the address it got (with the port picked, if 0 was asked).
async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), ControlError> {
    if !addr.ip().is_loopback() {
        return Err(ControlError::NotLoopback(addr));
    }
    let bind_error = |source| ControlError::Bind { addr, source };
    let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
    let local = listener.local_addr().map_err(bind_error)?;
    Ok((listener, local))
}

/// Serves on a bound listener; the control file is written once the
/// server runs, so that a client that finds it finds the API answering.
async fn start(
    node: Node,
    listener: TcpListener,
    addr: SocketAddr,
    data_dir: Option<PathBuf>,
) -> Result<ControlHandle, ControlError> {
    let status = node.status().await.map_err(|_| ControlError::Stopped)?;
    let info = Arc::new(ControlApiInfo {
        addr,
        cookie: auth::new_cookie(),
        control_file: data_dir.map(|dir| dir.join(CONTROL_FILE)),
    });
    let (closing_tx, closing) = watch::channel(false);
    let state = Arc::new(routes::ApiState::new(
        node.clone(),
        info.cookie.clone(),
        closing,
    ));
    tokio::spawn(events::keep_recent(state.clone(), node.subscribe()));
    let (stop, stop_rx) = watch::channel(false);
    tokio::spawn(run(
        listener,
        routes::router(state),
        node.clone(),
        stop_rx,
        closing_tx,
        info.control_file.clone(),
    ));
    if let Some(path) = &info.control_file {
        let control = ControlFile {
            api: addr,
            cookie: info.cookie.clone(),
            pid: std::process::id(),
            id: node.id().to_string(),
            name: node.name(),
            listen: node.local_addr(),
            role: status.identity.role,
        };
        let written = serde_json::to_string_pretty(&control)
            .map_err(std::io::Error::from)
            .and_then(|text| crate::store::write_private(path, text.as_bytes()));
        if let Err(source) = written {
            let _ = stop.send(true);
            let path = path.clone();
            return Err(ControlError::Write { path, source });
        }
    }
    tracing::info!(%addr, "control API listening");
    Ok(ControlHandle {
        info,
        stop: Some(stop),
    })
}

/// The server task: serves until asked to stop or until the node stops,
/// then ends the streams that would hold a graceful shutdown open (the
/// event stream never ends by itself), removes the control file and lets
/// the requests in flight finish.
async fn run(
    listener: TcpListener,
    app: axum::Router,
    node: Node,
    mut stop: watch::Receiver<bool>,
    closing: watch::Sender<bool>,
    control_file: Option<PathBuf>,
) {
    let shutdown = async move {
        tokio::select! {
            _ = node.stopped() => {}
            // A sender dropped without a word (a detached handle) is no
            // stop: the branch is disabled and the node's end is awaited.
            Ok(_) = stop.wait_for(|s| *s) => {}
        }
        let _ = closing.send(true);
        if let Some(path) = control_file {
            let _ = std::fs::remove_file(path);
        }
    };
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
    {
        tracing::warn!("control API stopped: {e}");
    }
}
