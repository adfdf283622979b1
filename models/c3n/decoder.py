"""C3N decoder: ASPP per stage, TPAVI audio-visual attention at all four stages, top-down fusion, head.

Follows c3n-method.md §8 with one width parameter ``d`` (256 in the paper's decoder):

* ASPP (§8.1): five branches (global pool -> 1x1, 1x1, 3x3 dilation 6/12/18) -> concat -> 1x1 -> d.
  No BN, no ReLU.
* TPAVI (§8.2), ``dot`` mode, in the *factorised* form: with g_p, theta_p the projected visual
  vectors and phi_t the projected audio vector of frame t, ``y_p = (1/N) K theta_p`` with
  ``K = sum_t (sum_hw g_{t,hw}) phi_t^T``. This equals the reference's ``(theta^T phi / N) g`` over
  a THW x THW matrix up to summation order (``tpavi_reference`` below is that matrix form, used by
  the test). Then ``z = BN(W_z y) + x`` and a LayerNorm over channels.
* Fusion (§8.3): DPT-style blocks ``out = prev + RCU1(skip); out = RCU2(out); up x2``. The
  reference's residual conv unit starts with an *in-place* ReLU, so its residual adds ReLU(x), not
  x; reproduced here explicitly.
* Head (§8.4): 3x3 d -> d/2, bilinear x2, 3x3 d/2 -> h, ReLU, 1x1 h -> 1, with h = min(32, d/2).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


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
        pooled = self.pool(x.mean(dim=(2, 3), keepdim=True))  # [N,d,1,1]
        rest = torch.cat([self.b0(x)] + [c(x) for c in self.atrous], dim=1)
        w = self.project.weight
        return F.conv2d(rest, w[:, d:], self.project.bias) + F.conv2d(pooled, w[:, :d])


def channel_layer_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """LayerNorm over dim 1 of [N,C,...], written with plain reductions (exports to basic ONNX ops)."""
    mu = x.mean(dim=1, keepdim=True)
    xc = x - mu
    var = (xc * xc).mean(dim=1, keepdim=True)
    shape = (1, -1) + (1,) * (x.dim() - 2)
    return xc / torch.sqrt(var + eps) * weight.view(shape) + bias.view(shape)


class TPAVI(nn.Module):
    """Temporal pixel-wise audio-visual interaction (AVSBench TPAVI, ``dot`` mode), factorised.

    forward(x [B*T,d,H,W], audio [B*T,a_dim], t) -> [B*T,d,H,W]; frames of a clip are consecutive.
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

    def _project(self, x: torch.Tensor, audio: torch.Tensor, t: int):
        bt, d, h, w = x.shape
        b = bt // t
        x5 = x.reshape(b, t, d, h, w).permute(0, 2, 1, 3, 4)  # [B,d,T,H,W]
        a = self.align(audio).reshape(b, t, d)  # [B,T,d]
        # phi is a 1x1x1 conv on the audio broadcast over H,W: one vector per frame
        phi = F.linear(a, self.phi.weight[:, :, 0, 0, 0], self.phi.bias)  # [B,T,k]
        return x5, self.theta(x5), self.g(x5), phi

    def _finish(self, x5: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        z = self.bn(self.w_z(y)) + x5
        z = channel_layer_norm(z, self.ln_weight, self.ln_bias)
        b, d, t, h, w = z.shape
        return z.permute(0, 2, 1, 3, 4).reshape(b * t, d, h, w)

    def forward(self, x: torch.Tensor, audio: torch.Tensor, t: int) -> torch.Tensor:
        x5, theta, g, phi = self._project(x, audio, t)
        n = theta.shape[2] * theta.shape[3] * theta.shape[4]
        g_sum = g.sum(dim=(3, 4))  # [B,k,T]
        k = torch.matmul(g_sum, phi) / n  # [B,k(g),k(phi)]
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
        return F.interpolate(out, scale_factor=2.0, mode="bilinear", align_corners=True)


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

    def forward(self, stages, audio: torch.Tensor, t: int) -> torch.Tensor:
        f = [tp(asp(s), audio, t) for s, asp, tp in zip(stages, self.aspp, self.tpavi)]
        x = self.path4(f[3])
        x = self.path3(x, f[2])
        x = self.path2(x, f[1])
        x = self.path1(x, f[0])
        x = self.head1(x)
        x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
        return self.head3(F.relu(self.head2(x)))
