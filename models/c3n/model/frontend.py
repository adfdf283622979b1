"""Audio front end of C3N-edge: 16 kHz mono waveform -> YAMNet log-mel patches.

This is the reference implementation; the Rust runtime (`src/frontend/`) must match it to
1e-4 (max abs diff) and reads the same parameters from the ONNX `metadata_props`.

Parameters (TF YAMNet / VGGish convention, see docs/weights-and-media.md §3.1 and
docs/avsbench.md §4): 16 kHz mono; 25 ms (400-sample) *periodic* Hann window; 10 ms (160-sample) hop;
FFT 512 (zero-padded frame, no centring, incomplete frames dropped); magnitude |rfft| (257 bins);
64 HTK mel bands from 125 Hz to 7500 Hz, triangles built in the mel domain, DC row zeroed, no area
normalisation; ``log(mel + 0.001)`` (natural log).

Patches: one 96-frame patch (0.975 s of audio) per video frame. Video frame slot ``i`` of a clip
covers ``[i * slot_s, (i + 1) * slot_s)`` seconds of the source timeline (AVSBench: 1 frame per
second, ``slot_s = 1``). Where the patch of slot ``i`` starts is ``patch_placement``:

* ``"slot"`` (default; the edge model): at STFT frame ``round(i * slot_s * sr / hop)``, the start
  of the slot;
* ``"examples"`` (VGGish, :data:`VGGISH`): at STFT frame ``i * patch_frames``, i.e. examples back
  to back from the clip start, 0.96 s each, as the official ``vggish_input.wavfile_to_examples``
  frames them (docs/avsbench.md §4); example ``i`` drifts from slot ``i`` by ``0.04 * i`` s.

The waveform is zero-padded at the end when the last patch would run past it (the AVSBench
preprocessing repeats the last example instead; a 5-s clip has all 5 examples, so this only
differs on clips shorter than 4.8 s).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class FrontendParams:
    """Log-mel front-end parameters; written verbatim into the ONNX metadata (``c3n.frontend.*``)."""

    sample_rate: int = 16000  # Hz
    window_samples: int = 400  # 25 ms
    hop_samples: int = 160  # 10 ms
    fft_size: int = 512
    mel_bands: int = 64
    mel_min_hz: float = 125.0
    mel_max_hz: float = 7500.0
    log_offset: float = 0.001
    patch_frames: int = 96
    patch_placement: str = "slot"  # "slot" | "examples" (see the module docstring)

    def __post_init__(self) -> None:
        if self.patch_placement not in PLACEMENTS:
            raise ValueError(f"patch_placement must be one of {PLACEMENTS}, got {self.patch_placement!r}")

    def as_metadata(self) -> dict[str, str]:
        """``c3n.frontend.*`` metadata. ``patch_placement`` is written only when it is not the
        default ``"slot"`` (runtimes read an absent key as ``"slot"``), so the edge model's
        metadata is what it was before the key existed."""
        d = asdict(self)
        if d["patch_placement"] == "slot":
            del d["patch_placement"]
        return {f"c3n.frontend.{k}": repr(v) if isinstance(v, float) else str(v) for k, v in d.items()}


PLACEMENTS = ("slot", "examples")
DEFAULT = FrontendParams()
#: The VGGish front end (C3N-VGGish, AVSBench): log offset 0.01, examples back to back.
VGGISH = FrontendParams(log_offset=0.01, patch_placement="examples")


def hz_to_mel(f: np.ndarray | float) -> np.ndarray:
    """HTK mel scale: 1127 * ln(1 + f / 700)."""
    return 1127.0 * np.log1p(np.asarray(f, dtype=np.float64) / 700.0)


def mel_matrix(p: FrontendParams = DEFAULT) -> np.ndarray:
    """Mel weight matrix, float64 [fft_size // 2 + 1, mel_bands] (257 x 64 by default)."""
    n_bins = p.fft_size // 2 + 1
    bins_mel = hz_to_mel(np.linspace(0.0, p.sample_rate / 2.0, n_bins))
    edges = np.linspace(hz_to_mel(p.mel_min_hz), hz_to_mel(p.mel_max_hz), p.mel_bands + 2)
    w = np.zeros((n_bins, p.mel_bands), dtype=np.float64)
    for m in range(p.mel_bands):
        lo, ce, hi = edges[m], edges[m + 1], edges[m + 2]
        rising = (bins_mel - lo) / (ce - lo)
        falling = (hi - bins_mel) / (hi - ce)
        w[:, m] = np.maximum(0.0, np.minimum(rising, falling))
    w[0, :] = 0.0
    return w


def periodic_hann(n: int) -> np.ndarray:
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)


def log_mel(wave: np.ndarray, p: FrontendParams = DEFAULT) -> np.ndarray:
    """Log-mel spectrogram of a mono waveform at ``p.sample_rate``.

    wave: float [n_samples], full scale +-1. Returns float32 [n_frames, mel_bands] with
    ``n_frames = 1 + (n_samples - window) // hop`` (0 when shorter than one window).
    """
    wave = np.asarray(wave, dtype=np.float64)
    if wave.ndim != 1:
        raise ValueError(f"expected a mono waveform [n], got shape {wave.shape}")
    if len(wave) < p.window_samples:
        return np.zeros((0, p.mel_bands), dtype=np.float32)
    n_frames = 1 + (len(wave) - p.window_samples) // p.hop_samples
    idx = np.arange(p.window_samples)[None, :] + p.hop_samples * np.arange(n_frames)[:, None]
    frames = wave[idx] * periodic_hann(p.window_samples)[None, :]
    mag = np.abs(np.fft.rfft(frames, n=p.fft_size, axis=1))
    mel = mag @ mel_matrix(p)
    return np.log(mel + p.log_offset).astype(np.float32)


def slot_start_frame(i: int, slot_s: float, p: FrontendParams = DEFAULT) -> int:
    """First STFT frame of the patch of video-frame slot ``i`` (slot length ``slot_s`` seconds;
    ignored by the ``"examples"`` placement)."""
    if p.patch_placement == "examples":
        return i * p.patch_frames
    return int(round(i * slot_s * p.sample_rate / p.hop_samples))


def clip_patches(wave: np.ndarray, n_slots: int, slot_s: float = 1.0, p: FrontendParams = DEFAULT) -> np.ndarray:
    """One log-mel patch per video-frame slot: float32 [n_slots, 1, patch_frames, mel_bands].

    ``wave`` is the clip's 16 kHz mono audio starting at the clip's first frame slot.
    """
    last_start = slot_start_frame(n_slots - 1, slot_s, p)
    need = (last_start + p.patch_frames - 1) * p.hop_samples + p.window_samples
    wave = np.asarray(wave, dtype=np.float64)
    if len(wave) < need:
        wave = np.concatenate([wave, np.zeros(need - len(wave))])
    # only the frames the patches need
    lm = log_mel(wave[:need], p)
    out = np.empty((n_slots, 1, p.patch_frames, p.mel_bands), dtype=np.float32)
    for i in range(n_slots):
        s = slot_start_frame(i, slot_s, p)
        out[i, 0] = lm[s : s + p.patch_frames]
    return out
