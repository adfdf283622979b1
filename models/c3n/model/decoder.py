"""C3N decoder: ASPP per stage, TPAVI audio-visual attention at all four stages, top-down fusion, head.

Follows docs/c3n-method.md §8 with one width parameter ``d`` (256 in the paper's decoder):

* ASPP (§8.1): five branches (global pool -> 1x1, 1x1, 3x3 dilation 6/12/18) -> concat -> 1x1 -> d.
  No BN, no ReLU.
* TPAVI (§8.2), ``dot`` mode, in the *factorised* form: with g_p, theta_p the projected visual
  vectors and phi_t the projected audio vector of frame t, ``y_p = (1/N) K theta_p`` with
  ``K = sum_t (sum_hw g_{t,hw}) phi_t^T``. This equals the reference's ``(theta^T phi / N) g`` over
  a THW x THW matrix up to summation order (``tpavi_reference`` below is that matrix form, used by
  the test). Written frame by frame: K is the clip mean of per-frame shares, the decoder's only
  cross-frame step (:class:`ClipMean`). Then ``z = BN(W_z y) + x`` and a LayerNorm over channels.
* Fusion (§8.3): DPT-style blocks ``out = prev + RCU1(skip); out = RCU2(out); up x2``. The
  reference's residual conv unit starts with an *in-place* ReLU, so its residual adds ReLU(x), not
  x; reproduced here explicitly.
* Head (§8.4): 3x3 d -> d/2, bilinear x2, 3x3 d/2 -> h, ReLU, 1x1 h -> 1, with h = min(32, d/2).
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn

_RESEARCH_FORM = False


@contextlib.contextmanager
def research_form():
    """Within this context the decoder runs the ops the reference code uses (``F.interpolate``,
    TPAVI's 5-D Conv3d form, every ASPP branch at 3x3) instead of the forms shaped for the export
    (issue 16); the same maths. For ``c3n.export.bench_torch``'s research-code timing."""
    global _RESEARCH_FORM
    old, _RESEARCH_FORM = _RESEARCH_FORM, True
    try:
        yield
    finally:
        _RESEARCH_FORM = old


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling, [N,C,H,W] -> [N,d,H,W]."""

    def __init__(self, c_in: int, d: int, rates=(6, 12, 18)):
        super().__init__()
        self.pool = nn.Conv2d(c_in, d, 1)
        self.b0 = nn.Conv2d(c_in, d, 1)
        self.atrous = nn.ModuleList(nn.Conv2d(c_in, d, 3, padding=r, dilation=r) for r in rates)
        self.project = nn.Conv2d(d * (2 + len(rates)), d, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The pooled branch is constant over H,W (the reference upsamples a 1x1 map), so its share
        # of the 1x1 projection is computed at 1x1 and broadcast-added: identical maths, and no
        # Expand+Concat in the ONNX graph (tract 0.23 fails to declutter that pattern).
        d = self.b0.out_channels
        h, w = x.shape[2], x.shape[3]
        pooled = self.pool(x.mean(dim=(2, 3), keepdim=True))  # [N,d,1,1]
        if _RESEARCH_FORM:
            rest = torch.cat([self.b0(x)] + [c(x) for c in self.atrous], dim=1)
            return (F.conv2d(rest, self.project.weight[:, d:], self.project.bias)
                    + F.conv2d(pooled, self.project.weight[:, :d]))
        # A 3x3 branch whose dilation r is >= both H and W reads zero padding at all 8 outer taps
        # (i +- r is outside [0, H) for every i): it is exactly the 1x1 convolution of its centre
        # tap (issue 16: stage 4 at 7x7 has r = 12, 18, stage 3 at 14x14 has r = 18). Those and
        # b0 run as one 1x1 convolution; the projection's input columns are permuted to match.
        ones = [(0, self.b0.weight, self.b0.bias)]
        threes = []
        for i, c in enumerate(self.atrous):
            r = c.dilation[0]
            if r >= h and r >= w:
                ones.append((i + 1, c.weight[:, :, 1:2, 1:2], c.bias))
            else:
                threes.append((i + 1, c))
        parts = [F.conv2d(x, torch.cat([wt for _, wt, _ in ones]), torch.cat([b for _, _, b in ones]))]
        parts += [c(x) for _, c in threes]
        order = [k for k, _, _ in ones] + [k for k, _ in threes]  # branch index of each d-block
        wp = self.project.weight
        w_rest = torch.cat([wp[:, d * (1 + k):d * (2 + k)] for k in order], dim=1)
        rest = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
        return F.conv2d(rest, w_rest, self.project.bias) + F.conv2d(pooled, wp[:, :d])


def _interp_matrix_align_corners(n: int, device=None) -> torch.Tensor:
    """[2n, n] bilinear weights of a x2 upsampling with ``align_corners=True`` along one axis:
    output o reads ``src = o (n-1) / (2n-1)`` as ``(1-f) x[i] + f x[i+1]``, ``i = floor(src)``;
    ``src`` and ``f`` in float32 as PyTorch's CPU kernel computes them. Built with numpy, so the
    export traces one constant, not the scatter that builds it."""
    import numpy as np

    o = np.arange(2 * n, dtype=np.float32)
    scale = np.float32((n - 1) / (2 * n - 1) if n > 1 else 0.0)
    src = o * scale
    i0 = np.minimum(np.floor(src), n - 1).astype(np.int64)
    i1 = np.minimum(i0 + 1, n - 1)
    f = src - i0.astype(np.float32)
    r = np.zeros((2 * n, n), dtype=np.float32)
    np.add.at(r, (np.arange(2 * n), i0), np.float32(1) - f)
    np.add.at(r, (np.arange(2 * n), i1), f)
    return torch.from_numpy(r).to(device)


def upsample2x_align_corners(x: torch.Tensor) -> torch.Tensor:
    """``F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)`` for [N,C,H,W],
    written as two matrix products with the constant interpolation matrices,
    ``R_h @ x @ R_w^T`` (issue 16: tract's ``Resize`` is a scalar loop, 5x slower than this at
    the decoder's sizes; each output is the same two-term weighted sum, zeros add nothing)."""
    h, w = x.shape[2], x.shape[3]
    rw = _interp_matrix_align_corners(int(w), x.device).t()  # [W, 2W]
    rh = _interp_matrix_align_corners(int(h), x.device)  # [2H, H]
    return torch.matmul(rh, torch.matmul(x, rw))


def upsample2x_half_pixel(x: torch.Tensor) -> torch.Tensor:
    """``F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)`` for [N,C,H,W]:
    per axis, output ``2i`` is ``0.25 x[i-1] + 0.75 x[i]`` and ``2i+1`` is ``0.75 x[i] + 0.25
    x[i+1]``, the edge sample repeated outside (PyTorch clamps the source index there). Written
    with slices and element-wise ops (issue 16: tract's ``Resize`` is a scalar loop)."""
    def along(x: torch.Tensor, dim: int) -> torch.Tensor:
        n = x.shape[dim]
        first, last = x.narrow(dim, 0, 1), x.narrow(dim, n - 1, 1)
        prev = torch.cat([first, x.narrow(dim, 0, n - 1)], dim=dim)
        nxt = torch.cat([x.narrow(dim, 1, n - 1), last], dim=dim)
        even = 0.25 * prev + 0.75 * x
        odd = 0.75 * x + 0.25 * nxt
        y = torch.stack([even, odd], dim=dim + 1)  # [..., n, 2, ...]
        shape = list(x.shape)
        shape[dim] = 2 * n
        return y.reshape(shape)

    return along(along(x, 3), 2)


def channel_layer_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """LayerNorm over dim 1 of [N,C,...], written with plain reductions (exports to basic ONNX ops)."""
    mu = x.mean(dim=1, keepdim=True)
    xc = x - mu
    var = (xc * xc).mean(dim=1, keepdim=True)
    shape = (1, -1) + (1,) * (x.dim() - 2)
    return xc / torch.sqrt(var + eps) * weight.view(shape) + bias.view(shape)


class ClipMean(nn.Module):
    """The one step of the decoder that mixes frames: ``[B*T,k,k] -> [B*T,k,k]``, every frame
    replaced by the mean over its clip's T frames (frames of a clip are consecutive).

    Exported as its own ONNX scope (``.../clip_mean/``): the export names its input and output
    (``c3n.frame_split``) so that a runtime may run everything else one frame at a time and take
    this mean itself (``src/engine/split.rs``)."""

    def forward(self, x: torch.Tensor, t: int, k: int) -> torch.Tensor:
        """x [B*T,k,k] -> [B*T,k,k]. ``t`` and ``k`` are plain ints, so the export reads no shape
        of a tensor computed outside this scope (the split stays clean)."""
        m = x.reshape(-1, t, k, k).mean(dim=1, keepdim=True)
        return m.expand(-1, t, k, k).reshape(-1, k, k)


class TPAVI(nn.Module):
    """Temporal pixel-wise audio-visual interaction (AVSBench TPAVI, ``dot`` mode), factorised.

    forward(x [B*T,d,H,W], audio [B*T,a_dim], t) -> [B*T,d,H,W]; frames of a clip are consecutive.

    Written frame by frame (issue 16): per frame the 1x1x1 projections are 2-D 1x1 convolutions,
    ``K_t = (sum_hw g_t) phi_t^T / (HW)`` [k,k] is the frame's share, and the only cross-frame step
    is ``K = mean_t K_t`` (:class:`ClipMean`), which equals ``sum_t (sum_hw g_t) phi_t^T / (T HW)``.
    Parameters are the reference's Conv3d / BatchNorm3d ones (same state dict).
    """

    def __init__(self, d: int, audio_dim: int):
        super().__init__()
        self.inter = max(d // 2, 1)
        self.align = nn.Linear(audio_dim, d)
        self.theta = nn.Conv3d(d, self.inter, 1)
        self.phi = nn.Conv3d(d, self.inter, 1)
        self.g = nn.Conv3d(d, self.inter, 1)
        self.w_z = nn.Conv3d(self.inter, d, 1)
        self.bn = nn.BatchNorm3d(d)
        nn.init.zeros_(self.bn.weight)
        nn.init.zeros_(self.bn.bias)
        self.ln_weight = nn.Parameter(torch.ones(d))
        self.ln_bias = nn.Parameter(torch.zeros(d))
        self.clip_mean = ClipMean()

    @staticmethod
    def _conv(x: torch.Tensor, conv: nn.Conv3d) -> torch.Tensor:
        """A 1x1x1 Conv3d applied to [N,C,H,W] as the 2-D 1x1 convolution it is."""
        return F.conv2d(x, conv.weight[:, :, 0], conv.bias)

    def forward(self, x: torch.Tensor, audio: torch.Tensor, t: int) -> torch.Tensor:
        if _RESEARCH_FORM:
            return self.tpavi_factorised_5d(x, audio, t)
        h, w = x.shape[2], x.shape[3]
        theta = self._conv(x, self.theta)  # [BT,k,H,W]
        g_sum = self._conv(x, self.g).sum(dim=(2, 3))  # [BT,k]
        # phi is a 1x1x1 conv on the audio broadcast over H,W: one vector per frame
        phi = F.linear(self.align(audio), self.phi.weight[:, :, 0, 0, 0], self.phi.bias)  # [BT,k]
        k_frame = g_sum[:, :, None] * phi[:, None, :] / (h * w)  # [BT,k(g),k(phi)]
        k = self.clip_mean(k_frame, t, self.inter)
        y = torch.matmul(k, theta.flatten(2)).reshape(theta.shape)  # [BT,k,H,W]
        bn = self.bn
        z = F.batch_norm(self._conv(y, self.w_z), bn.running_mean, bn.running_var, bn.weight, bn.bias,
                         bn.training, bn.momentum if bn.momentum is not None else 0.0, bn.eps) + x
        return channel_layer_norm(z, self.ln_weight, self.ln_bias)

    def _project(self, x: torch.Tensor, audio: torch.Tensor, t: int):
        bt, d, h, w = x.shape
        b = bt // t
        x5 = x.reshape(b, t, d, h, w).permute(0, 2, 1, 3, 4)  # [B,d,T,H,W]
        a = self.align(audio).reshape(b, t, d)  # [B,T,d]
        phi = F.linear(a, self.phi.weight[:, :, 0, 0, 0], self.phi.bias)  # [B,T,k]
        return x5, self.theta(x5), self.g(x5), phi

    def _finish(self, x5: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        z = self.bn(self.w_z(y)) + x5
        z = channel_layer_norm(z, self.ln_weight, self.ln_bias)
        b, d, t, h, w = z.shape
        return z.permute(0, 2, 1, 3, 4).reshape(b * t, d, h, w)

    def tpavi_factorised_5d(self, x: torch.Tensor, audio: torch.Tensor, t: int) -> torch.Tensor:
        """The previous export's form (5-D Conv3d on [B,d,T,H,W], one K per clip by a matmul over
        T); for tests."""
        x5, theta, g, phi = self._project(x, audio, t)
        n = theta.shape[2] * theta.shape[3] * theta.shape[4]
        k = torch.matmul(g.sum(dim=(3, 4)), phi) / n  # [B,k(g),k(phi)]
        b, c, t_, h, w = theta.shape
        y = torch.matmul(k, theta.reshape(b, c, t_ * h * w)).reshape(b, c, t_, h, w)
        return self._finish(x5, y)

    def tpavi_reference(self, x: torch.Tensor, audio: torch.Tensor, t: int) -> torch.Tensor:
        """The reference THW x THW form (memory O((THW)^2)); for tests on small inputs only."""
        x5, theta, g, phi = self._project(x, audio, t)
        b, k, tt, h, w = theta.shape
        phi_map = phi.permute(0, 2, 1)[:, :, :, None, None].expand(b, k, tt, h, w)
        th = theta.reshape(b, k, -1).permute(0, 2, 1)  # [B,N,k]
        ph = phi_map.reshape(b, k, -1)  # [B,k,N]
        f = th @ ph / th.shape[1]  # [B,N,N]
        gx = g.reshape(b, k, -1).permute(0, 2, 1)  # [B,N,k]
        y = (f @ gx).permute(0, 2, 1).reshape(b, k, tt, h, w)
        return self._finish(x5, y)


class RCU(nn.Module):
    """Residual conv unit with the reference's in-place-ReLU residual: conv(relu(conv(relu x))) + relu(x)."""

    def __init__(self, d: int):
        super().__init__()
        self.conv1 = nn.Conv2d(d, d, 3, padding=1)
        self.conv2 = nn.Conv2d(d, d, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = F.relu(x)
        return self.conv2(F.relu(self.conv1(r))) + r


class FusionBlock(nn.Module):
    def __init__(self, d: int):
        super().__init__()
        self.rcu1 = RCU(d)
        self.rcu2 = RCU(d)

    def forward(self, prev: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        out = prev if skip is None else prev + self.rcu1(skip)
        out = self.rcu2(out)
        if _RESEARCH_FORM:
            return F.interpolate(out, scale_factor=2.0, mode="bilinear", align_corners=True)
        return upsample2x_align_corners(out)


class Decoder(nn.Module):
    """stages (4 CCAM-modulated maps) + audio embedding [B*T,a_dim] -> mask logits [B*T,1,224,224]."""

    def __init__(self, stage_channels, d: int, audio_dim: int):
        super().__init__()
        self.aspp = nn.ModuleList(ASPP(c, d) for c in stage_channels)
        self.tpavi = nn.ModuleList(TPAVI(d, audio_dim) for _ in stage_channels)
        self.path4, self.path3, self.path2, self.path1 = (FusionBlock(d) for _ in range(4))
        h = min(32, d // 2)
        self.head1 = nn.Conv2d(d, d // 2, 3, padding=1)
        self.head2 = nn.Conv2d(d // 2, h, 3, padding=1)
        self.head3 = nn.Conv2d(h, 1, 1)

    def forward(self, stages, audio: torch.Tensor, t: int, return_deep: bool = False):
        """-> mask logits [B*T,1,224,224]; with ``return_deep`` also the deepest TPAVI output
        [B*T,d,7,7] (what :class:`c3n.model.inview.InViewHead` reads)."""
        f = [tp(asp(s), audio, t) for s, asp, tp in zip(stages, self.aspp, self.tpavi)]
        x = self.path4(f[3])
        x = self.path3(x, f[2])
        x = self.path2(x, f[1])
        x = self.path1(x, f[0])
        x = self.head1(x)
        if _RESEARCH_FORM:
            x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
        else:
            x = upsample2x_half_pixel(x)
        mask = self.head3(F.relu(self.head2(x)))
        return (mask, f[3]) if return_deep else mask
