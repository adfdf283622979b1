"""AVS-Composites: synthetic AVSBench-style clips with exact masks and real object recordings.

Command line::

    python -m c3n.data.composites OUT_DIR [--seed 1234] [--small] [--s4-train 480] [--s4-val 60]
        [--s4-test 120] [--ms3-train 240] [--ms3-val 40] [--ms3-test 80] [--offscreen-frac 0.1]
        [--workers 2]

Output (exactly the AVSBench layout of ``shared/reference/avsbench.md`` §1–§2, so
``c3n.data.avsbench`` and the Rust evaluator read it like AVSBench)::

    OUT_DIR/Single-source/s4_meta_data.csv                      vid,start,category,split
    OUT_DIR/Single-source/s4_data/visual_frames/<split>/<category>/<vid>/<vid>_<i>.png
    OUT_DIR/Single-source/s4_data/audio_wav/<split>/<category>/<vid>.wav
    OUT_DIR/Single-source/s4_data/gt_masks/<split>/<category>/<vid>/<vid>_<i>.png   (train: i = 1 only)
    OUT_DIR/Multi-sources/ms3_meta_data.csv                     vid,split
    OUT_DIR/Multi-sources/ms3_data/visual_frames/<vid>/<vid>.mp4_<i>.png
    OUT_DIR/Multi-sources/ms3_data/audio_wav/<split>/<vid>.wav
    OUT_DIR/Multi-sources/ms3_data/gt_masks/<split>/<vid>/<vid>_<i>.png
    OUT_DIR/objects.csv   stamp,category,role,family,stratum,split   (the object-instance split)
    OUT_DIR/clips.csv     per-clip recipe (sounding objects, distractors, background, SNR, ...)
    OUT_DIR/README.txt    provenance, licences, command, counts

Clip recipe (i = 1…5 frames, one per second, 224 × 224 RGB PNG; 5 s of 16 kHz int16 mono WAV):

* **Background**: a random crop (random scale, slow pan across the 5 frames), flip and colour shift of
  one of scikit-image's bundled CC0 / public-domain images (textures grass / gravel / brick, tinted;
  photos coffee, chelsea, astronaut, rocket, hubble_deep_field). Fetched from the pinned
  ``scikit-image==0.26.0`` wheel into the cache (:func:`skimage_data_dir`).
* **Objects**: Tux Paint stamps (Debian ``tuxpaint-stamps-default``, GPL-2; photographic RGBA cut-outs
  whose alpha channel is an exact mask; ``NAME.ogg`` is a recording of that object). Each object has a
  random size, flip, tilt and z-order, and moves / rescales / rotates mildly from frame to frame.
* **Sounding objects**: S4-like clips have exactly one, MS3-like clips 2–3. Their own recordings
  (never the ``*_desc*.ogg`` spoken descriptions) are looped with short random gaps, started at a
  random offset, levelled, mixed with random gains, plus white / pink / brown noise at a random SNR.
* **Silent distractors**: visible objects that do not sound — other stamps of the same split (with or
  without a recording), and the 4 silent-placeholder stamps (giraffe, iguana, nandou, wombat).
  S4: 0–2, MS3: 1–2.
* **Off-screen sound**: a fraction (``--offscreen-frac``, default 10 %) of clips whose sounding
  object(s) are not drawn at all ⇒ all-empty masks.
* **GT mask** of frame i = union of the visible sounding objects' pixels with alpha > 127 that are
  not covered by an object drawn on top (alpha > 127), written as 8-bit greyscale (L) 0/255 PNG.

**Split by object instance**: every stamp is assigned to exactly one of train / val / test
(≈ 60 / 15 / 25 %, deterministic from the seed), stratified by top-level Tux Paint folder (folders
with fewer than 3 families are pooled as ``other``). The unit is a *family* — stamps in the same
folder whose names share the first word (``cow``/``cow_white``, ``pig_golden``/``pig_golden2``, the
four ``dreydl-*``) — merged with stamps that share an identical recording (``badger``/``beaver``,
``ram``/``mountaingoat``). Clips use only their split's stamps, as sounding objects and as
distractors; the silent placeholders are used in every split. Test cut-outs and recordings are
therefore never seen in training.

Stamps skipped (counts in README.txt): under ``symbols/``; picture not RGBA (``LA``, ``P``, ``RGB``);
SVG only; no picture; longest side < 48 px (too small to scale to AVSBench object sizes); for
sounding stamps, a recording that is silent (those with an RGBA picture become silent placeholders).

Determinism: every clip draws from its own ``numpy.random.default_rng([seed, subset, split, index])``
and the split assignment from ``default_rng([seed, crc32(stratum)])``, so the same seed gives the same
bytes whatever ``--workers`` is.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import time
import zlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image

from .. import fetch
from ..fetch import Package
from ..paths import cache_dir

SIZE = 224  # frame side, pixels
N_FRAMES = 5  # frames per clip (1 per second)
SR = 16000  # Hz
CLIP_S = 5.0  # seconds of audio per clip
MIN_STAMP_SIDE = 48  # px, longest side of a usable stamp picture
MAX_STAMP_SIDE = 256  # px, pictures are pre-shrunk to this longest side (largest use ≈ 190 px)
SPLITS = ("train", "val", "test")
SPLIT_FRACTIONS = {"train": 0.60, "val": 0.15, "test": 0.25}
SILENT_PEAK = 1e-4  # a recording whose peak is below this is a silent placeholder

DEFAULT_COUNTS = {("s4", "train"): 480, ("s4", "val"): 60, ("s4", "test"): 120,
                  ("ms3", "train"): 240, ("ms3", "val"): 40, ("ms3", "test"): 80}
SMALL_COUNTS = {("s4", "train"): 4, ("s4", "val"): 3, ("s4", "test"): 3,
                ("ms3", "train"): 3, ("ms3", "val"): 2, ("ms3", "test"): 2}

# ---------------------------------------------------------------------------------------------
# scikit-image backgrounds (CC0 / public domain per the docstrings in skimage/data/_fetchers.py)

SKIMAGE = Package("pypi", "scikit-image", "0.26.0",
                  "scikit_image-0.26.0-cp311-cp311-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl",
                  "74aa5518ccea28121f57a95374581d3b979839adc25bb03f289b1bc9b99c58af")
#: file in skimage/data -> (kind, licence as stated by scikit-image)
BACKGROUNDS = {
    "grass.png": ("texture", "CC0 (DeviantArt linolafett, Grass-01)"),
    "gravel.png": ("texture", "CC0 (CC0Textures Gravel04)"),
    "brick.png": ("texture", "CC0 (CC0Textures Bricks25)"),
    "coffee.png": ("photo", "CC0 (Rachel Michetti)"),
    "chelsea.png": ("photo", "CC0 (Stefan van der Walt)"),
    "astronaut.png": ("photo", "public domain (NASA)"),
    "rocket.jpg": ("photo", "public domain (SpaceX)"),
    "hubble_deep_field.jpg": ("photo", "public domain (NASA)"),
}


def skimage_data_dir() -> Path:
    """``skimage/data`` of the pinned scikit-image 0.26.0 wheel, extracted in the cache.

    The wheel is platform specific; it is downloaded for cp311 / manylinux x86_64 explicitly (the
    bundled data files are the same in every wheel), then verified by sha256 via ``c3n.fetch``.
    """
    dest = cache_dir() / "pkgs" / SKIMAGE.filename
    if not dest.exists():
        dest.parent.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
               "--platform", "manylinux_2_28_x86_64", "--python-version", "3.11", "--implementation", "cp",
               "--abi", "cp311", f"{SKIMAGE.name}=={SKIMAGE.version}", "-d", str(dest.parent)]
        print(f"[c3n.data.composites] {' '.join(cmd)}", file=sys.stderr)
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0 or not dest.exists():
            raise fetch.FetchError(f"could not download {SKIMAGE.name}=={SKIMAGE.version}: {r.stderr.strip()[-800:]}")
    return fetch.extract(SKIMAGE) / "skimage" / "data"


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

_STAMPS_DIR: Path | None = None
_BG_DIR: Path | None = None


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


@lru_cache(maxsize=None)
def load_background(path: str) -> np.ndarray:
    """Background image -> uint8 [H,W,3] (greyscale replicated)."""
    im = Image.open(path)
    im = im.convert("L").convert("RGB") if im.mode in ("L", "I;16", "1") else im.convert("RGB")
    return np.asarray(im).copy()


# ---------------------------------------------------------------------------------------------
# rendering

def transform_stamp(rgba: np.ndarray, size_px: float, angle_deg: float = 0.0, flip: bool = False) -> np.ndarray:
    """Scale (longest side → ``size_px``), mirror and rotate an RGBA cut-out; uint8 [h',w',4].

    Resampling is done on premultiplied alpha (Pillow 'RGBa') so edges do not darken.
    """
    im = Image.fromarray(rgba, "RGBA")
    if flip:
        im = im.transpose(Image.FLIP_LEFT_RIGHT)
    h, w = rgba.shape[:2]
    s = size_px / max(h, w)
    im = im.convert("RGBa").resize((max(1, round(w * s)), max(1, round(h * s))), Image.BILINEAR)
    if abs(angle_deg) > 1e-3:
        im = im.rotate(angle_deg, Image.BILINEAR, expand=True)
    return np.asarray(im.convert("RGBA")).copy()


def composite(background: np.ndarray, layers: list[tuple[np.ndarray, int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """Alpha-composite cut-outs over a background.

    background: uint8 or float [H,W,3] (float in [0,1]); layers: (rgba uint8 [h,w,4], x0, y0) in
    drawing order (first = bottom), (x0, y0) = top-left corner in frame pixels (may be outside).
    Returns (rgb uint8 [H,W,3], owner int16 [H,W]): owner = index of the top-most layer whose
    alpha > 127 at that pixel, -1 where none. GT masks are ``np.isin(owner, sounding_layers)``.
    """
    bg = np.asarray(background)
    out = bg.astype(np.float32) / 255.0 if bg.dtype == np.uint8 else bg.astype(np.float32).copy()
    H, W = out.shape[:2]
    owner = np.full((H, W), -1, dtype=np.int16)
    for k, (rgba, x0, y0) in enumerate(layers):
        h, w = rgba.shape[:2]
        fx0, fy0, fx1, fy1 = max(0, x0), max(0, y0), min(W, x0 + w), min(H, y0 + h)
        if fx0 >= fx1 or fy0 >= fy1:
            continue
        sub = rgba[fy0 - y0: fy1 - y0, fx0 - x0: fx1 - x0]
        a = sub[..., 3:4].astype(np.float32) / 255.0
        region = out[fy0:fy1, fx0:fx1]
        out[fy0:fy1, fx0:fx1] = region * (1.0 - a) + (sub[..., :3].astype(np.float32) / 255.0) * a
        own = owner[fy0:fy1, fx0:fx1]
        own[sub[..., 3] > 127] = k
    rgb = np.clip(np.round(out * 255.0), 0, 255).astype(np.uint8)
    return rgb, owner


@dataclass
class ObjectTrack:
    """A drawn object's per-frame geometry."""

    stamp: Stamp
    sounding: bool
    size: list[float]  # longest side per frame, px
    cx: list[float]
    cy: list[float]
    angle: list[float]
    flip: bool
    gain: tuple[float, float, float]  # per-channel colour gain


