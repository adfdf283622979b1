"""The decoders of the official C3N code and of the AVSBench baseline, under their key names.

Both are the decoder of docs/c3n-method.md §8 at width 256; they differ in the per-stage
projection and in where TPAVI sits:

* :class:`C3NDecoder` (§8.1): ASPP per stage (``conv1-4.{conv, atrous_block1, atrous_block6,
  atrous_block12, atrous_block18, conv_1x1_output}``), TPAVI at all four stages
  (``tpavi_1-4.{align_channel, norm_layer, g, theta, phi, W_z.0, W_z.1}``), fusion
  ``path1-4.resConfUnit{1,2}.conv{1,2}``, head ``output_conv.{0,2,4}``.
* :class:`AVSBenchDecoder`: ``conv1-4`` are the "Classifier_Module" (``conv2d_list.0-3``: four
  3x3 convolutions with dilation = padding = 3, 6, 12, 18, summed); TPAVI ``tpavi_b1-4`` only at
  the chosen stages (AVSBench's ``--tpavi_stages``, 0-based); the rest as C3N.

The maths is :mod:`c3n.model.decoder`'s, which already computes the official forward (ASPP
branch order pool, 1x1, 6, 12, 18; TPAVI ``dot`` mode, ``f / (THW)``, W_z = Conv3d + BatchNorm3d,
LayerNorm over channels with eps 1e-5; the in-place-ReLU residual of the fusion units; bilinear x2
with ``align_corners=True`` in the fusion and ``False`` in the head): the modules below inherit
its forwards and expose the official parameters under the names those forwards read. So the
export keeps the tract-friendly forms (exact ASPP centre tap where a dilation reaches past the
map, bilinear x2 as matrix products, TPAVI frame by frame with its one cross-frame step in a
:class:`c3n.model.decoder.ClipMean`) and the frame split (:mod:`c3n.export.frame_split`) works
with TPAVI at any stage. :func:`c3n.model.decoder.research_form` switches to the reference ops.

Inputs and outputs as :class:`c3n.model.decoder.Decoder`: four stage maps [B*T,C_k,H_k,W_k]
(frames of a clip consecutive), the audio feature [B*T,a_dim] (VGGish 128, PANNs 2048) and the
clip length ``t`` -> mask logits [B*T,1,4 H_1,4 W_1] (224 x 224 for 56 x 56 stage-1 maps).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import decoder as _dec
from .decoder import ASPP, RCU, TPAVI, ClipMean, Decoder, FusionBlock

WIDTH = 256  # the official decoder width
ASPP_RATES = (6, 12, 18)
CLASSIFIER_DILATIONS = (3, 6, 12, 18)  # AVSBench's Classifier_Module


class OfficialASPP(ASPP):
    """ASPP with the official parameter names; forward inherited from :class:`ASPP`.
    [N,C,H,W] -> [N,d,H,W]."""

    def __init__(self, c_in: int, d: int = WIDTH):
        nn.Module.__init__(self)
        self.conv = nn.Conv2d(c_in, d, 1)  # the pooled branch
        self.atrous_block1 = nn.Conv2d(c_in, d, 1)
        self.atrous_block6 = nn.Conv2d(c_in, d, 3, padding=6, dilation=6)
        self.atrous_block12 = nn.Conv2d(c_in, d, 3, padding=12, dilation=12)
        self.atrous_block18 = nn.Conv2d(c_in, d, 3, padding=18, dilation=18)
        self.conv_1x1_output = nn.Conv2d(5 * d, d, 1)

    # the names ASPP.forward reads
    pool = property(lambda self: self.conv)
    b0 = property(lambda self: self.atrous_block1)
    atrous = property(lambda self: (self.atrous_block6, self.atrous_block12, self.atrous_block18))
    project = property(lambda self: self.conv_1x1_output)


class ClassifierModule(nn.Module):
    """AVSBench's per-stage projection: the sum of four 3x3 convolutions with dilation (= padding)
    3, 6, 12, 18. [N,C,H,W] -> [N,d,H,W]; parameters ``conv2d_list.0-3``.

    As in :class:`ASPP`, a branch whose dilation is >= both H and W reads zero padding at its 8
    outer taps, so it is exactly the 1x1 convolution of its centre tap; those branches run as one
    1x1 convolution with their centre taps and biases summed (stage 4 at 7 x 7: 12 and 18;
    stage 3 at 14 x 14: 18). Same maths, summation order aside."""

    def __init__(self, c_in: int, d: int = WIDTH, dilations=CLASSIFIER_DILATIONS):
        super().__init__()
        self.conv2d_list = nn.ModuleList(nn.Conv2d(c_in, d, 3, padding=r, dilation=r) for r in dilations)
        for m in self.conv2d_list:  # the reference's initialisation (irrelevant once loaded)
            m.weight.data.normal_(0, 0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[2], x.shape[3]
        full = [c for c in self.conv2d_list if _dec._RESEARCH_FORM or not (c.dilation[0] >= h and c.dilation[0] >= w)]
        centre = [c for c in self.conv2d_list if c not in full]
        out = None
        for c in full:
            out = c(x) if out is None else out + c(x)
        if centre:
            wc, bc = centre[0].weight[:, :, 1:2, 1:2], centre[0].bias
            for c in centre[1:]:
                wc, bc = wc + c.weight[:, :, 1:2, 1:2], bc + c.bias
            y = F.conv2d(x, wc, bc)
            out = y if out is None else out + y
        return out


class OfficialTPAVI(TPAVI):
    """TPAVI (``dot`` mode) with the official parameter names; forward inherited from
    :class:`TPAVI` (factorised, frame by frame, one :class:`ClipMean`).

    forward(x [B*T,d,H,W], audio [B*T,a_dim], t) -> [B*T,d,H,W]."""

    def __init__(self, d: int = WIDTH, audio_dim: int = 128):
        nn.Module.__init__(self)
        self.inter = max(d // 2, 1)
        self.align_channel = nn.Linear(audio_dim, d)
        self.norm_layer = nn.LayerNorm(d)
        self.g = nn.Conv3d(d, self.inter, 1)
        self.W_z = nn.Sequential(nn.Conv3d(self.inter, d, 1), nn.BatchNorm3d(d))
        nn.init.zeros_(self.W_z[1].weight)
        nn.init.zeros_(self.W_z[1].bias)
        self.theta = nn.Conv3d(d, self.inter, 1)
        self.phi = nn.Conv3d(d, self.inter, 1)
        self.clip_mean = ClipMean()

    # the names TPAVI.forward reads
    align = property(lambda self: self.align_channel)
    w_z = property(lambda self: self.W_z[0])
    bn = property(lambda self: self.W_z[1])
    ln_weight = property(lambda self: self.norm_layer.weight)
    ln_bias = property(lambda self: self.norm_layer.bias)


class OfficialFusionBlock(FusionBlock):
    """Feature fusion block with the official names ``resConfUnit{1,2}.conv{1,2}``; forward
    inherited from :class:`FusionBlock`."""

    def __init__(self, d: int = WIDTH):
        nn.Module.__init__(self)
        self.resConfUnit1 = RCU(d)
        self.resConfUnit2 = RCU(d)

    rcu1 = property(lambda self: self.resConfUnit1)
    rcu2 = property(lambda self: self.resConfUnit2)


class _Interpolate(nn.Module):
    """``output_conv.1``: the head's bilinear x2 (``align_corners=False``), no parameters. The
    forward of :class:`Decoder` calls the head's convolutions one by one and does this step
    itself (same function)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _dec.upsample2x_half_pixel(x)


