//! Post-processing of one frame's model outputs into sounding-object regions.
//!
//! `mask_logits [1,S,S]` → sigmoid → `p > threshold` (AVSBench binarises at 0.5, avsbench.md §6)
//! → connected regions with 8-connectivity (imageproc) → regions smaller than
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

use image::{GrayImage, Luma};
use imageproc::contours::{find_contours, BorderType};
use imageproc::geometry::approximate_polygon_dp;
use imageproc::point::Point;
use imageproc::region_labelling::{connected_components, Connectivity};
use ndarray::{ArrayView1, ArrayView2, ArrayView3};
use serde::{Deserialize, Serialize};

use crate::categories::CategoryMap;
use crate::metrics::sigmoid;

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
    /// Checks value ranges; returns a description of the first problem.
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.threshold) {
            return Err(format!(
                "post.threshold = {}: expected 0..=1",
                self.threshold
            ));
        }
        if !(0.0..=1.0).contains(&self.min_area_fraction) {
            return Err(format!(
                "post.min_area_fraction = {}: expected 0..=1",
                self.min_area_fraction
            ));
        }
        if self.outline_tolerance_px.is_nan() || self.outline_tolerance_px < 0.0 {
            return Err("post.outline_tolerance_px must be >= 0".into());
        }
        if self.max_regions == 0 {
            return Err("post.max_regions must be >= 1".into());
        }
        Ok(())
    }
}

/// A binary mask at the model resolution, row-major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BitMask {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// `height × width` flags, row-major.
    pub bits: Vec<bool>,
}

impl BitMask {
    /// Flag at `(x, y)`; false outside.
    pub fn get(&self, x: u32, y: u32) -> bool {
        x < self.width && y < self.height && self.bits[(y * self.width + x) as usize]
    }

    /// Number of set pixels.
    pub fn count(&self) -> usize {
        self.bits.iter().filter(|&&b| b).count()
    }

    /// Intersection over union with a mask of the same size (0 when both are empty).
    pub fn iou(&self, other: &BitMask) -> f64 {
        let (mut inter, mut union) = (0usize, 0usize);
        for (&a, &b) in self.bits.iter().zip(&other.bits) {
            inter += usize::from(a && b);
            union += usize::from(a || b);
        }
        if union == 0 {
            0.0
        } else {
            inter as f64 / union as f64
        }
    }

    /// COCO-style uncompressed RLE: column-major run lengths, starting with a run of zeros.
    pub fn to_rle(&self) -> Rle {
        let mut counts = vec![];
        let mut cur = false;
        let mut run = 0u32;
        for x in 0..self.width {
            for y in 0..self.height {
                let b = self.get(x, y);
                if b != cur {
                    counts.push(run);
                    run = 0;
                    cur = b;
                }
                run += 1;
            }
        }
        counts.push(run);
        Rle {
            size: [self.height, self.width],
            counts,
        }
    }
}

/// COCO-style uncompressed run-length encoding of a binary mask.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rle {
    /// `[height, width]` of the mask (the model resolution, 224 × 224).
    pub size: [u32; 2],
    /// Alternating run lengths of 0s and 1s in column-major order, starting with 0s.
    pub counts: Vec<u32>,
}

impl Rle {
    /// Decodes back into a mask.
    pub fn to_mask(&self) -> BitMask {
        let [h, w] = self.size;
        let mut bits = vec![false; (h * w) as usize];
        let (mut i, mut val) = (0usize, false);
        for &c in &self.counts {
            for _ in 0..c {
                if i < bits.len() {
                    let (x, y) = (i as u32 / h, i as u32 % h);
                    bits[(y * w + x) as usize] = val;
                }
                i += 1;
            }
            val = !val;
        }
        BitMask {
            width: w,
            height: h,
            bits,
        }
    }
}

/// One connected sounding region of a frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Region {
    /// `[x1, y1, x2, y2]` in source-frame pixels (x2, y2 exclusive).
    pub bbox: [u32; 4],
    /// Fraction of the frame covered by the region (0–1).
    pub area_fraction: f32,
    /// Mean sigmoid probability over the region's pixels (0–1).
    pub score: f32,
    /// Outer outline, simplified, in source-frame pixels (`[x, y]` pairs, closed implicitly).
    pub outline: Vec<[f32; 2]>,
    /// The region's pixels at the model resolution.
    pub mask: BitMask,
    /// Its labels ([`label_region`]; [`RegionLabel::default`] until labelled).
    pub label: RegionLabel,
}

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
        category: categories
            .names
            .get(choice.index)
            .cloned()
            .unwrap_or_else(|| "other".into()),
        category_score: choice.score,
        imagenet_index: j as i64,
        imagenet_label: imagenet.get(j).cloned().unwrap_or_else(|| "?".into()),
        c3im_score,
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
    let (audio_index, logit) =
        audio_logits
            .iter()
            .copied()
            .enumerate()
            .fold(
                (0, f32::NEG_INFINITY),
                |b, (i, x)| if x > b.1 { (i, x) } else { b },
            );
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

