"""The per-frame split of an exported graph (issue 16): the tensors at which the T frames of a
clip can be run one at a time (``c3n.frame_split`` metadata, read by ``src/engine/split.rs``),
the two per-frame parts they delimit, and the cut of each part into two segments.
"""
from __future__ import annotations

import json

import onnx

FRAME_SPLIT_VERSION = 1


def _producers(graph) -> dict[str, onnx.NodeProto]:
    return {o: n for n in graph.node for o in n.output}


def mark_frame_split(m: onnx.ModelProto, scopes: list[tuple[str | None, str]] | None = None,
                     prefix: str = "/model/decoder/") -> dict:
    """Name the tensors at which the graph splits into per-frame parts, and return the
    ``c3n.frame_split`` metadata (issue 16).

    The decoder's only cross-frame step is TPAVI's :class:`c3n.model.decoder.ClipMean` (one per stage,
    ONNX scope ``/model/decoder/tpavi.<i>/clip_mean/``); everything else treats the T frames as
    an independent batch and has no T baked in. For each stage ``i`` this renames
    ``split/k_frame<i>`` (the clip mean's input [T,k,k], the frame's share of K),
    ``split/k_clip<i>`` (its output, K repeated per frame) and ``split/x<i>`` (TPAVI's visual
    input [T,d,H,W], from the ASPP). A runtime may then run the graph up to ``k_frame`` / ``x``
    one frame at a time, average ``k_frame`` over the T frames itself, and run the rest one frame
    at a time from ``k_clip`` = that mean and ``x``: the same maths (``src/engine/split.rs``).

    ``scopes`` names the modules per stage for other decoders (:mod:`c3n.model.official_decoder`):
    ``(tpavi, projection)`` module names under ``prefix``; a stage whose ``tpavi`` is None has no
    clip mean, and the projection's output (read by the fusion) is carried instead. Without
    ``scopes``: ``tpavi.<i>`` / ``aspp.<i>`` while such scopes exist (:class:`c3n.model.decoder.Decoder`).

    Metadata: ``{"version": 1, "clip_means": [{"frame": .., "clip": ..}, ..], "carry": [..]}``,
    to which :func:`add_segment_cuts` adds ``"segments": {"per_frame": [[..]], "after": [[..]]}``.
    Raises ValueError when the scopes are not where this expects them.
    """
    g = m.graph
    prod = _producers(g)
    inits = {i.name for i in g.initializer}
    rename: dict[str, str] = {}
    clip_means, carry = [], []
    if scopes is None:
        scopes = []
        while any(n.name.startswith(f"{prefix}tpavi.{len(scopes)}/") for n in g.node):
            scopes.append((f"tpavi.{len(scopes)}", f"aspp.{len(scopes)}"))
    for i, (tpavi, proj) in enumerate(scopes):
        if tpavi is None:
            pj = f"{prefix}{proj}/"
            outs = {x for n in g.node if not n.name.startswith(pj) for x in n.input
                    if x in prod and prod[x].name.startswith(pj)}
            if len(outs) != 1:
                raise ValueError(f"stage {i}: expected one tensor out of {pj}, got {sorted(outs)}")
            rename[outs.pop()] = f"split/x{i}"
            carry.append(f"split/x{i}")
            continue
        tp, cm = f"{prefix}{tpavi}/", f"{prefix}{tpavi}/clip_mean/"
        inside_cm = [n for n in g.node if n.name.startswith(cm)]
        ins = {x for n in inside_cm for x in n.input
               if x and x not in inits and x in prod and not prod[x].name.startswith(cm)}
        outs = {o for n in g.node if not n.name.startswith(cm) for o in n.input
                if o in prod and prod[o].name.startswith(cm)}
        xs = {x for n in g.node if n.name.startswith(tp) for x in n.input
              if x in prod and prod[x].name.startswith(f"{prefix}{proj}/")}
        if len(ins) != 1 or len(outs) != 1 or len(xs) != 1:
            raise ValueError(f"TPAVI {i}: expected one tensor into and out of {cm} and one from the "
                             f"ASPP, got {sorted(ins)}, {sorted(outs)}, {sorted(xs)}")
        for old, new in ((ins.pop(), f"split/k_frame{i}"), (outs.pop(), f"split/k_clip{i}"),
                         (xs.pop(), f"split/x{i}")):
            rename[old] = new
        clip_means.append({"frame": f"split/k_frame{i}", "clip": f"split/k_clip{i}"})
        carry.append(f"split/x{i}")
    if not clip_means:
        raise ValueError("no TPAVI clip-mean scope found in the exported graph")
    # the in_view head (issue 26) reads the deepest TPAVI output (after the clip means) and the
    # audio embedding (before them): the embedding is carried too, as ``split/in_view_audio``
    iv = "/model/in_view/"
    ext = {x for n in g.node if n.name.startswith(iv) for x in n.input
           if x and x not in inits and x in prod and not prod[x].name.startswith(iv)
           and not prod[x].name.startswith("/model/decoder/") and prod[x].op_type != "Constant"}
    if any(n.name.startswith(iv) for n in g.node):
        if len(ext) != 1:
            raise ValueError(f"in_view head: expected one tensor from outside the decoder, got {sorted(ext)}")
        rename[ext.pop()] = "split/in_view_audio"
        carry.append("split/in_view_audio")
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
