//! `c3n-edge build-engine` and `c3n-edge bench-engines`: warm the TensorRT engine cache ahead of
//! time (docs/integration-conventions.md §1.7: "a separate build-engine subcommand so installers
//! can pre-build"), and time several backends on the same model and input in one process.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ndarray::Array4;
use serde::Serialize;

use super::{
    open_engine_with, Backend, Engine, EngineError, EngineOptions, EngineSettings, ModelContract,
    ModelInput,
};
use crate::util::stats::percentile_ms;

/// What `build-engine` did.
#[derive(Debug, Clone, PartialEq)]
pub enum Prebuild {
    /// The backend has no engine to build (tract, cpu, cuda; or `auto` without TensorRT).
    NotNeeded(String),
    /// A TensorRT engine is ready.
    Ready {
        /// Cache entry directory (`None` when the engine could not be published).
        dir: Option<PathBuf>,
        /// Whether it was already cached.
        cached: bool,
        /// Session creation (build or load) time.
        load: Duration,
    },
}

/// Shows a spinner (on a terminal) and logs "still building" every 30 s (journal) while `f` runs.
fn with_progress<T>(what: &str, progress: bool, f: impl FnOnce() -> T) -> T {
    let bar = if progress {
        indicatif::ProgressBar::new_spinner()
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_message(what.to_string());
    bar.enable_steady_tick(Duration::from_millis(200));
    if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} {msg} [{elapsed}]") {
        bar.set_style(style);
    }
    let done = Arc::new(AtomicBool::new(false));
    let d = done.clone();
    let what2 = what.to_string();
    let logger = std::thread::spawn(move || {
        let start = Instant::now();
        let mut next = Duration::from_secs(30);
        while !d.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(200));
            if start.elapsed() >= next {
                tracing::info!("{what2}: still working ({} s)", next.as_secs());
                next += Duration::from_secs(30);
            }
        }
    });
    let r = f();
    done.store(true, Ordering::Relaxed);
    let _ = logger.join();
    bar.finish_and_clear();
    r
}

/// A deterministic window of the contract's shapes (values in [-1, 1), fixed LCG seed).
pub fn test_window(contract: &ModelContract) -> ModelInput {
    let [(_, f), _] = contract.input_shapes();
    let a = contract.audio_window_shape();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    };
    let frames = Array4::from_shape_simple_fn((f[0], f[1], f[2], f[3]), &mut next);
    let audio_logmel = Array4::from_shape_simple_fn((a[0], a[1], a[2], a[3]), &mut next);
    ModelInput {
        frames,
        audio_logmel,
    }
}

/// Builds (or finds) the TensorRT engine of `model` for `backend` (`tensorrt` or `auto`; other
/// backends have nothing to build), then runs one window through it as a check.
///
/// Errors: with `tensorrt`, any [`EngineError`] (TensorRT unavailable, model rejected, cache not
/// writable); with `auto`, only model errors — an unavailable TensorRT is [`Prebuild::NotNeeded`].
pub fn prebuild(
    backend: Backend,
    model: &Path,
    options: &EngineOptions,
    settings: &EngineSettings,
    progress: bool,
) -> Result<Prebuild, EngineError> {
    match backend {
        Backend::Tract | Backend::Cpu | Backend::Cuda => {
            return Ok(Prebuild::NotNeeded(format!(
                "backend {backend} uses no engine cache; nothing to build"
            )))
        }
        Backend::TensorRt | Backend::Auto => {}
    }
    let what = format!(
        "TensorRT engine for {} ({})",
        model.display(),
        settings.precision
    );
    let t = Instant::now();
    let loaded = with_progress(&format!("building/loading {what}"), progress, || {
        load_trt(model, options, settings)
    });
    let load = t.elapsed();
    match loaded {
        Ok((mut engine, dir, cached)) => {
            let w = test_window(engine.contract());
            engine.infer(&w)?;
            Ok(Prebuild::Ready { dir, cached, load })
        }
        Err(e @ EngineError::Model(_)) => Err(e),
        Err(e) if backend == Backend::Auto => Ok(Prebuild::NotNeeded(format!(
            "TensorRT is unavailable, so `auto` will not use it and there is nothing to build: {e}"
        ))),
        Err(e) => Err(e),
    }
}

/// A loaded TensorRT engine, its cache directory (when it holds an engine) and whether it was cached.
type TrtLoad = Result<(Box<dyn Engine>, Option<PathBuf>, bool), EngineError>;

