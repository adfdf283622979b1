"""AVSBench metrics (c3n.eval.metrics) against hand-computed values (docs/avsbench.md §6)."""
import math

import numpy as np
import pytest
import torch

from c3n.eval.metrics import AvsMetrics, frame_ious, fscore, mask_iou, thresholds


def logit(p):
    p = np.asarray(p, dtype=np.float64)
    return np.log(p / (1 - p)).astype(np.float32)


def f_of(p, r, beta2=0.3):
    return (1 + beta2) * p * r / (beta2 * p + r)


# ---------------------------------------------------------------- IoU

def test_iou_empty_gt_rule_and_mean_over_frames():
    # frame 0: empty GT, one false positive out of 4 pixels -> (#pred=0 & gt=0) / (H*W) = 3/4
    # frame 1: gt = top row, pred = left column -> inter 1, union 3 -> 1/3
    lg = torch.tensor([[[5.0, -5.0], [-5.0, -5.0]],
                       [[5.0, -5.0], [5.0, -5.0]]])
    gt = torch.tensor([[[0.0, 0.0], [0.0, 0.0]],
                       [[1.0, 1.0], [0.0, 0.0]]])
    ious = frame_ious(lg, gt)
    assert ious[0].item() == pytest.approx(3 / (4 + 1e-7), abs=1e-7)
    assert ious[1].item() == pytest.approx(1 / (3 + 1e-7), abs=1e-7)
    assert mask_iou(lg, gt) == pytest.approx((0.75 + 1 / 3) / 2, abs=1e-6)


def test_iou_threshold_is_strict():
    # logit 0 -> sigmoid 0.5 -> NOT foreground
    lg = torch.zeros(2, 2, 2)
    gt = torch.zeros(2, 2, 2)
    gt[1, 0, 0] = 1
    ious = frame_ious(lg, gt)
    assert ious[0].item() == pytest.approx(1.0, abs=1e-6)  # empty GT, empty prediction
    assert ious[1].item() == 0.0  # object missed entirely
    # a hair above 0 is foreground
    lg[1, 0, 0] = 1e-3
    assert frame_ious(lg, gt)[1].item() == pytest.approx(1.0, abs=1e-6)


def test_iou_accepts_n1hw_and_0_255_gt():
    lg = torch.tensor([[[[5.0, -5.0], [-5.0, -5.0]]]])
    gt = torch.tensor([[[[255.0, 0.0], [0.0, 0.0]]]])
    assert mask_iou(lg, gt) == pytest.approx(1.0, abs=1e-6)


# ---------------------------------------------------------------- F-score

# frame A: gt [1,1,0,0], p = [0.9, 0.3, 0.6, 0.1]
#   τ <= 0.1: P=1/2 R=1  F=0.5652 ; (0.1,0.3]: P=2/3 R=1 F=0.7222 ; (0.3,0.6]: P=1/2 R=1/2 F=0.5
#   (0.6,0.9]: P=1 R=1/2 F=0.8125 ; τ > 0.9: P=R=0 -> NaN -> 0        => max 0.8125
# frame B: gt [1,1,0,0], p = [0.35, 0.35, 0.2, 0.2]
#   τ <= 0.2: F=0.5652 ; (0.2,0.35]: F=1 ; τ > 0.35: 0                  => max 1.0
# both in one batch: mean curve max is on (0.2,0.3]: (0.7222 + 1) / 2 = 0.8611
GT_AB = torch.tensor([[[1.0, 1.0, 0.0, 0.0]], [[1.0, 1.0, 0.0, 0.0]]])
LG_AB = torch.from_numpy(np.stack([logit([[0.9, 0.3, 0.6, 0.1]]), logit([[0.35, 0.35, 0.2, 0.2]])]))


def test_fscore_single_frame_hand_value():
    assert fscore(LG_AB[:1], GT_AB[:1]) == pytest.approx(f_of(1.0, 0.5), abs=1e-6)  # 0.8125
    assert fscore(LG_AB[1:], GT_AB[1:]) == pytest.approx(1.0, abs=1e-6)


def test_fscore_depends_on_batch():
    both = fscore(LG_AB, GT_AB)
    expected = (f_of(2 / 3, 1.0) + 1.0) / 2  # 0.86111
    assert both == pytest.approx(expected, abs=1e-6)
    per_frame = (fscore(LG_AB[:1], GT_AB[:1]) + fscore(LG_AB[1:], GT_AB[1:])) / 2  # 0.90625
    assert per_frame == pytest.approx(0.90625, abs=1e-6)
    assert both < per_frame - 0.04


def test_fscore_empty_gt_frames_skipped_and_empty_batch_scores_zero():
    gt_empty = torch.zeros(1, 1, 4)
    lg_any = torch.from_numpy(logit([[[0.9, 0.3, 0.6, 0.1]]]))
    # adding an empty-GT frame to a batch does not change the batch F
    assert fscore(torch.cat([LG_AB[:1], lg_any]), torch.cat([GT_AB[:1], gt_empty])) == pytest.approx(0.8125, abs=1e-6)
    # a batch with only empty GT scores 0, whatever the prediction
    assert fscore(lg_any, gt_empty) == 0.0
    assert fscore(torch.full((3, 2, 2), -9.0), torch.zeros(3, 2, 2)) == 0.0


