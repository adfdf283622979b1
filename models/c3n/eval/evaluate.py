"""Evaluate a C3N model on an AVSBench-format folder with the exact AVSBench metrics.

``python -m c3n.evaluate DATA --split test --model FILE [--subset s4|ms3|all] [--json]``

``FILE`` is an exported ONNX (run with onnxruntime's CPU execution provider; a T=1 model runs
frame by frame) or a training checkpoint ``.pt`` (run in PyTorch). Output per subset: ``miou``,
``fscore`` (AVSBench batches of 4 clips), ``fscore_per_clip``, ``fscore_per_frame``, ``clips``,
``frames``; the Rust evaluator (``c3n-edge eval``) prints the same keys and must agree to 1e-4.
Also ``empty_clips`` (clips whose GT is empty in every frame: silent, noise-floor and off-screen
sound) and ``false_alarm_rate`` (share of them where the model reports a region, see
:func:`c3n.eval.metrics.false_alarm`). ``--gate`` applies the runtime's silence gate first
(:class:`SilenceGate`), so the scores are what ``c3n-edge run`` would report.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .metrics import AvsMetrics, false_alarm

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
        return self.outputs(frames, logmel, ("mask_logits",))["mask_logits"]

    def outputs(self, frames: torch.Tensor, logmel: torch.Tensor, names=("mask_logits", "audio_logits")) -> dict:
        """The named outputs for a clip, concatenated over the model's T-frame windows."""
        outs: dict[str, list] = {n: [] for n in names}
        for s in range(0, frames.shape[0], self.t):
            r = self.sess.run(list(names), {"frames": frames[s:s + self.t].numpy(),
                                            "audio_logmel": logmel[s:s + self.t].numpy()})
            for n, v in zip(names, r):
                outs[n].append(v)
        return {n: np.concatenate(v) for n, v in outs.items()}


class TorchRunner:
    def __init__(self, path: str):
        from ..model.build import build_model

        self.model = build_model("edge", checkpoint=path)

    @torch.no_grad()
    def __call__(self, frames, logmel):
        return self.model(frames, logmel, t=frames.shape[0])[0].numpy()


@dataclass(frozen=True)
class SilenceGate:
    """The runtime's silence gate (c3n-edge ``[events] silence_dbfs`` / ``silence_classes``): a frame
    whose 1-s audio slot is quieter than ``dbfs`` or whose top AudioSet class is one of ``classes``
    reports no region. The slot RMS is over samples [t, t + 1) s of the 16 kHz clip, as in
    ``src/sync.rs``."""

    dbfs: float = -50.0
    classes: tuple[str, ...] = ("Silence",)

    def gated(self, wav: np.ndarray, audio_logits: np.ndarray) -> np.ndarray:
        """bool [T]: frames the gate silences."""
        from ..labels import audioset_names

        names = audioset_names()
        t = audio_logits.shape[0]
        out = np.zeros(t, bool)
        for i in range(t):
            s = wav[i * 16000:(i + 1) * 16000].astype(np.float64)
            db = 20 * np.log10(np.sqrt(np.mean(s ** 2))) if len(s) and np.any(s) else -200.0
            out[i] = db < self.dbfs or names[int(np.argmax(audio_logits[i]))] in self.classes
        return out


