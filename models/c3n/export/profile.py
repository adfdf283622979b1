"""Per-op-type time shares of an exported C3N graph under ONNX Runtime's profiler.

``python -m c3n.profile MODEL.onnx [--threads N] [--runs R]``: runs R windows of random input
(after one warm-up) on the CPU provider with ``SessionOptions.enable_profiling``, then sums the
profile's ``Node`` events (kernel time) per ONNX op type and prints a Markdown table: op type,
nodes, ms per window, share of the kernel time. tract's counterpart is
``cargo run --release --example tract_profile``.
"""
from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path


def profile(model: str, threads: int = 1, runs: int = 3) -> tuple[list[tuple[str, int, float]], float]:
    """Returns ``([(op_type, nodes, ms per window)], total kernel ms per window)``, slowest first."""
    import numpy as np
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.enable_profiling = True
    so.profile_file_prefix = str(Path("/tmp") / f"c3n-ort-profile-{Path(model).stem}")
    sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feed = {i.name: rng.standard_normal([d for d in i.shape]).astype(np.float32) for i in sess.get_inputs()}
    sess.run(None, feed)  # warm-up, excluded below
    sess.end_profiling()  # the warm-up's file is discarded: start a new profile
    so.enable_profiling = True
    sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    sess.run(None, feed)
    for _ in range(runs):
        sess.run(None, feed)
    events = json.loads(Path(sess.end_profiling()).read_text())
    per_op: dict[str, float] = collections.defaultdict(float)
    nodes: dict[str, set[str]] = collections.defaultdict(set)
    for e in events:
        if e.get("cat") != "Node" or not e["name"].endswith("_kernel_time"):
            continue
        op = e["args"]["op_name"]
        per_op[op] += e["dur"] / 1000.0
        nodes[op].add(e["name"])
    n = runs + 1
    rows = sorted(((op, len(nodes[op]), ms / n) for op, ms in per_op.items()), key=lambda r: -r[2])
    return rows, sum(r[2] for r in rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--top", type=int, default=8)
    a = ap.parse_args(argv)
    import onnxruntime as ort

    rows, total = profile(a.model, a.threads, a.runs)
    print(f"onnxruntime {ort.__version__}, {a.model}, {a.threads} thread(s): kernel time {total:.1f} ms per window")
    print("| op | nodes | ms per window | share |")
    print("|---|---|---|---|")
    for op, k, ms in rows[: a.top]:
        print(f"| {op} | {k} | {ms:.1f} | {100 * ms / total:.1f} % |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
