"""The networks of the official C3N code and of the AVSBench baseline, assembled for import.

Data flow for a batch of B clips of T frames (N = B*T), docs/c3n-method.md §3:

1. ``frames`` [N,3,224,224] (ImageNet mean/std) -> visual backbone -> four stage maps (after the
   stage norm) and, where the backbone has its ImageNet head, ``visual_logits`` [N,1000].
2. audio -> audio network -> feature for TPAVI [N,a_dim] (VGGish 128, PANNs 2048) and
   ``audio_logits`` [N,527] (VGGish: PCA + 8-bit quantisation + AudioSet head; PANNs: its
   ``clipwise_output``, already sigmoid probabilities, used as C3N uses them).
3. C3N only: C3IM (§6) with the user's similarity S [1000,527] -> ``unified_label``,
   ``c3im_score``; CCAM (§7): the Grad-CAM weights of ``visual_logits[n, unified_label[n]]`` at
   each stage's last block output (:func:`c3n.model.camgrad.cam_weights`, forward ops only),
   applied to the stage maps by :func:`c3n.model.network.ccam`.
4. Decoder (:mod:`c3n.model.official_decoder`) -> ``mask_logits`` [N,1,224,224].

Checkpoint layout (docs/c3n-method.md §2-§8; what ``torch.save(model.state_dict())`` of the
official code holds): the backbone under ``encoder_backbone.`` (AVSBench ResNet-50: ``resnet.``),
the decoder's keys at the top level; the audio network is not in it (built from its own files).
:meth:`OfficialNetwork.checkpoint_tensors` lists exactly those keys.
"""
from __future__ import annotations

import torch
from torch import nn

from .network import c3im, c3im_affinity, ccam
from .official_decoder import AVSBenchDecoder, C3NDecoder

CODES = ("c3n", "avsbench")
VISUALS = ("pvt_v2_b5", "swin_base", "resnet50")
AUDIOS = ("vggish", "panns")
AUDIO_DIM = {"vggish": 128, "panns": 2048}  # TPAVI's align_channel: Linear(AUDIO_DIM, 256)
N_AUDIOSET = 527


def load_similarity_h5(path: str, n_imagenet: int = 1000, n_audioset: int = N_AUDIOSET) -> torch.Tensor:
    """C3IM's similarity S, float32 [1000,527], from the ``similarity_matrix`` dataset of an HDF5
    file (the official ``similarity_matrix.h5``; docs/c3n-method.md §6). Raises ValueError when the
    dataset is missing, not 2-D [n_imagenet, n_audioset], or not finite."""
    import h5py
    import numpy as np

    with h5py.File(path, "r") as f:
        if "similarity_matrix" not in f:
            raise ValueError(f"{path}: no dataset 'similarity_matrix' (found {sorted(f.keys())})")
        s = np.asarray(f["similarity_matrix"][()], dtype=np.float32)
    if s.shape != (n_imagenet, n_audioset):
        raise ValueError(f"{path}: similarity_matrix has shape {list(s.shape)}, "
                         f"expected [{n_imagenet}, {n_audioset}]")
    if not np.isfinite(s).all():
        raise ValueError(f"{path}: similarity_matrix has non-finite values")
    return torch.from_numpy(s)


