"""C3N model tests: C3IM, CCAM's written-out backward, factorised TPAVI, ONNX export parity."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from PIL import Image

from c3n import packages
from c3n.export.exporter import OUTPUT_NAMES, export
from c3n.model.backbone import MobileNetV2Backbone
from c3n.model.build import build_model
from c3n.model.decoder import RCU, TPAVI
from c3n.model.network import c3im, c3im_reference

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def stamp_frame(rel: str, bg=(128, 128, 128)) -> torch.Tensor:
    """A tuxpaint cut-out composited over a flat background, normalised [3,224,224]."""
    im = Image.open(packages.tuxpaint_stamps_dir() / rel).convert("RGBA")
    canvas = Image.new("RGBA", im.size, bg + (255,))
    canvas.alpha_composite(im)
    arr = np.asarray(canvas.convert("RGB").resize((224, 224), Image.BILINEAR), dtype=np.float32) / 255.0
    return torch.from_numpy(((arr - MEAN) / STD).transpose(2, 0, 1).copy())


# ---------------------------------------------------------------- C3IM

def test_c3im_hand_built_picks_visual_row_of_max_product():
    # 3 visual classes, 2 audio classes. Logits chosen so that softmax^0.1 is easy to reason about:
    # equal visual logits -> v uniform; audio strongly class 1.
    visual = torch.zeros(1, 3)
    audio = torch.tensor([[0.0, 20.0]])
    s = torch.tensor([[0.9, 0.1],   # row 0: similar to audio class 0 only
                      [0.2, 0.5],   # row 1: moderately similar to audio class 1
                      [0.1, 0.3]])
    label, score = c3im(visual, audio, s)
    # a[1] >> a[0] even after ^0.1 (e^2 ratio): row 1 wins via S[1,1] * a[1]
    assert label.tolist() == [1]
    ref_label, ref_score = c3im_reference(visual, audio, s)
    assert ref_label.tolist() == [1]
    assert torch.allclose(score, ref_score)


def test_c3im_ties_take_first_row_and_visual_prior_matters():
    s = torch.tensor([[0.5, 0.5], [0.5, 0.5], [0.5, 0.5]])
    label, _ = c3im(torch.zeros(1, 3), torch.zeros(1, 2), s)
    assert label.tolist() == [0]  # exact tie everywhere: first occurrence
    # identical S rows: the visual distribution decides
    label, _ = c3im(torch.tensor([[0.0, 0.0, 3.0]]), torch.zeros(1, 2), s)
    assert label.tolist() == [2]
    # tie between rows 1 and 2 only
    s2 = torch.tensor([[0.1, 0.1], [0.4, 0.2], [0.2, 0.4]])
    label, _ = c3im(torch.zeros(1, 3), torch.zeros(1, 2), s2)
    assert label.tolist() == [1]


def test_c3im_matches_literal_form_on_random_inputs():
    g = torch.Generator().manual_seed(1)
    v, a = torch.randn(6, 1000, generator=g) * 4, torch.randn(6, 521, generator=g) * 4
    s = torch.rand(1000, 521, generator=g) * 2 - 1
    l1, s1 = c3im(v, a, s)
    l2, s2 = c3im_reference(v, a, s)
    assert torch.equal(l1, l2)
    assert torch.allclose(s1, s2, rtol=1e-5)


# ---------------------------------------------------------------- CCAM backward

@pytest.fixture(scope="module")
def backbone():
    return MobileNetV2Backbone(str(packages.mobilenet_v2_weights())).eval()


def _autograd_cam(bb, x, label):
    stages, logits, _ = bb(x, record=False)
    grads = torch.autograd.grad(logits.gather(1, label[:, None]).sum(), stages)
    return [g.mean(dim=(2, 3)) for g in grads]


@pytest.mark.parametrize("kind", ["random", "real"])
def test_written_out_backward_equals_autograd(backbone, kind):
    if kind == "random":
        x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(3))
    else:
        x = torch.stack([stamp_frame("hobbies/music/string/violin.png"), stamp_frame("animals/mammals/dogs/dog.png")])
    stages, logits, tapes = backbone(x)
    label = logits.argmax(dim=1)
    with torch.no_grad():
        mine = [g.mean(dim=(2, 3)) for g in backbone.cam_gradients(stages, tapes, label)]
    ref = _autograd_cam(backbone, x, label)
    for m, r in zip(mine, ref):
        rel = (m - r).abs().max() / r.abs().max()
        assert rel <= 1e-4, rel


# ---------------------------------------------------------------- TPAVI, RCU

def test_factorised_tpavi_equals_thw_by_thw_reference():
    torch.manual_seed(0)
    tp = TPAVI(d=16, audio_dim=24)
    torch.nn.init.normal_(tp.bn.weight)  # non-zero so the attention branch matters
    torch.nn.init.normal_(tp.bn.bias)
    tp.eval()
    x = torch.randn(2 * 3, 16, 5, 4)  # B=2 clips, T=3
    audio = torch.randn(6, 24)
    fast = tp(x, audio, t=3)
    ref = tp.tpavi_reference(x, audio, t=3)
    assert fast.shape == x.shape
    assert torch.allclose(fast, ref, atol=1e-5), (fast - ref).abs().max()
    # and the attention branch really contributes
    tp.bn.weight.data.zero_()
    tp.bn.bias.data.zero_()
    assert not torch.allclose(tp(x, audio, t=3), fast, atol=1e-3)


def test_per_frame_tpavi_equals_5d_factorised_form():
    """The frame-by-frame TPAVI (issue 16: K as the clip mean of per-frame shares) equals the
    previous export's 5-D form, in eval and in training mode (BatchNorm statistics)."""
    torch.manual_seed(1)
    tp = TPAVI(d=16, audio_dim=24)
    torch.nn.init.normal_(tp.bn.weight)
    torch.nn.init.normal_(tp.bn.bias)
    x = torch.randn(2 * 4, 16, 6, 5)
    audio = torch.randn(8, 24)
    for mode in (False, True):
        tp.train(mode)
        ref = tp.tpavi_factorised_5d(x, audio, t=4)
        assert torch.allclose(tp(x, audio, t=4), ref, atol=1e-5), mode
    # the clips do not mix: changing clip 2 leaves clip 1's output alone
    tp.eval()
    x2 = x.clone()
    x2[4:] += 1
    assert torch.equal(tp(x2, audio, t=4)[:4], tp(x, audio, t=4)[:4])


