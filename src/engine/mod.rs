//! Inference engines behind one trait.
//!
//! An [`Engine`] runs one window of `T` frames (the model's static `c3n.clip_frames`) through the
//! C3N network. Backends are chosen by name through [`open_engine`]:
//!
//! * `tract` ([`tract::TractEngine`]): pure-Rust CPU inference, always built.
//! * `cpu`, `cuda`, `tensorrt` (`ort::OrtEngine`, cargo feature `ort`; `tensorrt` adds the
//!   CUDA/TensorRT execution providers): ONNX Runtime loaded at run time.
//! * `auto`: TensorRT, then CUDA, then tract, logging why each was skipped ([`open_engine_with`]).

#[cfg(feature = "ort")]
pub mod cache;
#[cfg(feature = "ort")]
pub mod gpu;
pub mod model;
mod open;
#[cfg(feature = "ort")]
pub mod ort;
pub mod prebuild;
pub mod split;
pub mod stream;
pub mod tract;

use std::str::FromStr;

use ndarray::{Array2, Array4};

pub use self::model::{ModelContract, ModelError};
pub use self::open::{open_engine, open_engine_from_proto, open_engine_with};
pub use self::stream::FrameState;

/// One model call's inputs (shapes from the contract, `T = c3n.clip_frames`).
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInput {
    /// `f32 [T,3,224,224]`: RGB frames, CHW, normalised with `c3n.mean`/`c3n.std`
    /// (see [`crate::frontend::ImageNorm`]).
    pub frames: Array4<f32>,
    /// `f32 [T,1,96,64]`: one log-mel patch per frame (see [`crate::frontend::LogMel::clip_patches`]);
    /// for a waveform model (`c3n.audio_input = waveform`) the 1-s windows as `[T,1,1,sample_rate]`
    /// ([`ModelContract::audio_window_shape`]), fed as `audio_waveform [T,sample_rate]`.
    pub audio_logmel: Array4<f32>,
}

/// One model call's outputs.
///
/// A model without the C3IM outputs (schema 3, [`ModelContract::c3im`] false) gives them empty:
/// `visual_logits [T,0]`, `unified_label` all −1, `c3im_score` all 0, `visual_logit_map
/// [T,0,0,0]`, `c3im_affinity [T,0]` ([`Inference::without_c3im`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Inference {
    /// `f32 [T,1,224,224]`: sounding-object mask logits (sigmoid > 0.5 = object,
    /// docs/avsbench.md §6).
    pub mask_logits: Array4<f32>,
    /// `f32 [T,1000]`: ImageNet logits of the visual classifier.
    pub visual_logits: Array2<f32>,
    /// `f32 [T,N]`: AudioSet logits of the audio classifier (N = 521 or 527,
    /// [`ModelContract::n_audioset`]).
    pub audio_logits: Array2<f32>,
    /// `[T]`: ImageNet class chosen by C3IM as the unified audio-visual label.
    pub unified_label: Vec<i64>,
    /// `[T]`: C3IM consensus `max_{j,i} v[j]·S[j,i]·a[i]` (docs/c3n-method.md).
    pub c3im_score: Vec<f32>,
    /// `f32 [T,1000,h,w]` (`h = w = ⌈S/32⌉` = 7, [`model::map_size`]): the ImageNet classifier at every cell of the last
    /// backbone stage (a class-activation map); its mean over a region's cells is the region's
    /// logits (`post::region_logits`).
    pub visual_logit_map: Array4<f32>,
    /// `f32 [T,1000]`: C3IM's audio side `r[j] = max_i S[j,i]·a[i]`; a visual distribution v's
    /// unified label with this frame's audio is `argmax_j v[j]·r[j]` (`post::c3im_label`).
    pub c3im_affinity: Array2<f32>,
    /// `[T]`: the probability (0–1, sigmoid applied) that the source of the sound is visible in
    /// each frame (issue 26); `None` for a model without the `in_view` output
    /// ([`ModelContract::in_view`]).
    pub in_view: Option<Vec<f32>>,
}

