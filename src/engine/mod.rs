//! Inference engines behind one trait.
//!
//! An [`Engine`] runs one window of `T` frames (the model's static `c3n.clip_frames`) through the
//! C3N network. Backends are chosen by name through [`open_engine`]:
//!
//! * `tract` ([`tract::TractEngine`]): pure-Rust CPU inference, always built.
//! * `ort` (ONNX Runtime / TensorRT) is planned behind a cargo feature; it will be one more
//!   module here, one more [`Backend`] variant and one more arm in [`open_engine`].

pub mod model;
pub mod tract;

use std::path::Path;
use std::str::FromStr;

use ndarray::{Array2, Array4};

pub use self::model::{ModelContract, ModelError};

/// One model call's inputs (shapes from the contract, `T = c3n.clip_frames`).
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInput {
    /// `f32 [T,3,224,224]`: RGB frames, CHW, normalised with `c3n.mean`/`c3n.std`
    /// (see [`crate::frontend::ImageNorm`]).
    pub frames: Array4<f32>,
    /// `f32 [T,1,96,64]`: one log-mel patch per frame (see [`crate::frontend::LogMel::clip_patches`]).
    pub audio_logmel: Array4<f32>,
}

/// One model call's outputs.
#[derive(Debug, Clone, PartialEq)]
pub struct Inference {
    /// `f32 [T,1,224,224]`: sounding-object mask logits (sigmoid > 0.5 = object, avsbench.md §6).
    pub mask_logits: Array4<f32>,
    /// `f32 [T,1000]`: ImageNet logits of the visual classifier.
    pub visual_logits: Array2<f32>,
    /// `f32 [T,521]`: AudioSet logits of the audio classifier.
    pub audio_logits: Array2<f32>,
    /// `[T]`: ImageNet class chosen by C3IM as the unified audio-visual label.
    pub unified_label: Vec<i64>,
    /// `[T]`: C3IM consensus `max_{j,i} v[j]·S[j,i]·a[i]` (c3n-method.md).
    pub c3im_score: Vec<f32>,
}

/// Errors of the inference engines.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The model file violates the contract (or cannot be read).
    #[error(transparent)]
    Model(#[from] ModelError),
    /// No backend of that name is built in.
    #[error("unknown inference backend `{0}` (available: {available})", available = BACKENDS.join(", "))]
    UnknownBackend(String),
    /// The backend could not load/optimise the model.
    #[error("{backend} cannot load {path}: {message}")]
    Load {
        /// Backend name.
        backend: &'static str,
        /// Model file.
        path: std::path::PathBuf,
        /// Backend message (with its cause chain).
        message: String,
    },
    /// An input array does not have the contract's shape.
    #[error("input `{name}` has shape {got:?}, the model expects {expected:?}")]
    InputShape {
        /// Input name.
        name: &'static str,
        /// Contract shape.
        expected: Vec<usize>,
        /// Given shape.
        got: Vec<usize>,
    },
    /// Running the model failed, or it produced outputs of an unexpected type/shape.
    #[error("{backend} inference failed: {message}")]
    Run {
        /// Backend name.
        backend: &'static str,
        /// What went wrong.
        message: String,
    },
    /// Invalid engine option (e.g. thread count).
    #[error("invalid engine option: {0}")]
    Option(String),
}

/// A loaded model that runs windows of `T` frames.
pub trait Engine: Send {
    /// Runs one window. `window` must have the contract shapes (`T` = [`ModelContract::clip_frames`]).
    fn infer(&mut self, window: &ModelInput) -> Result<Inference, EngineError>;
    /// Backend name (`"tract"`, …).
    fn name(&self) -> &str;
    /// The contract of the loaded model.
    fn contract(&self) -> &ModelContract;
}

/// Backend options common to all engines.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EngineOptions {
    /// Intra-op threads; `None` = backend default (tract: single-threaded).
    pub threads: Option<usize>,
}

/// Built-in backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// [`tract::TractEngine`].
    Tract,
}

/// Names accepted by [`Backend::from_str`].
pub const BACKENDS: &[&str] = &["tract"];

impl FromStr for Backend {
    type Err = EngineError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "tract" => Ok(Backend::Tract),
            other => Err(EngineError::UnknownBackend(other.to_string())),
        }
    }
}

/// Loads `model_path` with the named backend.
pub fn open_engine(
    backend: Backend,
    model_path: &Path,
    options: &EngineOptions,
) -> Result<Box<dyn Engine>, EngineError> {
    match backend {
        Backend::Tract => Ok(Box::new(tract::TractEngine::load(model_path, options)?)),
    }
}

/// Checks that `window` has the shapes `contract` requires.
pub fn check_input(contract: &ModelContract, window: &ModelInput) -> Result<(), EngineError> {
    let [(n0, s0), (n1, s1)] = contract.input_shapes();
    for (name, expected, got) in [
        (n0, s0, window.frames.shape()),
        (n1, s1, window.audio_logmel.shape()),
    ] {
        if got != expected.as_slice() {
            return Err(EngineError::InputShape {
                name,
                expected,
                got: got.to_vec(),
            });
        }
    }
    Ok(())
}
