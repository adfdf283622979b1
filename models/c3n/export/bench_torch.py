"""PyTorch timing of C3N on the shipped clip, for the runtime's benchmarks (issue 16).

``python -m c3n.bench_torch [--threads N] [--iters K] [--checkpoint ckpt.pt]`` times the eager
``edge`` model per T-frame window of ``assets/clips/bbb-bird`` (frames resized to 224×224 and
ImageNet-normalised, the clip's audio through :mod:`c3n.model.frontend`), in two forms:

* ``autograd``: CCAM's Grad-CAM by ``torch.autograd.grad`` of the unified label's logit w.r.t. the
  four stage maps, and the decoder in the reference code's ops (``F.interpolate``, 5-D TPAVI:
  :func:`c3n.model.decoder.research_form`) — how the paper's research code runs it (the reference of
  the speed target);
* ``written-out``: :class:`c3n.model.network.C3N` as exported (the in-graph backward of
  :mod:`c3n.model.backbone`), under ``torch.no_grad``.

Both give the same mask (``tests/test_model.py::test_autograd_forward_matches_written_out``).
Prints one JSON line per form: median / min ms per window, threads, T, torch version. Without a
checkpoint the decoder is untrained, which costs the same.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ..model.decoder import research_form
from ..model.network import C3N, c3im, ccam

CLIP = Path(__file__).resolve().parents[2] / "assets" / "clips" / "bbb-bird"


def forward_autograd(model: C3N, frames: torch.Tensor, audio_logmel: torch.Tensor, t: int):
    """C3N with CCAM's gradients taken by autograd (the research code's way).

    frames [N,3,224,224], audio_logmel [N,1,96,64] -> (mask_logits [N,1,224,224], unified_label [N]).
    """
    with torch.no_grad():
        emb, audio_logits = model.audio(audio_logmel)
    with torch.enable_grad():
        stages, visual_logits, _ = model.backbone(frames, record=False)
        label, _ = c3im(visual_logits, audio_logits, model.similarity)
        grads = torch.autograd.grad(visual_logits.gather(1, label[:, None]).sum(), stages)
    with torch.no_grad(), research_form():
        mask = model.decoder([ccam(s.detach(), g) for s, g in zip(stages, grads)], emb, t)
    return mask, label


def clip_windows(t: int, clip: Path = CLIP) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The clip's frames and audio as model windows of ``t`` frames (1 frame per second)."""
    from PIL import Image

    from ..audio_io import load_audio_16k
    from ..model.frontend import clip_patches
    from .exporter import MEAN, STD

    paths = sorted((clip / "frames").glob("*.png"))
    n = len(paths) // t * t
    mean, std = np.array(MEAN, np.float32), np.array(STD, np.float32)
    frames = []
    for p in paths[:n]:
        im = Image.open(p).convert("RGB").resize((224, 224), Image.BILINEAR)
        arr = (np.asarray(im, np.float32) / 255.0 - mean) / std
        frames.append(torch.from_numpy(arr.transpose(2, 0, 1).copy()))
    logmel = torch.from_numpy(clip_patches(load_audio_16k(clip / "audio.wav"), n, 1.0))
    f = torch.stack(frames)
    return [(f[i:i + t], logmel[i:i + t]) for i in range(0, n, t)]


def time_forms(model: C3N, windows, t: int, iters: int) -> dict[str, list[float]]:
    """ms per window of each form, ``iters`` passes over ``windows`` after one warm-up pass."""
    forms = {
        "autograd": lambda f, a: forward_autograd(model, f, a, t),
        "written-out": lambda f, a: model(f, a, t=t),
    }
    out: dict[str, list[float]] = {}
    for name, fn in forms.items():
        with torch.no_grad() if name == "written-out" else torch.enable_grad():
            for f, a in windows:
                fn(f, a)
            ms = []
            for _ in range(iters):
                for f, a in windows:
                    t0 = time.perf_counter()
                    fn(f, a)
                    ms.append((time.perf_counter() - t0) * 1e3)
        out[name] = ms
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="PyTorch eager timing of C3N per window of the shipped clip.")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--frames", type=int, default=5, help="T, frames per window")
    ap.add_argument("--iters", type=int, default=3, help="passes over the clip's windows after a warm-up")
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--clip", default=str(CLIP))
    a = ap.parse_args(argv)
    from ..model.build import build_model

    torch.set_num_threads(a.threads)
    model = build_model("edge", a.checkpoint)
    windows = clip_windows(a.frames, Path(a.clip))
    for name, ms in time_forms(model, windows, a.frames, a.iters).items():
        print(json.dumps({"engine": f"pytorch-{name}", "threads": a.threads, "clip_frames": a.frames,
                          "windows": len(ms), "median_ms": round(statistics.median(ms), 1),
                          "min_ms": round(min(ms), 1), "torch": torch.__version__}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