impl Inference {
    /// The outputs of a model without C3IM outputs: the two it has, the rest empty (type docs).
    pub fn without_c3im(mask_logits: Array4<f32>, audio_logits: Array2<f32>) -> Self {
        let t = mask_logits.dim().0;
        Self {
            visual_logits: Array2::zeros((t, 0)),
            unified_label: vec![-1; t],
            c3im_score: vec![0.0; t],
            visual_logit_map: Array4::zeros((t, 0, 0, 0)),
            c3im_affinity: Array2::zeros((t, 0)),
            in_view: None,
            mask_logits,
            audio_logits,
        }
    }
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
    /// The backend cannot run here (not built in, library or GPU missing); `auto` moves on.
    #[error("{backend} is unavailable: {reason}")]
    Unavailable {
        /// Backend name.
        backend: &'static str,
        /// Why (names the missing library, feature or directory).
        reason: String,
    },
}

/// A loaded model that runs windows of `T` frames.
pub trait Engine: Send {
    /// Runs one window. `window` must have the contract shapes (`T` = [`ModelContract::clip_frames`]).
    fn infer(&mut self, window: &ModelInput) -> Result<Inference, EngineError>;
    /// Backend name (`"tract"`, …).
    fn name(&self) -> &str;
    /// The contract of the loaded model.
    fn contract(&self) -> &ModelContract;

    /// Streaming, first part (issue 25, [`stream`]): the per-frame work of one frame, kept for
    /// [`Engine::after`] of this frame and of the next T − 1 frames that take it as context.
    /// `frame` is one frame of the contract's inputs: `frames [1,3,S,S]`,
    /// `audio_logmel [1,1,96,64]`. The default keeps the input (see [`Engine::streams_by_parts`]).
    ///
    /// Errors: [`EngineError::InputShape`] for a frame of other shapes, [`EngineError::Run`].
    fn per_frame(&mut self, frame: &ModelInput) -> Result<FrameState, EngineError> {
        stream::keep_input(self.contract(), frame)
    }

    /// Streaming, second part: the outputs of `current` (one frame, leading dimension 1) with
    /// `context`, the T − 1 frames before it, oldest first, all made by this engine's
    /// [`Engine::per_frame`]. Equal to frame T − 1 of [`Engine::infer`] on the window
    /// `[context…, current]`; the default runs exactly that window.
    ///
    /// Errors: [`EngineError::Run`] for a context of another length or states of another engine.
    fn after(
        &mut self,
        context: &[&FrameState],
        current: &FrameState,
    ) -> Result<Inference, EngineError> {
        let window = stream::context_window(self.contract(), context, current)?;
        let t = self.contract().clip_frames;
        Ok(self.infer(&window)?.frame(t - 1))
    }

    /// The two streaming parts as workers that may run on two threads at once (issue 25: one
    /// frame's parts run in turn, so a second thread helps only by overlapping frames); `None`
    /// (the default) when the engine has one thread or cannot split the graph.
    fn stream_workers(&mut self) -> Option<stream::StreamWorkers<'_>> {
        None
    }

    /// Whether [`Engine::per_frame`] / [`Engine::after`] split the work (a streamed frame costs
    /// about 1/T of a window) rather than rerun a whole window per frame (the defaults).
    fn streams_by_parts(&self) -> bool {
        self.contract().clip_frames == 1
    }
}

/// Backend options common to all engines.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EngineOptions {
    /// Intra-op threads; `None` = backend default (tract: single-threaded).
    pub threads: Option<usize>,
}

/// Built-in backends (`--backend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// [`tract::TractEngine`].
    Tract,
    /// TensorRT, then CUDA, then tract: the first that loads.
    Auto,
    /// ONNX Runtime's TensorRT execution provider (feature `tensorrt`).
    TensorRt,
    /// ONNX Runtime's CUDA execution provider (feature `tensorrt`).
    Cuda,
    /// ONNX Runtime's CPU provider (feature `ort`).
    Cpu,
}

/// Names accepted by [`Backend::from_str`].
pub const BACKENDS: &[&str] = &["auto", "tensorrt", "cuda", "cpu", "tract"];

impl FromStr for Backend {
    type Err = EngineError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "tract" => Ok(Backend::Tract),
            "auto" => Ok(Backend::Auto),
            "tensorrt" => Ok(Backend::TensorRt),
            "cuda" => Ok(Backend::Cuda),
            "cpu" | "ort-cpu" => Ok(Backend::Cpu),
            other => Err(EngineError::UnknownBackend(other.to_string())),
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::Tract => "tract",
            Backend::Auto => "auto",
            Backend::TensorRt => "tensorrt",
            Backend::Cuda => "cuda",
            Backend::Cpu => "cpu",
        })
    }
}

