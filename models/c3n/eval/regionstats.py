"""How often the region on the sounding object gets the right category (issue 15), per-region
against the frame-level label, on the S4 clips of AVS-Composites whose source is on screen.

For every frame: the model's mask (sigmoid > 0.5, 8-connected regions of at least 0.2 % of the
frame, the 8 largest — the runtime's ``[post]`` defaults, ``src/post/``), the region with the
largest overlap with the ground-truth mask (frames where none overlaps are counted apart), and
its labels computed as the runtime does (``src/post/labels.rs`` ``region_logits`` / ``c3im_label``,
``src/categories.rs``): the class-activation map ``visual_logit_map`` averaged over the region's
cells weighted by pixel count, C3IM with the frame's ``c3im_affinity``, the category by
:func:`c3n.categories.region_category`. The true category of a clip is its stamp's, from
``models/assets/stamp_categories.json`` (written by hand). Compared:

* ``frame``: the category of the frame-level unified label (today's ``label``, mapped);
* ``region_c3im``: the category of the region's own unified label (its ``sub_label``);
* ``region``: the region's category by the asset's rule (:func:`c3n.categories.region_category`,
  or ``--combine``), and with ``--grid`` the alternative rule measured against it
  (:func:`c3n.categories.mass_category`, audio weight × minimum score).

Command: ``python -m c3n.regionstats DATA --split val --model FILE.onnx --grid [--json]``.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .. import categories
from ..paths import ASSETS_DIR

ALPHA = 0.1
THRESHOLD = 0.5
MIN_AREA_FRACTION = 0.002
MAX_REGIONS = 8


def connected_regions(binary: np.ndarray) -> list[np.ndarray]:
    """8-connected components of a boolean [H,W] map, as boolean masks, largest first (ties: in
    raster order of their first pixel)."""
    h, w = binary.shape
    label = np.zeros((h, w), dtype=np.int32)
    regions: list[np.ndarray] = []
    ys, xs = np.nonzero(binary)
    n = 0
    for y0, x0 in zip(ys.tolist(), xs.tolist()):
        if label[y0, x0]:
            continue
        n += 1
        label[y0, x0] = n
        stack = [(y0, x0)]
        pix = []
        while stack:
            y, x = stack.pop()
            pix.append((y, x))
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    yy, xx = y + dy, x + dx
                    if 0 <= yy < h and 0 <= xx < w and binary[yy, xx] and not label[yy, xx]:
                        label[yy, xx] = n
                        stack.append((yy, xx))
        m = np.zeros((h, w), dtype=bool)
        py, px = zip(*pix)
        m[list(py), list(px)] = True
        regions.append(m)
    regions.sort(key=lambda m: -int(m.sum()))  # stable: raster order on ties
    return regions


def frame_regions(mask_logits: np.ndarray) -> list[np.ndarray]:
    """The runtime's regions of one frame: mask_logits [H,W] -> boolean masks."""
    prob = 1.0 / (1.0 + np.exp(-mask_logits.astype(np.float64)))
    regs = connected_regions(prob > THRESHOLD)
    min_px = max(1, int(np.ceil(MIN_AREA_FRACTION * mask_logits.size)))
    return [r for r in regs if r.sum() >= min_px][:MAX_REGIONS]


