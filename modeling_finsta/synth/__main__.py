"""``python -m modeling_finsta.synth --out DIR ...``: the ``finsta-synth`` command line."""

from .cli import main

raise SystemExit(main())
