"""Thin wrapper: an original CLIP4Clip training checkpoint. See `python conversion/convert_clip4clip_original_to_finsta.py --help`.

The logic lives in `modeling_finsta.hub.cli` so that the same command is installed as a
console script by `pip install -e .`.
"""

import sys

from modeling_finsta.hub.cli import convert_clip4clip_main

if __name__ == "__main__":
    sys.exit(convert_clip4clip_main())
