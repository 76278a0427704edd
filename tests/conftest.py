"""Test setup: offline Hub, tests/ importable (tiny model builders), quiet transformers."""

import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# One intra-op thread: tiny models gain nothing from more, and on a busy machine oversubscribed threads
# make steps tens of times slower (subprocess tests inherit it too).
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
sys.path.insert(0, os.path.dirname(__file__))
