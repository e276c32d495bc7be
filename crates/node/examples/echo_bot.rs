//! A bot that answers every chat message with an echo: gossipnet embedded
//! in a Rust program in a few lines.
//!
//! Run a node (`gossipnet node`), then, beside it:
//!
//! ```sh
//! cargo run -p gossipnet-node --example echo_bot -- 127.0.0.1:7465
//! ```
//!
//! Every line typed at any node comes back as `echo: <line>` from the bot.
//! The bot also serves the control API and its dashboard (one builder
//! call); it prints the dashboard's address, cookie included.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use gossipnet_node::chat::ChatBody;
use gossipnet_node::{Events, EventsError, Node, NodeBuilder, NodeError, NodeEvent};

/// What the bot puts before what it repeats; it never answers a line that
/// starts with it, so two bots do not echo each other forever.
pub const PREFIX: &str = "echo: ";

/// Where the bot's control API listens: loopback (it has no TLS), on a port
/// the system picks, so that several bots can run on one machine.
pub const API_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0);

/// The bot's node: its name, and the control API with the dashboard.
pub fn bot() -> NodeBuilder {
    Node::builder().name("echo-bot").control_api(API_ADDR)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let peer = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7465".to_string());
    let node = bot().peer(peer).spawn().await?;
    eprintln!("echo bot {} listening on {}", node.id(), node.local_addr());
    if let Some(api) = node.control_api() {
        eprintln!("dashboard: {}", api.dashboard_url());
    }
    tokio::select! {
        result = answer(&node, node.subscribe()) => result?,
        _ = tokio::signal::ctrl_c() => {}
    }
    node.leave().await?;
    Ok(())
}

/// Answers each chat message heard on `events` (the node's subscription,
/// taken before anyone can send to it, so no message slips by) with an
/// echo, until the node stops.
pub async fn answer(node: &Node, mut events: Events) -> Result<(), NodeError> {
    loop {
        let event = match events.recv().await {
            Ok(event) => event,
            // Fell behind a burst: skip what was missed, keep answering.
            Err(EventsError::Lagged(_)) => continue,
            Err(EventsError::Closed) => return Ok(()),
        };
        // Our own broadcasts come on the stream too; never answer them.
        let NodeEvent::Message(message) = event else {
            continue;
        };
        if message.own {
            continue;
        }
        let Some(body) = ChatBody::decode(&message.body) else {
            continue;
        };
        if !body.text.starts_with(PREFIX) {
            node.broadcast_text(&format!("{PREFIX}{}", body.text))
                .await?;
        }
    }
}
