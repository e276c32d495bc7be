//! Wall-clock time for what leaves the node: envelope and record sequence
//! numbers, the address book's times and the age checks of admin commands.
//! Protocol timing uses monotonic `Instant`s instead, passed into
//! `gossipnet_proto`. One function, so every part reads the clock alike.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch by the wall clock; 0 on a clock set
/// before 1970.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
