"""Import of official checkpoints (C3N code, AVSBench baseline): strict loading and the ONNX export.

Strict loading (:func:`strict_load`): every key the network expects must be in the file, every key
in the file must be expected, and shapes must agree; all disagreements are reported together, each
naming the key and both shapes (:class:`CheckpointError`). A ``module.`` prefix (DataParallel) is
accepted. Files are read with ``torch.load(weights_only=True)`` (:func:`read_weights`): no pickled
code runs; NumPy arrays (as in VGGish's PCA file) are allowed as plain data.

The export writes the ONNX contract of :mod:`c3n.export.exporter` (``src/engine/model.rs``), schema
"3": inputs ``frames`` [T,3,224,224] and ``audio_logmel`` [T,1,96,64] (VGGish) or
``audio_waveform`` [T,16000] (PANNs); outputs :attr:`c3n.model.official.OfficialNetwork.output_names`
(the AVSBench baseline has no ImageNet head, so only ``mask_logits`` and ``audio_logits``);
metadata as the exporter's plus ``c3n.variant`` (``<code>/<visual>/<audio>``), ``c3n.audio_input``
(``logmel`` | ``waveform``), ``c3n.checkpoint.sha256`` and, for C3N, the sha256 of the user's S;
the frame split (:mod:`c3n.export.frame_split`) at every TPAVI stage, with its segment cuts.
"""
from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Mapping
from pathlib import Path

import onnx
import torch
from torch import nn

from .. import MODEL_VERSION
from ..model.network import ALPHA
from ..model.official import OfficialNetwork
from .exporter import MEAN, STD
from .frame_split import add_segment_cuts, mark_frame_split

SCHEMA = "3"  # 3: + c3n.variant, c3n.audio_input, 527-class audio, optional visual outputs (issue 24)
PRODUCER = "c3n-edge models/c3n/export/official.py"


class CheckpointError(ValueError):
    """A weight file that does not match the network: the problems, one per line."""


def read_weights(path: str | Path) -> dict[str, object]:
    """A weight file as a flat dict, read with ``torch.load(weights_only=True)`` (NumPy arrays
    allowed as data). Raises CheckpointError when it is not a mapping of names."""
    with torch.serialization.safe_globals(numpy_safe_globals()):
        sd = torch.load(str(path), map_location="cpu", weights_only=True)
    if not isinstance(sd, Mapping) or not all(isinstance(k, str) for k in sd):
        raise CheckpointError(f"{path}: not a state_dict (a mapping of parameter names), got {type(sd).__name__}")
    return dict(sd)


def numpy_safe_globals() -> list:
    """The NumPy names a pickled array needs (``ndarray``, ``dtype``, its reconstructor under its
    NumPy 1 and NumPy 2 module paths): data only, nothing that runs code of the file's choosing."""
    import numpy as np

    rebuild = np._core.multiarray._reconstruct
    out = [np.ndarray, np.dtype, rebuild, (rebuild, "numpy.core.multiarray._reconstruct")]
    return out + [type(np.dtype(t)) for t in ("float32", "float64", "int64", "int32", "uint8")]


def strip_module_prefix(sd: Mapping[str, object]) -> dict[str, object]:
    """Keys without a leading ``module.`` (repeated, as nested DataParallel writes them)."""
    out = {}
    for k, v in sd.items():
        while k.startswith("module."):
            k = k[len("module."):]
        out[k] = v
    return out


def _shape(v) -> list[int]:
    return list(getattr(v, "shape", ()))


