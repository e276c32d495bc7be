//! The node's network config file (`--config`, TOML), parsed by the very
//! code `gossipnet node` parses it with, and the admin keys in it read as
//! node ids as the node reads them.

#![no_main]

use gossipnet_proto::NodeId;
use libfuzzer_sys::fuzz_target;

#[path = "../../crates/cli/src/cmd/node/file_config.rs"]
#[allow(dead_code)]
mod file_config;

fuzz_target!(|data: &[u8]| {
    // The node reads the file as UTF-8 text first.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(config) = file_config::parse(text) else {
        return;
    };
    for key in &config.admin_keys {
        if let Ok(id) = key.parse::<NodeId>() {
            assert_eq!(id.to_string().parse::<NodeId>(), Ok(id));
        }
    }
    let _ = format!("{config:?}");
});
