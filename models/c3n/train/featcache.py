"""Cache of everything frozen in C3N, so that training the decoder costs only the decoder.

With the pretrained MobileNetV2 + ImageNet head and YAMNet both frozen (the shipped recipe, see
:mod:`c3n.train.frozen`), a clip's four stage maps, its C3IM unified label and its CCAM Grad-CAM
channel weights depend only on the clip itself. They are computed once here — by the very modules
the exported graph contains (:class:`c3n.model.network.C3N`'s backbone, written-out CAM backward, YAMNet,
C3IM) — and stored as memory-mapped arrays; a training step then reads them and runs CCAM's
re-weighting (two sigmoids) and the decoder.

Layout of ``OUT/<subset>_<split>/`` (n = clips, T = 5 frames, arrays are ``numpy.lib.format``
``.npy`` files opened with ``mmap_mode="r"``):

| file | dtype, shape | what |
|---|---|---|
| ``s1`` … ``s4`` | float16 [n,T,C,H,W] | stage maps ``features.3`` [24,56,56], ``.6`` [32,28,28], ``.13`` [96,14,14], ``.18`` [1280,7,7] |
| ``cam1`` … ``cam4`` | float32 [n,T,C] | Grad-CAM channel weights ``mean_hw d logit[label] / d stage`` (before CCAM's L2 norm) |
| ``emb`` | float32 [n,T,1024] | YAMNet embedding (TPAVI's audio input) |
| ``visual_logits`` / ``audio_logits`` | float16 [n,T,1000] / [n,T,521] | for label statistics |
| ``label`` / ``score`` | int64 / float32 [n,T] | C3IM unified label and score |
| ``masks`` | uint8 [n,T,6272] | ground truth, ``numpy.packbits`` of the 224 × 224 mask |
| ``valid`` | uint8 [n,T] | 1 where the frame has a GT mask (composites: every frame) |
| ``neg_index`` | int32 [n,K] | format 2: the clip's K audio-visual correspondence negatives, indices of partner clips *in this folder* (:func:`pick_partners`) |
| ``neg_label`` / ``neg_score`` | int64 / float32 [n,K,T] | format 2: C3IM unified label and score of this clip's frames with partner k's audio |
| ``neg_cam1`` … ``neg_cam4`` | float32 [n,K,T,C] | format 2: Grad-CAM channel weights for ``neg_label`` on this clip's frames (as ``cam1`` … ``cam4``) |
| ``meta.json`` | | vids, categories, clip kinds, data-set path, ``neg_k`` / ``neg_seed``, model and weights provenance |

Format 2 (issue 26) adds the negatives; the partner's audio embedding is the partner's own
``emb[neg_index]``, so a swapped pair costs nothing more at training time. A partner is a clip of the
same folder whose source is on screen and audible (AVS-Composites ``clips.csv`` kind ``onscreen``),
of another category, and none of whose sounding objects' stamp families is in this clip's picture
(its distractors and its own sounding objects); the target of a swapped pair is an empty mask and
``in_view`` 0 (docs/negative-audio.md). Data sets without ``clips.csv`` (real AVSBench) use any clip
of another category (MS3: another clip). Format-1 folders still open (no negatives).

Command: ``python -m c3n.featcache DATA --out build/featcache/NAME [--splits train val test] [--neg-k 2]``.
"""  # noqa: E501 (the table's rows)
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..model.network import c3im

STAGES = (("s1", (24, 56, 56)), ("s2", (32, 28, 28)), ("s3", (96, 14, 14)), ("s4", (1280, 7, 7)))
T = 5
MASK_BYTES = 224 * 224 // 8
FORMAT = "c3n-featcache-2"
FORMATS = ("c3n-featcache-1", FORMAT)  # readable
NEG_K = 2  # default negatives per clip


def _open(path: Path, dtype, shape):
    return np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)


def _mask_paths_all(clip) -> list[Path | None]:
    """All five GT masks of a clip that exist (composites write them for S4 train too)."""
    out = []
    for t, p in enumerate(clip.mask_paths):
        if p is None and t > 0 and clip.mask_paths[0] is not None:
            q = clip.mask_paths[0]
            p = q.with_name(q.name.replace("_1.png", f"_{t + 1}.png"))
        out.append(p if p is not None and p.exists() else None)
    return out


