"""Export C3N to ONNX: one self-describing file per (config, T), CCAM's backward inside the graph.

Contract (read by the Rust runtime, ``src/engine/model.rs``):

* inputs ``frames`` float32 [T,3,224,224] (RGB, ImageNet mean/std), ``audio_logmel`` float32
  [T,1,96,64] (:mod:`c3n.model.frontend`);
* outputs ``mask_logits`` float32 [T,1,224,224], ``visual_logits`` [T,1000], ``audio_logits``
  [T,521], ``unified_label`` int64 [T], ``c3im_score`` float32 [T], and (schema 2, issue 15)
  ``visual_logit_map`` float32 [T,1000,7,7] (the ImageNet head at each stage-4 cell: pooled
  over a region's cells it gives the region's logits) and ``c3im_affinity`` float32 [T,1000]
  (``max_i S[j,i] a[i]``: the region's unified label is ``argmax_j softmax(l)^0.1[j] · r[j]``);
* optional (issue 26), only in models with the ``in_view`` head (:mod:`c3n.model.inview`), after
  every other output: ``in_view`` float32 [T], the probability that the sound's source is visible
  (sigmoid applied), with metadata ``c3n.in_view`` = ``1``; models without the head export exactly
  as before (no output, no key);
* opset 17, standard domain only; static shapes;
* ``metadata_props``: ``c3n.schema``, ``c3n.config``, ``c3n.model_version``, ``c3n.trained``,
  ``c3n.variant``, ``c3n.clip_frames``, ``c3n.clip_rate_hz``, ``c3n.input_size``, ``c3n.mean``,
  ``c3n.std``, ``c3n.frontend.*`` (:class:`c3n.model.frontend.FrontendParams`), ``c3n.labels.imagenet``
  and ``c3n.labels.audioset`` (JSON arrays), ``c3n.similarity.sha256``, ``c3n.alpha`` (C3IM's
  exponent), ``c3n.categories`` (the text of ``assets/categories-v<N>.json``, :mod:`c3n.categories`),
  ``c3n.categories.sha256`` and ``c3n.categories.version``; ``c3n.frame_split`` (issue 16, see
  :func:`mark_frame_split`).

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

from .. import MODEL_VERSION
from ..model.build import build_model
from ..model.frontend import DEFAULT as FRONTEND
from ..model.network import C3N, CONFIGS
from .frame_split import add_segment_cuts, mark_frame_split

SCHEMA = "2"  # 2: + visual_logit_map, c3im_affinity, c3n.alpha, c3n.categories* (issue 15)
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
INPUT_NAMES = ["frames", "audio_logmel"]
OUTPUT_NAMES = ["mask_logits", "visual_logits", "audio_logits", "unified_label", "c3im_score",
                "visual_logit_map", "c3im_affinity"]


class _ExportWrapper(nn.Module):
    def __init__(self, model: C3N, with_cam: bool = False):
        super().__init__()
        self.model = model
        self.with_cam = with_cam

    def forward(self, frames, audio_logmel):
        return self.model(frames, audio_logmel, t=frames.shape[0], return_cam=self.with_cam, region_outputs=True)


def metadata(model: C3N, t: int, trained: bool) -> dict[str, str]:
    from .. import categories
    from ..labels import audioset_names, imagenet_names
    from ..model.network import ALPHA
    from ..similarity import similarity_sha256

    cat_text = categories.asset_text()

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
        "c3n.alpha": repr(ALPHA),
        "c3n.categories": cat_text,
        "c3n.categories.sha256": categories.sha256_text(cat_text),
        "c3n.categories.version": str(json.loads(cat_text)["version"]),
    }
    md.update(FRONTEND.as_metadata())
    if model.in_view is not None:
        md["c3n.in_view"] = "1"
    return md


def output_names(model: C3N, with_cam: bool = False) -> list[str]:
    """The graph's output names in order: the contract's, ``cam_w1..4`` with ``with_cam`` (tests),
    then ``in_view`` when the model has the head."""
    return (OUTPUT_NAMES + ([f"cam_w{k}" for k in range(1, 5)] if with_cam else [])
            + (["in_view"] if model.in_view is not None else []))


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
        names = output_names(model, with_cam)
        torch.onnx.export(_ExportWrapper(model, with_cam).eval(), (frames, logmel), str(tmp), dynamo=False,
                          opset_version=17, input_names=INPUT_NAMES, output_names=names,
                          do_constant_folding=True)
    m = onnx.load(str(tmp))
    for out_vi, shape in zip(m.graph.output, shapes):  # the tracer leaves some dims symbolic
        dims = out_vi.type.tensor_type.shape.dim
        del dims[:]
        for n in shape:
            dims.add().dim_value = n
    split = mark_frame_split(m)
    del m.metadata_props[:]
    for k, v in metadata(model, t, trained).items():
        m.metadata_props.add(key=k, value=v)
    m.metadata_props.add(key="c3n.frame_split", value=json.dumps(split))
    add_segment_cuts(m)
    # the exporter's path before c3n/export/ became a package, kept so re-exports stay byte-identical
    m.producer_name = "c3n-edge models/c3n/export.py"
    onnx.checker.check_model(m)
    onnx.save(m, str(out))
    tmp.unlink()
    return out


def reference_input(t: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed real input: tuxpaint violin / dog cut-outs over grey (alternating) and the violin's
    recording. frames [t,3,224,224] (normalised), audio_logmel [t,1,96,64]."""
    import numpy as np
    from PIL import Image

    from .. import packages
    from ..audio_io import load_audio_16k
    from ..model.frontend import clip_patches

    stamps = packages.tuxpaint_stamps_dir()
    out = []
    for i in range(t):
        rel = "hobbies/music/string/violin.png" if i % 2 == 0 else "animals/mammals/dogs/dog.png"
        im = Image.open(stamps / rel).convert("RGBA")
        canvas = Image.new("RGBA", (224, 224), (128, 128, 128, 255))
        im.thumbnail((150, 150))
        canvas.alpha_composite(im, (20 + 8 * i, 30 + 5 * i))
        arr = np.asarray(canvas.convert("RGB"), dtype=np.float32) / 255.0
        arr = (arr - np.array(MEAN, dtype=np.float32)) / np.array(STD, dtype=np.float32)
        out.append(torch.from_numpy(arr.transpose(2, 0, 1).copy()))
    wave = load_audio_16k(stamps / "hobbies/music/string/violin.ogg")
    return torch.stack(out), torch.from_numpy(clip_patches(wave, t, 1.0))


