"""The C3N network on MobileNetV2 (visual) + YAMNet (audio): C3IM, CCAM and the TPAVI decoder.

Data flow for a batch of B clips of T frames (N = B*T), docs/c3n-method.md §3:

1. ``frames`` [N,3,224,224] -> MobileNetV2 -> 4 stage maps + ``visual_logits`` [N,1000].
2. ``audio_logmel`` [N,1,96,64] -> YAMNet (frozen) -> embedding [N,1024] + ``audio_logits`` [N,521].
3. C3IM (§6): ``v = softmax(visual)^0.1``, ``a = softmax(audio)^0.1``, ``W[j,i] = v[j] S[j,i] a[i]``;
   ``unified_label`` = ImageNet index j of the largest W (first on ties), ``c3im_score`` = max W.
4. CCAM (§7): Grad-CAM weights of ``visual_logits[n, unified_label[n]]`` w.r.t. each stage, computed
   by the written-out backward of :mod:`c3n.model.backbone`; ``F' = F * sigmoid(w / |w|_2)``,
   ``F'' = F' * sigmoid(mean_c F')``. Parameter-free, stop-gradient.
5. Decoder (:mod:`c3n.model.decoder`) -> ``mask_logits`` [N,1,224,224].
6. Optional (issue 26): the ``in_view`` head (:mod:`c3n.model.inview`) on the decoder's deepest
   TPAVI output and the audio embedding -> ``in_view`` [N], the probability that the sound's source
   is visible.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .backbone import STAGE_CHANNELS, MobileNetV2Backbone
from .decoder import Decoder
from .inview import InViewHead

ALPHA = 0.1  # C3IM's flattening exponent (docs/c3n-method.md §6)


@dataclass(frozen=True)
class Config:
    """A named model configuration. ``width`` is the decoder width d (paper: 256)."""

    name: str
    width: int


CONFIGS = {
    "paper": Config("paper", 256),
    # 32 channels: the decoder then costs about as much as the MobileNetV2 trunk plus its CCAM
    # backward (measured GFLOPs in the model card), so a Jetson Orin Nano runs T=5 clips far faster
    # than the 1 clip/s the 1-fps AVSBench clip rate needs, and CPU-only training (2 cores) gets
    # enough steps in about an hour. 64 was measured at ~1.6x the training step time.
    "edge": Config("edge", 32),
}


def c3im_affinity(audio_logits: torch.Tensor, sim: torch.Tensor, alpha: float = ALPHA) -> torch.Tensor:
    """C3IM's audio side per ImageNet class: ``r[n,j] = max_i S[j,i] a[n,i]`` with
    ``a = softmax(audio)^alpha``. audio [N,521], sim [1000,521] -> [N,1000].

    The unified label of *any* visual distribution v with this frame's audio is then
    ``argmax_j v[j] r[j]`` (see :func:`c3im`); exported as ``c3im_affinity`` so that the runtime
    can label each region from its own pooled visual logits (``visual_logit_map``)."""
    a = torch.exp(alpha * F.log_softmax(audio_logits.detach(), dim=1))
    return (sim[None, :, :] * a[:, None, :]).amax(dim=2)


def c3im(visual_logits: torch.Tensor, audio_logits: torch.Tensor, sim: torch.Tensor, alpha: float = ALPHA,
         affinity: torch.Tensor | None = None):
    """C3IM unified label. visual [N,1000], audio [N,521], sim [1000,521] -> (label int64 [N], score [N]).

    Uses ``argmax_j (v[j] * max_i S[j,i] a[i])``, which equals the row index of the first maximum
    of the flattened W (row-major) including ties, since v > 0 (docs/c3n-method.md §6, derived).
    ``affinity`` = :func:`c3im_affinity` of the same audio when already computed.
    """
    v = torch.exp(alpha * F.log_softmax(visual_logits.detach(), dim=1))
    r = c3im_affinity(audio_logits, sim, alpha) if affinity is None else affinity
    row = r * v  # [N,1000]
    score, label = row.max(dim=1)
    return label, score


def c3im_reference(visual_logits, audio_logits, sim, alpha: float = ALPHA):
    """Literal form: full W [N,1000,521], flattened argmax // 521 (for tests)."""
    v = F.softmax(visual_logits, dim=1) ** alpha
    a = F.softmax(audio_logits, dim=1) ** alpha
    w = v[:, :, None] * sim[None] * a[:, None, :]
    flat = w.reshape(w.shape[0], -1)
    return flat.argmax(dim=1) // sim.shape[1], flat.max(dim=1).values


