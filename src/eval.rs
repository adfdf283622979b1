//! AVSBench evaluation: run the model over every clip of a split and compute the metrics.
//!
//! Per clip (docs/avsbench.md §3–6): the WAV is read, down-mixed, resampled to the contract's
//! rate and cut into `clip_patches(wave, 5, 1.0 s)`; the 5 frame PNGs are normalised with the
//! contract's mean/std; the model runs on windows of `T = c3n.clip_frames` frames (one call for
//! T = 5, five calls for T = 1); the 5 mask-logit maps are scored against the 5 binarised GT
//! masks. Clips are processed in CSV order so that the 4-clip F-score batches match AVSBench's
//! `test.sh`.

use std::path::PathBuf;

use ndarray::{s, Array3, Array4};
use tracing::{info, warn};

use crate::audio::{self, AudioError};
use crate::dataset::{
    self, Clip, DatasetError, Subset, SubsetFilter, FRAMES_PER_CLIP, FRAME_SLOT_S,
};
use crate::engine::{Engine, EngineError, ModelInput};
use crate::frontend::image::ImageError;
use crate::frontend::LogMel;
use crate::metrics::{self, Accumulator, ShapeMismatch};

/// Errors of an evaluation run.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// Model loading or inference.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// Dataset layout / CSV / masks.
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    /// Audio file.
    #[error(transparent)]
    Audio(#[from] AudioError),
    /// Frame file.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// The model's T does not divide the 5 frames of a clip.
    #[error(
        "model has T = {0} frames per call; AVSBench clips have 5 frames, so T must be 1 or 5"
    )]
    ClipFrames(usize),
    /// The model's front-end parameters are inconsistent.
    #[error("model front end: {0}")]
    Frontend(String),
    /// The split of a subset lists no clip: a metric over nothing is not 0, it is no result.
    #[error(
        "no {split} clips in subset {subset}: nothing to evaluate (check the CSV and --split)"
    )]
    NoClips {
        /// The subset.
        subset: Subset,
        /// The split.
        split: String,
    },
    /// A mask does not have the model's output size.
    #[error("mask {path}: {source}")]
    MaskSize {
        /// Mask file.
        path: PathBuf,
        /// Shapes.
        #[source]
        source: ShapeMismatch,
    },
}

/// Metrics of one subset; serialised as one JSON object (`subset`, `miou`, `fscore`,
/// `fscore_per_frame`, `clips`, `frames`; metric values 0–1).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SubsetReport {
    /// `s4` or `ms3`.
    pub subset: Subset,
    /// Metric values.
    #[serde(flatten)]
    pub summary: metrics::Summary,
}

/// What to evaluate.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// AVSBench root (holding `Single-source/` and/or `Multi-sources/`).
    pub dataset_dir: PathBuf,
    /// Split name (`test`, `val`, `train`).
    pub split: String,
    /// Subsets.
    pub subset: SubsetFilter,
    /// Draw a progress bar on stderr.
    pub progress: bool,
}

/// Everything needed to turn a clip into model windows.
struct ClipLoader {
    logmel: LogMel,
    sample_rate: u32,
    norm: crate::frontend::ImageNorm,
}

impl ClipLoader {
    /// Inputs for all 5 frames of a clip: frames `[5,3,S,S]`, patches `[5,1,96,64]`.
    fn inputs(&self, clip: &Clip) -> Result<ModelInput, EvalError> {
        let n = self.norm.size as usize;
        let mut frames = Array4::<f32>::zeros((FRAMES_PER_CLIP, 3, n, n));
        for (i, path) in clip.frames.iter().enumerate() {
            let img = crate::frontend::image::read_rgb(path)?;
            self.norm
                .write_chw(&img, frames.slice_mut(s![i, .., .., ..]));
        }
        let wave = audio::load_mono(&clip.wav, self.sample_rate)?;
        let audio_logmel = self.logmel.clip_input(&wave, FRAMES_PER_CLIP, FRAME_SLOT_S);
        Ok(ModelInput {
            frames,
            audio_logmel,
        })
    }

