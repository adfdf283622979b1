"""Evaluate a C3N model on an AVSBench-format folder with the exact AVSBench metrics.

``python -m c3n.evaluate DATA --split test --model FILE [--subset s4|ms3|all] [--json]``

``FILE`` is an exported ONNX (run with onnxruntime's CPU execution provider; a T=1 model runs
frame by frame) or a training checkpoint ``.pt`` (run in PyTorch). Output per subset: ``miou``,
``fscore`` (AVSBench batches of 4 clips), ``fscore_per_clip``, ``fscore_per_frame``, ``clips``,
``frames``; the Rust evaluator (``c3n-edge eval``) prints the same keys and must agree to 1e-4.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .metrics import AvsMetrics

SUBSETS = {"s4": "Single-source", "ms3": "Multi-sources"}


class OnnxRunner:
    def __init__(self, path: str, threads: int | None = None):
        import onnxruntime as ort

        so = ort.SessionOptions()
        if threads:
            so.intra_op_num_threads = threads
        self.sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        self.t = self.sess.get_inputs()[0].shape[0]

    def __call__(self, frames: torch.Tensor, logmel: torch.Tensor) -> np.ndarray:
        outs = []
        for s in range(0, frames.shape[0], self.t):
            outs.append(self.sess.run(["mask_logits"], {"frames": frames[s:s + self.t].numpy(),
                                                        "audio_logmel": logmel[s:s + self.t].numpy()})[0])
        return np.concatenate(outs)


class TorchRunner:
    def __init__(self, path: str):
        from .export import build_model

        self.model = build_model("edge", checkpoint=path)

    @torch.no_grad()
    def __call__(self, frames, logmel):
        return self.model(frames, logmel, t=frames.shape[0])[0].numpy()


def evaluate(data: Path, split: str, runner, subsets=("s4", "ms3"), limit: int | None = None) -> list[dict]:
    from .data.avsbench import AvsClipDataset

    results = []
    for subset in subsets:
        if not (data / SUBSETS[subset]).exists():
            continue
        ds = AvsClipDataset(data, subset=subset, split=split, augment=False)
        m = AvsMetrics()
        n = len(ds) if limit is None else min(limit, len(ds))
        for i in tqdm(range(n), desc=f"{subset} {split}", file=sys.stderr):
            item = ds[i]
            logits = runner(item["frames"], item["audio_logmel"])
            m.update(torch.from_numpy(logits), item["masks"], valid=item["mask_valid"],
                     frames_per_clip=item["frames"].shape[0])
        s = m.summary()
        results.append({"subset": subset, "split": split, **{k: s[k] for k in
                        ("miou", "fscore", "fscore_per_clip", "fscore_per_frame", "clips", "frames")}})
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="AVSBench mIoU / F-score of a C3N ONNX or checkpoint.")
    ap.add_argument("data", type=Path)
    ap.add_argument("--split", default="test", choices=["train", "val", "test"])
    ap.add_argument("--model", required=True)
    ap.add_argument("--subset", default="all", choices=["s4", "ms3", "all"])
    ap.add_argument("--limit", type=int, default=None, help="first N clips per subset")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    runner = OnnxRunner(a.model, a.threads) if a.model.endswith(".onnx") else TorchRunner(a.model)
    subsets = ("s4", "ms3") if a.subset == "all" else (a.subset,)
    res = evaluate(a.data, a.split, runner, subsets, a.limit)
    if not res:
        print(f"error: {a.data} holds none of {[SUBSETS[s] for s in subsets]}", file=sys.stderr)
        return 2
    for r in res:
        if a.json:
            print(json.dumps(r))
        else:
            print(f"{r['subset']:>4} {r['split']}: mIoU {r['miou']:.4f}  F-score {r['fscore']:.4f} (batch 4 clips)"
                  f"  F per clip {r['fscore_per_clip']:.4f}  F per frame {r['fscore_per_frame']:.4f}"
                  f"  ({r['clips']} clips, {r['frames']} frames)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
