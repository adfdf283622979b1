//! AVSBench metrics, exactly as docs/avsbench.md §6 (AVSBench
//! `avs_scripts/avs_s4/utils/utility.py`: `mask_iou`, `Eval_Fmeasure`, `_eval_pr`; identical in
//! AVS-C3N).
//!
//! Inputs are per-frame mask **logits** `f32 [H,W]` and binary ground truth `bool [H,W]`.
//!
//! * **mIoU**: prediction = `sigmoid(logit) > 0.5` (strict; sigmoid in `f32` like torch, so a
//!   logit that rounds to sigmoid 0.5 is negative). Frame IoU = `Σ pred∧gt / (Σ pred∨gt + 1e-7)`;
//!   if the GT frame is empty, IoU = `#(pred=0 ∧ gt=0) / (H·W + 1e-7)`. Batch value = mean over the
//!   batch's frames; final = mean of batch values (AverageMeter).
//! * **F-score**: `p = sigmoid(logit)`, 255 thresholds `τ = linspace(0, 1−1e-10, 255)` (in `f32`
//!   as torch builds them, so the last one is 1.0; see [`thresholds`]), prediction `p ≥ τ`;
//!   `P = TP/(#pred + 1e-20)`, `R = TP/(#gt + 1e-20)`, `F = (1+β²)PR/(β²P + R)`, β² = 0.3, NaN → 0.
//!   Frames with empty GT are skipped; the curves of the kept frames of a batch are averaged and
//!   the batch score is the max over τ; a batch with no kept frame scores 0 and still counts;
//!   final = mean over batches. F therefore depends on the batch size: AVSBench's `test.sh` uses
//!   4 clips (20 frames) per batch ([`AVSBENCH_BATCH_CLIPS`]); `fscore_per_frame` uses batch = 1 frame.
//!
//! P, R and F are computed in `f64` (torch: `f32`), so results can differ from the Python numbers
//! in the 7th significant digit.

use ndarray::{ArrayView2, ArrayView3, Axis};

/// β² of the F-measure.
pub const BETA2: f64 = 0.3;
/// Number of F-measure thresholds.
pub const N_THRESHOLDS: usize = 255;
/// IoU denominator epsilon.
pub const IOU_EPS: f64 = 1e-7;
/// Clips per batch in AVSBench's `test.sh` (the batch of the reported F-score).
pub const AVSBENCH_BATCH_CLIPS: usize = 4;

/// Shape mismatch between prediction and ground truth.
#[derive(Debug, thiserror::Error)]
#[error("prediction shape {pred:?} does not match ground-truth shape {gt:?}")]
pub struct ShapeMismatch {
    /// Prediction shape.
    pub pred: Vec<usize>,
    /// Ground-truth shape.
    pub gt: Vec<usize>,
}

/// `sigmoid` in `f32`, as torch computes it.
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// The 255 F-measure thresholds `linspace(0, 1 − 1e-10, 255)` exactly as torch (2.x, CPU) builds
/// them in `f32`: the end point rounds to 1.0, `step = (end − start) / 254` in `f32`, the first
/// half is `start + step·i` and the second half `end − step·(254 − i)`, each with one rounding
/// (fused multiply-add). Checked bit for bit against `torch.linspace` in the unit tests.
pub fn thresholds() -> Vec<f32> {
    let (start, end) = (0.0f32, (1.0f64 - 1e-10) as f32);
    let last = N_THRESHOLDS - 1;
    let step = (end - start) / last as f32;
    (0..N_THRESHOLDS)
        .map(|i| {
            if i < N_THRESHOLDS / 2 {
                step.mul_add(i as f32, start)
            } else {
                (-step).mul_add((last - i) as f32, end)
            }
        })
        .collect()
}

