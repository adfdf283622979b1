"""AVS-Composites clips: what each clip shows and plays (:func:`plan_split`), its frames, masks and
audio (:func:`render_clip`), and its files in the AVSBench layout (:func:`write_clip`). The recipe
is described in :mod:`c3n.data.composites`.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image

from . import backgrounds as B, camera
from .mixing import SR, mix_audio, noise_floor, silence
from .scene import N_FRAMES, SIZE, composite, make_track, render_object, visible_ok
from .stamps import Stamp, load_recording

#: clip kinds with empty masks: sounding objects off screen, no sound at all, only a noise floor
EMPTY_KINDS = ("offscreen", "silent", "noise")
#: object sizes (longest side, fraction of the frame side), drawn log-uniform
SIZE_RANGES = {"s4": (0.15, 0.95), "ms3": (0.15, 0.6), "distractor": (0.12, 0.6)}

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
            pool = (pools["sound"][job.split] if r < 0.5
                    else pools["picture"][job.split] if r < 0.85 else pools["silent"])
            if not pool:
                continue
            s = pool[int(rng.integers(len(pool)))]
            if s.family not in avoid:
                out.append(s)
                avoid.add(s.family)
                break
    return out


def render_clip(job: ClipJob, pools: dict, seed: int, stamps_dir: Path):
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
            tracks += [make_track(s, True, size(job.subset), rng) for s in job.sounding]
        elif job.kind in ("silent", "noise"):  # the would-be sources are visible, and silent
            tracks += [make_track(s, False, size(job.subset), rng) for s in job.sounding]
        tracks += [make_track(s, False, size("distractor"), rng) for s in distractors]
        order = rng.permutation(len(tracks))
        tracks = [tracks[i] for i in order]
        frames, masks, ok = [], [], True
        for t in range(N_FRAMES):
            layers = [render_object(tr, t, stamps_dir) for tr in tracks]
            rgb, owner = composite(bgs[t], layers)
            snd = [k for k, tr in enumerate(tracks) if tr.sounding]
            if not all(visible_ok(owner, layers, k) for k in snd):
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
        recs = [load_recording(str(stamps_dir / f"{s.rel}.ogg")) for s in job.sounding]
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
        # c3n.data.avsbench read only that one, c3n.train.featcache reads all five)
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
