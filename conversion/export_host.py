"""Thin wrapper: a Finsta model's host back in the host's own format. See `python conversion/export_host.py --help`.

The logic lives in `modeling_finsta.hub.cli` so that the same command is installed as a
console script (`finsta-export-host`) by `pip install -e .`.
"""

import sys

from modeling_finsta.hub.cli import export_host_main

if __name__ == "__main__":
    sys.exit(export_host_main())
