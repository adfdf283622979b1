"""Import of official checkpoints (issue 24): strict loading, the official decoders against a
reference written from docs/c3n-method.md §8, and a reduced-size import -> ONNX -> onnxruntime.

Reduced sizes: stand-in backbone and audio network (the real ones are tested in their own files),
decoder width 32 instead of 256; random weights."""
from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from c3n import categories
from c3n.export.frame_split import frame_split_parts
from c3n.export.official import (
    CheckpointError,
    export,
    metadata,
    read_weights,
    strict_load,
    tpavi_stages_of,
)
from c3n.model.decoder import research_form
from c3n.model.official import OfficialNetwork, load_similarity_h5
from c3n.model.official_decoder import AVSBenchDecoder, C3NDecoder

CH = (8, 16, 24, 32)
SIZES = (56, 28, 14, 7)
D = 32


class TinyBackbone(nn.Module):
    """Backbone interface of c3n.model.official with four independent stages (stage k = 1x1 conv of
    the frames average-pooled to 56/28/14/7) and an ImageNet-style head on the concatenated
    spatial means, so that d logit / d stage has a closed form (:func:`tiny_cam_weights`)."""

    stage_channels = CH

    def __init__(self, head: bool = True):
        super().__init__()
        self.proj = nn.ModuleList(nn.Conv2d(3, c, 1) for c in CH)
        self.head = nn.Linear(sum(CH), 1000) if head else None

    def forward(self, frames):
        stages = [p(F.adaptive_avg_pool2d(frames, s)) for p, s in zip(self.proj, SIZES)]
        if self.head is None:
            return stages, None
        return stages, self.head(torch.cat([s.mean(dim=(2, 3)) for s in stages], dim=1))

    def logit_map(self, stage4):
        # the head at each stage-4 cell with the other stages' means fixed is not defined here;
        # any [N,1000,7,7] map whose mean is the logits will do for the contract
        m = self.head.weight[:, -CH[3]:] @ stage4.flatten(2) + self.head.bias[None, :, None]
        return m.reshape(-1, 1000, *stage4.shape[2:])


def tiny_cam_weights(backbone: TinyBackbone, frames, label):
    """Spatial mean of d logit[n,label[n]] / d stage_k: the head's row slice for stage k divided
    by H_k W_k (the stage is mean-pooled), for each frame's label."""
    w = backbone.head.weight[label]  # [N, sum CH]
    out, o = [], 0
    for c, s in zip(CH, SIZES):
        out.append(w[:, o:o + c] / (s * s))
        o += c
    return out


class TinyAudio(nn.Module):
    """Audio interface: log-mel [N,1,96,64] -> (feature [N,128], logits [N,527])."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Linear(96 * 64, 128)
        self.cls = nn.Linear(128, 527)

    def forward(self, x):
        e = torch.relu(self.emb(x.flatten(1)))
        return e, self.cls(e)


def randomise(m: nn.Module, seed: int = 0) -> nn.Module:
    """Random parameters, with the TPAVI BatchNorms (initialised to zero) and their running
    statistics made non-trivial so that every branch counts."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in m.state_dict(keep_vars=True).items():
            if not t.dtype.is_floating_point:
                continue
            if name.endswith("running_var"):
                t.copy_(0.5 + torch.rand(t.shape, generator=g))
            elif name.endswith(("running_mean", "bias")) or t.dim() == 1:
                t.copy_(0.1 * torch.randn(t.shape, generator=g))
            else:
                fan_in = max(1, t[0].numel())
                t.copy_(torch.randn(t.shape, generator=g) / fan_in ** 0.5)
    return m.eval()


# ---- a reference written from docs/c3n-method.md §8, on the official state-dict keys ----

def _conv(sd, k, x, **kw):
    return F.conv2d(x, sd[k + ".weight"], sd[k + ".bias"], **kw)


def ref_aspp(sd, p, x):
    pooled = _conv(sd, p + ".conv", x.mean(dim=(2, 3), keepdim=True))
    br = [F.interpolate(pooled, size=x.shape[2:], mode="bilinear"), _conv(sd, p + ".atrous_block1", x)]
    br += [_conv(sd, f"{p}.atrous_block{r}", x, padding=r, dilation=r) for r in (6, 12, 18)]
    return _conv(sd, p + ".conv_1x1_output", torch.cat(br, dim=1))


