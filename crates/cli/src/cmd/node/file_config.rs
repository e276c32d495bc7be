//! The network config file that `--config` names (TOML): its layout and
//! its parsing. Unknown keys are refused, so a typo is an error rather than
//! a setting silently ignored. What the values mean, and the checks on them,
//! are the parent module's. This file stands alone (serde and toml only), so
//! the config fuzz target in `fuzz/` parses with this very code.

use std::path::PathBuf;

use serde::Deserialize;

/// Parses the text of a config file.
pub(super) fn parse(text: &str) -> Result<FileConfig, toml::de::Error> {
    toml::from_str(text)
}

/// The network config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileConfig {
    pub(super) network_id: Option<String>,
    pub(super) psk_file: Option<PathBuf>,
    #[serde(default)]
    pub(super) admin_keys: Vec<String>,
    #[serde(default)]
    pub(super) seeds: Vec<String>,
    #[serde(default)]
    pub(super) peers: Vec<String>,
    #[serde(default)]
    pub(super) limits: FileLimits,
    #[serde(default)]
    pub(super) protocol: FileProtocol,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileLimits {
    pub(super) max_inbound: Option<usize>,
    pub(super) max_inbound_per_ip: Option<usize>,
    pub(super) handshake_timeout_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileProtocol {
    pub(super) active_view: Option<usize>,
    pub(super) passive_view: Option<usize>,
    pub(super) ping_after_ms: Option<u64>,
    pub(super) dead_after_ms: Option<u64>,
    pub(super) shuffle_interval_ms: Option<u64>,
    pub(super) size_tick_ms: Option<u64>,
    pub(super) history_messages: Option<usize>,
    pub(super) history_mib: Option<usize>,
}
