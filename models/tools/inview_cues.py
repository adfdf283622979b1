"""Training-free "sound source in view" cues from C3IM's label space (issue 26; not CI).

The first ``in_view`` head (run ``inview-s1``, models/README.md "Off-screen sound") did not separate
swapped audio/visual pairs. This study asks whether a cue needing no training, built only from what
the exported graph already has (``visual_logit_map`` [T,1000,7,7], ``audio_logits`` [T,521],
``c3im_affinity`` [T,1000], the similarity S), does. It reads a format-2 feature cache
(:mod:`c3n.train.featcache`): per clip and frame the stage-4 map, whose per-cell ImageNet logits
``W x + b`` average to ``visual_logits`` (checked first), the YAMNet logits, and K partners whose
audio makes a swapped pair with this clip's frames.

Per frame and (frames, audio) pair it computes the cues of :func:`frame_cues` (``a_*``: the frame's
C3IM score; ``b_*``: C3IM per stage-4 cell, pooled; ``c_*``: other cheap label-space cues) and the
clip's cue = mean over the T frames. Groups: ``onscreen`` clips with their own audio (positives);
``swapped`` = every clip's frames with each partner's audio; ``offscreen``, ``silent``, ``noise``
clips with their own audio. Reported per subset: ROC AUC (clip level, and frame level) of
on-screen against swapped, off-screen, off-screen ∪ swapped, silent, noise floor; the rate at which
the cue ranks a clip's own audio above a partner's on the *same* frames (``pairwise``); the same
rate for cues on the ground-truth region's cells (``oracle_region``: does the label space itself
tell the right sound from a wrong one where the object is known?); and cues centred on a bank of
training clips (:func:`bank_centred`). The cue with the best worse-of-S4/MS3 validation AUC for
on-screen against off-screen ∪ swapped is then evaluated once on test.

    cd models && PYTHONPATH=. OMP_NUM_THREADS=1 ../.venv/bin/python tools/inview_cues.py \\
        build/featcache/avsc2-f2 --out runs/inview-cues/inview-cues.json

About 70 CPU-s, most of it the bank-centred variant (:func:`bank_centred`, ``--bank 0`` skips it);
the cache was built with data seed 1234, partners seeded with ``neg_seed`` 1234.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from c3n import categories, packages
from c3n.eval.metrics import roc_auc
from c3n.model.network import ALPHA
from c3n.similarity import load_similarity

T = 5
SUBSETS = ("s4", "ms3")
NEG_GROUPS = ("swapped", "offscreen", "offscreen+swapped", "silent", "noise")
RESTRICT = (0.5, 0.6)  # thresholds on max_i S[j,i] for the restricted-softmax variant
TOPK = 3
#: cues tried with bank centring (:func:`bank_centred`)
BANK_CUES = ("a_global", "b_cell_max", "b_cell_max_noalpha", "b_cell_max_restrict0.6", "c_expected_affinity_max",
             "c_rank_top5")


class LabelSpace:
    """The frozen label-space parts: the MobileNetV2 ImageNet head ``W`` [1000,1280], ``b`` [1000],
    the C3IM similarity ``S`` [1000,521] and the category vocabulary's ImageNet / AudioSet maps."""

    def __init__(self):
        state = torch.load(packages.mobilenet_v2_weights(), map_location="cpu", weights_only=False)
        self.w = state["classifier.1.weight"].float()
        self.b = state["classifier.1.bias"].float()
        self.sim = torch.from_numpy(load_similarity()).float()
        asset = categories.load()
        k = len(asset["categories"])
        icat = torch.as_tensor(asset["imagenet"])
        self.img_cat = torch.zeros(1000, k)
        self.img_cat[torch.arange(1000), icat] = 1.0
        self.aud_cat = torch.as_tensor(categories.audioset_categories(asset, 521))
        self.n_cat = k
        self.cat_names = list(asset["categories"])

    def cell_logits(self, s4: np.ndarray) -> torch.Tensor:
        """Stage-4 maps [T,1280,7,7] -> per-cell ImageNet logits [T,1000,49] (``visual_logit_map``)."""
        x = torch.from_numpy(np.asarray(s4, dtype=np.float32)).reshape(s4.shape[0], 1280, -1)
        return torch.matmul(self.w, x) + self.b[:, None]

    def audio_categories(self, audio_logits: torch.Tensor) -> torch.Tensor:
        """[T,521] -> per category the largest YAMNet sigmoid among its classes [T,K] (0 if none)."""
        sig = torch.sigmoid(audio_logits)
        out = torch.zeros(sig.shape[0], self.n_cat)
        ok = self.aud_cat >= 0
        return out.scatter_reduce(1, self.aud_cat[ok].expand(sig.shape[0], -1), sig[:, ok], "amax")


