"""``python -m c3n.eval_cached``: the command of :mod:`c3n.train.eval_cached` under its documented name."""
from .train.eval_cached import main

if __name__ == "__main__":
    raise SystemExit(main())
