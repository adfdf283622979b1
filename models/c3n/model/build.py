"""C3N with its pretrained parts (MobileNetV2 ImageNet weights, YAMNet, the C3IM similarity S),
optionally loaded from a training checkpoint: the model that training, evaluation, feature caching
and the ONNX export all start from.
"""
from __future__ import annotations

import torch

from .network import C3N, CONFIGS


def build_model(config: str, checkpoint: str | None = None, use_ccam: bool = True, seed: int = 0,
                in_view: bool = False) -> C3N:
    """Build C3N with the pretrained parts; load decoder/backbone weights from ``checkpoint`` if given.

    ``in_view`` adds the ``in_view`` head (:mod:`c3n.model.inview`); with a checkpoint the head is
    there exactly when the checkpoint has ``in_view.*`` weights (older checkpoints load without it).
    Raises ``ValueError`` if the checkpoint's weights do not match the model (strict but for the
    pretrained parts)."""
    from .. import packages
    from ..similarity import load_similarity
    from .yamnet import load_yamnet

    torch.manual_seed(seed)
    ckpt = None
    if checkpoint is not None:
        ckpt = torch.load(checkpoint, map_location="cpu", weights_only=False)
        config = ckpt.get("config", config)
        use_ccam = ckpt.get("use_ccam", use_ccam)
        in_view = any(k.startswith("in_view.") for k in ckpt["model"])
    model = C3N(CONFIGS[config], load_yamnet(), torch.from_numpy(load_similarity()),
                str(packages.mobilenet_v2_weights()), use_ccam=use_ccam, in_view=in_view)
    if ckpt is not None:
        missing, unexpected = model.load_state_dict(ckpt["model"], strict=False)
        frozen = bool(ckpt.get("frozen_backbone"))  # c3n.train.frozen: the decoder only
        bad = [k for k in missing if not (k.startswith("audio.") or (frozen and k.startswith("backbone.")))]
        bad += list(unexpected)
        if bad:
            raise ValueError(f"{checkpoint}: checkpoint does not match config {config!r}: {bad[:5]}")
    return model.eval()