def strict_load(expected: Mapping[str, torch.Tensor], sd: Mapping[str, object], source: str) -> None:
    """Copy ``sd`` into the tensors of ``expected`` (name -> parameter or buffer), strictly.

    Raises CheckpointError listing every missing key (with the model's shape), unexpected key
    (with the file's shape) and shape mismatch (file shape, model shape); nothing is copied then."""
    sd = strip_module_prefix(sd)
    problems = []
    for k in sorted(set(expected) - set(sd)):
        problems.append(f"missing key {k} (model shape {_shape(expected[k])})")
    for k in sorted(set(sd) - set(expected)):
        problems.append(f"unexpected key {k} (checkpoint shape {_shape(sd[k])})")
    for k in sorted(set(sd) & set(expected)):
        if _shape(sd[k]) != _shape(expected[k]):
            problems.append(f"shape mismatch at {k}: checkpoint {_shape(sd[k])}, model {_shape(expected[k])}")
    if problems:
        head = f"{source}: {len(problems)} problem(s) loading the checkpoint strictly"
        raise CheckpointError("\n  ".join([head] + problems))
    with torch.no_grad():
        for k, dst in expected.items():
            dst.copy_(torch.as_tensor(sd[k]))


def module_tensors(m: nn.Module) -> dict[str, torch.Tensor]:
    """name -> parameter or buffer of ``m`` (the live tensors, for :func:`strict_load`)."""
    return dict(m.state_dict(keep_vars=True))


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def tensor_sha256(x: torch.Tensor) -> str:
    """sha256 of a float32 tensor's little-endian bytes (row-major)."""
    import numpy as np

    return hashlib.sha256(np.ascontiguousarray(x.detach().cpu().numpy(), dtype="<f4").tobytes()).hexdigest()


class _ExportWrapper(nn.Module):
    """The traced module: scope ``/model/...``; the clip length ``t`` is a plain int, so that no
    shape read from the inputs enters the clip means (:mod:`c3n.export.frame_split`)."""

    def __init__(self, model: OfficialNetwork, t: int, with_cam: bool = False):
        super().__init__()
        self.model = model
        self.t = t
        self.with_cam = with_cam

    def forward(self, frames, audio_in):
        kw = {"return_cam": True} if self.with_cam else {}
        return self.model(frames, audio_in, t=self.t, **kw)


def metadata(model: OfficialNetwork, variant: str, t: int, audio_input: str, audio_labels: list[str],
             frontend: Mapping[str, str], categories_text: str, checkpoint_sha256: str) -> dict[str, str]:
    """The ``metadata_props`` of an imported model (see the module docstring)."""
    from .. import categories
    from ..labels import imagenet_names

    md = {
        "c3n.schema": SCHEMA,
        "c3n.config": variant.split("/")[0],  # schema 3: "c3n" | "avsbench"
        "c3n.decoder_width": "256",
        "c3n.model_version": MODEL_VERSION,
        "c3n.trained": "true",
        "c3n.variant": variant,
        "c3n.clip_frames": str(t),
        "c3n.clip_rate_hz": "1.0",
        "c3n.input_size": "224",
        "c3n.mean": ",".join(str(m) for m in MEAN),
        "c3n.std": ",".join(str(s) for s in STD),
        "c3n.audio_input": audio_input,
        "c3n.labels.imagenet": json.dumps(imagenet_names()),
        "c3n.labels.audioset": json.dumps(list(audio_labels)),
        "c3n.alpha": repr(ALPHA),
        "c3n.categories": categories_text,
        "c3n.categories.sha256": categories.sha256_text(categories_text),
        "c3n.categories.version": str(json.loads(categories_text)["version"]),
        "c3n.checkpoint.sha256": checkpoint_sha256,
    }
    if model.similarity is not None:
        md["c3n.similarity.sha256"] = tensor_sha256(model.similarity)
    md.update(frontend)
    return md


def dummy_inputs(t: int, audio_input: str) -> tuple[torch.Tensor, torch.Tensor]:
    frames = torch.randn(t, 3, 224, 224)
    audio = torch.randn(t, 1, 96, 64) if audio_input == "logmel" else 0.1 * torch.randn(t, 16000)
    return frames, audio


