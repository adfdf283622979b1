"""Tux Paint stamps for AVS-Composites: inventory, families, the object-instance split, media loading.

A *stamp* is a photographic RGBA cut-out (alpha = exact mask) of Debian ``tuxpaint-stamps-default``
with, for most, a recording of that object (``NAME.ogg``). See :mod:`c3n.data.composites` for how
they are used; this module decides which stamps are usable, groups them into families, assigns
each family to train / val / test, and loads pictures and recordings.
"""
from __future__ import annotations

import hashlib
import re
import zlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

MIN_STAMP_SIDE = 48  # px, longest side of a usable stamp picture
MAX_STAMP_SIDE = 256  # px, pictures are pre-shrunk to this longest side (largest use ≈ 190 px)
SPLITS = ("train", "val", "test")
SPLIT_FRACTIONS = {"train": 0.60, "val": 0.15, "test": 0.25}
SILENT_PEAK = 1e-4  # a recording whose peak is below this is a silent placeholder


# ---------------------------------------------------------------------------------------------
# stamp inventory and object-instance split

@dataclass(frozen=True)
class Stamp:
    """A Tux Paint stamp. ``rel`` = path under ``stamps/`` without extension."""

    rel: str
    role: str  # "sound" (picture + recording), "silent" (placeholder recording), "picture" (no recording)
    family: str = ""
    stratum: str = ""

    @property
    def name(self) -> str:  # category, e.g. "violin"
        return self.rel.rsplit("/", 1)[-1]

    @property
    def top(self) -> str:
        return self.rel.split("/", 1)[0]


@dataclass
class Inventory:
    stamps: list[Stamp]
    skipped: Counter = field(default_factory=Counter)  # reason -> count (stamps with a recording)
    skipped_picture_only: Counter = field(default_factory=Counter)


def _family_name(rel: str) -> str:
    d, stem = rel.rsplit("/", 1)
    first = re.split(r"[-_]", stem.lower())[0].rstrip("0123456789") or stem.lower()
    return f"{d}/{first}"


def _picture_ok(png: Path) -> str | None:
    """None if the PNG is a usable RGBA cut-out, else the reason."""
    with Image.open(png) as im:
        if im.mode != "RGBA":
            return f"picture mode {im.mode} (not RGBA)"
        if max(im.size) < MIN_STAMP_SIDE:
            return f"picture smaller than {MIN_STAMP_SIDE} px"
        a = np.asarray(im)[..., 3]
    if (a > 127).sum() < 64:
        return "empty alpha"
    return None


def scan_stamps(stamps_dir: Path) -> Inventory:
    """List usable stamps (sorted, deterministic) and count the skipped ones by reason."""
    stamps_dir = Path(stamps_dir)
    inv = Inventory([])
    audio_hash: dict[str, list[str]] = defaultdict(list)
    sounds: set[str] = set()
    for ogg in sorted(stamps_dir.rglob("*.ogg")):
        rel = ogg.relative_to(stamps_dir).with_suffix("").as_posix()
        if "_desc" in ogg.stem or rel.startswith("symbols/"):
            continue
        sounds.add(rel)
        png, svg = ogg.with_suffix(".png"), ogg.with_suffix(".svg")
        if not png.exists():
            inv.skipped["SVG only" if svg.exists() else "no picture"] += 1
            continue
        why = _picture_ok(png)
        if why:
            inv.skipped[why] += 1
            continue
        wave = load_recording(str(ogg))
        if wave is None:  # silent placeholder: visible-but-silent distractor in every split
            inv.stamps.append(Stamp(rel, "silent"))
            continue
        audio_hash[hashlib.sha1(np.round(wave, 4).tobytes()).hexdigest()].append(rel)
        inv.stamps.append(Stamp(rel, "sound"))
    for png in sorted(stamps_dir.rglob("*.png")):
        rel = png.relative_to(stamps_dir).with_suffix("").as_posix()
        if rel in sounds or rel.startswith("symbols/"):
            continue
        if re.search(r"_(mirror|flip)$", png.stem):
            inv.skipped_picture_only["mirror/flip variant"] += 1
            continue
        why = _picture_ok(png)
        if why:
            inv.skipped_picture_only[why] += 1
            continue
        inv.stamps.append(Stamp(rel, "picture"))
    # families: same folder + first name word, merged across identical recordings (union-find)
    parent = {s.rel: _family_name(s.rel) for s in inv.stamps}
    fam_of = dict(parent)
    merge: dict[str, str] = {}

    def find(f: str) -> str:
        while f in merge:
            f = merge[f]
        return f

    for rels in audio_hash.values():
        fams = sorted({find(fam_of[r]) for r in rels})
        for f in fams[1:]:
            merge[f] = fams[0]
    inv.stamps = [Stamp(s.rel, s.role, find(fam_of[s.rel])) for s in inv.stamps]
    # strata: top-level folder; folders with < 3 families (per group) pooled as "other". A family
    # with a sounding member is in the "sound" group (its picture-only members follow it).
    sound_fams = {s.family for s in inv.stamps if s.role == "sound"}
    out = []
    for group in ("sound", "picture"):
        members = [s for s in inv.stamps if s.role != "silent" and (s.family in sound_fams) == (group == "sound")]
        fams_per_top: dict[str, set] = defaultdict(set)
        for s in members:
            fams_per_top[s.top].add(s.family)
        for s in members:
            st = s.top if len(fams_per_top[s.top]) >= 3 else "other"
            out.append(Stamp(s.rel, s.role, s.family, f"{group}:{st}"))
    out += [Stamp(s.rel, s.role, s.family, "silent") for s in inv.stamps if s.role == "silent"]
    inv.stamps = sorted(out, key=lambda s: s.rel)
    return inv


