//! Small helpers the subcommands share: the error for a user's mistake,
//! key files, the open-files limit, and how a message's time is shown.

use std::fmt;
use std::path::Path;

use anyhow::{anyhow, Context, Result};

/// A mistake in what the user asked for (an argument, a config file, a port
/// taken): the process exits 2, as for the errors clap finds itself, so a
/// script can tell "you asked wrongly" from "it failed".
#[derive(Debug)]
pub(crate) struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Returns early with a [`UsageError`], as `bail!` does with any error.
macro_rules! usage_bail {
    ($($arg:tt)*) => {
        return Err(anyhow::Error::new($crate::util::UsageError(format!($($arg)*))))
    };
}
pub(crate) use usage_bail;

/// The exit code for `error`: 2 for a user's mistake anywhere in its chain,
/// 1 for anything else.
pub(crate) fn exit_code(error: &anyhow::Error) -> u8 {
    if error.chain().any(|e| e.is::<UsageError>()) {
        2
    } else {
        1
    }
}

/// Reads a file of 32 bytes as 64 hex characters (a key file), saying
/// which `what` it was when it is not one.
pub(crate) fn read_hex32(path: &Path, what: &str) -> Result<[u8; 32]> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the {what} {}", path.display()))?;
    data_encoding::HEXLOWER_PERMISSIVE
        .decode(text.trim().as_bytes())
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| {
            anyhow!(
                "the {what} {} must hold 64 hex characters (32 bytes)",
                path.display()
            )
        })
}

/// Raises the soft limit on open files to the hard one: a seed holds a link
/// per node of the network, and the usual soft limit (1024) is below what it
/// is allowed to take.
pub(crate) fn raise_fd_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                Ok(()) => tracing::debug!("open files limit raised from {soft} to {hard}"),
                Err(e) => tracing::debug!("cannot raise the open files limit: {e}"),
            }
        }
    }
}

/// Local wall-clock `hh:mm:ss` of a Unix-milliseconds time.
pub(crate) fn clock(time_ms: u64) -> String {
    chrono::DateTime::from_timestamp_millis(time_ms as i64)
        .map(|t| {
            t.with_timezone(&chrono::Local)
                .format("%H:%M:%S")
                .to_string()
        })
        .unwrap_or_else(|| "--:--:--".into())
}
