//! Execution-provider selection: which ONNX Runtime execution providers a [`Provider`] asks for,
//! and for TensorRT the engine-cache entry ([`crate::engine::cache`]) its engine is built into.

use crate::engine::{cache, EngineSettings, ModelContract};

/// An ONNX Runtime execution provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// `TensorrtExecutionProvider` (feature `tensorrt`).
    TensorRt,
    /// `CUDAExecutionProvider` (feature `tensorrt`).
    Cuda,
    /// ONNX Runtime's own CPU kernels.
    Cpu,
}

impl Provider {
    /// Engine name reported in the state (`ort-tensorrt`, `ort-cuda`, `ort-cpu`).
    pub fn engine_name(self) -> &'static str {
        match self {
            Provider::TensorRt => "ort-tensorrt",
            Provider::Cuda => "ort-cuda",
            Provider::Cpu => "ort-cpu",
        }
    }
}

/// Why an execution provider cannot be used here (`--backend auto` moves on).
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// TensorRT / CUDA asked for in a build without the `tensorrt` cargo feature.
    #[error("c3n-edge was built without the `tensorrt` cargo feature (TensorRT and CUDA execution providers)")]
    NotBuilt,
    /// The loaded ONNX Runtime library lacks the execution provider.
    #[error("the loaded ONNX Runtime library was built without the {0} execution provider (use one built with it: PyPI's onnxruntime-gpu on x86_64, an ONNX Runtime built for JetPack on a Jetson)")]
    NotInLibrary(&'static str),
    /// ONNX Runtime cannot list its execution providers (ort's message).
    #[error("cannot list ONNX Runtime's execution providers: {0}")]
    List(String),
    /// No GPU or TensorRT (the missing library or failing call).
    #[error(transparent)]
    Gpu(#[from] crate::engine::gpu::GpuError),
    /// The TensorRT engine cache cannot be used.
    #[error(transparent)]
    Cache(#[from] cache::CacheError),
}

/// The execution providers of a session, in order of preference.
pub(super) type Eps = Vec<ort::ep::ExecutionProviderDispatch>;

/// The execution providers for `provider` and, for TensorRT, the engine-cache entry of `part`
/// of the model.
#[cfg(not(feature = "tensorrt"))]
pub(super) fn providers(
    provider: Provider,
    _contract: &ModelContract,
    _part: cache::Part,
    _settings: &EngineSettings,
) -> Result<(Eps, Option<cache::CacheEntry>), ProviderError> {
    match provider {
        Provider::Cpu => Ok((Vec::new(), None)),
        Provider::TensorRt | Provider::Cuda => Err(ProviderError::NotBuilt),
    }
}

/// The execution providers for `provider` and, for TensorRT, the engine-cache entry of `part`
/// of the model (probing the GPU, preparing the entry).
#[cfg(feature = "tensorrt")]
pub(super) fn providers(
    provider: Provider,
    contract: &ModelContract,
    part: cache::Part,
    settings: &EngineSettings,
) -> Result<(Eps, Option<cache::CacheEntry>), ProviderError> {
    use ort::ep::{ExecutionProvider, TensorRT, CUDA};
    let in_build = |avail: ort::Result<bool>, ep: &'static str| match avail {
        Ok(true) => Ok(()),
        Ok(false) => Err(ProviderError::NotInLibrary(ep)),
        Err(e) => Err(ProviderError::List(e.to_string())),
    };
    match provider {
        Provider::Cpu => Ok((Vec::new(), None)),
        Provider::Cuda => {
            in_build(CUDA::is_available(), "CUDA")?;
            crate::engine::gpu::compute_capability()?;
            Ok((vec![CUDA::default().build().error_on_failure()], None))
        }
        Provider::TensorRt => {
            in_build(TensorRT::is_available(), "TensorRT")?;
            let gpu = crate::engine::gpu::probe()?;
            let key = cache::CacheKey::new(contract, &gpu, settings.precision, part)?;
            let root = settings
                .engine_cache
                .clone()
                .unwrap_or_else(cache::default_root);
            let entry = cache::prepare(&root, &key)?;
            if entry.hit {
                tracing::info!("TensorRT engine cache hit: {}", entry.dir.display());
            } else {
                tracing::warn!(
                    "building a TensorRT engine ({gpu}, {}, {} graph) into {}: this takes minutes on a Jetson; pre-build it with `c3n-edge build-engine`",
                    settings.precision,
                    part.name(),
                    entry.dir.display()
                );
            }
            let trt = TensorRT::default()
                .with_fp16(settings.precision != crate::engine::Precision::Fp32)
                .with_int8(settings.precision == crate::engine::Precision::Int8)
                .with_engine_cache(true)
                .with_engine_cache_path(entry.work_dir.display())
                .with_timing_cache(true)
                .with_timing_cache_path(entry.timing_dir.display())
                .build()
                .error_on_failure();
            // nodes TensorRT cannot take run on CUDA (then CPU)
            let cuda = CUDA::default().build();
            Ok((vec![trt, cuda], Some(entry)))
        }
    }
}