def _make_track(stamp: Stamp, sounding: bool, base_size: float, rng: np.random.Generator) -> ObjectTrack:
    margin = 0.3 * base_size
    cx0 = rng.uniform(margin, SIZE - margin)
    cy0 = rng.uniform(margin, SIZE - margin)
    vx, vy = rng.uniform(-7, 7, size=2)
    log_s = np.cumsum(rng.normal(0, 0.05, size=N_FRAMES))
    log_s -= log_s[0]
    scale = np.exp(np.clip(log_s, -0.2, 0.2))
    ang0 = rng.uniform(-10, 10)
    angles = ang0 + np.cumsum(rng.normal(0, 1.5, size=N_FRAMES))
    t = np.arange(N_FRAMES)
    cx = cx0 + vx * t + rng.normal(0, 2, size=N_FRAMES)
    cy = cy0 + vy * t + rng.normal(0, 2, size=N_FRAMES)
    return ObjectTrack(stamp, sounding, list(base_size * scale), list(cx), list(cy), list(angles),
                       bool(rng.random() < 0.5), tuple(rng.uniform(0.9, 1.1, size=3)))


def _render_object(tr: ObjectTrack, t: int) -> tuple[np.ndarray, int, int]:
    rgba = load_stamp_picture(str(_STAMPS_DIR / f"{tr.stamp.rel}.png"))
    img = transform_stamp(rgba, tr.size[t], tr.angle[t], tr.flip)
    if tr.gain != (1.0, 1.0, 1.0):
        img = img.copy()
        img[..., :3] = np.clip(img[..., :3].astype(np.float32) * np.asarray(tr.gain, np.float32), 0, 255).astype(np.uint8)
    h, w = img.shape[:2]
    return img, int(round(tr.cx[t] - w / 2)), int(round(tr.cy[t] - h / 2))


