"""Export C3N to ONNX: one self-describing file per (config, T), CCAM's backward inside the graph.

Contract (read by the Rust runtime, ``src/engine/model.rs``):

* inputs ``frames`` float32 [T,3,224,224] (RGB, ImageNet mean/std), ``audio_logmel`` float32
  [T,1,96,64] (:mod:`c3n.frontend`);
* outputs ``mask_logits`` float32 [T,1,224,224], ``visual_logits`` [T,1000], ``audio_logits``
  [T,521], ``unified_label`` int64 [T], ``c3im_score`` float32 [T], and (schema 2, issue 15)
  ``visual_logit_map`` float32 [T,1000,7,7] (the ImageNet head at each stage-4 cell: pooled
  over a region's cells it gives the region's logits) and ``c3im_affinity`` float32 [T,1000]
  (``max_i S[j,i] a[i]``: the region's unified label is ``argmax_j softmax(l)^0.1[j] · r[j]``);
* opset 17, standard domain only; static shapes;
* ``metadata_props``: ``c3n.schema``, ``c3n.config``, ``c3n.model_version``, ``c3n.trained``,
  ``c3n.variant``, ``c3n.clip_frames``, ``c3n.clip_rate_hz``, ``c3n.input_size``, ``c3n.mean``,
  ``c3n.std``, ``c3n.frontend.*`` (:class:`c3n.frontend.FrontendParams`), ``c3n.labels.imagenet``
  and ``c3n.labels.audioset`` (JSON arrays), ``c3n.similarity.sha256``, ``c3n.alpha`` (C3IM's
  exponent), ``c3n.categories`` (the text of ``assets/categories-v<N>.json``, :mod:`c3n.categories`),
  ``c3n.categories.sha256`` and ``c3n.categories.version``; ``c3n.frame_split`` (issue 16, see
  :func:`mark_frame_split`).

Command: ``python -m c3n.export --config edge --frames 5 [--checkpoint ckpt.pt] --out FILE``.
Without ``--checkpoint`` the decoder is untrained (seeded random init) and the file says so
(``c3n.trained = false``; default file name ``c3n-<config>-untrained-t<T>.onnx``).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import onnx
import torch
from torch import nn

from . import MODEL_VERSION
from .frontend import DEFAULT as FRONTEND
from .model import CONFIGS, C3N

SCHEMA = "2"  # 2: + visual_logit_map, c3im_affinity, c3n.alpha, c3n.categories* (issue 15)
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
INPUT_NAMES = ["frames", "audio_logmel"]
OUTPUT_NAMES = ["mask_logits", "visual_logits", "audio_logits", "unified_label", "c3im_score",
                "visual_logit_map", "c3im_affinity"]


class _ExportWrapper(nn.Module):
    def __init__(self, model: C3N, with_cam: bool = False):
        super().__init__()
        self.model = model
        self.with_cam = with_cam

    def forward(self, frames, audio_logmel):
        return self.model(frames, audio_logmel, t=frames.shape[0], return_cam=self.with_cam, region_outputs=True)


def build_model(config: str, checkpoint: str | None = None, use_ccam: bool = True, seed: int = 0) -> C3N:
    """Build C3N with the pretrained parts; load decoder/backbone weights from ``checkpoint`` if given."""
    from . import fetch
    from .similarity import load_similarity
    from .yamnet import load_yamnet

    torch.manual_seed(seed)
    ckpt = None
    if checkpoint is not None:
        ckpt = torch.load(checkpoint, map_location="cpu", weights_only=False)
        config = ckpt.get("config", config)
        use_ccam = ckpt.get("use_ccam", use_ccam)
    model = C3N(CONFIGS[config], load_yamnet(), torch.from_numpy(load_similarity()),
                str(fetch.mobilenet_v2_weights()), use_ccam=use_ccam)
    if ckpt is not None:
        missing, unexpected = model.load_state_dict(ckpt["model"], strict=False)
        frozen = bool(ckpt.get("frozen_backbone"))  # c3n.train_frozen: the decoder only
        bad = [k for k in missing if not (k.startswith("audio.") or (frozen and k.startswith("backbone.")))]
        bad += list(unexpected)
        if bad:
            raise ValueError(f"{checkpoint}: checkpoint does not match config {config!r}: {bad[:5]}")
    return model.eval()


def metadata(model: C3N, t: int, trained: bool) -> dict[str, str]:
    from . import categories
    from .labels import audioset_names, imagenet_names
    from .model import ALPHA
    from .similarity import similarity_sha256

    cat_text = categories.asset_text()

    md = {
        "c3n.schema": SCHEMA,
        "c3n.config": model.config.name,
        "c3n.decoder_width": str(model.config.width),
        "c3n.model_version": MODEL_VERSION,
        "c3n.trained": "true" if trained else "false",
        "c3n.variant": "c3n" if model.use_ccam else "tpavi-only",
        "c3n.clip_frames": str(t),
        "c3n.clip_rate_hz": "1.0",
        "c3n.input_size": "224",
        "c3n.mean": ",".join(str(m) for m in MEAN),
        "c3n.std": ",".join(str(s) for s in STD),
        "c3n.labels.imagenet": json.dumps(imagenet_names()),
        "c3n.labels.audioset": json.dumps(audioset_names()),
        "c3n.similarity.sha256": similarity_sha256(),
        "c3n.alpha": repr(ALPHA),
        "c3n.categories": cat_text,
        "c3n.categories.sha256": categories.sha256_text(cat_text),
        "c3n.categories.version": str(json.loads(cat_text)["version"]),
    }
    md.update(FRONTEND.as_metadata())
    return md


FRAME_SPLIT_VERSION = 1


def _producers(graph) -> dict[str, onnx.NodeProto]:
    return {o: n for n in graph.node for o in n.output}


def mark_frame_split(m: onnx.ModelProto) -> dict:
    """Name the tensors at which the graph splits into per-frame parts, and return the
    ``c3n.frame_split`` metadata (issue 16).

    The decoder's only cross-frame step is TPAVI's :class:`c3n.decoder.ClipMean` (one per stage,
    ONNX scope ``/model/decoder/tpavi.<i>/clip_mean/``); everything else treats the T frames as
    an independent batch and has no T baked in. For each stage ``i`` this renames
    ``split/k_frame<i>`` (the clip mean's input [T,k,k], the frame's share of K),
    ``split/k_clip<i>`` (its output, K repeated per frame) and ``split/x<i>`` (TPAVI's visual
    input [T,d,H,W], from the ASPP). A runtime may then run the graph up to ``k_frame`` / ``x``
    one frame at a time, average ``k_frame`` over the T frames itself, and run the rest one frame
    at a time from ``k_clip`` = that mean and ``x``: the same maths (``src/engine/split.rs``).

    Metadata: ``{"version": 1, "clip_means": [{"frame": .., "clip": ..}, ..], "carry": [..]}``,
    to which :func:`add_segment_cuts` adds ``"segments": {"per_frame": [[..]], "after": [[..]]}``.
    Raises ValueError when the scopes are not where this expects them.
    """
    g = m.graph
    prod = _producers(g)
    inits = {i.name for i in g.initializer}
    rename: dict[str, str] = {}
    clip_means, carry = [], []
    i = 0
    while any(n.name.startswith(f"/model/decoder/tpavi.{i}/") for n in g.node):
        tp, cm = f"/model/decoder/tpavi.{i}/", f"/model/decoder/tpavi.{i}/clip_mean/"
        inside_cm = [n for n in g.node if n.name.startswith(cm)]
        ins = {x for n in inside_cm for x in n.input
               if x and x not in inits and x in prod and not prod[x].name.startswith(cm)}
        outs = {o for n in g.node if not n.name.startswith(cm) for o in n.input
                if o in prod and prod[o].name.startswith(cm)}
        xs = {x for n in g.node if n.name.startswith(tp) for x in n.input
              if x in prod and prod[x].name.startswith(f"/model/decoder/aspp.{i}/")}
        if len(ins) != 1 or len(outs) != 1 or len(xs) != 1:
            raise ValueError(f"TPAVI {i}: expected one tensor into and out of {cm} and one from the "
                             f"ASPP, got {sorted(ins)}, {sorted(outs)}, {sorted(xs)}")
        for old, new in ((ins.pop(), f"split/k_frame{i}"), (outs.pop(), f"split/k_clip{i}"),
                         (xs.pop(), f"split/x{i}")):
            rename[old] = new
        clip_means.append({"frame": f"split/k_frame{i}", "clip": f"split/k_clip{i}"})
        carry.append(f"split/x{i}")
        i += 1
    if not clip_means:
        raise ValueError("no TPAVI clip-mean scope found in the exported graph")
    for n in g.node:
        n.input[:] = [rename.get(x, x) for x in n.input]
        n.output[:] = [rename.get(x, x) for x in n.output]
    for vi in g.value_info:
        vi.name = rename.get(vi.name, vi.name)
    return {"version": FRAME_SPLIT_VERSION, "clip_means": clip_means, "carry": carry}


def frame_split_parts(m: onnx.ModelProto) -> tuple[onnx.ModelProto, onnx.ModelProto, dict]:
    """The two per-frame graphs of a file with ``c3n.frame_split`` (the Python twin of
    ``src/engine/split.rs``, for tests): ``(per_frame, per_frame_after, split)``.

    * ``per_frame``: inputs ``frames`` [1,3,S,S], ``audio_logmel`` [1,1,96,64]; outputs every
      contract output that does not depend on a clip mean, then the ``frame`` tensors, then the
      ``carry`` tensors (batch 1).
    * ``per_frame_after``: inputs the ``clip`` tensors, then the ``carry`` tensors; outputs the rest
      (``mask_logits``).

    Running ``per_frame`` on each frame, averaging each ``frame`` tensor over the T frames into its
    ``clip`` tensor, then ``per_frame_after`` on each frame gives the whole graph's outputs.
    Raises ValueError when a part would need a tensor the split does not provide.
    """
    from onnx import helper

    split = json.loads({p.key: p.value for p in m.metadata_props}["c3n.frame_split"])
    g = m.graph
    prod = _producers(g)
    inits = {i.name: i for i in g.initializer}
    frame = [c["frame"] for c in split["clip_means"]]
    clip = [c["clip"] for c in split["clip_means"]]
    carry = list(split["carry"])
    graph_inputs = [i.name for i in g.input]

    def closure(outputs, stop):
        need, stack, seen = set(), list(outputs), set(stop)
        while stack:
            x = stack.pop()
            if not x or x in seen or x in inits:
                continue
            seen.add(x)
            if x not in prod:
                raise ValueError(f"{x} is neither produced nor an input of this part")
            need.add(id(prod[x]))
            stack.extend(prod[x].input)
        return [n for n in g.node if id(n) in need]

    outs = [o.name for o in g.output]
    clip_nodes = {id(n) for n in closure(clip, graph_inputs)}  # the clip means and upstream
    after = [o for o in outs if any(id(n) not in clip_nodes and set(n.input) & set(clip)
                                    for n in closure([o], graph_inputs))]
    before = [o for o in outs if o not in after]
    types = {vi.name: vi.type.tensor_type.elem_type for vi in list(g.output)}

    def part(inputs, outputs):
        nodes = closure(outputs, inputs)
        used = {x for n in nodes for x in n.input}
        gi = [helper.make_tensor_value_info(x, onnx.TensorProto.FLOAT, None) for x in inputs]
        go = [helper.make_tensor_value_info(x, types.get(x, onnx.TensorProto.FLOAT), None) for x in outputs]
        pg = helper.make_graph(nodes, "frame_split_part", gi, go, [inits[x] for x in inits if x in used])
        pm = helper.make_model(pg, opset_imports=m.opset_import)
        pm.ir_version = m.ir_version
        return pm

    per_frame = part(graph_inputs, before + frame + carry)
    if set(graph_inputs) & {x for n in closure(after, clip + carry) for x in n.input}:
        raise ValueError("the part after the clip means reads the graph inputs")
    return per_frame, part(clip + carry, after), split


def _part_costs(part: onnx.ModelProto, shapes: dict[str, list[int]]) -> tuple[list[int], dict[str, int]]:
    """Per-node cost of a frame-split part at batch 1 (multiply-adds of Conv / MatMul / Gemm,
    output elements of anything else, 0 for Constant) and each tensor's ONNX element type."""
    import numpy as np
    from onnx import shape_inference

    part = onnx.ModelProto.FromString(part.SerializeToString())
    for vi in part.graph.input:
        dims = list(shapes[vi.name])
        dims[0] = 1
        vi.type.tensor_type.ClearField("shape")
        for d in dims:
            vi.type.tensor_type.shape.dim.add().dim_value = d
    inf = shape_inference.infer_shapes(part, data_prop=True)
    g = inf.graph
    info = {vi.name: vi.type.tensor_type for vi in list(g.value_info) + list(g.input) + list(g.output)}
    init = {i.name: list(i.dims) for i in g.initializer}

    def shape(x):
        if x in init:
            return init[x]
        t = info.get(x)
        return [d.dim_value for d in t.shape.dim] if t is not None and t.HasField("shape") else None

    costs = []
    for n in g.node:
        out = shape(n.output[0])
        if n.op_type == "Constant" or out is None:
            costs.append(0)
        elif n.op_type == "Conv":
            costs.append(int(np.prod(out)) * int(np.prod(shape(n.input[1])[1:])))
        elif n.op_type in ("MatMul", "Gemm"):
            a = shape(n.input[0])
            trans_a = any(at.name == "transA" and at.i for at in n.attribute)
            costs.append(int(np.prod(out)) * (a[0] if trans_a else a[-1]))
        else:
            costs.append(int(np.prod(out)))
    return costs, {k: v.elem_type for k, v in info.items()}


