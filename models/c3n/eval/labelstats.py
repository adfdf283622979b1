"""How often C3IM's unified label names the sounding object (S4 clips of AVS-Composites).

For each S4 clip whose sounding object is on screen (``clips.csv`` kind ``onscreen``), the clip's
category (the Tux Paint stamp name) is mapped to the ImageNet classes that name the same kind of
object by ``models/assets/stamp_imagenet.json`` (written by hand; categories without an ImageNet
class are left out and counted). A frame *agrees* when the model's ``unified_label`` output is one
of those classes; the visual top-1 (argmax of ``visual_logits``) is reported beside it, as is the
top-5 hit rate of the visual distribution. Works on any exported C3N ONNX file (onnxruntime, CPU).

Command: ``python -m c3n.labelstats DATA --split test --model FILE.onnx [--json]``.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..paths import ASSETS_DIR

DOG_RANGE = range(151, 269)  # ImageNet indices of the dog breeds (torchvision order)


def load_map(imagenet: list[str], path: Path = ASSETS_DIR / "stamp_imagenet.json") -> dict[str, set[int]]:
    """Category -> set of ImageNet indices; raises ValueError on a class name not in ``imagenet``."""
    index = {n: i for i, n in enumerate(imagenet)}
    out: dict[str, set[int]] = {}
    for cat, names in json.loads(path.read_text())["map"].items():
        s: set[int] = set()
        for n in names:
            if n == "@dogs":
                s |= set(DOG_RANGE)
            elif n in index:
                s.add(index[n])
            else:
                raise ValueError(f"{path}: {cat!r} maps to {n!r}, which is not an ImageNet class name")
        out[cat] = s
    return out


def label_stats(data: Path, split: str, model: str, limit: int | None = None, threads: int | None = None) -> dict:
    from ..data.avsbench import AvsClipDataset
    from ..labels import imagenet_names
    from .evaluate import OnnxRunner

    mapping = load_map(imagenet_names())
    kinds = {}
    clips_csv = data / "clips.csv"
    if clips_csv.exists():
        with open(clips_csv, newline="") as f:
            kinds = {r["vid"]: r.get("kind", "onscreen" if r.get("sounding_visible") == "1" else "offscreen")
                     for r in csv.DictReader(f)}
    runner = OnnxRunner(model, threads)
    ds = AvsClipDataset(data, subset="s4", split=split, augment=False)
    n = len(ds) if limit is None else min(limit, len(ds))
    frames = unified_hit = top1_hit = top5_hit = 0
    no_class: set[str] = set()
    used: set[str] = set()
    for i in tqdm(range(n), desc="labels", file=sys.stderr):
        c = ds.clips[i]
        if kinds.get(c.vid, "onscreen") != "onscreen":
            continue
        want = mapping.get(c.category)
        if not want:
            no_class.add(c.category)
            continue
        used.add(c.category)
        item = ds[i]
        named = runner.outputs(item["frames"], item["audio_logmel"], ("unified_label", "visual_logits"))
        vis = named["visual_logits"]
        for t in range(vis.shape[0]):
            frames += 1
            unified_hit += int(int(named["unified_label"][t]) in want)
            top1_hit += int(int(np.argmax(vis[t])) in want)
            top5_hit += int(bool(set(np.argsort(-vis[t])[:5].tolist()) & want))
    return {"model": Path(model).name, "split": split, "frames": frames, "categories": len(used),
            "unified_label_agrees": unified_hit / max(1, frames), "visual_top1_agrees": top1_hit / max(1, frames),
            "visual_top5_contains": top5_hit / max(1, frames),
            "categories_without_imagenet_class": sorted(no_class)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Agreement of C3IM's unified label with the sounding object (S4).")
    ap.add_argument("data", type=Path)
    ap.add_argument("--split", default="test", choices=["train", "val", "test"])
    ap.add_argument("--model", required=True)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    r = label_stats(a.data, a.split, a.model, a.limit, a.threads)
    if a.json:
        print(json.dumps(r))
    else:
        print(f"{r['model']} on {a.data.name}/{r['split']} S4 on-screen clips ({r['frames']} frames, "
              f"{r['categories']} categories with an ImageNet class): unified label names the object in "
              f"{100 * r['unified_label_agrees']:.1f} % of frames; visual top-1 {100 * r['visual_top1_agrees']:.1f} %, "
              f"top-5 {100 * r['visual_top5_contains']:.1f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
