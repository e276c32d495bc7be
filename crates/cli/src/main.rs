//! The `gossipnet` binary: parses the command line and hands each
//! subcommand to its module under `cmd/`.

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

mod cmd;
mod graph;
mod logging;
mod signals;
mod util;

/// gossipnet: a peer-to-peer gossip network.
#[derive(Debug, Parser)]
#[command(
    name = "gossipnet",
    version,
    about = "A peer-to-peer gossip network: run a node, chat, watch and operate the network",
    long_about = None
)]
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
    /// Start a local network of real node processes in one command.
    Testnet(cmd::testnet::TestnetArgs),
    /// Show a running node's status: id, addresses, views, seeds, counters.
    Status(cmd::ctl::Target),
    /// List a running node's neighbours.
    Peers(cmd::ctl::Target),
    /// Broadcast a line from a running node.
    Send(cmd::ctl::SendArgs),
    /// Send a direct message from a running node.
    Dm(cmd::ctl::DmArgs),
    /// Make a running node leave the network gracefully.
    Leave(cmd::ctl::Target),
    /// The messages of the retention window a node keeps, oldest first:
    /// `gossipnet history [--since TIME] [--from ID] [--limit N] [--json]`.
    History(cmd::ctl::HistoryArgs),
    /// The whole network: status, size, graph, init, shutdown.
    #[command(subcommand)]
    Network(cmd::ctl::NetworkCommand),
    /// Run the protocol in the deterministic simulator (no network needed).
    #[command(subcommand)]
    Sim(cmd::sim::SimCommand),
    /// Measure broadcast: N nodes in this process over real TCP, figures as
    /// JSON (docs/PERFORMANCE.md); `gossipnet bench link` measures one link.
    Bench(cmd::bench::BenchArgs),
    /// Print shell completions: `gossipnet completions bash > FILE`.
    Completions(cmd::shell::CompletionsArgs),
    /// Print the man page (roff): `gossipnet man | man -l -`.
    Man(cmd::shell::ManArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            use std::io::Write as _;
            let _ = writeln!(std::io::stderr(), "error: {e:#}");
            ExitCode::from(util::exit_code(&e))
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Node(a) => cmd::node::run_node(a),
        Command::Chat(a) => cmd::node::run_chat(a),
        Command::Seed(a) => cmd::node::run_seed(a),
        Command::Testnet(a) => cmd::testnet::run(a),
        Command::Status(t) => cmd::ctl::status(t),
        Command::Peers(t) => cmd::ctl::peers(t),
        Command::Send(a) => cmd::ctl::send(a),
        Command::Dm(a) => cmd::ctl::dm(a),
        Command::Leave(t) => cmd::ctl::leave(t),
        Command::History(a) => cmd::ctl::history(a),
        Command::Network(c) => cmd::ctl::network(c),
        Command::Sim(c) => cmd::sim::run(c),
        Command::Bench(a) => cmd::bench::run(a),
        Command::Completions(a) => cmd::shell::completions::<Cli>(a),
        Command::Man(a) => cmd::shell::man::<Cli>(a),
    }
}
