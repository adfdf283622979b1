"""``python -m c3n.regionstats``: the command of :mod:`c3n.eval.regionstats` under its documented name."""
from .eval.regionstats import main

if __name__ == "__main__":
    raise SystemExit(main())
