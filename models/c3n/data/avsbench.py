"""AVSBench S4 (``Single-source/``) and MS3 (``Multi-sources/``) clip loaders.

Layout and quirks: ``docs/avsbench.md`` §1–§5.

* S4: ``s4_meta_data.csv`` (columns by position: 0 video id, 1 start, 2 category, 3 split; header);
  frames ``s4_data/visual_frames/<split>/<category>/<vid>/<vid>_<i>.png``; audio
  ``s4_data/audio_wav/<split>/<category>/<vid>.wav``; masks
  ``s4_data/gt_masks/<split>/<category>/<vid>/<vid>_<i>.png``, read in PIL mode ``'1'``. The *train*
  split has only mask ``_1``.
* MS3: ``ms3_meta_data.csv`` (0 video id, 1 split); frames ``ms3_data/visual_frames/<vid>/<vid>.mp4_<i>.png``
  (no split folder, ``.mp4_`` in the name); audio ``ms3_data/audio_wav/<split>/<vid>.wav``; masks
  ``ms3_data/gt_masks/<split>/<vid>/<vid>_<i>.png`` for all splits, read in PIL mode ``'P'``.
* Masks are binarised as (value > 0) after the PIL mode conversion, so 0/255 greyscale, '1' and
  palette-index masks all give {0, 1}.

Audio is NOT taken from AVSBench's pickled VGGish tensors: the ``.wav`` goes through this project's
front end, ``c3n.model.frontend.clip_patches(load_audio_16k(wav), 5, 1.0)`` (YAMNet-style log-mel,
[5,1,96,64]). The patches are cached in memory and as ``.npy`` under ``<C3N_BUILD>/cache/logmel``
(never inside the data set folder).
"""
from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from ..model.frontend import DEFAULT as FRONTEND, clip_patches
from ..paths import build_dir

N_FRAMES = 5  # frames per clip (1 per second)
SIZE = 224  # frame / mask side, pixels
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SUBSET_DIRS = {"s4": ("Single-source", "s4_meta_data.csv", "s4_data"),
               "ms3": ("Multi-sources", "ms3_meta_data.csv", "ms3_data")}
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class AvsClip:
    """One clip's files. ``mask_paths[i]`` is None where the split has no GT for frame i."""

    vid: str
    subset: str
    split: str
    category: str  # S4 category; "" for MS3
    frame_paths: tuple[Path, ...]
    wav_path: Path
    mask_paths: tuple[Path | None, ...]


def subset_root(root: str | Path, subset: str) -> Path:
    """``root`` may be the folder holding ``Single-source/`` / ``Multi-sources/`` or the subset folder itself."""
    if subset not in SUBSET_DIRS:
        raise ValueError(f"subset must be 's4' or 'ms3', got {subset!r}")
    root = Path(root)
    sub, csv_name, _ = SUBSET_DIRS[subset]
    if (root / csv_name).exists():
        return root
    if (root / sub / csv_name).exists():
        return root / sub
    raise FileNotFoundError(f"no {sub}/{csv_name} under {root}")


def read_meta(root: str | Path, subset: str) -> list[dict]:
    """Rows of the metadata CSV as dicts (vid, category, split), in file order; columns by position."""
    sroot = subset_root(root, subset)
    rows = []
    with open(sroot / SUBSET_DIRS[subset][1], newline="") as f:
        reader = csv.reader(f)
        next(reader, None)  # header
        for r in reader:
            if not r or not r[0].strip():
                continue
            if subset == "s4":
                rows.append({"vid": r[0].strip(), "category": r[2].strip(), "split": r[3].strip()})
            else:
                rows.append({"vid": r[0].strip(), "category": "", "split": r[1].strip()})
    return rows