@dataclass
class BackgroundTrack:
    name: str
    crop: float  # crop side in source pixels
    x: list[float]
    y: list[float]
    flip: bool
    tint: tuple[float, float, float]
    offset: tuple[float, float, float]
    gamma: float


def _make_background(rng: np.random.Generator) -> BackgroundTrack:
    names = sorted(BACKGROUNDS)
    name = names[rng.integers(len(names))]
    H, W = load_background(str(_BG_DIR / name)).shape[:2]
    side = min(H, W)
    crop = rng.uniform(min(side, 224.0) * 0.8, side * 0.9)
    px, py = rng.uniform(-6, 6, size=2)
    x0 = rng.uniform(0, W - crop - 1)
    y0 = rng.uniform(0, H - crop - 1)
    xs = list(np.clip(x0 + px * np.arange(N_FRAMES), 0, W - crop - 1))
    ys = list(np.clip(y0 + py * np.arange(N_FRAMES), 0, H - crop - 1))
    if BACKGROUNDS[name][0] == "texture":
        tint = tuple(rng.uniform(0.45, 1.05, size=3))
        offset = tuple(rng.uniform(0.0, 0.12, size=3))
    else:
        tint = tuple(rng.uniform(0.85, 1.15, size=3))
        offset = (0.0, 0.0, 0.0)
    return BackgroundTrack(name, float(crop), xs, ys, bool(rng.random() < 0.5), tint, offset,
                           float(rng.uniform(0.8, 1.25)))


