"""PANNs Cnn14_16k (c3n.model.panns) and its import (issue 24): key names of the full-size
state_dict, the front end against the formula written out here (STFT power -> mel -> dB), the mel
filters against values of the reference filter bank, and a reduced-size C3N import with PANNs ->
ONNX (waveform input) -> onnxruntime. Random weights; fast. The full-size module is checked
against the official code outside CI (models/tools/panns_parity.py)."""
from __future__ import annotations

import hashlib
import math

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from test_import_official import CH, D, TinyBackbone, assert_outputs_close, randomise, tiny_cam_weights

from c3n import categories
from c3n.export.official import audio_contract, export, metadata, read_weights, strict_load
from c3n.model import panns
from c3n.model.official import OfficialNetwork
from c3n.model.official_decoder import C3NDecoder

# sha256 of the sorted "key shape" lines of Cnn14_16k's full-size state_dict; the same set as
# the official Cnn14_16k (torchlibrosa front end) with random weights (issue 24 report).
FULL_KEYS = (84, "a4e8a3acd3c1ba659f64f411eba8a5891af16790edd948de41986a61ddeb1700")
REDUCED = (4, 8, 8, 16, 16, 32)


def _key_digest(sd: dict) -> tuple[int, str]:
    lines = sorted(f"{k} {tuple(v.shape)}" for k, v in sd.items())
    return len(lines), hashlib.sha256("\n".join(lines).encode()).hexdigest()


def test_full_size_key_names():
    with torch.device("meta"):
        m = panns.Cnn14_16k()
    sd = m.state_dict()
    assert _key_digest(sd) == FULL_KEYS
    assert tuple(sd["spectrogram_extractor.stft.conv_real.weight"].shape) == (257, 1, 512)
    assert tuple(sd["logmel_extractor.melW"].shape) == (257, 64)
    assert tuple(sd["fc1.weight"].shape) == (2048, 2048) and tuple(sd["fc_audioset.weight"].shape) == (527, 2048)


def test_mel_filters_equal_the_reference_filter_bank():
    """Values of librosa.filters.mel(sr=16000, n_fft=512, n_mels=64, fmin=50, fmax=8000) (Slaney
    scale and area normalisation), transposed to [257,64] as the weight file stores it: the peak
    bin of a few filters, the values there and one bin above, and the sum of all weights."""
    w = panns.mel_filters().numpy()
    ref = {0: (3, 0.02100643515586853, 0.007813486270606518), 10: (18, 0.016871722415089607, 0.0018671249272301793),
           32: (57, 0.010995486751198769, 0.006620184518396854), 63: (244, 0.002725728088989854, 0.0026010319124907255)}
    for m, (k, peak, nxt) in ref.items():
        assert int(np.argmax(w[:, m])) == k
        assert w[k, m] == pytest.approx(peak, abs=1e-8) and w[k + 1, m] == pytest.approx(nxt, abs=1e-8)
    assert float(w.sum()) == pytest.approx(2.0493478775024414, abs=1e-6)
    assert (w >= 0).all() and w[0].sum() == 0.0  # the 0 Hz bin is below fmin = 50 Hz


def test_front_end_equals_the_formula():
    """log-mel = 10 log10(max(|STFT|² @ melW, 1e-10)); STFT: periodic Hann 512, hop 160, centred
    with reflect padding (torch.stft), ref power 1, no top-dB clamp."""
    m = panns.Cnn14_16k(widths=REDUCED).eval()
    g = torch.Generator().manual_seed(0)
    x = 0.3 * torch.randn(3, 16000, generator=g)
    x[2] = 0.0  # silence: every mel value floors at 1e-10 -> -100 dB
    hann = torch.hann_window(512, periodic=True, dtype=torch.float64)
    spec = torch.stft(x.double(), 512, hop_length=160, window=hann, center=True, pad_mode="reflect",
                      return_complex=True)  # [N,257,101]
    power = spec.abs() ** 2
    ref = 10.0 * torch.log10(torch.clamp(power.transpose(1, 2) @ m.logmel_extractor.melW.double(), min=1e-10))
    with torch.no_grad():
        ours = m.logmel(x)
    assert ours.shape == (3, 1, 101, 64)
    assert (ours[:, 0].double() - ref).abs().max() <= 1e-3  # dB; float32 conv STFT vs float64 FFT
    assert torch.all(ours[2] == -100.0)
    real, imag = panns.dft_kernels()
    j = torch.arange(512, dtype=torch.float64)
    assert torch.allclose(real[5, 0].double(), hann * torch.cos(2 * math.pi * 5 * j / 512), atol=1e-7)
    assert torch.allclose(imag[5, 0].double(), -hann * torch.sin(2 * math.pi * 5 * j / 512), atol=1e-7)


