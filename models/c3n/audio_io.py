"""Audio file decoding for C3N-edge: any file soundfile reads -> 16 kHz mono float32.

Decoding: ``soundfile`` (libsndfile: WAV, FLAC, OGG/Vorbis, Opus, MP3 with libsndfile >= 1.1).
Down-mix: mean over channels. Resampling: ``soxr`` (libsoxr, "HQ" quality), only when the file's
rate differs from the target. Output is full scale +-1, float32, shape [n_samples].
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

TARGET_SR = 16000  # Hz, the YAMNet / VGGish front-end rate (c3n.model.frontend.DEFAULT.sample_rate)


def to_mono(audio: np.ndarray) -> np.ndarray:
    """[n] or [n, channels] -> [n] (mean over channels), float32."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 2:
        audio = audio.mean(axis=1, dtype=np.float32)
    elif audio.ndim != 1:
        raise ValueError(f"expected [n] or [n, channels] audio, got shape {audio.shape}")
    return audio


def resample(audio: np.ndarray, sr_in: int, sr_out: int = TARGET_SR) -> np.ndarray:
    """Resample mono float audio [n] from ``sr_in`` to ``sr_out`` Hz with soxr (HQ); float32 [m]."""
    audio = np.asarray(audio, dtype=np.float32)
    if int(sr_in) == int(sr_out):
        return audio.copy()
    return np.asarray(soxr.resample(audio, int(sr_in), int(sr_out), quality="HQ"), dtype=np.float32)


def load_audio_16k(path: str | Path) -> np.ndarray:
    """Decode ``path``, down-mix to mono (channel mean), resample to 16 kHz.

    Returns float32 [n_samples] at 16000 Hz, full scale +-1. Raises ``soundfile.LibsndfileError``
    (a ``RuntimeError``) for files libsndfile cannot read.
    """
    data, sr = sf.read(str(path), dtype="float32", always_2d=True)  # [n, channels]
    return resample(to_mono(data), sr, TARGET_SR)
