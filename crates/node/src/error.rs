//! The errors of the node runtime: what [`Node`](crate::Node) and
//! [`NodeBuilder`](crate::NodeBuilder) return when they cannot do what was
//! asked.

use std::net::SocketAddr;

#[cfg(feature = "control-api")]
use crate::control;

/// Errors of the node runtime.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address the node was to listen on.
        addr: SocketAddr,
        /// What the OS said (the port is in use, say).
        source: std::io::Error,
    },
    /// The node's own record is invalid (a bad name or address).
    #[error("invalid node record: {0}")]
    Record(String),
    /// The data directory could not be used.
    #[error("data directory: {0}")]
    Store(String),
    /// A message could not be built (too large, say).
    #[error("cannot send message: {0}")]
    Message(String),
    /// A seed keeps the registry and does not broadcast.
    #[error("a seed node does not broadcast")]
    SeedCannotBroadcast,
    /// The node has stopped.
    #[error("the node has stopped")]
    Stopped,
    /// The control API asked for with [`NodeBuilder::control_api`](crate::NodeBuilder::control_api) could
    /// not start.
    #[cfg(feature = "control-api")]
    #[error(transparent)]
    Control(#[from] control::ControlError),
}