def assign_splits(stamps: list[Stamp], seed: int) -> dict[str, str]:
    """Stamp rel -> 'train' | 'val' | 'test' | 'all' (silent placeholders).

    Per stratum the families are shuffled with ``default_rng([seed, crc32(stratum)])`` and cut
    ≈ 60 / 15 / 25 %; a stratum with ≥ 3 families gives each split at least one.
    """
    out: dict[str, str] = {}
    by_stratum: dict[str, set] = defaultdict(set)
    for s in stamps:
        if s.role == "silent":
            out[s.rel] = "all"
        else:
            by_stratum[s.stratum].add(s.family)
    fam_split: dict[str, str] = {}
    for stratum in sorted(by_stratum):
        fams = sorted(by_stratum[stratum])
        rng = np.random.default_rng([seed, zlib.crc32(stratum.encode())])
        fams = [fams[i] for i in rng.permutation(len(fams))]
        n = len(fams)
        n_val = int(round(SPLIT_FRACTIONS["val"] * n))
        n_test = int(round(SPLIT_FRACTIONS["test"] * n))
        if n >= 3:
            n_val, n_test = max(1, n_val), max(1, n_test)
        n_train = n - n_val - n_test
        for i, f in enumerate(fams):
            fam_split[f] = "train" if i < n_train else ("val" if i < n_train + n_val else "test")
    for s in stamps:
        if s.role != "silent":
            out[s.rel] = fam_split[s.family]
    return out


# ---------------------------------------------------------------------------------------------
# media loading (cached per process)

@lru_cache(maxsize=None)
def load_recording(path: str) -> np.ndarray | None:
    """Object recording -> float32 [n] at 16 kHz, end silences trimmed, active RMS set to 0.1.

    Returns None for a silent recording (peak < ``SILENT_PEAK``).
    """
    from ..audio_io import load_audio_16k

    x = load_audio_16k(path).astype(np.float64)
    if len(x) == 0 or np.abs(x).max() < SILENT_PEAK:
        return None
    win = 320  # 20 ms
    n = max(1, len(x) // win)
    fr = np.sqrt(np.mean(x[: n * win].reshape(n, win) ** 2, axis=1) + 1e-20)
    active = fr > 0.03 * fr.max()
    idx = np.nonzero(active)[0]
    lo, hi = idx[0] * win, min(len(x), (idx[-1] + 1) * win)
    x = x[lo:hi]
    rms_active = np.sqrt(np.mean(fr[active] ** 2))
    return (x * (0.1 / rms_active)).astype(np.float32)


@lru_cache(maxsize=None)
def load_stamp_picture(path: str) -> np.ndarray:
    """Stamp PNG -> RGBA uint8 [h,w,4], cropped to the alpha > 0 box, longest side ≤ MAX_STAMP_SIDE."""
    im = Image.open(path).convert("RGBA")
    bbox = im.getchannel("A").getbbox()
    if bbox:
        im = im.crop(bbox)
    s = MAX_STAMP_SIDE / max(im.size)
    if s < 1:
        im = im.resize((max(1, round(im.width * s)), max(1, round(im.height * s))), Image.LANCZOS)
    return np.asarray(im).copy()