def ref_classifier(sd, p, x):
    return sum(_conv(sd, f"{p}.conv2d_list.{i}", x, padding=r, dilation=r) for i, r in enumerate((3, 6, 12, 18)))


def ref_tpavi(sd, p, x, audio, t):
    """The THW x THW form: x [B*T,d,H,W] -> [B*T,d,H,W]."""
    bt, d, h, w = x.shape
    b = bt // t
    x5 = x.reshape(b, t, d, h, w).permute(0, 2, 1, 3, 4)
    a = F.linear(audio.reshape(b, t, -1), sd[p + ".align_channel.weight"], sd[p + ".align_channel.bias"])
    a5 = a.permute(0, 2, 1)[:, :, :, None, None].expand(b, d, t, h, w)

    def c3(k, y):
        return F.conv3d(y, sd[k + ".weight"], sd[k + ".bias"])

    g = c3(p + ".g", x5).flatten(2).transpose(1, 2)  # [B,THW,k]
    th = c3(p + ".theta", x5).flatten(2).transpose(1, 2)
    ph = c3(p + ".phi", a5).flatten(2)  # [B,k,THW]
    f = th @ ph / ph.shape[-1]
    y = (f @ g).transpose(1, 2).reshape(b, -1, t, h, w)
    wz = F.batch_norm(c3(p + ".W_z.0", y), sd[p + ".W_z.1.running_mean"], sd[p + ".W_z.1.running_var"],
                      sd[p + ".W_z.1.weight"], sd[p + ".W_z.1.bias"], False, 0.0, 1e-5)
    z = (wz + x5).permute(0, 2, 3, 4, 1)
    z = F.layer_norm(z, (d,), sd[p + ".norm_layer.weight"], sd[p + ".norm_layer.bias"], 1e-5)
    return z.permute(0, 1, 4, 2, 3).reshape(bt, d, h, w)


def ref_rcu(sd, p, x):
    r = F.relu(x)  # the reference's in-place ReLU: the residual is ReLU(x)
    return _conv(sd, p + ".conv2", F.relu(_conv(sd, p + ".conv1", r, padding=1)), padding=1) + r


def ref_decoder(sd, stages, audio, t, proj, tpavi_prefix, tpavi_stages):
    f = []
    for i, s in enumerate(stages):
        x = proj(sd, f"conv{i + 1}", s)
        if i in tpavi_stages:
            x = ref_tpavi(sd, f"{tpavi_prefix}{i + 1}", x, audio, t)
        f.append(x)
    x = None
    for k in (4, 3, 2, 1):
        x = f[k - 1] if x is None else x + ref_rcu(sd, f"path{k}.resConfUnit1", f[k - 1])
        x = F.interpolate(ref_rcu(sd, f"path{k}.resConfUnit2", x), scale_factor=2, mode="bilinear",
                          align_corners=True)
    x = F.interpolate(_conv(sd, "output_conv.0", x, padding=1), scale_factor=2, mode="bilinear",
                      align_corners=False)
    return _conv(sd, "output_conv.4", F.relu(_conv(sd, "output_conv.2", x, padding=1)))


def _stage_inputs(n=5, seed=1, sizes=(16, 8, 4, 2)):
    """Stage maps smaller than the real 56/28/14/7 (the reference's THW x THW matrix stays small);
    these sizes still have ASPP / Classifier_Module branches of both kinds (3x3 and centre tap)."""
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(n, c, s, s, generator=g) for c, s in zip(CH, sizes)], torch.randn(n, 128, generator=g)


C3N_KEYS = {"conv1.conv.weight", "conv4.atrous_block18.bias", "conv2.conv_1x1_output.weight",
            "tpavi_3.align_channel.weight", "tpavi_1.norm_layer.bias", "tpavi_4.W_z.0.weight",
            "tpavi_4.W_z.1.running_var", "tpavi_2.theta.weight", "tpavi_2.phi.bias", "tpavi_2.g.weight",
            "path1.resConfUnit1.conv1.weight", "path4.resConfUnit2.conv2.bias", "output_conv.0.weight",
            "output_conv.2.bias", "output_conv.4.weight"}