def test_thresholds_are_float32_and_end_at_one():
    th = thresholds()
    assert th.dtype == torch.float32 and th.numel() == 255
    assert th[0].item() == 0.0 and th[-1].item() == 1.0  # 1 - 1e-10 rounds to 1.0 in float32


def _reference_fscore_loop(lg, gt):
    """Literal per-threshold loop of docs/avsbench.md §6 (not the sorted-search implementation)."""
    p = torch.sigmoid(lg)
    th = torch.linspace(0, 1 - 1e-10, 255)
    acc, n = torch.zeros(255), 0
    for i in range(p.shape[0]):
        if torch.mean(gt[i]) == 0.0:
            continue
        prec, rec = torch.zeros(255), torch.zeros(255)
        for k in range(255):
            y = (p[i] >= th[k]).float()
            tp = (y * gt[i]).sum()
            prec[k], rec[k] = tp / (y.sum() + 1e-20), tp / (gt[i].sum() + 1e-20)
        f = (1 + 0.3) * prec * rec / (0.3 * prec + rec)
        f[f != f] = 0
        acc += f
        n += 1
    return 0.0 if n == 0 else float((acc / n).max())


def test_fscore_matches_literal_loop_on_random_data():
    g = torch.Generator().manual_seed(0)
    lg = torch.randn(4, 12, 12, generator=g) * 3
    gt = (torch.rand(4, 12, 12, generator=g) > 0.6).float()
    gt[2] = 0  # one empty frame
    lg[1, :3] = 40.0  # saturated sigmoid == 1.0 exactly: counted at τ = 1.0
    assert fscore(lg, gt) == pytest.approx(_reference_fscore_loop(lg, gt), abs=1e-6)


# ---------------------------------------------------------------- accumulator

def test_avsmetrics_batching_and_counts():
    m = AvsMetrics(batch_clips=2)
    # clip 0 = frames A,B ; clip 1 = two empty-GT frames predicted empty (IoU 1 each)
    m.update(LG_AB, GT_AB)
    m.update(torch.full((2, 1, 4), -9.0), torch.zeros(2, 1, 4))
    s = m.summary()
    assert s["clips"] == 2 and s["frames"] == 4
    # one batch of 2 clips: the empty frames are skipped -> same as the A+B batch
    assert s["fscore"] == pytest.approx(0.861111, abs=1e-5)
    # per clip: (0.8611 + 0) / 2 -- the empty-GT clip is a batch that scores 0
    assert s["fscore_per_clip"] == pytest.approx(0.861111 / 2, abs=1e-5)
    # per frame: (0.8125 + 1 + 0 + 0) / 4
    assert s["fscore_per_frame"] == pytest.approx((0.8125 + 1.0) / 4, abs=1e-5)
    iou_a = frame_ious(LG_AB, GT_AB)
    assert s["miou"] == pytest.approx((iou_a.sum().item() + 2.0) / 4, abs=1e-6)


def test_avsmetrics_partial_last_batch_and_valid_mask():
    # 5 clips of 1 frame, batch 4 clips: miou = mean(mean(first 4), last)
    ious_wanted = [1.0, 1.0, 1.0, 1.0, 0.0]
    m = AvsMetrics(batch_clips=4)
    for v in ious_wanted:
        gt = torch.ones(1, 2, 2)
        lg = torch.full((1, 2, 2), 5.0 if v else -5.0)
        m.update(lg, gt)
    s = m.summary()
    assert s["miou"] == pytest.approx(0.5, abs=1e-6)  # batch means 1.0 and 0.0
    assert s["miou_frames"] == pytest.approx(0.8, abs=1e-6)

    # S4-train style: only frame 0 has a GT; invalid frames are ignored entirely
    m = AvsMetrics()
    lg = torch.full((1, 5, 2, 2), -5.0)
    lg[0, 0] = 5.0
    gt = torch.zeros(1, 5, 2, 2)
    gt[0, 0] = 1
    m.update(lg, gt, valid=torch.tensor([[1, 0, 0, 0, 0]]))
    s = m.summary()
    assert s["frames"] == 1 and s["miou"] == pytest.approx(1.0, abs=1e-6)
    assert s["fscore"] == pytest.approx(1.0, abs=1e-6)


def test_avsmetrics_flat_frames_input():
    m = AvsMetrics(batch_clips=1)
    m.update(torch.zeros(10, 1, 3, 3), torch.zeros(10, 1, 3, 3), frames_per_clip=5)
    s = m.summary()
    assert s["clips"] == 2 and s["frames"] == 10
    assert math.isclose(s["miou"], 1.0, abs_tol=1e-6) and s["fscore"] == 0.0