/// IoU of one frame (`logits f32 [H,W]`, `gt bool [H,W]`), with AVSBench's empty-GT rule.
pub fn frame_iou(
    logits: ArrayView2<'_, f32>,
    gt: ArrayView2<'_, bool>,
) -> Result<f64, ShapeMismatch> {
    check(logits.shape(), gt.shape())?;
    let (mut inter, mut union, mut both_neg, mut n_gt) = (0u64, 0u64, 0u64, 0u64);
    for (&l, &g) in logits.iter().zip(gt.iter()) {
        let p = sigmoid(l) > 0.5;
        inter += u64::from(p && g);
        union += u64::from(p || g);
        both_neg += u64::from(!p && !g);
        n_gt += u64::from(g);
    }
    Ok(if n_gt == 0 {
        both_neg as f64 / (logits.len() as f64 + IOU_EPS)
    } else {
        inter as f64 / (union as f64 + IOU_EPS)
    })
}

/// Mean IoU over the frames of a batch (`[N,H,W]`); `mask_iou` in AVSBench. 0 for N = 0.
pub fn mask_iou(
    logits: ArrayView3<'_, f32>,
    gt: ArrayView3<'_, bool>,
) -> Result<f64, ShapeMismatch> {
    check(logits.shape(), gt.shape())?;
    let n = logits.len_of(Axis(0));
    if n == 0 {
        return Ok(0.0);
    }
    let mut sum = 0.0;
    for (l, g) in logits.outer_iter().zip(gt.outer_iter()) {
        sum += frame_iou(l, g)?;
    }
    Ok(sum / n as f64)
}

/// F(τ) curve (255 values) of one frame, or `None` when its GT is empty (the frame is skipped).
pub fn frame_f_curve(
    logits: ArrayView2<'_, f32>,
    gt: ArrayView2<'_, bool>,
) -> Result<Option<Vec<f64>>, ShapeMismatch> {
    check(logits.shape(), gt.shape())?;
    let th = thresholds();
    // hist[n]: pixels predicted positive at exactly the first n thresholds (τ_0..τ_{n-1} ≤ p).
    let mut hist_pred = vec![0u64; N_THRESHOLDS + 1];
    let mut hist_tp = vec![0u64; N_THRESHOLDS + 1];
    let mut n_gt = 0u64;
    for (&l, &g) in logits.iter().zip(gt.iter()) {
        let p = sigmoid(l);
        let n = th.partition_point(|&t| t <= p);
        hist_pred[n] += 1;
        if g {
            hist_tp[n] += 1;
            n_gt += 1;
        }
    }
    if n_gt == 0 {
        return Ok(None);
    }
    let mut curve = vec![0.0; N_THRESHOLDS];
    let (mut n_pred, mut tp) = (0u64, 0u64);
    for k in (0..N_THRESHOLDS).rev() {
        // positive at τ_k  <=>  n > k
        n_pred += hist_pred[k + 1];
        tp += hist_tp[k + 1];
        let prec = tp as f64 / (n_pred as f64 + 1e-20);
        let rec = tp as f64 / (n_gt as f64 + 1e-20);
        let f = (1.0 + BETA2) * prec * rec / (BETA2 * prec + rec);
        curve[k] = if f.is_nan() { 0.0 } else { f };
    }
    Ok(Some(curve))
}

/// F-score of one batch of frames (`[N,H,W]`); `Eval_Fmeasure` in AVSBench. 0 if no frame has GT.
pub fn fmeasure(
    logits: ArrayView3<'_, f32>,
    gt: ArrayView3<'_, bool>,
) -> Result<f64, ShapeMismatch> {
    check(logits.shape(), gt.shape())?;
    let mut acc = CurveMean::default();
    for (l, g) in logits.outer_iter().zip(gt.outer_iter()) {
        if let Some(c) = frame_f_curve(l, g)? {
            acc.add(&c);
        }
    }
    Ok(acc.max())
}

fn check(pred: &[usize], gt: &[usize]) -> Result<(), ShapeMismatch> {
    if pred == gt {
        Ok(())
    } else {
        Err(ShapeMismatch {
            pred: pred.to_vec(),
            gt: gt.to_vec(),
        })
    }
}

