"""AVSBench loaders (c3n.data.avsbench) and the AVS-Composites generator (c3n.data.composites)."""
from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

from c3n.data import backgrounds as B, composites as C, scene, stamps as S
from c3n.data.avsbench import AvsClipDataset, list_clips, load_mask

# ------------------------------------------------------------------ helpers


@pytest.fixture(autouse=True)
def _build_in_tmp(tmp_path_factory, monkeypatch):
    # log-mel cache of the loaders goes to a temporary build dir, not models/build
    monkeypatch.setenv("C3N_BUILD", str(tmp_path_factory.getbasetemp() / "build"))


def _media_or_skip():
    try:
        from c3n import packages

        return packages.tuxpaint_stamps_dir(), B.skimage_data_dir()
    except Exception as e:  # offline without the cache
        pytest.skip(f"tuxpaint / scikit-image media not available: {e}")


def _tree_digest(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _read_csv(p: Path) -> list[dict]:
    with open(p, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    _media_or_skip()
    out = tmp_path_factory.mktemp("avsc") / "small"
    assert C.main([str(out), "--small", "--backgrounds", "skimage", "--workers", "1"]) == 0
    return out


# ------------------------------------------------------------------ generator


def test_generator_is_deterministic(small, tmp_path):
    # same seed -> same bytes, whatever the number of worker processes
    other = tmp_path / "again"
    assert C.main([str(other), "--small", "--backgrounds", "skimage", "--workers", "2"]) == 0
    a, b = _tree_digest(small), _tree_digest(other)
    assert a == b
    assert len(a) > 100


def test_generator_layout_is_avsbench(small):
    s4 = small / "Single-source"
    ms3 = small / "Multi-sources"
    meta = list(csv.reader(open(s4 / "s4_meta_data.csv")))
    assert meta[0][2:4] == ["category", "split"]
    counts = {sp: sum(1 for r in meta[1:] if r[3] == sp) for sp in S.SPLITS}
    assert counts == {sp: C.SMALL_COUNTS[("s4", sp)] for sp in S.SPLITS}
    for r in meta[1:]:
        vid, cat, sp = r[0], r[2], r[3]
        d = s4 / "s4_data"
        assert (d / "audio_wav" / sp / cat / f"{vid}.wav").exists()
        for i in range(1, 6):
            assert (d / "visual_frames" / sp / cat / vid / f"{vid}_{i}.png").exists()
            assert (d / "gt_masks" / sp / cat / vid / f"{vid}_{i}.png").exists()  # train too (v2)
    for r in list(csv.reader(open(ms3 / "ms3_meta_data.csv")))[1:]:
        vid, sp = r[0], r[1]
        d = ms3 / "ms3_data"
        frames = sorted(p.name for p in (d / "visual_frames" / vid).iterdir())
        assert frames == [f"{vid}.mp4_{i}.png" for i in range(1, 6)]
        assert len(list((d / "gt_masks" / sp / vid).iterdir())) == 5
        wav, sr = sf.read(d / "audio_wav" / sp / f"{vid}.wav", dtype="int16")
        assert sr == 16000 and wav.shape == (80000,)
        m = Image.open(d / "gt_masks" / sp / vid / f"{vid}_1.png")
        assert m.mode == "L" and set(np.unique(np.asarray(m))) <= {0, 255}
    assert (small / "objects.csv").exists() and "GPL" in (small / "README.txt").read_text()


def test_loaders_read_generated_small(small):
    ds = AvsClipDataset(small, "s4", "train")
    assert len(ds) == C.SMALL_COUNTS[("s4", "train")]
    it = ds[0]
    assert it["frames"].shape == (5, 3, 224, 224) and it["frames"].dtype == torch.float32
    assert it["audio_logmel"].shape == (5, 1, 96, 64) and it["audio_logmel"].dtype == torch.float32
    assert it["masks"].shape == (5, 1, 224, 224)
    assert it["mask_valid"].tolist() == [1, 0, 0, 0, 0]
    assert it["subset"] == "s4" and it["vid"].startswith("s4_train_")
    assert float(it["masks"][1:].abs().sum()) == 0.0
    te = AvsClipDataset(small, "s4", "test")[0]
    assert te["mask_valid"].tolist() == [1, 1, 1, 1, 1]
    ms = AvsClipDataset(small / "Multi-sources", "ms3", "val")
    assert len(ms) == C.SMALL_COUNTS[("ms3", "val")]
    assert ms[0]["mask_valid"].tolist() == [1, 1, 1, 1, 1]
    assert ms.clips[0].frame_paths[0].name == f"{ms.clips[0].vid}.mp4_1.png"
    # log-mel equals the project front end on the wav, and is cached
    from c3n.audio_io import load_audio_16k
    from c3n.model.frontend import clip_patches

    ref = clip_patches(load_audio_16k(ds.clips[0].wav_path), 5, 1.0)
    np.testing.assert_allclose(it["audio_logmel"].numpy(), ref, atol=1e-6)


def test_empty_mask_clips_exist_and_match_recipe(small):
    rows = _read_csv(small / "clips.csv")
    off = [r for r in rows if r["sounding_visible"] == "0"]
    assert {r["subset"] for r in off} == {"s4", "ms3"}
    for subset in ("s4", "ms3"):
        for sp in S.SPLITS:
            ds = AvsClipDataset(small, subset, sp)
            rec = {r["vid"]: r for r in rows if r["subset"] == subset and r["split"] == sp}
            for c in ds.clips:
                m = torch.stack([load_mask(p, subset) for p in c.mask_paths if p is not None])
                if rec[c.vid]["sounding_visible"] == "0":
                    assert float(m.sum()) == 0.0
                else:
                    assert float(m.sum()) > 0.0


def test_clip_kinds_have_their_audio_levels(small):
    # onscreen / offscreen: -40..-14 dBFS; silent: zero or <= -75 dBFS; noise floor: -65..-42 dBFS
    rows = _read_csv(small / "clips.csv")
    assert {r["kind"] for r in rows} >= {"onscreen", "offscreen", "silent"}
    for r in rows:
        sub = "Single-source/s4_data" if r["subset"] == "s4" else "Multi-sources/ms3_data"
        wav = next((small / sub / "audio_wav").rglob(f"{r['vid']}.wav"))
        x = sf.read(wav, dtype="float64")[0]
        db = 20 * np.log10(np.sqrt(np.mean(x ** 2)) + 1e-12)
        if r["kind"] == "silent":
            assert db <= -74.0, (r["vid"], db)
        elif r["kind"] == "noise":
            assert -66.0 <= db <= -41.0, (r["vid"], db)
        else:
            assert -41.0 <= db <= -13.0, (r["vid"], db)
        assert (r["kind"] == "onscreen") == (r["sounding_visible"] == "1")


def test_audio_kinds_levels_unit():
    from c3n.data import mixing

    rng = np.random.default_rng(0)
    rec = np.sin(np.arange(8000) / 5.0).astype(np.float32) * 0.1
    for _ in range(20):
        wav, snr, level = mixing.mix_audio([rec], rng)
        x = wav / 32767.0
        assert wav.shape == (80000,) and 5 <= snr <= 25
        assert abs(20 * np.log10(np.sqrt(np.mean(x ** 2))) - level) < 0.2
        nf, lv = mixing.noise_floor(rng)
        assert -65 <= lv <= -42 and abs(20 * np.log10(np.sqrt(np.mean((nf / 32767.0) ** 2))) - lv) < 1.0
        si, lv = mixing.silence(rng)
        rms_db = 20 * np.log10(np.sqrt(np.mean((si / 32767.0) ** 2)) + 1e-20)
        assert (lv == -np.inf) == (not si.any()) and (lv == -np.inf or (rms_db <= -74 and abs(rms_db - lv) < 1.5))


def test_camera_is_deterministic_and_keeps_shape():
    from c3n.data import camera

    img = (np.arange(224 * 224 * 3) % 251).astype(np.uint8).reshape(224, 224, 3)
    for seed in range(10):
        cam = camera.draw(np.random.default_rng(seed))
        a = camera.apply(cam, img, np.random.default_rng(99))
        b = camera.apply(cam, img, np.random.default_rng(99))
        assert a.shape == img.shape and a.dtype == np.uint8 and np.array_equal(a, b)
        assert 0.55 <= cam.gain <= 1.5 and cam.jpeg_quality in range(0, 91)


def test_background_packages_split_and_hold_out():
    try:
        bgs = B.load_backgrounds(("skimage", "plasma", "opencv"))
        shift = B.load_backgrounds(B.SHIFT_SOURCES)
    except Exception as e:  # offline without the cache
        pytest.skip(f"background packages not available: {e}")
    assert len(bgs) >= 50 and len(shift) >= 20
    splits = {b.name: B.split_of(b) for b in bgs}
    assert set(splits.values()) == {"train", "val", "test"}
    assert {B.split_of(b) for b in shift} == {"shift"}
    assert not ({b.name for b in bgs} & {b.name for b in shift})
    for b in bgs[:5] + shift[:5]:
        im = B.load_image(b.path)
        assert im.ndim == 3 and min(im.shape[:2]) >= B.MIN_SIDE and min(im.shape[:2]) <= B.MAX_SIDE


def test_split_by_object_instance_is_disjoint(small):
    objs = _read_csv(small / "objects.csv")
    split_of = {o["stamp"]: o["split"] for o in objs}
    fam = {}
    for o in objs:
        if o["split"] != "all":
            fam.setdefault(o["family"], set()).add(o["split"])
    assert all(len(v) == 1 for v in fam.values()), "a family spans several splits"
    sounding = {sp: {o["stamp"] for o in objs if o["role"] == "sound" and o["split"] == sp} for sp in S.SPLITS}
    assert all(len(sounding[sp]) > 0 for sp in S.SPLITS)
    assert not (sounding["train"] & sounding["test"]) and not (sounding["train"] & sounding["val"])
    # each split has some animals and some non-animals
    for sp in S.SPLITS:
        tops = {s.split("/")[0] for s in sounding[sp]}
        assert "animals" in tops and len(tops) >= 2
    assert {o["stamp"] for o in objs if o["split"] == "all"} == {
        "animals/mammals/giraffe", "animals/lizards/iguana", "animals/birds/nandou", "animals/marsupials/wombat"}
    # every object a clip uses (sounding or distractor) is from the clip's split (or a placeholder)
    for r in _read_csv(small / "clips.csv"):
        used = [s for s in (r["sounding"].split(";") + r["distractors"].split(";")) if s]
        for s in used:
            assert split_of[s] in (r["split"], "all"), (r["vid"], s)
        for s in r["sounding"].split(";"):
            assert split_of[s] == r["split"]  # sounding objects are never the all-split placeholders
    # no spoken-description recording and no silent placeholder is ever a sound source
    assert all("_desc" not in r["sounding"] for r in _read_csv(small / "clips.csv"))


def test_split_assignment_is_seeded():
    stamps = [S.Stamp(f"animals/a{i}", "sound", f"animals/a{i}", "sound:animals") for i in range(20)]
    a = S.assign_splits(stamps, 1)
    assert a == S.assign_splits(stamps, 1)
    assert a != S.assign_splits(stamps, 2)
    n = {sp: sum(1 for v in a.values() if v == sp) for sp in S.SPLITS}
    assert n == {"train": 12, "val": 3, "test": 5}


# ------------------------------------------------------------------ compositing == alpha


def test_gt_mask_is_alpha_of_sounding_object_after_occlusion():
    bg = np.full((224, 224, 3), 100, np.uint8)
    a = np.zeros((40, 60, 4), np.uint8)
    a[..., :3] = 255
    yy, xx = np.mgrid[:40, :60]
    alpha = np.clip(255 - 4 * np.hypot(yy - 20, xx - 30), 0, 255).astype(np.uint8)  # soft disc
    a[..., 3] = alpha
    b = np.zeros((20, 20, 4), np.uint8)
    b[..., 3] = 255  # opaque square drawn on top
    rgb, owner = scene.composite(bg, [(a, 50, 70), (b, 90, 80)])
    gt = np.zeros((224, 224), bool)
    gt[70:110, 50:110] = alpha > 127
    gt[80:100, 90:110] = False  # occluded by layer 1
    assert np.array_equal(owner == 0, gt)
    assert np.array_equal(owner == 1, np.pad(np.ones((20, 20), bool), ((80, 124), (90, 114))))
    # partly outside the frame: clipped, no error
    _, owner2 = scene.composite(bg, [(a, 200, -10)])
    assert np.array_equal(owner2[:30, 200:] == 0, alpha[10:, :24] > 127)
    assert rgb.dtype == np.uint8 and rgb[0, 0].tolist() == [100, 100, 100]


def test_gt_mask_matches_real_stamp_alpha():
    stamps_dir, _ = _media_or_skip()
    rgba = S.load_stamp_picture(str(stamps_dir / "animals/mammals/dogs/dog.png"))
    img = scene.transform_stamp(rgba, 120.0, angle_deg=5.0, flip=True)
    bg = np.zeros((224, 224, 3), np.float32)
    _, owner = scene.composite(bg, [(img, 30, 40)])
    h, w = img.shape[:2]
    expect = np.zeros((224, 224), bool)
    expect[40:40 + h, 30:30 + w] = img[..., 3] > 127
    assert np.array_equal(owner == 0, expect)
    assert max(h, w) >= 120  # rotated box grows


# ------------------------------------------------------------------ hand-made AVSBench fixtures


def _png(path: Path, im: Image.Image) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path)


def _wav(path: Path, sr: int = 16000, secs: float = 5.0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(sr * secs)) / sr
    sf.write(path, (0.3 * np.sin(2 * np.pi * 440 * t) * 32767).astype(np.int16), sr, subtype="PCM_16")


@pytest.fixture()
def tiny_avsbench(tmp_path):
    root = tmp_path / "AVSBench"
    # S4: one train clip (only mask 1, mode '1'), one test clip (5 masks)
    s4 = root / "Single-source"
    s4.mkdir(parents=True)
    (s4 / "s4_meta_data.csv").write_text("name,start_time,category,split\n"
                                         "vidA_1,0,dog_barking,train\nvidB_2,3,dog_barking,test\n")
    d = s4 / "s4_data"
    for vid, sp, n_masks in (("vidA_1", "train", 1), ("vidB_2", "test", 5)):
        for i in range(1, 6):
            _png(d / "visual_frames" / sp / "dog_barking" / vid / f"{vid}_{i}.png",
                 Image.new("RGB", (224, 224), (255, 0, 0)))
        for i in range(1, n_masks + 1):
            m = np.zeros((224, 224), bool)
            m[:, :112] = True  # left half
            _png(d / "gt_masks" / sp / "dog_barking" / vid / f"{vid}_{i}.png", Image.fromarray(m).convert("1"))
        _wav(d / "audio_wav" / sp / "dog_barking" / f"{vid}.wav", sr=44100 if sp == "test" else 16000)
    # MS3: palette mask with indices 0/1 (the 'P' quirk), an L 0/255 mask, an RGB white mask
    ms3 = root / "Multi-sources"
    ms3.mkdir(parents=True)
    (ms3 / "ms3_meta_data.csv").write_text("video_id,split\nvidC,val\n")
    d = ms3 / "ms3_data"
    for i in range(1, 6):
        _png(d / "visual_frames" / "vidC" / f"vidC.mp4_{i}.png", Image.new("RGB", (256, 256), (0, 0, 255)))
        m = np.zeros((224, 224), np.uint8)
        m[:56] = 1  # top quarter
        if i == 1:
            im = Image.fromarray(m, "P")
            im.putpalette([0, 0, 0, 255, 255, 255] + [0] * 762)
        elif i == 2:
            im = Image.fromarray(m * 255, "L")
        else:
            im = Image.fromarray(np.repeat(m[..., None] * 255, 3, axis=2), "RGB")
        _png(d / "gt_masks" / "val" / "vidC" / f"vidC_{i}.png", im)
    _wav(d / "audio_wav" / "val" / "vidC.wav", secs=4.0)  # short clip: padded by the front end
    return root


def test_tiny_s4_loader(tiny_avsbench):
    tr = AvsClipDataset(tiny_avsbench, "s4", "train")
    assert [c.vid for c in tr.clips] == ["vidA_1"]
    it = tr[0]
    assert it["mask_valid"].tolist() == [1, 0, 0, 0, 0]
    m = it["masks"][0, 0]
    assert float(m[:, :112].min()) == 1.0 and float(m[:, 112:].max()) == 0.0
    # red frame, ImageNet-normalised
    f = it["frames"][0, :, 0, 0]
    np.testing.assert_allclose(f.numpy(), [(1 - 0.485) / 0.229, (0 - 0.456) / 0.224, (0 - 0.406) / 0.225], atol=1e-5)
    te = AvsClipDataset(tiny_avsbench / "Single-source", "s4", "test")[0]
    assert te["mask_valid"].tolist() == [1] * 5 and te["audio_logmel"].shape == (5, 1, 96, 64)
    assert te["category"] == "dog_barking"
    with pytest.raises(ValueError):
        list_clips(tiny_avsbench, "s4", "training")


def test_tiny_ms3_loader_p_mode_masks(tiny_avsbench):
    ds = AvsClipDataset(tiny_avsbench, "ms3", "val")
    it = ds[0]
    assert it["frames"].shape == (5, 3, 224, 224)  # 256 px frames resized
    assert it["mask_valid"].tolist() == [1] * 5
    for t in range(5):  # palette indices 0/1, L 0/255 and RGB white all binarise to the same mask
        m = it["masks"][t, 0]
        assert float(m[:56].min()) == 1.0 and float(m[56:].max()) == 0.0, t
    # the AVSBench 'P' + ToTensor reading of a 0/1-index palette mask would give 1/255: we give 1
    assert float(load_mask(ds.clips[0].mask_paths[0], "ms3").max()) == 1.0
    assert it["audio_logmel"].shape == (5, 1, 96, 64) and torch.isfinite(it["audio_logmel"]).all()


def test_augmentation_flips_frames_and_masks_together(tiny_avsbench):
    plain = AvsClipDataset(tiny_avsbench, "s4", "test")[0]
    aug = AvsClipDataset(tiny_avsbench, "s4", "test", augment=True)
    seen = set()
    for seed in range(12):
        torch.manual_seed(seed)
        it = aug[0]
        flipped = bool(torch.equal(it["masks"], plain["masks"].flip(-1)))
        assert flipped or torch.equal(it["masks"], plain["masks"])
        seen.add(flipped)
        assert it["frames"].shape == (5, 3, 224, 224)
    assert seen == {True, False}
