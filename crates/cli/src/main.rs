//! The `gossipnet` binary: parses the command line and hands each
//! subcommand to its module under `cmd/`.

use anyhow::Result;
use clap::{Parser, Subcommand};

mod cmd;

/// gossipnet: a peer-to-peer gossip network.
#[derive(Debug, Parser)]
#[command(name = "gossipnet", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a node: `gossipnet node [PORT] [HOST:PORT ...]`. Lines on standard
    /// input are broadcast; delivered messages are printed.
    Node(cmd::node::NodeArgs),
    /// Chat on a terminal: a node (same arguments) that asks for a name when
    /// none is given; typed lines are broadcast, slash commands (/help) run.
    Chat(cmd::node::NodeArgs),
    /// Run a seed node, which keeps the list of live nodes.
    Seed(cmd::node::SeedArgs),
    /// Run the protocol in the deterministic simulator (no network needed).
    #[command(subcommand)]
    Sim(cmd::sim::SimCommand),
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Node(a) => cmd::node::run_node(a),
        Command::Chat(a) => cmd::chat::run_chat(a),
        Command::Seed(a) => cmd::node::run_seed(a),
        Command::Sim(c) => cmd::sim::run(c),
    }
}
