//! gossipnet-node: the tokio runtime around the sans-IO protocol core, and
//! the API a Rust program embeds a node with.
//!
//! The public API:
//!
//! - [`Node`], started from a [`NodeConfig`] or a [`NodeBuilder`]: broadcast,
//!   direct messages, [`Status`], and the [`NodeEvent`]s a subscriber hears;
//! - [`NodeConfig`] and [`Limits`]: what a node is told at start, and what
//!   it lets peers make it hold, with the defaults [`DEFAULT_NETWORK_ID`],
//!   [`DEFAULT_PORT`] and [`DEFAULT_PORT_RANGE`];
//! - [`DataDir`], [`data_root`] and [`default_data_dir`]: where a node keeps
//!   its identity key and address book across runs;
//! - [`chat`]: the body of a chat message; [`crawl`]: the network as a
//!   crawl sees it; [`admin`]: signing a network-wide shutdown; [`time`]:
//!   the wall clock the node stamps messages with; `control` (feature
//!   `control-api`, on by default): the control API and dashboard, HTTP +
//!   JSON on loopback.
//!
//! Inside, private: `transport` (TCP links with a Noise handshake that
//! proves each peer's ed25519 identity, encrypted and framed), `store` (the
//! SQLite address book and message history, run on a thread of its own),
//! `discovery` (mDNS and local port probing) and the actor, one task per
//! node that drives [`gossipnet_proto::State`] and turns its output into
//! I/O.
//!
//! ```no_run
//! # async fn demo() -> Result<(), gossipnet_node::NodeError> {
//! use gossipnet_node::{Node, NodeConfig, NodeEvent};
//! use gossipnet_proto::SecretKey;
//!
//! let mut config = NodeConfig::new(SecretKey::generate(&mut rand::rngs::OsRng));
//! config.peers.push("127.0.0.1:7465".into());
//! let node = Node::spawn(config).await?;
//! let mut events = node.subscribe();
//! node.broadcast_text("hello").await?;
//! while let Ok(event) = events.recv().await {
//!     if let NodeEvent::Message(m) = event {
//!         println!("{} says {:?}", m.origin.short(), m.body);
//!     }
//! }
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod actor;
pub mod admin;
mod builder;
pub mod chat;
mod config;
#[cfg(feature = "control-api")]
pub mod control;
pub mod crawl;
mod discovery;
mod error;
mod event;
mod history;
mod node;
mod status;
mod store;
pub mod time;
mod transport;

pub use builder::NodeBuilder;
pub use config::{Limits, NodeConfig, DEFAULT_NETWORK_ID, DEFAULT_PORT, DEFAULT_PORT_RANGE};
pub use error::NodeError;
pub use event::{DirectMessage, Events, EventsError, NodeEvent, Received};
pub use node::Node;
pub use status::{Counters, Identity, PeerStatus, Role, Status, Views};
pub use store::{data_root, default_data_dir, write_private, DataDir, StoreError};