def _output_conv(d: int) -> nn.Sequential:
    """The head, ``output_conv.{0,2,4}``: 3x3 d -> 128, bilinear x2, 3x3 128 -> 32, ReLU,
    1x1 32 -> 1 (docs/c3n-method.md §8.4)."""
    return nn.Sequential(nn.Conv2d(d, 128, 3, padding=1), _Interpolate(), nn.Conv2d(128, 32, 3, padding=1),
                         nn.ReLU(), nn.Conv2d(32, 1, 1))


class C3NDecoder(Decoder):
    """The official C3N decoder: ASPP + TPAVI at every stage + fusion + head, width ``d``.

    forward(stages, audio [B*T,a_dim], t) -> mask logits [B*T,1,224,224] (inherited from
    :class:`Decoder`)."""

    def __init__(self, stage_channels, audio_dim: int = 128, d: int = WIDTH):
        nn.Module.__init__(self)
        self.stage_channels = tuple(stage_channels)
        for k, c in enumerate(self.stage_channels, 1):
            setattr(self, f"conv{k}", OfficialASPP(c, d))
        for k in range(1, 5):
            setattr(self, f"path{k}", OfficialFusionBlock(d))
        for k in range(1, 5):
            setattr(self, f"tpavi_{k}", OfficialTPAVI(d, audio_dim))
        self.output_conv = _output_conv(d)

    aspp = property(lambda self: [self.conv1, self.conv2, self.conv3, self.conv4])
    tpavi = property(lambda self: [self.tpavi_1, self.tpavi_2, self.tpavi_3, self.tpavi_4])
    head1 = property(lambda self: self.output_conv[0])
    head2 = property(lambda self: self.output_conv[2])
    head3 = property(lambda self: self.output_conv[4])

    def frame_split_scopes(self) -> list[tuple[str | None, str]]:
        """Per stage (TPAVI module name or None, projection module name), for
        :func:`c3n.export.frame_split.mark_frame_split`."""
        return [(f"tpavi_{k}", f"conv{k}") for k in range(1, 5)]