def segment_cut(part: onnx.ModelProto, shapes: dict[str, list[int]], fraction: float = 0.5) -> list[str]:
    """Where to cut a frame-split part into two segments run one after the other on a frame
    (issue 16: smaller jobs balance T frames over the threads): the tensors crossing the node
    position whose cumulative cost (:func:`_part_costs`) is nearest ``fraction`` of the part's,
    among positions where every crossing tensor is float32 (or an ArgMax label), so that no shape
    computation crosses. Crossing: computed before (or a part input) and read after, or a part
    output computed before. Constants are left to the segment that reads them."""
    import numpy as np

    g = part.graph
    costs, types = _part_costs(part, shapes)
    cum = np.cumsum(costs) / max(1, sum(costs))
    consumers: dict[str, int] = {}
    for i, n in enumerate(g.node):
        for x in n.input:
            consumers[x] = max(consumers.get(x, -1), i)  # last reader
    producer_op = {o: n.op_type for n in g.node for o in n.output}
    outs = {o.name for o in g.output}
    best = None
    live: set[str] = {vi.name for vi in g.input}
    for p in range(1, len(g.node)):
        n = g.node[p - 1]
        if n.op_type != "Constant":
            live.update(n.output)
        cross = {x for x in live if x in outs or consumers.get(x, -1) >= p}
        live = cross | {x for x in live if x in outs}
        ok = all(types.get(x) == onnx.TensorProto.FLOAT or producer_op.get(x) == "ArgMax" for x in cross)
        if ok and (best is None or abs(cum[p - 1] - fraction) < abs(best[0] - fraction)):
            best = (cum[p - 1], sorted(cross))
    if best is None:
        raise ValueError("no position cuts the part with float tensors only")
    return best[1]


