"""AVS-Composites v2: synthetic AVSBench-style clips with exact masks and real object recordings.

Command line::

    python -m c3n.data.composites OUT_DIR [--seed 1234] [--small] [--s4-train 1600] [--s4-val 60]
        [--s4-test 120] [--ms3-train 800] [--ms3-val 40] [--ms3-test 80] [--offscreen-frac 0.1]
        [--silent-frac 0.08] [--noise-frac 0.07] [--backgrounds all|skimage] [--domain-shift]
        [--workers 2]

Output (the AVSBench layout of ``docs/avsbench.md`` §1–§2, so ``c3n.data.avsbench`` and
the Rust evaluator read it like AVSBench)::

    OUT_DIR/Single-source/s4_meta_data.csv                      vid,start,category,split
    OUT_DIR/Single-source/s4_data/visual_frames/<split>/<category>/<vid>/<vid>_<i>.png
    OUT_DIR/Single-source/s4_data/audio_wav/<split>/<category>/<vid>.wav
    OUT_DIR/Single-source/s4_data/gt_masks/<split>/<category>/<vid>/<vid>_<i>.png   (i = 1…5, train too)
    OUT_DIR/Multi-sources/ms3_meta_data.csv                     vid,split
    OUT_DIR/Multi-sources/ms3_data/visual_frames/<vid>/<vid>.mp4_<i>.png
    OUT_DIR/Multi-sources/ms3_data/audio_wav/<split>/<vid>.wav
    OUT_DIR/Multi-sources/ms3_data/gt_masks/<split>/<vid>/<vid>_<i>.png
    OUT_DIR/objects.csv   stamp,category,role,family,stratum,split   (the object-instance split)
    OUT_DIR/clips.csv     per-clip recipe (kind, sounding objects, distractors, background, camera, audio level)
    OUT_DIR/README.txt    provenance, licences, command, counts

S4 train clips carry all five masks (AVSBench's have only the first; the loaders of
``c3n.data.avsbench`` read only that one, :mod:`c3n.train.featcache` all five).

Clip recipe (i = 1…5 frames, one per second, 224 × 224 RGB PNG; 5 s of 16 kHz int16 mono WAV):

* **Background** (:mod:`c3n.data.backgrounds`): a slowly panning crop (30–90 % of the shorter side),
  flip and colour shift of a real photo or wallpaper from scikit-image, Debian
  plasma-workspace-wallpapers and opencv-doc, each image assigned to one split by a hash of its
  name; the domain-shift set uses only the held-out packages mate-backgrounds and ukui-wallpapers.
* **Objects** (:mod:`c3n.data.stamps`): Tux Paint stamps (Debian ``tuxpaint-stamps-default``, GPL-2;
  photographic RGBA cut-outs whose alpha channel is an exact mask; ``NAME.ogg`` is a recording of
  that object). Each object has a random size (longest side, log-uniform: S4 source 15–95 % of the
  frame, MS3 sources 15–60 %, distractors 12–60 %), flip, tilt and z-order, and moves / rescales /
  rotates mildly from frame to frame.
* **Camera** (:mod:`c3n.data.camera`): per clip exposure, gamma, white balance, blur, sensor noise
  and JPEG re-encoding, applied to the whole frame.
* **Clip kinds** (:mod:`c3n.data.mixing` for the audio):
  ``onscreen`` — S4: one sounding object, MS3: 2–3; their own recordings (never the ``*_desc*.ogg``
  spoken descriptions) looped with short gaps, random offset and gains, plus white / pink / brown
  noise at 5–25 dB SNR, levelled to −40…−14 dBFS;
  ``offscreen`` (``--offscreen-frac``, 10 %) — the same sound, sounding objects not drawn;
  ``silent`` (``--silent-frac``, 8 %) — no sound at all (digital zero or −90…−75 dBFS dither), the
  would-be sources drawn but silent;
  ``noise`` (``--noise-frac``, 7 %) — only a noise floor at −65…−42 dBFS (sometimes mains hum),
  sources drawn but silent. The last three have all-empty masks.
* **Silent distractors**: visible objects that do not sound — other stamps of the same split (with or
  without a recording), and the 4 silent-placeholder stamps (giraffe, iguana, nandou, wombat).
  S4: 0–2, MS3: 1–2 (1–2 in the empty-mask kinds).
* **GT mask** of frame i = union of the visible sounding objects' pixels with alpha > 127 that are
  not covered by an object drawn on top (alpha > 127), written as 8-bit greyscale (L) 0/255 PNG.

**Split by object instance**: every stamp is assigned to exactly one of train / val / test
(≈ 60 / 15 / 25 %, deterministic from the seed), stratified by top-level Tux Paint folder (folders
with fewer than 3 families are pooled as ``other``). The unit is a *family* — stamps in the same
folder whose names share the first word (``cow``/``cow_white``, ``pig_golden``/``pig_golden2``, the
four ``dreydl-*``) — merged with stamps that share an identical recording (``badger``/``beaver``,
``ram``/``mountaingoat``). Clips use only their split's stamps, as sounding objects and as
distractors; the silent placeholders are used in every split. Test cut-outs and recordings are
therefore never seen in training.

**Domain-shift set** (``--domain-shift``): only the test split (``--s4-test`` / ``--ms3-test``
clips), over backgrounds from packages never used otherwise, with the test split's objects
(families never used in training) and clip draws of their own (seed + ``SHIFT_SEED_OFFSET``).

Stamps skipped (counts in README.txt): under ``symbols/``; picture not RGBA (``LA``, ``P``, ``RGB``);
SVG only; no picture; longest side < 48 px (too small to scale to AVSBench object sizes); for
sounding stamps, a recording that is silent (those with an RGBA picture become silent placeholders).

Determinism: every clip draws from its own ``numpy.random.default_rng([seed, subset, split, index])``
and the split assignment from ``default_rng([seed, crc32(stratum)])``, so the same seed gives the same
bytes whatever ``--workers`` is.
"""
from __future__ import annotations

