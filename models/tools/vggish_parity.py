"""Parity of ``c3n.model.vggish.VGGishAudio`` with the official VGGish + PCA + AudioSet head.

Not part of CI. ``--official DIR`` is the ``avs_s4`` folder of a C3N-VGGish checkout outside this
repository (it must hold ``torchvggish/`` and ``model/audio_model.py``; ``resampy`` is stubbed
when missing). With random weights (fixed seed) it builds the official ``VGG(make_layers())``,
``Postprocessor`` and ``FeatureLevelSingleAttention(128, 527, 1024, 0.5)``, saves their
state_dicts, loads them strictly into ours, runs both on the same log-mel examples ``[N,1,96,64]``
and prints the max abs differences of the embedding and the logits, and how many quantised
values differ (a rounding boundary may flip one step between two float orders).

    python tools/vggish_parity.py --official /work/scratch/C3N_vggish/avs_scripts/avs_s4 [--n 5]
"""
from __future__ import annotations

import argparse
import importlib
import sys
import types
from pathlib import Path

import numpy as np
import torch

from c3n.model import vggish


def load_official(folder: Path) -> tuple[types.ModuleType, types.ModuleType]:
    if "resampy" not in sys.modules:
        try:
            import resampy  # noqa: F401
        except ImportError:
            sys.modules["resampy"] = types.ModuleType("resampy")
    sys.path.insert(0, str(folder.resolve()))
    vg = importlib.import_module("torchvggish.vggish")
    am = importlib.import_module("model.audio_model")
    return vg, am


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--official", type=Path, required=True, help="C3N_vggish/avs_scripts/avs_s4")
    ap.add_argument("--n", type=int, default=5, help="examples per batch (the official code needs > 1)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    vg, am = load_official(a.official)
    torch.manual_seed(a.seed)
    net = vg.VGG(vg.make_layers()).eval()
    pproc = vg.Postprocessor().eval()
    rng = np.random.default_rng(a.seed)
    with torch.no_grad():
        pproc.pca_eigen_vectors.copy_(torch.from_numpy(rng.standard_normal((128, 128)) * 30.0))  # spread over 0..255
        pproc.pca_means.copy_(torch.from_numpy(rng.random((128, 1)) * 0.05))
    head = am.FeatureLevelSingleAttention(128, 527, 1024, 0.5).eval()
    for m in head.modules():  # non-trivial BatchNorm statistics
        if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 2.0)
    ours = vggish.VGGishAudio().eval()
    ours.audio_backbone.load_state_dict(net.state_dict(), strict=True)
    ours.pproc.load_state_dict(pproc.state_dict(), strict=True)
    ours.classification_model.load_state_dict(head.state_dict(), strict=True)
    x = torch.randn(a.n, 1, 96, 64) * 2 - 4
    with torch.no_grad():
        emb_ref = net(x)
        q_ref = pproc(emb_ref)
        logits_ref = head(am.uint8_to_float32(q_ref).unsqueeze(1))
        emb, logits = ours(x)
        q = ours.pproc(emb)
    d_emb = float((emb - emb_ref).abs().max())
    d_q = int((q != q_ref).sum())
    d_logit = float((logits - logits_ref).abs().max())
    scale = float(logits_ref.abs().max())
    print(f"embedding [N,128]: max abs diff {d_emb:.3e} (max |ref| {float(emb_ref.abs().max()):.3e})")
    print(f"quantised: {d_q} of {q.numel()} values differ ({int((q == 0).sum())} at 0, "
          f"{int((q == 255).sum())} at 255, {len(torch.unique(q))} distinct)")
    print(f"audio_logits [N,527]: max abs diff {d_logit:.3e} (max |ref| {scale:.3e})")
    ok = d_emb <= 1e-5 * max(1.0, float(emb_ref.abs().max())) and d_logit <= 1e-4 * max(1.0, scale)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