def _render_background(bt: BackgroundTrack, t: int) -> np.ndarray:
    src = load_background(str(_BG_DIR / bt.name))
    x0, y0 = int(round(bt.x[t])), int(round(bt.y[t]))
    c = int(round(bt.crop))
    im = Image.fromarray(src[y0:y0 + c, x0:x0 + c]).resize((SIZE, SIZE), Image.BILINEAR)
    if bt.flip:
        im = im.transpose(Image.FLIP_LEFT_RIGHT)
    # colour shift as per-channel look-up tables: out = clip((v/255)^gamma * tint + offset)
    v = (np.arange(256, dtype=np.float64) / 255.0) ** bt.gamma
    luts = [np.clip(v * bt.tint[ch] + bt.offset[ch], 0, 1).astype(np.float32) for ch in range(3)]
    a = np.asarray(im)
    return np.stack([luts[ch][a[..., ch]] for ch in range(3)], axis=-1)


def _visible_ok(owner: np.ndarray, layers: list[tuple[np.ndarray, int, int]], k: int) -> bool:
    """Layer k keeps ≥ 40 % of its own (alpha > 127) pixels visible, and ≥ 300 px unless that is > 60 %."""
    full = int((layers[k][0][..., 3] > 127).sum())
    vis = int((owner == k).sum())
    return vis >= max(0.4 * full, min(300.0, 0.6 * full))


# ---------------------------------------------------------------------------------------------
# audio