def clip_table(data: Path) -> dict[str, dict] | None:
    """vid -> row of an AVS-Composites ``clips.csv`` (kind, sounding, distractors, ...); None when
    the data set has none (real AVSBench)."""
    import csv

    table = Path(data) / "clips.csv"
    if not table.exists():
        return None
    with open(table, newline="") as f:
        return {r["vid"]: r for r in csv.DictReader(f)}


def _families(data: Path) -> dict[str, str]:
    """stamp -> stamp family from an AVS-Composites ``objects.csv`` (empty if absent)."""
    import csv

    table = Path(data) / "objects.csv"
    if not table.exists():
        return {}
    with open(table, newline="") as f:
        return {r["stamp"]: r.get("family") or r["stamp"] for r in csv.DictReader(f)}


def pick_partners(vids: list[str], categories: list[str], rows: dict[str, dict] | None,
                  families: dict[str, str], k: int, seed: int) -> np.ndarray:
    """int32 [n, k]: for each clip, ``k`` distinct partner clips (indices into ``vids``) whose audio
    makes an audio-visual correspondence negative with this clip's frames (module doc: on screen and
    audible, another category, no sounding family in this clip's picture). Seeded; a clip with fewer
    than ``k`` eligible partners repeats them (-1 only if it has none)."""
    n = len(vids)
    rng = np.random.default_rng(seed)
    out = np.full((n, k), -1, np.int32)

    def stamps(row: dict, col: str) -> set[str]:
        return {families.get(x, x) for x in row.get(col, "").split(";") if x}

    if rows is not None:
        sound = [stamps(rows.get(v, {}), "sounding") for v in vids]
        seen = [sound[i] | stamps(rows.get(v, {}), "distractors") for i, v in enumerate(vids)]
        ok = np.array([rows.get(v, {}).get("kind") == "onscreen" for v in vids])
    for i in range(n):
        if rows is not None:
            cand = [j for j in np.flatnonzero(ok) if j != i and not (sound[j] & seen[i])
                    and (not categories[i] or categories[j] != categories[i])]
        else:
            cand = [j for j in range(n) if j != i and (not categories[i] or categories[j] != categories[i])]
        if cand:
            out[i] = rng.choice(cand, size=k, replace=len(cand) < k)
    return out


