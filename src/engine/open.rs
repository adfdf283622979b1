//! Opening a model on a backend by name ([`open_engine`]), `auto` trying TensorRT, then CUDA,
//! then tract.

use std::path::Path;

#[cfg(feature = "ort")]
use super::ort::{OrtEngine, Provider};
use super::tract::TractEngine;
use super::{Backend, Engine, EngineError, EngineOptions, EngineSettings};

/// Loads `model_path` with the named backend, ONNX Runtime settings from the environment
/// ([`EngineSettings::from_env`]).
pub fn open_engine(
    backend: Backend,
    model_path: &Path,
    options: &EngineOptions,
) -> Result<Box<dyn Engine>, EngineError> {
    open_engine_with(backend, model_path, options, &EngineSettings::from_env()?)
}

/// Loads `model_path` with the named backend. `auto` tries TensorRT, then CUDA, then tract; each
/// skipped backend is logged at `warn` with the reason ([`EngineError::Unavailable`] or a load
/// error), and the engine chosen at `info`.
pub fn open_engine_with(
    backend: Backend,
    model_path: &Path,
    options: &EngineOptions,
    settings: &EngineSettings,
) -> Result<Box<dyn Engine>, EngineError> {
    let tract = || TractEngine::load(model_path, options);
    open_backend(backend, model_path, options, settings, tract)
}

/// [`open_engine_with`] on a model already read and decoded ([`super::model::load_model_proto`],
/// e.g. for its [`super::ModelContract`] before the engine loads): tract builds from `proto`
/// without reading `model_path` again; the ONNX Runtime backends read the file themselves.
pub fn open_engine_from_proto(
    backend: Backend,
    model_path: &Path,
    proto: &tract_onnx::pb::ModelProto,
    options: &EngineOptions,
    settings: &EngineSettings,
) -> Result<Box<dyn Engine>, EngineError> {
    let tract = || TractEngine::from_proto(model_path, proto, options, true);
    open_backend(backend, model_path, options, settings, tract)
}

/// The backend choice of [`open_engine_with`]; `tract` loads the tract engine.
fn open_backend(
    backend: Backend,
    model_path: &Path,
    options: &EngineOptions,
    settings: &EngineSettings,
    tract: impl Fn() -> Result<TractEngine, EngineError>,
) -> Result<Box<dyn Engine>, EngineError> {
    match backend {
        Backend::Tract => Ok(Box::new(tract()?)),
        Backend::TensorRt | Backend::Cuda | Backend::Cpu => {
            open_ort(backend, model_path, options, settings)
        }
        Backend::Auto => {
            for b in [Backend::TensorRt, Backend::Cuda] {
                match open_ort(b, model_path, options, settings) {
                    Ok(e) => {
                        tracing::info!("engine auto: using {}", e.name());
                        return Ok(e);
                    }
                    // a broken model fails every backend: report it once, here
                    Err(e @ EngineError::Model(_)) => return Err(e),
                    Err(e) => tracing::warn!("engine auto: {b} skipped: {e}"),
                }
            }
            tracing::warn!("engine auto: falling back to tract (CPU)");
            Ok(Box::new(tract()?))
        }
    }
}

#[cfg(feature = "ort")]
fn open_ort(
    backend: Backend,
    model_path: &Path,
    options: &EngineOptions,
    settings: &EngineSettings,
) -> Result<Box<dyn Engine>, EngineError> {
    let provider = match backend {
        Backend::TensorRt => Provider::TensorRt,
        Backend::Cuda => Provider::Cuda,
        _ => Provider::Cpu,
    };
    Ok(Box::new(OrtEngine::load(
        model_path, provider, options, settings,
    )?))
}

#[cfg(not(feature = "ort"))]
fn open_ort(
    backend: Backend,
    _model_path: &Path,
    _options: &EngineOptions,
    _settings: &EngineSettings,
) -> Result<Box<dyn Engine>, EngineError> {
    let (name, feature) = match backend {
        Backend::Cpu => ("ort-cpu", "ort"),
        Backend::Cuda => ("ort-cuda", "tensorrt"),
        _ => ("ort-tensorrt", "tensorrt"),
    };
    Err(EngineError::Unavailable {
        backend: name,
        reason: format!(
            "c3n-edge was built without the `{feature}` cargo feature (cargo build --features {feature})"
        ),
    })
}