/// Probability map of one frame: sigmoid of `logits [S,S]`.
pub fn probabilities(logits: ArrayView2<'_, f32>) -> ndarray::Array2<f32> {
    logits.mapv(sigmoid)
}

/// Sounding regions of one frame from its probability map `prob [S,S]` (model resolution), with
/// boxes and outlines scaled to a `source_w × source_h` frame. Largest region first.
pub fn regions(
    prob: ArrayView2<'_, f32>,
    source_w: u32,
    source_h: u32,
    cfg: &PostConfig,
) -> Vec<Region> {
    let (h, w) = prob.dim();
    let (h32, w32) = (h as u32, w as u32);
    if h == 0 || w == 0 {
        return vec![];
    }
    let binary = GrayImage::from_fn(w32, h32, |x, y| {
        Luma([if prob[[y as usize, x as usize]] > cfg.threshold {
            255
        } else {
            0
        }])
    });
    let labels = connected_components(&binary, Connectivity::Eight, Luma([0u8]));
    // per label: count, prob sum, bbox
    let mut stats: Vec<(usize, f64, [u32; 4])> = Vec::new();
    for (x, y, l) in labels.enumerate_pixels() {
        let l = l[0] as usize;
        if l == 0 {
            continue;
        }
        if stats.len() < l {
            stats.resize(l, (0, 0.0, [u32::MAX, u32::MAX, 0, 0]));
        }
        let s = &mut stats[l - 1];
        s.0 += 1;
        s.1 += f64::from(prob[[y as usize, x as usize]]);
        s.2 = [
            s.2[0].min(x),
            s.2[1].min(y),
            s.2[2].max(x + 1),
            s.2[3].max(y + 1),
        ];
    }
    let total = (h * w) as f32;
    let min_px = (cfg.min_area_fraction * total).ceil() as usize;
    let mut order: Vec<usize> = (0..stats.len())
        .filter(|&i| stats[i].0 >= min_px.max(1))
        .collect();
    order.sort_by(|&a, &b| stats[b].0.cmp(&stats[a].0));
    order.truncate(cfg.max_regions);
    let (sx, sy) = (
        f64::from(source_w) / w as f64,
        f64::from(source_h) / h as f64,
    );
    order
        .into_iter()
        .map(|i| {
            let (count, psum, b) = stats[i];
            let label = i as u32 + 1;
            let mask = BitMask {
                width: w32,
                height: h32,
                bits: labels.pixels().map(|p| p[0] == label).collect(),
            };
            let outline = outline(&mask, b, cfg.outline_tolerance_px)
                .into_iter()
                .map(|[x, y]| [(f64::from(x) * sx) as f32, (f64::from(y) * sy) as f32])
                .collect();
            Region {
                bbox: [
                    (f64::from(b[0]) * sx).floor() as u32,
                    (f64::from(b[1]) * sy).floor() as u32,
                    ((f64::from(b[2]) * sx).ceil() as u32).min(source_w),
                    ((f64::from(b[3]) * sy).ceil() as u32).min(source_h),
                ],
                area_fraction: count as f32 / total,
                score: (psum / count as f64) as f32,
                outline,
                mask,
                label: RegionLabel::default(),
            }
        })
        .collect()
}

