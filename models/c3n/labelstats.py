"""``python -m c3n.labelstats``: the command of :mod:`c3n.eval.labelstats` under its documented name."""
from .eval.labelstats import main

if __name__ == "__main__":
    raise SystemExit(main())
