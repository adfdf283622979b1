"""CCAM's generic Grad-CAM route (:mod:`c3n.model.camgrad`) and the official-layout backbones
(:mod:`c3n.model.pvt_v2`, :mod:`c3n.model.swin`, :mod:`c3n.model.resnet`), issue 24.

CI runs test-sized random-weight backbones. The full-size checks (PVT-v2-b5, Swin-B, ResNet-50)
run only with ``C3N_SLOW_TESTS=1``.
"""
from __future__ import annotations

import hashlib
import os

import numpy as np
import pytest
import torch

from c3n.model import camgrad
from c3n.model.backbone import MobileNetV2Backbone
from c3n.model.pvt_v2 import PVTv2Backbone
from c3n.model.resnet import ResNet50Backbone
from c3n.model.swin import SwinBackbone

SLOW = os.environ.get("C3N_SLOW_TESTS") == "1"
SLOW_MSG = ("SKIPPED full-size PVT-v2-b5 / Swin-B / ResNet-50 check (minutes, GBs of RAM): "
            "set C3N_SLOW_TESTS=1 to run it")


def _tiny(name: str) -> tuple[torch.nn.Module, int]:
    """(test-sized random backbone, input size)."""
    torch.manual_seed(0)
    if name == "mobilenet_v2":
        return MobileNetV2Backbone(), 64
    if name == "pvt_v2":
        return PVTv2Backbone(embed_dims=(8, 16, 24, 32), num_heads=(1, 2, 3, 4), depths=(1, 2, 1, 1)), 64
    if name == "swin":  # 112: stage 4 is 4x4, padded to the 7x7 window
        return SwinBackbone(embed_dim=8, depths=(2, 2, 2, 2), num_heads=(1, 2, 2, 4)), 112
    if name == "resnet":
        return ResNet50Backbone(widths=(4, 8, 8, 16), depths=(1, 2, 1, 1), stem=8, num_classes=1000), 64
    raise ValueError(name)