def test_upsampling_without_resize_equals_interpolate():
    """Issue 16: the decoder's x2 bilinear upsamplings written without ``Resize`` (matrix products
    for align_corners=True, slices for align_corners=False) equal ``F.interpolate``."""
    import torch.nn.functional as F

    from c3n.model.decoder import upsample2x_align_corners, upsample2x_half_pixel

    torch.manual_seed(2)
    for h, w in ((1, 1), (1, 3), (5, 9), (7, 7), (56, 56)):
        x = torch.randn(2, 3, h, w) * 4
        ref_ac = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=True)
        ref_hp = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
        assert (upsample2x_align_corners(x) - ref_ac).abs().max() <= 4e-6, (h, w)
        assert (upsample2x_half_pixel(x) - ref_hp).abs().max() <= 4e-6, (h, w)


def test_relu6_mask_is_the_open_interval():
    """CCAM's ReLU6 mask ``sign(y (6 - y))`` is exactly ``0 < pre < 6``, at the ends and for
    subnormal pre-activations too."""
    from c3n.model.backbone import _relu6_backward

    pre = torch.tensor([-1.0, -0.0, 0.0, 1.4e-45, 1e-30, 1e-7, 3.0, 6.0 - 4.8e-7, 6.0, 6.5, 1e30])
    g = torch.ones_like(pre)
    want = ((pre > 0) & (pre < 6)).float()
    assert torch.equal(_relu6_backward(pre)(g), want)


def test_rcu_residual_adds_relu_of_input():
    rcu = RCU(4)
    for p in rcu.parameters():
        torch.nn.init.zeros_(p)
    x = torch.randn(1, 4, 3, 3)
    assert torch.equal(rcu(x), torch.relu(x))  # the in-place ReLU of the reference


# ---------------------------------------------------------------- ONNX export

