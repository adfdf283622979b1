"""VGGish as C3N-VGGish and the AVSBench baseline use it: embedding, PCA + 8-bit quantisation, and
the 527-class AudioSet head (docs/avsbench.md §4, docs/c3n-method.md §5). Written from those notes;
the module and parameter names are the ones the published weight files carry, so they load strictly.

Input: log-mel examples float32 ``[N,1,96,64]`` (96 frames of 10 ms x 64 mel bands, ``ln(mel + 0.01)``,
``c3n.model.frontend.VGGISH``).

* ``VGGishNet`` (weights ``vggish-10086976.pth``; keys ``features.{0,3,6,8,11,13}.{weight,bias}``,
  ``embeddings.{0,2,4}.{weight,bias}``): conv3x3 64, pool, 128, pool, 256, 256, pool, 512, 512,
  pool (ReLU after each conv, 2x2 max-pools) -> ``[N,512,6,4]`` -> (6, 4, 512) order -> 12288 ->
  FC 4096 -> FC 4096 -> FC 128, ReLU after each, the last included. This 128-d vector (the "raw
  embedding") is what TPAVI receives.
* ``PcaQuantiser`` (weights ``vggish_pca_params-970ea276.pth``; keys ``pca_eigen_vectors``
  [128,128], ``pca_means`` [128,1] — the file stores the means as [128]; :func:`pca_state` reshapes):
  ``E' = V·(E − μ)``, clip to [−2, 2], ``round((E' + 2)·255/4)`` (round half to even, as
  ``torch.round``) -> float in 0..255. The head then sees ``(q − 128)/128``.
* ``AudioSetHead`` (weights ``md_50000_iters.pth``: Kong et al.'s feature-level single-attention
  model, arXiv 1711.00927): on ``[N, time=1, 128]``: BN(128) -> 3 x (1x1 conv -> 1024, no bias,
  BN, ReLU, dropout 0.5) -> attention pooling over time (sigmoid attention clamped to
  [1e-7, 1 − 1e-7] and normalised over time; linear classification map; with one time step the
  pooled value is the classification map) -> BN(1024), ReLU, dropout -> Linear 1024 -> 527.
  Output: **logits** (no sigmoid); C3IM applies ``softmax(·)^α`` to them (docs/c3n-method.md §6).
  Keys and shapes: :data:`HEAD_SHAPES`.

``VGGishAudio`` joins the three under the attribute names of C3N's audio extractor
(``audio_backbone``, ``pproc``, ``classification_model``) and returns ``(embedding [N,128],
audio_logits [N,527])``. Unlike the reference postprocessor it does not squeeze the batch
dimension, so ``N = 1`` works (T = 1 exports).
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

EMBED_DIM = 128
N_AUDIOSET = 527
HIDDEN = 1024
QUANT_MIN, QUANT_MAX = -2.0, 2.0
#: conv widths and max-pools ("M") of the VGG feature stack
VGG_LAYERS: tuple[int | str, ...] = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M")

#: ``md_50000_iters.pth`` keys -> shapes (BatchNorm buffers ``running_mean``, ``running_var`` and
#: ``num_batches_tracked`` come with every ``bn*`` weight; the latter may be absent in the
#: 2018 file, which ``BatchNorm`` accepts).
HEAD_SHAPES: dict[str, tuple[int, ...]] = {
    "emb.conv1.weight": (HIDDEN, EMBED_DIM, 1, 1),
    "emb.conv2.weight": (HIDDEN, HIDDEN, 1, 1),
    "emb.conv3.weight": (HIDDEN, HIDDEN, 1, 1),
    "emb.bn0.weight": (EMBED_DIM,), "emb.bn0.bias": (EMBED_DIM,),
    "emb.bn1.weight": (HIDDEN,), "emb.bn1.bias": (HIDDEN,),
    "emb.bn2.weight": (HIDDEN,), "emb.bn2.bias": (HIDDEN,),
    "emb.bn3.weight": (HIDDEN,), "emb.bn3.bias": (HIDDEN,),
    "attention.att.weight": (HIDDEN, HIDDEN, 1, 1), "attention.att.bias": (HIDDEN,),
    "attention.cla.weight": (HIDDEN, HIDDEN, 1, 1), "attention.cla.bias": (HIDDEN,),
    "fc_final.weight": (N_AUDIOSET, HIDDEN), "fc_final.bias": (N_AUDIOSET,),
    "bn_attention.weight": (HIDDEN,), "bn_attention.bias": (HIDDEN,),
}


class VGGishNet(nn.Module):
    """VGGish embedding network: ``[N,1,96,64]`` log-mel -> raw embedding ``[N,128]`` (after ReLU)."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 1
        for v in VGG_LAYERS:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(c_in, int(v), 3, padding=1), nn.ReLU()]
                c_in = int(v)
        self.features = nn.Sequential(*layers)
        self.embeddings = nn.Sequential(
            nn.Linear(512 * 6 * 4, 4096), nn.ReLU(),
            nn.Linear(4096, 4096), nn.ReLU(),
            nn.Linear(4096, EMBED_DIM), nn.ReLU(),
        )

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        x = self.features(logmel)  # [N,512,6,4]
        x = x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)  # (6, 4, 512) order, as the TF original
        return self.embeddings(x)