def frame_cues(ls: LabelSpace, cell: torch.Tensor, audio_logits: torch.Tensor) -> dict[str, torch.Tensor]:
    """Candidate cues per frame [T] for frames with per-cell logits ``cell`` [T,1000,P] heard with
    ``audio_logits`` [T,521]. ``v`` = softmax over classes, ``a`` = softmax(audio); ``r[j] = max_i
    S[j,i] a[i]^0.1`` is ``c3im_affinity`` and ``rr`` the same without the exponent."""
    t = cell.shape[0]
    lsm = F.log_softmax(cell, dim=1)  # [T,1000,P]
    glob = F.log_softmax(cell.mean(dim=2), dim=1)  # the frame's visual_logits
    la = F.log_softmax(audio_logits, dim=1)
    r = (ls.sim[None] * torch.exp(ALPHA * la)[:, None]).amax(dim=2)  # [T,1000]
    rr = (ls.sim[None] * torch.exp(la)[:, None]).amax(dim=2)
    out: dict[str, torch.Tensor] = {}
    out["a_global"] = (torch.exp(ALPHA * glob) * r).amax(dim=1)  # C3IM score (baseline)
    c3 = (torch.exp(ALPHA * lsm) * r[:, :, None]).amax(dim=1)  # per-cell C3IM [T,P]
    out["b_cell_max"] = c3.amax(dim=1)
    out[f"b_cell_top{TOPK}"] = c3.topk(TOPK, dim=1).values.mean(dim=1)
    out["b_cell_max_over_mean"] = c3.amax(dim=1) / c3.mean(dim=1)
    out["b_cell_max_over_rmax"] = c3.amax(dim=1) / r.amax(dim=1)
    out["b_cell_max_vis_noalpha"] = (torch.exp(lsm) * r[:, :, None]).amax(dim=1).amax(dim=1)
    out["b_cell_max_noalpha"] = (torch.exp(lsm) * rr[:, :, None]).amax(dim=1).amax(dim=1)
    smax = ls.sim.amax(dim=1)
    for thr in RESTRICT:
        keep = smax >= thr
        lr = F.log_softmax(cell[:, keep], dim=1)
        out[f"b_cell_max_restrict{thr}"] = (torch.exp(ALPHA * lr) * r[:, keep, None]).amax(dim=1).amax(dim=1)
    ea = (torch.exp(lsm) * rr[:, :, None]).sum(dim=1)  # expected affinity of each cell [T,P]
    out["c_expected_affinity_max"] = ea.amax(dim=1)
    out["c_expected_affinity_max_norm"] = ea.amax(dim=1) / rr.amax(dim=1)
    best = r.argmax(dim=1)  # the ImageNet class the audio points to
    lbest = lsm[torch.arange(t), best]  # [T,P]
    rank = (lsm > lbest[:, None, :]).sum(dim=1).float()  # its rank in each cell
    out["c_rank_best"] = -torch.log1p(rank.amin(dim=1))
    top = r.topk(5, dim=1).indices
    ranks = torch.stack([(lsm > lsm[torch.arange(t), top[:, k]][:, None, :]).sum(dim=1) for k in range(5)], 1)
    out["c_rank_top5"] = -torch.log1p(ranks.float().amin(dim=2).amin(dim=1))
    z = lsm - lsm.mean(dim=1, keepdim=True)
    rz = rr - rr.mean(dim=1, keepdim=True)
    corr = (z * rz[:, :, None]).sum(dim=1) / (z.norm(dim=1) * rz.norm(dim=1)[:, None] + 1e-9)
    out["c_corr_max"] = corr.amax(dim=1)  # correlation of a cell's log-probs with the affinity
    vis = torch.einsum("tjp,jk->tkp", torch.exp(lsm), ls.img_cat)  # category mass per cell [T,K,P]
    aud = ls.audio_categories(audio_logits)  # [T,K]
    out["c_category_agree_max"] = (vis * aud[:, :, None]).sum(dim=1).amax(dim=1)  # categories' agreement
    return out


