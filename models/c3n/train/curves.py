"""Learning curves of :mod:`c3n.train.frozen` runs: validation mIoU against step, one PNG.

``python -m c3n.train.curves RUN_DIR [RUN_DIR ...] --out learning-curve.png`` reads each run's
``history.json`` and draws S4 (solid) and MS3 (dashed) validation mIoU per run, plus the false-alarm
rate on the silent / off-screen validation clips (dotted, right axis).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def plot(runs: list[Path], out: Path, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    ax2 = ax.twinx()
    for k, run in enumerate(runs):
        h = json.loads((run / "history.json").read_text())
        steps = [r["step"] for r in h]
        c = f"C{k}"
        ax.plot(steps, [r["s4_miou"] for r in h], "o-", color=c, label=f"{run.name} S4 mIoU")
        ax.plot(steps, [r["ms3_miou"] for r in h], "s--", color=c, label=f"{run.name} MS3 mIoU")
        fa = [(r.get("s4_false_alarm", 0) + r.get("ms3_false_alarm", 0)) / 2 for r in h]
        ax2.plot(steps, fa, ":", color=c, alpha=0.7, label=f"{run.name} false alarms")
    ax.set_xlabel("step (batch of 4 clips)")
    ax.set_ylabel("validation mIoU")
    ax2.set_ylabel("silent / off-screen clips with a false region")
    ax.set_xlim(left=0)
    ax.set_ylim(0, 1)
    ax2.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], fontsize=7, loc="lower right")
    ax.set_title(title or "C3N edge, frozen backbone: validation curves")
    fig.tight_layout()
    fig.savefig(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--title", default="")
    a = ap.parse_args(argv)
    plot(a.runs, a.out, a.title)
    print(a.out, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
