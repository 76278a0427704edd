"""``python -m modeling_finsta.evaluation``: the ``finsta-eval`` command line (see ``cli.py``)."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
