"""Evaluate exported models on a split and write ``metrics.json`` (machine-readable model card numbers).

``python -m c3n.report DATA --seed 1234 [--shift-data SHIFT_DATA]
--entry edge c3n c3n-edge-t5.onnx "TRAIN CMD" [--entry ...] --out metrics.json``

For each entry (config, variant, ONNX file, the training command) the test split of every subset
present is evaluated with :mod:`c3n.eval.evaluate` (onnxruntime CPU) and stored under
``models.<config>.<variant>.{s4,ms3}.{miou,fscore,fscore_per_clip,fscore_per_frame,clips,frames,
empty_clips,false_alarm_rate}`` with the file's sha256, the dataset seed and the exact commands; with
``--shift-data`` (a ``--domain-shift`` set of :mod:`c3n.data.composites`) also under
``models.<config>.<variant>.domain_shift.{s4,ms3}``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..packages import sha256_file
from .evaluate import OnnxRunner, SilenceGate, evaluate


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", type=Path)
    ap.add_argument("--seed", type=int, required=True, help="seed the data set was generated with")
    ap.add_argument("--split", default="test")
    ap.add_argument("--entry", nargs=4, action="append", metavar=("CONFIG", "VARIANT", "ONNX", "TRAIN_CMD"),
                    required=True)
    ap.add_argument("--shift-data", type=Path, default=None, help="domain-shift set (composites --domain-shift)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args(argv)
    doc = json.loads(a.out.read_text()) if a.out.exists() else {}
    doc["dataset"] = {
        "name": "AVS-Composites v2",
        "seed": a.seed,
        "split": a.split,
        "command": f"python -m c3n.data.composites {a.data} --seed {a.seed}",
    }
    if a.shift_data is not None:
        doc["dataset"]["domain_shift_command"] = (f"python -m c3n.data.composites {a.shift_data} --seed {a.seed} "
                                                  "--domain-shift")
    doc["metric_definitions"] = ("AVSBench: miou = mean per-frame Jaccard (sigmoid > 0.5, empty-GT rule); fscore = "
                                 "F-beta (beta^2 = 0.3, 255 thresholds) with AVSBench batches of 4 clips; "
                                 "fscore_per_clip = batch of 1 clip; fscore_per_frame = batch of 1 frame; "
                                 "false_alarm_rate = share of the empty_clips (silent, noise-floor and off-screen "
                                 "clips: GT empty in every frame) where some frame has >= 0.2 % of its pixels "
                                 "predicted sounding (c3n.eval.metrics.false_alarm); gated = the same after the "
                                 "runtime's silence gate (c3n.eval.evaluate.SilenceGate: < -50 dBFS or top "
                                 "AudioSet class Silence -> no region)")
    models = doc.setdefault("models", {})
    for config, variant, onnx_path, train_cmd in a.entry:
        runner = OnnxRunner(onnx_path, a.threads)
        res = evaluate(a.data, a.split, runner, gate=SilenceGate())
        entry = {
            "onnx": onnx_path,
            "onnx_sha256": sha256_file(Path(onnx_path)),
            "train_command": train_cmd,
            "eval_command": f"python -m c3n.evaluate {a.data} --split {a.split} --model {onnx_path}",
        }
        keys = ("miou", "fscore", "fscore_per_clip", "fscore_per_frame", "clips", "frames", "empty_clips",
                "false_alarm_rate")
        for r in res:
            entry[r["subset"]] = {**{k: r[k] for k in keys}, "gated": r["gated"]}
            print(f"{config}/{variant} {r['subset']}: mIoU {r['miou']:.4f} F {r['fscore']:.4f}", file=sys.stderr)
        if a.shift_data is not None:
            shift = entry["domain_shift"] = {}
            for r in evaluate(a.shift_data, "test", runner, gate=SilenceGate()):
                shift[r["subset"]] = {**{k: r[k] for k in keys}, "gated": r["gated"]}
                print(f"{config}/{variant} domain shift {r['subset']}: mIoU {r['miou']:.4f}", file=sys.stderr)
        models.setdefault(config, {})[variant] = entry
    a.out.write_text(json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