def assert_outputs_close(names, ref, got, rel: float) -> None:
    """onnxruntime's outputs `got` against PyTorch's `ref` (tensors), by output name: the unified
    label exactly, CCAM's weights (`cam_w*`) within 1e-4 of their largest magnitude, the rest
    within `rel` of theirs."""
    for name, r, o in zip(names, ref, got):
        r = r.numpy()
        if name == "unified_label":
            assert np.array_equal(r, o), name
        elif name.startswith("cam_w"):
            assert np.abs(r - o).max() <= 1e-4 * np.abs(r).max(), name
        else:
            assert np.abs(r - o).max() <= rel * max(1e-6, np.abs(r).max()), name

def test_official_decoders_have_the_official_keys():
    keys = set(C3NDecoder(CH, d=D).state_dict())
    assert C3N_KEYS <= keys
    assert not any(k.startswith(("aspp", "head", "tpavi.")) for k in keys)
    avs = set(AVSBenchDecoder(CH, tpavi_stages=(0, 2), d=D).state_dict())
    assert {"conv1.conv2d_list.3.weight", "tpavi_b1.W_z.1.weight", "tpavi_b3.phi.weight"} <= avs
    assert not any(k.startswith(("tpavi_b2", "tpavi_b4")) for k in avs)
    assert tpavi_stages_of({f"module.{k}": 0 for k in avs}) == [0, 2]


@pytest.mark.parametrize("research", [False, True])
def test_c3n_decoder_equals_reference(research):
    dec = randomise(C3NDecoder(CH, d=D))
    stages, audio = _stage_inputs()
    sd = dec.state_dict()
    with torch.no_grad():
        ref = ref_decoder(sd, stages, audio, 5, ref_aspp, "tpavi_", range(4))
        if research:
            with research_form():
                ours = dec(stages, audio, 5)
        else:
            ours = dec(stages, audio, 5)
    assert ours.shape == (5, 1, 64, 64)
    assert (ours - ref).abs().max() <= 1e-5 * ref.abs().max()


@pytest.mark.parametrize("tpavi_stages", [(0, 1, 2, 3), (1, 3)])
def test_avsbench_decoder_equals_reference(tpavi_stages):
    dec = randomise(AVSBenchDecoder(CH, tpavi_stages, d=D))
    stages, audio = _stage_inputs(10)  # two clips of 5
    with torch.no_grad():
        ref = ref_decoder(dec.state_dict(), stages, audio, 5, ref_classifier, "tpavi_b", tpavi_stages)
        ours = dec(stages, audio, 5)
    assert (ours - ref).abs().max() <= 1e-5 * ref.abs().max()


# ---- strict loading ----

def _tiny_network(code="c3n", tpavi_stages=(0, 1, 2, 3), seed=0):
    torch.manual_seed(seed)
    bb = TinyBackbone(head=code == "c3n")
    dec = C3NDecoder(CH, d=D) if code == "c3n" else AVSBenchDecoder(CH, tpavi_stages, d=D)
    sim = torch.rand(1000, 527, generator=torch.Generator().manual_seed(seed)) if code == "c3n" else None
    net = OfficialNetwork(code, bb, TinyAudio(), dec, "encoder_backbone", sim, cam_weights=tiny_cam_weights)
    return randomise(net, seed)


def _official_sd(net):
    return {k: v.detach().clone() for k, v in net.checkpoint_tensors().items()}


def test_strict_load_accepts_module_prefix_and_copies(tmp_path):
    src, dst = _tiny_network(seed=0), _tiny_network(seed=1)
    path = tmp_path / "ckpt.pth"
    torch.save({f"module.{k}": v for k, v in _official_sd(src).items()}, path)
    strict_load(dst.checkpoint_tensors(), read_weights(path), str(path))
    for k, v in _official_sd(src).items():
        assert torch.equal(dst.checkpoint_tensors()[k], v), k
    assert "encoder_backbone.head.weight" in _official_sd(src)


