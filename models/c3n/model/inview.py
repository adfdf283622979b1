"""The ``in_view`` head (issue 26): per frame, the probability that the source of the sound is visible.

C3IM's consensus score does not separate off-screen sound from on-screen sound (models/README.md,
"False regions by kind"), and the mask decoder alone puts regions on salient objects whatever the
audio says (docs/negative-audio.md). This head is the "classifier-guided" part of that note: a small
audio-visual correspondence classifier, trained with binary cross-entropy on swapped pairs
(:meth:`c3n.train.featcache.CachedSplit.negative_batch`) beside the mask loss.

What it reads, per frame (N = B*T):

* ``deep`` [N,d,7,7]: the decoder's deepest TPAVI output (stage 4 after ASPP and the audio-visual
  attention, :class:`c3n.model.decoder.Decoder`). It is the most semantic map the decoder has, the
  only one at a size where pooling is cheap (49 cells), and it has already mixed in the clip's audio
  (TPAVI's clip-mean step), so the head sees the clip context without a cross-frame op of its own;
* ``audio`` [N,a_dim]: the audio embedding (YAMNet 1024), the same vector TPAVI reads.

Computation: ``a = W_a audio`` [N,d]; a per-cell correspondence ``c_p = <W_v f_p, a> / sqrt(d)``
(does any cell look like what sounds?), pooled by max and mean over the 49 cells; the map pooled by
mean and max over cells; then ``MLP([mean f, max f, a, max c, mean c])`` (3d + 2 -> ``hidden`` ->
1) gives the logit. At d = 32: about 40 k parameters, about 0.1 MFLOP a frame. The max over cells
lets one small object decide; the mean keeps the frame's overall agreement.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class InViewHead(nn.Module):
    """``forward(deep [N,d,H,W], audio [N,a_dim]) -> logit [N]`` (apply a sigmoid for the probability)."""

    def __init__(self, d: int, audio_dim: int, hidden: int = 64):
        super().__init__()
        self.audio_proj = nn.Linear(audio_dim, d)
        self.visual_proj = nn.Conv2d(d, d, 1)
        self.fc1 = nn.Linear(3 * d + 2, hidden)
        self.fc2 = nn.Linear(hidden, 1)

    def forward(self, deep: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        d = deep.shape[1]
        a = self.audio_proj(audio)  # [N,d]
        v = self.visual_proj(deep).flatten(2)  # [N,d,HW]
        corr = torch.matmul(a[:, None, :], v)[:, 0] / math.sqrt(d)  # [N,HW]
        f = deep.flatten(2)
        x = torch.cat([f.mean(dim=2), f.amax(dim=2), a, corr.amax(dim=1, keepdim=True),
                       corr.mean(dim=1, keepdim=True)], dim=1)
        return self.fc2(F.relu(self.fc1(x)))[:, 0]