/// Outer border of the region inside bbox `b` (model pixels, pixel-corner coordinates), simplified.
fn outline(mask: &BitMask, b: [u32; 4], tolerance: f64) -> Vec<[f32; 2]> {
    // 1-pixel margin so the border tracer sees the region's edge.
    let (bw, bh) = (b[2] - b[0] + 2, b[3] - b[1] + 2);
    let crop = GrayImage::from_fn(bw, bh, |x, y| {
        let inside = x >= 1 && y >= 1 && mask.get(b[0] + x - 1, b[1] + y - 1);
        Luma([if inside { 255 } else { 0 }])
    });
    let contours = find_contours::<i32>(&crop);
    let Some(c) = contours
        .iter()
        .filter(|c| c.border_type == BorderType::Outer)
        .max_by_key(|c| c.points.len())
    else {
        return vec![];
    };
    let pts: Vec<Point<i32>> = if tolerance > 0.0 && c.points.len() > 3 {
        approximate_polygon_dp(&c.points, tolerance, true)
    } else {
        c.points.clone()
    };
    // contour points are pixel indices; +0.5 puts them at pixel centres
    pts.iter()
        .map(|p| {
            [
                (p.x - 1 + b[0] as i32) as f32 + 0.5,
                (p.y - 1 + b[1] as i32) as f32 + 0.5,
            ]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    fn prob_with(rects: &[(usize, usize, usize, usize, f32)], n: usize) -> Array2<f32> {
        let mut p = Array2::<f32>::zeros((n, n));
        for &(x1, y1, x2, y2, v) in rects {
            for y in y1..y2 {
                for x in x1..x2 {
                    p[[y, x]] = v;
                }
            }
        }
        p
    }

    #[test]
    fn two_squares_give_two_regions_scaled_to_the_source() {
        let p = prob_with(&[(10, 20, 30, 40, 0.9), (100, 100, 110, 115, 0.7)], 224);
        let r = regions(p.view(), 448, 224, &PostConfig::default());
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].bbox, [20, 20, 60, 40]); // x doubled, y unchanged
        assert!((r[0].score - 0.9).abs() < 1e-6);
        assert!((r[0].area_fraction - 400.0 / 50176.0).abs() < 1e-6);
        assert_eq!(r[0].mask.count(), 400);
        assert_eq!(r[1].bbox, [200, 100, 220, 115]);
        // outline: the 4 corners of the square (pixel centres), x scaled by 2
        let xs: Vec<f32> = r[0].outline.iter().map(|p| p[0]).collect();
        assert_eq!(r[0].outline.len(), 4, "{:?}", r[0].outline);
        assert!(xs.iter().all(|&x| x == 21.0 || x == 59.0), "{xs:?}");
    }

    #[test]
    fn diagonal_neighbours_join_with_8_connectivity_and_small_regions_drop() {
        let mut p = Array2::<f32>::zeros((20, 20));
        p[[5, 5]] = 1.0;
        p[[6, 6]] = 1.0;
        p[[15, 15]] = 1.0;
        let cfg = PostConfig {
            min_area_fraction: 2.0 / 400.0,
            ..Default::default()
        };
        let r = regions(p.view(), 20, 20, &cfg);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].bbox, [5, 5, 7, 7]);
        let cfg = PostConfig {
            threshold: 0.99,
            min_area_fraction: 0.0,
            ..Default::default()
        };
        // threshold is strict: 1.0 > 0.99, 0 not
        assert_eq!(regions(p.view(), 20, 20, &cfg).len(), 2);
    }

    #[test]
    fn empty_mask_has_no_regions() {
        let p = Array2::<f32>::zeros((224, 224));
        assert!(regions(p.view(), 640, 480, &PostConfig::default()).is_empty());
    }

    #[test]
    fn rle_round_trips_column_major() {
        let mut m = BitMask {
            width: 3,
            height: 2,
            bits: vec![false; 6],
        };
        m.bits[1] = true; // (x=1, y=0)
        m.bits[4] = true; // (x=1, y=1)
        let rle = m.to_rle();
        assert_eq!(rle.size, [2, 3]);
        assert_eq!(rle.counts, vec![2, 2, 2]);
        assert_eq!(rle.to_mask(), m);
        assert!((m.iou(&m) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn region_logits_pool_the_cells_under_the_mask() {
        // 2 classes on a 2x2 grid over a 4x4 mask: class 0 = cell index, class 1 = 10 everywhere
        let map = ndarray::Array3::from_shape_fn((2, 2, 2), |(k, y, x)| {
            if k == 0 {
                (y * 2 + x) as f32
            } else {
                10.0
            }
        });
        let mut m = BitMask {
            width: 4,
            height: 4,
            bits: vec![false; 16],
        };
        // 3 pixels in cell (0,1) [value 1], 1 pixel in cell (1,1) [value 3]
        for (x, y) in [(2, 0), (3, 0), (3, 1), (3, 3)] {
            m.bits[y * 4 + x] = true;
        }
        let l = region_logits(map.view(), &m);
        assert!(
            (l[0] - 1.5).abs() < 1e-6 && (l[1] - 10.0).abs() < 1e-6,
            "{l:?}"
        );
        // an empty mask pools every cell: the frame's logits
        let empty = BitMask {
            width: 4,
            height: 4,
            bits: vec![false; 16],
        };
        assert!((region_logits(map.view(), &empty)[0] - 1.5).abs() < 1e-6);
    }

    #[test]
    fn c3im_label_weights_the_flattened_visual_distribution_by_the_affinity() {
        // v = softmax([ln 0.5, ln 0.3, ln 0.2])^0.1; affinity favours class 2
        let logits = [0.5f32.ln(), 0.3f32.ln(), 0.2f32.ln()];
        let r = ndarray::arr1(&[0.1f32, 0.1, 0.2]);
        let (j, s) = c3im_label(&logits, r.view(), 0.1);
        assert_eq!(j, 2);
        assert!((s - 0.2 * 0.2f32.powf(0.1)).abs() < 1e-6);
        // ties: the first index
        let (j, _) = c3im_label(&[0.0, 0.0], ndarray::arr1(&[1.0f32, 1.0]).view(), 0.1);
        assert_eq!(j, 0);
    }

    #[test]
    fn labels_pick_the_top_audio_class() {
        let imagenet: Vec<String> = (0..3).map(|i| format!("v{i}")).collect();
        let audioset: Vec<String> = (0..3).map(|i| format!("a{i}")).collect();
        let logits = ndarray::arr1(&[0.0f32, 2.0, -1.0]);
        let l = frame_labels(2, 0.4, logits.view(), &imagenet, &audioset);
        assert_eq!(
            (l.visual_label.as_str(), l.audio_label.as_str()),
            ("v2", "a1")
        );
        assert!((l.audio_score - sigmoid(2.0)).abs() < 1e-6);
        assert_eq!(
            frame_labels(7, 0.0, logits.view(), &imagenet, &audioset).visual_label,
            "?"
        );
    }
}
