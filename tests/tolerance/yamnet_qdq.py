#!/usr/bin/env python3
"""Measures YAMNet float vs its INT8 QDQ export (models/tests/test_pretrained.py::
test_yamnet_float_vs_qdq_top1) under several onnxruntime kernel settings, on this CPU.

    PYTHONPATH=models python tests/tolerance/yamnet_qdq.py
    qemu-x86_64-static -cpu EPYC-Rome .venv/bin/python tests/tolerance/yamnet_qdq.py  # AVX2-only

Prints, per recording and setting, the float and QDQ clip-level top-1 and the Pearson correlation
of the clip-mean logits. Settings: `default` (ORT's fused int8 kernels, chosen per CPU: VNNI,
AVX-512, AVX2 u8s8 with its int16 saturation), `basic` (level-1 graph optimisations only: no QDQ
fusion into int8 kernels; `session.x64quantprecision`, the exact-AVX2 option, fails to load this
model in onnxruntime 1.2x), `no-fusion` (graph optimisations off: the QDQ pairs stay
DequantizeLinear → float op → QuantizeLinear, quantisation simulated in float, no int8 kernel).
"""
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

sys.path.insert(0, "models")
from c3n import audio_io, packages  # noqa: E402
from c3n.model import yamnet  # noqa: E402

sys.path.insert(0, "models/tests")
from test_pretrained import RECORDINGS  # noqa: E402


def sessions(path):
    out = {}
    so = ort.SessionOptions()
    out["default"] = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    out["basic"] = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    out["no-fusion"] = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    return out


def main():
    stamps = packages.tuxpaint_stamps_dir()
    path = str(packages.yamnet_qdq_dir() / "model.onnx")
    m = onnx.load(path, load_external_data=False)
    ini = {t.name: t for t in m.graph.initializer}
    dq_in = next(n for n in m.graph.node if n.op_type == "DequantizeLinear" and n.input[0] == "audio")
    q_out = next(n for n in m.graph.node if n.op_type == "QuantizeLinear" and n.output[0] == "class_scores")
    s_in, z_in = (numpy_helper.to_array(ini[k]).astype(np.float32) for k in dq_in.input[1:3])
    s_out, z_out = (numpy_helper.to_array(ini[k]).astype(np.float32) for k in q_out.input[1:3])
    ort_float = ort.InferenceSession(str(yamnet.make_float_onnx()), providers=["CPUExecutionProvider"])
    qs = sessions(path)
    print(f"onnxruntime {ort.__version__}")
    for r in RECORDINGS:
        x = yamnet.waveform_patches(audio_io.load_audio_16k(stamps / r))
        (lf,) = ort_float.run(["logits"], {"audio": x})
        for name, sq in qs.items():
            lq = []
            for patch in x:
                q = np.clip(np.round(patch / s_in) + z_in, 0, 255).astype(np.uint8)[None]
                lq.append((sq.run(None, {"audio": q})[0].astype(np.float32) - z_out) * s_out)
            lq = np.concatenate(lq)
            corr = np.corrcoef(lf.mean(0), lq.mean(0))[0, 1]
            print(f"{r:40s} {name:18s} top-1 float {lf.mean(0).argmax():3d} qdq {lq.mean(0).argmax():3d}  "
                  f"corr {corr:.4f}", flush=True)


if __name__ == "__main__":
    main()