def _randomise(m: torch.nn.Module) -> torch.nn.Module:
    """Non-trivial norms and BN statistics, so that their backward terms matter."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for n, t in m.named_parameters():
            if n.endswith("bias") or "norm" in n or ".bn" in n or n.startswith("bn"):
                t.copy_(1.0 * (n.endswith("weight")) + 0.2 * torch.randn(t.shape, generator=g))
        for n, t in m.named_buffers():
            if n.endswith("running_var"):
                t.copy_(0.5 + torch.rand(t.shape, generator=g))
            elif n.endswith("running_mean"):
                t.copy_(0.1 * torch.randn(t.shape, generator=g))
    return m.eval()


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / a.abs().max().clamp_min(1e-30))


@pytest.mark.parametrize("name", ["mobilenet_v2", "pvt_v2", "swin", "resnet"])
def test_generic_route_matches_autograd(name):
    bb, size = _tiny(name)
    bb = _randomise(bb)
    frames = torch.randn(2, 3, size, size)
    label = torch.tensor([3, 998])
    ref = camgrad.cam_weights_reference(bb, frames, label)
    with torch.no_grad():
        stages, logits = bb(frames)[:2]
        st2, lg2, state = camgrad.forward_for_cam(bb, frames)
        got = camgrad.cam_weights_from(bb, state, label)
    assert [tuple(w.shape) for w in got] == [(2, c) for c in (bb.stage_channels if hasattr(bb, "stage_channels")
                                                              else (24, 32, 96, 1280))]
    for a, b in zip(ref, got):
        assert _rel(a, b) < 1e-4
    for a, b in zip(stages + [logits], st2 + [lg2]):
        assert torch.equal(a, b)
    if name != "pvt_v2":
        return
    # per frame: the weights of frame 1 do not depend on frame 0
    solo = camgrad.cam_weights(bb, frames[1:], label[1:])
    for a, b in zip(got, solo):
        assert _rel(a[1:], b) < 1e-4


def test_onnx_export_runs_in_onnxruntime(tmp_path):
    """The route exports as forward ops (TorchScript exporter, opset 17) and ORT matches autograd."""
    import onnx
    import onnxruntime as ort

    bb, size = _tiny("swin")
    bb = _randomise(bb)

    class Wrap(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bb = bb
            self.cam_backward = camgrad.CamBackward()

        def forward(self, frames, label):
            stages, logits, state = camgrad.forward_for_cam(self.bb, frames)
            return (logits, *self.cam_backward(self.bb, state, label))

    frames = torch.randn(2, 3, size, size)
    label = torch.tensor([7, 421])
    path = tmp_path / "swin_cam.onnx"
    with torch.no_grad():
        torch.onnx.export(Wrap().eval(), (frames, label), str(path), dynamo=False, opset_version=17,
                          input_names=["frames", "label"], output_names=["logits", "w1", "w2", "w3", "w4"],
                          do_constant_folding=True)
    m = onnx.load(str(path))
    assert {n.domain for n in m.graph.node} <= {""}, "standard ONNX domain only"
    ops = {n.op_type for n in m.graph.node}
    assert not ops & {"Gradient", "ScatterND", "ScatterElements"}
    scoped = [n for n in m.graph.node if n.name.startswith("/cam_backward/")]
    assert len(scoped) > len(m.graph.node) // 4, "the backward keeps its own ONNX scope"
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    other = torch.randn(2, 3, size, size)  # not the traced input: nothing input-dependent is baked in
    other_label = torch.tensor([512, 0])
    outs = sess.run(None, {"frames": other.numpy(), "label": other_label.numpy()})
    ref = camgrad.cam_weights_reference(bb, other, other_label)
    assert _rel(bb(other)[1].detach(), torch.from_numpy(outs[0])) < 1e-4
    for a, b in zip(ref, outs[1:]):
        assert _rel(a, torch.from_numpy(np.asarray(b))) < 1e-4
    # no frame count baked in (the runtime's frame split runs the graph one frame at a time)
    for vi in list(m.graph.input) + list(m.graph.output):
        vi.type.tensor_type.shape.dim[0].dim_param = "N"
    del m.graph.value_info[:]
    sess1 = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    outs1 = sess1.run(None, {"frames": other[1:].numpy(), "label": other_label[1:].numpy()})
    for a, b in zip(outs, outs1):
        assert _rel(torch.from_numpy(np.asarray(a)[1:]), torch.from_numpy(np.asarray(b))) < 1e-4


# sha256 of the sorted "key shape" lines of the full-size state_dicts: the key names and shapes of
# the official networks (C3N pvt_v2_b5 / swin_base_patch4_window7_224 with head, AVSBench
# B2_ResNet), checked against the official code with random weights (issue 24 report).
FULL_KEYS = {
    "pvt_v2_b5": (1054, "0421de462af5f2eaa476a86d7fc7560d10d8aeadb5cc16d5e2855bbe9effadc4"),
    "pvt_v2_b5_avsbench": (1052, "e5ec559cb543f01910da8a310e0fc90af8e967dbbe1947a8196c22703a7834e0"),
    "swin_base": (359, "719aae5fa2664b13e03e68c94d980d2a4baeebeb7fc641c8f0f664cfbb1469b5"),
    "resnet50": (492, "8f07d9e34fbeeed97ef428638064b449c284f52225bd951e4bb1577bef3cc7f8"),
}


def _full(name: str) -> torch.nn.Module:
    with torch.device("meta"):
        if name == "pvt_v2_b5":
            return PVTv2Backbone()
        if name == "pvt_v2_b5_avsbench":
            return PVTv2Backbone(num_classes=0)
        if name == "swin_base":
            return SwinBackbone()
        return ResNet50Backbone()


def _key_digest(sd: dict) -> tuple[int, str]:
    lines = sorted(f"{k} {tuple(v.shape)}" for k, v in sd.items())
    return len(lines), hashlib.sha256("\n".join(lines).encode()).hexdigest()


@pytest.mark.parametrize("name", sorted(FULL_KEYS))
def test_full_size_key_names(name):
    n, digest = FULL_KEYS[name]
    assert _key_digest(_full(name).state_dict()) == (n, digest)


@pytest.mark.parametrize("name", ["pvt_v2", "swin", "resnet"])
def test_strict_load(name):
    bb, _ = _tiny(name)
    sd = bb.state_dict()
    fresh, _ = _tiny(name)
    fresh.load_state_dict(sd, strict=True)
    missing = dict(sd)
    missing.pop(next(iter(missing)))
    with pytest.raises(RuntimeError, match="Missing key"):
        fresh.load_state_dict(missing, strict=True)
    extra = dict(sd)
    extra["head.extra"] = torch.zeros(1)
    with pytest.raises(RuntimeError, match="Unexpected key"):
        fresh.load_state_dict(extra, strict=True)


def test_key_names():
    pvt = PVTv2Backbone(embed_dims=(8, 16, 24, 32), num_heads=(1, 2, 3, 4), depths=(1, 1, 1, 1)).state_dict()
    for k in ("patch_embed1.proj.weight", "patch_embed4.norm.bias", "block1.0.attn.sr.weight",
              "block1.0.attn.norm.weight", "block3.0.mlp.dwconv.dwconv.weight", "norm4.weight", "head.bias"):
        assert k in pvt
    assert "block4.0.attn.sr.weight" not in pvt  # sr ratio 1 at stage 4
    headless = PVTv2Backbone(embed_dims=(8, 16, 24, 32), num_heads=(1, 2, 3, 4), depths=(1, 1, 1, 1), num_classes=0)
    assert set(pvt) - set(headless.state_dict()) == {"head.weight", "head.bias"}
    swin = SwinBackbone(embed_dim=8, depths=(2, 2, 2, 2), num_heads=(1, 2, 2, 4)).state_dict()
    for k in ("patch_embed.proj.weight", "patch_embed.norm.weight", "layers.0.blocks.1.attn.relative_position_index",
              "layers.3.blocks.1.attn.relative_position_bias_table", "layers.2.downsample.reduction.weight",
              "norm0.weight", "norm3.bias", "head.weight"):
        assert k in swin
    assert "layers.3.downsample.norm.weight" not in swin
    res = ResNet50Backbone(widths=(4, 8, 8, 16), depths=(1, 1, 1, 1), stem=8).state_dict()
    for k in ("conv1.weight", "bn1.num_batches_tracked", "layer1.0.downsample.0.weight", "layer3_1.0.bn3.running_var",
              "layer3_2.0.conv2.weight", "layer4_2.0.downsample.1.weight"):
        assert k in res
    assert not any(k.startswith("fc.") for k in res)


@pytest.mark.skipif(not SLOW, reason=SLOW_MSG)
@pytest.mark.parametrize("name", ["pvt_v2_b5", "swin_base", "resnet50"])
def test_full_size_route_matches_autograd(name):
    torch.manual_seed(0)
    bb = {"pvt_v2_b5": PVTv2Backbone, "swin_base": SwinBackbone,
          "resnet50": lambda: ResNet50Backbone(num_classes=1000)}[name]().eval()
    frames = torch.randn(1, 3, 224, 224)
    label = torch.tensor([281])
    ref = camgrad.cam_weights_reference(bb, frames, label)
    got = camgrad.cam_weights(bb, frames, label)
    for a, b in zip(ref, got):
        assert _rel(a, b) < 1e-4


@pytest.mark.parametrize("cin,cout,k,s,p,groups,size", [
    (4, 6, 3, 2, 1, 1, 8), (6, 6, 3, 2, 1, 6, 8), (4, 8, 1, 2, 0, 1, 8), (3, 5, 7, 4, 3, 1, 16),
    (4, 4, 8, 8, 0, 1, 16), (4, 6, 3, 2, 1, 2, 12), (3, 4, 5, 2, 2, 1, 10)])
def test_strided_input_grad(cin, cout, k, s, p, groups, size):
    """The per-phase forward convolutions equal autograd's input gradient (ResNet 1x1/2, PVT 7x7/4
    and r x r/r, MobileNetV2 depthwise 3x3/2, grouped)."""
    conv = torch.nn.Conv2d(cin, cout, k, s, p, groups=groups, bias=False)
    x = torch.randn(2, cin, size, size, requires_grad=True)
    y = conv(x)
    go = torch.randn_like(y)
    ref, = torch.autograd.grad(y, x, go)
    got = camgrad._strided_input_grad(go, conv.weight.detach(), (s, s), (p, p), groups, [size, size])
    assert _rel(ref, got) < 1e-5
