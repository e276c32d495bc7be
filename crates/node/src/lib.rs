//! gossipnet-node: the tokio runtime around the sans-IO protocol core.
//!
//! It owns every socket, timer and file of a node. So far it holds the link
//! layer: [`transport`] turns a TCP stream into an authenticated, encrypted
//! link to a known [`gossipnet_proto::NodeId`].

pub mod transport;
