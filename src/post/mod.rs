//! Post-processing of one frame's model outputs into sounding-object regions.
//!
//! `mask_logits [1,S,S]` → sigmoid → `p > threshold` (AVSBench binarises at 0.5, docs/avsbench.md
//! §6) → connected regions with 8-connectivity (imageproc) → regions smaller than
//! `min_area_fraction` of the frame are dropped. Regions are computed at the model resolution
//! (`S × S` = 224 × 224) and their box and outline are scaled to the source frame (frames are
//! squashed to `S × S` without keeping the aspect ratio, so x and y scale separately).
//!
//! Labels: the frame's ([`frame_labels`]) are the ImageNet name of `unified_label` (chosen by C3IM)
//! and the AudioSet class with the largest `audio_logits`, scored by its sigmoid (YAMNet is
//! multi-label). Each region gets its own ([`label_region`], issue 15): its ImageNet logits are
//! the model's class-activation map `visual_logit_map [1000,h,w]` averaged over the cells the
//! region covers (each cell weighted by its number of region pixels; the head is linear, so this
//! equals the classifier on the region's pooled features), its unified label is C3IM with the
//! frame's audio (`argmax_j softmax(l)^α[j] · c3im_affinity[j]`), and its category comes from
//! [`crate::categories::CategoryMap::classify`].

mod labels;
mod mask;
mod regions;
#[cfg(test)]
mod tests;

pub use self::labels::{
    c3im_label, frame_labels, label_region, label_region_audio, region_logits, FrameLabels,
    RegionLabel,
};
pub use self::mask::{BitMask, Rle};
pub use self::regions::{probabilities, regions, Region};

use serde::{Deserialize, Serialize};

/// Post-processing settings (`[post]` in the config file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PostConfig {
    /// Probability threshold for "sounding" pixels (0–1).
    pub threshold: f32,
    /// Minimum region area as a fraction of the frame (0–1); smaller regions are dropped.
    pub min_area_fraction: f32,
    /// Douglas–Peucker tolerance of the outline polygon, in model-resolution pixels.
    pub outline_tolerance_px: f64,
    /// Keep at most this many regions per frame (largest first).
    pub max_regions: usize,
}

impl Default for PostConfig {
    fn default() -> Self {
        Self {
            threshold: 0.5,
            min_area_fraction: 0.002,
            outline_tolerance_px: 1.0,
            max_regions: 8,
        }
    }
}

impl PostConfig {
    /// Checks value ranges.
    ///
    /// Errors: the first [`PostConfigError`] found.
    pub fn validate(&self) -> Result<(), PostConfigError> {
        if !(0.0..=1.0).contains(&self.threshold) {
            return Err(PostConfigError::Threshold(self.threshold));
        }
        if !(0.0..=1.0).contains(&self.min_area_fraction) {
            return Err(PostConfigError::MinAreaFraction(self.min_area_fraction));
        }
        if self.outline_tolerance_px.is_nan() || self.outline_tolerance_px < 0.0 {
            return Err(PostConfigError::OutlineTolerance);
        }
        if self.max_regions == 0 {
            return Err(PostConfigError::MaxRegions);
        }
        Ok(())
    }
}

/// A `[post]` value out of range ([`PostConfig::validate`]).
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum PostConfigError {
    /// `threshold` outside 0–1.
    #[error("post.threshold = {0}: expected 0..=1")]
    Threshold(f32),
    /// `min_area_fraction` outside 0–1.
    #[error("post.min_area_fraction = {0}: expected 0..=1")]
    MinAreaFraction(f32),
    /// `outline_tolerance_px` negative or NaN.
    #[error("post.outline_tolerance_px must be >= 0")]
    OutlineTolerance,
    /// `max_regions` = 0.
    #[error("post.max_regions must be >= 1")]
    MaxRegions,
}