def region_logits(logit_map: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """logit_map [C,h,w] averaged over the cells under ``mask`` [H,W], each weighted by its pixel
    count (pixel (x, y) -> cell (y*h//H, x*w//W)); an empty mask gives the mean over all cells."""
    c, h, w = logit_map.shape
    hh, ww = mask.shape
    ys, xs = np.nonzero(mask)
    weight = np.zeros((h, w))
    np.add.at(weight, (ys * h // hh, xs * w // ww), 1.0)
    if weight.sum() == 0:
        weight[:] = 1.0
    return (logit_map.astype(np.float64) * weight[None]).sum(axis=(1, 2)) / weight.sum()


def c3im_label(logits: np.ndarray, affinity: np.ndarray, alpha: float = ALPHA) -> tuple[int, float]:
    """(argmax_j softmax(logits)^alpha[j] * affinity[j], its value); first on ties."""
    lse = logits.max() + np.log(np.exp(logits - logits.max()).sum())
    s = np.exp(alpha * (logits - lse)) * affinity.astype(np.float64)
    j = int(np.argmax(s))
    return j, float(s[j])


def collect(data: Path, split: str, model: str, limit: int | None = None, threads: int | None = 1) -> list[dict]:
    """Per on-screen S4 frame with a region on the object: the true category and the evidence
    (region logits, audio logits, frame unified label)."""
    from ..data.avsbench import AvsClipDataset
    from .evaluate import OnnxRunner

    truth = json.loads((ASSETS_DIR / "stamp_categories.json").read_text())["map"]
    kinds = {}
    with open(data / "clips.csv", newline="") as f:
        kinds = {r["vid"]: r["kind"] for r in csv.DictReader(f)}
    runner = OnnxRunner(model, threads)
    ds = AvsClipDataset(data, subset="s4", split=split, augment=False)
    n = len(ds) if limit is None else min(limit, len(ds))
    names = ("mask_logits", "audio_logits", "unified_label", "visual_logit_map", "c3im_affinity")
    rows = []
    missing: set[str] = set()
    for i in tqdm(range(n), desc=f"regions {split}", file=sys.stderr):
        c = ds.clips[i]
        if kinds.get(c.vid) != "onscreen":
            continue
        if c.category not in truth:
            missing.add(c.category)
            continue
        item = ds[i]
        out = runner.outputs(item["frames"], item["audio_logmel"], names)
        for t in range(out["mask_logits"].shape[0]):
            if not bool(item["mask_valid"][t]):
                continue
            gt = item["masks"][t, 0].numpy() > 0.5
            regs = frame_regions(out["mask_logits"][t, 0])
            overlaps = [int((r & gt).sum()) for r in regs]
            row = {"vid": c.vid, "t": t, "stamp": c.category, "truth": truth[c.category],
                   "frame_label": int(out["unified_label"][t]), "regions": len(regs)}
            if regs and max(overlaps) > 0:
                r = regs[int(np.argmax(overlaps))]
                row["region_logits"] = region_logits(out["visual_logit_map"][t], r)
                row["audio_logits"] = out["audio_logits"][t].astype(np.float64)
                row["sub_label"] = c3im_label(row["region_logits"], out["c3im_affinity"][t])[0]
            rows.append(row)
    if missing:
        raise ValueError(f"stamp_categories.json has no true category for {sorted(missing)}")
    return rows


def score(rows: list[dict], asset: dict, combine: dict | None) -> dict:
    """Accuracies of the frame label, the region's C3IM label and the region category (the
    asset's rule), and how often the person rule fired (no stamp is a person)."""
    cats = asset["categories"]
    img = asset["imagenet"]
    on = [r for r in rows if "region_logits" in r]
    frame_ok = sum(cats[img[r["frame_label"]]] == r["truth"] for r in on)
    sub_ok = sum(cats[img[r["sub_label"]]] == r["truth"] for r in on)
    reg_ok = person = 0
    confusion: Counter = Counter()
    for r in on:
        k, _ = categories.region_category(asset, r["region_logits"], r["audio_logits"], r["sub_label"], combine)
        reg_ok += cats[k] == r["truth"]
        person += cats[k] == "person"
        confusion[(r["truth"], cats[k])] += 1
    n = max(1, len(on))
    return {"frames": len(rows), "frames_with_region_on_object": len(on),
            "frame_label": frame_ok / n, "region_c3im": sub_ok / n, "region": reg_ok / n,
            "region_person": person / n,
            "combine": combine if combine is not None else asset["combine"],
            "confusion": {f"{a}->{b}": v for (a, b), v in sorted(confusion.items(), key=lambda x: -x[1])}}


def grid(rows: list[dict], asset: dict) -> list[dict]:
    """The alternative rule (:func:`c3n.categories.mass_category`) over audio weight × minimum score."""
    cats = asset["categories"]
    on = [r for r in rows if "region_logits" in r]
    out = []
    for beta in (0.0, 0.25, 0.5, 0.75, 1.0):
        for gamma in (0.0, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2):
            ok = sum(cats[categories.mass_category(asset, r["region_logits"], r["audio_logits"], beta, gamma)[0]]
                     == r["truth"] for r in on)
            out.append({"audio_weight": beta, "min_score": gamma, "region": ok / max(1, len(on))})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Per-region category accuracy on AVS-Composites S4 (issue 15).")
    ap.add_argument("data", type=Path)
    ap.add_argument("--split", default="test", choices=["train", "val", "test"])
    ap.add_argument("--model", required=True)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--combine", type=str, default=None, help="JSON combination parameters (default: the asset's)")
    ap.add_argument("--grid", action="store_true", help="also sweep audio weight x minimum score")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    asset = categories.load()
    rows = collect(a.data, a.split, a.model, a.limit)
    res = score(rows, asset, json.loads(a.combine) if a.combine else None)
    res.update({"model": Path(a.model).name, "split": a.split})
    if a.grid:
        res["grid"] = grid(rows, asset)
    if a.json:
        print(json.dumps(res))
    else:
        print(f"{res['model']} {a.data.name}/{a.split} S4 on-screen: {res['frames']} frames, "
              f"{res['frames_with_region_on_object']} with a region on the object; right category: "
              f"frame label {100 * res['frame_label']:.1f} %, region's C3IM label "
              f"{100 * res['region_c3im']:.1f} %, region category {100 * res['region']:.1f} % "
              f"(combine {res['combine']}; person rule fired on {100 * res['region_person']:.1f} %)")
        for g in res.get("grid", []):
            print(f"  alternative (visual mass x audio): audio_weight {g['audio_weight']:.2f} "
                  f"min_score {g['min_score']:.3f}: {100 * g['region']:.1f} %")
        print("  confusion (truth->region):", ", ".join(f"{k} {v}" for k, v in list(res["confusion"].items())[:12]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
