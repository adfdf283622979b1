"""``python -m c3n.featcache``: the command of :mod:`c3n.train.featcache` under its documented name."""
from .train.featcache import main

if __name__ == "__main__":
    raise SystemExit(main())
