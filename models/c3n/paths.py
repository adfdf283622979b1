"""Where downloaded packages and build artefacts live.

* ``C3N_CACHE`` (default ``~/.cache/c3n-edge``): downloaded wheels / .deb files and what is
  extracted from them. Never inside the repository (GPL media must not be committed).
* ``C3N_BUILD`` (default ``models/build`` in the checkout, git-ignored): derived artefacts such as
  the float YAMNet ONNX, exported test models and reference outputs.
"""
from __future__ import annotations

import os
from pathlib import Path

MODELS_DIR = Path(__file__).resolve().parent.parent
ASSETS_DIR = MODELS_DIR / "assets"


def cache_dir() -> Path:
    d = Path(os.environ.get("C3N_CACHE", Path.home() / ".cache" / "c3n-edge"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def build_dir() -> Path:
    d = Path(os.environ.get("C3N_BUILD", MODELS_DIR / "build"))
    d.mkdir(parents=True, exist_ok=True)
    return d
