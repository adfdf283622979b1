"""AVS-Composites frames: Tux Paint cut-outs scaled, mirrored, rotated and alpha-composited over a
background, with the per-pixel owner layer that gives the exact ground-truth masks, and each drawn
object's motion over the clip's frames (see :mod:`c3n.data.composites` for the recipe).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .stamps import Stamp, load_stamp_picture

SIZE = 224  # frame side, pixels
N_FRAMES = 5  # frames per clip (1 per second)


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


def make_track(stamp: Stamp, sounding: bool, base_size: float, rng: np.random.Generator) -> ObjectTrack:
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


def render_object(tr: ObjectTrack, t: int, stamps_dir: Path) -> tuple[np.ndarray, int, int]:
    rgba = load_stamp_picture(str(stamps_dir / f"{tr.stamp.rel}.png"))
    img = transform_stamp(rgba, tr.size[t], tr.angle[t], tr.flip)
    if tr.gain != (1.0, 1.0, 1.0):
        img = img.copy()
        gain = np.asarray(tr.gain, np.float32)
        img[..., :3] = np.clip(img[..., :3].astype(np.float32) * gain, 0, 255).astype(np.uint8)
    h, w = img.shape[:2]
    return img, int(round(tr.cx[t] - w / 2)), int(round(tr.cy[t] - h / 2))


def visible_ok(owner: np.ndarray, layers: list[tuple[np.ndarray, int, int]], k: int) -> bool:
    """Layer k keeps ≥ 40 % of its own (alpha > 127) pixels visible, and ≥ 300 px unless that is > 60 %."""
    full = int((layers[k][0][..., 3] > 127).sum())
    vis = int((owner == k).sum())
    return vis >= max(0.4 * full, min(300.0, 0.6 * full))
