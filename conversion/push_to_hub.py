"""Thin wrapper: upload a converted or trained Finsta folder to the Hub. See `python conversion/push_to_hub.py --help`.

The logic lives in `modeling_finsta.hub.cli` so that the same command is installed as a
console script by `pip install -e .`.
"""

import sys

from modeling_finsta.hub.cli import push_main

if __name__ == "__main__":
    sys.exit(push_main())
