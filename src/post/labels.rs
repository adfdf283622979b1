//! Labels of a frame ([`frame_labels`]: the classifier heads) and of each region
//! ([`label_region`], issue 15: the class-activation map pooled over the region, C3IM with the
//! frame's audio, the category vocabulary).

use ndarray::{ArrayView1, ArrayView3};

use super::mask::BitMask;
use crate::categories::CategoryMap;
use crate::metrics::sigmoid;
use crate::util::stats::first_max;

/// Labels of one region (issue 15).
#[derive(Debug, Clone, PartialEq)]
pub struct RegionLabel {
    /// Category name (the vocabulary of `c3n.categories`), e.g. `"dog"`; empty = not labelled.
    pub category: String,
    /// Category score (0–1, [`crate::categories::Choice::score`]).
    pub category_score: f32,
    /// ImageNet index of the region's C3IM unified label (−1 = not labelled).
    pub imagenet_index: i64,
    /// Its ImageNet name.
    pub imagenet_label: String,
    /// The region's C3IM consensus `max_j softmax(l)^α[j] · r[j]`.
    pub c3im_score: f32,
}

impl Default for RegionLabel {
    fn default() -> Self {
        Self {
            category: String::new(),
            category_score: 0.0,
            imagenet_index: -1,
            imagenet_label: String::new(),
            c3im_score: 0.0,
        }
    }
}

/// The region's ImageNet logits: `logit_map [C,h,w]` averaged over the cells under `mask`
/// (`H × W` model pixels; pixel `(x, y)` lies in cell `(y·h/H, x·w/W)`), each cell weighted by its
/// number of mask pixels. An empty mask gives the mean over all cells (the frame's logits).
pub fn region_logits(logit_map: ArrayView3<'_, f32>, mask: &BitMask) -> Vec<f32> {
    let (c, h, w) = logit_map.dim();
    let mut weight = vec![0u32; h * w];
    let (mh, mw) = (mask.height as usize, mask.width as usize);
    if h > 0 && w > 0 && mh > 0 && mw > 0 {
        for y in 0..mh {
            let cy = y * h / mh;
            for x in 0..mw {
                if mask.bits[y * mw + x] {
                    weight[cy * w + x * w / mw] += 1;
                }
            }
        }
    }
    if weight.iter().all(|&n| n == 0) {
        weight.iter_mut().for_each(|n| *n = 1);
    }
    let total: f64 = weight.iter().map(|&n| f64::from(n)).sum();
    (0..c)
        .map(|k| {
            let plane = logit_map.index_axis(ndarray::Axis(0), k);
            let s: f64 = plane
                .iter()
                .zip(&weight)
                .map(|(&l, &n)| f64::from(l) * f64::from(n))
                .sum();
            (s / total) as f32
        })
        .collect()
}

/// C3IM on a visual distribution: `(argmax_j v[j]·r[j], max)` with `v = softmax(logits)^alpha`
/// (first on ties), `r` = the frame's `c3im_affinity` row.
pub fn c3im_label(logits: &[f32], affinity: ArrayView1<'_, f32>, alpha: f32) -> (usize, f32) {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let lse = f64::from(max)
        + logits
            .iter()
            .map(|&l| (f64::from(l) - f64::from(max)).exp())
            .sum::<f64>()
            .ln();
    let mut best = (0usize, f64::NEG_INFINITY);
    for (j, (&l, &r)) in logits.iter().zip(affinity.iter()).enumerate() {
        let s = (f64::from(alpha) * (f64::from(l) - lse)).exp() * f64::from(r);
        if s > best.1 {
            best = (j, s);
        }
    }
    (best.0, best.1 as f32)
}

/// Labels one region of a frame: the region's logits ([`region_logits`]), its C3IM unified label
/// with the frame's audio ([`c3im_label`]) and its category ([`CategoryMap::classify`]).
/// `logit_map [1000,h,w]`, `affinity [1000]`, `audio_logits [521]` are the frame's rows of the
/// model outputs; `imagenet` the class names.
pub fn label_region(
    mask: &BitMask,
    logit_map: ArrayView3<'_, f32>,
    affinity: ArrayView1<'_, f32>,
    audio_logits: ArrayView1<'_, f32>,
    alpha: f32,
    imagenet: &[String],
    categories: &CategoryMap,
) -> RegionLabel {
    let logits = region_logits(logit_map, mask);
    let (j, c3im_score) = c3im_label(&logits, affinity, alpha);
    let audio: Vec<f32> = audio_logits.to_vec();
    let choice = categories.classify(&logits, &audio, j);
    RegionLabel {
        category: categories.name(choice.index),
        category_score: choice.score,
        imagenet_index: j as i64,
        imagenet_label: imagenet.get(j).cloned().unwrap_or_else(|| "?".into()),
        c3im_score,
    }
}

/// Labels a region of a model without C3IM outputs (schema 3, no ImageNet head, e.g. the
/// AVSBench baseline) from the audio side alone: the category of the frame's top AudioSet class
/// ([`CategoryMap::classify_audio`]; `other` where it has none), scored by that class's sigmoid.
/// Every region of the frame gets the same label; the ImageNet fields stay unset (index −1).
/// `audio_logits [N]` is the frame's row (N = 521 or 527).
pub fn label_region_audio(
    audio_logits: ArrayView1<'_, f32>,
    categories: &CategoryMap,
) -> RegionLabel {
    let audio: Vec<f32> = audio_logits.to_vec();
    match categories.classify_audio(&audio) {
        Some((_, choice)) => RegionLabel {
            category: categories.name(choice.index),
            category_score: choice.score,
            ..RegionLabel::default()
        },
        None => RegionLabel::default(),
    }
}

/// Frame-level labels from the classifier heads.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameLabels {
    /// ImageNet index chosen by C3IM (`unified_label`).
    pub visual_index: i64,
    /// Its ImageNet name (`"?"` if out of range).
    pub visual_label: String,
    /// AudioSet index with the largest logit.
    pub audio_index: usize,
    /// Its AudioSet name.
    pub audio_label: String,
    /// Sigmoid of that logit (0–1).
    pub audio_score: f32,
    /// C3IM consensus score.
    pub c3im_score: f32,
}

/// Labels of frame `t` of an inference.
pub fn frame_labels(
    unified_label: i64,
    c3im_score: f32,
    audio_logits: ndarray::ArrayView1<'_, f32>,
    imagenet: &[String],
    audioset: &[String],
) -> FrameLabels {
    let (audio_index, logit) = first_max(audio_logits.iter());
    let name = |v: &[String], i: usize| v.get(i).cloned().unwrap_or_else(|| "?".into());
    FrameLabels {
        visual_index: unified_label,
        visual_label: usize::try_from(unified_label)
            .map(|i| name(imagenet, i))
            .unwrap_or_else(|_| "?".into()),
        audio_index,
        audio_label: name(audioset, audio_index),
        audio_score: sigmoid(logit),
        c3im_score,
    }
}