class OfficialNetwork(nn.Module):
    """An imported network: ``code`` "c3n" (C3IM + CCAM + the C3N decoder) or "avsbench" (the TPAVI
    baseline: no C3IM, no CCAM).

    Submodules: ``backbone`` (checkpoint prefix ``backbone_prefix``), ``decoder`` (top-level keys
    of the checkpoint), ``audio`` (its own files). ``audio(x) -> (feature [N,a_dim], audio_logits
    [N,527])``; ``backbone(frames) -> (stages, visual_logits or None)`` with ``logit_map(stage4)``
    where it has a head. CCAM's weights come from :func:`c3n.model.camgrad.forward_for_cam` /
    :func:`c3n.model.camgrad.cam_weights_from` (the backbone runs once, its backward replayed as
    forward ops), or from ``cam_weights(backbone, frames, label) -> 4 x [N,C_k]`` when given
    (e.g. :func:`c3n.model.camgrad.cam_weights_reference`, autograd, not exportable).
    """

    def __init__(self, code: str, backbone: nn.Module, audio: nn.Module, decoder: nn.Module,
                 backbone_prefix: str = "encoder_backbone", similarity: torch.Tensor | None = None,
                 cam_weights=None):
        super().__init__()
        if code not in CODES:
            raise ValueError(f"code must be one of {CODES}, got {code!r}")
        if code == "c3n" and similarity is None:
            raise ValueError("C3N needs the C3IM similarity matrix [1000,527]")
        self.code = code
        self.backbone_prefix = backbone_prefix
        self.backbone = backbone
        self.audio = audio
        self.decoder = decoder
        self._cam_weights = cam_weights
        if similarity is not None:
            self.register_buffer("similarity", torch.as_tensor(similarity, dtype=torch.float32), persistent=False)
        else:
            self.similarity = None

    @property
    def output_names(self) -> list[str]:
        """The contract outputs :meth:`forward` returns, in order."""
        if self.code == "c3n":
            return ["mask_logits", "visual_logits", "audio_logits", "unified_label", "c3im_score",
                    "visual_logit_map", "c3im_affinity"]
        return ["mask_logits", "audio_logits"]

    def checkpoint_tensors(self) -> dict[str, torch.Tensor]:
        """Every key an official checkpoint of this network holds -> our tensor (parameters and
        buffers, BatchNorm's ``num_batches_tracked`` included)."""
        out = {f"{self.backbone_prefix}.{k}": v for k, v in self.backbone.state_dict(keep_vars=True).items()}
        out.update(self.decoder.state_dict(keep_vars=True))
        return out

    def forward(self, frames: torch.Tensor, audio_in: torch.Tensor, t: int | None = None,
                return_cam: bool = False):
        """frames [N,3,224,224], audio_in [N,1,96,64] (VGGish log-mel) or [N,16000] (PANNs);
        N = B*t (t defaults to N: one clip).

        C3N returns ``(mask_logits [N,1,224,224], visual_logits [N,1000], audio_logits [N,527],
        unified_label int64 [N], c3im_score [N], visual_logit_map [N,1000,h,w], c3im_affinity
        [N,1000])`` and with ``return_cam`` the four CCAM weight tensors [N,C_k]; AVSBench returns
        ``(mask_logits, audio_logits)``.
        """
        t = frames.shape[0] if t is None else t
        with torch.no_grad():
            feat, audio_logits = self.audio(audio_in)
        if self.code == "avsbench":
            stages, _ = self.backbone(frames)
            return self.decoder(list(stages), feat, t), audio_logits
        if self._cam_weights is None:  # one forward, its backward replayed as forward ops
            from .camgrad import cam_weights_from, forward_for_cam

            stages, visual_logits, state = forward_for_cam(self.backbone, frames)
        else:
            stages, visual_logits = self.backbone(frames)
        affinity = c3im_affinity(audio_logits, self.similarity)
        label, score = c3im(visual_logits, audio_logits, self.similarity, affinity=affinity)
        logit_map = self.backbone.logit_map(stages[3])
        if self._cam_weights is None:
            cams = cam_weights_from(self.backbone, state, label)
        else:
            cams = self._cam_weights(self.backbone, frames, label)
        cams = [w.detach() for w in cams]
        stages = [ccam(s, w[:, :, None, None]) for s, w in zip(stages, cams)]
        mask = self.decoder(stages, feat, t)
        return (mask, visual_logits, audio_logits, label, score, logit_map, affinity,
                *(cams if return_cam else []))


def build_backbone(visual: str, head: bool) -> tuple[nn.Module, str]:
    """The visual backbone (:mod:`c3n.model.pvt_v2`, :mod:`c3n.model.swin`,
    :mod:`c3n.model.resnet`) and its checkpoint prefix. ``head``: with the ImageNet head (C3N)."""
    classes = 1000 if head else 0
    if visual == "pvt_v2_b5":
        from .pvt_v2 import pvt_v2_b5

        return pvt_v2_b5(num_classes=classes), "encoder_backbone"
    if visual == "swin_base":
        from .swin import swin_base_patch4_window7_224

        return swin_base_patch4_window7_224(num_classes=classes), "encoder_backbone"
    if visual == "resnet50":
        from .resnet import resnet50

        return resnet50(num_classes=classes), "resnet"
    raise ValueError(f"visual must be one of {VISUALS}, got {visual!r}")


def build_audio(audio: str) -> nn.Module:
    """The audio network, random weights: VGGish (:mod:`c3n.model.vggish`) or PANNs Cnn14_16k
    (:mod:`c3n.model.panns`, input the 16 kHz waveform [N,16000])."""
    if audio == "vggish":
        from .vggish import VGGishAudio

        return VGGishAudio()
    if audio == "panns":
        from .panns import Cnn14_16k

        return Cnn14_16k()
    raise ValueError(f"audio must be one of {AUDIOS}, got {audio!r}")


def build_network(code: str, visual: str, audio: str, similarity: torch.Tensor | None = None,
                  tpavi_stages=(0, 1, 2, 3), backbone: nn.Module | None = None,
                  audio_net: nn.Module | None = None, cam_weights=None) -> OfficialNetwork:
    """An official network with random weights, ready for a checkpoint (eval mode).

    ``code`` "c3n": ImageNet head, C3IM (``similarity`` [1000,527] required), CCAM, ASPP decoder;
    "avsbench": no head, Classifier_Module decoder with TPAVI at ``tpavi_stages`` (0-based).
    ``backbone`` / ``audio_net`` replace the built ones (tests)."""
    if code not in CODES:
        raise ValueError(f"code must be one of {CODES}, got {code!r}")
    if code == "c3n" and visual == "resnet50":
        raise ValueError("the C3N code has no ResNet-50 variant (docs/c3n-method.md §4)")
    if code == "avsbench" and audio == "panns":
        raise ValueError("the AVSBench baseline has no PANNs variant (VGGish only)")
    prefix = "resnet" if visual == "resnet50" else "encoder_backbone"
    if backbone is None:
        backbone, prefix = build_backbone(visual, head=code == "c3n")
    if audio_net is None:
        audio_net = build_audio(audio)
    channels = tuple(backbone.stage_channels)
    a_dim = getattr(audio_net, "embed_dim", AUDIO_DIM[audio])  # reduced-size PANNs: its width
    if code == "c3n":
        decoder = C3NDecoder(channels, audio_dim=a_dim)
    else:
        decoder = AVSBenchDecoder(channels, tpavi_stages, audio_dim=a_dim)
    net = OfficialNetwork(code, backbone, audio_net, decoder, prefix, similarity, cam_weights)
    return net.eval()
