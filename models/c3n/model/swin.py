"""Swin Transformer visual backbone (Swin-B, ``swin_base_patch4_window7_224``) as C3N's
``Swin_AVSModel`` uses it, with the checkpoint's key names (``encoder_backbone.*`` loads strictly;
docs/c3n-method.md §4).

Our own implementation of the Swin maths (Liu et al., ICCV 2021) in the dense-prediction form that
C3N uses:

* patch embedding ``Conv2d`` 4×4 stride 4 + LayerNorm; 4 layers of ``depths[k]`` blocks, the
  odd blocks shifted by ``window // 2`` (also when the map is no larger than the window, with the
  -100 attention mask of the shifted regions); maps padded with zeros to a multiple of the
  window after ``norm1``; relative position bias from ``attn.relative_position_bias_table``
  indexed by the (persistent) buffer ``attn.relative_position_index``;
* block: ``x + W-MSA(norm1(x))``, ``x + mlp(norm2(x))`` (exact GELU), LayerNorm eps 1e-5;
* between layers, patch merging (2×2 neighbours concatenated as x00, x10, x01, x11, LayerNorm,
  ``reduction`` without bias);
* each layer's output (before merging) goes through its own norm ``norm{k}`` (k = 0..3) and is a
  stage map; the ImageNet ``head`` acts on the spatial mean of the last one.

Stages at 224×224 (Swin-B): [N,128,56,56], [N,256,28,28], [N,512,14,14], [N,1024,7,7].
"""
from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .pvt_v2 import _head_map

#: Swin-B, window 7 (docs/c3n-method.md §4)
SWIN_B = dict(embed_dim=128, depths=(2, 2, 18, 2), num_heads=(4, 8, 16, 32), window=7)


def _relative_index(win: int) -> torch.Tensor:
    """[win², win²] index into the (2·win-1)² bias table of the offset between two window cells."""
    ys, xs = torch.meshgrid(torch.arange(win), torch.arange(win), indexing="ij")
    cy, cx = ys.flatten(), xs.flatten()
    dy = cy[:, None] - cy[None, :] + win - 1
    dx = cx[:, None] - cx[None, :] + win - 1
    return dy * (2 * win - 1) + dx


def _shift_mask(hp: int, wp: int, win: int, shift: int) -> torch.Tensor:
    """[nW, win², win²] additive mask of a shifted layer: -100 between cells from different regions
    (regions: the last ``win``, then the last ``shift`` rows / columns). A new tensor from cached
    Python lists, so that a trace sees one constant (and a tensor made under a tracing mode never
    leaks into eager calls)."""
    return torch.tensor(_shift_mask_lists(hp, wp, win, shift))


