"""MobileNetV2 visual backbone with its ImageNet-1k head, and CCAM's in-graph backward pass.

The C3N reference (docs/c3n-method.md §7) obtains Grad-CAM weights with autograd *inside* the model's
forward. Neither TensorRT nor tract has autograd, so this module writes that backward pass out as
ordinary forward operations: each convolution + eval-mode BatchNorm pair becomes a forward ``Conv``
with the transposed (1×1) or flipped (depthwise) weight scaled by the BN factor, with zero
insertion for the stride-2 depthwise ones (see :func:`_conv_bn_backward`); ReLU6 becomes a
``0 < x < 6`` mask, a residual join a sum. The result is exported to
ONNX like any other layer, and ``tests/test_model.py`` checks it against PyTorch autograd.

Stages (torchvision MobileNetV2, input [N,3,224,224]):

| stage | module | output |
|---|---|---|
| 1 | ``features.3``  | [N,24,56,56] (stride 4) |
| 2 | ``features.6``  | [N,32,28,28] (stride 8) |
| 3 | ``features.13`` | [N,96,14,14] (stride 16) |
| 4 | ``features.18`` | [N,1280,7,7] (stride 32) |

The backbone's BatchNorm layers always run with their ImageNet running statistics (frozen, eval
mode), also during fine-tuning; this keeps training stable at small batch sizes and makes the
written-out backward exact.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import mobilenet_v2
from torchvision.models.mobilenetv2 import InvertedResidual
from torchvision.ops.misc import Conv2dNormActivation

#: index of the last ``features`` block of each of the four stages
STAGE_ENDS = (3, 6, 13, 18)
STAGE_CHANNELS = (24, 32, 96, 1280)

Backward = Callable[[torch.Tensor], torch.Tensor]


#: taps of the stride-2, padding-1, 3×3 transposed convolution split into its four output phases:
#: for phase p = 2a + b (output row 2m+a, column 2n+b) and 2×2 tap (dy, dx) on g[m+dy, n+dx], the
#: index kh*3 + kw of the 3×3 kernel weight it uses, 9 = none (zero). Rows: dx[i] = sum over
#: 2o + k - 1 = i of g[o] W[k] gives, per axis, a=0: (dy=0, k=1); a=1: (dy=0, k=2), (dy=1, k=0).
_S2_PHASE_TAPS = torch.tensor([4, 9, 9, 9,   # a=0 b=0: W11
                               5, 3, 9, 9,   # a=0 b=1: W12, W10
                               7, 9, 1, 9,   # a=1 b=0: W21, W01
                               8, 6, 2, 0])  # a=1 b=1: W22, W20, W02, W00


def _conv_bn_backward(conv: nn.Conv2d, bn: nn.BatchNorm2d, x_shape: torch.Size) -> Backward:
    """Vector-Jacobian product of ``bn(conv(x))`` (eval-mode BN, bias-free part) w.r.t. ``x``.

    Written as forward convolutions that every runtime executes fast (tract lowers
    ``ConvTranspose`` to a slow single-threaded loop), with the BN scale folded into the weight:

    * 1×1, stride 1: ``Conv`` 1×1 with the transposed weight ``W[o,i] * s[o]`` -> ``[Cin,Cout,1,1]``;
    * depthwise k×k, stride 1, padding (k-1)/2: depthwise ``Conv`` with the spatially flipped kernel;
    * depthwise 3×3, stride 2, padding 1, even input size: the four output phases (even/odd row ×
      column) as one depthwise 2×2 ``Conv`` over the gradient repeated 4× per channel, then
      ``DepthToSpace`` (see ``_S2_PHASE_TAPS``): 4/9 of the multiply-adds of zero insertion and
      no 6-D ``Pad`` (slow in onnxruntime);
    * anything else: ``ConvTranspose`` (not used by MobileNetV2).

    The maths is exactly the transposed convolution's; only the float summation order differs.
    """
    (sh, sw), (ph, pw), (dh, dw) = conv.stride, conv.padding, conv.dilation
    kh, kw = conv.kernel_size
    cout = conv.out_channels
    depthwise = conv.groups == conv.in_channels == cout and conv.groups > 1
    same_pad = (dh, dw) == (1, 1) and kh % 2 == 1 and kw % 2 == 1 and (ph, pw) == ((kh - 1) // 2, (kw - 1) // 2)

    def scaled_weight() -> torch.Tensor:
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        return conv.weight * scale[:, None, None, None]  # [Cout, Cin/groups, kh, kw]

    if (kh, kw) == (1, 1) and (sh, sw) == (1, 1) and (ph, pw) == (0, 0) and conv.groups == 1:
        return lambda g: F.conv2d(g, scaled_weight().transpose(0, 1))
    def flipped_weight() -> torch.Tensor:
        # index_select, not flip: the exporter folds Gather on a constant, not a negative-step Slice
        rh, rw = torch.arange(kh - 1, -1, -1), torch.arange(kw - 1, -1, -1)
        return scaled_weight().index_select(2, rh).index_select(3, rw)

    if depthwise and same_pad and (sh, sw) == (1, 1):
        return lambda g: F.conv2d(g, flipped_weight(), None, 1, (ph, pw), 1, cout)
    if (depthwise and (kh, kw, ph, pw, sh, sw) == (3, 3, 1, 1, 2, 2) and (dh, dw) == (1, 1)
            and x_shape[2] % 2 == 0 and x_shape[3] % 2 == 0):
        h, w = int(x_shape[2]) // 2, int(x_shape[3]) // 2

        def bwd_s2(g: torch.Tensor) -> torch.Tensor:
            # dx[2m+a, 2n+b] only sees g[m..m+1, n..n+1]: one 2×2 depthwise Conv per phase (a, b)
            # on g padded by one zero row/column, the four phases as 4 channels per channel
            # (input repeated), interleaved back by DepthToSpace (pixel_shuffle, CRD order).
            wflat = torch.cat([scaled_weight().reshape(cout, 9), torch.zeros(cout, 1)], dim=1)
            k = wflat.index_select(1, _S2_PHASE_TAPS).reshape(4 * cout, 1, 2, 2)
            gp = F.pad(g, (0, 1, 0, 1))[:, :, None].expand(-1, -1, 4, -1, -1).reshape(-1, 4 * cout, h + 1, w + 1)
            return F.pixel_shuffle(F.conv2d(gp, k, None, 1, 0, 1, 4 * cout), 2)
        return bwd_s2

    def bwd(g: torch.Tensor) -> torch.Tensor:
        oh = x_shape[2] - ((g.shape[2] - 1) * sh - 2 * ph + dh * (kh - 1) + 1)
        ow = x_shape[3] - ((g.shape[3] - 1) * sw - 2 * pw + dw * (kw - 1) + 1)
        return F.conv_transpose2d(g, scaled_weight(), None, conv.stride, conv.padding, (oh, ow), conv.groups,
                                  conv.dilation)

    return bwd


def _relu6_backward(pre: torch.Tensor) -> Backward:
    """Backward of ``relu6(pre)``: ``g * [0 < pre < 6]``, the float mask computed once in the forward
    as ``sign(y (6 - y))`` with ``y = clamp(pre, 0, 6)``: 1 inside (0, 6), 0 at and beyond the
    ends, exactly (for 0 < y < 6 the product is positive, even for the smallest subnormal y).

    Issue 16, measured at T = 5 on one core (untrained ``edge`` export, frame-split tract): tract
    runs these float ops in 424 ms a window against 478 ms for ``(pre > 0) & (pre < 6)`` (its
    comparisons, ``And`` and ``Cast`` are scalar loops: 17 % of the window) and 450 ms for
    ``min(pre, 6 - pre) > 0``; onnxruntime's ``Sign`` is slower (227 vs 210 ms). tract is the CPU
    engine this graph is shaped for.
    """
    y = pre.clamp(0, 6)
    mask = torch.sign(y * (6 - y))
    return lambda g: g * mask


def _run_seq(seq: nn.Sequential, x: torch.Tensor, tape: list[Backward] | None) -> torch.Tensor:
    layers = list(seq)
    i = 0
    while i < len(layers):
        m = layers[i]
        if isinstance(m, nn.Conv2d):
            bn = layers[i + 1] if i + 1 < len(layers) else None
            if not isinstance(bn, nn.BatchNorm2d):
                raise TypeError("MobileNetV2: every Conv2d is followed by a BatchNorm2d")
            if tape is not None:
                tape.append(_conv_bn_backward(m, bn, x.shape))
            x = bn(m(x))
            i += 2
            continue
        if isinstance(m, nn.ReLU6):
            if tape is not None:
                tape.append(_relu6_backward(x))
            x = m(x)
        elif isinstance(m, Conv2dNormActivation):
            x = _run_seq(m, x, tape)
        else:
            raise TypeError(f"unexpected layer {type(m).__name__} in MobileNetV2")
        i += 1
    return x


def _run_block(block: nn.Module, x: torch.Tensor, tape: list[Backward] | None) -> torch.Tensor:
    if isinstance(block, InvertedResidual):
        inner: list[Backward] | None = [] if tape is not None else None
        y = _run_seq(block.conv, x, inner)
        if block.use_res_connect:
            y = x + y
        if tape is not None:
            assert inner is not None
            res = block.use_res_connect

            def bwd(g: torch.Tensor, inner=inner, res=res) -> torch.Tensor:
                h = g
                for f in reversed(inner):
                    h = f(h)
                return g + h if res else h

            tape.append(bwd)
        return y
    return _run_seq(block, x, tape)


class CamBackward(nn.Module):
    """The written-out backward from the stage-4 gradient down to stage 1 (no parameters: the
    tapes hold the backbone's layers).

    A module of its own so that its nodes carry the ONNX scope ``/model/backbone/cam_backward/``:
    :mod:`c3n.export.quantize` keeps them in float (as when they were ``ConvTranspose``, which it never
    quantised): per-tensor INT8 on gradient maps would cost the CAM its precision.
    """

    def forward(self, g4: torch.Tensor, tapes: list[list[Backward]], n_blocks: int) -> list[torch.Tensor]:
        """g4: d logit / d stage-4 map [N,1280,7,7] -> the 4 stage gradients, stage 1 first."""
        g = g4
        grads = [g]
        # tapes[k] is the backward of features[STAGE_ENDS[0] + 1 + k]
        first = STAGE_ENDS[0] + 1
        for block_idx in range(n_blocks - 1, first - 1, -1):
            for f in reversed(tapes[block_idx - first]):
                g = f(g)
            if block_idx - 1 in STAGE_ENDS:
                grads.append(g)
        grads.reverse()
        return grads


class MobileNetV2Backbone(nn.Module):
    """torchvision MobileNetV2 returning the four stage maps and the 1000 ImageNet logits.

    ``forward(x [N,3,224,224]) -> (stages: list of 4 maps, logits [N,1000], tapes)`` where
    ``tapes`` holds the written-out backward of blocks 4..18 used by :meth:`cam_gradients`.
    """

    def __init__(self, weights_path: str | None = None):
        super().__init__()
        net = mobilenet_v2()
        if weights_path is not None:
            state = torch.load(weights_path, map_location="cpu", weights_only=False)
            net.load_state_dict(state, strict=True)
        self.features = net.features
        self.head = net.classifier[1]  # Linear(1280, 1000); the Dropout is inactive at inference
        self.cam_backward = CamBackward()

    def train(self, mode: bool = True):  # BN statistics stay frozen (see module doc)
        super().train(mode)
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eval()
        return self

    def forward(self, x: torch.Tensor, record: bool = True):
        """x [N,3,224,224] -> (4 stage maps, logits [N,1000], tapes). ``record=False`` skips the tapes."""
        stages: list[torch.Tensor] = []
        tapes: list[list[Backward]] = []
        for i, block in enumerate(self.features):
            tape: list[Backward] | None = [] if (record and i > STAGE_ENDS[0]) else None
            x = _run_block(block, x, tape)
            if tape is not None:
                tapes.append(tape)
            if i in STAGE_ENDS:
                stages.append(x)
        logits = self.head(x.mean(dim=(2, 3)))
        return stages, logits, tapes

    def logit_map(self, stage4: torch.Tensor) -> torch.Tensor:
        """The ImageNet head at every cell of the stage-4 map: [N,1280,h,w] -> logits [N,1000,h,w]
        (a 1×1 convolution with the head's weight and bias, written as ``W @ x + b`` so that the
        exported graph reuses the head's weight initializer instead of a second 5 MB copy).
        Linear, so its spatial mean equals ``head(stage4.mean((2, 3)))``, the frame's logits; its
        mean over a region's cells is the region's logits (global pooling then Gemm = Gemm then
        pooling)."""
        n, _, h, w = stage4.shape
        # -1, not n: no frame count baked into the exported graph (the tract engine runs it per frame)
        y = torch.matmul(self.head.weight, stage4.reshape(-1, stage4.shape[1], h * w)) + self.head.bias[:, None]
        return y.reshape(-1, self.head.out_features, h, w)

    def cam_gradients(self, stages: list[torch.Tensor], tapes: list[list[Backward]], label: torch.Tensor):
        """Gradients of ``logit[n, label[n]]`` w.r.t. each stage output, per frame.

        label: int64 [N]. Returns 4 tensors shaped like ``stages``. Frames are independent
        (eval-mode BN), so this equals autograd of ``sum_n logit[n, label[n]]``.
        """
        a4 = stages[3]
        hw = a4.shape[2] * a4.shape[3]
        w = self.head.weight[label]  # [N,1280]
        g = (w / hw)[:, :, None, None].expand_as(a4)
        return self.cam_backward(g, tapes, len(self.features))