/// Running mean of F curves; `max()` = max over τ of the mean curve (0 when empty).
#[derive(Debug, Default, Clone)]
struct CurveMean {
    sum: Vec<f64>,
    n: usize,
}

impl CurveMean {
    fn add(&mut self, c: &[f64]) {
        if self.sum.is_empty() {
            self.sum = vec![0.0; c.len()];
        }
        self.sum.iter_mut().zip(c).for_each(|(s, x)| *s += x);
        self.n += 1;
    }
    fn max(&self) -> f64 {
        if self.n == 0 {
            return 0.0;
        }
        self.sum
            .iter()
            .map(|s| s / self.n as f64)
            .fold(0.0, f64::max)
    }
}

/// Final metric values of one evaluation run.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Summary {
    /// mIoU (0–1): mean over batches of `clips_per_batch` clips of the per-frame mean IoU.
    pub miou: f64,
    /// F-score (0–1) with batches of `clips_per_batch` clips (AVSBench protocol: 4).
    pub fscore: f64,
    /// F-score (0–1) with batch = 1 frame (empty-GT frames score 0 and count).
    pub fscore_per_frame: f64,
    /// Clips seen.
    pub clips: usize,
    /// Frames seen.
    pub frames: usize,
}

/// Accumulates AVSBench metrics clip by clip, in dataset order (batches are consecutive clips,
/// the last batch may be smaller, as with AVSBench's non-shuffled `DataLoader`).
#[derive(Debug, Clone)]
pub struct Accumulator {
    clips_per_batch: usize,
    batch_clips: usize,
    batch_iou_sum: f64,
    batch_frames: usize,
    batch_curve: CurveMean,
    iou_batches: Vec<f64>,
    f_batches: Vec<f64>,
    frame_f_sum: f64,
    clips: usize,
    frames: usize,
}

impl Accumulator {
    /// New accumulator; `clips_per_batch` is clamped to ≥ 1.
    pub fn new(clips_per_batch: usize) -> Self {
        Self {
            clips_per_batch: clips_per_batch.max(1),
            batch_clips: 0,
            batch_iou_sum: 0.0,
            batch_frames: 0,
            batch_curve: CurveMean::default(),
            iou_batches: Vec::new(),
            f_batches: Vec::new(),
            frame_f_sum: 0.0,
            clips: 0,
            frames: 0,
        }
    }

    /// Adds one clip: `logits f32 [T,H,W]`, `gt bool [T,H,W]`.
    pub fn push_clip(
        &mut self,
        logits: ArrayView3<'_, f32>,
        gt: ArrayView3<'_, bool>,
    ) -> Result<(), ShapeMismatch> {
        check(logits.shape(), gt.shape())?;
        for (l, g) in logits.outer_iter().zip(gt.outer_iter()) {
            self.batch_iou_sum += frame_iou(l, g)?;
            self.batch_frames += 1;
            let curve = frame_f_curve(l, g)?;
            if let Some(c) = &curve {
                let mut one = CurveMean::default();
                one.add(c);
                self.frame_f_sum += one.max();
                self.batch_curve.add(c);
            }
            self.frames += 1;
        }
        self.clips += 1;
        self.batch_clips += 1;
        if self.batch_clips == self.clips_per_batch {
            self.close_batch();
        }
        Ok(())
    }

    fn close_batch(&mut self) {
        if self.batch_clips == 0 {
            return;
        }
        let iou = if self.batch_frames == 0 {
            0.0
        } else {
            self.batch_iou_sum / self.batch_frames as f64
        };
        self.iou_batches.push(iou);
        self.f_batches.push(self.batch_curve.max());
        self.batch_clips = 0;
        self.batch_iou_sum = 0.0;
        self.batch_frames = 0;
        self.batch_curve = CurveMean::default();
    }