@lru_cache(maxsize=16)
def _shift_mask_lists(hp: int, wp: int, win: int, shift: int) -> list:
    def band(i: int, n: int) -> int:
        return 0 if i < n - win else (1 if i < n - shift else 2)

    masks = []
    for wy in range(hp // win):
        for wx in range(wp // win):
            cells = [3 * band(wy * win + y, hp) + band(wx * win + x, wp) for y in range(win) for x in range(win)]
            masks.append([[0.0 if a == b else -100.0 for b in cells] for a in cells])
    return masks


def _windows(x: torch.Tensor, win: int) -> torch.Tensor:
    """[B,H,W,C] -> [B·nW, win, win, C] (windows row-major)."""
    _, h, w, c = x.shape
    x = x.reshape(-1, h // win, win, w // win, win, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, win, win, c)


def _unwindows(x: torch.Tensor, win: int, h: int, w: int) -> torch.Tensor:
    c = x.shape[-1]
    x = x.reshape(-1, h // win, w // win, win, win, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, h, w, c)


class _WindowAttention(nn.Module):
    def __init__(self, dim: int, heads: int, win: int):
        super().__init__()
        self.heads = heads
        self.win = win
        self.scale = (dim // heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * win - 1) ** 2, heads))
        self.register_buffer("relative_position_index", _relative_index(win))
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        _, n, c = x.shape
        qkv = self.qkv(x).reshape(-1, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0] * self.scale, qkv[1], qkv[2]
        attn = q @ k.transpose(-2, -1)
        bias = self.relative_position_bias_table[self.relative_position_index.reshape(-1)]
        attn = attn + bias.reshape(n, n, -1).permute(2, 0, 1)[None]
        if mask is not None:
            nw = mask.shape[0]
            attn = (attn.reshape(-1, nw, self.heads, n, n) + mask[None, :, None]).reshape(-1, self.heads, n, n)
        attn = attn.softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(-1, n, c))


class _Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class _Block(nn.Module):
    def __init__(self, dim: int, heads: int, win: int, shift: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.win, self.shift = win, shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = _WindowAttention(dim, heads, win)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = _Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, h: int, w: int, mask: torch.Tensor | None) -> torch.Tensor:
        c = x.shape[2]
        win = self.win
        y = self.norm1(x).reshape(-1, h, w, c)
        pr, pb = (win - w % win) % win, (win - h % win) % win
        if pr or pb:
            y = F.pad(y, (0, 0, 0, pr, 0, pb))
        hp, wp = h + pb, w + pr
        if self.shift:
            y = torch.roll(y, (-self.shift, -self.shift), (1, 2))
        y = self.attn(_windows(y, win).reshape(-1, win * win, c), mask if self.shift else None)
        y = _unwindows(y.reshape(-1, win, win, c), win, hp, wp)
        if self.shift:
            y = torch.roll(y, (self.shift, self.shift), (1, 2))
        if pr or pb:
            y = y[:, :h, :w, :]
        x = x + y.reshape(-1, h * w, c)
        return x + self.mlp(self.norm2(x))


class _PatchMerging(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        c = x.shape[2]
        x = x.reshape(-1, h, w, c)
        if h % 2 or w % 2:
            x = F.pad(x, (0, 0, 0, w % 2, 0, h % 2))
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
        return self.reduction(self.norm(x.reshape(-1, x.shape[1] * x.shape[2], 4 * c)))


class _Layer(nn.Module):
    def __init__(self, dim: int, depth: int, heads: int, win: int, downsample: bool):
        super().__init__()
        self.win = win
        self.blocks = nn.ModuleList(_Block(dim, heads, win, 0 if i % 2 == 0 else win // 2) for i in range(depth))
        self.downsample = _PatchMerging(dim) if downsample else None


class _PatchEmbed(nn.Module):
    def __init__(self, dim: int, patch: int = 4):
        super().__init__()
        self.patch = patch
        self.proj = nn.Conv2d(3, dim, patch, patch)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.patch
        h, w = x.shape[2], x.shape[3]
        if w % p or h % p:
            x = F.pad(x, (0, (p - w % p) % p, 0, (p - h % p) % p))
        return self.proj(x)  # the norm is applied on the tokens (same values)


class SwinBackbone(nn.Module):
    """Swin returning the four normed stage maps and the ImageNet logits.

    Keys: ``patch_embed.{proj,norm}``, ``layers.{k}.blocks.{j}.{norm1,attn.{relative_position_bias_table,
    relative_position_index,qkv,proj},norm2,mlp.{fc1,fc2}}``, ``layers.{k}.downsample.{reduction,norm}``
    (k < 3), ``norm0..norm3``, ``head``. Defaults: Swin-B window 7, 1000 classes.
    """

    tap_dims = (1,)

    def __init__(self, embed_dim: int = SWIN_B["embed_dim"], depths: Sequence[int] = SWIN_B["depths"],
                 num_heads: Sequence[int] = SWIN_B["num_heads"], window: int = SWIN_B["window"],
                 num_classes: int = 1000):
        super().__init__()
        self.window = window
        self.stage_channels = tuple(embed_dim * 2 ** k for k in range(4))
        self.patch_embed = _PatchEmbed(embed_dim)
        self.layers = nn.ModuleList(
            _Layer(embed_dim * 2 ** k, depths[k], num_heads[k], window, k < 3) for k in range(4))
        for k in range(4):
            self.add_module(f"norm{k}", nn.LayerNorm(embed_dim * 2 ** k))
        self.head = nn.Linear(self.stage_channels[3], num_classes) if num_classes > 0 else None

    def forward_taps(self, x: torch.Tensor):
        """x [N,3,H,W] -> (4 normed stage maps [N,C_k,H_k,W_k], visual_logits [N,classes] or None,
        taps: 4 x [N,H_k*W_k,C_k], the last block's output before ``norm{k}``)."""
        x = self.patch_embed(x)
        h, w = int(x.shape[2]), int(x.shape[3])
        x = self.patch_embed.norm(x.flatten(2).transpose(1, 2))
        stages, taps = [], []
        win = self.window
        for k, layer in enumerate(self.layers):
            hp, wp = -(-h // win) * win, -(-w // win) * win
            mask = _shift_mask(hp, wp, win, win // 2)
            for blk in layer.blocks:
                x = blk(x, h, w, mask)
            taps.append(x)
            out = getattr(self, f"norm{k}")(x)
            stages.append(out.reshape(-1, h, w, out.shape[2]).permute(0, 3, 1, 2).contiguous())
            if layer.downsample is not None:
                x = layer.downsample(x, h, w)
                h, w = (h + 1) // 2, (w + 1) // 2
        logits = self.head(stages[3].mean(dim=(2, 3))) if self.head is not None else None
        return stages, logits, taps

    def forward(self, x: torch.Tensor):
        """x [N,3,224,224] -> (4 stage maps, visual_logits [N,classes] or None)."""
        stages, logits, _ = self.forward_taps(x)
        return stages, logits

    def logit_map(self, stage4: torch.Tensor) -> torch.Tensor:
        """The head at every stage-4 cell: [N,C4,h,w] -> [N,classes,h,w] (spatial mean = logits)."""
        if self.head is None:
            raise ValueError("this Swin has no ImageNet head")
        return _head_map(self.head, stage4)


def swin_base_patch4_window7_224(num_classes: int = 1000) -> SwinBackbone:
    """Swin-B, patch 4, window 7, as C3N's ``Swin_AVSModel`` builds it."""
    return SwinBackbone(num_classes=num_classes)