class PcaQuantiser(nn.Module):
    """AudioSet's PCA (with whitening) and 8-bit quantisation of the VGGish embedding.

    ``forward(E [N,128]) -> q [N,128]`` float, integer values 0..255.
    """

    def __init__(self) -> None:
        super().__init__()
        self.pca_eigen_vectors = nn.Parameter(torch.zeros(EMBED_DIM, EMBED_DIM), requires_grad=False)
        self.pca_means = nn.Parameter(torch.zeros(EMBED_DIM, 1), requires_grad=False)

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        pca = (emb - self.pca_means.reshape(1, -1)) @ self.pca_eigen_vectors.t()
        clipped = torch.clamp(pca, QUANT_MIN, QUANT_MAX)
        return torch.round((clipped - QUANT_MIN) * (255.0 / (QUANT_MAX - QUANT_MIN)))


def pca_state(raw: Mapping[str, object]) -> dict[str, torch.Tensor]:
    """The PCA file's dict (numpy arrays: eigenvectors [128,128], means [128]) as a
    :class:`PcaQuantiser` state_dict (float32; means as a column [128,1])."""
    out = {}
    for key, shape in (("pca_eigen_vectors", (EMBED_DIM, EMBED_DIM)), ("pca_means", (EMBED_DIM, 1))):
        if key not in raw:
            raise KeyError(f"PCA parameters: key `{key}` is missing (found {sorted(raw)})")
        t = torch.as_tensor(np.asarray(raw[key]), dtype=torch.float32)
        if t.numel() != int(np.prod(shape)):
            raise ValueError(f"PCA parameters: `{key}` has shape {tuple(t.shape)}, expected {shape}")
        out[key] = t.reshape(shape)
    return out


class _Embedding(nn.Module):
    """The head's three 1x1-conv layers (``emb.*``); input ``[N, time, 128]`` -> ``[N,1024,time,1]``."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(EMBED_DIM, HIDDEN, 1, bias=False)
        self.conv2 = nn.Conv2d(HIDDEN, HIDDEN, 1, bias=False)
        self.conv3 = nn.Conv2d(HIDDEN, HIDDEN, 1, bias=False)
        self.bn0 = nn.BatchNorm2d(EMBED_DIM)
        self.bn1 = nn.BatchNorm2d(HIDDEN)
        self.bn2 = nn.BatchNorm2d(HIDDEN)
        self.bn3 = nn.BatchNorm2d(HIDDEN)
        self.drop = nn.Dropout(0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.transpose(1, 2).unsqueeze(3)  # [N,128,time,1]
        x = self.bn0(x)
        for conv, bn in ((self.conv1, self.bn1), (self.conv2, self.bn2), (self.conv3, self.bn3)):
            x = self.drop(torch.relu(bn(conv(x))))
        return x


class _Attention(nn.Module):
    """Attention pooling over time (``attention.*``): sigmoid attention, linear classification map."""

    def __init__(self) -> None:
        super().__init__()
        self.att = nn.Conv2d(HIDDEN, HIDDEN, 1)
        self.cla = nn.Conv2d(HIDDEN, HIDDEN, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        att = torch.clamp(torch.sigmoid(self.att(x))[:, :, :, 0], 1e-7, 1.0 - 1e-7)  # [N,1024,time]
        cla = self.cla(x)[:, :, :, 0]
        return torch.sum(att / att.sum(dim=2, keepdim=True) * cla, dim=2)  # [N,1024]


class AudioSetHead(nn.Module):
    """Kong et al.'s AudioSet classifier on quantised embeddings: ``[N,time,128]`` in ``[-1, 1)``
    (``(q − 128)/128``) -> logits ``[N,527]`` (pre-sigmoid). Keys: :data:`HEAD_SHAPES`."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = _Embedding()
        self.attention = _Attention()
        self.fc_final = nn.Linear(HIDDEN, N_AUDIOSET)
        self.bn_attention = nn.BatchNorm1d(HIDDEN)
        self.drop = nn.Dropout(0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = self.attention(self.emb(x))
        return self.fc_final(self.drop(torch.relu(self.bn_attention(b))))


class VGGishAudio(nn.Module):
    """VGGish + PCA/quantisation + AudioSet head, attribute names as C3N's audio extractor.

    ``forward(logmel [N,1,96,64]) -> (embedding [N,128] for TPAVI, audio_logits [N,527])``.
    Load the three weight files with ``audio_backbone.load_state_dict(vggish_sd)``,
    ``pproc.load_state_dict(pca_state(pca_file))`` and ``classification_model.load_state_dict(head_sd)``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.audio_backbone = VGGishNet()
        self.pproc = PcaQuantiser()
        self.classification_model = AudioSetHead()

    def forward(self, logmel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        emb = self.audio_backbone(logmel)
        q = self.pproc(emb)
        logits = self.classification_model(((q - 128.0) / 128.0).unsqueeze(1))
        return emb, logits
