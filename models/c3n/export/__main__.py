"""``python -m c3n.export``: :mod:`c3n.export.exporter`."""
from .exporter import main

if __name__ == "__main__":
    raise SystemExit(main())
