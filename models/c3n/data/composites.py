"""AVS-Composites v2: synthetic AVSBench-style clips with exact masks and real object recordings.

Command line::

    python -m c3n.data.composites OUT_DIR [--seed 1234] [--small] [--s4-train 1600] [--s4-val 60]
        [--s4-test 120] [--ms3-train 800] [--ms3-val 40] [--ms3-test 80] [--offscreen-frac 0.1]
        [--silent-frac 0.08] [--noise-frac 0.07] [--backgrounds all|skimage] [--domain-shift]
        [--workers 2]

Output (the AVSBench layout of ``shared/reference/avsbench.md`` §1–§2, so ``c3n.data.avsbench`` and
the Rust evaluator read it like AVSBench)::

    OUT_DIR/Single-source/s4_meta_data.csv                      vid,start,category,split
    OUT_DIR/Single-source/s4_data/visual_frames/<split>/<category>/<vid>/<vid>_<i>.png
    OUT_DIR/Single-source/s4_data/audio_wav/<split>/<category>/<vid>.wav
    OUT_DIR/Single-source/s4_data/gt_masks/<split>/<category>/<vid>/<vid>_<i>.png   (i = 1…5, train too)
    OUT_DIR/Multi-sources/ms3_meta_data.csv                     vid,split
    OUT_DIR/Multi-sources/ms3_data/visual_frames/<vid>/<vid>.mp4_<i>.png
    OUT_DIR/Multi-sources/ms3_data/audio_wav/<split>/<vid>.wav
    OUT_DIR/Multi-sources/ms3_data/gt_masks/<split>/<vid>/<vid>_<i>.png
    OUT_DIR/objects.csv   stamp,category,role,family,stratum,split   (the object-instance split)
    OUT_DIR/clips.csv     per-clip recipe (kind, sounding objects, distractors, background, camera, audio level)
    OUT_DIR/README.txt    provenance, licences, command, counts

S4 train clips carry all five masks (AVSBench's have only the first; the loaders of
``c3n.data.avsbench`` read only that one, :mod:`c3n.featcache` all five).

Clip recipe (i = 1…5 frames, one per second, 224 × 224 RGB PNG; 5 s of 16 kHz int16 mono WAV):

* **Background** (:mod:`c3n.data.backgrounds`): a slowly panning crop (30–90 % of the shorter side),
  flip and colour shift of a real photo or wallpaper from scikit-image, Debian
  plasma-workspace-wallpapers and opencv-doc, each image assigned to one split by a hash of its
  name; the domain-shift set uses only the held-out packages mate-backgrounds and ukui-wallpapers.
* **Objects** (:mod:`c3n.data.stamps`): Tux Paint stamps (Debian ``tuxpaint-stamps-default``, GPL-2;
  photographic RGBA cut-outs whose alpha channel is an exact mask; ``NAME.ogg`` is a recording of
  that object). Each object has a random size (longest side, log-uniform: S4 source 15–95 % of the
  frame, MS3 sources 15–60 %, distractors 12–60 %), flip, tilt and z-order, and moves / rescales /
  rotates mildly from frame to frame.
* **Camera** (:mod:`c3n.data.camera`): per clip exposure, gamma, white balance, blur, sensor noise
  and JPEG re-encoding, applied to the whole frame.
* **Clip kinds** (:mod:`c3n.data.mixing` for the audio):
  ``onscreen`` — S4: one sounding object, MS3: 2–3; their own recordings (never the ``*_desc*.ogg``
  spoken descriptions) looped with short gaps, random offset and gains, plus white / pink / brown
  noise at 5–25 dB SNR, levelled to −40…−14 dBFS;
  ``offscreen`` (``--offscreen-frac``, 10 %) — the same sound, sounding objects not drawn;
  ``silent`` (``--silent-frac``, 8 %) — no sound at all (digital zero or −90…−75 dBFS dither), the
  would-be sources drawn but silent;
  ``noise`` (``--noise-frac``, 7 %) — only a noise floor at −65…−42 dBFS (sometimes mains hum),
  sources drawn but silent. The last three have all-empty masks.
* **Silent distractors**: visible objects that do not sound — other stamps of the same split (with or
  without a recording), and the 4 silent-placeholder stamps (giraffe, iguana, nandou, wombat).
  S4: 0–2, MS3: 1–2 (1–2 in the empty-mask kinds).
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

**Domain-shift set** (``--domain-shift``): only the test split (``--s4-test`` / ``--ms3-test``
clips), over backgrounds from packages never used otherwise, with the test split's objects
(families never used in training) and clip draws of their own (seed + ``SHIFT_SEED_OFFSET``).

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
import io
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image

from .. import fetch
from ..fetch import Package
from ..paths import cache_dir
from . import backgrounds as B
from . import camera
from .mixing import SR, mix_audio, noise_floor, silence
from .stamps import (MAX_STAMP_SIDE, MIN_STAMP_SIDE, SILENT_PEAK, SPLIT_FRACTIONS, SPLITS,  # noqa: F401
                     Inventory, Stamp, assign_splits, load_recording, load_stamp_picture, scan_stamps)

SIZE = 224  # frame side, pixels
N_FRAMES = 5  # frames per clip (1 per second)

DEFAULT_COUNTS = {("s4", "train"): 1600, ("s4", "val"): 60, ("s4", "test"): 120,
                  ("ms3", "train"): 800, ("ms3", "val"): 40, ("ms3", "test"): 80}
SMALL_COUNTS = {("s4", "train"): 4, ("s4", "val"): 3, ("s4", "test"): 3,
                ("ms3", "train"): 3, ("ms3", "val"): 2, ("ms3", "test"): 2}
#: background sources (:mod:`c3n.data.backgrounds`): all real-photo packages, or v1's scikit-image only
BACKGROUND_SETS = {"all": ("skimage", "plasma", "opencv"), "skimage": ("skimage",)}
#: clip kinds with empty masks: sounding objects off screen, no sound at all, only a noise floor
EMPTY_KINDS = ("offscreen", "silent", "noise")
#: object sizes (longest side, fraction of the frame side), drawn log-uniform
SIZE_RANGES = {"s4": (0.15, 0.95), "ms3": (0.15, 0.6), "distractor": (0.12, 0.6)}
DEFAULT_FRACS = {"offscreen": 0.10, "silent": 0.08, "noise": 0.07}

# ---------------------------------------------------------------------------------------------
# scikit-image backgrounds (CC0 / public domain per the docstrings in skimage/data/_fetchers.py)

SKIMAGE = Package("pypi", "scikit-image", "0.26.0",
                  "scikit_image-0.26.0-cp311-cp311-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl",
                  "74aa5518ccea28121f57a95374581d3b979839adc25bb03f289b1bc9b99c58af")
# (used as backgrounds by c3n.data.backgrounds; licences per scikit-image's docstrings: grass CC0
# (DeviantArt linolafett), gravel and brick CC0 (CC0Textures), coffee CC0 (Rachel Michetti), chelsea
# CC0 (Stefan van der Walt), astronaut and hubble_deep_field public domain (NASA), rocket public
# domain (SpaceX))


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
# media loading (cached per process)

_STAMPS_DIR: Path | None = None


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


def _visible_ok(owner: np.ndarray, layers: list[tuple[np.ndarray, int, int]], k: int) -> bool:
    """Layer k keeps ≥ 40 % of its own (alpha > 127) pixels visible, and ≥ 300 px unless that is > 60 %."""
    full = int((layers[k][0][..., 3] > 127).sum())
    vis = int((owner == k).sum())
    return vis >= max(0.4 * full, min(300.0, 0.6 * full))




# ---------------------------------------------------------------------------------------------
# clip generation

SUBSET_ID = {"s4": 4, "ms3": 3}
SPLIT_ID = {"train": 0, "val": 1, "test": 2}


@dataclass
class ClipJob:
    subset: str
    split: str
    index: int
    sounding: list[Stamp]  # their recordings are mixed (kinds onscreen / offscreen)
    kind: str  # "onscreen" | "offscreen" | "silent" | "noise" (the last three: all-empty masks)
    n_distractors: int

    @property
    def visible(self) -> bool:
        return self.kind == "onscreen"


def vid_name(subset: str, split: str, index: int) -> str:
    return f"{subset}_{split}_{index:05d}"


def plan_split(subset: str, split: str, n: int, pools: dict, seed: int, fracs: dict[str, float]) -> list[ClipJob]:
    """Decide each clip's kind and sounding objects (deterministic).

    ``fracs``: kind -> fraction of the clips, for the empty-mask kinds of :data:`EMPTY_KINDS`
    (each kind gets at least one clip when its fraction is > 0 and the split has ≥ 2 clips per kind).
    """
    sound = pools["sound"][split]
    if not sound:
        raise RuntimeError(f"no sounding objects in split {split}")
    rng = np.random.default_rng([seed, SUBSET_ID[subset], SPLIT_ID[split], 999_999])
    perm = rng.permutation(n).tolist()
    kind_of: dict[int, str] = {}
    for kind in EMPTY_KINDS:
        f = fracs.get(kind, 0.0)
        k = int(round(f * n))
        if f > 0 and n >= 2 * (len(kind_of) + 1):
            k = max(1, k)
        for i in perm[len(kind_of): len(kind_of) + k]:
            kind_of[i] = kind
    off = set(kind_of)
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
        jobs.append(ClipJob(subset, split, i, picks, kind_of.get(i, "onscreen"), n_d))
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
    bt = B.make_track(pools["backgrounds"][job.split], rng, N_FRAMES)
    bgs = [B.render(bt, t) for t in range(N_FRAMES)]
    cam = camera.draw(rng)

    def size(kind: str) -> float:
        lo, hi = SIZE_RANGES[kind]
        return float(np.exp(rng.uniform(np.log(lo), np.log(hi)))) * SIZE

    best = None
    for attempt in range(12):
        tracks = []
        if job.kind == "onscreen":
            tracks += [_make_track(s, True, size(job.subset), rng) for s in job.sounding]
        elif job.kind in ("silent", "noise"):  # the would-be sources are visible, and silent
            tracks += [_make_track(s, False, size(job.subset), rng) for s in job.sounding]
        tracks += [_make_track(s, False, size("distractor"), rng) for s in distractors]
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
    out_frames = [camera.apply(cam, rgb, rng) for rgb in frames]  # lighting, blur, noise, JPEG
    snr = float("nan")
    if job.kind == "silent":
        wav, level = silence(rng)
    elif job.kind == "noise":
        wav, level = noise_floor(rng)
    else:
        recs = [load_recording(str(_STAMPS_DIR / f"{s.rel}.ogg")) for s in job.sounding]
        wav, snr, level = mix_audio(recs, rng)
    info = {
        "subset": job.subset, "split": job.split, "vid": vid_name(job.subset, job.split, job.index),
        "category": job.sounding[0].name if job.subset == "s4" else "",
        "sounding": ";".join(s.rel for s in job.sounding),
        "sounding_visible": int(job.visible),
        "kind": job.kind,
        "distractors": ";".join(tr.stamp.rel for tr in tracks if not tr.sounding),
        "background": bt.bg.name, "snr_db": f"{snr:.2f}", "level_dbfs": f"{level:.1f}",
        "camera": cam.describe(),
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
        # all 5 masks, train included (AVSBench's S4 train has only the first; the loaders of
        # c3n.data.avsbench read only that one, c3n.featcache reads all five)
        mask_p = [base / "gt_masks" / rel / vid / f"{vid}_{i}.png" for i in range(1, N_FRAMES + 1)]
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


def _init_worker(stamps_dir: str, pools: dict, seed: int, out_dir: str) -> None:
    global _STAMPS_DIR
    _STAMPS_DIR = Path(stamps_dir)
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


def background_pools(background_set: str, domain_shift: bool) -> dict[str, list]:
    """Split -> backgrounds. The domain-shift set draws its (test) backgrounds from the held-out
    packages only; a split left without an image by the name hash uses all non-held-out ones."""
    bgs = B.load_backgrounds(BACKGROUND_SETS[background_set])
    out = {sp: [b for b in bgs if B.split_of(b) == sp] for sp in SPLITS}
    for sp in SPLITS:
        if not out[sp]:
            out[sp] = list(bgs)
    if domain_shift:
        out["test"] = B.load_backgrounds(B.SHIFT_SOURCES)
    return out


#: added to the seed for the clips (not the object split) of the domain-shift set
SHIFT_SEED_OFFSET = 1_000_003


def generate(out_dir: str | Path, seed: int = 1234, counts: dict | None = None, fracs: dict | None = None,
             workers: int = 1, command: str = "", stamps_dir: Path | None = None, background_set: str = "all",
             domain_shift: bool = False) -> dict:
    """Generate the data set into ``out_dir``; returns a summary dict (counts per split etc.).

    ``fracs``: fraction of the clips of each empty-mask kind (:data:`EMPTY_KINDS`; default
    :data:`DEFAULT_FRACS`). ``domain_shift``: generate only the test split, over the held-out
    background packages (:data:`c3n.data.backgrounds.SHIFT_SOURCES`), with the test split's objects
    (families never used in training) and clip draws of their own.
    """
    counts = dict(DEFAULT_COUNTS if counts is None else counts)
    fracs = dict(DEFAULT_FRACS if fracs is None else fracs)
    if domain_shift:
        counts = {k: (v if k[1] == "test" else 0) for k, v in counts.items()}
    out_dir = Path(out_dir)
    stamps_dir = Path(stamps_dir or fetch.tuxpaint_stamps_dir())
    inv = scan_stamps(stamps_dir)
    split_of = assign_splits(inv.stamps, seed)
    pools = build_pools(inv.stamps, split_of)
    pools["backgrounds"] = background_pools(background_set, domain_shift)
    clip_seed = seed + SHIFT_SEED_OFFSET if domain_shift else seed
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
            if counts[(subset, split)]:
                jobs += plan_split(subset, split, counts[(subset, split)], pools, clip_seed, fracs)
    if workers > 1 and len(jobs) > 1:
        import multiprocessing as mp

        with mp.get_context("fork").Pool(workers, _init_worker, (str(stamps_dir), pools, clip_seed, str(out_dir))) as pool:
            infos = pool.map(_run_job, jobs, chunksize=4)
    else:
        _init_worker(str(stamps_dir), pools, clip_seed, str(out_dir))
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
    summary["backgrounds"] = {sp: len(v) for sp, v in pools["backgrounds"].items()}
    (out_dir / "README.txt").write_text(_readme(seed, command, fracs, summary, background_set, domain_shift))
    return summary


def _summary(inv: Inventory, split_of: dict, infos: list[dict], counts: dict) -> dict:
    obj = Counter((st.role, split_of[st.rel]) for st in inv.stamps)
    clips = Counter((i["subset"], i["split"]) for i in infos)
    kinds = Counter((i["subset"], i["split"], i["kind"]) for i in infos)
    return {"objects": dict(obj), "clips": dict(clips), "kinds": dict(kinds),
            "skipped": dict(inv.skipped), "skipped_picture_only": dict(inv.skipped_picture_only),
            "placement_retries_exhausted": sum(1 for i in infos if not int(i["placement_ok"]))}


def _readme(seed: int, command: str, fracs: dict, s: dict, background_set: str, domain_shift: bool) -> str:
    def row(d, role):
        return " / ".join(str(d.get((role, sp), 0)) for sp in SPLITS)

    def kinds(subset):
        return "; ".join(f"{k}: " + " / ".join(str(s["kinds"].get((subset, sp, k), 0)) for sp in SPLITS)
                         for k in ("onscreen",) + EMPTY_KINDS)

    sources = BACKGROUND_SETS[background_set] + (B.SHIFT_SOURCES if domain_shift else ())
    lines = [
        "AVS-Composites v2 (c3n-edge) -- synthetic AVSBench-style audio-visual segmentation clips",
        "",
        f"Generator: python -m c3n.data.composites {command}".rstrip(),
        f"Seed: {seed}; empty-mask clip fractions: " + ", ".join(f"{k} {v}" for k, v in fracs.items()),
        ("DOMAIN-SHIFT SET: test split only, backgrounds from the held-out packages "
         + ", ".join(B.SHIFT_SOURCES) + ", objects of the test split (families never in training)")
        if domain_shift else "Splits: train / val / test (objects by family, backgrounds by image)",
        "Layout: AVSBench S4 (Single-source/) and MS3 (Multi-sources/), see shared/reference/avsbench.md",
        "sections 1-2 (S4 train clips also carry masks 2-5); objects.csv = object-instance split;",
        "clips.csv = per-clip recipe (kind, objects, background, camera, audio level).",
        "",
        "PROVENANCE AND LICENCES",
        "- Objects (cut-outs + their recordings): Debian package tuxpaint-stamps-default 2022.06.04-1,",
        "  usr/share/tuxpaint/stamps/ -- GNU GPL version 2. Frames, masks and audio in this folder are",
        "  derived from these files: this data set is GPL-2 and MUST NOT be committed to the c3n-edge",
        "  repository; regenerate it with the command above.",
        "- Backgrounds (c3n/data/backgrounds.py, licences there): " + ", ".join(sources) + ".",
        "- Background noise, silence, noise floors, mains hum: generated (c3n/data/mixing.py).",
        "",
        "COUNTS (train / val / test)",
        f"- sounding objects (picture + recording): {row(s['objects'], 'sound')}",
        f"- picture-only distractor stamps: {row(s['objects'], 'picture')}",
        f"- silent-placeholder stamps (all splits): {s['objects'].get(('silent', 'all'), 0)}",
        "- background images: " + " / ".join(str(s.get("backgrounds", {}).get(sp, 0)) for sp in SPLITS),
        f"- S4 clips: {row(s['clips'], 's4')}; by kind: {kinds('s4')}",
        f"- MS3 clips: {row(s['clips'], 'ms3')}; by kind: {kinds('ms3')}",
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
    for kind, f in DEFAULT_FRACS.items():
        ap.add_argument(f"--{kind}-frac", type=float, default=f, help=f"fraction of {kind} clips (empty masks)")
    ap.add_argument("--backgrounds", choices=sorted(BACKGROUND_SETS), default="all",
                    help="background sources: all real-photo packages, or scikit-image's 8 images (small, fast)")
    ap.add_argument("--domain-shift", action="store_true",
                    help="only the test split, over the held-out background packages (domain-shift check)")
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    a = ap.parse_args(argv)
    counts = dict(SMALL_COUNTS if a.small else DEFAULT_COUNTS)
    for subset, split in DEFAULT_COUNTS:
        v = getattr(a, f"{subset}_{split}")
        if v is not None:
            counts[(subset, split)] = v
    fracs = {k: getattr(a, f"{k}_frac") for k in DEFAULT_FRACS}
    # the command as recorded in README.txt: OUT_DIR left symbolic so the bytes do not depend on it
    argv_txt = "OUT_DIR" + ("" if a.seed == 1234 else f" --seed {a.seed}") + (" --small" if a.small else "")
    for (subset, split), n in counts.items():
        if n != (SMALL_COUNTS if a.small else DEFAULT_COUNTS)[(subset, split)]:
            argv_txt += f" --{subset}-{split} {n}"
    for k, f in fracs.items():
        if f != DEFAULT_FRACS[k]:
            argv_txt += f" --{k}-frac {f}"
    if a.backgrounds != "all":
        argv_txt += f" --backgrounds {a.backgrounds}"
    if a.domain_shift:
        argv_txt += " --domain-shift"
    t0 = time.time()
    s = generate(a.out_dir, a.seed, counts, fracs, a.workers, command=argv_txt, background_set=a.backgrounds,
                 domain_shift=a.domain_shift)
    print((Path(a.out_dir) / "README.txt").read_text())
    print(f"generated {sum(s['clips'].values())} clips in {time.time() - t0:.1f} s "
          f"(placement retries exhausted: {s['placement_retries_exhausted']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