import argparse
import csv
import os
import shutil
import time
from collections import Counter
from pathlib import Path

from .. import packages
from . import backgrounds as B
from .clips import EMPTY_KINDS, ClipJob, plan_split, render_clip, write_clip
from .stamps import SPLITS, Inventory, Stamp, assign_splits, scan_stamps

DEFAULT_COUNTS = {("s4", "train"): 1600, ("s4", "val"): 60, ("s4", "test"): 120,
                  ("ms3", "train"): 800, ("ms3", "val"): 40, ("ms3", "test"): 80}
SMALL_COUNTS = {("s4", "train"): 4, ("s4", "val"): 3, ("s4", "test"): 3,
                ("ms3", "train"): 3, ("ms3", "val"): 2, ("ms3", "test"): 2}
#: background sources (:mod:`c3n.data.backgrounds`): all real-photo packages, or v1's scikit-image only
BACKGROUND_SETS = {"all": ("skimage", "plasma", "opencv"), "skimage": ("skimage",)}
DEFAULT_FRACS = {"offscreen": 0.10, "silent": 0.08, "noise": 0.07}

# ---------------------------------------------------------------------------------------------
# workers (one process each with --workers N; the context is set once per process)

_CTX: dict = {}


def _init_worker(stamps_dir: str, pools: dict, seed: int, out_dir: str) -> None:
    _CTX.update(stamps_dir=Path(stamps_dir), pools=pools, seed=seed, out_dir=Path(out_dir))


def _run_job(job: ClipJob) -> dict:
    frames, masks, wav, info = render_clip(job, _CTX["pools"], _CTX["seed"], _CTX["stamps_dir"])
    write_clip(_CTX["out_dir"], job, frames, masks, wav, info)
    return info


# ---------------------------------------------------------------------------------------------
# driver

def build_pools(stamps: list[Stamp], split_of: dict[str, str]) -> dict:
    pools: dict = {"sound": {s: [] for s in SPLITS}, "picture": {s: [] for s in SPLITS}, "silent": []}
    for st in stamps:
        if st.role == "silent":
            pools["silent"].append(st)
        else:
            pools[st.role][split_of[st.rel]].append(st)
    return pools


def background_pools(background_set: str, domain_shift: bool) -> dict[str, list]:
    """Split -> backgrounds. The domain-shift set draws its (test) backgrounds from the held-out
    packages only; a split left without an image by the name hash uses all non-held-out ones."""
    bgs = B.load_backgrounds(BACKGROUND_SETS[background_set])
    out = {sp: [b for b in bgs if B.split_of(b) == sp] for sp in SPLITS}
    for sp in SPLITS:
        if not out[sp]:
            out[sp] = list(bgs)
    if domain_shift:
        out["test"] = B.load_backgrounds(B.SHIFT_SOURCES)
    return out


#: added to the seed for the clips (not the object split) of the domain-shift set
SHIFT_SEED_OFFSET = 1_000_003


