//! Wall-clock time for what leaves the node: envelope and record sequence
//! numbers and the age checks of admin commands. Protocol timing uses
//! monotonic `Instant`s instead, passed into `gossipnet_proto`.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch; 0 on a clock set before 1970.
pub(crate) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
