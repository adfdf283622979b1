"""Parity of ``python -m c3n.import_official`` against the official code itself (issue 24; not CI).

For each variant: build the official model (with its audio network) from an untracked checkout of
the official repositories, give it random weights, save its ``state_dict`` (with DataParallel's
``module.`` prefix) and the audio weight files, import them with ``c3n.import_official``, and run
both on the same inputs (random frames, random log-mel examples):

* ``mask_logits``: max |ours - official| <= 1e-3 x max |official|;
* ``unified_label`` identical (C3N);
* CCAM weights: max |ours - official| <= 1e-4 x max |official| per stage (C3N).

Ours runs twice: the PyTorch network as imported, and the exported ONNX file under ONNX Runtime
(CPU). The official code is imported from ``--official`` (e.g. ``git archive`` of the mirrors,
``AVS-C3N/`` and ``AVSBench/`` side by side), never from the repository; its few missing
third-party imports (timm, cv2, easydict, resampy) are stubbed with what its forward needs, and
``.cuda()`` is a no-op. Run it under a memory limit (full-size PVT-v2-b5 needs ~10 GB):

    prlimit --as=16000000000 .venv/bin/python models/tools/official_parity.py \\
        --official /work/scratch-h3/official --work /tmp/parity c3n_pvt avsbench_resnet
"""
from __future__ import annotations

import argparse
import gc
import json
import sys
import time
import types
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

VARIANTS = {  # name -> (code, visual, official tree, model module)
    "c3n_pvt": ("c3n", "pvt_v2_b5", "AVS-C3N/C3N_vggish/avs_scripts/avs_s4", "PVT_AVSModel"),
    "avsbench_resnet": ("avsbench", "resnet50", "AVSBench/avs_scripts/avs_s4", "ResNet_AVSModel"),
    "avsbench_pvt": ("avsbench", "pvt_v2_b5", "AVSBench/avs_scripts/avs_s4", "PVT_AVSModel"),
    "c3n_swin": ("c3n", "swin_base", "AVS-C3N/C3N_vggish/avs_scripts/avs_s4", "Swin_AVSModel"),
}
C3N_AUDIO = "AVS-C3N/C3N_vggish/avs_scripts/avs_s4"


def _stubs() -> None:
    """What the official code imports but its forward does not need from those packages."""
    timm = types.ModuleType("timm")
    layers = types.ModuleType("timm.models.layers")

    class DropPath(nn.Module):  # identity at inference
        def __init__(self, p=0.0):
            super().__init__()

        def forward(self, x):
            return x

    layers.DropPath = DropPath
    layers.to_2tuple = lambda x: tuple(x) if isinstance(x, (tuple, list)) else (x, x)
    layers.trunc_normal_ = lambda t, std=1.0, **_: nn.init.trunc_normal_(t, std=std)
    registry = types.ModuleType("timm.models.registry")
    registry.register_model = lambda f: f
    vit = types.ModuleType("timm.models.vision_transformer")
    vit._cfg = lambda **kw: dict(kw)
    models = types.ModuleType("timm.models")
    models.layers, models.registry, models.vision_transformer = layers, registry, vit
    timm.models = models
    sys.modules.update({"timm": timm, "timm.models": models, "timm.models.layers": layers,
                        "timm.models.registry": registry, "timm.models.vision_transformer": vit})
    cv2 = types.ModuleType("cv2")  # grad_cam_utils resizes the CAM image (unused by the mask)
    cv2.resize = lambda img, size: np.zeros((size[1], size[0]), dtype=np.float32)
    sys.modules["cv2"] = cv2
    for name in ("resampy", "easydict"):
        sys.modules.setdefault(name, types.ModuleType(name))
    torch.Tensor.cuda = lambda self, *a, **k: self
    nn.Module.cuda = lambda self, *a, **k: self


def _use_tree(root: Path) -> None:
    """Import the official ``model`` / ``torchvggish`` packages from ``root`` (forgetting others)."""
    for k in [k for k in sys.modules if k.split(".")[0] in ("model", "torchvggish")]:
        del sys.modules[k]
    sys.path[:] = [p for p in sys.path if "avs_scripts" not in p]
    sys.path.insert(0, str(root))


