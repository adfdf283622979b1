//! ONNX Runtime backend (`ort` 2.0.0-rc.15, feature `ort`): the same ONNX file on ONNX Runtime's
//! CPU provider, or — with feature `tensorrt` — on its TensorRT or CUDA execution provider.
//!
//! `libonnxruntime.so` is loaded at run time (`ort` feature `load-dynamic`; nothing is linked):
//! from [`EngineSettings::ort_library`] (`--ort-lib`, `$ORT_DYLIB_PATH`), else the dynamic
//! loader's search path. Built against ONNX Runtime's C API 17 (ort without an `api-NN` feature),
//! so any ONNX Runtime ≥ 1.17 loads; ort refuses older ones. CI runs the parity tests on the
//! PyPI wheels' libraries 1.19.2 (the oldest wheel that ships `libonnxruntime.so`), 1.31.1 and
//! 1.32.0 (`tests/ort_versions.sh`). One library per process: the first engine loads it.
//!
//! TensorRT (frigate's ONNX detector and docs/integration-conventions.md §1.7 / §3.6): FP16 unless
//! [`super::Precision::Fp32`]; INT8 only through an explicitly quantised (QDQ) model — TensorRT 10
//! deprecates implicit calibration, so no calibration table is used; engine cache and timing cache
//! in [`super::cache`] directories keyed by model sha256, TensorRT version, compute capability,
//! precision and input shapes, published atomically. Unsupported nodes fall back to CUDA, then CPU
//! (ONNX Runtime's partitioning).
//!
//! **Streaming** (issue 25, [`super::stream`]): a T > 1 model with a usable frame split runs
//! [`Engine::per_frame`] / [`Engine::after`] as two more sessions at batch 1, one per part of
//! the split (`parts`), each with its own TensorRT engine-cache entry ([`cache::Part`]). They are
//! built on the first [`Engine::per_frame`] call, so runs of whole windows load nothing more.
//!
//! Engine names (the `state` topic's `engine`): `ort-tensorrt`, `ort-cuda`, `ort-cpu`.

use std::path::Path;

use ndarray::{Array, Dimension, Ix1, Ix2, Ix4};
use ort::session::{Session, SessionOutputs};
use ort::value::{PrimitiveTensorElementType, Tensor};

mod parts;
mod providers;
mod runtime;

pub use self::providers::{Provider, ProviderError};
pub use self::runtime::OrtInitError;

use self::parts::{Kept, Streaming};
use self::runtime::{run_err, session, SessionSpec};
use super::model::{load_model_proto, IN_VIEW};
use super::split::FrameSplit;
use super::stream::{self, check_context, check_frame, FrameState};
use super::{
    audio_tensor, cache, check_input, check_output, Engine, EngineError, EngineOptions,
    EngineSettings, Inference, ModelContract, ModelInput,
};
use crate::util::threads::check_threads;

/// A C3N model in an ONNX Runtime session.
pub struct OrtEngine {
    contract: ModelContract,
    session: Session,
    provider: Provider,
    cache: Option<cache::CacheEntry>,
    /// Intra-op threads of every session.
    threads: usize,
    /// For the part sessions built later.
    settings: EngineSettings,
    /// The streaming sessions, or why there are none.
    streaming: Streaming,
}

impl std::fmt::Debug for OrtEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrtEngine")
            .field("model", &self.contract.path)
            .field("provider", &self.provider)
            .field("cache", &self.cache)
            .field("streaming", &self.streaming)
            .finish_non_exhaustive()
    }
}

impl OrtEngine {
    /// Loads `path` on `provider`.
    ///
    /// Errors: [`EngineError::Model`] (contract), [`EngineError::Option`] (threads),
    /// [`EngineError::Unavailable`] (library missing or too old, provider not in this build of
    /// ONNX Runtime or of c3n-edge, no GPU/TensorRT, cache directory not writable),
    /// [`EngineError::Load`] (ONNX Runtime rejects the model).
    pub fn load(
        path: &Path,
        provider: Provider,
        options: &EngineOptions,
        settings: &EngineSettings,
    ) -> Result<Self, EngineError> {
        let threads = match options.threads {
            None => 1,
            Some(n) => check_threads(n).map_err(|e| EngineError::Option(e.to_string()))?,
        };
        let proto = load_model_proto(path)?;
        let contract = ModelContract::from_proto(path, &proto)?;
        let streaming = match FrameSplit::from_proto(&proto) {
            Ok(Some(split)) if contract.clip_frames > 1 => Streaming::Pending(split),
            Ok(_) => Streaming::Whole,
            Err(e) => {
                tracing::warn!(
                    "{}: {e}; streaming runs a whole window per frame",
                    path.display()
                );
                Streaming::Whole
            }
        };
        drop(proto);
        let spec = SessionSpec {
            path,
            bytes: None,
            part: cache::Part::Whole,
            provider,
            threads,
        };
        let (session, cache) = session(&spec, &contract, settings)?;
        Ok(Self {
            contract,
            session,
            provider,
            cache,
            threads,
            settings: settings.clone(),
            streaming,
        })
    }

    /// The execution provider.
    pub fn provider(&self) -> Provider {
        self.provider
    }

    /// The TensorRT engine-cache entry of the whole graph (TensorRT only).
    pub fn cache_entry(&self) -> Option<&cache::CacheEntry> {
        self.cache.as_ref()
    }

    /// The TensorRT engine-cache entries of the two parts of the frame split (per frame, after),
    /// once streaming has built them (TensorRT only).
    pub fn part_cache_entries(&self) -> [Option<&cache::CacheEntry>; 2] {
        match &self.streaming {
            Streaming::Ready(p) => p.cache_entries(),
            _ => [None, None],
        }
    }