def test_strict_load_names_missing_unexpected_and_mismatched_keys():
    net = _tiny_network()
    sd = _official_sd(net)
    before = net.decoder.conv1.conv.weight.detach().clone()
    del sd["tpavi_2.W_z.1.running_mean"]
    sd["tpavi_5.g.weight"] = torch.zeros(3, 4)
    sd["conv1.conv.weight"] = torch.zeros(D, 9, 1, 1)
    with pytest.raises(CheckpointError) as e:
        strict_load(net.checkpoint_tensors(), sd, "ckpt.pth")
    msg = str(e.value)
    assert "ckpt.pth: 3 problem(s)" in msg
    assert f"missing key tpavi_2.W_z.1.running_mean (model shape [{D}])" in msg
    assert "unexpected key tpavi_5.g.weight (checkpoint shape [3, 4])" in msg
    assert f"shape mismatch at conv1.conv.weight: checkpoint [{D}, 9, 1, 1], model [{D}, {CH[0]}, 1, 1]" in msg
    assert torch.equal(net.decoder.conv1.conv.weight, before)  # nothing copied


def test_read_weights_refuses_pickled_code(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"w": torch.zeros(1), "f": print}, path)
    with pytest.raises(Exception, match="(?i)weights.only|unsupported|global"):
        read_weights(path)


def test_similarity_h5_is_read_and_checked(tmp_path):
    h5py = pytest.importorskip("h5py")
    s = np.random.default_rng(0).random((1000, 527), dtype=np.float32)
    with h5py.File(tmp_path / "sim.h5", "w") as f:
        f["similarity_matrix"] = s
    assert np.array_equal(load_similarity_h5(str(tmp_path / "sim.h5")).numpy(), s)
    with h5py.File(tmp_path / "bad.h5", "w") as f:
        f["similarity_matrix"] = s[:, :521]
    with pytest.raises(ValueError, match=r"\[1000, 521\], expected \[1000, 527\]"):
        load_similarity_h5(str(tmp_path / "bad.h5"))


# ---- import -> ONNX -> onnxruntime ----

def _md(net, variant, t):
    names = [f"class {i}" for i in range(527)]
    fe = {"c3n.frontend.log_offset": "0.01"}
    return metadata(net, variant, t, "logmel", names, fe, categories.asset_text(), "0" * 64)


@pytest.mark.parametrize("code,tpavi_stages,t", [("c3n", (0, 1, 2, 3), 5), ("avsbench", (0, 2), 5),
                                                 ("avsbench", (1, 2, 3), 1)])
def test_import_export_onnxruntime_equals_pytorch(tmp_path, code, tpavi_stages, t):
    src = _tiny_network(code, tpavi_stages, seed=3)
    path = tmp_path / "ckpt.pth"
    torch.save(_official_sd(src), path)
    net = _tiny_network(code, tpavi_stages, seed=4)
    strict_load(net.checkpoint_tensors(), read_weights(path), str(path))
    net.audio.load_state_dict(src.audio.state_dict())
    net.similarity = src.similarity  # the user's S (c3n), read from an .h5 by the command
    out = export(net, t, tmp_path / "m.onnx", _md(net, f"{code}/tiny/vggish", t), with_cam=code == "c3n")
    g = torch.Generator().manual_seed(7)
    frames, logmel = torch.randn(t, 3, 224, 224, generator=g), torch.randn(t, 1, 96, 64, generator=g)
    with torch.no_grad():
        ref = src(frames, logmel, t=t, **({"return_cam": True} if code == "c3n" else {}))
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"frames": frames.numpy(), "audio_logmel": logmel.numpy()})
    names = [o.name for o in sess.get_outputs()]
    assert names[:len(src.output_names)] == src.output_names
    assert_outputs_close(names, ref, got, rel=1e-3)
    m = onnx.load(str(out))
    md = {p.key: p.value for p in m.metadata_props}
    assert md["c3n.schema"] == "3" and md["c3n.variant"] == f"{code}/tiny/vggish" and md["c3n.config"] == code
    assert ("c3n.similarity.sha256" in md) == (code == "c3n")
    split = json.loads(md["c3n.frame_split"])
    assert len(split["clip_means"]) == len(tpavi_stages) and len(split["carry"]) == 4
    # the frame split: per frame, clip mean, per frame again == the whole graph
    before, after, _ = frame_split_parts(m)
    s1 = ort.InferenceSession(before.SerializeToString(), providers=["CPUExecutionProvider"])
    s2 = ort.InferenceSession(after.SerializeToString(), providers=["CPUExecutionProvider"])
    frame_names = [c["frame"] for c in split["clip_means"]]
    per = [dict(zip([o.name for o in s1.get_outputs()],
                    s1.run(None, {"frames": frames[i:i + 1].numpy(), "audio_logmel": logmel[i:i + 1].numpy()})))
           for i in range(t)]
    clip = {c["clip"]: np.mean([p[c["frame"]] for p in per], axis=0) for c in split["clip_means"]}
    assert frame_names
    mask = [s2.run(["mask_logits"], {**clip, **{x: per[i][x] for x in split["carry"]}})[0] for i in range(t)]
    whole = got[0]
    assert np.abs(np.concatenate(mask) - whole).max() <= 1e-4 * np.abs(whole).max()


