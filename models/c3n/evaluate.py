"""``python -m c3n.evaluate``: the command of :mod:`c3n.eval.evaluate` under its documented name."""
from .eval.evaluate import main

if __name__ == "__main__":
    raise SystemExit(main())