def region_cues(ls: LabelSpace, cell: torch.Tensor, audio_logits: torch.Tensor, cover: torch.Tensor) -> dict:
    """Oracle: cues on the ground-truth region (its cells' logits averaged, weighted by the mask's
    cover of each cell, ``cover`` [T,P]), per frame [T]."""
    w = cover / cover.sum(dim=1, keepdim=True).clamp(min=1e-9)
    reg = F.log_softmax((cell * w[:, None, :]).sum(dim=2), dim=1)  # [T,1000]
    la = F.log_softmax(audio_logits, dim=1)
    r = (ls.sim[None] * torch.exp(ALPHA * la)[:, None]).amax(dim=2)
    rr = (ls.sim[None] * torch.exp(la)[:, None]).amax(dim=2)
    aud = ls.audio_categories(audio_logits)
    return {"region_c3im": (torch.exp(ALPHA * reg) * r).amax(dim=1),
            "region_expected_affinity_norm": (torch.exp(reg) * rr).sum(dim=1) / rr.amax(dim=1),
            "region_category_agree": ((torch.exp(reg) @ ls.img_cat) * aud).sum(dim=1)}


def study_split(ls: LabelSpace, folder: Path, only: list[str] | None = None) -> dict:
    """All cues on one cached split; AUCs, pairwise and oracle rates (module doc)."""
    meta = json.loads((folder / "meta.json").read_text())
    a = {k: np.load(folder / f"{k}.npy", mmap_mode="r")
         for k in ("s4", "visual_logits", "audio_logits", "neg_index", "masks")}
    n = int(meta["clips"])
    kinds = list(meta["kinds"])
    audio = torch.from_numpy(np.asarray(a["audio_logits"], dtype=np.float32))
    clip: dict[str, dict[str, list[float]]] = {}  # cue -> group -> clip means
    frame: dict[str, dict[str, list[float]]] = {}
    pair: dict[str, list[float]] = {}
    oracle: dict[str, list[float]] = {}
    map_err = 0.0
    stamp = json.loads((Path(__file__).resolve().parents[1] / "assets" / "stamp_categories.json").read_text())["map"]
    cat_ok: dict[str, list[float]] = {"audio": [], "visual": []}

    def add(group: str, cues: dict[str, torch.Tensor]):
        for k, v in cues.items():
            if only is not None and k not in only:
                continue
            clip.setdefault(k, {}).setdefault(group, []).append(float(v.mean()))
            frame.setdefault(k, {}).setdefault(group, []).extend(v.tolist())

    for i in range(n):
        cell = ls.cell_logits(a["s4"][i])
        vl = torch.from_numpy(np.asarray(a["visual_logits"][i], dtype=np.float32))
        map_err = max(map_err, float((cell.mean(dim=2) - vl).abs().max()))
        own = frame_cues(ls, cell, audio[i])
        group = "onscreen" if kinds[i] == "onscreen" else kinds[i]
        add(group, own)
        m = np.unpackbits(np.asarray(a["masks"][i]), axis=-1).reshape(T, 7, 32, 7, 32)
        cover = torch.from_numpy(m.mean(axis=(2, 4), dtype=np.float32).reshape(T, 49))
        own_reg = region_cues(ls, cell, audio[i], cover) if group == "onscreen" else None
        truth = stamp.get(meta["categories"][i]) if group == "onscreen" else None
        if truth is not None:  # S4: one sounding stamp of known category
            aud_cat = ls.audio_categories(audio[i]).mean(dim=0)  # YAMNet's best class per category
            vis_cat = (F.softmax(vl, dim=1) @ ls.img_cat).mean(dim=0)  # the frame's visual mass per category
            cat_ok["audio"].append(float(ls.cat_names[int(aud_cat.argmax())] == truth))
            cat_ok["visual"].append(float(ls.cat_names[int(vis_cat.argmax())] == truth))
        for p in np.asarray(a["neg_index"][i]):
            if p < 0:
                continue
            sw = frame_cues(ls, cell, audio[p])
            add("swapped", sw)
            if group != "onscreen":
                continue
            for k in own:
                if only is None or k in only:
                    o, s = float(own[k].mean()), float(sw[k].mean())
                    pair.setdefault(k, []).append(1.0 if o > s else 0.5 if o == s else 0.0)
            sw_reg = region_cues(ls, cell, audio[p], cover)
            for k in own_reg:
                o, s = float(own_reg[k].mean()), float(sw_reg[k].mean())
                oracle.setdefault(k, []).append(1.0 if o > s else 0.5 if o == s else 0.0)

    def aucs(groups: dict[str, list[float]]) -> dict:
        pos = groups.get("onscreen", [])
        neg = {g: groups.get(g, []) for g in ("swapped", "offscreen", "silent", "noise")}
        neg["offscreen+swapped"] = neg["offscreen"] + neg["swapped"]
        return {g: roc_auc(pos, neg[g]) for g in NEG_GROUPS}

    counts = {g: len(v) for g, v in next(iter(clip.values())).items()}
    return {"folder": str(folder), "neg_seed": meta.get("neg_seed"), "neg_k": meta.get("neg_k"), "clips": counts,
            "logit_map_mean_max_abs_err": map_err,
            "onscreen_category_right": {k: (float(np.mean(v)) if v else None) for k, v in cat_ok.items()},
            "clip_auc": {k: aucs(v) for k, v in clip.items()},
            "frame_auc": {k: aucs(v) for k, v in frame.items()},
            "pairwise_own_above_partner": {k: float(np.mean(v)) for k, v in pair.items()},
            "oracle_region_pairwise": {k: float(np.mean(v)) for k, v in oracle.items()}}


