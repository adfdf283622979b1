"""Parity of the VGGish front end (``c3n.model.frontend.VGGISH``) with the official preprocessing.

Not part of CI: it imports the official ``torchvggish`` folder (``vggish_input.py``,
``mel_features.py``, ``vggish_params.py`` of AVSBench / C3N-VGGish, docs/avsbench.md §4) from a
checkout outside this repository, given as ``--official DIR``. For each 16 kHz WAV it compares
``vggish_input.wavfile_to_examples`` (int16 / 32768, no resampling at 16 kHz) with
``clip_patches(wave, n_examples, p=VGGISH)`` and prints the max abs difference.

    python tools/vggish_frontend_parity.py --official /work/scratch/torchvggish A.wav B.wav ...

``resampy`` (imported by ``vggish_input`` at the top) is only called for rates other than 16 kHz;
when it is not installed a stub that refuses to resample stands in for it.
"""
from __future__ import annotations

import argparse
import importlib
import sys
import types
from pathlib import Path

import numpy as np
import soundfile as sf

from c3n.model import frontend


def load_official(folder: Path) -> types.ModuleType:
    try:
        import resampy  # noqa: F401
    except ImportError:
        stub = types.ModuleType("resampy")

        def _refuse(*_a, **_k):
            raise RuntimeError("resampy is not installed: give 16 kHz WAV files")

        stub.resample = _refuse
        sys.modules["resampy"] = stub
    sys.path.insert(0, str(folder.resolve().parent))
    return importlib.import_module(f"{folder.name}.vggish_input")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--official", type=Path, required=True, help="the official torchvggish folder")
    ap.add_argument("wavs", type=Path, nargs="+")
    a = ap.parse_args()
    vi = load_official(a.official)
    worst = 0.0
    for wav in a.wavs:
        ref = vi.wavfile_to_examples(str(wav)).detach().numpy()  # [n,1,96,64]
        x, sr = sf.read(wav, dtype="int16", always_2d=True)
        if sr != frontend.VGGISH.sample_rate:
            print(f"{wav}: {sr} Hz, skipped (resampling differs by design: resampy vs rubato)")
            continue
        wave = x.astype(np.float64).mean(axis=1) / 32768.0
        got = frontend.clip_patches(wave, n_slots=len(ref), slot_s=1.0, p=frontend.VGGISH)
        d = float(np.max(np.abs(got - ref))) if ref.size else 0.0
        worst = max(worst, d)
        print(f"{wav.name}: {len(x)} samples, {len(ref)} examples, max abs diff {d:.3e}")
    print(f"max abs diff over all files: {worst:.3e}")
    return 0 if worst <= 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main())