    /// Builds the part sessions on the first streamed frame (see the module docs); on failure
    /// logs why and streams by whole windows from then on. Returns the frame's state when built.
    fn start_streaming(&mut self, frame: &ModelInput) -> Option<Kept> {
        let Streaming::Pending(split) = &self.streaming else {
            return None;
        };
        let whole = SessionSpec {
            path: &self.contract.path,
            bytes: None,
            part: cache::Part::Whole,
            provider: self.provider,
            threads: self.threads,
        };
        let built = parts::Parts::build(&whole, &self.contract, split, &self.settings, frame);
        match built {
            Ok((p, kept)) => {
                tracing::info!(
                    "{}: {} streams by the parts of the frame split",
                    self.contract.path.display(),
                    self.provider.engine_name()
                );
                self.streaming = Streaming::Ready(Box::new(p));
                Some(kept)
            }
            Err(e) => {
                tracing::warn!(
                    "{}: the frame split cannot stream on {} ({e}); each streamed frame runs a whole window",
                    self.contract.path.display(),
                    self.provider.engine_name()
                );
                self.streaming = Streaming::Failed;
                None
            }
        }
    }
}

/// The per-frame outputs in a state made by [`OrtEngine`]'s split.
fn kept(st: &FrameState) -> Result<&Kept, EngineError> {
    st.downcast::<Kept>().ok_or_else(|| EngineError::Run {
        backend: "stream",
        message: "a frame state made by another engine was passed as context".into(),
    })
}

/// Output `name` of a run as an owned array of element type `T` and rank `D`.
///
/// Errors: [`EngineError::Run`] when the output is missing, of another element type or rank.
fn output<T: PrimitiveTensorElementType + Clone, D: Dimension>(
    outputs: &SessionOutputs<'_>,
    name: &str,
    backend: &'static str,
) -> Result<Array<T, D>, EngineError> {
    let err = |m: String| run_err(backend, format!("output `{name}`: {m}"));
    outputs
        .get(name)
        .ok_or_else(|| run_err(backend, format!("output `{name}` missing")))?
        .try_extract_array::<T>()
        .map_err(|e| err(e.to_string()))?
        .into_dimensionality::<D>()
        .map_err(|e| err(e.to_string()))
        .map(|a| a.to_owned())
}

impl Engine for OrtEngine {
    fn infer(&mut self, window: &ModelInput) -> Result<Inference, EngineError> {
        let name = self.provider.engine_name();
        check_input(&self.contract, window)?;
        let err = |m: String| run_err(name, m);
        let frames =
            Tensor::from_array(window.frames.clone()).map_err(|e| err(format!("frames: {e}")))?;
        let [_, (audio_name, _)] = self.contract.input_shapes();
        let audio = Tensor::from_array(audio_tensor(
            self.contract.frontend.audio_input,
            &window.audio_logmel,
        ))
        .map_err(|e| err(format!("{audio_name}: {e}")))?;
        let outputs = self
            .session
            .run(ort::inputs!["frames" => frames, audio_name => audio])
            .map_err(|e| err(e.to_string()))?;
        let mut inf = if self.contract.c3im {
            Inference {
                mask_logits: output::<f32, Ix4>(&outputs, "mask_logits", name)?,
                visual_logits: output::<f32, Ix2>(&outputs, "visual_logits", name)?,
                audio_logits: output::<f32, Ix2>(&outputs, "audio_logits", name)?,
                unified_label: output::<i64, Ix1>(&outputs, "unified_label", name)?.to_vec(),
                c3im_score: output::<f32, Ix1>(&outputs, "c3im_score", name)?.to_vec(),
                visual_logit_map: output::<f32, Ix4>(&outputs, "visual_logit_map", name)?,
                c3im_affinity: output::<f32, Ix2>(&outputs, "c3im_affinity", name)?,
                in_view: None,
            }
        } else {
            Inference::without_c3im(
                output::<f32, Ix4>(&outputs, "mask_logits", name)?,
                output::<f32, Ix2>(&outputs, "audio_logits", name)?,
            )
        };
        if self.contract.in_view {
            inf.in_view = Some(output::<f32, Ix1>(&outputs, IN_VIEW, name)?.to_vec());
        }
        check_output(&self.contract, &inf).map_err(|e| err(e.to_string()))?;
        Ok(inf)
    }

    fn per_frame(&mut self, frame: &ModelInput) -> Result<FrameState, EngineError> {
        check_frame(&self.contract, frame)?;
        if let Some(first) = self.start_streaming(frame) {
            return Ok(FrameState::parts(first));
        }
        match &mut self.streaming {
            Streaming::Ready(p) => Ok(FrameState::parts(
                p.per_frame(frame, self.provider.engine_name())?,
            )),
            _ => stream::keep_input(&self.contract, frame),
        }
    }

    fn after(
        &mut self,
        context: &[&FrameState],
        current: &FrameState,
    ) -> Result<Inference, EngineError> {
        let Streaming::Ready(p) = &mut self.streaming else {
            return stream::rerun_window(self, context, current);
        };
        check_context(&self.contract, context.len())?;
        let context = context
            .iter()
            .map(|st| kept(st))
            .collect::<Result<Vec<_>, _>>()?;
        p.after(&context, kept(current)?, self.provider.engine_name())
    }

    /// True for T = 1 and for a model with a frame split, unless building its part sessions
    /// failed on the first [`Engine::per_frame`] (logged; whole windows from then on).
    fn streams_by_parts(&self) -> bool {
        self.contract.clip_frames == 1
            || matches!(self.streaming, Streaming::Pending(_) | Streaming::Ready(_))
    }

    fn name(&self) -> &str {
        self.provider.engine_name()
    }

    fn contract(&self) -> &ModelContract {
        &self.contract
    }
}
