//! One module per subcommand.

pub mod bench;
pub mod bench_link;
pub mod chat;
pub mod ctl;
pub mod node;
pub mod shell;
pub mod sim;
pub mod testnet;