def _noise(n: int, kind: str, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS noise [n]: 'white', 'pink' (1/f power) or 'brown' (1/f² power)."""
    w = rng.standard_normal(n)
    if kind != "white":
        spec = np.fft.rfft(w)
        f = np.fft.rfftfreq(n, 1.0 / SR)
        f[0] = f[1]
        spec *= f ** (-0.5 if kind == "pink" else -1.0)
        w = np.fft.irfft(spec, n)
    return w / (np.sqrt(np.mean(w ** 2)) + 1e-12)


def _loop_track(rec: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Repeat a recording with 0.05–0.5 s gaps from a random start offset; float64 [n]."""
    parts, total = [], 0
    while total < n + len(rec) + SR:
        gap = np.zeros(int(rng.uniform(0.05, 0.5) * SR))
        parts += [rec, gap]
        total += len(rec) + len(gap)
    x = np.concatenate(parts).astype(np.float64)
    off = int(rng.integers(0, len(rec) + len(parts[1])))
    return x[off: off + n]


def mix_audio(recs: list[np.ndarray], rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """5 s mix of the sounding objects' recordings + background noise; returns (int16 [80000], snr_db)."""
    n = int(CLIP_S * SR)
    sig = np.zeros(n)
    for rec in recs:
        sig += _loop_track(rec, n, rng) * 10 ** (rng.uniform(-6.0, 3.0) / 20)
    snr_db = float(rng.uniform(5.0, 25.0))
    kind = ("white", "pink", "brown")[int(rng.integers(3))]
    sig_rms = np.sqrt(np.mean(sig ** 2)) + 1e-12
    x = sig + _noise(n, kind, rng) * sig_rms / 10 ** (snr_db / 20)
    x *= 10 ** (rng.uniform(-28.0, -16.0) / 20) / (np.sqrt(np.mean(x ** 2)) + 1e-12)
    peak = np.abs(x).max()
    if peak > 0.95:
        x *= 0.95 / peak
    return np.round(x * 32767).astype(np.int16), snr_db


# ---------------------------------------------------------------------------------------------
# clip generation

SUBSET_ID = {"s4": 4, "ms3": 3}
SPLIT_ID = {"train": 0, "val": 1, "test": 2}


@dataclass
class ClipJob:
    subset: str
    split: str
    index: int
    sounding: list[Stamp]  # their recordings are mixed
    visible: bool  # False: sounding objects off screen (all-empty masks)
    n_distractors: int


def vid_name(subset: str, split: str, index: int) -> str:
    return f"{subset}_{split}_{index:05d}"


def plan_split(subset: str, split: str, n: int, pools: dict, seed: int, offscreen_frac: float) -> list[ClipJob]:
    """Decide each clip's sounding objects and whether they are visible (deterministic)."""
    sound = pools["sound"][split]
    if not sound:
        raise RuntimeError(f"no sounding objects in split {split}")
    rng = np.random.default_rng([seed, SUBSET_ID[subset], SPLIT_ID[split], 999_999])
    n_off = int(round(offscreen_frac * n))
    if offscreen_frac > 0 and n >= 2:
        n_off = max(1, n_off)
    off = set(rng.permutation(n)[:n_off].tolist())
    jobs = []
    order: list[int] = []
    for i in range(n):
        if subset == "s4":
            if not order:  # balanced: cycle through the split's objects in shuffled order
                order = rng.permutation(len(sound)).tolist()
            picks = [sound[order.pop()]]
            n_d = int(rng.integers(0, 3)) if i not in off else int(rng.integers(1, 3))
        else:
            k = int(rng.integers(2, 4))
            picks, fams = [], set()
            for j in rng.permutation(len(sound)):
                if sound[j].family not in fams:
                    picks.append(sound[j])
                    fams.add(sound[j].family)
                if len(picks) == k:
                    break
            n_d = int(rng.integers(1, 3))
        jobs.append(ClipJob(subset, split, i, picks, i not in off, n_d))
    return jobs


def _pick_distractors(job: ClipJob, pools: dict, rng: np.random.Generator) -> list[Stamp]:
    avoid = {s.family for s in job.sounding}
    out: list[Stamp] = []
    for _ in range(job.n_distractors):
        for _try in range(20):
            r = rng.random()
            pool = pools["sound"][job.split] if r < 0.5 else (pools["picture"][job.split] if r < 0.85 else pools["silent"])
            if not pool:
                continue
            s = pool[int(rng.integers(len(pool)))]
            if s.family not in avoid:
                out.append(s)
                avoid.add(s.family)
                break
    return out


def render_clip(job: ClipJob, pools: dict, seed: int):
    """Render one clip: (frames uint8 [5,224,224,3], masks bool [5,224,224], wav int16 [80000], info dict)."""
    rng = np.random.default_rng([seed, SUBSET_ID[job.subset], SPLIT_ID[job.split], job.index])
    distractors = _pick_distractors(job, pools, rng)
    bt = _make_background(rng)
    bgs = [_render_background(bt, t) for t in range(N_FRAMES)]
    best = None
    for attempt in range(12):
        tracks = []
        if job.visible:
            lo, hi = (0.4, 0.9) if job.subset == "s4" else (0.25, 0.55)
            tracks += [_make_track(s, True, rng.uniform(lo, hi) * SIZE, rng) for s in job.sounding]
        tracks += [_make_track(s, False, rng.uniform(0.25, 0.55) * SIZE, rng) for s in distractors]
        order = rng.permutation(len(tracks))
        tracks = [tracks[i] for i in order]
        frames, masks, ok = [], [], True
        for t in range(N_FRAMES):
            layers = [_render_object(tr, t) for tr in tracks]
            rgb, owner = composite(bgs[t], layers)
            snd = [k for k, tr in enumerate(tracks) if tr.sounding]
            if not all(_visible_ok(owner, layers, k) for k in snd):
                ok = False
            frames.append(rgb)
            masks.append(np.isin(owner, snd))
            if not ok and attempt < 11:
                break  # re-draw the placement (the last attempt is kept whatever it gives)
        best = (tracks, frames, masks)
        if ok:
            break
    tracks, frames, masks = best
    # per-frame photometric wobble and sensor noise
    out_frames = []
    for rgb in frames:
        f = rgb.astype(np.float32) * np.float32(rng.normal(1.0, 0.03)) + 2.0 * rng.standard_normal(rgb.shape, dtype=np.float32)
        out_frames.append(np.clip(np.round(f), 0, 255).astype(np.uint8))
    recs = [load_recording(str(_STAMPS_DIR / f"{s.rel}.ogg")) for s in job.sounding]
    wav, snr = mix_audio(recs, rng)
    info = {
        "subset": job.subset, "split": job.split, "vid": vid_name(job.subset, job.split, job.index),
        "category": job.sounding[0].name if job.subset == "s4" else "",
        "sounding": ";".join(s.rel for s in job.sounding),
        "sounding_visible": int(job.visible),
        "distractors": ";".join(tr.stamp.rel for tr in tracks if not tr.sounding),
        "background": bt.name, "snr_db": f"{snr:.2f}",
        "mask_fraction": f"{float(np.mean(masks)):.4f}",
        "placement_ok": int(ok),
    }
    return np.stack(out_frames), np.stack(masks), wav, info


def _png_bytes(arr: np.ndarray, mode: str) -> bytes:
    b = io.BytesIO()
    Image.fromarray(arr, mode).save(b, format="PNG", compress_level=1)  # fast; ~10 % larger than level 6
    return b.getvalue()


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def write_clip(out_dir: Path, job: ClipJob, frames: np.ndarray, masks: np.ndarray, wav: np.ndarray, info: dict) -> None:
    vid = info["vid"]
    if job.subset == "s4":
        base = out_dir / "Single-source" / "s4_data"
        rel = Path(job.split) / info["category"]
        frame_p = [base / "visual_frames" / rel / vid / f"{vid}_{i}.png" for i in range(1, 6)]
        wav_p = base / "audio_wav" / rel / f"{vid}.wav"
        n_masks = 1 if job.split == "train" else N_FRAMES
        mask_p = [base / "gt_masks" / rel / vid / f"{vid}_{i}.png" for i in range(1, n_masks + 1)]
    else:
        base = out_dir / "Multi-sources" / "ms3_data"
        frame_p = [base / "visual_frames" / vid / f"{vid}.mp4_{i}.png" for i in range(1, 6)]
        wav_p = base / "audio_wav" / job.split / f"{vid}.wav"
        mask_p = [base / "gt_masks" / job.split / vid / f"{vid}_{i}.png" for i in range(1, 6)]
    for t, p in enumerate(frame_p):
        _write(p, _png_bytes(frames[t], "RGB"))
    for t, p in enumerate(mask_p):
        _write(p, _png_bytes(masks[t].astype(np.uint8) * 255, "L"))
    b = io.BytesIO()
    sf.write(b, wav, SR, format="WAV", subtype="PCM_16")
    _write(wav_p, b.getvalue())


_CTX: dict = {}


def _init_worker(stamps_dir: str, bg_dir: str, pools: dict, seed: int, out_dir: str) -> None:
    global _STAMPS_DIR, _BG_DIR
    _STAMPS_DIR, _BG_DIR = Path(stamps_dir), Path(bg_dir)
    _CTX.update(pools=pools, seed=seed, out_dir=Path(out_dir))


def _run_job(job: ClipJob) -> dict:
    frames, masks, wav, info = render_clip(job, _CTX["pools"], _CTX["seed"])
    write_clip(_CTX["out_dir"], job, frames, masks, wav, info)
    return info


# ---------------------------------------------------------------------------------------------
# driver

def build_pools(stamps: list[Stamp], split_of: dict[str, str]) -> dict:
    pools: dict = {"sound": {s: [] for s in SPLITS}, "picture": {s: [] for s in SPLITS}, "silent": []}
    for st in stamps:
        if st.role == "silent":
            pools["silent"].append(st)
        else:
            pools[st.role][split_of[st.rel]].append(st)
    return pools


def generate(out_dir: str | Path, seed: int = 1234, counts: dict | None = None, offscreen_frac: float = 0.1,
             workers: int = 1, command: str = "", stamps_dir: Path | None = None, bg_dir: Path | None = None) -> dict:
    """Generate the data set into ``out_dir``; returns a summary dict (counts per split etc.)."""
    counts = dict(DEFAULT_COUNTS if counts is None else counts)
    out_dir = Path(out_dir)
    stamps_dir = Path(stamps_dir or fetch.tuxpaint_stamps_dir())
    bg_dir = Path(bg_dir or skimage_data_dir())
    inv = scan_stamps(stamps_dir)
    split_of = assign_splits(inv.stamps, seed)
    pools = build_pools(inv.stamps, split_of)
    for p in ("Single-source", "Multi-sources", "objects.csv", "clips.csv", "README.txt"):
        q = out_dir / p
        if q.is_dir():
            shutil.rmtree(q)
        elif q.exists():
            q.unlink()
    out_dir.mkdir(parents=True, exist_ok=True)
    jobs: list[ClipJob] = []
    for subset in ("s4", "ms3"):
        for split in SPLITS:
            jobs += plan_split(subset, split, counts[(subset, split)], pools, seed, offscreen_frac)
    if workers > 1 and len(jobs) > 1:
        import multiprocessing as mp

        with mp.get_context("fork").Pool(workers, _init_worker, (str(stamps_dir), str(bg_dir), pools, seed, str(out_dir))) as pool:
            infos = pool.map(_run_job, jobs, chunksize=4)
    else:
        _init_worker(str(stamps_dir), str(bg_dir), pools, seed, str(out_dir))
        infos = [_run_job(j) for j in jobs]
    # metadata CSVs (AVSBench layout; rows in data-set order: train, val, test)
    s4 = [i for i in infos if i["subset"] == "s4"]
    ms3 = [i for i in infos if i["subset"] == "ms3"]
    with open(out_dir / "Single-source" / "s4_meta_data.csv", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["vid", "start", "category", "split"])
        w.writerows([[i["vid"], 0, i["category"], i["split"]] for i in s4])
    with open(out_dir / "Multi-sources" / "ms3_meta_data.csv", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["vid", "split"])
        w.writerows([[i["vid"], i["split"]] for i in ms3])
    with open(out_dir / "objects.csv", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["stamp", "category", "role", "family", "stratum", "split"])
        for st in inv.stamps:
            w.writerow([st.rel, st.name, st.role, st.family, st.stratum, split_of[st.rel]])
    keys = list(infos[0].keys())
    with open(out_dir / "clips.csv", "w", newline="") as f:
        w = csv.DictWriter(f, keys, lineterminator="\n")
        w.writeheader()
        w.writerows(infos)
    summary = _summary(inv, split_of, infos, counts)
    (out_dir / "README.txt").write_text(_readme(seed, command, offscreen_frac, summary))
    return summary


def _summary(inv: Inventory, split_of: dict, infos: list[dict], counts: dict) -> dict:
    obj = Counter((st.role, split_of[st.rel]) for st in inv.stamps)
    clips = Counter((i["subset"], i["split"]) for i in infos)
    empty = Counter((i["subset"], i["split"]) for i in infos if not int(i["sounding_visible"]))
    return {"objects": dict(obj), "clips": dict(clips), "empty_mask_clips": dict(empty),
            "skipped": dict(inv.skipped), "skipped_picture_only": dict(inv.skipped_picture_only),
            "placement_retries_exhausted": sum(1 for i in infos if not int(i["placement_ok"]))}


def _readme(seed: int, command: str, offscreen_frac: float, s: dict) -> str:
    def row(d, role):
        return " / ".join(str(d.get((role, sp), 0)) for sp in SPLITS)

    lines = [
        "AVS-Composites (c3n-edge) -- synthetic AVSBench-style audio-visual segmentation clips",
        "",
        f"Generator: python -m c3n.data.composites {command}".rstrip(),
        f"Seed: {seed}; off-screen-sound fraction: {offscreen_frac}",
        "Layout: exactly AVSBench S4 (Single-source/) and MS3 (Multi-sources/), see",
        "shared/reference/avsbench.md sections 1-2; objects.csv = object-instance split; clips.csv = per-clip recipe.",
        "",
        "PROVENANCE AND LICENCES",
        "- Objects (cut-outs + their recordings): Debian package tuxpaint-stamps-default 2022.06.04-1,",
        "  usr/share/tuxpaint/stamps/ -- GNU GPL version 2. Frames, masks and audio in this folder are",
        "  derived from these files: this data set is GPL-2 and MUST NOT be committed to the c3n-edge",
        "  repository; regenerate it with the command above.",
        "- Backgrounds: scikit-image 0.26.0 bundled sample images (skimage/data), licences as stated by",
        "  scikit-image: " + "; ".join(f"{k} {v[1]}" for k, v in sorted(BACKGROUNDS.items())) + ".",
        "- Background noise: generated (white / pink / brown).",
        "",
        "COUNTS (train / val / test)",
        f"- sounding objects (picture + recording): {row(s['objects'], 'sound')}",
        f"- picture-only distractor stamps: {row(s['objects'], 'picture')}",
        f"- silent-placeholder stamps (all splits): {s['objects'].get(('silent', 'all'), 0)}",
        f"- S4 clips: {row(s['clips'], 's4')}; of which off-screen sound (empty masks): {row(s['empty_mask_clips'], 's4')}",
        f"- MS3 clips: {row(s['clips'], 'ms3')}; of which off-screen sound (empty masks): {row(s['empty_mask_clips'], 'ms3')}",
        "- stamps with a recording skipped: " + (", ".join(f"{k}: {v}" for k, v in sorted(s["skipped"].items()) if v) or "none"),
        "- picture-only stamps skipped: " + (", ".join(f"{k}: {v}" for k, v in sorted(s["skipped_picture_only"].items())) or "none"),
        "  (symbols/ and *_desc*.ogg spoken descriptions are never used)",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Generate AVS-Composites (AVSBench layout) from Tux Paint stamps.")
    ap.add_argument("out_dir")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--small", action="store_true", help="a few clips per split (tests)")
    for (subset, split), n in DEFAULT_COUNTS.items():
        ap.add_argument(f"--{subset}-{split}", type=int, default=None, help=f"clips (default {n})")
    ap.add_argument("--offscreen-frac", type=float, default=0.1)
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    a = ap.parse_args(argv)
    counts = dict(SMALL_COUNTS if a.small else DEFAULT_COUNTS)
    for subset, split in DEFAULT_COUNTS:
        v = getattr(a, f"{subset}_{split}")
        if v is not None:
            counts[(subset, split)] = v
    # the command as recorded in README.txt: OUT_DIR left symbolic so the bytes do not depend on it
    argv_txt = "OUT_DIR" + ("" if a.seed == 1234 else f" --seed {a.seed}") + (" --small" if a.small else "")
    for (subset, split), n in counts.items():
        if n != (SMALL_COUNTS if a.small else DEFAULT_COUNTS)[(subset, split)]:
            argv_txt += f" --{subset}-{split} {n}"
    if a.offscreen_frac != 0.1:
        argv_txt += f" --offscreen-frac {a.offscreen_frac}"
    t0 = time.time()
    s = generate(a.out_dir, a.seed, counts, a.offscreen_frac, a.workers, command=argv_txt)
    print((Path(a.out_dir) / "README.txt").read_text())
    print(f"generated {sum(s['clips'].values())} clips in {time.time() - t0:.1f} s "
          f"(placement retries exhausted: {s['placement_retries_exhausted']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
