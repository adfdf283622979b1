//! c3n-edge: runtime for the C3N audio-visual segmentation network (finds the *sounding object*
//! in a camera view) from an exported ONNX file.
//!
//! The data path, capture to event (ARCHITECTURE.md has the picture and the layers that
//! `tests/module_graph.py` checks): [`source`] (files, V4L2, ALSA) → [`sync`] (slots, windows,
//! [`frontend`]: log-mel and frame normalisation) → [`engine`] (model contract, tract / ONNX
//! Runtime backends) → [`post`] (regions, boxes, labels) → [`events`] (tracker, lifecycle) →
//! [`render`] (mask overlays) → [`sink`] (JSON lines, MQTT, display, snapshots, systemd), wired by
//! [`pipeline`]. Below them: [`util`] (back-off, drop-oldest queue, statistics, thread limit),
//! [`uri`], [`categories`], [`metrics`], [`audio`] (WAV reading, resampling), [`dataset`]
//! (AVSBench S4 / MS3), [`control`], [`guard`]; above them: [`service`], [`eval`], [`bench`],
//! [`config`].

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