def randomise(m: nn.Module, seed: int) -> nn.Module:
    """Keep the default initialisation of weights, randomise what it leaves trivial: BatchNorm
    affine parameters (TPAVI's W_z BN starts at zero) and running statistics."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, nn.modules.batchnorm._BatchNorm):
                mod.weight.copy_(0.5 + torch.rand(mod.weight.shape, generator=g))
                mod.bias.copy_(0.1 * torch.randn(mod.bias.shape, generator=g))
                mod.running_mean.copy_(0.1 * torch.randn(mod.running_mean.shape, generator=g))
                mod.running_var.copy_(0.5 + torch.rand(mod.running_var.shape, generator=g))
    return m


def write_audio_files(root: Path, work: Path, seed: int) -> dict[str, str]:
    """Random VGGish, PCA and AudioSet-head files, in the published files' formats."""
    _use_tree(root)
    from model.audio_model import FeatureLevelSingleAttention
    from torchvggish.vggish import VGG, make_layers

    torch.manual_seed(seed)
    vgg = VGG(make_layers())
    head = randomise(FeatureLevelSingleAttention(128, 527, 1024, 0.5), seed)
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((128, 128)))
    pca = {"pca_eigen_vectors": (q * 0.5).astype(np.float64), "pca_means": rng.standard_normal(128) * 0.05}
    files = {"vggish": work / "vggish.pth", "vggish_pca": work / "vggish_pca.pth", "audio_head": work / "head.pth"}
    torch.save(vgg.state_dict(), files["vggish"])
    torch.save(pca, files["vggish_pca"])
    torch.save(head.state_dict(), files["audio_head"])
    return {k: str(v) for k, v in files.items()}


def official_cfg(work: Path, files: dict[str, str], sim_path: str | None):
    train = SimpleNamespace(FREEZE_AUDIO_EXTRACTOR=True, PRETRAINED_VGGISH_MODEL_PATH=files["vggish"],
                            PREPROCESS_AUDIO_TO_LOG_MEL=False, POSTPROCESS_LOG_MEL_WITH_PCA=False,
                            PRETRAINED_PCA_PARAMS_PATH=files["vggish_pca"], PRETRAINED_HEAD_PATH=files["audio_head"],
                            AV_SIM_MATRIX=sim_path)
    return SimpleNamespace(TRAIN=train)


def run_official(name: str, root: Path, work: Path, frames, logmel, seed: int) -> dict:
    """Build, randomise and run the official model; save its checkpoint. Returns its outputs."""
    from c3n.export.official import numpy_safe_globals

    torch.serialization.add_safe_globals(numpy_safe_globals())  # (re)allow the PCA file's arrays
    code, _, tree, module = VARIANTS[name]
    files = write_audio_files(root / C3N_AUDIO, work, seed)
    sim_path = None
    if code == "c3n":
        import h5py

        sim_path = str(work / "similarity_matrix.h5")
        with h5py.File(sim_path, "w") as f:
            f["similarity_matrix"] = np.random.default_rng(seed).random((1000, 527)).astype(np.float32)
    cfg = official_cfg(work, files, sim_path)
    # the audio side as the official code builds it: C3N's extractor gives embedding + logits;
    # AVSBench's VGGish gives the embedding (the labels then come from C3N's head, as ours)
    _use_tree(root / C3N_AUDIO)
    from model.audio_model import audio_extractor

    audio = audio_extractor(cfg, torch.device("cpu")).eval()
    with torch.no_grad():
        emb, a_cls = audio(logmel)
    _use_tree(root / tree)
    mod = __import__(f"model.{module}", fromlist=["Pred_endecoder"])
    for init in ("initialize_pvt_weights", "initialize_swin_weights", "initialize_weights"):
        if hasattr(mod.Pred_endecoder, init):
            setattr(mod.Pred_endecoder, init, lambda self: None)
    torch.manual_seed(seed)
    out = {"audio_logits": a_cls}
    if code == "c3n":
        model = mod.Pred_endecoder(channel=256, config=cfg, tpavi_stages=[0, 1, 2, 3])
        captured = {}
        orig = mod.compute_cam_per_layer

        def capture(ag, x):
            cams, weights = orig(ag, x)
            captured["w"] = [np.asarray(w)[:, :, 0, 0] for w in weights]
            return cams, weights

        mod.compute_cam_per_layer = capture
        randomise(model, seed).eval()
        t0 = time.time()
        mask = model(frames, emb, a_cls).detach()
        out["official_s"] = time.time() - t0
        with torch.no_grad():
            _, v_cls = model.encoder_backbone(frames)
        from model.utils import semantic_sim

        out["unified_label"] = np.array(semantic_sim(v_cls, a_cls, model.sim_matrix))
        out["cam"] = captured["w"]
        out["visual_logits"] = v_cls.numpy()
    else:
        model = mod.Pred_endecoder(channel=256, config=cfg, tpavi_stages=[0, 1, 2, 3], tpavi_va_flag=True)
        randomise(model, seed).eval()
        t0 = time.time()
        with torch.no_grad():
            mask = model(frames, emb)[0]
        out["official_s"] = time.time() - t0
    out["mask_logits"] = mask.numpy()
    ckpt = work / f"{name}_best.pth"
    torch.save({f"module.{k}": v for k, v in model.state_dict().items()}, ckpt)
    out["files"] = {**files, "checkpoint": str(ckpt), "similarity": sim_path}
    return out


