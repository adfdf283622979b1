"""Frozen-backbone training path: the feature cache (c3n.train.featcache) reproduces the full model,
the decoder-only trainer (c3n.train.frozen) runs, resumes and writes checkpoints that export, and
the label-agreement map (c3n.eval.labelstats) names real ImageNet classes."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from c3n.data import composites as C, stamps as S
from c3n.train.featcache import CachedSplit


@pytest.fixture(autouse=True)
def _build_in_tmp(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("C3N_BUILD", str(tmp_path_factory.getbasetemp() / "build"))


@pytest.fixture(scope="module")
def small_cache(tmp_path_factory):
    try:
        from c3n import packages

        packages.tuxpaint_stamps_dir()
        packages.mobilenet_v2_weights()
    except Exception as e:  # offline without the cache
        pytest.skip(f"media / weights not available: {e}")
    from c3n.train import featcache

    root = tmp_path_factory.mktemp("frozen")
    data = root / "data"
    assert C.main([str(data), "--small", "--backgrounds", "skimage", "--workers", "1"]) == 0
    torch.set_num_threads(1)
    assert featcache.main([str(data), "--out", str(root / "cache"), "--splits", "train", "val",
                           "--max-clips", "s4_train=3"]) == 0
    return data, root / "cache"


def test_cache_reproduces_the_full_model(small_cache):
    from c3n.data.avsbench import AvsClipDataset
    from c3n.model.build import build_model
    from c3n.train.frozen import decode

    data, cache = small_cache
    model = build_model("edge", seed=5).eval()  # pretrained backbone, seeded decoder
    ds = AvsClipDataset(data, "s4", "val")
    sp = CachedSplit(cache / "s4_val")
    assert len(sp) == len(ds) and sp.meta["vids"] == [c.vid for c in ds.clips]
    for i in range(len(ds)):
        it = ds[i]
        with torch.no_grad():
            mask, _, _, label, score, *cams = model(it["frames"], it["audio_logmel"], t=5, return_cam=True)
            b = sp.batch([i])
            got = decode(model, b, use_ccam=True)
        assert np.array_equal(sp.a["label"][i], label.numpy())
        np.testing.assert_allclose(sp.a["score"][i], score.numpy(), rtol=1e-6)
        for k in range(4):  # Grad-CAM channel weights: the same modules, float32: exact
            np.testing.assert_array_equal(b["cams"][k].numpy(), cams[k].numpy())
        # stage maps are stored as float16: the mask logits differ by the rounding only
        assert float((got - mask).abs().max()) < 2e-2 * max(1.0, float(mask.abs().max()))
        gt = torch.stack([torch.from_numpy(np.asarray(Image.open(p).convert("L")) > 0)
                          for p in ds.clips[i].mask_paths if p is not None]).float()
        assert torch.equal(b["masks"][:, 0], gt) and b["valid"].tolist() == [1.0] * 5
    # S4 train: all five masks are cached (the loader reads only the first)
    tr = CachedSplit(cache / "s4_train")
    assert len(tr) == 3 and tr.a["valid"][:].min() == 1


def test_ccam_from_weights_equals_ccam():
    from c3n.model.network import ccam
    from c3n.train.frozen import ccam_from_weights

    g = torch.Generator().manual_seed(0)
    stage = torch.randn(3, 8, 5, 5, generator=g)
    grad = torch.randn(3, 8, 5, 5, generator=g)
    torch.testing.assert_close(ccam_from_weights(stage, grad.mean(dim=(2, 3))), ccam(stage, grad))


def test_train_frozen_runs_resumes_and_exports(small_cache, tmp_path):
    from c3n.model.build import build_model
    from c3n.train import frozen

    _, cache = small_cache
    out = tmp_path / "run"
    args = [str(cache), "--out", str(out), "--batch-clips", "2", "--eval-every", "2", "--threads", "1"]
    assert frozen.main(args + ["--max-steps", "2"]) == 0
    h = json.loads((out / "history.json").read_text())
    assert [r["step"] for r in h] == [2] and 0.0 <= h[0]["s4_miou"] <= 1.0
    before = torch.load(out / "last.pt", weights_only=False)["model"]
    assert frozen.main(args + ["--max-steps", "4", "--resume"]) == 0
    # oversampling the empty-mask clips (off-screen / silent) runs too
    other = [str(cache), "--out", str(tmp_path / "run-empty"), "--batch-clips", "2", "--eval-every", "2",
             "--threads", "1", "--max-steps", "2", "--empty-weight", "3"]
    assert frozen.main(other) == 0
    h = json.loads((out / "history.json").read_text())
    assert [r["step"] for r in h] == [2, 4]
    after = torch.load(out / "last.pt", weights_only=False)["model"]
    assert all(k.startswith("decoder.") for k in after)  # the decoder only
    assert any(not torch.equal(before[k], after[k]) for k in before)  # it trained on
    # the checkpoint is a full C3N state: pretrained backbone untouched, decoder trained
    model = build_model("edge", checkpoint=str(out / "best.pt"))
    ref = build_model("edge", seed=0)
    for k, v in ref.backbone.state_dict().items():
        assert torch.equal(v, model.backbone.state_dict()[k]), k
    # c3n.train.eval_cached re-scores best.pt exactly as the trainer scored it at that step
    from c3n.train import eval_cached

    rows = eval_cached.score(out / "best.pt", [CachedSplit(cache / "s4_val"), CachedSplit(cache / "ms3_val")])
    rec = next(r for r in h if r["step"] == rows[str(cache / "s4_val")]["step"])
    assert rows[str(cache / "s4_val")]["miou"] == pytest.approx(rec["s4_miou"], abs=1e-6)
    assert rows[str(cache / "ms3_val")]["false_alarm"] == pytest.approx(rec["ms3_false_alarm"], abs=1e-6)
    assert eval_cached.group_name(out.parent / "abl-c3n-s12" / "best.pt") == "abl-c3n"
    # the gate: a limit above any level silences every frame (no false region can remain), a limit
    # below digital zero's -200 dBFS with no classes silences none
    from c3n.eval.evaluate import SilenceGate

    val = [CachedSplit(cache / "s4_val"), CachedSplit(cache / "ms3_val")]
    every = {sp.folder: eval_cached.gate_frames(sp, SilenceGate(10.0, ())) for sp in val}
    none = {sp.folder: eval_cached.gate_frames(sp, SilenceGate(-500.0, ())) for sp in val}
    assert all(v.all() for v in every.values()) and not any(v.any() for v in none.values())
    gated = eval_cached.score(out / "best.pt", val, every)
    assert all(r["false_alarm"] == 0.0 and r["false_alarm_clips"] == [] for r in gated.values())
    ungated = eval_cached.score(out / "best.pt", val, none)
    assert ungated[str(cache / "s4_val")]["miou"] == pytest.approx(rec["s4_miou"], abs=1e-6)
    kinds = ungated[str(cache / "s4_val")]["false_alarm_by_kind"]  # composites: clips.csv kinds
    assert sum(n for k, (_, n) in kinds.items() if k != "swapped") == ungated[str(cache / "s4_val")]["empty_clips"]
    assert kinds["swapped"][1] == ungated[str(cache / "s4_val")]["swapped_clips"]  # format 2 (issue 26)
    with pytest.raises(ValueError, match="frozen-backbone"):
        bad = tmp_path / "full.pt"
        torch.save({"model": {}, "config": "edge"}, bad)
        eval_cached.score(bad, [])


def test_train_frozen_with_negatives_and_in_view(small_cache, tmp_path):
    """Issue 26: swapped audio-visual pairs from the format-2 cache and the in_view head train,
    resume, and validate with the in_view ROC AUCs; the checkpoint rebuilds with the head."""
    from c3n.model.build import build_model
    from c3n.train import eval_cached, frozen

    _, cache = small_cache
    sp = CachedSplit(cache / "s4_val")
    assert sp.neg_k == 2 and sp.a["neg_index"].shape == (len(sp), 2) and (sp.a["neg_index"][:] >= 0).all()
    assert sp.a["neg_cam4"].shape == (len(sp), 2, 5, 1280)
    kinds = sp.kinds()
    for i, row in enumerate(sp.a["neg_index"][:]):  # partners: on screen, of another category
        assert all(kinds[j] == "onscreen" and sp.meta["categories"][j] != sp.meta["categories"][i] for j in row)
    out = tmp_path / "iv"
    args = [str(cache), "--out", str(out), "--batch-clips", "2", "--eval-every", "2", "--threads", "1",
            "--neg-share", "0.5", "--inview-weight", "0.5"]
    assert frozen.main(args + ["--max-steps", "2"]) == 0
    assert frozen.main(args + ["--max-steps", "4", "--resume"]) == 0
    h = json.loads((out / "history.json").read_text())
    assert [r["step"] for r in h] == [2, 4]
    assert 0.0 <= h[-1]["s4_inview_auc"] <= 1.0 and h[-1]["s4_swapped_clips"] == len(sp)
    ck = torch.load(out / "last.pt", weights_only=False)["model"]
    assert any(k.startswith("in_view.") for k in ck)
    assert build_model("edge", checkpoint=str(out / "best.pt")).in_view is not None
    row = eval_cached.score(out / "best.pt", [sp])[str(cache / "s4_val")]
    rec = next(r for r in h if r["step"] == row["step"])
    assert row["inview_auc"] == pytest.approx(rec["s4_inview_auc"], abs=1e-6)


def test_stamp_imagenet_map_names_real_classes():
    from c3n.eval.labelstats import load_map
    from c3n.labels import imagenet_names

    m = load_map(imagenet_names())
    assert m["violin"] == {imagenet_names().index("violin")}
    assert len(m["dog"]) == 118 and m["ghost"] == set()
    try:
        from c3n import packages

        inv = S.scan_stamps(packages.tuxpaint_stamps_dir())
    except Exception as e:
        pytest.skip(f"tuxpaint media not available: {e}")
    sounding = {s.name for s in inv.stamps if s.role == "sound"}
    assert sounding <= set(m), sorted(sounding - set(m))  # every sounding category is mapped (maybe to [])
