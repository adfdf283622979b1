"""``python -m c3n.bench_torch``: the command of :mod:`c3n.export.bench_torch` under its documented name."""
from .export.bench_torch import main

if __name__ == "__main__":
    raise SystemExit(main())