@pytest.fixture(scope="module")
def edge_model():
    return build_model("edge")


@pytest.fixture(scope="module")
def real_inputs():
    from c3n.audio_io import load_audio_16k
    from c3n.model.frontend import clip_patches

    stamps = packages.tuxpaint_stamps_dir()
    frames = torch.stack([stamp_frame("hobbies/music/string/violin.png"),
                          stamp_frame("animals/mammals/dogs/dog.png", (40, 120, 40))])
    wave = load_audio_16k(stamps / "hobbies/music/string/violin.ogg")
    logmel = torch.from_numpy(clip_patches(wave, 2, 1.0))
    return frames, logmel


def _f64_floor(backbone, frames, label, ref32):
    """Per-stage relative max difference between float32 and float64 autograd CAM weights.

    Grad-CAM through ReLU6 is discontinuous where a pre-activation sits on 0 or 6, so float32
    rounding alone flips a few mask bits in the early stages; this is the reference's own noise.
    """
    import copy

    bb64 = copy.deepcopy(backbone).double()
    ref64 = _autograd_cam(bb64, frames.double(), label)
    return [float((r32.double() - r64).abs().max() / r64.abs().max()) for r32, r64 in zip(ref32, ref64)]


def test_onnx_export_matches_eager_and_autograd(edge_model, real_inputs, tmp_path):
    path = export(edge_model, 2, tmp_path / "c3n-edge-t2.onnx", trained=False, with_cam=True)
    m = onnx.load(str(path))
    assert m.opset_import[0].version >= 17
    assert all(op.domain in ("", "ai.onnx") for op in m.opset_import)
    md = {p.key: p.value for p in m.metadata_props}
    assert md["c3n.trained"] == "false" and md["c3n.clip_frames"] == "2" and md["c3n.config"] == "edge"
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    # for the CAM comparison: no graph fusions, so ORT's forward rounds like PyTorch's
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    plain = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    rnd = (torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(5)),
           torch.randn(2, 1, 96, 64, generator=torch.Generator().manual_seed(6)) - 4)
    for kind, (frames, logmel) in (("real", real_inputs), ("random", rnd)):
        feed = {"frames": frames.numpy(), "audio_logmel": logmel.numpy()}
        got = sess.run(None, feed)
        with torch.no_grad():
            ref = edge_model(frames, logmel, t=2)
        assert np.abs(got[0] - ref[0].numpy()).max() <= 1e-3
        assert np.array_equal(got[3], ref[3].numpy())
        assert got[3].dtype == np.int64
        assert np.allclose(got[4], ref[4].numpy(), rtol=1e-4)
        # region outputs (issue 15): the class-activation map pools back to the frame's logits, and
        # C3IM's argmax over softmax(logits)^alpha * affinity is the frame's unified label
        names = [o.name for o in sess.get_outputs()]
        assert names[:len(OUTPUT_NAMES)] == OUTPUT_NAMES
        lmap, aff = got[names.index("visual_logit_map")], got[names.index("c3im_affinity")]
        assert lmap.shape == (2, 1000, 7, 7) and aff.shape == (2, 1000)
        assert np.abs(lmap.mean(axis=(2, 3)) - got[1]).max() <= 1e-4
        with torch.no_grad():
            eager = edge_model(frames, logmel, t=2, region_outputs=True)
        assert np.abs(lmap - eager[5].numpy()).max() <= 1e-3
        assert np.allclose(aff, eager[6].numpy(), rtol=1e-5, atol=1e-7)
        v = torch.softmax(torch.from_numpy(got[1]).double(), 1) ** 0.1
        row = v * torch.from_numpy(aff).double()
        assert np.array_equal(row.argmax(1).numpy(), got[3])
        assert np.allclose(row.max(1).values.numpy(), got[4], rtol=1e-5)
        # CAM channel weights from the exported graph vs PyTorch autograd
        cams = plain.run([f"cam_w{k}" for k in range(1, 5)], feed)
        label = torch.from_numpy(got[3])
        auto = _autograd_cam(edge_model.backbone, frames, label)
        floor = _f64_floor(edge_model.backbone, frames, label, auto)
        for k in range(4):
            rel = np.abs(cams[k] - auto[k].numpy()).max() / np.abs(auto[k].numpy()).max()
            print(f"{kind} stage {k + 1}: ONNX vs autograd {rel:.2e}, autograd f32 vs f64 {floor[k]:.2e}")
            assert rel <= max(1e-4, 2 * floor[k]), (kind, k + 1, rel, floor[k])


