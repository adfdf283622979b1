"""The ``in_view`` head (issue 26): shapes, negative-pair batches of a format-2 feature cache, old
checkpoints without the head, and the optional ONNX output against PyTorch."""
from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from c3n.eval.metrics import roc_auc
from c3n.model.backbone import STAGE_CHANNELS
from c3n.model.decoder import Decoder
from c3n.model.inview import InViewHead
from c3n.train import featcache as FC


def test_head_and_deep_map_shapes():
    g = torch.Generator().manual_seed(0)
    dec = Decoder(STAGE_CHANNELS, 32, audio_dim=1024).eval()
    n = 4  # 2 clips of T = 2
    stages = [torch.randn(n, c, s, s, generator=g) for c, s in zip(STAGE_CHANNELS, (56, 28, 14, 7))]
    audio = torch.randn(n, 1024, generator=g)
    with torch.no_grad():
        mask, deep = dec(stages, audio, 2, return_deep=True)
        assert torch.equal(mask, dec(stages, audio, 2))  # the mask path is unchanged
        logit = InViewHead(32, 1024)(deep, audio)
    assert mask.shape == (n, 1, 224, 224) and deep.shape == (n, 32, 7, 7) and logit.shape == (n,)
    assert torch.isfinite(logit).all()


def test_roc_auc():
    assert roc_auc([0.9, 0.8], [0.1, 0.2]) == 1.0
    assert roc_auc([0.1], [0.9]) == 0.0
    assert roc_auc([0.5, 0.5], [0.5]) == 0.5  # ties count half
    assert roc_auc([0.3, 0.7], [0.5]) == 0.5
    assert roc_auc([], [0.1]) is None


def test_pick_partners_keeps_the_partner_off_screen():
    vids = ["a", "b", "c", "d", "e"]
    cats = ["dog", "dog", "cat", "cow", "owl"]
    rows = {"a": {"kind": "onscreen", "sounding": "dog1", "distractors": "cow1"},
            "b": {"kind": "onscreen", "sounding": "dog2", "distractors": ""},
            "c": {"kind": "onscreen", "sounding": "cat1", "distractors": ""},
            "d": {"kind": "onscreen", "sounding": "cow1", "distractors": ""},
            "e": {"kind": "silent", "sounding": "owl1", "distractors": ""}}  # not audible: never a partner
    fam = {"dog1": "dog", "dog2": "dog", "cat1": "cat", "cow1": "cow", "owl1": "owl"}
    p = FC.pick_partners(vids, cats, rows, fam, 3, seed=1)
    assert p.shape == (5, 3) and p.dtype == np.int32
    assert set(p[0]) == {2}  # a: not b (same category), not d (a cow is in its picture), not e (silent)
    assert set(p[1]) <= {2, 3} and set(p[4]) <= {0, 1, 2, 3}
    assert np.array_equal(p, FC.pick_partners(vids, cats, rows, fam, 3, seed=1))  # seeded
    assert (FC.pick_partners(["x"], ["dog"], None, {}, 2, 0) == -1).all()  # nobody to pair with