def run_ours(name: str, work: Path, off: dict, frames, logmel, t: int, onnx_too: bool, split: bool) -> dict:
    """Import with the command, then run the PyTorch network and the ONNX file."""
    from c3n.export.official import load_audio_files, main, read_weights, strict_load, tpavi_stages_of
    from c3n.model.official import build_network, load_similarity_h5

    code, visual, _, _ = VARIANTS[name]
    files = off["files"]
    sd = read_weights(files["checkpoint"])
    sim = load_similarity_h5(files["similarity"]) if files["similarity"] else None
    net = build_network(code, visual, "vggish", similarity=sim, tpavi_stages=tpavi_stages_of(sd) or (0, 1, 2, 3))
    strict_load(net.checkpoint_tensors(), sd, files["checkpoint"])
    load_audio_files(net, "vggish", files)
    res = {}
    t0 = time.time()
    with torch.no_grad():
        outs = net(frames, logmel, t=t, **({"return_cam": True} if code == "c3n" else {}))
    res["ours_s"] = time.time() - t0
    res["torch"] = dict(zip(net.output_names, [o.numpy() for o in outs]))
    if code == "c3n":
        res["torch"]["cam"] = [o.numpy() for o in outs[len(net.output_names):]]
    del net, outs, sd
    gc.collect()
    print(name, "PyTorch import:", json.dumps(compare(off, res)), flush=True)
    if onnx_too:
        import onnxruntime as ort

        out = work / f"{name}_t{t}.onnx"
        argv = ["--code", code, "--visual", visual, "--audio", "vggish", "--checkpoint", files["checkpoint"],
                "--vggish", files["vggish"], "--vggish-pca", files["vggish_pca"], "--audio-head", files["audio_head"],
                "--frames", str(t), "--out", str(out)]
        if files["similarity"]:
            argv += ["--similarity", files["similarity"]]
        t0 = time.time()
        if main(argv) != 0:
            raise RuntimeError("import failed")
        res["import_s"] = time.time() - t0
        sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        t0 = time.time()
        got = sess.run(None, {"frames": frames.numpy(), "audio_logmel": logmel.numpy()})
        res["ort_s"] = time.time() - t0
        res["onnx"] = dict(zip([o.name for o in sess.get_outputs()], got))
        res["onnx_mb"] = out.stat().st_size / 1e6
        del sess
        print(name, "ONNX Runtime:", json.dumps(compare(off, res)), flush=True)
        if split:
            res["split"] = {"mask_logits": run_frame_split(out, frames, logmel)}
    return res


