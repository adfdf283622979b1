"""Compare two c3n-edge event files (JSON lines, schema/event.schema.json) of the same input run by
two builds or two engines; exit status 1 (an AssertionError naming the event) when they differ.

``python3 tests/compare_events.py A.jsonl B.jsonl --tol T (--box-px N | --box-iou X)
[--label-ties L] [--names NAME_A NAME_B]``

* A has at least one event, and both files have the same event types in the same order;
* ``score`` and ``c3im_score`` of each event's ``after`` object are numbers in both files (NaN is
  written as null) and differ by at most T;
* labels (``label`` and, in schema 2, ``sub_label``) are equal — or, with ``--label-ties L``, may
  differ where both runs' C3IM scores of the labels they chose agree to L: the unified label is
  C3IM's argmax over classes, and two classes whose scores tie within the engines' numeric
  difference can go either way (each such near-tie is printed and counted);
* boxes (``[x0, y0, x1, y1]``, source-frame pixels): with ``--box-px N`` present in both and every
  edge within N pixels; with ``--box-iou X`` present in both or in neither, and IoU >= X (mask
  pixels whose logits lie within the engines' difference of 0 can flip and move an edge).

Used by tests/aarch64.sh (aarch64 vs x86_64: exact labels, 1e-3, 1 px) and
tests/gpu/ort-gpu-check.sh (CUDA vs CPU engines).
"""
import argparse
import json
import sys


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--tol", type=float, required=True, help="max |diff| of score and c3im_score")
    box = ap.add_mutually_exclusive_group(required=True)
    box.add_argument("--box-px", type=float, help="max |diff| of each box edge, pixels")
    box.add_argument("--box-iou", type=float, help="min IoU of the two boxes")
    ap.add_argument("--label-ties", type=float, help="allow a different label where the C3IM scores agree to this")
    ap.add_argument("--names", nargs=2, default=None, metavar=("NAME_A", "NAME_B"))
    o = ap.parse_args()
    name_a, name_b = o.names or (o.a, o.b)

    a, b = ([json.loads(line) for line in open(p) if line.strip()] for p in (o.a, o.b))

    def after(e):
        return e.get("after") or {}

    assert a, f"no events from {name_a} ({o.a})"
    assert [e.get("type") for e in a] == [e.get("type") for e in b], \
        f"{name_a} and {name_b} event types differ: {[e.get('type') for e in a]} vs {[e.get('type') for e in b]}"
    worst, flips, worst_box, worst_iou = 0.0, [], 0.0, 1.0
    for x, y in zip(a, b):
        ax, ay = after(x), after(y)
        for f in ("score", "c3im_score"):
            vx, vy = ax.get(f), ay.get(f)
            assert isinstance(vx, (int, float)) and isinstance(vy, (int, float)), (f, vx, vy, x.get("type"))
            d = abs(vx - vy)
            worst = max(worst, d)
            assert d <= o.tol, (f, d, x.get("type"), ax.get("frame_time"), ax.get("label"))
        # schema 2: `label` is the region's category and `sub_label` its ImageNet class, both
        # following the region's C3IM argmax (`c3im_score`); schema 1 had only `label`
        for f in ("label", "sub_label"):
            if ax.get(f) != ay.get(f):
                assert o.label_ties is not None, \
                    (f"{f}s differ: {name_a} {ax.get(f)} vs {name_b} {ay.get(f)} "
                     f"({x.get('type')}, frame {ax.get('frame_time')})")
                assert abs(ax["c3im_score"] - ay["c3im_score"]) <= o.label_ties, (f, ax.get(f), ay.get(f))
                flips.append((ax.get(f), ax["c3im_score"], ay.get(f), ay["c3im_score"]))
        bx, by = ax.get("box"), ay.get("box")
        if o.box_px is not None:
            assert isinstance(bx, list) and isinstance(by, list), ("box", bx, by)
            edge = max((abs(p - q) for p, q in zip(bx, by)), default=0)
            worst_box = max(worst_box, edge)
            assert edge <= o.box_px, ("box", bx, by)
        else:
            assert (bx is None) == (by is None), ("box", bx, by)
            if bx is not None:
                iw = max(0, min(bx[2], by[2]) - max(bx[0], by[0]))
                ih = max(0, min(bx[3], by[3]) - max(bx[1], by[1]))
                area_x, area_y = (bx[2] - bx[0]) * (bx[3] - bx[1]), (by[2] - by[0]) * (by[3] - by[1])
                iou = iw * ih / max(1e-9, area_x + area_y - iw * ih)
                worst_box = max(worst_box, max(abs(p - q) for p, q in zip(bx, by)))
                worst_iou = min(worst_iou, iou)
                assert iou >= o.box_iou, ("box IoU", iou, bx, by)
    print(f"{name_a}: {len(a)} events: " + ", ".join(f"{e.get('type')}:{after(e).get('label')}" for e in a))
    print(f"{name_b}: the same {len(b)} events; max score diff {worst:.2e}; boxes: max edge diff "
          f"{worst_box:g} px" + ("" if o.box_px is not None else f", min IoU {worst_iou:.3f}"))
    for f in sorted(set(flips)):
        print("near-tie label (C3IM score): %s %.6f vs %s %.6f" % f)
    if o.label_ties is not None:
        print(f"{len(flips)} of {len(a)} events with a near-tied label")
    return 0


if __name__ == "__main__":
    sys.exit(main())
