//! The control API: HTTP + JSON on loopback, for the CLI's subcommands, the
//! dashboard and scripts (the contract is docs/API.md).
//!
//! Access works as bitcoind's cookie does: at start the node writes its API
//! address and a fresh random cookie into `<data-dir>/control.json`, readable
//! by its owner only, and every request must present the cookie. Whoever can
//! read the data directory can drive the node; nobody else can, even on the
//! same machine. The API listens on loopback only, since it has no TLS.
//!
//! The server is a client of [`Node`] like any embedding program: it adds
//! no state to the node beyond a ring of recent messages. Its parts:
//! `auth` (the cookie), `routes` (the router and the commands),
//! `events` (the event stream and the recent messages), `network` (the
//! crawl), `metrics` (Prometheus text) and `dashboard` (the page).

mod auth;
mod dashboard;
mod events;
mod metrics;
mod network;
mod routes;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::Node;

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
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The control file could not be written.
    #[error("cannot write {}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The control file could not be read (no node runs with this data
    /// directory, say).
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The control file is not one a node wrote.
    #[error("{} is not valid", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Why.
        source: serde_json::Error,
    },
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
    /// "node" or "seed".
    pub role: String,
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

/// The running API: stops it and removes the control file when dropped.
#[derive(Debug)]
pub struct ControlHandle {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The cookie.
    pub cookie: String,
    control_path: Option<PathBuf>,
    stop: watch::Sender<bool>,
}

impl Drop for ControlHandle {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(path) = &self.control_path {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Starts the API for `node` on `addr` (loopback only) and writes the
/// control file into `data_dir`.
pub async fn serve(
    node: Node,
    addr: SocketAddr,
    data_dir: Option<&Path>,
    role: &'static str,
) -> Result<ControlHandle, ControlError> {
    if !addr.ip().is_loopback() {
        return Err(ControlError::NotLoopback(addr));
    }
    let bind_error = |source| ControlError::Bind { addr, source };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(bind_error)?;
    let addr = listener.local_addr().map_err(bind_error)?;
    let cookie = auth::new_cookie();
    let state = Arc::new(routes::ApiState::new(node.clone(), cookie.clone(), role));
    tokio::spawn(events::keep_recent(state.clone(), node.subscribe()));
    let app = routes::router(state);
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
            let written = serde_json::to_string_pretty(&control)
                .map_err(std::io::Error::from)
                .and_then(|text| crate::fs::write_private(&path, &text));
            if let Err(source) = written {
                return Err(ControlError::Write { path, source });
            }
            Some(path)
        }
        None => None,
    };
    tracing::info!(%addr, "control API listening");
    Ok(ControlHandle {
        addr,
        cookie,
        control_path,
        stop,
    })
}