def test_pooling_head_equals_the_formula():
    """After the conv blocks: mean over mel, max + mean over time, fc1 + ReLU = embedding,
    fc_audioset + sigmoid = clipwise output."""
    m = randomise(panns.Cnn14_16k(widths=REDUCED), 1)
    x = 0.2 * torch.randn(2, 16000, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        h = m.bn0(m.logmel(x).transpose(1, 3)).transpose(1, 3)
        for i in range(1, 7):
            h = getattr(m, f"conv_block{i}")(h, 2 if i < 6 else 1)
        assert h.shape == (2, REDUCED[-1], 3, 2)  # 101 x 64 -> five 2x2 pools -> 3 x 2
        f = h.mean(dim=3)
        e = torch.relu(m.fc1(f.max(dim=2).values + f.mean(dim=2)))
        emb, clip = m(x)
    assert torch.allclose(emb, e, atol=1e-6) and torch.allclose(clip, torch.sigmoid(m.fc_audioset(e)), atol=1e-6)


def test_published_layout_is_unwrapped_and_loaded_strictly(tmp_path):
    src = randomise(panns.Cnn14_16k(widths=REDUCED), 2)
    path = tmp_path / "Cnn14_16k.pth"
    torch.save({"model": src.state_dict(), "iteration": 10}, path)
    dst = panns.Cnn14_16k(widths=REDUCED)
    strict_load(dict(dst.state_dict(keep_vars=True)), panns.unwrap_checkpoint(read_weights(path)), str(path))
    for k, v in src.state_dict().items():
        assert torch.equal(dst.state_dict()[k], v), k


def _network(seed: int) -> OfficialNetwork:
    torch.manual_seed(seed)
    sim = torch.rand(1000, 527, generator=torch.Generator().manual_seed(seed))
    audio = panns.Cnn14_16k(widths=REDUCED)
    net = OfficialNetwork("c3n", TinyBackbone(), audio, C3NDecoder(CH, d=D, audio_dim=REDUCED[-1]),
                          "encoder_backbone", sim, cam_weights=tiny_cam_weights)
    return randomise(net, seed)


def test_reduced_panns_import_onnxruntime_equals_pytorch(tmp_path):
    net = _network(3)
    t = 5
    audio_input, names, fe, cats = audio_contract("panns")
    assert audio_input == "waveform" and fe == {"c3n.frontend.sample_rate": "16000"}
    md = metadata(net, "c3n/tiny/panns", t, audio_input, names, fe, cats, "0" * 64)
    out = export(net, t, tmp_path / "m.onnx", md, audio_input, with_cam=True)
    g = torch.Generator().manual_seed(7)
    frames, wav = torch.randn(t, 3, 224, 224, generator=g), 0.2 * torch.randn(t, 16000, generator=g)
    with torch.no_grad():
        ref = net(frames, wav, t=t, return_cam=True)
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["frames", "audio_waveform"]
    assert sess.get_inputs()[1].shape == [t, 16000]
    got = sess.run(None, {"frames": frames.numpy(), "audio_waveform": wav.numpy()})
    assert_outputs_close([o.name for o in sess.get_outputs()], ref, got, rel=1e-4)
    md_file = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert md_file["c3n.audio_input"] == "waveform" and md_file["c3n.variant"] == "c3n/tiny/panns"
    assert md_file["c3n.frontend.sample_rate"] == "16000"
    assert md_file["c3n.categories"] == categories.asset_text()


def test_import_command_refuses_avsbench_with_panns(capsys):
    from c3n.export.official import main

    with pytest.raises(SystemExit) as e:
        main(["--code", "avsbench", "--visual", "pvt_v2_b5", "--audio", "panns", "--checkpoint", "c.pth",
              "--panns", "p.pth", "--frames", "5", "--out", "o.onnx"])
    assert e.value.code == 2
    assert "no panns variant" in capsys.readouterr().err