def test_frame_split_parts_equal_whole_graph(edge_model, tmp_path):
    """The export marks the per-frame split (issue 16): running its two parts one frame at a time
    at batch 1, with the clip means taken outside, gives the whole T = 3 graph's outputs."""
    from c3n.export.frame_split import frame_split_parts

    path = export(edge_model, 3, tmp_path / "c3n-edge-t3.onnx", trained=False)
    m = onnx.load(str(path))
    before, after, split = frame_split_parts(m)
    assert len(split["clip_means"]) == 4 and len(split["carry"]) == 4
    assert [o.name for o in after.graph.output] == ["mask_logits"]
    whole = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    sa = ort.InferenceSession(before.SerializeToString(), providers=["CPUExecutionProvider"])
    sb = ort.InferenceSession(after.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(3)
    frames = rng.standard_normal((3, 3, 224, 224), dtype=np.float32)
    logmel = rng.standard_normal((3, 1, 96, 64), dtype=np.float32) - 4
    ref = dict(zip([o.name for o in whole.get_outputs()], whole.run(None, {"frames": frames, "audio_logmel": logmel})))
    a_names = [o.name for o in sa.get_outputs()]
    per = [dict(zip(a_names, sa.run(None, {"frames": frames[i:i + 1], "audio_logmel": logmel[i:i + 1]})))
           for i in range(3)]
    clip = {c["clip"]: np.mean([p[c["frame"]] for p in per], axis=0) for c in split["clip_means"]}
    masks = np.concatenate([sb.run(None, {**clip, **{c: per[i][c] for c in split["carry"]}})[0] for i in range(3)])
    # batch 1 vs batch 3 kernels round differently (measured 1.6e-5 on a 0.8 scale)
    assert np.abs(masks - ref["mask_logits"]).max() <= 1e-4
    for name in OUTPUT_NAMES[1:]:
        got = np.concatenate([p[name] for p in per])
        if got.dtype == np.int64:
            assert np.array_equal(got, ref[name]), name
        else:
            assert np.abs(got - ref[name]).max() <= 1e-4 * max(1.0, np.abs(ref[name]).max()), name
    # a frame's k share really differs between frames (the mean is not vacuous)
    k0 = split["clip_means"][0]["frame"]
    assert np.abs(per[0][k0] - per[1][k0]).max() > 1e-6


def test_autograd_forward_matches_written_out(edge_model, real_inputs):
    """The research-code form timed by ``c3n.export.bench_torch`` (CCAM by autograd) computes the same
    mask and labels as the exported form (written-out backward)."""
    from c3n.export.bench_torch import forward_autograd

    frames, logmel = real_inputs
    with torch.no_grad():
        ref = edge_model(frames, logmel, t=2)
    mask, label = forward_autograd(edge_model, frames, logmel, 2)
    assert torch.equal(label, ref[3])
    assert (mask - ref[0]).abs().max() <= 1e-3
    assert (mask - ref[0]).abs().max() < 0.01 * ref[0].abs().max()  # not a vacuous bound


def test_aspp_broadcast_pool_equals_concat_form():
    from c3n.model.decoder import ASPP

    torch.manual_seed(0)
    aspp = ASPP(8, 6).eval()
    # 7x9: rates 12 and 18 collapse to their centre tap (issue 16), 6 does not; 5x5: all three
    # collapse; 20x20: none does
    for h, w in ((7, 9), (5, 5), (20, 20)):
        x = torch.randn(2, 8, h, w)
        pooled = aspp.pool(x.mean(dim=(2, 3), keepdim=True)).expand(-1, -1, h, w)
        cat = torch.cat([pooled, aspp.b0(x)] + [c(x) for c in aspp.atrous], dim=1)
        assert torch.allclose(aspp(x), aspp.project(cat), atol=1e-5), (h, w)
