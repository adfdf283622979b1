#!/usr/bin/env python3
"""Spread of the real C3N export's outputs across kernels, for the tolerance of
tests/engine_tract.rs: onnxruntime (this CPU's kernels, threads 1/2, optimisations on/off) vs the
PyTorch reference saved by `c3n.export --reference-dir`. Prints, per output, the largest absolute
difference and the reference's largest magnitude.

    python tests/tolerance/parity_spread.py $C3N_TEST_ARTIFACTS/c3n-edge-untrained-t5
    qemu-x86_64-static -cpu EPYC-Rome .venv/bin/python tests/tolerance/parity_spread.py DIR
"""
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort

OUT = ["mask_logits", "visual_logits", "audio_logits", "unified_label", "c3im_score"]


def main():
    d = Path(sys.argv[1])
    feeds = {k: np.load(d / f"{k}.npy") for k in ["frames", "audio_logmel"]}
    ref = {k: np.load(d / f"{k}.npy") for k in OUT}
    for name, level, threads in [("ort", ort.GraphOptimizationLevel.ORT_ENABLE_ALL, 1),
                                 ("ort-2threads", ort.GraphOptimizationLevel.ORT_ENABLE_ALL, 2),
                                 ("ort-noopt", ort.GraphOptimizationLevel.ORT_DISABLE_ALL, 1)]:
        so = ort.SessionOptions()
        so.graph_optimization_level = level
        so.intra_op_num_threads = threads
        s = ort.InferenceSession(str(d / "model.onnx"), so, providers=["CPUExecutionProvider"])
        got = dict(zip(OUT, s.run(OUT, feeds)))
        for k in ["mask_logits", "visual_logits", "audio_logits", "c3im_score"]:
            diff = float(np.abs(got[k].astype(np.float64) - ref[k]).max())
            print(f"{d.name} {name:13s} {k:14s} max|diff| {diff:.3e}  max|ref| {float(np.abs(ref[k]).max()):.3e}")
        print(f"{d.name} {name:13s} unified_label equal: {bool((got['unified_label'] == ref['unified_label']).all())}")


if __name__ == "__main__":
    main()