def generate(out_dir: str | Path, seed: int = 1234, counts: dict | None = None, fracs: dict | None = None,
             workers: int = 1, command: str = "", stamps_dir: Path | None = None, background_set: str = "all",
             domain_shift: bool = False) -> dict:
    """Generate the data set into ``out_dir``; returns a summary dict (counts per split etc.).

    ``fracs``: fraction of the clips of each empty-mask kind (:data:`EMPTY_KINDS`; default
    :data:`DEFAULT_FRACS`). ``domain_shift``: generate only the test split, over the held-out
    background packages (:data:`c3n.data.backgrounds.SHIFT_SOURCES`), with the test split's objects
    (families never used in training) and clip draws of their own.
    """
    counts = dict(DEFAULT_COUNTS if counts is None else counts)
    fracs = dict(DEFAULT_FRACS if fracs is None else fracs)
    if domain_shift:
        counts = {k: (v if k[1] == "test" else 0) for k, v in counts.items()}
    out_dir = Path(out_dir)
    stamps_dir = Path(stamps_dir or packages.tuxpaint_stamps_dir())
    inv = scan_stamps(stamps_dir)
    split_of = assign_splits(inv.stamps, seed)
    pools = build_pools(inv.stamps, split_of)
    pools["backgrounds"] = background_pools(background_set, domain_shift)
    clip_seed = seed + SHIFT_SEED_OFFSET if domain_shift else seed
    for p in ("Single-source", "Multi-sources", "objects.csv", "clips.csv", "README.txt"):
        q = out_dir / p
        if q.is_dir():
            shutil.rmtree(q)
        elif q.exists():
            q.unlink()
    out_dir.mkdir(parents=True, exist_ok=True)
    jobs: list[ClipJob] = []
    for subset in ("s4", "ms3"):
        for split in SPLITS:
            if counts[(subset, split)]:
                jobs += plan_split(subset, split, counts[(subset, split)], pools, clip_seed, fracs)
    if workers > 1 and len(jobs) > 1:
        import multiprocessing as mp

        init_args = (str(stamps_dir), pools, clip_seed, str(out_dir))
        with mp.get_context("fork").Pool(workers, _init_worker, init_args) as pool:
            infos = pool.map(_run_job, jobs, chunksize=4)
    else:
        _init_worker(str(stamps_dir), pools, clip_seed, str(out_dir))
        infos = [_run_job(j) for j in jobs]
    # metadata CSVs (AVSBench layout; rows in data-set order: train, val, test)
    s4 = [i for i in infos if i["subset"] == "s4"]
    ms3 = [i for i in infos if i["subset"] == "ms3"]
    with open(out_dir / "Single-source" / "s4_meta_data.csv", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["vid", "start", "category", "split"])
        w.writerows([[i["vid"], 0, i["category"], i["split"]] for i in s4])
    with open(out_dir / "Multi-sources" / "ms3_meta_data.csv", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["vid", "split"])
        w.writerows([[i["vid"], i["split"]] for i in ms3])
    with open(out_dir / "objects.csv", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["stamp", "category", "role", "family", "stratum", "split"])
        for st in inv.stamps:
            w.writerow([st.rel, st.name, st.role, st.family, st.stratum, split_of[st.rel]])
    keys = list(infos[0].keys())
    with open(out_dir / "clips.csv", "w", newline="") as f:
        w = csv.DictWriter(f, keys, lineterminator="\n")
        w.writeheader()
        w.writerows(infos)
    summary = _summary(inv, split_of, infos, counts)
    summary["backgrounds"] = {sp: len(v) for sp, v in pools["backgrounds"].items()}
    (out_dir / "README.txt").write_text(_readme(seed, command, fracs, summary, background_set, domain_shift))
    return summary


def _summary(inv: Inventory, split_of: dict, infos: list[dict], counts: dict) -> dict:
    obj = Counter((st.role, split_of[st.rel]) for st in inv.stamps)
    clips = Counter((i["subset"], i["split"]) for i in infos)
    kinds = Counter((i["subset"], i["split"], i["kind"]) for i in infos)
    return {"objects": dict(obj), "clips": dict(clips), "kinds": dict(kinds),
            "skipped": dict(inv.skipped), "skipped_picture_only": dict(inv.skipped_picture_only),
            "placement_retries_exhausted": sum(1 for i in infos if not int(i["placement_ok"]))}


