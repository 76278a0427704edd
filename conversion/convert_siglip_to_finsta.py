"""Thin wrapper: a transformers SigLIP / SigLIP2 (NaFlex) checkpoint (folder or cached Hub id). See `python conversion/convert_siglip_to_finsta.py --help`.

The logic lives in `modeling_finsta.hub.cli` so that the same command is installed as a
console script by `pip install -e .`.
"""

import sys

from modeling_finsta.hub.cli import convert_siglip_main

if __name__ == "__main__":
    sys.exit(convert_siglip_main())
