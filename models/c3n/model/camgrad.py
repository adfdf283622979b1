"""CCAM's Grad-CAM channel weights as ordinary forward operations, for any visual backbone.

CCAM (docs/c3n-method.md §7) needs, at inference, the gradient of ``visual_logits[n, label[n]]``
with respect to the output of the last block of each of the four backbone stages, taken *before*
the stage norm; its channel weights are the spatial mean of that gradient, ``[N, C_k]``. Neither
tract nor TensorRT has autograd (docs/c3n-method.md §12), so this module turns the backward pass
into a plain graph once per input shape and replays it, so that ``torch.onnx.export(...,
dynamo=False)`` records ordinary forward ops:

1. **Trace.** ``make_fx`` (fake tensors: no compute) records the joint function
   ``frames, label -> (stages, visual_logits, cam weights)``, which calls
   ``torch.autograd.grad(visual_logits, taps, one_hot(label))``. The backbone's parameters and
   buffers are graph inputs, so the export links them to the same initializers as the forward.
   The backward ops are decomposed into forward ones (``torch._decomp``), and
   ``convolution_backward``'s input gradient becomes forward ``Conv``s (flipped kernel at stride
   1, one per input phase when strided; :func:`_convolution_backward`); weight gradients are
   never requested. The backward stops at the stage-1 tap (nothing below it needs a gradient).
2. **Split.** The joint graph is cut where it starts to depend on ``label``
   (:func:`_partition`): the forward part gives the stage maps, the logits and the activations
   the backward reads; the backward part takes those and the label. The label is computed
   between the two (C3IM), inside the same exported graph, and the forward runs once.
3. **Replay.** :class:`_Replay` runs the two parts and maps the aten ops that the TorchScript
   ONNX exporter has no symbolic for to equivalent ``torch`` calls (``_OVERRIDES``), with the
   leading size of reshapes as -1, so that no frame count is baked in (the runtime's frame split
   runs the graph one frame at a time). An op with neither symbolic nor override fails the export
   with the exporter's ``UnsupportedOperatorError`` naming it: add an override.

Which tensors are the taps (the last block outputs) is the backbone's business:
``backbone.forward_taps(frames) -> (stages, visual_logits, taps)``, with ``backbone.tap_dims``
the spatial axes of the taps (``(1,)`` for transformer tokens ``[N, L, C]``, ``(2, 3)`` for maps
``[N, C, H, W]``). :class:`c3n.model.backbone.MobileNetV2Backbone` (no stage norm: its taps are its
stage maps) is adapted here.

The hand-written MobileNetV2 backward of :mod:`c3n.model.backbone` stays the shipped route; see
the issue 24 report for the cost comparison.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch._decomp import get_decompositions
from torch.fx.experimental.proxy_tensor import make_fx

aten = torch.ops.aten


# ---------------------------------------------------------------------------------------------
# the backbone side


def forward_taps(backbone: nn.Module, frames: torch.Tensor):
    """``(stages, visual_logits, taps, tap_dims)`` of ``backbone`` on ``frames`` [N,3,H,W].

    ``taps``: the 4 last-block outputs, before the stage norm, as the later layers consume them.
    """
    if hasattr(backbone, "forward_taps"):
        stages, logits, taps = backbone.forward_taps(frames)
        return list(stages), logits, list(taps), tuple(backbone.tap_dims)
    from .backbone import MobileNetV2Backbone

    if isinstance(backbone, MobileNetV2Backbone):
        stages, logits, _ = backbone(frames, record=False)
        return list(stages), logits, list(stages), (2, 3)
    raise TypeError(f"{type(backbone).__name__} has no forward_taps")


def _one_hot(label: torch.Tensor, classes: int, dtype: torch.dtype) -> torch.Tensor:
    """label int64 [N] -> float [N, classes] (an ``Equal`` against a constant range: no scatter)."""
    return (label[:, None] == torch.arange(classes, device=label.device)).to(dtype)


def cam_weights_reference(backbone: nn.Module, frames: torch.Tensor, label: torch.Tensor) -> list[torch.Tensor]:
    """The definition, by eager autograd: spatial mean of ``d sum_n logits[n, label[n]] / d tap_k``.

    frames [N,3,H,W], label int64 [N] -> 4 tensors [N, C_k]. Differentiable neither way (weights
    are stop-gradient in CCAM); works in training mode too.
    """
    with torch.enable_grad():
        x = frames.detach().requires_grad_(True)
        _, logits, taps, dims = forward_taps(backbone, x)
        grads = torch.autograd.grad(logits, taps, _one_hot(label, logits.shape[1], logits.dtype))
    return [_tap_mean(g.detach(), dims) for g in grads]


def _tap_mean(g: torch.Tensor, dims: Sequence[int]) -> torch.Tensor:
    """[N, C] either way: tokens [N,L,C] -> mean over L, maps [N,C,H,W] -> mean over H, W."""
    return g.mean(dim=tuple(dims))


# ---------------------------------------------------------------------------------------------
# trace


def _convolution_backward(grad_out, inp, weight, bias_sizes, stride, padding, dilation, transposed,
                          output_padding, groups, output_mask):
    """``convolution_backward`` for the input gradient only (weight gradients are never requested).

    Stride 1: a forward convolution with the spatially flipped, per-group transposed weight and
    padding ``dilation·(k-1) - padding`` (``Conv``: tract runs ``ConvTranspose`` as a slow loop);
    otherwise a transposed convolution (``ConvTranspose``) with the output padding that gives the
    input's size. The same sums as autograd's; only the summation order may differ.
    """
    if transposed or output_mask[1] or output_mask[2]:
        raise NotImplementedError("camgrad: only input gradients of ordinary convolutions")
    if not output_mask[0]:
        return None, None, None
    spatial = len(inp.shape) - 2
    ks = [int(k) for k in weight.shape[2:]]
    if all(s == 1 for s in stride) and all(d * (k - 1) >= p for d, k, p in zip(dilation, ks, padding)):
        w = weight
        for d, k in enumerate(ks):
            if k > 1:
                w = aten.index_select(w, 2 + d, torch.arange(k - 1, -1, -1, device=w.device))
        w = _group_transposed(w, groups)
        pad = [d * (k - 1) - p for d, k, p in zip(dilation, ks, padding)]
        gi = aten.convolution(grad_out, w, None, [1] * spatial, pad, dilation, False, [0] * spatial, groups)
        return gi, None, None
    if (spatial == 2 and all(d == 1 for d in dilation)
            and all(int(inp.shape[2 + d]) % stride[d] == 0 for d in range(2))):
        size = [int(x) for x in inp.shape[2:]]
        return _strided_input_grad(grad_out, weight, stride, padding, groups, size), None, None
    out_pad = []
    for d in range(spatial):
        full = (grad_out.shape[2 + d] - 1) * stride[d] - 2 * padding[d] + dilation[d] * (ks[d] - 1) + 1
        out_pad.append(inp.shape[2 + d] - full)
    gi = aten.convolution(grad_out, weight, None, stride, padding, dilation, True, out_pad, groups)
    return gi, None, None


def _group_transposed(w, groups: int):
    """[Cout, Cin/g, kh, kw] -> [Cin, Cout/g, kh, kw]: the weight of the adjoint (per group)."""
    cout, cin_g = int(w.shape[0]), int(w.shape[1])
    if groups == 1:
        return aten.transpose(w, 0, 1)
    w = aten.reshape(w, [groups, cout // groups, cin_g, *w.shape[2:]])
    return aten.reshape(aten.transpose(w, 1, 2), [groups * cin_g, cout // groups, *w.shape[3:]])


def _phase_taps(k: int, s: int, p: int, a: int, n_out: int, n_g: int) -> tuple[list[int], int, int]:
    """1-D input gradient of a stride-``s`` convolution at the inputs ``i = s·m + a``:
    ``dx[s·m + a] = sum_j g[m + c - j] W[k0 + s·j]`` (k0 = (a+p) mod s, c = (a+p) div s).
    Returns the kernel taps in correlation order (reversed), and the zeros to add to the gradient
    (length ``n_g``) before / after (negative: crop) so that a stride-1 correlation gives ``n_out``
    values."""
    k0, c = (a + p) % s, (a + p) // s
    taps = [k0 + s * j for j in range((k - k0 + s - 1) // s)] if k0 < k else []
    taps.reverse()
    before = len(taps) - 1 - c
    return taps, before, n_out + len(taps) - 1 - before - n_g


def _crop_pad(x, top: int, bottom: int, left: int, right: int):
    """Zeros added before / after the last two axes; negative amounts crop (first, with a
    ``Slice``: tract's ``Pad`` takes no negative amounts)."""
    h, w = int(x.shape[2]), int(x.shape[3])
    x = x[:, :, max(0, -top):h - max(0, -bottom), max(0, -left):w - max(0, -right)]
    if max(top, 0) or max(bottom, 0) or max(left, 0) or max(right, 0):
        x = F.pad(x, [max(left, 0), max(right, 0), max(top, 0), max(bottom, 0)])
    return x


def _strided_input_grad(g, weight, stride, padding, groups: int, in_size: list[int]):
    """Input gradient of a strided convolution as ``s_h·s_w`` forward ``Conv``s, one per input phase
    (input cell ``(s·m + a, s·n + b)`` sees only the kernel taps ``≡ a + p (mod s)``), interleaved
    back by reshapes. The multiply-adds of the transposed convolution, no zero insertion, and no
    ``ConvTranspose`` (a slow loop in tract). Needs input sizes divisible by the strides."""
    (sh, sw), (ph, pw) = stride, padding
    kh, kw = int(weight.shape[2]), int(weight.shape[3])
    mh, mw = in_size[0] // sh, in_size[1] // sw
    gh, gw = int(g.shape[2]), int(g.shape[3])
    phases: list = []
    for a in range(sh):
        ty, top, bottom = _phase_taps(kh, sh, ph, a, mh, gh)
        for b in range(sw):
            tx, left, right = _phase_taps(kw, sw, pw, b, mw, gw)
            if not ty or not tx:  # no kernel tap reaches this phase: zero gradient
                phases.append(None)
                continue
            w = aten.index_select(weight, 2, torch.tensor(ty, device=weight.device))
            w = aten.index_select(w, 3, torch.tensor(tx, device=weight.device))
            x = _crop_pad(g, top, bottom, left, right)
            phases.append(aten.convolution(x, _group_transposed(w, groups), None, [1, 1], [0, 0], [1, 1],
                                           False, [0, 0], groups))
    ref = next(p for p in phases if p is not None)
    phases = [p if p is not None else ref * 0.0 for p in phases]  # row-major (a, b)
    st = torch.stack(phases, dim=2)  # [N, C, sh*sw, mh, mw]
    n_c = int(st.shape[1])
    if sh == sw:  # channel c·s² + a·s + b -> cell (s·m + a, s·n + b): DepthToSpace (CRD)
        return F.pixel_shuffle(st.reshape(-1, n_c * sh * sw, mh, mw), sh)
    st = st.reshape(-1, n_c, sh, sw, mh, mw).permute(0, 1, 4, 2, 5, 3)
    return st.reshape(-1, n_c, mh * sh, mw * sw)


_DECOMPOSITIONS = get_decompositions([
    aten.native_batch_norm_backward, aten.native_layer_norm_backward, aten.gelu_backward,
    aten._softmax_backward_data, aten.roll,
])
_DECOMPOSITIONS[aten.convolution_backward.default] = _convolution_backward


@contextlib.contextmanager
def _no_jit_trace():
    """Suspend a running TorchScript trace (``torch.onnx.export``) while ``make_fx`` records."""
    state = torch._C._get_tracing_state()
    torch._C._set_tracing_state(None)
    try:
        yield
    finally:
        torch._C._set_tracing_state(state)


def _state(backbone: nn.Module) -> tuple[list[str], list[torch.Tensor]]:
    named = list(backbone.named_parameters()) + list(backbone.named_buffers())
    return [n for n, _ in named], [t for _, t in named]


@dataclass
class _CamGraph:
    """The traced route for one input shape: forward part, backward part, and what links them."""

    forward: fx.GraphModule  # (*state, frames) -> (*stages, logits, *saved)
    backward: fx.GraphModule  # (*state, *saved, label) -> (*cam weights)
    n_stages: int
    n_saved: int


def _trace(backbone: nn.Module, shape: torch.Size, dtype: torch.dtype, device: torch.device) -> _CamGraph:
    names, tensors = _state(backbone)

    def joint(state, frames, label):
        with torch.enable_grad():
            x = frames.detach().requires_grad_(True)  # so that the taps need a gradient
            sd = dict(zip(names, state))
            with _swap_state(backbone, sd):
                stages, logits, taps, dims = forward_taps(backbone, x)
            grads = torch.autograd.grad(logits, taps, _one_hot(label, logits.shape[1], logits.dtype))
        return (*[s.detach() for s in stages], logits.detach(), *[_tap_mean(g, dims) for g in grads])

    frames = torch.zeros(shape, dtype=dtype, device=device)
    label = torch.zeros(shape[0], dtype=torch.int64, device=device)
    state = [t.detach() for t in tensors]
    with _no_jit_trace(), torch.no_grad():
        gm = make_fx(joint,
                     decomposition_table=_DECOMPOSITIONS, tracing_mode="fake",
                     _allow_non_fake_inputs=True)(state, frames, label)
    gm.graph.eliminate_dead_code()
    gm.recompile()
    return _partition(gm, len(tensors))


@contextlib.contextmanager
def _swap_state(module: nn.Module, sd: dict[str, torch.Tensor]):
    """``torch.func.functional_call`` as a context (the backbone's own method is called inside)."""
    from torch.nn.utils.stateless import _reparametrize_module

    with _reparametrize_module(module, sd):
        yield


def _partition(gm: fx.GraphModule, n_state: int) -> _CamGraph:
    """Cut the joint graph at the label: nodes that do not depend on it form the forward part."""
    ph = [n for n in gm.graph.nodes if n.op == "placeholder"]
    state_ph, frames_ph, label_ph = ph[:n_state], ph[n_state], ph[n_state + 1]
    out_node = next(n for n in gm.graph.nodes if n.op == "output")
    outs = list(out_node.args[0])
    n_cam = 4
    fw_outs, bw_outs = outs[:-n_cam], outs[-n_cam:]
    dep: set[fx.Node] = {label_ph}
    for n in gm.graph.nodes:
        if n.op != "placeholder" and any(a in dep for a in n.all_input_nodes):
            dep.add(n)
    bw_nodes = [n for n in gm.graph.nodes if n in dep and n.op not in ("placeholder", "output")]
    saved: list[fx.Node] = []
    for n in bw_nodes:
        for a in n.all_input_nodes:
            if a not in dep and a not in state_ph and a not in saved:
                saved.append(a)
    if any(o in dep for o in fw_outs) or any(o not in dep for o in bw_outs):
        raise RuntimeError("camgrad: forward outputs depend on the label")

    fw = fx.Graph()
    env: dict[fx.Node, fx.Node] = {}
    for n in state_ph + [frames_ph]:
        env[n] = fw.placeholder(n.name)
    for n in gm.graph.nodes:
        if n.op in ("placeholder", "output") or n in dep:
            continue
        env[n] = fw.node_copy(n, lambda a: env[a])
    fw.output(tuple(env[o] for o in fw_outs + saved))
    fw.eliminate_dead_code()

    bw = fx.Graph()
    env2: dict[fx.Node, fx.Node] = {}
    for n in state_ph:
        env2[n] = bw.placeholder(n.name)
    for i, n in enumerate(saved):
        env2[n] = bw.placeholder(f"saved_{i}")
    env2[label_ph] = bw.placeholder(label_ph.name)
    for n in bw_nodes:
        env2[n] = bw.node_copy(n, lambda a: env2[a])
    bw.output(tuple(env2[o] for o in bw_outs))
    bw.eliminate_dead_code()
    return _CamGraph(fx.GraphModule(gm, fw), fx.GraphModule(gm, bw), len(fw_outs) - 1, len(saved))


# ---------------------------------------------------------------------------------------------
# replay


def _layer_norm(x, shape, w, b, eps):
    dims = tuple(range(-len(shape), 0))
    mean = x.mean(dim=dims, keepdim=True)
    rstd = torch.rsqrt(((x - mean) ** 2).mean(dim=dims, keepdim=True) + eps)
    return F.layer_norm(x, shape, w, b, eps), mean, rstd


def _reshape(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """``view`` with the leading size as -1: the traced graph then has no frame count baked into its
    reshapes where the frames lead (all of them in these backbones; same values at the traced N)."""
    size = list(size)
    if size and -1 not in size and 0 not in size:
        size[0] = -1
    return x.reshape(size)


def _expand(x: torch.Tensor, size: Sequence[int], implicit: bool = False) -> torch.Tensor:
    size = list(size)
    if size and x.dim() == len(size) and x.shape[0] == size[0]:
        size[0] = -1
    return x.expand(size)


def _pad_dim(x: torch.Tensor, dim: int, before: int, after: int) -> torch.Tensor:
    """Zeros before / after along ``dim`` (an ONNX ``Pad``; amounts >= 0)."""
    dim = dim % x.dim()
    pads = [0, 0] * (x.dim() - 1 - dim) + [before, after]
    return F.pad(x, pads)


def _select_backward(grad, input_sizes, dim, index):
    """Gradient of ``x.select(dim, index)``: ``grad`` put back at ``index``, zeros elsewhere (a
    ``Pad``, where the decomposition's zeros + ``select_scatter`` would bake the frame count)."""
    dim = dim % len(input_sizes)
    index = index % input_sizes[dim]
    return _pad_dim(grad.unsqueeze(dim), dim, index, input_sizes[dim] - index - 1)


def _slice_backward(grad, input_sizes, dim, start, end, step):
    """Gradient of ``x[start:end:step]`` along ``dim``: zeros interleaved (``step`` > 1), then padded."""
    dim = dim % len(input_sizes)
    size = input_sizes[dim]
    start = max(0, min(size, start + size if start < 0 else start))
    n = grad.shape[dim]
    if step > 1:
        parts = [grad.unsqueeze(dim + 1)] + [torch.zeros_like(grad).unsqueeze(dim + 1)] * (step - 1)
        spread = torch.cat(parts, dim + 1)
        shape = list(grad.shape)
        shape[dim] = n * step
        if dim > 0:
            shape[0] = -1
        n = min(n * step, size - start)  # the zeros after the last element may overrun the end
        grad = spread.reshape(shape).narrow(dim, 0, n)
    return _pad_dim(grad, dim, start, size - start - n)  # no negative pads: tract's Pad rejects them


def _hardtanh_backward(grad, x, lo: float, hi: float):
    """``grad · [lo < x < hi]`` with the mask in float, ``sign((y - lo)(hi - y))`` for
    ``y = clamp(x, lo, hi)``: tract runs comparisons / ``Where`` as scalar loops (see
    :func:`c3n.model.backbone._relu6_backward`)."""
    y = x.clamp(lo, hi)
    return grad * torch.sign((y - lo) * (hi - y))


def _threshold_backward(grad, x, threshold: float):
    """``grad · [x > threshold]`` (ReLU's backward, ``x`` its output) as ``grad · sign(relu(x - t))``."""
    return grad * torch.sign(F.relu(x - threshold))


_OVERRIDES: dict[Any, Any] = {
    aten.hardtanh_backward.default: _hardtanh_backward,
    aten.threshold_backward.default: _threshold_backward,
    aten.select_backward.default: _select_backward,
    aten.slice_backward.default: _slice_backward,
    aten.view.default: _reshape,
    aten._unsafe_view.default: _reshape,
    aten.expand.default: _expand,
    aten.native_batch_norm.default:
        lambda x, w, b, rm, rv, training, momentum, eps: (F.batch_norm(x, rm, rv, w, b, False, 0.0, eps), None, None),
    aten._native_batch_norm_legit_no_training.default:
        lambda x, w, b, rm, rv, momentum, eps: (F.batch_norm(x, rm, rv, w, b, False, 0.0, eps), None, None),
    aten.native_layer_norm.default: _layer_norm,
    aten._to_copy.default: lambda x, dtype=None, **_: x.to(dtype) if dtype is not None else x,
    aten._softmax.default: lambda x, dim, half_to_float: torch.softmax(x, dim),
    aten.scalar_tensor.default: lambda v, dtype=None, **_: torch.tensor(v, dtype=dtype),
}


class _Replay(fx.Interpreter):
    """Runs a traced part with the ops the TorchScript ONNX exporter lacks mapped to ``torch`` calls."""

    def call_function(self, target, args, kwargs):
        f = _OVERRIDES.get(target)
        if f is not None:
            return f(*args, **kwargs)
        return super().call_function(target, args, kwargs)


def _cam_graph(backbone: nn.Module, frames: torch.Tensor) -> _CamGraph:
    cache = backbone.__dict__.setdefault("_camgrad_cache", {})
    key = (tuple(frames.shape), frames.dtype, frames.device)
    if key not in cache:
        cache[key] = _trace(backbone, frames.shape, frames.dtype, frames.device)
    return cache[key]


@dataclass
class CamState:
    """What :func:`cam_weights_from` needs from :func:`forward_for_cam` (activations, opaque)."""

    graph: _CamGraph
    saved: list[torch.Tensor]


def forward_for_cam(backbone: nn.Module, frames: torch.Tensor):
    """The backbone forward from the traced route: ``(stages, visual_logits, state)``.

    ``stages``: the 4 maps after the stage norm [N,C_k,H_k,W_k]; ``visual_logits`` [N,1000];
    ``state`` for :func:`cam_weights_from`. Same values as ``backbone(frames)`` (same aten ops).
    Inference only (no autograd through it).
    """
    g = _cam_graph(backbone, frames)
    _, tensors = _state(backbone)
    outs = _Replay(g.forward).run(*tensors, frames)
    stages, logits, saved = list(outs[:g.n_stages]), outs[g.n_stages], list(outs[g.n_stages + 1:])
    return stages, logits, CamState(g, saved)


def cam_weights_from(backbone: nn.Module, state: CamState, label: torch.Tensor) -> list[torch.Tensor]:
    """CCAM's Grad-CAM weights from :func:`forward_for_cam`'s state: label int64 [N] -> 4 x [N,C_k]."""
    _, tensors = _state(backbone)
    return list(_Replay(state.graph.backward).run(*tensors, *state.saved, label))


class CamBackward(nn.Module):
    """:func:`cam_weights_from` as a module without parameters, so that the exported backward
    nodes carry an ONNX scope of their own (e.g. ``/model/cam_backward/``), which an INT8
    quantiser can keep in float (as :mod:`c3n.export.quantize` does for the MobileNetV2 route)."""

    def forward(self, backbone: nn.Module, state: CamState, label: torch.Tensor) -> list[torch.Tensor]:
        return cam_weights_from(backbone, state, label)


def cam_weights(backbone: nn.Module, frames: torch.Tensor, label: torch.Tensor) -> list[torch.Tensor]:
    """CCAM's Grad-CAM weights, ``[N, C_k]`` per stage, as ordinary ops (runs the forward again;
    :func:`forward_for_cam` + :func:`cam_weights_from` share one forward)."""
    _, _, state = forward_for_cam(backbone, frames)
    return cam_weights_from(backbone, state, label)
