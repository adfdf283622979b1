"""MobileNetV2 visual backbone with its ImageNet-1k head, and CCAM's in-graph backward pass.

The C3N reference (c3n-method.md §7) obtains Grad-CAM weights with autograd *inside* the model's
forward. Neither TensorRT nor tract has autograd, so this module writes that backward pass out as
ordinary forward operations (``ConvTranspose`` for convolutions, a per-channel scale for eval-mode
BatchNorm, a ``0 < x < 6`` mask for ReLU6, a sum at residual joins). The result is exported to
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
from torchvision.ops.misc import Conv2dNormActivation
from torchvision.models.mobilenetv2 import InvertedResidual

#: index of the last ``features`` block of each of the four stages
STAGE_ENDS = (3, 6, 13, 18)
STAGE_CHANNELS = (24, 32, 96, 1280)

Backward = Callable[[torch.Tensor], torch.Tensor]


def _conv_backward(conv: nn.Conv2d, x_shape: torch.Size) -> Backward:
    """Vector-Jacobian product of a (bias-free part of a) Conv2d w.r.t. its input."""

    def bwd(g: torch.Tensor) -> torch.Tensor:
        (sh, sw), (ph, pw), (dh, dw) = conv.stride, conv.padding, conv.dilation
        kh, kw = conv.kernel_size
        oh = x_shape[2] - ((g.shape[2] - 1) * sh - 2 * ph + dh * (kh - 1) + 1)
        ow = x_shape[3] - ((g.shape[3] - 1) * sw - 2 * pw + dw * (kw - 1) + 1)
        return F.conv_transpose2d(g, conv.weight, None, conv.stride, conv.padding, (oh, ow), conv.groups, conv.dilation)

    return bwd


def _bn_backward(bn: nn.BatchNorm2d) -> Backward:
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return lambda g: g * scale[None, :, None, None]


def _relu6_backward(pre: torch.Tensor) -> Backward:
    mask = ((pre > 0) & (pre < 6)).to(pre.dtype)
    return lambda g: g * mask


def _run_seq(seq: nn.Sequential, x: torch.Tensor, tape: list[Backward] | None) -> torch.Tensor:
    for m in seq:
        if isinstance(m, nn.Conv2d):
            if tape is not None:
                tape.append(_conv_backward(m, x.shape))
            x = m(x)
        elif isinstance(m, nn.BatchNorm2d):
            if tape is not None:
                tape.append(_bn_backward(m))
            x = m(x)
        elif isinstance(m, nn.ReLU6):
            if tape is not None:
                tape.append(_relu6_backward(x))
            x = m(x)
        elif isinstance(m, Conv2dNormActivation):
            x = _run_seq(m, x, tape)
        else:
            raise TypeError(f"unexpected layer {type(m).__name__} in MobileNetV2")
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

    def cam_gradients(self, stages: list[torch.Tensor], tapes: list[list[Backward]], label: torch.Tensor):
        """Gradients of ``logit[n, label[n]]`` w.r.t. each stage output, per frame.

        label: int64 [N]. Returns 4 tensors shaped like ``stages``. Frames are independent
        (eval-mode BN), so this equals autograd of ``sum_n logit[n, label[n]]``.
        """
        a4 = stages[3]
        hw = a4.shape[2] * a4.shape[3]
        w = self.head.weight[label]  # [N,1280]
        g = (w / hw)[:, :, None, None].expand_as(a4)
        grads = [g]
        # tapes[k] is the backward of features[STAGE_ENDS[0] + 1 + k]
        first = STAGE_ENDS[0] + 1
        for block_idx in range(len(self.features) - 1, first - 1, -1):
            for f in reversed(tapes[block_idx - first]):
                g = f(g)
            if block_idx - 1 in STAGE_ENDS:
                grads.append(g)
        grads.reverse()
        return grads
