"""``python -m c3n.quantize``: the command of :mod:`c3n.export.quantize` under its documented name."""
from .export.quantize import main

if __name__ == "__main__":
    raise SystemExit(main())
