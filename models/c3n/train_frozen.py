"""``python -m c3n.train_frozen``: the command of :mod:`c3n.train.frozen` under its documented name."""
from .train.frozen import main

if __name__ == "__main__":
    raise SystemExit(main())