def ccam(stage: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """CCAM attention on one stage map [N,C,H,W] given d logit / d stage of the same shape."""
    w = grad.mean(dim=(2, 3), keepdim=True)
    w = w / torch.clamp(torch.sqrt((w * w).sum(dim=1, keepdim=True)), min=1e-12)
    f1 = stage * torch.sigmoid(w)
    return f1 * torch.sigmoid(f1.mean(dim=1, keepdim=True))


class C3N(nn.Module):
    """C3N. ``use_ccam=False`` gives the TPAVI-only ablation (C3IM still reports labels)."""

    def __init__(self, config: Config, yamnet: nn.Module, similarity: torch.Tensor,
                 mobilenet_weights: str | None = None, use_ccam: bool = True, in_view: bool = False):
        super().__init__()
        self.config = config
        self.use_ccam = use_ccam
        self.backbone = MobileNetV2Backbone(mobilenet_weights)
        self.audio = yamnet
        for p in self.audio.parameters():
            p.requires_grad_(False)
        self.register_buffer("similarity", torch.as_tensor(similarity, dtype=torch.float32), persistent=False)
        self.decoder = Decoder(STAGE_CHANNELS, config.width, audio_dim=1024)
        #: the ``in_view`` head, or None (models before issue 26: no ``in_view.*`` weights)
        self.in_view = InViewHead(config.width, audio_dim=1024) if in_view else None

    def train(self, mode: bool = True):
        super().train(mode)
        self.audio.eval()  # frozen, as in the reference
        return self

    def forward(self, frames: torch.Tensor, audio_logmel: torch.Tensor, t: int | None = None,
                return_cam: bool = False, region_outputs: bool = False):
        """frames [N,3,224,224], audio_logmel [N,1,96,64]; N = B*t (t defaults to N: one clip).

        Returns ``(mask_logits [N,1,224,224], visual_logits [N,1000], audio_logits [N,521],
        unified_label int64 [N], c3im_score [N])``; with ``region_outputs`` then also
        ``visual_logit_map [N,1000,7,7]`` (the ImageNet classifier applied at every cell of the
        stage-4 map, a class-activation map: its spatial mean is ``visual_logits``) and
        ``c3im_affinity [N,1000]`` (:func:`c3im_affinity`); with ``return_cam`` then the four
        Grad-CAM channel-weight tensors [N,C_k] (before L2 normalisation), for tests; last, when
        the model has the head, ``in_view`` [N] (sigmoid probability).
        """
        t = frames.shape[0] if t is None else t
        with torch.no_grad():
            emb, audio_logits = self.audio(audio_logmel)
        stages, visual_logits, tapes = self.backbone(frames, record=self.use_ccam)
        affinity = c3im_affinity(audio_logits, self.similarity)
        label, score = c3im(visual_logits, audio_logits, self.similarity, affinity=affinity)
        region: list[torch.Tensor] = []
        if region_outputs:
            region = [self.backbone.logit_map(stages[3]), affinity]
        cams: list[torch.Tensor] = []
        if self.use_ccam:
            with torch.no_grad():
                grads = self.backbone.cam_gradients(stages, tapes, label)
            cams = [g.mean(dim=(2, 3)) for g in grads]
            stages = [ccam(s, g.detach()) for s, g in zip(stages, grads)]
        extra: list[torch.Tensor] = []
        if self.in_view is None:
            mask = self.decoder(stages, emb, t)
        else:
            mask, deep = self.decoder(stages, emb, t, return_deep=True)
            extra = [torch.sigmoid(self.in_view(deep, emb))]
        return (mask, visual_logits, audio_logits, label, score, *region, *(cams if return_cam else []), *extra)
