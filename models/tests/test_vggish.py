"""VGGish with PCA, quantisation and the 527-class head (c3n.model.vggish): key names, strict
loading, shapes, and the post-processing against the formula of docs/avsbench.md §4 written out here.
Random weights; fast."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from c3n.model import vggish


def _vggish_keys() -> dict[str, tuple[int, ...]]:
    convs = {0: (64, 1), 3: (128, 64), 6: (256, 128), 8: (256, 256), 11: (512, 256), 13: (512, 512)}
    keys: dict[str, tuple[int, ...]] = {}
    for i, (o, c) in convs.items():
        keys[f"features.{i}.weight"] = (o, c, 3, 3)
        keys[f"features.{i}.bias"] = (o,)
    for i, (o, c) in {0: (4096, 12288), 2: (4096, 4096), 4: (128, 4096)}.items():
        keys[f"embeddings.{i}.weight"] = (o, c)
        keys[f"embeddings.{i}.bias"] = (o,)
    return keys


def test_vggish_state_dict_keys_and_shapes() -> None:
    sd = vggish.VGGishNet().state_dict()
    assert {k: tuple(v.shape) for k, v in sd.items()} == _vggish_keys()


def test_head_keys_and_shapes() -> None:
    sd = vggish.AudioSetHead().state_dict()
    params = {k: tuple(v.shape) for k, v in sd.items()
              if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))}
    assert params == vggish.HEAD_SHAPES
    bns = {k.rsplit(".", 1)[0] for k in sd if k.endswith("running_mean")}
    assert bns == {"emb.bn0", "emb.bn1", "emb.bn2", "emb.bn3", "bn_attention"}


def test_head_loads_a_checkpoint_without_num_batches_tracked() -> None:
    """The 2018 ``md_50000_iters.pth`` predates ``num_batches_tracked``; a strict load still works."""
    sd = {k: v for k, v in vggish.AudioSetHead().state_dict().items() if not k.endswith("num_batches_tracked")}
    head = vggish.AudioSetHead()
    head.load_state_dict(sd, strict=True)


def test_strict_load_errors_name_the_key() -> None:
    sd = vggish.VGGishNet().state_dict()
    sd["embeddings.4.weight"] = torch.zeros(127, 4096)
    with pytest.raises(RuntimeError, match="embeddings.4.weight"):
        vggish.VGGishNet().load_state_dict(sd, strict=True)
    sd = vggish.VGGishNet().state_dict()
    del sd["features.13.bias"]
    with pytest.raises(RuntimeError, match="features.13.bias"):
        vggish.VGGishNet().load_state_dict(sd, strict=True)


def test_pca_state_from_file_layout() -> None:
    rng = np.random.default_rng(0)
    raw = {"pca_eigen_vectors": rng.standard_normal((128, 128)), "pca_means": rng.standard_normal(128)}
    st = vggish.pca_state(raw)
    assert st["pca_means"].shape == (128, 1) and st["pca_eigen_vectors"].dtype == torch.float32
    vggish.PcaQuantiser().load_state_dict(st, strict=True)
    with pytest.raises(KeyError, match="pca_means"):
        vggish.pca_state({"pca_eigen_vectors": raw["pca_eigen_vectors"]})


def _random_audio(seed: int = 0) -> vggish.VGGishAudio:
    torch.manual_seed(seed)
    m = vggish.VGGishAudio().eval()
    rng = np.random.default_rng(seed)
    # eigenvectors scaled so that some components clip at both ends of [-2, 2]
    st = vggish.pca_state({"pca_eigen_vectors": rng.standard_normal((128, 128)) * 0.3,
                           "pca_means": rng.random(128) * 0.05})
    m.pproc.load_state_dict(st)
    for bn in (m.classification_model.emb.bn0, m.classification_model.emb.bn1, m.classification_model.bn_attention):
        bn.running_mean.uniform_(-0.1, 0.1)
        bn.running_var.uniform_(0.5, 2.0)
    return m


def test_forward_shapes_and_n1() -> None:
    m = _random_audio()
    x = torch.randn(5, 1, 96, 64) * 2 - 4
    with torch.no_grad():
        emb, logits = m(x)
        emb1, logits1 = m(x[:1])
    assert emb.shape == (5, 128) and logits.shape == (5, 527)
    assert (emb >= 0).all()  # ReLU after the last FC
    torch.testing.assert_close(emb1, emb[:1], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(logits1, logits[:1], rtol=1e-5, atol=1e-5)


def test_pca_quantisation_matches_reference_formula() -> None:
    """docs/avsbench.md §4: E' = V (E - mu); clip to [-2, 2]; round((x + 2) * 255 / 4)."""
    m = _random_audio(1)
    rng = np.random.default_rng(3)
    emb = rng.random((7, 128)).astype(np.float32) * 3
    V = m.pproc.pca_eigen_vectors.numpy().astype(np.float64)
    mu = m.pproc.pca_means.numpy().astype(np.float64)  # [128,1]
    ref = (V @ (emb.astype(np.float64).T - mu)).T
    ref = np.round((np.clip(ref, -2.0, 2.0) + 2.0) * 255.0 / 4.0)
    got = m.pproc(torch.from_numpy(emb)).numpy()
    assert got.min() == 0.0 and got.max() == 255.0  # both clip ends reached
    # values at a rounding boundary may flip by one step between float32 and float64
    diff = np.abs(got - ref)
    assert diff.max() <= 1.0 and (diff > 0).mean() < 0.01


