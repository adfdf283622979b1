"""INT8 (QDQ) and FP16 variants of an exported C3N ONNX, and their accuracy against FP32.

``python -m c3n.quantize DATA --model c3n-edge-t5.onnx --int8-out c3n-edge-t5-int8.onnx
[--fp16-out build/c3n-edge-t5-fp16.onnx] [--calib-clips 32] [--eval-limit N] [--json-out FILE]``

* **INT8**: onnxruntime.quantization static quantisation in **QDQ** format (explicit
  QuantizeLinear/DequantizeLinear pairs, the form TensorRT 10 builds INT8 engines from — implicit
  calibration is deprecated there), symmetric INT8 activations and per-channel symmetric INT8
  weights (TensorRT requires zero points of 0), Conv / MatMul / Gemm only and not those of CCAM's
  written-out backward (scope ``cam_backward``: gradient maps stay float) and of the
  class-activation map ``visual_logit_map`` (float, on the quantised model's stage-4 map), MinMax calibration on
  ``--calib-clips`` clips of the **training** split of DATA (S4 and MS3 in proportion, evenly
  spaced; never the test split).
* **FP16**: ``onnxruntime.transformers.float16.convert_float_to_float16`` (onnxruntime's copy of
  onnxconverter-common's converter) with float32 inputs/outputs kept (``keep_io_types``) and
  LogSoftmax in float32 — an approximation of what TensorRT's FP16 mode computes.
* **Accuracy**: AVSBench mIoU / F-score of every variant on the **test** split of DATA, run with
  onnxruntime's CPU execution provider (no GPU needed), one thread.

The ONNX ``metadata_props`` (the c3n contract) are copied to the variants, plus
``c3n.precision`` (``int8-qdq`` / ``fp16``) and, for INT8, ``c3n.calibration``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import torch

from ..data.avsbench import AvsClipDataset
from ..eval.evaluate import SUBSETS
from ..eval.metrics import AvsMetrics


def _clips(data: Path, split: str, n: int | None) -> list[tuple[AvsClipDataset, int]]:
    """(dataset, index) pairs: all clips of ``split`` (S4 then MS3), or ``n`` spread evenly."""
    items = []
    for subset in ("s4", "ms3"):
        if (data / SUBSETS[subset]).exists():
            ds = AvsClipDataset(data, subset=subset, split=split, augment=False, cache_logmel=False)
            items += [(ds, i) for i in range(len(ds))]
    if n is not None and n < len(items):
        step = len(items) / n
        items = [items[int(k * step)] for k in range(n)]
    return items


def _input_t(path: Path) -> int:
    m = onnx.load(str(path), load_external_data=False)
    return m.graph.input[0].type.tensor_type.shape.dim[0].dim_value


class CalibrationReader:
    """onnxruntime CalibrationDataReader over training clips (T-frame windows of each clip)."""

    def __init__(self, data: Path, n: int, t: int):
        self.items = _clips(data, "train", n)
        self.t = t
        self._it = self._gen()

    def _gen(self):
        for ds, i in self.items:
            item = ds[i]
            for s in range(0, item["frames"].shape[0], self.t):
                yield {"frames": item["frames"][s:s + self.t].numpy(),
                       "audio_logmel": item["audio_logmel"][s:s + self.t].numpy()}

    def get_next(self):
        return next(self._it, None)

    def rewind(self):
        self._it = self._gen()


def _copy_metadata(src: Path, dst: Path, extra: dict[str, str]) -> None:
    meta = {p.key: p.value for p in onnx.load(str(src), load_external_data=False).metadata_props}
    meta.update(extra)
    m = onnx.load(str(dst))
    del m.metadata_props[:]
    for k, v in meta.items():
        m.metadata_props.add(key=k, value=v)
    onnx.save(m, str(dst))


def _logit_map_nodes(graph) -> list[str]:
    """Names of the MatMul / Add / Reshape nodes that compute the ``visual_logit_map`` output."""
    producer = {o: n for n in graph.node for o in n.output}
    names, stack = [], ["visual_logit_map"]
    while stack:
        n = producer.get(stack.pop())
        if n is None or n.name in names or n.op_type not in ("MatMul", "Add", "Reshape"):
            continue
        names.append(n.name)
        if n.op_type != "MatMul":
            stack.extend(n.input)
    return names


def quantize_int8(model: Path, out: Path, data: Path, calib_clips: int) -> dict:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    t0 = time.time()
    reader = CalibrationReader(data, calib_clips, _input_t(model))
    # CCAM's written-out backward stays float (c3n.model.backbone.CamBackward), and so does the
    # class-activation map (its MatMul shares the head's weight with the quantised Gemm as the
    # *left* operand, which onnxruntime's per-channel weight handling cannot split)
    graph = onnx.load(str(model), load_external_data=False).graph
    cam_backward = [n.name for n in graph.node if "/cam_backward/" in n.name] + _logit_map_nodes(graph)
    # the fusion blocks' bilinear upsampling as matrix products with constant interpolation
    # matrices (issue 16): an interpolation, not a layer; int8 weights would blur it
    cam_backward += [n.name for n in graph.node
                     if n.op_type == "MatMul" and n.name.startswith("/model/decoder/path")]
    quantize_static(
        str(model), str(out), reader,
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=["Conv", "MatMul", "Gemm"],
        nodes_to_exclude=cam_backward,
        per_channel=True,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=CalibrationMethod.MinMax,
        extra_options={"ActivationSymmetric": True, "WeightSymmetric": True},
    )
    calib = f"MinMax on {len(reader.items)} clips of the train split of {data.name}"
    _copy_metadata(model, out, {"c3n.precision": "int8-qdq", "c3n.calibration": calib})
    return {"seconds": round(time.time() - t0, 1), "calibration": calib}


def convert_fp16(model: Path, out: Path) -> dict:
    # onnxruntime's maintained copy of onnxconverter-common's converter (no extra package)
    from onnxruntime.transformers import float16

    t0 = time.time()
    m = onnx.load(str(model))
    # Stale float32 value_info (e.g. on Cast outputs in TPAVI) would be relabelled float16 and
    # contradict the nodes; dropping it lets the converter and onnxruntime re-infer the types.
    # LogSoftmax stays float32 (in float16 its input and declared output types disagree).
    del m.graph.value_info[:]
    block = list(float16.DEFAULT_OP_BLOCK_LIST) + ["LogSoftmax"]
    m16 = float16.convert_float_to_float16(m, keep_io_types=True, op_block_list=block)
    onnx.save(m16, str(out))
    _copy_metadata(model, out, {"c3n.precision": "fp16"})
    return {"seconds": round(time.time() - t0, 1)}


def evaluate_cpu(model: Path, data: Path, limit: int | None) -> list[dict]:
    """AVSBench metrics per subset on the test split with onnxruntime's CPU provider (1 thread)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(model), so, providers=["CPUExecutionProvider"])
    t = sess.get_inputs()[0].shape[0]
    res = []
    for subset in ("s4", "ms3"):
        if not (data / SUBSETS[subset]).exists():
            continue
        ds = AvsClipDataset(data, subset=subset, split="test", augment=False, cache_logmel=False)
        n = len(ds) if limit is None else min(limit, len(ds))
        m = AvsMetrics()
        t0 = time.time()
        infer_s = 0.0
        for i in range(n):
            item = ds[i]
            outs = []
            for s in range(0, item["frames"].shape[0], t):
                ti = time.time()
                outs.append(sess.run(["mask_logits"], {"frames": item["frames"][s:s + t].numpy(),
                                                       "audio_logmel": item["audio_logmel"][s:s + t].numpy()})[0])
                infer_s += time.time() - ti
            m.update(torch.from_numpy(np.concatenate(outs)), item["masks"], valid=item["mask_valid"],
                     frames_per_clip=item["frames"].shape[0])
        s = m.summary()
        res.append({"subset": subset, "miou": s["miou"], "fscore": s["fscore"],
                    "fscore_per_frame": s["fscore_per_frame"], "clips": s["clips"], "frames": s["frames"],
                    "infer_ms_per_clip": round(1e3 * infer_s / max(n, 1), 1),
                    "wall_s": round(time.time() - t0, 1)})
        print(f"{model.name} {subset}: mIoU {s['miou']:.4f} F {s['fscore']:.4f} ({n} clips)", file=sys.stderr)
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="INT8 QDQ / FP16 variants of a C3N ONNX and their accuracy.")
    ap.add_argument("data", type=Path, help="AVSBench-format folder (train split: calibration; test: accuracy)")
    ap.add_argument("--model", type=Path, required=True, help="FP32 ONNX exported by c3n.export")
    ap.add_argument("--int8-out", type=Path)
    ap.add_argument("--fp16-out", type=Path)
    ap.add_argument("--calib-clips", type=int, default=32)
    ap.add_argument("--eval-limit", type=int, default=None, help="first N test clips per subset")
    ap.add_argument("--no-eval", action="store_true")
    ap.add_argument("--eval-only", nargs="+", choices=["fp32", "int8-qdq", "fp16"],
                    help="evaluate only these variants")
    ap.add_argument("--json-out", type=Path)
    a = ap.parse_args(argv)
    if not a.model.is_file():
        print(f"error: model {a.model} not found", file=sys.stderr)
        return 2
    if not any((a.data / d).exists() for d in SUBSETS.values()):
        print(f"error: {a.data} holds none of {list(SUBSETS.values())}", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    report: dict = {"model": str(a.model), "data": str(a.data), "variants": {}}
    variants = {"fp32": a.model}
    if a.int8_out:
        report["int8"] = quantize_int8(a.model, a.int8_out, a.data, a.calib_clips)
        variants["int8-qdq"] = a.int8_out
    if a.fp16_out:
        report["fp16"] = convert_fp16(a.model, a.fp16_out)
        variants["fp16"] = a.fp16_out
    if not a.no_eval:
        for name, path in variants.items():
            if a.eval_only and name not in a.eval_only:
                continue
            report["variants"][name] = {"file": str(path), "bytes": path.stat().st_size,
                                        "test": evaluate_cpu(path, a.data, a.eval_limit)}
    text = json.dumps(report, indent=2)
    if a.json_out:
        a.json_out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
