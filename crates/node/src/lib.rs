//! gossipnet-node: the tokio runtime around the sans-IO protocol core, and
//! the API a Rust program embeds a node with.
//!
//! The public API:
//!
//! - [`Node`], configured and started by a [`NodeBuilder`]: broadcast,
//!   direct messages, [`Status`], and the [`NodeEvent`]s a subscriber hears;
//! - [`Limits`]: what a node lets peers make it hold, and the defaults
//!   [`DEFAULT_NETWORK_ID`],
//!   [`DEFAULT_PORT`] and [`DEFAULT_PORT_RANGE`];
//! - [`DataDir`], [`data_root`] and [`default_data_dir`]: where a node keeps
//!   its identity key and address book across runs;
//! - [`chat`]: the body of a chat message; [`crawl`]: the network as a
//!   crawl sees it; [`admin`]: signing a network-wide shutdown; [`time`]:
//!   the wall clock the node stamps messages with; [`linkbench`]: one
//!   link's throughput on loopback beside plain TCP's; `control` (feature
//!   `control-api`, on by default): the control API and dashboard, HTTP +
//!   JSON on loopback; `testing` (feature `test-utils`, for tests only): a
//!   hostile peer that speaks the real handshake and then sends whatever a
//!   test asks.
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
//! use gossipnet_node::{Node, NodeEvent};
//!
//! let node = Node::builder().peer("127.0.0.1:7465").spawn().await?;
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
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod history;
pub mod linkbench;
mod node;
mod status;
mod store;
#[cfg(feature = "test-utils")]
pub mod testing;
pub mod time;
mod transport;

pub use builder::NodeBuilder;
pub(crate) use config::NodeConfig;
pub use config::{Limits, DEFAULT_NETWORK_ID, DEFAULT_PORT, DEFAULT_PORT_RANGE};
pub use error::NodeError;
pub use event::{DirectMessage, DownReason, Events, EventsError, NodeEvent, Received};
pub use history::{read_history, HistoryQuery, MAX_HISTORY_QUERY};
pub use node::Node;
pub use status::{Counters, Direction, Identity, PeerStatus, PerClass, Role, Status, Views};
pub use store::{data_root, default_data_dir, write_private, DataDir, StoreError};