def export(model: OfficialNetwork, t: int, out: Path, md: Mapping[str, str], audio_input: str = "logmel",
           with_cam: bool = False) -> Path:
    """Trace ``model`` at T = ``t`` and write ``out`` (one file, weights inside) with metadata
    ``md`` (:func:`metadata`), the frame split and its segment cuts. ``with_cam`` adds outputs
    ``cam_w1..cam_w4`` [T,C_k] (C3N's CCAM weights) for tests."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    frames, audio = dummy_inputs(t, audio_input)
    in_names = ["frames", "audio_logmel" if audio_input == "logmel" else "audio_waveform"]
    names = list(model.output_names) + ([f"cam_w{k}" for k in range(1, 5)] if with_cam else [])
    wrapper = _ExportWrapper(model, t, with_cam).eval()
    tmp = out.with_suffix(".tmp.onnx")
    # Traced with a symbolic frame axis, so that the graph computes the batch size of its
    # reshapes from its tensors instead of baking T in (the frame split runs the parts at batch
    # 1); the file then declares the static shapes of the contract.
    axes = {n: {0: "T"} for n in in_names + names}
    with torch.no_grad():
        shapes = [tuple(o.shape) for o in wrapper(frames, audio)]
        torch.onnx.export(wrapper, (frames, audio), str(tmp), dynamo=False, opset_version=17,
                          input_names=in_names, output_names=names, do_constant_folding=True,
                          dynamic_axes=axes)
    m = onnx.load(str(tmp))
    in_shapes = [tuple(frames.shape), tuple(audio.shape)]
    for out_vi, shape in zip(list(m.graph.input) + list(m.graph.output), in_shapes + shapes):
        dims = out_vi.type.tensor_type.shape.dim
        del dims[:]
        for n in shape:
            dims.add().dim_value = n
    scopes = model.decoder.frame_split_scopes()
    split = mark_frame_split(m, scopes) if any(tp for tp, _ in scopes) else None
    del m.metadata_props[:]
    for k, v in md.items():
        m.metadata_props.add(key=k, value=v)
    if split is not None:
        m.metadata_props.add(key="c3n.frame_split", value=json.dumps(split))
        add_segment_cuts(m)
    m.producer_name = PRODUCER
    onnx.save(m, str(out))
    del m  # the full-size files are 0.5-0.8 GB: check from the file, not a second copy in memory
    onnx.checker.check_model(str(out))
    tmp.unlink()
    return out


def tpavi_stages_of(sd: Mapping[str, object]) -> list[int]:
    """The 0-based stages with an AVSBench TPAVI block (``tpavi_b<i+1>.*`` keys) in a checkpoint."""
    import re

    found = {int(m.group(1)) - 1 for k in strip_module_prefix(sd) if (m := re.match(r"tpavi_b([1-4])\.", k))}
    return sorted(found)


def load_audio_files(model: OfficialNetwork, audio: str, files: Mapping[str, str | None]) -> None:
    """Load the audio network's own weight files strictly: VGGish (``vggish``, ``vggish_pca``,
    ``audio_head``: :class:`c3n.model.vggish.VGGishAudio`) or PANNs (``panns``)."""
    if audio == "vggish":
        from ..model.vggish import pca_state

        a = model.audio
        strict_load(module_tensors(a.audio_backbone), read_weights(files["vggish"]), str(files["vggish"]))
        strict_load(module_tensors(a.pproc), pca_state(read_weights(files["vggish_pca"])), str(files["vggish_pca"]))
        strict_load(module_tensors(a.classification_model), read_weights(files["audio_head"]),
                    str(files["audio_head"]))
    else:
        from ..model.panns import unwrap_checkpoint

        sd = unwrap_checkpoint(read_weights(files["panns"]))  # the published file: {"model": sd, ...}
        strict_load(module_tensors(model.audio), sd, str(files["panns"]))


def audio_contract(audio: str) -> tuple[str, list[str], dict[str, str], str]:
    """``(c3n.audio_input, the 527 AudioSet names, c3n.frontend.* metadata, categories text)`` of
    an audio network (:mod:`c3n.labels`, :mod:`c3n.model.frontend`, :mod:`c3n.categories`)."""
    from .. import categories, labels
    from ..model import frontend

    names = labels.audioset_527_names()
    if audio == "vggish":
        return "logmel", names, frontend.VGGISH.as_metadata(), categories.asset_text()
    from ..model.panns import SAMPLE_RATE

    return "waveform", names, {"c3n.frontend.sample_rate": str(SAMPLE_RATE)}, categories.asset_text()


def main(argv: list[str] | None = None) -> int:
    """``python -m c3n.import_official`` (issue 24): an official checkpoint -> one ONNX file."""
    import argparse

    from ..model.official import AUDIOS, CODES, VISUALS, build_network, load_similarity_h5

    ap = argparse.ArgumentParser(prog="python -m c3n.import_official",
                                 description="Import a checkpoint of the official C3N code or of the AVSBench "
                                             "baseline into the c3n-edge ONNX contract.")
    ap.add_argument("--code", choices=CODES, required=True)
    ap.add_argument("--visual", choices=VISUALS, required=True)
    ap.add_argument("--audio", choices=AUDIOS, required=True)
    ap.add_argument("--checkpoint", required=True, help="the official *_best.pth (a state_dict)")
    ap.add_argument("--vggish", help="vggish-10086976.pth")
    ap.add_argument("--vggish-pca", help="vggish_pca_params-970ea276.pth")
    ap.add_argument("--audio-head", help="md_50000_iters.pth (the 527-class AudioSet head)")
    ap.add_argument("--panns", help="Cnn14_16k weights (Cnn14_16k_mAP=0.438.pth: its `model` entry, or a state_dict)")
    ap.add_argument("--similarity", help="C3IM's similarity_matrix.h5 [1000,527] (C3N only)")
    ap.add_argument("--tpavi-stages", type=int, nargs="+",
                    help="AVSBench: 0-based TPAVI stages (default: those in the checkpoint)")
    ap.add_argument("--frames", type=int, choices=(1, 5), required=True, help="clip length T of the export")
    ap.add_argument("--out", required=True, help="output .onnx")
    a = ap.parse_args(argv)
    if a.code == "c3n" and a.visual == "resnet50":
        ap.error("--code c3n has no resnet50 variant (pvt_v2_b5 or swin_base)")
    if a.code == "avsbench" and a.visual == "swin_base":
        ap.error("--code avsbench has no swin_base variant (pvt_v2_b5 or resnet50)")
    if a.code == "c3n" and not a.similarity:
        ap.error("--code c3n needs --similarity (the C3IM matrix, .h5 dataset similarity_matrix)")
    if a.code == "avsbench" and a.audio == "panns":
        ap.error("--code avsbench has no panns variant (vggish)")
    if a.code == "avsbench" and a.similarity:
        ap.error("--similarity is for --code c3n (the AVSBench baseline has no C3IM)")
    need = ["vggish", "vggish_pca", "audio_head"] if a.audio == "vggish" else ["panns"]
    if missing := [n for n in need if not getattr(a, n)]:
        ap.error(f"--audio {a.audio} needs " + " ".join("--" + n.replace("_", "-") for n in missing))

    try:
        sd = read_weights(a.checkpoint)
        stages = a.tpavi_stages if a.tpavi_stages is not None else tpavi_stages_of(sd)
        sim = load_similarity_h5(a.similarity) if a.similarity else None
        model = build_network(a.code, a.visual, a.audio, similarity=sim, tpavi_stages=stages)
        strict_load(model.checkpoint_tensors(), sd, a.checkpoint)
        load_audio_files(model, a.audio, vars(a))
    except (CheckpointError, ValueError, OSError, NotImplementedError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    audio_input, names, frontend, cat_text = audio_contract(a.audio)
    variant = f"{a.code}/{a.visual}/{a.audio}"
    md = metadata(model.eval(), variant, a.frames, audio_input, names, frontend, cat_text, file_sha256(a.checkpoint))
    p = export(model, a.frames, Path(a.out), md, audio_input)
    print(f"{p} ({p.stat().st_size / 1e6:.1f} MB, {variant}, T={a.frames})")
    return 0
