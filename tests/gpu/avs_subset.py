"""Copy the first N test clips of each AVSBench subset (meta CSV order) into a new root.

``python3 tests/gpu/avs_subset.py SRC DST N_S4 N_MS3``: SRC is an AVSBench-format folder (the
composite benchmark of models/README.md); DST gets ``s4_meta_data.csv`` / ``ms3_meta_data.csv``
with only those test rows and every file whose path names one of their clips (frames, masks,
audio), for a `c3n-edge eval` on a machine the whole split does not fit onto
(tests/gpu/ort-gpu-check.sh with C3N_EVAL_DATA).
"""
import csv
import os
import shutil
import sys
from pathlib import Path

src, dst, n_s4, n_ms3 = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
for sub, meta, n in (("Single-source", "s4_meta_data.csv", n_s4), ("Multi-sources", "ms3_meta_data.csv", n_ms3)):
    rows = list(csv.DictReader(open(src / sub / meta)))
    keep = [r for r in rows if r["split"] == "test"][:n]
    vids = {r["vid"] for r in keep}
    (dst / sub).mkdir(parents=True, exist_ok=True)
    with open(dst / sub / meta, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
        w.writeheader()
        w.writerows(keep)
    copied = 0
    for root, dirs, files in os.walk(src / sub):
        rel = Path(root).relative_to(src / sub)
        for fn in files:
            p = rel / fn
            if any(part in vids for part in p.parts) or Path(fn).stem in vids:
                (dst / sub / p).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src / sub / p, dst / sub / p)
                copied += 1
    print(sub, len(keep), "clips", copied, "files")