def list_clips(root: str | Path, subset: str, split: str) -> list[AvsClip]:
    """All clips of ``subset``/``split`` in metadata (data-set) order."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    sroot = subset_root(root, subset)
    data = sroot / SUBSET_DIRS[subset][2]
    clips = []
    for r in read_meta(root, subset):
        if r["split"] != split:
            continue
        vid = r["vid"]
        idx = range(1, N_FRAMES + 1)
        if subset == "s4":
            rel = Path(split) / r["category"]
            frames = tuple(data / "visual_frames" / rel / vid / f"{vid}_{i}.png" for i in idx)
            wav = data / "audio_wav" / rel / f"{vid}.wav"
            n_masks = 1 if split == "train" else N_FRAMES
            masks = tuple(data / "gt_masks" / rel / vid / f"{vid}_{i}.png" if i <= n_masks else None for i in idx)
        else:
            frames = tuple(data / "visual_frames" / vid / f"{vid}.mp4_{i}.png" for i in idx)
            wav = data / "audio_wav" / split / f"{vid}.wav"
            masks = tuple(data / "gt_masks" / split / vid / f"{vid}_{i}.png" for i in idx)
        clips.append(AvsClip(vid, subset, split, r["category"], frames, wav, masks))
    return clips


def load_frame(path: Path, jitter=None) -> torch.Tensor:
    """PNG -> float32 [3,224,224] in [0, 1] (bilinear resize only if not 224 × 224).

    ``jitter``: optional torchvision ColorJitter, applied to the PIL image (≈ 30× faster than on a
    float tensor).
    """
    im = Image.open(path).convert("RGB")
    if im.size != (SIZE, SIZE):
        im = im.resize((SIZE, SIZE), Image.BILINEAR)
    if jitter is not None:
        im = jitter(im)
    return torch.from_numpy(np.asarray(im, dtype=np.uint8).copy()).permute(2, 0, 1).float() / 255.0


def load_mask(path: Path, subset: str) -> torch.Tensor:
    """Mask PNG -> float32 [1,224,224] in {0, 1}: PIL mode '1' (S4) or 'P' (MS3), then value > 0."""
    im = Image.open(path).convert("1" if subset == "s4" else "P")
    if im.size != (SIZE, SIZE):
        im = im.resize((SIZE, SIZE), Image.NEAREST)
    return torch.from_numpy((np.asarray(im) > 0).astype(np.float32))[None]


def _logmel_cache_path(wav: Path) -> Path:
    st = wav.stat()
    key = f"{wav.resolve()}|{st.st_size}|{st.st_mtime_ns}|{sorted(FRONTEND.as_metadata().items())}|v1"
    h = hashlib.sha1(key.encode()).hexdigest()
    return build_dir() / "cache" / "logmel" / h[:2] / f"{h}.npy"


def clip_logmel(wav: Path, use_disk_cache: bool = True) -> np.ndarray:
    """Log-mel patches of a clip's wav: float32 [5,1,96,64] (``clip_patches(load_audio_16k(wav), 5, 1.0)``)."""
    cp = _logmel_cache_path(wav) if use_disk_cache else None
    if cp is not None and cp.exists():
        return np.load(cp)
    from ..audio_io import load_audio_16k

    x = clip_patches(load_audio_16k(wav), N_FRAMES, 1.0)
    if cp is not None:
        cp.parent.mkdir(parents=True, exist_ok=True)
        tmp = cp.with_suffix(f".{np.random.randint(1 << 30)}.tmp.npy")
        np.save(tmp, x)
        tmp.replace(cp)
    return x


class AvsClipDataset(Dataset):
    """AVSBench S4 / MS3 clips (real AVSBench or AVS-Composites; same layout).

    Args: ``root`` (folder holding ``Single-source/`` and/or ``Multi-sources/``, or a subset folder),
    ``subset`` ('s4' | 'ms3'), ``split`` ('train' | 'val' | 'test'), ``augment`` (training
    augmentation of C3N, ``docs/c3n-method.md`` §10: one horizontal flip decision per clip, p = 0.5,
    applied to all frames and masks; ColorJitter(0.4, 0.4, 0.4, 0.1) drawn per frame; uses torch's
    global RNG), ``cache_logmel`` (write / read the ``.npy`` log-mel cache).

    Items (dict):
      ``frames`` float32 [5,3,224,224], ImageNet mean/std normalised;
      ``audio_logmel`` float32 [5,1,96,64] (log-mel patch per 1-s frame slot);
      ``masks`` float32 [5,1,224,224] in {0, 1} (zeros where no GT);
      ``mask_valid`` float32 [5] (1 where the frame has a GT mask; S4 train: [1,0,0,0,0]);
      ``vid`` str; ``subset`` str; ``category`` str ('' for MS3).
    """

    def __init__(self, root: str | Path, subset: str = "s4", split: str = "train", augment: bool = False,
                 cache_logmel: bool = True):
        self.root = Path(root)
        self.subset = subset
        self.split = split
        self.augment = augment
        self.cache_logmel = cache_logmel
        self.clips = list_clips(root, subset, split)
        self._mel: dict[str, np.ndarray] = {}
        self._jitter = None
        if augment:
            from torchvision.transforms import ColorJitter

            self._jitter = ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1)
        self._mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        self._std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)

    def __len__(self) -> int:
        return len(self.clips)

    def logmel(self, i: int) -> np.ndarray:
        c = self.clips[i]
        if c.vid not in self._mel:
            self._mel[c.vid] = clip_logmel(c.wav_path, self.cache_logmel)
        return self._mel[c.vid]

    def __getitem__(self, i: int) -> dict:
        c = self.clips[i]
        frames = torch.stack([load_frame(p, self._jitter) for p in c.frame_paths])  # [5,3,H,W] in [0,1]
        masks = torch.zeros(N_FRAMES, 1, SIZE, SIZE)
        valid = torch.zeros(N_FRAMES)
        for t, mp in enumerate(c.mask_paths):
            if mp is not None:
                masks[t] = load_mask(mp, c.subset)
                valid[t] = 1.0
        if self.augment:
            if torch.rand(()) < 0.5:  # (ColorJitter, drawn per frame above, commutes with the flip)
                frames = frames.flip(-1)
                masks = masks.flip(-1)
        frames = (frames - self._mean) / self._std
        return {
            "frames": frames.float(),
            "audio_logmel": torch.from_numpy(self.logmel(i).copy()),
            "masks": masks,
            "mask_valid": valid,
            "vid": c.vid,
            "subset": c.subset,
            "category": c.category,
        }