def evaluate(data: Path, split: str, runner, subsets=("s4", "ms3"), limit: int | None = None,
             gate: SilenceGate | None = None) -> list[dict]:
    """AVSBench scores per subset. With ``gate``, each result also holds ``gated``: the same scores
    when the frames the gate silences count as predicting nothing (what ``c3n-edge run`` reports)."""
    from ..audio_io import load_audio_16k
    from ..data.avsbench import AvsClipDataset

    results = []
    for subset in subsets:
        if not (data / SUBSETS[subset]).exists():
            continue
        ds = AvsClipDataset(data, subset=subset, split=split, augment=False)
        runs = {"model": (AvsMetrics(), [])}
        if gate is not None:
            runs["gated"] = (AvsMetrics(), [])
        n = len(ds) if limit is None else min(limit, len(ds))
        for i in tqdm(range(n), desc=f"{subset} {split}", file=sys.stderr):
            item = ds[i]
            if gate is None:
                variants = {"model": runner(item["frames"], item["audio_logmel"])}
            else:
                out = runner.outputs(item["frames"], item["audio_logmel"])
                gated = out["mask_logits"].copy()
                gated[gate.gated(load_audio_16k(ds.clips[i].wav_path), out["audio_logits"])] = -100.0
                variants = {"model": out["mask_logits"], "gated": gated}
            empty = bool(item["mask_valid"].all() and item["masks"].max() == 0)  # silent / off-screen clip
            for k, logits in variants.items():
                m, alarms = runs[k]
                m.update(torch.from_numpy(logits), item["masks"], valid=item["mask_valid"],
                         frames_per_clip=item["frames"].shape[0])
                if empty:
                    alarms.append(false_alarm(logits))
        scores = {}
        for k, (m, alarms) in runs.items():
            s = m.summary()
            scores[k] = {**{q: s[q] for q in ("miou", "fscore", "fscore_per_clip", "fscore_per_frame", "clips",
                                               "frames")},
                         "empty_clips": len(alarms), "false_alarm_rate": float(np.mean(alarms)) if alarms else None}
        r = {"subset": subset, "split": split, **scores["model"]}
        if "gated" in scores:
            r["gated"] = {q: scores["gated"][q] for q in ("miou", "fscore", "false_alarm_rate")}
            r["gated"].update(dbfs=gate.dbfs, classes=list(gate.classes))
        results.append(r)
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="AVSBench mIoU / F-score of a C3N ONNX or checkpoint.")
    ap.add_argument("data", type=Path)
    ap.add_argument("--split", default="test", choices=["train", "val", "test"])
    ap.add_argument("--model", required=True)
    ap.add_argument("--subset", default="all", choices=["s4", "ms3", "all"])
    ap.add_argument("--limit", type=int, default=None, help="first N clips per subset")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--gate", action="store_true",
                    help="apply the runtime's silence gate (--gate-dbfs, --gate-classes) before scoring")
    ap.add_argument("--gate-dbfs", type=float, default=-50.0)
    ap.add_argument("--gate-classes", nargs="*", default=["Silence"])
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    runner = OnnxRunner(a.model, a.threads) if a.model.endswith(".onnx") else TorchRunner(a.model)
    subsets = ("s4", "ms3") if a.subset == "all" else (a.subset,)
    if a.gate and not isinstance(runner, OnnxRunner):
        print("error: --gate needs an ONNX model", file=sys.stderr)
        return 2
    gate = SilenceGate(a.gate_dbfs, tuple(a.gate_classes)) if a.gate else None
    res = evaluate(a.data, a.split, runner, subsets, a.limit, gate)
    if not res:
        print(f"error: {a.data} holds none of {[SUBSETS[s] for s in subsets]}", file=sys.stderr)
        return 2
    for r in res:
        if a.json:
            print(json.dumps(r))
        else:
            print(f"{r['subset']:>4} {r['split']}: mIoU {r['miou']:.4f}  F-score {r['fscore']:.4f} (batch 4 clips)"
                  f"  F per clip {r['fscore_per_clip']:.4f}  F per frame {r['fscore_per_frame']:.4f}"
                  f"  ({r['clips']} clips, {r['frames']} frames)"
                  + (f"; silent/off-screen clips with a false region: {r['empty_clips']}, "
                     f"{100 * r['false_alarm_rate']:.1f} %" if r["empty_clips"] else ""))
            if "gated" in r:
                g = r["gated"]
                print(f"     with the silence gate: mIoU {g['miou']:.4f}  F-score {g['fscore']:.4f}"
                      + (f"  false regions {100 * g['false_alarm_rate']:.1f} %" if g["false_alarm_rate"] is not None
                         else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
