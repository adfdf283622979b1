"""``python -m c3n.train``: :mod:`c3n.train.finetune`."""
from .finetune import main

if __name__ == "__main__":
    raise SystemExit(main())
