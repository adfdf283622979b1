"""``python -m c3n.report``: the command of :mod:`c3n.eval.report` under its documented name."""
from .eval.report import main

if __name__ == "__main__":
    raise SystemExit(main())
