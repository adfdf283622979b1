"""AVSBench evaluation metrics (mIoU / Jaccard and F-score), exactly as AVSBench computes them.

Definitions follow ``docs/avsbench.md`` §6 (AVSBench ``avs_scripts/avs_s4/utils/utility.py``
``mask_iou`` and ``Eval_Fmeasure``; byte-identical in AVS-C3N). Inputs are *logits* (pre-sigmoid) and
binary ground truth, one row per video frame:

* ``mask_iou(logits[N,H,W], gt[N,H,W])`` — prediction = ``sigmoid(logit) > 0.5`` (strict). Per frame
  IoU = Σ(pred·gt) / (Σ max(pred, gt) + 1e-7); a frame whose GT is empty scores instead
  #(pred = 0 and gt = 0) / (H·W + 1e-7), i.e. the fraction of pixels correctly left empty. The
  batch value is the mean over the N frames.
* ``fscore(logits[N,H,W], gt[N,H,W])`` — p = sigmoid(logit) (float32); thresholds
  τ = linspace(0, 1 − 1e-10, 255) in float32 (so the last one is exactly 1.0); per frame with a
  non-empty GT: precision(τ) = TP / (#(p ≥ τ) + 1e-20), recall(τ) = TP / (#gt + 1e-20),
  F(τ) = (1 + β²)·P·R / (β²·P + R), β² = 0.3, NaN → 0. The F curves of the kept frames are averaged,
  then the batch score is max over τ. Frames with an empty GT are skipped; a batch without any kept
  frame scores 0 (and still counts as a batch in the final mean).

F therefore depends on how frames are grouped into batches (yannqi/COMBO-AVS#7). ``AvsMetrics``
reports the AVSBench grouping (batches of 4 clips = 20 frames, in dataset order; ``test.sh``), the
per-clip grouping used by the C3N README (``--test_batch_size 1``), and the per-frame grouping.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

BETA2 = 0.3
N_THRESHOLDS = 255
IOU_EPS = 1e-7
PR_EPS = 1e-20


def _as_tensor(x, dtype=torch.float32) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    return t.detach().to("cpu", dtype)


def _squeeze_nhw(x: torch.Tensor, name: str) -> torch.Tensor:
    """Accept [N,H,W] or [N,1,H,W]; return [N,H,W]."""
    if x.dim() == 4 and x.shape[1] == 1:
        x = x[:, 0]
    if x.dim() != 3:
        raise ValueError(f"{name}: expected [N,H,W] or [N,1,H,W], got {tuple(x.shape)}")
    return x


def frame_ious(logits, gt) -> torch.Tensor:
    """Per-frame AVSBench IoU, float32 [N] (see module docstring for the empty-GT rule)."""
    lg = _squeeze_nhw(_as_tensor(logits), "logits")
    g = _squeeze_nhw(_as_tensor(gt), "gt")
    if lg.shape != g.shape:
        raise ValueError(f"shape mismatch: logits {tuple(lg.shape)} vs gt {tuple(g.shape)}")
    g = (g > 0.5).float()  # gt is binary {0, 1}; tolerate 0/255 -> use > 0.5 on {0,1} or {0,255}
    n_pix = lg.shape[-1] * lg.shape[-2]
    pred = (torch.sigmoid(lg) > 0.5).float()
    inter = (pred * g).sum(dim=(1, 2))
    union = torch.maximum(pred, g).sum(dim=(1, 2))
    empty = g.sum(dim=(1, 2)) == 0
    inter_empty = ((1 - g) * (1 - pred)).sum(dim=(1, 2))
    inter = torch.where(empty, inter_empty, inter)
    union = torch.where(empty, torch.full_like(union, float(n_pix)), union)
    return inter / (union + IOU_EPS)


def mask_iou(logits, gt) -> float:
    """AVSBench batch mIoU: mean of ``frame_ious`` over the N frames. logits, gt: [N,H,W]."""
    ious = frame_ious(logits, gt)
    return float(ious.sum() / ious.numel())


def thresholds(n: int = N_THRESHOLDS) -> torch.Tensor:
    """AVSBench F-score thresholds: float32 linspace(0, 1 - 1e-10, n) (last value rounds to 1.0)."""
    return torch.linspace(0, 1 - 1e-10, n)


def frame_f_curves(logits, gt, beta2: float = BETA2, n_thresholds: int = N_THRESHOLDS):
    """Per-frame F(τ) curves. Returns (curves float32 [N, n_thresholds], kept bool [N]).

    Rows of frames with an empty GT are zero and ``kept`` is False for them.
    """
    lg = _squeeze_nhw(_as_tensor(logits), "logits")
    g = _squeeze_nhw(_as_tensor(gt), "gt")
    if lg.shape != g.shape:
        raise ValueError(f"shape mismatch: logits {tuple(lg.shape)} vs gt {tuple(g.shape)}")
    g = g > 0.5
    p = torch.sigmoid(lg)
    th = thresholds(n_thresholds)
    n = lg.shape[0]
    curves = torch.zeros(n, n_thresholds, dtype=torch.float32)
    kept = torch.zeros(n, dtype=torch.bool)
    for i in range(n):
        gi = g[i].reshape(-1)
        n_gt = gi.sum()
        if n_gt == 0:
            continue
        kept[i] = True
        pi = p[i].reshape(-1)
        # #(p >= τ) for every τ via a sorted search: identical to the per-threshold comparison
        s_all = torch.sort(pi).values
        s_pos = torch.sort(pi[gi]).values
        n_pred = (s_all.numel() - torch.searchsorted(s_all, th, right=False)).float()
        tp = (s_pos.numel() - torch.searchsorted(s_pos, th, right=False)).float()
        prec = tp / (n_pred + PR_EPS)
        rec = tp / (n_gt.float() + PR_EPS)
        f = (1 + beta2) * prec * rec / (beta2 * prec + rec)
        f[f != f] = 0
        curves[i] = f
    return curves, kept


def _batch_f(curves: torch.Tensor, kept: torch.Tensor) -> float:
    """Max over τ of the mean curve of the kept frames; 0 when no frame is kept."""
    if not bool(kept.any()):
        return 0.0
    acc = torch.zeros(curves.shape[1], dtype=torch.float32)
    n = 0
    for c in curves[kept]:  # sequential float32 sum, as AVSBench's loop
        acc = acc + c
        n += 1
    return float((acc / n).max())


def fscore(logits, gt, beta2: float = BETA2, n_thresholds: int = N_THRESHOLDS) -> float:
    """AVSBench F-score of ONE batch (``Eval_Fmeasure``). logits, gt: [N,H,W]."""
    curves, kept = frame_f_curves(logits, gt, beta2, n_thresholds)
    return _batch_f(curves, kept)


@dataclass
class AvsMetrics:
    """Accumulates per-frame IoU and F curves over a data set, reports AVSBench-style scores.

    Feed clips in data-set order with ``update(logits, gt)`` where logits / gt are [T,H,W] (one
    clip), [B,T,H,W] (B clips) or [B*T,1,H,W] together with ``frames_per_clip``. ``valid`` ([B,T] or
    [T], optional) marks frames that have a GT mask; invalid frames are dropped (S4 *train* has
    only frame 1). ``summary()`` returns a dict with

    * ``miou``: mean of per-batch mIoU over batches of ``batch_clips`` clips (AVSBench ``test.sh``:
      4 clips), the last batch possibly smaller — equals the per-frame mean when all batches are full;
    * ``miou_frames``: mean IoU over all frames;
    * ``fscore``: mean of per-batch F over batches of ``batch_clips`` clips (AVSBench protocol);
    * ``fscore_per_clip``: batch = 1 clip (C3N README, ``--test_batch_size 1``);
    * ``fscore_per_frame``: batch = 1 frame (empty-GT frames score 0 and count);
    * ``clips``, ``frames``.
    Scores are fractions in [0, 1] (papers report × 100).
    """

    batch_clips: int = 4
    beta2: float = BETA2
    n_thresholds: int = N_THRESHOLDS
    _ious: list = field(default_factory=list)  # per clip: float32 [T']
    _curves: list = field(default_factory=list)  # per clip: float32 [T', n_thresholds]
    _kept: list = field(default_factory=list)  # per clip: bool [T']

    def update(self, logits, gt, valid=None, frames_per_clip: int | None = None) -> None:
        lg = _as_tensor(logits)
        g = _as_tensor(gt)
        if frames_per_clip is not None:
            lg = _squeeze_nhw(lg, "logits").reshape(-1, frames_per_clip, *lg.shape[-2:])
            g = _squeeze_nhw(g, "gt").reshape(-1, frames_per_clip, *g.shape[-2:])
        if lg.dim() == 5 and lg.shape[2] == 1:  # [B,T,1,H,W]
            lg = lg[:, :, 0]
        if g.dim() == 5 and g.shape[2] == 1:
            g = g[:, :, 0]
        if lg.dim() == 3:
            lg, g = lg[None], g[None]
        if lg.dim() != 4 or lg.shape != g.shape:
            raise ValueError(f"expected clips [B,T,H,W]; got logits {tuple(lg.shape)}, gt {tuple(g.shape)}")
        v = None
        if valid is not None:
            v = _as_tensor(valid).reshape(lg.shape[0], lg.shape[1]) > 0.5
        for b in range(lg.shape[0]):
            lb, gb = lg[b], g[b]
            if v is not None:
                lb, gb = lb[v[b]], gb[v[b]]
            if lb.shape[0] == 0:
                continue
            self._ious.append(frame_ious(lb, gb))
            c, k = frame_f_curves(lb, gb, self.beta2, self.n_thresholds)
            self._curves.append(c)
            self._kept.append(k)

    @property
    def clips(self) -> int:
        return len(self._ious)

    @property
    def frames(self) -> int:
        return int(sum(t.numel() for t in self._ious))

    def _batches(self, n_clips: int):
        for s in range(0, self.clips, n_clips):
            yield slice(s, s + n_clips)

    def summary(self) -> dict:
        if self.clips == 0:
            return {"miou": 0.0, "miou_frames": 0.0, "fscore": 0.0, "fscore_per_clip": 0.0,
                    "fscore_per_frame": 0.0, "clips": 0, "frames": 0}
        miou_b, f_b = [], []
        for sl in self._batches(self.batch_clips):
            ious = torch.cat(self._ious[sl])
            miou_b.append(float(ious.sum() / ious.numel()))
            f_b.append(_batch_f(torch.cat(self._curves[sl]), torch.cat(self._kept[sl])))
        f_clip = [_batch_f(c, k) for c, k in zip(self._curves, self._kept)]
        all_curves = torch.cat(self._curves)
        all_kept = torch.cat(self._kept)
        f_frame = [float(c.max()) if k else 0.0 for c, k in zip(all_curves, all_kept)]
        all_ious = torch.cat(self._ious)
        return {
            "miou": float(np.mean(miou_b)),
            "miou_frames": float(all_ious.double().mean()),
            "fscore": float(np.mean(f_b)),
            "fscore_per_clip": float(np.mean(f_clip)),
            "fscore_per_frame": float(np.mean(f_frame)),
            "clips": self.clips,
            "frames": self.frames,
        }


def false_alarm(logits, min_area_fraction: float = 0.002) -> bool:
    """Silence / off-screen check of one clip whose ground truth is empty in every frame.

    True if any frame of ``logits`` ([T,1,H,W] or [T,H,W]) has at least ``min_area_fraction`` of its
    pixels predicted sounding (sigmoid > 0.5, i.e. logit > 0): an upper bound of "the runtime reports
    a region of at least the minimum area" (c3n-edge's ``[post] min_area_fraction``, default 0.002),
    since a region is one connected part of those pixels.
    """
    lg = _as_tensor(logits)
    frac = (lg > 0).float().reshape(lg.shape[0], -1).mean(dim=1)
    return bool((frac >= min_area_fraction).any())


def roc_auc(pos, neg) -> float | None:
    """ROC AUC of scores ``pos`` (positives) against ``neg`` (negatives): the probability that a
    random positive scores above a random negative, ties counted half (Mann-Whitney U / (n_p n_n)).
    None if either group is empty."""
    p = np.asarray(pos, dtype=np.float64).reshape(-1)
    n = np.asarray(neg, dtype=np.float64).reshape(-1)
    if p.size == 0 or n.size == 0:
        return None
    allv = np.concatenate([p, n])
    order = np.argsort(allv, kind="mergesort")
    ranks = np.empty(allv.size)
    ranks[order] = np.arange(1, allv.size + 1)
    sv = allv[order]  # average the ranks of ties
    start = 0
    for i in range(1, sv.size + 1):
        if i == sv.size or sv[i] != sv[start]:
            ranks[order[start:i]] = (start + 1 + i) / 2.0
            start = i
    u = ranks[: p.size].sum() - p.size * (p.size + 1) / 2.0
    return float(u / (p.size * n.size))
