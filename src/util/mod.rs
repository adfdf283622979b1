//! Small helpers shared by several layers (layer 0: uses nothing else of the crate).
//!
//! * [`stats`]: percentiles of latency samples.
//! * [`threads`]: the one bound on thread counts ([`threads::MAX_THREADS`]) and its check.

pub mod stats;
pub mod threads;
