"""Audio of AVS-Composites clips: the sounding objects' recordings, noise, silence, noise floors.

All functions draw from the caller's ``numpy.random.Generator`` (deterministic per clip) and return
5 s of 16 kHz int16 mono (``[80000]``). Levels are RMS in dBFS (full scale = 1.0 before the int16
conversion). The clip kinds and their levels:

* ``onscreen`` / ``offscreen``: the objects' recordings looped with short gaps, random gains
  (−6…+3 dB each), white / pink / brown noise at an SNR of 5–25 dB, the mix levelled to
  −40…−14 dBFS (a quiet source across a room to a loud one next to the camera);
* ``silent``: no sound at all — digital zero, or a dither-level hiss at −90…−75 dBFS;
* ``noise``: only a noise floor (a microphone and room with nothing sounding): coloured noise at
  −65…−42 dBFS, sometimes with a slow 50/60 Hz mains hum.
"""
from __future__ import annotations

import numpy as np

SR = 16000  # Hz
CLIP_S = 5.0  # seconds
N = int(SR * CLIP_S)


def noise(n: int, kind: str, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS noise [n]: 'white', 'pink' (1/f power) or 'brown' (1/f² power)."""
    w = rng.standard_normal(n)
    if kind != "white":
        spec = np.fft.rfft(w)
        f = np.fft.rfftfreq(n, 1.0 / SR)
        f[0] = f[1]
        spec *= f ** (-0.5 if kind == "pink" else -1.0)
        w = np.fft.irfft(spec, n)
    return w / (np.sqrt(np.mean(w ** 2)) + 1e-12)


def loop_track(rec: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Repeat a recording with 0.05–0.5 s gaps from a random start offset; float64 [n]."""
    parts, total = [], 0
    while total < n + len(rec) + SR:
        gap = np.zeros(int(rng.uniform(0.05, 0.5) * SR))
        parts += [rec, gap]
        total += len(rec) + len(gap)
    x = np.concatenate(parts).astype(np.float64)
    off = int(rng.integers(0, len(rec) + len(parts[1])))
    return x[off: off + n]


def _level(x: np.ndarray, dbfs: float) -> np.ndarray:
    x = x * (10 ** (dbfs / 20) / (np.sqrt(np.mean(x ** 2)) + 1e-12))
    peak = np.abs(x).max()
    return x * (0.95 / peak) if peak > 0.95 else x


def _int16(x: np.ndarray) -> np.ndarray:
    return np.round(np.clip(x, -1.0, 1.0) * 32767).astype(np.int16)


def mix_audio(recs: list[np.ndarray], rng: np.random.Generator,
              level_db: tuple[float, float] = (-40.0, -14.0)) -> tuple[np.ndarray, float, float]:
    """Mix of the sounding objects' recordings + noise; returns (int16 [80000], snr_db, level_dbfs)."""
    sig = np.zeros(N)
    for rec in recs:
        sig += loop_track(rec, N, rng) * 10 ** (rng.uniform(-6.0, 3.0) / 20)
    snr_db = float(rng.uniform(5.0, 25.0))
    kind = ("white", "pink", "brown")[int(rng.integers(3))]
    sig_rms = np.sqrt(np.mean(sig ** 2)) + 1e-12
    x = sig + noise(N, kind, rng) * sig_rms / 10 ** (snr_db / 20)
    level = float(rng.uniform(*level_db))
    return _int16(_level(x, level)), snr_db, level


def silence(rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """No sound: digital zero (half the clips) or dither-level hiss; returns (int16 [80000], level_dbfs)."""
    if rng.random() < 0.5:
        return np.zeros(N, dtype=np.int16), -np.inf
    level = float(rng.uniform(-90.0, -75.0))
    return _int16(_level(noise(N, "white", rng), level)), level


def noise_floor(rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Only a noise floor, optionally with mains hum; returns (int16 [80000], level_dbfs)."""
    kind = ("white", "pink", "brown")[int(rng.integers(3))]
    x = noise(N, kind, rng)
    if rng.random() < 0.3:
        f0 = 50.0 if rng.random() < 0.5 else 60.0
        t = np.arange(N) / SR
        hum = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 2 * np.pi)) / k for k in (1, 2, 3))
        x = x + hum * rng.uniform(0.3, 2.0)
    level = float(rng.uniform(-65.0, -42.0))
    return _int16(_level(x, level)), level