def bank_centred(ls: LabelSpace, folder: Path, bank: Path, n_bank: int, names: tuple[str, ...] = BANK_CUES) -> dict:
    """Cues centred on a bank of ``n_bank`` on-screen clips of another split (``bank``, the
    training split: other stamp families): ``cue(v, a) - E_v'[cue(v', a)]`` (audio-centred) and
    also ``- E_a'[cue(v, a')]`` (double-centred), clip level, on-screen vs off-screen ∪ swapped.
    Constants of that size could ride in a graph; this checks whether they would help."""
    bm = json.loads((bank / "meta.json").read_text())
    idx = [i for i, k in enumerate(bm["kinds"]) if k == "onscreen"][:n_bank]
    bs4, bal = np.load(bank / "s4.npy", mmap_mode="r"), np.load(bank / "audio_logits.npy", mmap_mode="r")
    bank_cells = [ls.cell_logits(bs4[i]) for i in idx]
    bank_audio = [torch.from_numpy(np.asarray(bal[i], dtype=np.float32)) for i in idx]
    meta = json.loads((folder / "meta.json").read_text())
    kinds = meta["kinds"]
    s4 = np.load(folder / "s4.npy", mmap_mode="r")
    audio = torch.from_numpy(np.load(folder / "audio_logits.npy").astype(np.float32))
    neg = np.load(folder / "neg_index.npy")
    cells = [ls.cell_logits(s4[i]) for i in range(len(kinds))]

    def clip_cues(cell, al) -> np.ndarray:
        c = frame_cues(ls, cell, al)
        return np.array([float(c[k].mean()) for k in names])

    by_audio = [np.mean([clip_cues(bc, audio[i]) for bc in bank_cells], axis=0) for i in range(len(kinds))]
    by_visual = [np.mean([clip_cues(cells[i], ba) for ba in bank_audio], axis=0) for i in range(len(kinds))]
    pos: dict[str, list] = {"audio": [], "double": []}
    negs: dict[str, list] = {"audio": [], "double": []}
    for i, kind in enumerate(kinds):
        pairs = [(p, negs) for p in neg[i] if p >= 0]
        if kind in ("onscreen", "offscreen"):
            pairs.append((i, pos if kind == "onscreen" else negs))
        for p, dst in pairs:
            c = clip_cues(cells[i], audio[p]) - by_audio[p]
            dst["audio"].append(c)
            dst["double"].append(c - by_visual[i])
    return {f"{k}_{how}": roc_auc(np.array(pos[how])[:, j], np.array(negs[how])[:, j])
            for how in ("audio", "double") for j, k in enumerate(names)}


