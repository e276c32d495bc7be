//! The seed registry (being written).