    /// Binarised GT masks `[5,S,S]`.
    fn masks(&self, clip: &Clip) -> Result<Array3<bool>, EvalError> {
        let n = self.norm.size as usize;
        let mut gt = Array3::from_elem((FRAMES_PER_CLIP, n, n), false);
        for (i, path) in clip.masks.iter().enumerate() {
            let m = dataset::load_mask(path)?;
            if m.dim() != (n, n) {
                let source = ShapeMismatch {
                    pred: vec![n, n],
                    gt: m.shape().to_vec(),
                };
                return Err(EvalError::MaskSize {
                    path: path.clone(),
                    source,
                });
            }
            gt.slice_mut(s![i, .., ..]).assign(&m);
        }
        Ok(gt)
    }
}

/// Runs `engine` over one clip; returns mask logits `[5,S,S]`.
pub fn infer_clip(engine: &mut dyn Engine, input: &ModelInput) -> Result<Array3<f32>, EvalError> {
    let t = engine.contract().clip_frames;
    if t == 0 || !FRAMES_PER_CLIP.is_multiple_of(t) {
        return Err(EvalError::ClipFrames(t));
    }
    let n = engine.contract().image.size as usize;
    let mut logits = Array3::<f32>::zeros((FRAMES_PER_CLIP, n, n));
    for start in (0..FRAMES_PER_CLIP).step_by(t) {
        let window = ModelInput {
            frames: input
                .frames
                .slice(s![start..start + t, .., .., ..])
                .to_owned(),
            audio_logmel: input
                .audio_logmel
                .slice(s![start..start + t, .., .., ..])
                .to_owned(),
        };
        let out = engine.infer(&window)?;
        logits
            .slice_mut(s![start..start + t, .., ..])
            .assign(&out.mask_logits.slice(s![.., 0, .., ..]));
    }
    Ok(logits)
}

fn progress_bar(len: usize, subset: Subset, enabled: bool) -> indicatif::ProgressBar {
    if !enabled {
        return indicatif::ProgressBar::hidden();
    }
    let pb = indicatif::ProgressBar::new(len as u64);
    let style = indicatif::ProgressStyle::with_template(
        "{prefix:>4} [{elapsed_precise}] {wide_bar} {pos}/{len} clips ({per_sec}, ETA {eta})",
    )
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    pb.set_style(style);
    pb.set_prefix(subset.to_string());
    pb
}

/// Evaluates `engine` on the requested subsets; one report per subset found.
pub fn evaluate(
    engine: &mut dyn Engine,
    opts: &EvalOptions,
) -> Result<Vec<SubsetReport>, EvalError> {
    let contract = engine.contract().clone();
    if contract.clip_frames == 0 || !FRAMES_PER_CLIP.is_multiple_of(contract.clip_frames) {
        return Err(EvalError::ClipFrames(contract.clip_frames));
    }
    if (contract.clip_rate_hz - 1.0 / FRAME_SLOT_S).abs() > 1e-9 {
        warn!(
            clip_rate_hz = contract.clip_rate_hz,
            "model expects a different frame rate than AVSBench's 1 frame/s; evaluating at 1 frame/s anyway"
        );
    }
    let loader = ClipLoader {
        logmel: LogMel::new(contract.frontend.clone())
            .map_err(|e| EvalError::Frontend(e.to_string()))?,
        sample_rate: contract.frontend.sample_rate,
        norm: contract.image.clone(),
    };
    let mut reports = Vec::new();
    for subset in dataset::available_subsets(&opts.dataset_dir, opts.subset)? {
        let clips = dataset::load_clips(&opts.dataset_dir, subset, &opts.split)?;
        if clips.is_empty() {
            return Err(EvalError::NoClips {
                subset,
                split: opts.split.clone(),
            });
        }
        info!(%subset, split = %opts.split, clips = clips.len(), "evaluating");
        let pb = progress_bar(clips.len(), subset, opts.progress);
        let mut acc = Accumulator::new(metrics::AVSBENCH_BATCH_CLIPS);
        for clip in &clips {
            let input = loader.inputs(clip)?;
            let gt = loader.masks(clip)?;
            let logits = infer_clip(engine, &input)?;
            acc.push_clip(logits.view(), gt.view())
                .map_err(|source| EvalError::MaskSize {
                    path: clip.masks[0].clone(),
                    source,
                })?;
            pb.inc(1);
        }
        pb.finish_and_clear();
        reports.push(SubsetReport {
            subset,
            summary: acc.finish(),
        });
    }
    Ok(reports)
}
