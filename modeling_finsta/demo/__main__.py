"""``python -m modeling_finsta.demo``: ``finsta-demo``."""

from .cli import main

if __name__ == "__main__":
    main()