/// Numeric precision TensorRT may use (`--precision`, `$C3N_TRT_PRECISION`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// FP32 only.
    Fp32,
    /// FP16 kernels allowed (the default; TensorRT `trt_fp16_enable`).
    #[default]
    Fp16,
    /// INT8 (with FP16) on an explicitly quantised QDQ model (`models/c3n/export/quantize.py`).
    Int8,
}

impl FromStr for Precision {
    type Err = EngineError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "fp32" => Ok(Precision::Fp32),
            "fp16" => Ok(Precision::Fp16),
            "int8" => Ok(Precision::Int8),
            o => Err(EngineError::Option(format!(
                "precision must be fp32, fp16 or int8, got `{o}`"
            ))),
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Precision::Fp32 => "fp32",
            Precision::Fp16 => "fp16",
            Precision::Int8 => "int8",
        })
    }
}

/// Settings of the ONNX Runtime / TensorRT backends (ignored by tract).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EngineSettings {
    /// `libonnxruntime.so` to load (`--ort-lib`, `$ORT_DYLIB_PATH`); `None` = the loader's
    /// search path.
    pub ort_library: Option<std::path::PathBuf>,
    /// TensorRT engine-cache root (`--engine-cache`); `None` = `cache::default_root`
    /// (`$C3N_ENGINE_CACHE`, `$CACHE_DIRECTORY/engines`, `~/.cache/c3n-edge/engines`).
    pub engine_cache: Option<std::path::PathBuf>,
    /// TensorRT precision.
    pub precision: Precision,
}

impl EngineSettings {
    /// From `$ORT_DYLIB_PATH`, `$C3N_ENGINE_CACHE` and `$C3N_TRT_PRECISION` (unset = defaults).
    /// Errors: [`EngineError::Option`] for an unknown precision.
    pub fn from_env() -> Result<Self, EngineError> {
        let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
        Ok(Self {
            ort_library: var("ORT_DYLIB_PATH").map(Into::into),
            engine_cache: var("C3N_ENGINE_CACHE").map(Into::into),
            precision: match var("C3N_TRT_PRECISION") {
                Some(p) => p.to_string_lossy().parse()?,
                None => Precision::default(),
            },
        })
    }
}

/// An inference whose outputs do not have the contract's shapes ([`check_output`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("outputs do not have the contract shapes")]
pub struct OutputShapeError;

/// Checks that an inference has the contract's output shapes (`in_view` present exactly when
/// the contract has it).
///
/// Errors: [`OutputShapeError`] when any output's shape differs from the contract's.
pub fn check_output(contract: &ModelContract, inf: &Inference) -> Result<(), OutputShapeError> {
    let t = contract.clip_frames;
    let s = contract.image.size as usize;
    let (n, m) = if contract.c3im {
        (model::N_IMAGENET, model::map_size(s))
    } else {
        (0, 0)
    };
    if inf.mask_logits.dim() != (t, 1, s, s)
        || inf.visual_logits.dim() != (t, n)
        || inf.audio_logits.dim() != (t, contract.n_audioset())
        || inf.unified_label.len() != t
        || inf.c3im_score.len() != t
        || inf.visual_logit_map.dim() != (t, n, m, m)
        || inf.c3im_affinity.dim() != (t, n)
        || inf.in_view.as_ref().map(Vec::len) != contract.in_view.then_some(t)
    {
        return Err(OutputShapeError);
    }
    Ok(())
}

/// The audio input as the graph takes it for a model with `c3n.audio_input` = `input` (`audio`
/// has [`ModelContract::audio_window_shape`], or leading dimension 1 for one frame): the log-mel patches as they are, or for a waveform
/// model the `[T,1,1,n]` windows as `audio_waveform [T,n]`.
pub fn audio_tensor(
    input: crate::frontend::AudioInput,
    audio: &Array4<f32>,
) -> ndarray::ArrayD<f32> {
    match input {
        crate::frontend::AudioInput::Logmel => audio.clone().into_dyn(),
        crate::frontend::AudioInput::Waveform => audio
            .index_axis(ndarray::Axis(1), 0)
            .index_axis(ndarray::Axis(1), 0)
            .to_owned()
            .into_dyn(),
    }
}

/// Checks that `window` has the shapes `contract` requires.
pub fn check_input(contract: &ModelContract, window: &ModelInput) -> Result<(), EngineError> {
    let [(n0, s0), (n1, _)] = contract.input_shapes();
    let s1 = contract.audio_window_shape().to_vec();
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
