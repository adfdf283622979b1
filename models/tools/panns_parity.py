"""Parity of the PANNs import (``--audio panns``) against the official code itself (issue 24; not CI).

1. ``audio``: the official ``Cnn14_16k`` (PANNs ``models.py`` of ``C3N_panns``, torchlibrosa front
   end) with random weights (BatchNorm statistics randomised too), saved in the published layout
   ``{"model": state_dict}``, loaded strictly into :class:`c3n.model.panns.Cnn14_16k`; both run on
   the same random waveforms [N,16000]: max abs / rel difference of ``embedding`` and
   ``clipwise_output``; also our own DFT kernels and mel filters vs the official ones.
2. ``c3n_pvt`` / ``c3n_swin``: the official C3N-PANNs ``Pred_endecoder`` (PVT-v2-b5 / Swin-B) with
   random weights, fed the official Cnn14_16k's ``embedding`` and ``clipwise_output``; its
   ``state_dict`` imported with ``python -m c3n.import_official --audio panns``; the same targets
   as :mod:`official_parity` (mask within 1e-3 x max |logit|, identical unified labels, CCAM
   weights within 1e-4 relative), PyTorch import and ONNX Runtime.

The official code and torchlibrosa/librosa come from OUTSIDE the repository:

    pip install --target /work/scratch-panns/lib torchlibrosa librosa
    git -C <AVS-C3N mirror> archive HEAD C3N_panns | tar -x -C /work/scratch-panns/official/AVS-C3N
    prlimit --as=16000000000 .venv/bin/python models/tools/panns_parity.py \\
        --official /work/scratch-panns/official --lib /work/scratch-panns/lib audio c3n_pvt
"""
from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import official_parity as op  # noqa: E402

TREE = "AVS-C3N/C3N_panns/avs_scripts/avs_s4"
VARIANTS = {"c3n_pvt": ("pvt_v2_b5", "PVT_AVSModel"), "c3n_swin": ("swin_base", "Swin_AVSModel")}


def _use_tree(root: Path) -> None:
    for k in [k for k in sys.modules if k.split(".")[0] == "PANNs"]:
        del sys.modules[k]
    op._use_tree(root)


def official_cnn14(root: Path, seed: int):
    _use_tree(root / TREE)
    from PANNs.models import Cnn14_16k

    torch.manual_seed(seed)
    m = Cnn14_16k(sample_rate=16000, window_size=512, hop_size=160, mel_bins=64, fmin=50, fmax=8000,
                  classes_num=527)
    return op.randomise(m, seed).eval()


def _diff(a: torch.Tensor, b: torch.Tensor) -> dict:
    d = float((a - b).abs().max())
    return {"max_abs": d, "max_rel": d / float(b.abs().max())}


def audio_parity(root: Path, work: Path, wav: torch.Tensor, seed: int) -> dict:
    from c3n.export.official import load_audio_files
    from c3n.model.panns import Cnn14_16k

    off = official_cnn14(root, seed)
    path = work / "Cnn14_16k.pth"
    torch.save({"model": off.state_dict(), "iteration": 0}, path)
    ours = Cnn14_16k().eval()
    fresh = Cnn14_16k().state_dict()
    rep = {k: float((fresh[k] - off.state_dict()[k]).abs().max()) for k in
           ("spectrogram_extractor.stft.conv_real.weight", "spectrogram_extractor.stft.conv_imag.weight",
            "logmel_extractor.melW")}
    load_audio_files(SimpleNamespace(audio=ours), "panns", {"panns": str(path)})
    with torch.no_grad():
        o = off(wav)
        emb, clip = ours(wav)
    rep["embedding"] = _diff(emb, o["embedding"])
    rep["clipwise_output"] = _diff(clip, o["clipwise_output"])
    rep["ok"] = rep["embedding"]["max_rel"] <= 1e-5 and rep["clipwise_output"]["max_rel"] <= 1e-5
    return rep


