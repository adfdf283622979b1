//! c3n-edge: runtime for the C3N audio-visual segmentation network (finds the *sounding object*
//! in a camera view) from an exported ONNX file.
//!
//! Layout (see `shared/reference/architecture-sketch.md`):
//! [`engine`] (model contract + backends), [`frontend`] (log-mel, frame normalisation),
//! [`audio`] (WAV reading, resampling), [`dataset`] (AVSBench S4/MS3 reader),
//! [`metrics`] (AVSBench mIoU / F-score), [`eval`] (dataset evaluation), [`config`],
//! [`categories`] (the user-facing label vocabulary).

pub mod audio;
pub mod bench;
pub mod categories;
pub mod config;
pub mod control;
pub mod dataset;
pub mod engine;
pub mod eval;
pub mod events;
pub mod frontend;
pub mod guard;
pub mod metrics;
pub mod pipeline;
pub mod post;
pub mod render;
pub mod service;
pub mod sink;
pub mod source;
pub mod sync;
pub mod uri;
pub mod util;
