//! Signed node records (being written).
