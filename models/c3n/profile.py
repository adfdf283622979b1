"""``python -m c3n.profile``: the command of :mod:`c3n.export.profile` under its documented name."""
from .export.profile import main

if __name__ == "__main__":
    raise SystemExit(main())