def _readme(seed: int, command: str, fracs: dict, s: dict, background_set: str, domain_shift: bool) -> str:
    def row(d, role):
        return " / ".join(str(d.get((role, sp), 0)) for sp in SPLITS)

    def kinds(subset):
        return "; ".join(f"{k}: " + " / ".join(str(s["kinds"].get((subset, sp, k), 0)) for sp in SPLITS)
                         for k in ("onscreen",) + EMPTY_KINDS)

    sources = BACKGROUND_SETS[background_set] + (B.SHIFT_SOURCES if domain_shift else ())
    lines = [
        "AVS-Composites v2 (c3n-edge) -- synthetic AVSBench-style audio-visual segmentation clips",
        "",
        f"Generator: python -m c3n.data.composites {command}".rstrip(),
        f"Seed: {seed}; empty-mask clip fractions: " + ", ".join(f"{k} {v}" for k, v in fracs.items()),
        ("DOMAIN-SHIFT SET: test split only, backgrounds from the held-out packages "
         + ", ".join(B.SHIFT_SOURCES) + ", objects of the test split (families never in training)")
        if domain_shift else "Splits: train / val / test (objects by family, backgrounds by image)",
        "Layout: AVSBench S4 (Single-source/) and MS3 (Multi-sources/), see docs/avsbench.md",
        "sections 1-2 (S4 train clips also carry masks 2-5); objects.csv = object-instance split;",
        "clips.csv = per-clip recipe (kind, objects, background, camera, audio level).",
        "",
        "PROVENANCE AND LICENCES",
        "- Objects (cut-outs + their recordings): Debian package tuxpaint-stamps-default 2022.06.04-1,",
        "  usr/share/tuxpaint/stamps/ -- GNU GPL version 2. Frames, masks and audio in this folder are",
        "  derived from these files: this data set is GPL-2 and MUST NOT be committed to the c3n-edge",
        "  repository; regenerate it with the command above.",
        "- Backgrounds (c3n/data/backgrounds.py, licences there): " + ", ".join(sources) + ".",
        "- Background noise, silence, noise floors, mains hum: generated (c3n/data/mixing.py).",
        "",
        "COUNTS (train / val / test)",
        f"- sounding objects (picture + recording): {row(s['objects'], 'sound')}",
        f"- picture-only distractor stamps: {row(s['objects'], 'picture')}",
        f"- silent-placeholder stamps (all splits): {s['objects'].get(('silent', 'all'), 0)}",
        "- background images: " + " / ".join(str(s.get("backgrounds", {}).get(sp, 0)) for sp in SPLITS),
        f"- S4 clips: {row(s['clips'], 's4')}; by kind: {kinds('s4')}",
        f"- MS3 clips: {row(s['clips'], 'ms3')}; by kind: {kinds('ms3')}",
        "- stamps with a recording skipped: "
        + (", ".join(f"{k}: {v}" for k, v in sorted(s["skipped"].items()) if v) or "none"),
        "- picture-only stamps skipped: "
        + (", ".join(f"{k}: {v}" for k, v in sorted(s["skipped_picture_only"].items())) or "none"),
        "  (symbols/ and *_desc*.ogg spoken descriptions are never used)",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Generate AVS-Composites (AVSBench layout) from Tux Paint stamps.")
    ap.add_argument("out_dir")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--small", action="store_true", help="a few clips per split (tests)")
    for (subset, split), n in DEFAULT_COUNTS.items():
        ap.add_argument(f"--{subset}-{split}", type=int, default=None, help=f"clips (default {n})")
    for kind, f in DEFAULT_FRACS.items():
        ap.add_argument(f"--{kind}-frac", type=float, default=f, help=f"fraction of {kind} clips (empty masks)")
    ap.add_argument("--backgrounds", choices=sorted(BACKGROUND_SETS), default="all",
                    help="background sources: all real-photo packages, or scikit-image's 8 images (small, fast)")
    ap.add_argument("--domain-shift", action="store_true",
                    help="only the test split, over the held-out background packages (domain-shift check)")
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    a = ap.parse_args(argv)
    counts = dict(SMALL_COUNTS if a.small else DEFAULT_COUNTS)
    for subset, split in DEFAULT_COUNTS:
        v = getattr(a, f"{subset}_{split}")
        if v is not None:
            counts[(subset, split)] = v
    fracs = {k: getattr(a, f"{k}_frac") for k in DEFAULT_FRACS}
    # the command as recorded in README.txt: OUT_DIR left symbolic so the bytes do not depend on it
    argv_txt = "OUT_DIR" + ("" if a.seed == 1234 else f" --seed {a.seed}") + (" --small" if a.small else "")
    for (subset, split), n in counts.items():
        if n != (SMALL_COUNTS if a.small else DEFAULT_COUNTS)[(subset, split)]:
            argv_txt += f" --{subset}-{split} {n}"
    for k, f in fracs.items():
        if f != DEFAULT_FRACS[k]:
            argv_txt += f" --{k}-frac {f}"
    if a.backgrounds != "all":
        argv_txt += f" --backgrounds {a.backgrounds}"
    if a.domain_shift:
        argv_txt += " --domain-shift"
    t0 = time.time()
    s = generate(a.out_dir, a.seed, counts, fracs, a.workers, command=argv_txt, background_set=a.backgrounds,
                 domain_shift=a.domain_shift)
    print((Path(a.out_dir) / "README.txt").read_text())
    print(f"generated {sum(s['clips'].values())} clips in {time.time() - t0:.1f} s "
          f"(placement retries exhausted: {s['placement_retries_exhausted']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