#[cfg(feature = "ort")]
fn load_trt(model: &Path, options: &EngineOptions, settings: &EngineSettings) -> TrtLoad {
    let e = super::ort::OrtEngine::load(model, super::ort::Provider::TensorRt, options, settings)?;
    let (dir, cached) = match e.cache_entry() {
        Some(c) => (
            Some(c.dir.clone()).filter(|d| super::cache::has_engine(d)),
            c.hit,
        ),
        None => (None, false),
    };
    Ok((Box::new(e), dir, cached))
}

#[cfg(not(feature = "ort"))]
fn load_trt(model: &Path, options: &EngineOptions, settings: &EngineSettings) -> TrtLoad {
    let e = open_engine_with(Backend::TensorRt, model, options, settings)?;
    Ok((e, None, false))
}

/// One backend's timings in [`compare`].
#[derive(Debug, Clone, Serialize)]
pub struct BackendTiming {
    /// Engine name (`tract`, `ort-cpu`, …).
    pub engine: String,
    /// Load + optimisation time, s.
    pub load_s: f64,
    /// First call, ms (includes lazy initialisation).
    pub first_ms: f64,
    /// Mean of the following calls, ms.
    pub mean_ms: f64,
    /// Median of the following calls, ms (the upper middle one for an even count).
    pub median_ms: f64,
    /// Fastest of the following calls, ms.
    pub min_ms: f64,
    /// Median ms of one streamed mask (issue 25): [`super::Engine::per_frame`] on a new frame,
    /// then [`super::Engine::after`] with T − 1 kept context frames; `iters` calls.
    pub stream_median_ms: f64,
    /// `stream_median_ms / median_ms`: a streamed mask's share of a window (ideal 1/T).
    pub stream_ratio: f64,
    /// With [`super::Engine::stream_workers`] (tract, `--threads` ≥ 2): ms between masks in a
    /// sustained stream whose two parts overlap on two threads (frame n's second part beside
    /// frame n + 1's first), over `iters` masks; `None` without workers.
    pub stream_pipelined_ms: Option<f64>,
    /// Max |mask_logits − first backend's| (0 for the first backend; infinite when the sizes
    /// differ or a value is NaN or infinite).
    pub mask_max_abs_diff: f32,
    /// Max |c3im_score − first backend's| (same rules).
    pub score_max_abs_diff: f32,
}

/// Max |a − b| over two outputs in iteration order, for [`BackendTiming`]'s diffs.
/// `f32::INFINITY` when their lengths differ or either holds a NaN or an infinity, so that a broken
/// backend can never look like a perfect match (a plain `max` fold would skip NaN).
fn max_abs_diff<'a>(
    a: impl ExactSizeIterator<Item = &'a f32>,
    b: impl ExactSizeIterator<Item = &'a f32>,
) -> f32 {
    if a.len() != b.len() {
        return f32::INFINITY;
    }
    a.zip(b).fold(0.0f32, |m, (x, y)| {
        let d = (x - y).abs();
        if d.is_finite() {
            m.max(d)
        } else {
            f32::INFINITY
        }
    })
}

