//! Sounding regions of a frame: the thresholded probability map cut into 8-connected regions,
//! small ones dropped, each with its box, score, mask and simplified outline.

use image::{GrayImage, Luma};
use imageproc::contours::{find_contours, BorderType};
use imageproc::geometry::approximate_polygon_dp;
use imageproc::point::Point;
use imageproc::region_labelling::{connected_components, Connectivity};
use ndarray::ArrayView2;

use super::labels::RegionLabel;
use super::mask::BitMask;
use super::PostConfig;
use crate::metrics::sigmoid;

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
    /// Its labels ([`super::label_region`]; [`RegionLabel::default`] until labelled).
    pub label: RegionLabel,
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