def _no_tpavi(x: torch.Tensor, audio: torch.Tensor, t: int) -> torch.Tensor:
    return x


class AVSBenchDecoder(C3NDecoder):
    """The AVSBench TPAVI decoder: Classifier_Module per stage, TPAVI ``tpavi_b<i+1>`` only at the
    0-based ``tpavi_stages`` (audio-visual mode, ``--tpavi_va_flag``), fusion and head as C3N.

    forward(stages, audio [B*T,a_dim], t) -> mask logits [B*T,1,224,224]."""

    def __init__(self, stage_channels, tpavi_stages=(0, 1, 2, 3), audio_dim: int = 128, d: int = WIDTH):
        nn.Module.__init__(self)
        self.stage_channels = tuple(stage_channels)
        self.tpavi_stages = tuple(sorted(set(int(i) for i in tpavi_stages)))
        if any(i not in range(4) for i in self.tpavi_stages):
            raise ValueError(f"TPAVI stages must be in 0..3, got {list(tpavi_stages)}")
        for k, c in enumerate(self.stage_channels, 1):
            setattr(self, f"conv{k}", ClassifierModule(c, d))
        for k in range(1, 5):
            setattr(self, f"path{k}", OfficialFusionBlock(d))
        for i in self.tpavi_stages:
            setattr(self, f"tpavi_b{i + 1}", OfficialTPAVI(d, audio_dim))
        self.output_conv = _output_conv(d)

    @property
    def tpavi(self):
        """Per stage the TPAVI module, or a pass-through where the stage has none (what
        :meth:`Decoder.forward` calls as ``tpavi(x, audio, t)``)."""
        return [getattr(self, f"tpavi_b{i + 1}") if i in self.tpavi_stages else _no_tpavi for i in range(4)]

    def frame_split_scopes(self) -> list[tuple[str | None, str]]:
        return [(f"tpavi_b{i + 1}" if i in self.tpavi_stages else None, f"conv{i + 1}") for i in range(4)]
