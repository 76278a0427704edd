"""Thin wrapper: a transformers VideoPrism checkpoint (folder or cached Hub id). See `python conversion/convert_videoprism_to_finsta.py --help`.

The logic lives in `modeling_finsta.hub.cli` so that the same command is installed as a
console script by `pip install -e .`.
"""

import sys

from modeling_finsta.hub.cli import convert_videoprism_main

if __name__ == "__main__":
    sys.exit(convert_videoprism_main())
