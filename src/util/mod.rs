//! Small building blocks shared by several layers (layer 0: uses nothing else of the crate).
//!
//! * [`backoff`]: the jittered exponential reconnect back-off (MQTT, live sources).
//! * [`queue`]: the bounded drop-oldest queue and the pipeline's channels.
//! * [`stats`]: percentiles of latency samples.
//! * [`threads`]: the one bound on thread counts ([`threads::MAX_THREADS`]) and its check.

pub mod backoff;
pub mod queue;
pub mod stats;
pub mod threads;