def network_parity(name: str, root: Path, work: Path, frames, wav, seed: int, onnx_too: bool) -> dict:
    import h5py

    from c3n.export.official import load_audio_files, main, read_weights, strict_load
    from c3n.model.official import build_network, load_similarity_h5

    visual, module = VARIANTS[name]
    off_audio = official_cnn14(root, seed)
    panns_path = work / "Cnn14_16k.pth"
    torch.save({"model": off_audio.state_dict(), "iteration": 0}, panns_path)
    with torch.no_grad():
        o = off_audio(wav)
    emb, a_cls = o["embedding"], o["clipwise_output"]
    sim_path = work / "similarity_matrix.h5"
    with h5py.File(sim_path, "w") as f:
        f["similarity_matrix"] = np.random.default_rng(seed).random((1000, 527)).astype(np.float32)
    _use_tree(root / TREE)
    mod = __import__(f"model.{module}", fromlist=["Pred_endecoder"])
    for init in ("initialize_pvt_weights", "initialize_swin_weights"):
        if hasattr(mod.Pred_endecoder, init):
            setattr(mod.Pred_endecoder, init, lambda self: None)
    cfg = SimpleNamespace(TRAIN=SimpleNamespace(AV_SIM_MATRIX=str(sim_path)))
    torch.manual_seed(seed)
    model = mod.Pred_endecoder(channel=256, config=cfg, tpavi_stages=[0, 1, 2, 3])
    captured = {}
    orig = mod.compute_cam_per_layer

    def capture(ag, x):
        cams, weights = orig(ag, x)
        captured["w"] = [np.asarray(w)[:, :, 0, 0] for w in weights]
        return cams, weights

    mod.compute_cam_per_layer = capture
    op.randomise(model, seed).eval()
    t0 = time.time()
    mask = model(frames, emb, a_cls).detach()
    off = {"official_s": time.time() - t0, "mask_logits": mask.numpy(), "audio_logits": a_cls, "cam": captured["w"]}
    with torch.no_grad():
        _, v_cls = model.encoder_backbone(frames)
    from model.utils import semantic_sim

    off["unified_label"] = np.array(semantic_sim(v_cls, a_cls, model.sim_matrix))
    ckpt = work / f"{name}_panns_best.pth"
    torch.save({f"module.{k}": v for k, v in model.state_dict().items()}, ckpt)
    del model
    gc.collect()

    sd = read_weights(ckpt)
    net = build_network("c3n", visual, "panns", similarity=load_similarity_h5(str(sim_path)))
    strict_load(net.checkpoint_tensors(), sd, str(ckpt))
    load_audio_files(net, "panns", {"panns": str(panns_path)})
    t = frames.shape[0]
    t0 = time.time()
    with torch.no_grad():
        outs = net(frames, wav, t=t, return_cam=True)
    ours = {"ours_s": time.time() - t0, "torch": dict(zip(net.output_names, [x.numpy() for x in outs]))}
    ours["torch"]["cam"] = [x.numpy() for x in outs[len(net.output_names):]]
    del net, outs, sd
    gc.collect()
    if onnx_too:
        import onnxruntime as ort

        out = work / f"{name}_panns_t{t}.onnx"
        argv = ["--code", "c3n", "--visual", visual, "--audio", "panns", "--checkpoint", str(ckpt),
                "--panns", str(panns_path), "--similarity", str(sim_path), "--frames", str(t), "--out", str(out)]
        if main(argv) != 0:
            raise RuntimeError("import failed")
        sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        got = sess.run(None, {"frames": frames.numpy(), "audio_waveform": wav.numpy()})
        ours["onnx"] = dict(zip([x.name for x in sess.get_outputs()], got))
    rep = op.compare(off, ours)
    rep.update({k: round(v, 2) for k, v in {**off, **ours}.items() if k.endswith("_s")})
    return rep


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checks", nargs="*", default=["audio", "c3n_pvt"], help="audio, c3n_pvt, c3n_swin")
    ap.add_argument("--official", required=True, help="folder with AVS-C3N/C3N_panns (untracked)")
    ap.add_argument("--lib", help="site folder with torchlibrosa and librosa (pip --target), appended to sys.path")
    ap.add_argument("--work", default="/tmp/c3n-panns-parity")
    ap.add_argument("--frames", type=int, default=5)
    ap.add_argument("--no-onnx", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    if a.lib:
        sys.path.append(a.lib)
    op._stubs()
    torch.set_grad_enabled(True)
    root, work = Path(a.official), Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(a.seed + 1)
    frames = torch.randn(a.frames, 3, 224, 224, generator=g)
    wav = 0.2 * torch.randn(a.frames, 16000, generator=g)
    ok = True
    for c in a.checks:
        if c == "audio":
            rep = audio_parity(root, work, wav, a.seed)
            ok &= rep["ok"]
        elif c in VARIANTS:
            rep = network_parity(c, root, work, frames, wav, a.seed, not a.no_onnx)
            ok &= all(v for k, v in rep.items() if k.endswith("_ok"))
        else:
            ap.error(f"unknown check {c}")
        print(c, json.dumps(rep, indent=1), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
