"""Score decoder checkpoints of :mod:`c3n.train.frozen` on cached splits (:mod:`c3n.train.featcache`).

The frozen part of C3N (backbone, CAM weights, YAMNet, C3IM) is read from the cache, so scoring a
checkpoint costs only CCAM's re-weighting and the decoder: this is how the ablation compares its
runs on the test and domain-shift splits without exporting each one. The numbers equal
:mod:`c3n.eval.evaluate`'s on the exported ONNX model up to the cache's float16 stage maps (the mask
logits differ by < 2e-2, ``models/tests/test_frozen.py``); ``--gate`` applies the runtime's silence
gate as ``c3n.evaluate --gate`` does (the slot level from the clip's WAV, the top AudioSet class
from the cached ``audio_logits``).

Metrics per cached split: AVSBench mIoU and F-score (β² = 0.3) over the clips' GT frames
(:class:`c3n.eval.metrics.AvsMetrics`), and the false-alarm rate over the clips whose GT is empty in
every frame (:func:`c3n.eval.metrics.false_alarm`); on a format-2 cache also the false-alarm rate
on swapped audio-visual pairs (kind ``swapped``) and, for a checkpoint with the ``in_view`` head, its
ROC AUCs (:func:`c3n.train.frozen.validate`, issue 26).

Command (one JSON object per checkpoint and split on stdout, and a Markdown table on stderr)::

    python -m c3n.eval_cached runs/abl-c3n-s1/best.pt runs/abl-tpavi-s1/best.pt \\
        --cache build/featcache/avsc2 --splits s4_test ms3_test \\
        --cache build/featcache/avsc2-shift --splits s4_test ms3_test [--json out.json]

The table averages checkpoints whose run folder names differ only in their trailing ``-sN`` seed.
"""
from __future__ import annotations

import argparse
import functools
import json
import re
import sys
from pathlib import Path

import numpy as np
import torch

from ..eval.evaluate import SilenceGate
from ..model.build import build_model
from .featcache import CachedSplit
from .frozen import validate


def gate_frames(sp: CachedSplit, gate: SilenceGate) -> np.ndarray:
    """bool [n, T]: the frames of a cached split that ``gate`` silences. Reads each clip's WAV from
    the data set the cache was built from (``meta.json`` ``data``); raises ``FileNotFoundError`` if
    it has moved."""
    from ..audio_io import load_audio_16k
    from ..data.avsbench import AvsClipDataset

    ds = AvsClipDataset(Path(sp.meta["data"]), subset=sp.subset, split=sp.meta["split"], augment=False)
    wavs = {c.vid: c.wav_path for c in ds.clips}
    logits = sp.a["audio_logits"]
    out = np.zeros((len(sp), logits.shape[1]), bool)
    for i, vid in enumerate(sp.meta["vids"]):
        if vid not in wavs:
            raise FileNotFoundError(f"{vid}: not in {sp.meta['data']} (the cache's data set)")
        out[i] = gate.gated(load_audio_16k(wavs[vid]), np.asarray(logits[i], dtype=np.float32))
    return out


def score(checkpoint: Path, splits: list[CachedSplit], silenced: dict | None = None) -> dict:
    """``{split_folder: {miou, fscore, clips, empty_clips, false_alarm}}`` of one decoder checkpoint;
    ``silenced``: frames to force empty per split folder (:func:`gate_frames`).

    Raises ``ValueError`` if the checkpoint is not a decoder-only (``frozen_backbone``) checkpoint:
    a fine-tuned backbone would not match the cached stage maps."""
    ck = torch.load(checkpoint, map_location="cpu", weights_only=False)
    if not ck.get("frozen_backbone"):
        raise ValueError(f"{checkpoint}: not a frozen-backbone checkpoint (c3n.train_frozen)")
    model = build_model(ck.get("config", "edge"), checkpoint=str(checkpoint))
    out = {}
    for sp in splits:
        r = validate(model, [sp], model.use_ccam, silenced=silenced)[sp.subset]
        by_kind = alarms_by_kind(sp, r["false_alarm_clips"])
        if by_kind is not None and r.get("swapped_clips"):  # format 2: the swapped pairs (issue 26)
            n = r["swapped_clips"]
            by_kind["swapped"] = [round(r["false_alarm_swapped"] * n), n]
        out[str(sp.folder)] = {**r, "use_ccam": model.use_ccam, "step": ck.get("step"),
                               "false_alarm_by_kind": by_kind}
    return out


