//! The errors of the node runtime: what [`Node`](crate::Node) and
//! [`NodeBuilder`](crate::NodeBuilder) return when they cannot do what was
//! asked.

use std::net::SocketAddr;

use gossipnet_proto::direct::DirectError;
use gossipnet_proto::envelope::EnvelopeError;
use gossipnet_proto::record::RecordError;

use crate::{admin, StoreError};

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
    #[error("invalid node record")]
    Record(#[from] RecordError),
    /// The data directory could not be used.
    #[error("cannot use the data directory")]
    Store(#[from] StoreError),
    /// A message could not be signed (too large, say).
    #[error("cannot sign the message")]
    Envelope(#[from] EnvelopeError),
    /// A direct message could not be sealed (too large, say).
    #[error("cannot seal the direct message")]
    Direct(#[from] DirectError),
    /// A direct message was addressed to this node itself.
    #[error("a direct message to this node's own id")]
    DirectToSelf,
    /// An admin command that does not verify is not broadcast.
    #[error("refusing the shutdown command")]
    AdminRefused(#[from] admin::Refusal),
    /// A message body could not be encoded.
    #[error("cannot encode the message")]
    Encode(#[from] postcard::Error),
    /// The system's source of randomness failed.
    #[error("no randomness")]
    Random(#[from] rand::Error),
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
