"""Camera degradations of AVS-Composites frames: lighting, white balance, blur, sensor noise, JPEG.

One :class:`Camera` is drawn per clip (a clip is one camera in one scene), with small per-frame
changes (exposure wobble, fresh noise, JPEG blocks). Applied to the whole composited frame —
objects and background alike — as a real camera would. Parameters (drawn by :func:`draw`):

* exposure gain log-uniform 0.55–1.5, gamma 0.75–1.35, per-channel white balance 0.85–1.15
  (p = 0.7, else neutral), per-frame gain wobble σ = 3 %;
* Gaussian blur σ 0.5–2.0 px (defocus / low resolution), p = 0.35;
* sensor noise σ 1–8 grey levels, per frame;
* JPEG re-encoding at quality 25–90, p = 0.5.
"""
from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter


@dataclass(frozen=True)
class Camera:
    gain: float
    gamma: float
    wb: tuple[float, float, float]
    blur_sigma: float  # 0 = none
    noise_sigma: float  # grey levels
    jpeg_quality: int  # 0 = none

    def describe(self) -> str:
        return (f"gain={self.gain:.2f};gamma={self.gamma:.2f};blur={self.blur_sigma:.2f};"
                f"noise={self.noise_sigma:.1f};jpeg={self.jpeg_quality}")


def draw(rng: np.random.Generator) -> Camera:
    gain = float(np.exp(rng.uniform(np.log(0.55), np.log(1.5))))
    gamma = float(rng.uniform(0.75, 1.35))
    wb = tuple(float(v) for v in rng.uniform(0.85, 1.15, size=3)) if rng.random() < 0.7 else (1.0, 1.0, 1.0)
    blur = float(rng.uniform(0.5, 2.0)) if rng.random() < 0.35 else 0.0
    noise = float(rng.uniform(1.0, 8.0))
    jpeg = int(rng.integers(25, 91)) if rng.random() < 0.5 else 0
    return Camera(gain, gamma, wb, blur, noise, jpeg)


def apply(cam: Camera, rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One frame through the camera: uint8 [H,W,3] -> uint8 [H,W,3]."""
    x = rgb.astype(np.float32) / 255.0
    g = cam.gain * float(rng.normal(1.0, 0.03))
    x = np.clip(x * np.asarray(cam.wb, np.float32) * g, 0.0, 1.0) ** cam.gamma
    x = x * 255.0
    if cam.blur_sigma > 0:
        im = Image.fromarray(np.clip(np.round(x), 0, 255).astype(np.uint8))
        x = np.asarray(im.filter(ImageFilter.GaussianBlur(cam.blur_sigma)), dtype=np.float32)
    x = x + cam.noise_sigma * rng.standard_normal(x.shape, dtype=np.float32)
    out = np.clip(np.round(x), 0, 255).astype(np.uint8)
    if cam.jpeg_quality:
        b = io.BytesIO()
        Image.fromarray(out).save(b, "JPEG", quality=cam.jpeg_quality)
        b.seek(0)
        with Image.open(b) as im:
            out = np.asarray(im.convert("RGB")).copy()
    return out