/// Times `backends` on `model` with the same [`test_window`]: load, first call, then `iters`
/// calls each. Errors: the first backend that fails to load or run.
pub fn compare(
    backends: &[Backend],
    model: &Path,
    options: &EngineOptions,
    settings: &EngineSettings,
    iters: usize,
) -> Result<Vec<BackendTiming>, EngineError> {
    let mut out = Vec::new();
    let mut reference: Option<super::Inference> = None;
    for &b in backends {
        let t = Instant::now();
        let mut engine = open_engine_with(b, model, options, settings)?;
        let load_s = t.elapsed().as_secs_f64();
        let window = test_window(engine.contract());
        let t = Instant::now();
        let first = engine.infer(&window)?;
        let first_ms = t.elapsed().as_secs_f64() * 1e3;
        let mut times = Vec::new();
        for _ in 0..iters {
            let t = Instant::now();
            engine.infer(&window)?;
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
        let mean_ms = times.iter().sum::<f64>() / times.len().max(1) as f64;
        let min_ms = times.iter().copied().fold(f64::INFINITY, f64::min);
        let median_ms = percentile_ms(
            &times
                .iter()
                .map(|ms| Duration::from_secs_f64(ms / 1e3))
                .collect::<Vec<_>>(),
            0.5,
        );
        let stream_median_ms = time_stream(engine.as_mut(), &window, iters.max(1))?;
        let stream_pipelined_ms = time_stream_pipelined(engine.as_mut(), &window, iters.max(2))?;
        let (mask_max_abs_diff, score_max_abs_diff) = match &reference {
            Some(r) => (
                max_abs_diff(first.mask_logits.iter(), r.mask_logits.iter()),
                max_abs_diff(first.c3im_score.iter(), r.c3im_score.iter()),
            ),
            None => (0.0, 0.0),
        };
        out.push(BackendTiming {
            engine: engine.name().to_string(),
            load_s,
            first_ms,
            mean_ms: if times.is_empty() { first_ms } else { mean_ms },
            min_ms: if times.is_empty() { first_ms } else { min_ms },
            median_ms: if times.is_empty() {
                first_ms
            } else {
                median_ms
            },
            stream_median_ms,
            stream_ratio: stream_median_ms / median_ms,
            stream_pipelined_ms,
            mask_max_abs_diff,
            score_max_abs_diff,
        });
        if reference.is_none() {
            reference = Some(first);
        }
    }
    Ok(out)
}

/// Median ms of `iters` streamed masks over the frames of `window` taken in turn: each call runs
/// the per-frame part of one new frame and the second part with the T − 1 frames kept before it
/// (the first T − 1 frames' states are made untimed, then one untimed warm-up call).
fn time_stream(
    engine: &mut dyn super::Engine,
    window: &super::ModelInput,
    iters: usize,
) -> Result<f64, EngineError> {
    use super::stream::input_frame;
    let t = engine.contract().clip_frames;
    let mut kept = std::collections::VecDeque::new();
    for i in 0..t.saturating_sub(1) {
        kept.push_back(engine.per_frame(&input_frame(window, i))?);
    }
    let mut times = Vec::new();
    for k in 0..=iters {
        let frame = input_frame(window, k % t);
        let start = Instant::now();
        let state = engine.per_frame(&frame)?;
        let context: Vec<&super::FrameState> = kept.iter().collect();
        engine.after(&context, &state)?;
        let dt = start.elapsed();
        if k > 0 {
            times.push(dt);
        }
        kept.push_back(state);
        if kept.len() >= t {
            kept.pop_front();
        }
    }
    Ok(percentile_ms(&times, 0.5))
}

/// ms between masks in a sustained stream of `iters` masks on the engine's two stream workers
/// (`None` without): one thread runs the per-frame parts of the frames of `window` in turn, the
/// other the second parts with the T − 1 frames before as context; the time from the first mask
/// to the last over `iters − 1`.
fn time_stream_pipelined(
    engine: &mut dyn super::Engine,
    window: &super::ModelInput,
    iters: usize,
) -> Result<Option<f64>, EngineError> {
    use super::stream::{input_frame, StreamWorkers};
    let t = engine.contract().clip_frames;
    let Some(StreamWorkers {
        mut per_frame,
        mut after,
    }) = engine.stream_workers()
    else {
        return Ok(None);
    };
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<super::FrameState>(0);
        let second = s.spawn(move || -> Result<Option<f64>, EngineError> {
            let mut kept = std::collections::VecDeque::new();
            let mut done = Vec::new();
            for state in rx {
                if kept.len() + 1 == t {
                    let context: Vec<&super::FrameState> = kept.iter().collect();
                    after.after(&context, &state)?;
                    done.push(Instant::now());
                }
                kept.push_back(state);
                if kept.len() + 1 > t {
                    kept.pop_front();
                }
            }
            Ok(match (done.first(), done.last()) {
                (Some(a), Some(b)) if done.len() > 1 => {
                    Some((*b - *a).as_secs_f64() * 1e3 / (done.len() - 1) as f64)
                }
                _ => None,
            })
        });
        // the first T − 1 frames fill the context; the warm-up mask is not counted
        for k in 0..iters + t {
            let state = per_frame.per_frame(&input_frame(window, k % t))?;
            if tx.send(state).is_err() {
                break;
            }
        }
        drop(tx);
        second.join().unwrap_or_else(|_| {
            Err(EngineError::Run {
                backend: "stream",
                message: "the second-part worker panicked".into(),
            })
        })
    })
}

#[cfg(test)]
mod tests {
    use super::max_abs_diff;

    #[test]
    fn max_abs_diff_is_infinite_on_nan_inf_or_size_mismatch() {
        let d = |a: &[f32], b: &[f32]| max_abs_diff(a.iter(), b.iter());
        assert_eq!(d(&[1.0, 2.0, 3.0], &[1.0, 2.5, 2.75]), 0.5);
        assert_eq!(d(&[], &[]), 0.0);
        assert_eq!(d(&[1.0, f32::NAN], &[1.0, 2.0]), f32::INFINITY);
        assert_eq!(d(&[1.0, 2.0], &[f32::NAN, 2.0]), f32::INFINITY);
        assert_eq!(d(&[f32::INFINITY], &[f32::INFINITY]), f32::INFINITY);
        assert_eq!(d(&[1.0, 2.0], &[1.0]), f32::INFINITY);
    }
}