def add_segment_cuts(m: onnx.ModelProto) -> dict:
    """Adds ``segments`` to the ``c3n.frame_split`` metadata of ``m``: for each part
    (``per_frame``, ``after``) the tensors at which it is cut in two (:func:`segment_cut`).
    Returns the updated metadata."""
    from onnx import shape_inference

    entry = next(p for p in m.metadata_props if p.key == "c3n.frame_split")
    split = json.loads(entry.value)
    whole = shape_inference.infer_shapes(m, data_prop=True).graph
    shapes = {vi.name: [d.dim_value for d in vi.type.tensor_type.shape.dim]
              for vi in list(whole.value_info) + list(whole.input) + list(whole.output)}
    before, after, _ = frame_split_parts(m)
    split["segments"] = {"per_frame": [segment_cut(before, shapes)], "after": [segment_cut(after, shapes)]}
    entry.value = json.dumps(split)
    return split


def export(model: C3N, t: int, out: Path, trained: bool, with_cam: bool = False) -> Path:
    """Trace ``model`` at T = ``t`` and write ``out`` (single file, weights inside).

    ``with_cam`` adds outputs ``cam_w1..cam_w4`` [T,C_k] (Grad-CAM channel weights) for tests;
    shipped files never have them.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    frames = torch.randn(t, 3, 224, 224)
    logmel = torch.randn(t, 1, 96, 64)
    tmp = out.with_suffix(".tmp.onnx")
    with torch.no_grad():
        shapes = [tuple(o.shape) for o in _ExportWrapper(model, with_cam).eval()(frames, logmel)]
        names = OUTPUT_NAMES + ([f"cam_w{k}" for k in range(1, 5)] if with_cam else [])
        torch.onnx.export(_ExportWrapper(model, with_cam).eval(), (frames, logmel), str(tmp), dynamo=False,
                          opset_version=17, input_names=INPUT_NAMES, output_names=names,
                          do_constant_folding=True)
    m = onnx.load(str(tmp))
    for out_vi, shape in zip(m.graph.output, shapes):  # the tracer leaves some dims symbolic
        dims = out_vi.type.tensor_type.shape.dim
        del dims[:]
        for n in shape:
            dims.add().dim_value = n
    split = mark_frame_split(m)
    del m.metadata_props[:]
    for k, v in metadata(model, t, trained).items():
        m.metadata_props.add(key=k, value=v)
    m.metadata_props.add(key="c3n.frame_split", value=json.dumps(split))
    add_segment_cuts(m)
    m.producer_name = "c3n-edge models/c3n/export.py"
    onnx.checker.check_model(m)
    onnx.save(m, str(out))
    tmp.unlink()
    return out


def reference_input(t: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed real input: tuxpaint violin / dog cut-outs over grey (alternating) and the violin's
    recording. frames [t,3,224,224] (normalised), audio_logmel [t,1,96,64]."""
    import numpy as np
    from PIL import Image

    from . import fetch
    from .audio_io import load_audio_16k
    from .frontend import clip_patches

    stamps = fetch.tuxpaint_stamps_dir()
    out = []
    for i in range(t):
        rel = "hobbies/music/string/violin.png" if i % 2 == 0 else "animals/mammals/dogs/dog.png"
        im = Image.open(stamps / rel).convert("RGBA")
        canvas = Image.new("RGBA", (224, 224), (128, 128, 128, 255))
        im.thumbnail((150, 150))
        canvas.alpha_composite(im, (20 + 8 * i, 30 + 5 * i))
        arr = np.asarray(canvas.convert("RGB"), dtype=np.float32) / 255.0
        arr = (arr - np.array(MEAN, dtype=np.float32)) / np.array(STD, dtype=np.float32)
        out.append(torch.from_numpy(arr.transpose(2, 0, 1).copy()))
    wave = load_audio_16k(stamps / "hobbies/music/string/violin.ogg")
    return torch.stack(out), torch.from_numpy(clip_patches(wave, t, 1.0))


