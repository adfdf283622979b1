"""The category vocabulary (c3n.categories): the hierarchy walk on hand-built hierarchies (nearest
root, ties, unknown classes, cycles), the source parsers on hand-written snippets, the per-region
combination on hand-built evidence, and the committed asset (checksum, shape, a rebuild from the
pinned sources gives the same bytes)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from c3n import categories as cat

# a hand-built hierarchy: child -> parents
PARENTS = {
    "poodle": ["dog"],
    "dog": ["canine"],
    "canine": ["carnivore"],
    "carnivore": ["mammal"],
    "mammal": ["animal"],
    "ram": ["sheep"],
    "sheep": ["mammal"],
    "fire_engine": ["truck"],
    "truck": ["motor_vehicle"],
    # two parents, each one level below a root of a different category: a tie on level 2
    "robot_dog": ["toy", "machine"],
    "toy": ["plaything"],
    "machine": ["device"],
    "plaything": [],
    "device": [],
    # a cycle must not hang the walk
    "a": ["b"],
    "b": ["a"],
    # multiple inheritance: a racer (an animal) one level closer than the dog root
    "whippet": ["greyhound"],
    "greyhound": ["hound", "racer"],
    "hound": ["hunting_dog"],
    "hunting_dog": ["dog"],
    "racer": ["animal"],
}
SPECIFIC = [("dog", "dog"), ("sheep", "sheep"), ("truck", "truck"), ("toy", "plaything"), ("tool", "device")]
ROOTS = [SPECIFIC, [("animal", "animal")]]


def test_nearest_root_wins_over_a_more_general_one():
    assert cat.assign("poodle", PARENTS, ROOTS, "other") == ("dog", "dog", 1)
    assert cat.assign("ram", PARENTS, ROOTS, "other") == ("sheep", "sheep", 1)
    # the general root is reached only through 4 more levels
    assert cat.assign("carnivore", PARENTS, ROOTS, "other") == ("animal", "animal", 2)


def test_catch_all_tier_only_where_no_specific_rule_reaches():
    assert cat.assign("whippet", PARENTS, ROOTS, "other") == ("dog", "dog", 4)
    # in one tier the nearer animal root would win
    assert cat.assign("whippet", PARENTS, [SPECIFIC + [("animal", "animal")]], "other") == ("animal", "animal", 3)
    assert cat.assign("fire_engine", PARENTS, ROOTS, "other") == ("truck", "truck", 1)


def test_a_root_is_its_own_category_at_level_0():
    assert cat.assign("dog", PARENTS, ROOTS, "other") == ("dog", "dog", 0)


def test_tie_on_one_level_goes_to_the_rule_listed_first():
    assert cat.assign("robot_dog", PARENTS, ROOTS, "other") == ("toy", "plaything", 2)
    swapped = [r for r in SPECIFIC if r[0] not in ("toy", "tool")] + [("tool", "device"), ("toy", "plaything")]
    assert cat.assign("robot_dog", PARENTS, [swapped], "other") == ("tool", "device", 2)


def test_unknown_and_unreached_classes_get_the_default():
    assert cat.assign("unicorn", PARENTS, ROOTS, "other") == ("other", None, -1)  # not in the graph
    assert cat.assign("motor_vehicle", PARENTS, ROOTS, "other") == ("other", None, -1)  # no root above
    assert cat.assign("a", PARENTS, ROOTS, None) == (None, None, -1)  # cycle, no root


def test_same_root_in_two_rules_uses_the_first():
    roots = [[("dog", "dog"), ("animal", "dog")]]
    assert cat.assign("poodle", PARENTS, roots, "other")[0] == "dog"


DATA_NOUN = (
    "  1 This software and database is being provided to you, the LICENSEE, by\n"
    "00000001 03 n 01 entity 0 000 | that which exists\n"
    "00000002 03 n 02 animal 0 beast 0 002 @ 00000001 n 0000 ~ 00000003 n 0000 | a living thing\n"
    "00000003 05 n 01 dog 0 003 @ 00000002 n 0000 @i 00000004 n 0000 + 00000009 v 0101 | a dog\n"
    "00000004 05 n 01 Fido 0 001 @ 00000002 n 0000 | a name\n"
)


def test_wordnet_parser_reads_lemmas_and_hypernyms_only(tmp_path):
    p = tmp_path / "data.noun"
    p.write_text(DATA_NOUN, encoding="latin-1")
    lemmas, parents = cat.parse_wordnet_nouns(p)
    assert lemmas["n00000002"] == ["animal", "beast"]
    assert parents["n00000002"] == ["n00000001"]  # '~' (hyponym) is not a parent
    assert parents["n00000003"] == ["n00000002", "n00000004"]  # '@' and '@i'; the verb pointer is not
    assert parents["n00000001"] == []


def test_imagenet_wnids_are_sorted_and_checked_against_names(tmp_path):
    lemmas = {f"n{i:08d}": [f"c{i}"] for i in range(1000)}
    lst = tmp_path / "labels.list"
    lst.write_text("\n".join(f"n{i:08d}" for i in reversed(range(1000))) + "\nn99999999\n")
    names = [f"c{i}" for i in range(1000)]
    assert cat.imagenet_wnids(lst, names, lemmas)[:2] == ["n00000000", "n00000001"]
    names[5] = "c5 extra"  # torchvision-style disambiguation is accepted
    cat.imagenet_wnids(lst, names, lemmas)
    names[7] = "wrong"
    with pytest.raises(cat.HierarchyError, match="class 7"):
        cat.imagenet_wnids(lst, names, lemmas)


def _toy_asset(combine):
    # categories: person 0, dog 1, other 2; ImageNet classes: 0 dog, 1 dog, 2 coat (worn, other),
    # 3 rock (other); AudioSet: 0 speech -> person, 1 bark -> dog, 2 music -> none
    return {"categories": ["person", "dog", "other"], "imagenet": [1, 1, 2, 2], "worn": [2],
            "audioset": [0, 1, -1], "combine": combine}


BASE = {"rule": "c3im", "person_audio_min": 0.5, "person_visual_min": 0.5}


def test_region_category_follows_the_c3im_label_and_the_person_rule():
    a = _toy_asset(BASE)
    logits = np.log(np.array([0.3, 0.2, 0.1, 0.4]))  # dog mass 0.5, other 0.5
    silent = np.array([-9.0, -9.0, 9.0])
    vis, aud, worn = cat.category_evidence(a, logits, silent)
    assert np.allclose(vis, [0.0, 0.5, 0.5]) and worn == pytest.approx(0.1)
    assert aud[2] == 0.0 and aud[1] == pytest.approx(1 / (1 + np.exp(9)))
    # the category of the region's C3IM label, scored by the region's visual mass of it
    assert cat.region_category(a, logits, silent, 0) == (1, pytest.approx(0.5))
    assert cat.region_category(a, logits, silent, 3) == (2, pytest.approx(0.5))
    # a coat with speech is a person (even when C3IM named the coat); with music it is not
    coat = np.log(np.array([0.05, 0.05, 0.8, 0.1]))
    speech = np.array([3.0, -9.0, -9.0])
    k, s = cat.region_category(a, coat, speech, 2)
    assert k == 0 and s == pytest.approx(1 / (1 + np.exp(-3.0)))
    assert cat.region_category(a, coat, np.array([-9.0, -9.0, 3.0]), 2)[0] == 2
    # speech alone on a dog region (no clothing) does not make a person
    assert cat.region_category(a, np.log(np.array([0.5, 0.4, 0.05, 0.05])), speech, 0)[0] == 1
    with pytest.raises(ValueError, match="rule"):
        cat.region_category(a, logits, silent, 0, {"rule": "vote"})


def test_mass_alternative_weights_visual_mass_by_audio():
    a = _toy_asset(BASE)
    logits = np.log(np.array([0.3, 0.2, 0.1, 0.4]))
    silent = np.array([-9.0, -9.0, 9.0])
    assert cat.mass_category(a, logits, silent, 0.0, 0.0) == (1, pytest.approx(0.5))
    assert cat.mass_category(a, logits, silent, 0.0, 0.6) == (2, pytest.approx(0.5))
    k, s = cat.mass_category(a, logits, silent, 1.0, 0.0)
    assert k == 1 and s == pytest.approx(0.5 / (1 + np.exp(9)))


def test_committed_asset_is_consistent():
    text = cat.asset_text()  # raises when the .sha256 does not match
    a = json.loads(text)
    assert a["version"] == cat.VERSION and a["categories"][-1] == "other"
    assert 15 <= len(a["categories"]) <= 30
    k = len(a["categories"])
    assert len(a["imagenet"]) == 1000 and all(0 <= c < k for c in a["imagenet"])
    assert len(a["audioset"]) == 521 and all(-1 <= c < k for c in a["audioset"])
    name = dict(enumerate(a["categories"]))
    from c3n.labels import audioset_names, imagenet_names

    img = {n: name[c] for n, c in zip(imagenet_names(), a["imagenet"])}
    for cls, want in [("violin", "musical_instrument"), ("golden retriever", "dog"), ("tabby", "cat"),
                      ("goldfinch", "bird"), ("fire engine", "truck"), ("scuba diver", "person"),
                      ("ox", "cattle"), ("ram", "sheep"), ("hog", "pig"), ("bee", "insect"),
                      ("tiger", "animal"), ("whippet", "dog"), ("tractor", "vehicle"), ("sports car", "car"),
                      ("school bus", "bus"),
                      ("mountain bike", "bicycle"), ("steam locomotive", "train"), ("canoe", "boat"),
                      ("airliner", "aircraft"), ("hammer", "tool"), ("vacuum", "appliance"),
                      ("cellular telephone", "electronics"), ("analog clock", "clock"),
                      ("revolver", "weapon"), ("binoculars", "other")]:
        assert img[cls] == want, (cls, img[cls])
    aud = {n: (name[c] if c >= 0 else None) for n, c in zip(audioset_names(), a["audioset"])}
    for cls, want in [("Speech", "person"), ("Bark", "dog"), ("Meow", "cat"), ("Chirp, tweet", "bird"),
                      ("Violin, fiddle", "musical_instrument"), ("Music", None), ("Silence", None),
                      ("Car", "car"), ("Gunshot, gunfire", "weapon"),
                      ("Fire engine, fire truck (siren)", "truck"), ("Idling", "vehicle")]:
        assert aud[cls] == want, (cls, aud[cls])
    worn = {imagenet_names()[i] for i in a["worn"]}
    assert {"jersey", "cardigan"} <= worn and "violin" not in worn


def test_asset_rebuilds_from_the_pinned_sources():
    committed = cat.load()
    rebuilt = cat.build_from_sources(committed["combine"])
    assert cat.dumps(rebuilt) == cat.asset_text()


def test_v2_keeps_v1_and_covers_527_audioset_classes():
    """categories-v2 = v1 (still embedded by the shipped models) + ``audioset_527``; the 521 YAMNet
    classes keep their category in the 527-class list (matched by display name)."""
    import json

    from c3n.labels import audioset_527_names, audioset_names

    v1 = json.loads((cat.ASSETS_DIR / "categories-v1.json").read_text(encoding="utf-8"))
    v2 = cat.load()
    assert v2["version"] == 2
    for k in ("categories", "imagenet", "audioset", "worn", "combine"):
        assert v2[k] == v1[k], k
    assert len(v2["audioset_527"]) == 527
    by_name = dict(zip(audioset_527_names(), v2["audioset_527"]))
    assert all(by_name[n] == c for n, c in zip(audioset_names(), v2["audioset"]))
