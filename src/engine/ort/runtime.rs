//! The ONNX Runtime library (loaded once per process), its environment, and the sessions of
//! [`super::OrtEngine`]: the whole graph from the file, the frame split's parts from memory.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::environment::Environment;
use ort::session::Session;

use super::providers::{providers, Provider};
use crate::engine::{cache, EngineError, EngineSettings, ModelContract};

/// Why ONNX Runtime could not be initialised (kept for the process: one library per process).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrtInitError {
    /// `libonnxruntime.so` cannot be loaded or is too old.
    #[error("cannot load ONNX Runtime from {library} (set --ort-lib or ORT_DYLIB_PATH to libonnxruntime.so of ONNX Runtime 1.17 or newer): {message}")]
    Load {
        /// The library asked for.
        library: String,
        /// ort's message.
        message: String,
    },
    /// The library loaded but the environment cannot be created.
    #[error("cannot create the ONNX Runtime environment ({library}): {message}")]
    Environment {
        /// The library.
        library: String,
        /// ort's message.
        message: String,
    },
}

static ENV: OnceLock<Result<(Environment, String), OrtInitError>> = OnceLock::new();

/// Loads `libonnxruntime` once per process and returns the ONNX Runtime environment.
fn environment(
    settings: &EngineSettings,
    backend: &'static str,
) -> Result<&'static Environment, EngineError> {
    let lib = settings
        .ort_library
        .clone()
        .unwrap_or_else(|| PathBuf::from("libonnxruntime.so"));
    let lib_s = lib.display().to_string();
    let got = ENV.get_or_init(|| {
        let builder = ort::init_from(&lib).map_err(|e| OrtInitError::Load {
            library: lib_s.clone(),
            message: e.to_string(),
        })?;
        let env = builder
            .with_name("c3n-edge")
            .build()
            .map_err(|e| OrtInitError::Environment {
                library: lib_s.clone(),
                message: e.to_string(),
            })?;
        Ok((env, lib_s.clone()))
    });
    match got {
        Ok((env, loaded)) if *loaded == lib_s => Ok(env),
        Ok((_, loaded)) => Err(EngineError::Option(format!(
            "ONNX Runtime is already loaded from {loaded}; cannot load {lib_s} in the same process"
        ))),
        Err(e) => Err(EngineError::Unavailable {
            backend,
            reason: e.to_string(),
        }),
    }
}

/// What a session is made of: the graph (a file or a serialised part of it) and its settings.
#[derive(Clone, Copy)]
pub(super) struct SessionSpec<'a> {
    /// The model file (the graph itself for [`cache::Part::Whole`], errors and the cache key
    /// otherwise).
    pub path: &'a Path,
    /// The serialised graph of a part of the split; `None` = the file.
    pub bytes: Option<&'a [u8]>,
    /// The graph built.
    pub part: cache::Part,
    /// The execution provider.
    pub provider: Provider,
    /// Intra-op threads.
    pub threads: usize,
}

/// A session of `spec` on its provider, the TensorRT engine published to its cache entry once
/// built.
///
/// Errors: as [`super::OrtEngine::load`].
pub(super) fn session(
    spec: &SessionSpec<'_>,
    contract: &ModelContract,
    settings: &EngineSettings,
) -> Result<(Session, Option<cache::CacheEntry>), EngineError> {
    let name = spec.provider.engine_name();
    let env = environment(settings, name)?;
    let unavailable = |reason: String| EngineError::Unavailable {
        backend: name,
        reason,
    };
    let load_err = |stage: &str, e: String| EngineError::Load {
        backend: name,
        path: spec.path.to_path_buf(),
        message: match spec.part {
            cache::Part::Whole => format!("{stage}: {e}"),
            p => format!("{} part of the frame split: {stage}: {e}", p.name()),
        },
    };
    let (eps, cache) = providers(spec.provider, contract, spec.part, settings)
        .map_err(|e| unavailable(e.to_string()))?;
    let builder = Session::builder(env)
        .map_err(|e| load_err("session builder", e.to_string()))?
        .with_intra_threads(spec.threads)
        .map_err(|e| load_err("threads", e.to_string()))?;
    // The two parts of the split run one after the other, each session with its own intra-op
    // pool: the workers of one, spinning after its run (ONNX Runtime's default), take the cores
    // the other needs. Without spinning a streamed frame took a third of the time (ort-cpu, 2
    // threads, 2 cores: 45-59 ms instead of 133-142, medians of 15).
    let builder = match spec.part {
        cache::Part::Whole => builder,
        _ => builder
            .with_intra_op_spinning(false)
            .map_err(|e| load_err("intra-op spinning", e.to_string()))?,
    };
    let mut builder = builder
        .with_execution_providers(eps)
        .map_err(|e| unavailable(format!("execution provider registration failed: {e}")))?;
    let session = match spec.bytes {
        None => builder.commit_from_file(spec.path),
        Some(b) => builder.commit_from_memory(b),
    }
    .map_err(|e| load_err("session", e.to_string()))?;
    if let Some(entry) = &cache {
        match cache::publish(entry) {
            Ok(true) => tracing::info!("TensorRT engine cached in {}", entry.dir.display()),
            Ok(false) => {}
            Err(e) => tracing::warn!("{e}"),
        }
    }
    Ok((session, cache))
}

/// An [`EngineError::Run`] of `backend`.
pub(super) fn run_err(backend: &'static str, message: String) -> EngineError {
    EngineError::Run { backend, message }
}
