"""PVT-v2 visual backbone (PVT-v2-b5 by default), with state_dict key names of the C3N and AVSBench
checkpoints, so that their ``encoder_backbone.*`` sub-dict loads strictly (docs/c3n-method.md §4).

Our own implementation of the PVT-v2 maths (Wang et al., "PVT v2", 2022) as the C3N code uses it:

* 4 stages; stage k: overlapping patch embedding (``Conv2d`` k×k, stride s, padding k//2, then
  LayerNorm eps 1e-5; 7/4 for stage 1, 3/2 after), ``depths[k]`` blocks, then the stage norm
  (LayerNorm eps 1e-6);
* block: ``x + attn(norm1(x))``, then ``x + mlp(norm2(x))`` (LayerNorms eps 1e-6); attention with
  a spatial reduction ``sr`` (``Conv2d`` r×r stride r, then LayerNorm eps 1e-5) of the keys and
  values when the ratio r > 1, ``softmax(q k^T · d^-0.5) v``; MLP ``fc1`` -> depthwise 3×3
  ``dwconv.dwconv`` -> exact GELU -> ``fc2``;
* C3N's variant (``num_classes=1000``) has the ImageNet ``head`` on the token mean of the normed
  stage-4 map; AVSBench's has no head (``num_classes=0``: same class otherwise, same keys minus
  ``head.*``).

Stages at 224×224 input (PVT-v2-b5): [N,64,56,56], [N,128,28,28], [N,320,14,14], [N,512,7,7].
Dropout and drop-path are inference no-ops and not modelled (no parameters).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

#: PVT-v2-b5 (docs/c3n-method.md §4)
B5 = dict(embed_dims=(64, 128, 320, 512), num_heads=(1, 2, 5, 8), mlp_ratios=(4, 4, 4, 4),
          depths=(3, 6, 40, 3), sr_ratios=(8, 4, 2, 1))


class _DWConv(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 3, 1, 1, groups=dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        c = x.shape[2]
        y = self.dwconv(x.transpose(1, 2).reshape(-1, c, h, w))
        return y.flatten(2).transpose(1, 2)


class _Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.dwconv = _DWConv(hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        return self.fc2(F.gelu(self.dwconv(self.fc1(x), h, w)))


class _Attention(nn.Module):
    def __init__(self, dim: int, heads: int, sr_ratio: int):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)
        self.sr_ratio = sr_ratio
        if sr_ratio > 1:
            self.sr = nn.Conv2d(dim, dim, sr_ratio, sr_ratio)
            self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        _, n, c = x.shape
        d = c // self.heads
        q = self.q(x).reshape(-1, n, self.heads, d).permute(0, 2, 1, 3)
        if self.sr_ratio > 1:
            r = self.sr(x.permute(0, 2, 1).reshape(-1, c, h, w))
            cells = (h // self.sr_ratio) * (w // self.sr_ratio)  # python ints: no shape ops in a trace
            kv_in = self.norm(r.reshape(-1, c, cells).permute(0, 2, 1))
        else:
            kv_in = x
        kv = self.kv(kv_in).reshape(-1, kv_in.shape[1], 2, self.heads, d).permute(2, 0, 3, 1, 4)
        k, v = kv[0], kv[1]
        attn = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(-1, n, c))


class _Block(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: float, sr_ratio: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = _Attention(dim, heads, sr_ratio)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = _Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), h, w)
        return x + self.mlp(self.norm2(x), h, w)


class _PatchEmbed(nn.Module):
    def __init__(self, cin: int, dim: int, kernel: int, stride: int):
        super().__init__()
        self.proj = nn.Conv2d(cin, dim, kernel, stride, kernel // 2)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor):
        x = self.proj(x)
        h, w = int(x.shape[2]), int(x.shape[3])
        return self.norm(x.flatten(2).transpose(1, 2)), h, w


class PVTv2Backbone(nn.Module):
    """PVT-v2 returning the four normed stage maps and the ImageNet logits.

    Keys: ``patch_embed{k}.{proj,norm}``, ``block{k}.{j}.{norm1,attn.{q,kv,proj,sr,norm},norm2,
    mlp.{fc1,dwconv.dwconv,fc2}}``, ``norm{k}`` (k = 1..4), ``head`` (when ``num_classes > 0``).
    Defaults are PVT-v2-b5 with the 1000-class head (C3N); ``num_classes=0`` is AVSBench's.
    Smaller ``embed_dims`` / ``depths`` give test-sized networks.
    """

    tap_dims = (1,)  # the taps are tokens [N, H*W, C]

    def __init__(self, embed_dims: Sequence[int] = B5["embed_dims"], num_heads: Sequence[int] = B5["num_heads"],
                 mlp_ratios: Sequence[float] = B5["mlp_ratios"], depths: Sequence[int] = B5["depths"],
                 sr_ratios: Sequence[int] = B5["sr_ratios"], num_classes: int = 1000, in_chans: int = 3):
        super().__init__()
        self.stage_channels = tuple(int(c) for c in embed_dims)
        for k in range(4):
            cin = in_chans if k == 0 else embed_dims[k - 1]
            kernel, stride = (7, 4) if k == 0 else (3, 2)
            setattr(self, f"patch_embed{k + 1}", _PatchEmbed(cin, embed_dims[k], kernel, stride))
            setattr(self, f"block{k + 1}", nn.ModuleList(
                _Block(embed_dims[k], num_heads[k], mlp_ratios[k], sr_ratios[k]) for _ in range(depths[k])))
            setattr(self, f"norm{k + 1}", nn.LayerNorm(embed_dims[k], eps=1e-6))
        self.head = nn.Linear(embed_dims[3], num_classes) if num_classes > 0 else None

    def forward_taps(self, x: torch.Tensor):
        """x [N,3,H,W] -> (stages: 4 x [N,C_k,H_k,W_k] after the stage norm, visual_logits [N,classes]
        or None, taps: 4 x [N,H_k*W_k,C_k], the last block's output before the stage norm)."""
        stages, taps = [], []
        logits = None
        for k in range(1, 5):
            x, h, w = getattr(self, f"patch_embed{k}")(x)
            for blk in getattr(self, f"block{k}"):
                x = blk(x, h, w)
            taps.append(x)
            x = getattr(self, f"norm{k}")(x)
            if k == 4 and self.head is not None:
                logits = self.head(x.mean(dim=1))
            x = x.reshape(-1, h, w, x.shape[2]).permute(0, 3, 1, 2).contiguous()
            stages.append(x)
        return stages, logits, taps

    def forward(self, x: torch.Tensor):
        """x [N,3,224,224] -> (4 stage maps, visual_logits [N,classes] or None)."""
        stages, logits, _ = self.forward_taps(x)
        return stages, logits

    def logit_map(self, stage4: torch.Tensor) -> torch.Tensor:
        """The head at every stage-4 cell: [N,C4,h,w] -> [N,classes,h,w]; its spatial mean is
        ``visual_logits`` (the head is linear)."""
        if self.head is None:
            raise ValueError("this PVT-v2 has no ImageNet head (AVSBench variant)")
        return _head_map(self.head, stage4)


def _head_map(head: nn.Linear, stage4: torch.Tensor) -> torch.Tensor:
    """``W @ x + b`` per cell (reuses the head's weight initializer in the export)."""
    _, c, h, w = stage4.shape
    y = torch.matmul(head.weight, stage4.reshape(-1, c, h * w)) + head.bias[:, None]
    return y.reshape(-1, head.out_features, h, w)


def pvt_v2_b5(num_classes: int = 1000) -> PVTv2Backbone:
    """PVT-v2-b5: with the ImageNet head (C3N, ``num_classes=1000``) or without (AVSBench, 0)."""
    return PVTv2Backbone(num_classes=num_classes)
