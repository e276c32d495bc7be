//! One module per subcommand.

pub mod chat;
pub mod node;
pub mod sim;
