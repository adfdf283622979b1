"""Export C3N to ONNX: one self-describing file per (config, T), CCAM's backward inside the graph.

Contract (read by the Rust runtime, ``src/engine/model.rs``):

* inputs ``frames`` float32 [T,3,224,224] (RGB, ImageNet mean/std), ``audio_logmel`` float32
  [T,1,96,64] (:mod:`c3n.frontend`);
* outputs ``mask_logits`` float32 [T,1,224,224], ``visual_logits`` [T,1000], ``audio_logits``
  [T,521], ``unified_label`` int64 [T], ``c3im_score`` float32 [T];
* opset 17, standard domain only; static shapes;
* ``metadata_props``: ``c3n.schema``, ``c3n.config``, ``c3n.model_version``, ``c3n.trained``,
  ``c3n.variant``, ``c3n.clip_frames``, ``c3n.clip_rate_hz``, ``c3n.input_size``, ``c3n.mean``,
  ``c3n.std``, ``c3n.frontend.*`` (:class:`c3n.frontend.FrontendParams`), ``c3n.labels.imagenet``
  and ``c3n.labels.audioset`` (JSON arrays), ``c3n.similarity.sha256``.

Command: ``python -m c3n.export --config edge --frames 5 [--checkpoint ckpt.pt] --out FILE``.
Without ``--checkpoint`` the decoder is untrained (seeded random init) and the file says so
(``c3n.trained = false``; default file name ``c3n-<config>-untrained-t<T>.onnx``).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import onnx
import torch
from torch import nn

from . import MODEL_VERSION
from .frontend import DEFAULT as FRONTEND
from .model import CONFIGS, C3N

SCHEMA = "1"
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
INPUT_NAMES = ["frames", "audio_logmel"]
OUTPUT_NAMES = ["mask_logits", "visual_logits", "audio_logits", "unified_label", "c3im_score"]


class _ExportWrapper(nn.Module):
    def __init__(self, model: C3N, with_cam: bool = False):
        super().__init__()
        self.model = model
        self.with_cam = with_cam

    def forward(self, frames, audio_logmel):
        return self.model(frames, audio_logmel, t=frames.shape[0], return_cam=self.with_cam)


def build_model(config: str, checkpoint: str | None = None, use_ccam: bool = True, seed: int = 0) -> C3N:
    """Build C3N with the pretrained parts; load decoder/backbone weights from ``checkpoint`` if given."""
    from . import fetch
    from .similarity import load_similarity
    from .yamnet import load_yamnet

    torch.manual_seed(seed)
    ckpt = None
    if checkpoint is not None:
        ckpt = torch.load(checkpoint, map_location="cpu", weights_only=False)
        config = ckpt.get("config", config)
        use_ccam = ckpt.get("use_ccam", use_ccam)
    model = C3N(CONFIGS[config], load_yamnet(), torch.from_numpy(load_similarity()),
                str(fetch.mobilenet_v2_weights()), use_ccam=use_ccam)
    if ckpt is not None:
        missing, unexpected = model.load_state_dict(ckpt["model"], strict=False)
        bad = [k for k in missing if not k.startswith("audio.")] + list(unexpected)
        if bad:
            raise ValueError(f"{checkpoint}: checkpoint does not match config {config!r}: {bad[:5]}")
    return model.eval()


def metadata(model: C3N, t: int, trained: bool) -> dict[str, str]:
    from .labels import audioset_names, imagenet_names
    from .similarity import similarity_sha256

    md = {
        "c3n.schema": SCHEMA,
        "c3n.config": model.config.name,
        "c3n.decoder_width": str(model.config.width),
        "c3n.model_version": MODEL_VERSION,
        "c3n.trained": "true" if trained else "false",
        "c3n.variant": "c3n" if model.use_ccam else "tpavi-only",
        "c3n.clip_frames": str(t),
        "c3n.clip_rate_hz": "1.0",
        "c3n.input_size": "224",
        "c3n.mean": ",".join(str(m) for m in MEAN),
        "c3n.std": ",".join(str(s) for s in STD),
        "c3n.labels.imagenet": json.dumps(imagenet_names()),
        "c3n.labels.audioset": json.dumps(audioset_names()),
        "c3n.similarity.sha256": similarity_sha256(),
    }
    md.update(FRONTEND.as_metadata())
    return md


def export(model: C3N, t: int, out: Path, trained: bool, with_cam: bool = False) -> Path:
    """Trace ``model`` at T = ``t`` and write ``out`` (single file, weights inside).

    ``with_cam`` adds outputs ``cam_w1..cam_w4`` [T,C_k] (Grad-CAM channel weights) for tests;
    shipped files never have them.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    frames = torch.randn(t, 3, 224, 224)
    logmel = torch.randn(t, 1, 96, 64)
    tmp = out.with_suffix(".tmp.onnx")
    with torch.no_grad():
        shapes = [tuple(o.shape) for o in _ExportWrapper(model, with_cam).eval()(frames, logmel)]
        names = OUTPUT_NAMES + ([f"cam_w{k}" for k in range(1, 5)] if with_cam else [])
        torch.onnx.export(_ExportWrapper(model, with_cam).eval(), (frames, logmel), str(tmp), dynamo=False,
                          opset_version=17, input_names=INPUT_NAMES, output_names=names,
                          do_constant_folding=True)
    m = onnx.load(str(tmp))
    for out_vi, shape in zip(m.graph.output, shapes):  # the tracer leaves some dims symbolic
        dims = out_vi.type.tensor_type.shape.dim
        del dims[:]
        for n in shape:
            dims.add().dim_value = n
    del m.metadata_props[:]
    for k, v in metadata(model, t, trained).items():
        m.metadata_props.add(key=k, value=v)
    m.producer_name = "c3n-edge models/c3n/export.py"
    onnx.checker.check_model(m)
    onnx.save(m, str(out))
    tmp.unlink()
    return out


def default_name(config: str, t: int, trained: bool, variant: str = "c3n") -> str:
    v = "" if variant == "c3n" else f"-{variant}"
    return f"c3n-{config}{v}{'' if trained else '-untrained'}-t{t}.onnx"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Export C3N to ONNX (CCAM backward in-graph).")
    ap.add_argument("--config", choices=sorted(CONFIGS), default="edge")
    ap.add_argument("--frames", type=int, nargs="+", default=[5, 1], help="T values to export (default 5 1)")
    ap.add_argument("--checkpoint", help="training checkpoint (.pt); omit for an untrained decoder")
    ap.add_argument("--no-ccam", action="store_true", help="TPAVI-only ablation (without a checkpoint)")
    ap.add_argument("--out-dir", default=None, help="output folder (default: models/build)")
    ap.add_argument("--name", default=None, help="file name pattern with {t}, default c3n-<config>[-untrained]-t{t}.onnx")
    a = ap.parse_args(argv)
    from .paths import build_dir

    model = build_model(a.config, a.checkpoint, use_ccam=not a.no_ccam)
    trained = a.checkpoint is not None
    out_dir = Path(a.out_dir) if a.out_dir else build_dir()
    for t in a.frames:
        name = a.name.format(t=t) if a.name else default_name(model.config.name, t, trained,
                                                              "c3n" if model.use_ccam else "tpavi-only")
        p = export(model, t, out_dir / name, trained)
        print(f"{p} ({p.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
