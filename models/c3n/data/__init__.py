"""Data: AVSBench S4 / MS3 loaders (``avsbench``) and the AVS-Composites generator (``composites``).

AVS-Composites writes exactly the AVSBench layout, so ``AvsClipDataset`` reads both. The loader
names are imported lazily so that ``python -m c3n.data.composites`` does not import torch.
"""
from __future__ import annotations

__all__ = ["AvsClip", "AvsClipDataset", "list_clips"]


def __getattr__(name: str):
    if name in __all__:
        from . import avsbench

        return getattr(avsbench, name)
    raise AttributeError(name)