def run_frame_split(path: Path, frames, logmel) -> np.ndarray:
    """mask_logits from the frame split's two parts (:func:`c3n.export.frame_split.frame_split_parts`)
    run one frame at a time under ONNX Runtime, the clip means taken here (as the runtime does)."""
    import onnx
    import onnxruntime as ort

    from c3n.export.frame_split import frame_split_parts

    before, after, split = frame_split_parts(onnx.load(str(path)))
    opts = ort.SessionOptions()
    s1 = ort.InferenceSession(before.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    names = [o.name for o in s1.get_outputs()]
    per = [dict(zip(names, s1.run(None, {"frames": frames[i:i + 1].numpy(), "audio_logmel": logmel[i:i + 1].numpy()})))
           for i in range(frames.shape[0])]
    del s1
    s2 = ort.InferenceSession(after.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    clip = {c["clip"]: np.mean([p[c["frame"]] for p in per], axis=0) for c in split["clip_means"]}
    return np.concatenate([s2.run(["mask_logits"], {**clip, **{x: p[x] for x in split["carry"]}})[0] for p in per])


def compare(off: dict, ours: dict) -> dict:
    ref = off["mask_logits"]
    scale = float(np.abs(ref).max())
    rep = {"max_abs_official_logit": scale}
    for side in ("torch", "onnx", "split"):
        if side not in ours:
            continue
        o = ours[side]
        d = float(np.abs(o["mask_logits"] - ref).max())
        rep[f"{side}.mask_rel"] = d / scale
        rep[f"{side}.mask_ok"] = d <= 1e-3 * scale
        if "audio_logits" not in o:
            continue
        da = float(np.abs(o["audio_logits"] - off["audio_logits"].numpy()).max())
        rep[f"{side}.audio_logits_rel"] = da / float(np.abs(off["audio_logits"].numpy()).max())
        if "unified_label" in off:
            rep[f"{side}.labels"] = [int(x) for x in o["unified_label"]]
            rep[f"{side}.labels_ok"] = bool(np.array_equal(o["unified_label"], off["unified_label"]))
    if "unified_label" in off:
        rep["official.labels"] = [int(x) for x in off["unified_label"]]
        rels = []
        for a, b in zip(ours["torch"]["cam"], off["cam"]):
            rels.append(float(np.abs(a - b).max() / np.abs(b).max()))
        rep["torch.cam_rel"] = rels
        rep["torch.cam_ok"] = all(r <= 1e-4 for r in rels)
    return rep


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("variants", nargs="*", default=list(VARIANTS), help=f"any of {list(VARIANTS)} (default all)")
    ap.add_argument("--official", required=True, help="folder with AVS-C3N/ and AVSBench/ (untracked)")
    ap.add_argument("--work", default="/tmp/c3n-official-parity", help="scratch folder for weights and ONNX")
    ap.add_argument("--frames", type=int, default=5, help="T (the official code needs a multiple of 5)")
    ap.add_argument("--no-onnx", action="store_true", help="compare the PyTorch import only")
    ap.add_argument("--split", action="store_true", help="also run the ONNX file's frame split, frame by frame")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="write the figures here")
    a = ap.parse_args(argv)
    if bad := [v for v in a.variants if v not in VARIANTS]:
        ap.error(f"unknown variant(s) {bad}; choose from {list(VARIANTS)}")
    _stubs()
    torch.set_grad_enabled(True)
    root, work = Path(a.official), Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    report = {}
    for name in a.variants:
        g = torch.Generator().manual_seed(a.seed + 1)
        frames = torch.randn(a.frames, 3, 224, 224, generator=g)
        logmel = torch.randn(a.frames, 1, 96, 64, generator=g) * 1.5 - 2.0
        off = run_official(name, root, work, frames, logmel, a.seed)
        gc.collect()
        ours = run_ours(name, work, off, frames, logmel, a.frames, not a.no_onnx, a.split)
        rep = compare(off, ours)
        rep.update({k: round(v, 2) for k, v in {**off, **ours}.items() if k.endswith("_s") or k == "onnx_mb"})
        report[name] = rep
        print(name, json.dumps(rep, indent=1), flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps(report, indent=1))
    return 0 if all(r.get("torch.mask_ok") and r.get("onnx.mask_ok", True) and r.get("torch.labels_ok", True)
                    and r.get("onnx.labels_ok", True) and r.get("torch.cam_ok", True)
                    and r.get("split.mask_ok", True) for r in report.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
