//! Small building blocks shared by several layers, with no dependency on the rest of the crate.

pub mod backoff;
pub mod queue;