@torch.no_grad()
def extract_split(model, data: Path, subset: str, split: str, out: Path, max_clips: int | None = None,
                  first_clip: int = 0, neg_k: int = NEG_K, neg_seed: int = 1234) -> int:
    """Run the frozen parts on the clips of ``subset``/``split`` from ``first_clip`` on (at most
    ``max_clips`` of them, in data-set order), with ``neg_k`` negative partners per clip from the
    same part (``neg_seed`` + ``first_clip`` seeds them); returns the number of clips."""
    from ..data.avsbench import AvsClipDataset, load_mask

    ds = AvsClipDataset(data, subset=subset, split=split, augment=False)
    ds.clips = ds.clips[first_clip:]
    if max_clips is not None:
        ds.clips = ds.clips[:max_clips]
    n = len(ds)
    if n == 0:
        return 0
    rows = clip_table(data)
    vids = [c.vid for c in ds.clips]
    cats = [c.category for c in ds.clips]
    partners = pick_partners(vids, cats, rows, _families(data), neg_k, neg_seed + first_clip)
    tmp = out.with_name(out.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    arr = {name: _open(tmp / f"{name}.npy", np.float16, (n, T) + shape) for name, shape in STAGES}
    for k, (_, shape) in enumerate(STAGES, 1):
        arr[f"cam{k}"] = _open(tmp / f"cam{k}.npy", np.float32, (n, T, shape[0]))
        arr[f"neg_cam{k}"] = _open(tmp / f"neg_cam{k}.npy", np.float32, (n, neg_k, T, shape[0]))
    arr["emb"] = _open(tmp / "emb.npy", np.float32, (n, T, 1024))
    arr["visual_logits"] = _open(tmp / "visual_logits.npy", np.float16, (n, T, 1000))
    arr["audio_logits"] = _open(tmp / "audio_logits.npy", np.float16, (n, T, 521))
    arr["label"] = _open(tmp / "label.npy", np.int64, (n, T))
    arr["score"] = _open(tmp / "score.npy", np.float32, (n, T))
    arr["masks"] = _open(tmp / "masks.npy", np.uint8, (n, T, MASK_BYTES))
    arr["valid"] = _open(tmp / "valid.npy", np.uint8, (n, T))
    arr["neg_index"] = _open(tmp / "neg_index.npy", np.int32, (n, neg_k))
    arr["neg_label"] = _open(tmp / "neg_label.npy", np.int64, (n, neg_k, T))
    arr["neg_score"] = _open(tmp / "neg_score.npy", np.float32, (n, neg_k, T))
    arr["neg_index"][:] = partners
    # pass 1: the audio side of every clip (a partner's audio is needed before its own turn)
    audio_logits = torch.zeros(n, T, 521)
    for i in tqdm(range(n), desc=f"{subset} {split} audio", file=sys.stderr):
        emb, al = model.audio(torch.from_numpy(ds.logmel(i).copy()))
        arr["emb"][i] = emb.reshape(T, -1).numpy()
        audio_logits[i] = al
        arr["audio_logits"][i] = al.numpy().astype(np.float16)
    bb = model.backbone
    for i in tqdm(range(n), desc=f"{subset} {split}", file=sys.stderr):
        item = ds[i]
        stages, visual_logits, tapes = bb(item["frames"], record=True)
        label, score = c3im(visual_logits, audio_logits[i], model.similarity)
        grads = bb.cam_gradients(stages, tapes, label)
        for (name, _), s in zip(STAGES, stages):
            arr[name][i] = s.numpy().astype(np.float16)
        for k, g in enumerate(grads, 1):
            arr[f"cam{k}"][i] = g.mean(dim=(2, 3)).numpy()
        arr["visual_logits"][i] = visual_logits.numpy().astype(np.float16)
        arr["label"][i] = label.numpy()
        arr["score"][i] = score.numpy()
        for j, p in enumerate(partners[i]):
            if p < 0:  # no eligible partner: the clip's own values, never drawn (neg_index -1)
                nl, ns, ng = label, score, grads
            else:
                nl, ns = c3im(visual_logits, audio_logits[p], model.similarity)
                ng = grads if torch.equal(nl, label) else bb.cam_gradients(stages, tapes, nl)
            arr["neg_label"][i, j] = nl.numpy()
            arr["neg_score"][i, j] = ns.numpy()
            for k, g in enumerate(ng, 1):
                arr[f"neg_cam{k}"][i, j] = g.mean(dim=(2, 3)).numpy()
        c = ds.clips[i]
        for t, mp in enumerate(_mask_paths_all(c)):
            if mp is not None:
                m = load_mask(mp, subset)[0].numpy() > 0.5
                arr["masks"][i, t] = np.packbits(m.reshape(-1))
                arr["valid"][i, t] = 1
    for a in arr.values():
        a.flush()
    meta = {"format": FORMAT, "data": str(data.resolve()), "subset": subset, "split": split, "clips": n,
            "first_clip": first_clip, "max_clips": max_clips, "neg_k": neg_k, "neg_seed": neg_seed + first_clip,
            "vids": vids, "categories": cats,
            "kinds": None if rows is None else [rows.get(v, {}).get("kind", "") for v in vids],
            "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
    (tmp / "meta.json").write_text(json.dumps(meta))
    if out.exists():
        import shutil

        shutil.rmtree(out)
    tmp.rename(out)
    return n


class CachedSplit:
    """Read-only view of one cached ``<subset>_<split>`` folder (see the module doc for the arrays)."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.meta = json.loads((self.folder / "meta.json").read_text())
        if self.meta.get("format") not in FORMATS:
            raise ValueError(f"{folder}: not a {' / '.join(FORMATS)} cache")
        self.a = {p.stem: np.load(p, mmap_mode="r") for p in self.folder.glob("*.npy")}
        self.n = int(self.meta["clips"])
        self.subset = self.meta["subset"]
        #: negatives per clip (0 for a format-1 cache)
        self.neg_k = int(self.meta.get("neg_k", 0))

    def kinds(self) -> list[str] | None:
        """Per clip: the AVS-Composites kind (onscreen / offscreen / silent / noise), or None."""
        if self.meta.get("kinds") is not None:
            return list(self.meta["kinds"])
        rows = clip_table(Path(self.meta["data"]))
        return None if rows is None else [rows.get(v, {}).get("kind", "") for v in self.meta["vids"]]

    def __len__(self) -> int:
        return self.n

    def batch(self, idx) -> dict:
        """Clips ``idx`` -> dict of torch tensors with the clips' frames flattened: stages [B*T,C,H,W]
        float32, cams [B*T,C], emb [B*T,1024], masks [B*T,1,224,224] float32, valid [B*T]."""
        idx = np.asarray(idx)
        b = len(idx)
        out = {"stages": [torch.from_numpy(np.asarray(self.a[name][idx], dtype=np.float32)).reshape(b * T, *shape)
                          for name, shape in STAGES],
               "cams": [torch.from_numpy(np.asarray(self.a[f"cam{k}"][idx])).reshape(b * T, -1) for k in range(1, 5)],
               "emb": torch.from_numpy(np.asarray(self.a["emb"][idx])).reshape(b * T, -1)}
        m = np.unpackbits(np.asarray(self.a["masks"][idx]), axis=-1).reshape(b * T, 1, 224, 224)
        out["masks"] = torch.from_numpy(m.astype(np.float32))
        out["valid"] = torch.from_numpy(np.asarray(self.a["valid"][idx], dtype=np.float32).reshape(b * T))
        out["in_view"] = (out["masks"].flatten(1).amax(dim=1) > 0).float()
        return out

    def negative_batch(self, idx, ks) -> dict:
        """Swapped pairs: clip ``idx[i]``'s frames with the audio of its negative partner
        ``ks[i]`` (format 2). The same keys as :meth:`batch`: stages of the clips, ``cams`` =
        ``neg_cam*``, ``emb`` = the partners' ``emb``, ``masks`` all zero, ``valid`` all one (every
        frame's target is empty), ``in_view`` all zero. Raises ``ValueError`` on a format-1 cache
        or a clip without a partner."""
        if self.neg_k == 0:
            raise ValueError(f"{self.folder}: no negatives (format-1 cache)")
        idx, ks = np.asarray(idx), np.asarray(ks)
        b = len(idx)
        part = np.asarray(self.a["neg_index"][idx, ks])
        if (part < 0).any():
            raise ValueError(f"{self.folder}: clip without a negative partner in {idx.tolist()}")
        out = {"stages": [torch.from_numpy(np.asarray(self.a[name][idx], dtype=np.float32)).reshape(b * T, *shape)
                          for name, shape in STAGES],
               "cams": [torch.from_numpy(np.asarray(self.a[f"neg_cam{k}"][idx, ks])).reshape(b * T, -1)
                        for k in range(1, 5)],
               "emb": torch.from_numpy(np.stack([np.asarray(self.a["emb"][p]) for p in part])).reshape(b * T, -1)}
        out["masks"] = torch.zeros(b * T, 1, 224, 224)
        out["valid"] = torch.ones(b * T)
        out["in_view"] = torch.zeros(b * T)
        return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Cache C3N's frozen features (backbone, CAM, YAMNet, C3IM) of a data set.")
    ap.add_argument("data", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--splits", nargs="+", default=["train", "val", "test"])
    ap.add_argument("--subsets", nargs="+", default=["s4", "ms3"])
    ap.add_argument("--max-clips", nargs="+", default=[], metavar="SUBSET_SPLIT=N",
                    help="cache only the first N clips of a split, e.g. s4_train=640 ms3_train=320")
    ap.add_argument("--first-clip", nargs="+", default=[], metavar="SUBSET_SPLIT=N",
                    help="start at clip N of a split (to add a part to an existing cache; use with --suffix)")
    ap.add_argument("--suffix", default="", help="folder name suffix, e.g. _b: OUT/s4_train_b (a second part)")
    ap.add_argument("--neg-k", type=int, default=NEG_K, help="negative partners per clip (format 2)")
    ap.add_argument("--neg-seed", type=int, default=1234)
    ap.add_argument("--threads", type=int, default=None)
    a = ap.parse_args(argv)
    limits = {k: int(v) for k, v in (x.split("=", 1) for x in a.max_clips)}
    firsts = {k: int(v) for k, v in (x.split("=", 1) for x in a.first_clip)}
    if a.threads:
        torch.set_num_threads(a.threads)
    from ..model.build import build_model

    model = build_model("edge").eval()
    for split in a.splits:
        for subset in a.subsets:
            dst = a.out / f"{subset}_{split}{a.suffix}"
            if (dst / "meta.json").exists():
                print(f"{dst}: cached already", file=sys.stderr)
                continue
            t0 = time.time()
            c0 = time.process_time()
            n = extract_split(model, a.data, subset, split, dst, limits.get(f"{subset}_{split}"),
                              firsts.get(f"{subset}_{split}", 0), a.neg_k, a.neg_seed)
            cpu = time.process_time() - c0
            print(f"{dst}: {n} clips in {time.time() - t0:.0f} s, {cpu:.0f} CPU-s "
                  f"({cpu / max(n, 1):.2f} CPU-s a clip)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