def _fake_cache(folder, n=3, k=2):
    """A tiny format-2 cache written by hand (random features, clip 0 with a non-empty mask)."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    t = FC.T
    arrays = {name: rng.standard_normal((n, t) + shape).astype(np.float16) for name, shape in FC.STAGES}
    for j, (_, shape) in enumerate(FC.STAGES, 1):
        arrays[f"cam{j}"] = rng.standard_normal((n, t, shape[0])).astype(np.float32)
        arrays[f"neg_cam{j}"] = rng.standard_normal((n, k, t, shape[0])).astype(np.float32)
    arrays["emb"] = rng.standard_normal((n, t, 1024)).astype(np.float32)
    masks = np.zeros((n, t, FC.MASK_BYTES), np.uint8)
    masks[0, :, 100:200] = 255
    arrays.update(masks=masks, valid=np.ones((n, t), np.uint8),
                  neg_index=np.array([[1, 2], [2, 0], [0, 1]][:n], np.int32),
                  neg_label=np.zeros((n, k, t), np.int64), neg_score=np.zeros((n, k, t), np.float32))
    for name, a in arrays.items():
        np.save(folder / f"{name}.npy", a)
    (folder / "meta.json").write_text(json.dumps({
        "format": FC.FORMAT, "subset": "s4", "split": "train", "clips": n, "neg_k": k, "data": str(folder),
        "vids": [f"v{i}" for i in range(n)], "categories": ["a", "b", "c"][:n],
        "kinds": ["onscreen", "offscreen", "onscreen"][:n]}))
    return arrays


def test_negative_batch_and_training_batches(tmp_path):
    from c3n.train.frozen import sample_batch

    arrays = _fake_cache(tmp_path / "s4_train")
    sp = FC.CachedSplit(tmp_path / "s4_train")
    t = FC.T
    pos = sp.batch([0, 1])
    assert pos["in_view"].tolist() == [1.0] * t + [0.0] * t  # target: the GT mask is non-empty
    neg = sp.negative_batch([0, 2], [1, 0])
    assert neg["masks"].shape == (2 * t, 1, 224, 224) and float(neg["masks"].abs().sum()) == 0.0
    assert neg["in_view"].tolist() == [0.0] * (2 * t) and neg["valid"].tolist() == [1.0] * (2 * t)
    # the frames (stages) of the clip, the partner's audio, the CAM weights of the swapped label
    np.testing.assert_array_equal(neg["stages"][3][:t].numpy(), arrays["s4"][0].astype(np.float32))
    np.testing.assert_array_equal(neg["emb"][:t].numpy(), arrays["emb"][2])  # clip 0, partner k=1 -> 2
    np.testing.assert_array_equal(neg["emb"][t:].numpy(), arrays["emb"][0])  # clip 2, k=0 -> 0
    np.testing.assert_array_equal(neg["cams"][1][:t].numpy(), arrays["neg_cam2"][0, 1])
    owners, local = np.zeros(3, int), np.arange(3)
    w = np.full(3, 1 / 3)
    rng = np.random.default_rng(0)
    all_neg = sample_batch([sp], owners, local, w, w, 2, 1.0, rng)
    assert all_neg["in_view"].sum() == 0 and float(all_neg["masks"].sum()) == 0.0
    none = sample_batch([sp], owners, local, w, w, 3, 0.0, rng)
    assert none["emb"].shape[0] == 3 * t and float(none["in_view"].sum()) == t  # every clip once, clip 0 on screen
    half = [sample_batch([sp], owners, local, w, w, 2, 0.5, rng)["emb"].shape[0] for _ in range(3)]
    assert half == [2 * t] * 3


@pytest.fixture(scope="module")
def pretrained():
    try:
        from c3n import packages

        packages.mobilenet_v2_weights()
    except Exception as e:  # offline without the cache
        pytest.skip(f"weights not available: {e}")


def test_old_checkpoint_loads_without_head_and_strict_otherwise(pretrained, tmp_path):
    from c3n.model.build import build_model

    with_head = build_model("edge", seed=3, in_view=True)
    plain = build_model("edge", seed=3)
    assert plain.in_view is None
    # the head is created after the decoder: a seeded decoder is the same with or without it
    for k, v in plain.decoder.state_dict().items():
        assert torch.equal(v, with_head.decoder.state_dict()[k]), k
    dec = {k: v for k, v in plain.state_dict().items() if k.startswith("decoder.")}
    old = tmp_path / "old.pt"
    torch.save({"model": dec, "config": "edge", "use_ccam": True, "frozen_backbone": True}, old)
    assert build_model("edge", checkpoint=str(old)).in_view is None
    new = tmp_path / "new.pt"
    state = {k: v for k, v in with_head.state_dict().items() if k.startswith(("decoder.", "in_view."))}
    torch.save({"model": state, "config": "edge", "use_ccam": True, "frozen_backbone": True}, new)
    loaded = build_model("edge", checkpoint=str(new))
    assert loaded.in_view is not None
    assert torch.equal(loaded.in_view.fc2.weight, with_head.in_view.fc2.weight)
    bad = tmp_path / "bad.pt"
    torch.save({"model": {**state, "in_view.extra": torch.zeros(1)}, "config": "edge", "frozen_backbone": True}, bad)
    with pytest.raises(ValueError, match="does not match"):
        build_model("edge", checkpoint=str(bad))
    partial = tmp_path / "partial.pt"
    torch.save({"model": {k: v for k, v in state.items() if k != "in_view.fc2.bias"}, "config": "edge",
                "frozen_backbone": True}, partial)
    with pytest.raises(ValueError, match="does not match"):
        build_model("edge", checkpoint=str(partial))


def test_export_appends_in_view_equal_to_pytorch(pretrained, tmp_path):
    from c3n.export.exporter import OUTPUT_NAMES, export, metadata, output_names
    from c3n.export.frame_split import frame_split_parts
    from c3n.model.build import build_model

    plain = build_model("edge", seed=3)
    assert output_names(plain) == OUTPUT_NAMES and "c3n.in_view" not in metadata(plain, 2, False)
    model = build_model("edge", seed=3, in_view=True)
    torch.nn.init.normal_(model.in_view.fc2.weight, std=0.5)  # a head whose output varies
    path = export(model, 2, tmp_path / "iv-t2.onnx", trained=False)
    m = onnx.load(str(path))
    md = {p.key: p.value for p in m.metadata_props}
    assert md["c3n.in_view"] == "1"
    names = [o.name for o in m.graph.output]
    assert names == OUTPUT_NAMES + ["in_view"]
    dims = [d.dim_value for d in m.graph.output[-1].type.tensor_type.shape.dim]
    assert dims == [2] and m.graph.output[-1].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(4)
    frames = rng.standard_normal((2, 3, 224, 224), dtype=np.float32)
    logmel = rng.standard_normal((2, 1, 96, 64), dtype=np.float32) - 4
    got = sess.run(None, {"frames": frames, "audio_logmel": logmel})
    with torch.no_grad():
        ref = model(torch.from_numpy(frames), torch.from_numpy(logmel), t=2, region_outputs=True)
    assert len(ref) == len(names)
    assert np.abs(got[-1] - ref[-1].numpy()).max() <= 1e-4
    assert ((got[-1] > 0) & (got[-1] < 1)).all()
    # the frame split carries the audio embedding to the head; its parts give the same in_view
    before, after, split = frame_split_parts(m)
    assert "split/in_view_audio" in split["carry"]
    assert [o.name for o in after.graph.output] == ["mask_logits", "in_view"]
    sa = ort.InferenceSession(before.SerializeToString(), providers=["CPUExecutionProvider"])
    sb = ort.InferenceSession(after.SerializeToString(), providers=["CPUExecutionProvider"])
    a_names = [o.name for o in sa.get_outputs()]
    per = [dict(zip(a_names, sa.run(None, {"frames": frames[i:i + 1], "audio_logmel": logmel[i:i + 1]})))
           for i in range(2)]
    clip = {c["clip"]: np.mean([p[c["frame"]] for p in per], axis=0) for c in split["clip_means"]}
    iv = np.concatenate([sb.run(["in_view"], {**clip, **{c: per[i][c] for c in split["carry"]}})[0]
                         for i in range(2)])
    assert np.abs(iv - got[-1]).max() <= 1e-4
