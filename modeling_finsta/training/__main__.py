"""``python -m modeling_finsta.training`` and ``accelerate launch -m modeling_finsta.training``: ``finsta-train``."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