def choose(val: dict[str, dict]) -> tuple[str, float]:
    """The cue whose worse of the subsets' clip AUC (on-screen vs off-screen ∪ swapped) is highest."""
    names = next(iter(val.values()))["clip_auc"]
    score = {k: min(v["clip_auc"][k]["offscreen+swapped"] for v in val.values()) for k in names}
    best = max(score, key=lambda k: score[k])
    return best, score[best]


def table(res: dict[str, dict], key: str = "clip_auc") -> str:
    """Markdown table: cue x (subset, group) AUC."""
    subs = list(res)
    head = "| cue | " + " | ".join(f"{s} {g}" for s in subs for g in ("swapped", "offscreen", "offscreen+swapped"))
    lines = [head + " |", "|---" * (1 + 3 * len(subs)) + "|"]
    for k in res[subs[0]][key]:
        cells = [f"{res[s][key][k][g]:.3f}" for s in subs for g in ("swapped", "offscreen", "offscreen+swapped")]
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Training-free in-view cues from C3IM's label space (issue 26).")
    ap.add_argument("cache", type=Path, help="format-2 feature cache (c3n.featcache), e.g. build/featcache/avsc2-f2")
    ap.add_argument("--out", type=Path, required=True, help="JSON report")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--bank", type=int, default=24,
                    help="bank-centred cues with this many on-screen training clips (0: skip; ~50 CPU-s at 24)")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    t0 = time.process_time()
    ls = LabelSpace()
    val = {s: study_split(ls, a.cache / f"{s}_val") for s in SUBSETS}
    best, best_val = choose(val)
    centred = {s: bank_centred(ls, a.cache / f"{s}_val", a.cache / f"{s}_train", a.bank) for s in SUBSETS} \
        if a.bank > 0 else None
    test = {s: study_split(ls, a.cache / f"{s}_test", only=[best]) for s in SUBSETS}
    report = {"issue": 26, "cache": str(a.cache), "val": val, "chosen": best,
              "chosen_val_auc_min": best_val, "test": test,
              "bank_centred_val_auc_offscreen+swapped": centred, "bank_clips": a.bank,
              "cpu_s": round(time.process_time() - t0, 1)}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(report, indent=1) + "\n")
    print(table(val))
    print(f"\nchosen on val: {best} (worse-subset AUC on-screen vs off-screen ∪ swapped {best_val:.3f})")
    if centred is not None:
        print("bank-centred (val, on-screen vs off-screen ∪ swapped): "
              + "; ".join(f"{s} " + ", ".join(f"{k} {v:.3f}" for k, v in c.items()) for s, c in centred.items()))
    for s, r in test.items():
        print(f"test {s}: " + ", ".join(f"{g} {v:.3f}" for g, v in r["clip_auc"][best].items() if v is not None))
    print(f"wrote {a.out} ({report['cpu_s']} CPU-s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
