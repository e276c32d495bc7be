//! gossipnet-proto: the sans-IO protocol core of gossipnet.
//!
//! Nothing here touches a socket, a clock or a global random number
//! generator: every state machine takes an input together with `now` and
//! returns outputs, and randomness comes from an RNG the caller owns (and may
//! seed). The same code therefore runs in the deterministic simulator
//! (`gossipnet-sim`) at 100,000 nodes and in the tokio node on real links.
//!
//! Contents:
//! - [`identity`]: ed25519 keys and the [`NodeId`] that names a node;
//! - [`record`]: signed node records (addresses, roles, name);
//! - [`envelope`]: signed broadcast envelopes and their BLAKE3 [`MessageId`];
//! - [`direct`]: direct messages sealed to one recipient's key;
//! - [`wire`]: every message on a link, its encoding and bounds;
//! - [`hyparview`]: membership (active and passive views, joins, shuffles,
//!   repair);
//! - [`plumtree`]: broadcast along a lazily repaired spanning tree;
//! - [`history`]: the messages of the retention window, by origin and
//!   sequence, and the summaries of them neighbours compare;
//! - [`sync`]: anti-entropy, catching up what a neighbour has and we lack;
//! - [`query`]: the status query a crawl of the network asks of each node;
//! - [`size`]: the gossip estimate of the network size;
//! - [`state`]: all of the above composed into one node, the type a runtime
//!   drives;
//! - [`seed`]: the registry a seed node keeps of live nodes, and the client
//!   every other node runs against it;
//! - [`backoff`]: the retry schedule the seed client and the runtime share.

#![warn(missing_docs)]

pub mod backoff;
pub mod direct;
pub mod envelope;
pub mod history;
pub mod hyparview;
pub mod identity;
pub mod plumtree;
pub mod query;
pub mod record;
pub mod seed;
pub mod size;
pub mod state;
pub mod sync;
pub mod wire;

pub use envelope::MessageId;
pub use identity::{NodeId, SecretKey, Signature};
pub use state::{Command, Config, Event, InEvent, OutEvent, Route, RuntimeMessage, State, Timer};
