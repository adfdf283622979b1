use ndarray::Array2;

use super::*;
use crate::metrics::sigmoid;

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
    let map =
        ndarray::Array3::from_shape_fn(
            (2, 2, 2),
            |(k, y, x)| {
                if k == 0 {
                    (y * 2 + x) as f32
                } else {
                    10.0
                }
            },
        );
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