def test_head_on_one_time_step_is_the_classification_map() -> None:
    """With one time step the attention pooling returns the classification map itself, so the
    head is BN, three 1x1 layers, ``cla``, BN, ReLU, Linear."""
    m = _random_audio(2).classification_model
    x = torch.rand(4, 1, 128) * 2 - 1
    with torch.no_grad():
        got = m(x)
        h = m.emb(x)  # [4,1024,1,1]
        cla = m.attention.cla(h)[:, :, 0, 0]
        ref = m.fc_final(torch.relu(m.bn_attention(cla)))
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)


def test_full_chain_uses_centred_quantised_embedding() -> None:
    m = _random_audio(4)
    x = torch.randn(3, 1, 96, 64)
    with torch.no_grad():
        emb, logits = m(x)
        q = m.pproc(emb)
        ref = m.classification_model(((q - 128) / 128).unsqueeze(1))
    torch.testing.assert_close(logits, ref)


def test_vggish_front_end_metadata_and_default_unchanged() -> None:
    from c3n.model import frontend

    md = frontend.VGGISH.as_metadata()
    assert md["c3n.frontend.log_offset"] == "0.01"
    assert md["c3n.frontend.patch_placement"] == "examples"
    assert "c3n.frontend.patch_placement" not in frontend.DEFAULT.as_metadata()
    assert frontend.DEFAULT.as_metadata()["c3n.frontend.log_offset"] == "0.001"
    with pytest.raises(ValueError, match="patch_placement"):
        frontend.FrontendParams(patch_placement="centre")


def test_vggish_examples_are_back_to_back() -> None:
    """Example i = log-mel frames 96 i .. 96 i + 95 (0.96 s hop, as ``vggish_input`` frames them)."""
    from c3n.model import frontend

    rng = np.random.default_rng(5)
    wave = rng.standard_normal(80_000) * 0.1  # 5 s -> 498 STFT frames
    p = frontend.VGGISH
    lm = frontend.log_mel(wave, p)
    assert lm.shape == (498, 64)
    got = frontend.clip_patches(wave, n_slots=5, slot_s=1.0, p=p)
    ref = np.stack([lm[96 * i: 96 * i + 96] for i in range(5)])[:, None]
    np.testing.assert_array_equal(got, ref)
    # the edge placement starts slot i at frame 100 i
    edge = frontend.clip_patches(wave, n_slots=5, slot_s=1.0)
    np.testing.assert_array_equal(edge[4, 0], frontend.log_mel(wave)[400:496])