def save_reference(model: C3N, onnx_path: Path, ref_dir: Path) -> Path:
    """Write ``ref_dir/<onnx stem>/``: ``model.onnx`` (hard link or copy), the fixed real input
    (``frames.npy``, ``audio_logmel.npy``) and PyTorch eager outputs ``<output>.npy``; read by the
    Rust tract test (``tests/engine_tract.rs``)."""
    import os
    import shutil

    import numpy as np

    t = int(onnx.load(str(onnx_path), load_external_data=False).graph.input[0].type.tensor_type.shape.dim[0].dim_value)
    d = Path(ref_dir) / onnx_path.stem
    d.mkdir(parents=True, exist_ok=True)
    dst = d / "model.onnx"
    dst.unlink(missing_ok=True)
    try:
        os.link(onnx_path, dst)
    except OSError:
        shutil.copyfile(onnx_path, dst)
    frames, logmel = reference_input(t)
    with torch.no_grad():
        outs = model(frames, logmel, t=t, region_outputs=True)
    np.save(d / "frames.npy", frames.numpy())
    np.save(d / "audio_logmel.npy", logmel.numpy())
    for name, o in zip(OUTPUT_NAMES, outs):
        np.save(d / f"{name}.npy", o.numpy())
    return d


def default_name(config: str, t: int, trained: bool, variant: str = "c3n") -> str:
    v = "" if variant == "c3n" else f"-{variant}"
    return f"c3n-{config}{v}{'' if trained else '-untrained'}-t{t}.onnx"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Export C3N to ONNX (CCAM backward in-graph).")
    ap.add_argument("--config", choices=sorted(CONFIGS), default="edge")
    ap.add_argument("--frames", type=int, nargs="+", default=[5, 1], help="T values to export (default 5 1)")
    ap.add_argument("--checkpoint", help="training checkpoint (.pt); omit for an untrained decoder")
    ap.add_argument("--no-ccam", action="store_true", help="TPAVI-only ablation (without a checkpoint)")
    ap.add_argument("--out-dir", default=None, help="output folder (default: models/build)")
    ap.add_argument("--reference-dir", default=None,
                    help="also write PyTorch reference I/O for the Rust tract test under this folder")
    ap.add_argument("--name", default=None, help="file name pattern with {t}, default c3n-<config>[-untrained]-t{t}.onnx")
    a = ap.parse_args(argv)
    from .paths import build_dir

    model = build_model(a.config, a.checkpoint, use_ccam=not a.no_ccam)
    trained = a.checkpoint is not None
    out_dir = Path(a.out_dir) if a.out_dir else build_dir()
    for t in a.frames:
        name = a.name.format(t=t) if a.name else default_name(model.config.name, t, trained,
                                                              "c3n" if model.use_ccam else "tpavi-only")
        p = export(model, t, out_dir / name, trained)
        print(f"{p} ({p.stat().st_size / 1e6:.1f} MB)")
        if a.reference_dir:
            print(f"  reference I/O: {save_reference(model, p, Path(a.reference_dir))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