def save_reference(model: C3N, onnx_path: Path, ref_dir: Path) -> Path:
    """Write ``ref_dir/<onnx stem>/``: ``model.onnx`` (hard link or copy), the fixed real input
    (``frames.npy``, ``audio_logmel.npy``) and PyTorch eager outputs ``<output>.npy``; read by the
    Rust tract test (``tests/engine_tract.rs``)."""
    import os
    import shutil

    import numpy as np

    t = int(onnx.load(str(onnx_path), load_external_data=False).graph.input[0].type.tensor_type.shape.dim[0].dim_value)
    d = Path(ref_dir) / onnx_path.stem
    d.mkdir(parents=True, exist_ok=True)
    dst = d / "model.onnx"
    dst.unlink(missing_ok=True)
    try:
        os.link(onnx_path, dst)
    except OSError:
        shutil.copyfile(onnx_path, dst)
    frames, logmel = reference_input(t)
    with torch.no_grad():
        outs = model(frames, logmel, t=t, region_outputs=True)
    np.save(d / "frames.npy", frames.numpy())
    np.save(d / "audio_logmel.npy", logmel.numpy())
    for name, o in zip(output_names(model), outs):
        np.save(d / f"{name}.npy", o.numpy())
    return d


def default_name(config: str, t: int, trained: bool, variant: str = "c3n") -> str:
    v = "" if variant == "c3n" else f"-{variant}"
    return f"c3n-{config}{v}{'' if trained else '-untrained'}-t{t}.onnx"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m c3n.export",
                                 description="Export C3N to ONNX (CCAM backward in-graph).")
    ap.add_argument("--config", choices=sorted(CONFIGS), default="edge")
    ap.add_argument("--frames", type=int, nargs="+", default=[5, 1], help="T values to export (default 5 1)")
    ap.add_argument("--checkpoint", help="training checkpoint (.pt); omit for an untrained decoder")
    ap.add_argument("--no-ccam", action="store_true", help="TPAVI-only ablation (without a checkpoint)")
    ap.add_argument("--out-dir", default=None, help="output folder (default: models/build)")
    ap.add_argument("--reference-dir", default=None,
                    help="also write PyTorch reference I/O for the Rust tract test under this folder")
    ap.add_argument("--name", default=None,
                    help="file name pattern with {t}, default c3n-<config>[-untrained]-t{t}.onnx")
    a = ap.parse_args(argv)
    from ..paths import build_dir

    model = build_model(a.config, a.checkpoint, use_ccam=not a.no_ccam)
    trained = a.checkpoint is not None
    out_dir = Path(a.out_dir) if a.out_dir else build_dir()
    for t in a.frames:
        name = a.name.format(t=t) if a.name else default_name(model.config.name, t, trained,
                                                              "c3n" if model.use_ccam else "tpavi-only")
        p = export(model, t, out_dir / name, trained)
        print(f"{p} ({p.stat().st_size / 1e6:.1f} MB)")
        if a.reference_dir:
            print(f"  reference I/O: {save_reference(model, p, Path(a.reference_dir))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