@functools.lru_cache(maxsize=None)
def clip_kinds(data: str) -> dict[str, str] | None:
    """vid -> clip kind (onscreen / offscreen / silent / noise) from the ``clips.csv`` of an
    AVS-Composites data set (a cache's ``meta.json`` ``data``); None for other data sets. Read once."""
    import csv

    table = Path(data) / "clips.csv"
    if not table.exists():
        return None
    with open(table, newline="") as f:
        return {r["vid"]: r.get("kind", "") for r in csv.DictReader(f)}


def alarms_by_kind(sp: CachedSplit, alarm_clips: list[int]) -> dict | None:
    """``{kind: [clips with a false region, empty-GT clips]}`` for an AVS-Composites cache
    (:func:`clip_kinds`); None otherwise."""
    kind = clip_kinds(sp.meta["data"])
    if kind is None:
        return None
    out: dict[str, list[int]] = {}
    alarmed = set(alarm_clips)
    for i, vid in enumerate(sp.meta["vids"]):
        k = kind.get(vid, "")
        if k and k != "onscreen":
            out.setdefault(k, [0, 0])
            out[k][0] += i in alarmed
            out[k][1] += 1
    return out


def group_name(checkpoint: Path) -> str:
    """Run name without its seed: ``runs/abl-c3n-s2/best.pt`` -> ``abl-c3n``."""
    return re.sub(r"-s\d+$", "", checkpoint.parent.name)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Score decoder checkpoints on cached splits.")
    ap.add_argument("checkpoints", nargs="+", type=Path)
    ap.add_argument("--cache", action="append", type=Path, required=True,
                    help="a featcache folder; repeat for several (each followed by its --splits)")
    ap.add_argument("--splits", action="append", nargs="+", required=True,
                    help="cached split folders of the preceding --cache, e.g. s4_test ms3_test")
    ap.add_argument("--gate", action="store_true", help="apply the runtime's silence gate (c3n.evaluate --gate)")
    ap.add_argument("--gate-dbfs", type=float, default=-50.0)
    ap.add_argument("--gate-classes", nargs="*", default=["Silence"])
    ap.add_argument("--json", type=Path, default=None, help="also write all results to this file")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    if len(a.cache) != len(a.splits):
        ap.error("give one --splits list after each --cache")
    torch.set_num_threads(a.threads)
    splits = []
    for cache, names in zip(a.cache, a.splits):
        for n in names:
            if not (cache / n / "meta.json").exists():
                ap.error(f"{cache / n}: no cached split there (python -m c3n.featcache)")
            splits.append(CachedSplit(cache / n))
    silenced = None
    if a.gate:
        gate = SilenceGate(a.gate_dbfs, tuple(a.gate_classes))
        silenced = {sp.folder: gate_frames(sp, gate) for sp in splits}
        for sp in splits:
            print(f"{sp.folder}: gate silences {silenced[sp.folder].mean():.1%} of frames", file=sys.stderr)
    results = {}
    for ck in a.checkpoints:
        try:
            results[str(ck)] = score(ck, splits, silenced)
        except (OSError, ValueError, RuntimeError) as e:
            print(f"error: {ck}: {e}", file=sys.stderr)
            return 1
        for sp, r in results[str(ck)].items():
            print(json.dumps({"checkpoint": str(ck), "split": sp, **r}))
    if a.json:
        a.json.write_text(json.dumps(results, indent=1))
    # Markdown table: one row per run group (seeds averaged), one mIoU / false-alarm column per split
    cols = [str(sp.folder) for sp in splits]
    groups: dict[str, list[str]] = {}
    for ck in a.checkpoints:
        groups.setdefault(group_name(ck), []).append(str(ck))
    short = [f"{Path(c).parent.name}/{Path(c).name}" for c in cols]
    print("| run (seeds) | " + " | ".join(f"{s} mIoU / F / false" for s in short) + " |", file=sys.stderr)
    print("|---" * (len(cols) + 1) + "|", file=sys.stderr)
    for g, cks in groups.items():
        cells = []
        for c in cols:
            m = [results[k][c] for k in cks]
            cells.append(" / ".join(f"{np.mean([x[f] for x in m]):.3f}" for f in ("miou", "fscore", "false_alarm"))
                         + (f" (±{np.std([x['miou'] for x in m]):.3f})" if len(m) > 1 else ""))
        print(f"| {g} ({len(cks)}) | " + " | ".join(cells) + " |", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