    /// Closes the last (partial) batch and returns the metrics (all 0 when nothing was pushed).
    pub fn finish(mut self) -> Summary {
        self.close_batch();
        let mean = |v: &[f64]| {
            if v.is_empty() {
                0.0
            } else {
                v.iter().sum::<f64>() / v.len() as f64
            }
        };
        Summary {
            miou: mean(&self.iou_batches),
            fscore: mean(&self.f_batches),
            fscore_per_frame: if self.frames == 0 {
                0.0
            } else {
                self.frame_f_sum / self.frames as f64
            },
            clips: self.clips,
            frames: self.frames,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{arr2, arr3, Array3};

    fn logit(p: f32) -> f32 {
        (p / (1.0 - p)).ln()
    }

    #[test]
    fn thresholds_match_torch_linspace() {
        let t = thresholds();
        assert_eq!(t.len(), 255);
        assert_eq!(t[0], 0.0);
        assert_eq!(t[254], 1.0); // 1 - 1e-10 rounds to 1.0 in f32
        assert!((f64::from(t[127]) - 127.0 / 254.0).abs() < 1e-7);
        // bit patterns of torch.linspace(0, 1 - 1e-10, 255) (torch 2.14, CPU) where a plain
        // f64 linspace rounded to f32, or an unfused f32 computation, differs
        for (i, bits) in [
            (9, 0x3d11_2244u32),
            (13, 0x3d51_a346),
            (104, 0x3ed1_a346),
            (143, 0x3f10_2041),
            (174, 0x3f2f_5ebe),
            (236, 0x3f6d_dbb7),
            (238, 0x3f6f_dfc0),
        ] {
            assert_eq!(t[i].to_bits(), bits, "threshold {i}");
        }
        let sum: u64 = t.iter().map(|x| u64::from(x.to_bits())).sum();
        assert_eq!(sum, 0x3e_453c_78ee, "sum of all 255 bit patterns");
    }

    #[test]
    fn iou_basic_and_strict_threshold() {
        // pred = (0,0),(1,0); gt = (0,0),(0,1) -> inter 1, union 3
        let l = arr2(&[[1.0f32, -1.0], [1.0, -1.0]]);
        let g = arr2(&[[true, true], [false, false]]);
        let v = frame_iou(l.view(), g.view()).unwrap();
        assert!((v - 1.0 / (3.0 + 1e-7)).abs() < 1e-12);
        // logit 0 -> sigmoid exactly 0.5 -> NOT positive (strict >)
        let l = arr2(&[[0.0f32, 0.0], [0.0, 0.0]]);
        let g = arr2(&[[true, false], [false, false]]);
        assert_eq!(frame_iou(l.view(), g.view()).unwrap(), 0.0);
    }

    #[test]
    fn iou_empty_gt_rule() {
        // empty GT: IoU = true negatives / all pixels, not 0/0 and not 0
        let l = arr2(&[[5.0f32, -5.0], [-5.0, -5.0]]);
        let g = arr2(&[[false, false], [false, false]]);
        let v = frame_iou(l.view(), g.view()).unwrap();
        assert!((v - 3.0 / (4.0 + 1e-7)).abs() < 1e-12);
        // all-negative prediction on empty GT is (almost) 1
        let l = Array3::<f32>::from_elem((1, 2, 2), -3.0);
        let g = Array3::<bool>::from_elem((1, 2, 2), false);
        assert!((mask_iou(l.view(), g.view()).unwrap() - 4.0 / (4.0 + 1e-7)).abs() < 1e-12);
    }

    /// frame A: gt [1,0,0,0], p [.9,.2,.2,.2]; frame B: gt [1,1,0,0], p [.9,.1,.9,.1]; frame C: empty gt.
    fn abc() -> (Array3<f32>, Array3<bool>) {
        let p = arr3(&[
            [[0.9f32, 0.2], [0.2, 0.2]],
            [[0.9, 0.1], [0.9, 0.1]],
            [[0.9, 0.9], [0.1, 0.1]],
        ]);
        let g = arr3(&[
            [[true, false], [false, false]],
            [[true, true], [false, false]],
            [[false, false], [false, false]],
        ]);
        (p.mapv(logit), g)
    }

    #[test]
    fn fmeasure_hand_computed() {
        let (l, g) = abc();
        // A: tau<=.2: P=1/4,R=1 -> 1.3*.25/(1.075)=0.302326; .2<tau<=.9: F=1; tau>.9: NaN->0 => max 1
        let fa = fmeasure(
            l.slice(ndarray::s![0..1, .., ..]),
            g.slice(ndarray::s![0..1, .., ..]),
        )
        .unwrap();
        assert!((fa - 1.0).abs() < 1e-12, "{fa}");
        // B: tau<=.1: P=.5,R=1 -> .65/1.15=0.565217; .1<tau<=.9: P=R=.5 -> F=.5 => max .565217
        let fb = fmeasure(
            l.slice(ndarray::s![1..2, .., ..]),
            g.slice(ndarray::s![1..2, .., ..]),
        )
        .unwrap();
        assert!((fb - 0.65 / 1.15).abs() < 1e-12, "{fb}");
        // batch {A,B,C}: C skipped; mean curve max is at .2<tau<=.9: (1 + .5)/2 = .75 (not mean of maxima .7826)
        let fabc = fmeasure(l.view(), g.view()).unwrap();
        assert!((fabc - 0.75).abs() < 1e-12, "{fabc}");
    }

    #[test]
    fn fmeasure_batch_without_gt_scores_zero_and_counts() {
        let (l, g) = abc();
        let c = ndarray::s![2..3, .., ..];
        assert_eq!(fmeasure(l.slice(c), g.slice(c)).unwrap(), 0.0);
        // per-frame protocol: A=1, B=.565217, C=0 (counted) -> mean over 3 frames
        let mut acc = Accumulator::new(1);
        for i in 0..3 {
            let s = ndarray::s![i..i + 1, .., ..];
            acc.push_clip(l.slice(s), g.slice(s)).unwrap();
        }
        let s = acc.finish();
        assert!((s.fscore - (1.0 + 0.65 / 1.15) / 3.0).abs() < 1e-12);
        assert!((s.fscore_per_frame - (1.0 + 0.65 / 1.15) / 3.0).abs() < 1e-12);
        assert_eq!((s.clips, s.frames), (3, 3));
    }

    #[test]
    fn accumulator_batches_of_clips() {
        let (l, g) = abc();
        // one "clip" of 3 frames per push, 2 clips per batch, 3 clips -> batches {c1,c2}, {c3}
        let mut acc = Accumulator::new(2);
        for _ in 0..3 {
            acc.push_clip(l.view(), g.view()).unwrap();
        }
        let s = acc.finish();
        assert!((s.fscore - 0.75).abs() < 1e-12);
        // per-frame F ignores batching: (1 + .565217 + 0) / 3
        assert!((s.fscore_per_frame - (1.0 + 0.65 / 1.15) / 3.0).abs() < 1e-12);
        // IoU (p > .5): A: pred{0} gt{0} -> 1; B: pred{0,2} gt{0,1} -> 1/3; C: empty gt, pred{0,1} -> 2/4
        let clip_iou = (1.0 / (1.0 + 1e-7) + 1.0 / (3.0 + 1e-7) + 2.0 / (4.0 + 1e-7)) / 3.0;
        assert!((s.miou - clip_iou).abs() < 1e-12);
        assert_eq!((s.clips, s.frames), (3, 9));
    }

    #[test]
    fn empty_accumulator_and_shape_mismatch() {
        let s = Accumulator::new(4).finish();
        assert_eq!(
            (s.miou, s.fscore, s.fscore_per_frame, s.clips),
            (0.0, 0.0, 0.0, 0)
        );
        let l = Array3::<f32>::zeros((1, 2, 2));
        let g = Array3::<bool>::from_elem((1, 3, 2), false);
        assert!(mask_iou(l.view(), g.view()).is_err());
    }
}
