"""PANNs ``Cnn14_16k`` as C3N-PANNs uses it (docs/c3n-method.md §5; Kong et al., "PANNs",
arXiv 1912.10211, Table/§3 "CNN14", the 16 kHz variant). Written from those descriptions; the
module and parameter names are the ones the published weight file (``Cnn14_16k_mAP=0.438.pth``,
its ``model`` entry) carries, so that it loads strictly. Eval mode only (no SpecAugment, no
mixup, dropout off).

Input: ``waveform`` float32 ``[N,16000]``, one 1-s window of 16 kHz mono audio per frame slot
(the contract's ``audio_waveform``; docs: models/README.md, "Audio inputs").

1. Front end (its matrices are in the weight file, so the import uses the file's, not ours):
   * ``spectrogram_extractor.stft.conv_{real,imag}.weight`` [257,1,512]: the real and imaginary
     parts of the first 257 DFT rows of size 512, times a periodic Hann window; the STFT is a
     strided ``conv1d`` (hop 160) on the signal reflect-padded by 256 on both sides ("centre",
     :func:`reflect_index`),
     so ``[N,16000]`` -> 101 frames. Power spectrum ``re² + im²`` -> ``[N,1,101,257]``.
   * ``logmel_extractor.melW`` [257,64]: Slaney-style mel filters (50-8000 Hz, area-normalised,
     :func:`mel_filters`); ``mel = power @ melW``, then ``10·log10(max(mel, 1e-10))`` (reference
     power 1, no top-dB clamp) -> ``[N,1,101,64]``.
2. ``bn0``: BatchNorm over the 64 mel bins.
3. Six ``ConvBlock`` s (``conv_block1-6.{conv1,conv2}`` 3x3, no bias, each followed by BatchNorm
   ``bn1`` / ``bn2`` and ReLU), widths 64, 128, 256, 512, 1024, 2048, each followed by a 2x2
   average pool (floor), the last by none: [101,64] -> [3,2] cells.
4. Mean over the mel axis, then max + mean over time -> ``[N,2048]`` -> ``fc1`` (2048 -> 2048)
   + ReLU = ``embedding`` (what TPAVI's ``align_channel`` receives: Linear 2048 -> 256) ->
   ``fc_audioset`` (2048 -> 527) + sigmoid = ``clipwise_output`` (AudioSet probabilities; C3IM
   applies ``softmax(·)^α`` to them as it does to VGGish's logits, docs/c3n-method.md §6).

``Cnn14_16k(widths=...)`` builds reduced-size variants for tests (same front end; embedding width
``widths[-1]``).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

SAMPLE_RATE = 16000
N_FFT = 512  # window = FFT size
HOP = 160
N_MELS = 64
FMIN, FMAX = 50.0, 8000.0
AMIN = 1e-10  # log floor of the power_to_db step; reference power 1.0; no top-dB clamp
N_AUDIOSET = 527
WIDTHS = (64, 128, 256, 512, 1024, 2048)
EMBED_DIM = WIDTHS[-1]
#: samples per frame slot and the number of STFT frames it gives (centre padding)
WINDOW_SAMPLES = SAMPLE_RATE
N_FRAMES = WINDOW_SAMPLES // HOP + 1


def _hz_to_mel(f: float) -> float:
    """Slaney's mel scale: linear (3 mel per 200 Hz) below 1 kHz, logarithmic (27 mel per
    factor 6.4) above."""
    return f / (200.0 / 3.0) if f < 1000.0 else 15.0 + math.log(f / 1000.0) / (math.log(6.4) / 27.0)


def _mel_to_hz(m: torch.Tensor) -> torch.Tensor:
    lin = m * (200.0 / 3.0)
    log = 1000.0 * torch.exp((m - 15.0) * (math.log(6.4) / 27.0))
    return torch.where(m >= 15.0, log, lin)


def mel_filters(sr: int = SAMPLE_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS, fmin: float = FMIN,
                fmax: float = FMAX) -> torch.Tensor:
    """Triangular mel filters on the ``n_fft // 2 + 1`` FFT bins, ``[n_fft//2+1, n_mels]``
    (float32): ``n_mels + 2`` edges equally spaced on the Slaney mel scale between ``fmin`` and
    ``fmax``; filter i rises from edge i to i+1 and falls to i+2; each scaled by
    ``2 / (edge_{i+2} − edge_i)`` (unit area in Hz)."""
    cpu = {"dtype": torch.float64, "device": "cpu"}  # also under a meta-device context
    freqs = torch.linspace(0.0, sr / 2.0, n_fft // 2 + 1, **cpu)
    edges = _mel_to_hz(torch.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2, **cpu))
    width = edges[1:] - edges[:-1]
    ramps = edges[:, None] - freqs[None, :]
    rise = -ramps[:-2] / width[:-1, None]
    fall = ramps[2:] / width[1:, None]
    w = torch.clamp(torch.minimum(rise, fall), min=0.0) * (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return w.t().to(torch.float32).contiguous()


def dft_kernels(n_fft: int = N_FFT) -> tuple[torch.Tensor, torch.Tensor]:
    """The STFT's conv1d kernels ``(real, imag)``, each ``[n_fft//2+1, 1, n_fft]``: row k is
    ``hann[j]·cos(2π jk/n)`` and ``−hann[j]·sin(2π jk/n)`` (periodic Hann window)."""
    j = torch.arange(n_fft, dtype=torch.float64, device="cpu")
    k = torch.arange(n_fft // 2 + 1, dtype=torch.float64, device="cpu")
    hann = 0.5 - 0.5 * torch.cos(2.0 * math.pi * j / n_fft)
    ang = 2.0 * math.pi * torch.outer(k, j) / n_fft
    real = (torch.cos(ang) * hann).to(torch.float32)[:, None, :]
    imag = (-torch.sin(ang) * hann).to(torch.float32)[:, None, :]
    return real.contiguous(), imag.contiguous()


def reflect_index(n: int, pad: int = N_FFT // 2) -> torch.Tensor:
    """Sample indices of a signal of ``n`` samples reflect-padded by ``pad`` on both sides (the
    edge sample not repeated; ``F.pad(mode="reflect")``), int64 ``[n + 2 pad]``. Exported as one
    Gather with constant indices: ONNX ``Pad`` would carry its pads as a computed input."""
    if n <= pad:
        raise ValueError(f"reflect padding by {pad} needs more than {pad} samples, got {n}")
    idx = list(range(pad, 0, -1)) + list(range(n)) + list(range(n - 2, n - 2 - pad, -1))
    return torch.tensor(idx, dtype=torch.int64, device="cpu")


class _STFT(nn.Module):
    """``conv_real`` / ``conv_imag``: Conv1d(1, 257, 512, stride 160, no bias), frozen."""

    def __init__(self) -> None:
        super().__init__()
        self.conv_real = nn.Conv1d(1, N_FFT // 2 + 1, N_FFT, stride=HOP, bias=False)
        self.conv_imag = nn.Conv1d(1, N_FFT // 2 + 1, N_FFT, stride=HOP, bias=False)
        real, imag = dft_kernels()
        with torch.no_grad():
            self.conv_real.weight.copy_(real)
            self.conv_imag.weight.copy_(imag)
        for p in self.parameters():
            p.requires_grad_(False)


class Spectrogram(nn.Module):
    """``[N,L]`` waveform -> power spectrogram ``[N,1,L//160+1,257]`` (centre, reflect padding)."""

    def __init__(self) -> None:
        super().__init__()
        self.stft = _STFT()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.index_select(x, 1, reflect_index(int(x.shape[1])))[:, None, :]
        re = self.stft.conv_real(x)  # [N,257,frames]
        im = self.stft.conv_imag(x)
        return (re * re + im * im).transpose(1, 2)[:, None]


class LogmelFilterBank(nn.Module):
    """Power spectrogram ``[N,1,F,257]`` -> log-mel ``[N,1,F,64]`` in dB: ``10·log10(max(mel, 1e-10))``."""

    def __init__(self) -> None:
        super().__init__()
        self.melW = nn.Parameter(mel_filters(), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 10.0 * torch.log10(torch.clamp(torch.matmul(x, self.melW), min=AMIN))


class ConvBlock(nn.Module):
    """conv 3x3 -> BN -> ReLU -> conv 3x3 -> BN -> ReLU, then an average pool of ``pool``."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.bn2 = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor, pool: int) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.bn2(self.conv2(x)))
        return F.avg_pool2d(x, pool) if pool > 1 else x


class Cnn14_16k(nn.Module):  # noqa: N801 - the published class name
    """PANNs CNN14 at 16 kHz (module docstring). ``forward(waveform [N,L]) -> (embedding [N,2048],
    clipwise_output [N,527])``; L = 16000 in the contract (any L >= 257 runs)."""

    def __init__(self, widths: tuple[int, ...] = WIDTHS, classes_num: int = N_AUDIOSET) -> None:
        super().__init__()
        if len(widths) != 6:
            raise ValueError(f"CNN14 has six conv blocks, got widths {widths}")
        self.widths = tuple(widths)
        self.spectrogram_extractor = Spectrogram()
        self.logmel_extractor = LogmelFilterBank()
        self.bn0 = nn.BatchNorm2d(N_MELS)
        c_in = 1
        for i, c in enumerate(widths, start=1):
            setattr(self, f"conv_block{i}", ConvBlock(c_in, c))
            c_in = c
        self.fc1 = nn.Linear(c_in, c_in)
        self.fc_audioset = nn.Linear(c_in, classes_num)

    @property
    def embed_dim(self) -> int:
        """Width of ``embedding`` (2048 at full size)."""
        return self.widths[-1]

    def logmel(self, waveform: torch.Tensor) -> torch.Tensor:
        """The front end alone: ``[N,L]`` -> log-mel dB ``[N,1,L//160+1,64]`` (before ``bn0``)."""
        return self.logmel_extractor(self.spectrogram_extractor(waveform))

    def forward(self, waveform: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.logmel(waveform)
        x = self.bn0(x.transpose(1, 3)).transpose(1, 3)  # BatchNorm over the mel bins
        for i in range(1, 7):
            x = getattr(self, f"conv_block{i}")(x, 2 if i < 6 else 1)
        x = x.mean(dim=3)  # [N,C,time]
        x = x.amax(dim=2) + x.mean(dim=2)
        emb = torch.relu(self.fc1(x))
        return emb, torch.sigmoid(self.fc_audioset(emb))


def unwrap_checkpoint(sd: dict) -> dict:
    """The state_dict of a PANNs weight file: the published files hold it under ``model`` (beside
    e.g. ``iteration``); a bare state_dict is returned as it is."""
    inner = sd.get("model")
    if isinstance(inner, dict) and all(isinstance(k, str) for k in inner):
        return dict(inner)
    return sd