@pytest.mark.parametrize("args,msg", [
    (["--code", "c3n", "--visual", "resnet50"], "no resnet50 variant"),
    (["--code", "avsbench", "--visual", "swin_base"], "no swin_base variant"),
    (["--code", "c3n", "--visual", "pvt_v2_b5"], "needs --similarity"),
    (["--code", "avsbench", "--visual", "pvt_v2_b5", "--similarity", "s.h5"], "--similarity is for --code c3n"),
    (["--code", "avsbench", "--visual", "resnet50", "--vggish", "v.pth"], "needs --vggish-pca --audio-head"),
])
def test_import_command_refuses_inconsistent_arguments(args, msg, capsys):
    from c3n.export.official import main

    with pytest.raises(SystemExit) as e:
        main(args + ["--audio", "vggish", "--checkpoint", "c.pth", "--frames", "5", "--out", "o.onnx"])
    assert e.value.code == 2
    assert msg in capsys.readouterr().err


def test_import_command_reports_an_unreadable_checkpoint(tmp_path, capsys):
    from c3n.export.official import main

    bad = tmp_path / "ckpt.pth"
    torch.save([1, 2, 3], bad)
    args = ["--code", "avsbench", "--visual", "resnet50", "--audio", "vggish", "--checkpoint", str(bad),
            "--vggish", "v", "--vggish-pca", "p", "--audio-head", "h", "--frames", "5",
            "--out", str(tmp_path / "o.onnx")]
    assert main(args) == 2
    assert f"{bad}: not a state_dict" in capsys.readouterr().err
    assert not (tmp_path / "o.onnx").exists()


def test_c3n_with_a_reduced_pvt_and_camgrad_exports_and_matches_autograd(tmp_path):
    """The C3N network on a reduced-size PVT-v2 (c3n.model.pvt_v2) with CCAM from
    c3n.model.camgrad (one forward, replayed backward): CCAM weights vs autograd, ONNX vs PyTorch."""
    from c3n.model.camgrad import cam_weights_reference
    from c3n.model.pvt_v2 import PVTv2Backbone

    torch.manual_seed(5)
    bb = PVTv2Backbone(embed_dims=CH, num_heads=(1, 1, 1, 2), mlp_ratios=(2, 2, 2, 2), depths=(1, 1, 1, 1),
                       sr_ratios=(8, 4, 2, 1))
    sim = torch.rand(1000, 527, generator=torch.Generator().manual_seed(5))
    net = randomise(OfficialNetwork("c3n", bb, TinyAudio(), C3NDecoder(CH, d=D), "encoder_backbone", sim), 5)
    t = 2
    g = torch.Generator().manual_seed(8)
    frames, logmel = torch.randn(t, 3, 224, 224, generator=g), torch.randn(t, 1, 96, 64, generator=g)
    with torch.no_grad():
        ref = net(frames, logmel, t=t, return_cam=True)
    label = ref[3]
    auto = cam_weights_reference(bb, frames, label)
    for k, (a, b) in enumerate(zip(ref[7:], auto)):
        assert (a - b).abs().max() <= 1e-4 * b.abs().max(), f"stage {k + 1}"
    out = export(net, t, tmp_path / "pvt.onnx", _md(net, "c3n/pvt_tiny/vggish", t), with_cam=True)
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"frames": frames.numpy(), "audio_logmel": logmel.numpy()})
    assert np.array_equal(got[3], label.numpy())
    assert np.abs(got[0] - ref[0].numpy()).max() <= 1e-3 * np.abs(ref[0].numpy()).max()
    for a, b in zip(got[7:], ref[7:]):
        assert np.abs(a - b.numpy()).max() <= 1e-4 * np.abs(b.numpy()).max()
