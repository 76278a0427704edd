"""The embedded default: Finsta vs plain CLIP4Clip on Finsta-Synth, trained and measured side by side.

``finsta-demo`` (CPU, no downloads) generates Finsta-Synth, trains with the same budget a plain
CLIP4Clip meanP, a plain CLIP4Clip seqTransf, Finsta with the annotated (gold) DSG and Finsta with the
latent DSG built from the host's own patch tokens, evaluates retrieval and the hard-negative suites
in both inference modes, prints one comparison table, writes ``results.json`` and keeps the latent
Finsta checkpoint (loadable with ``AutoModel.from_pretrained(folder, trust_remote_code=True)``).

``finsta-demo --ablations`` instead trains the annotated Finsta model once with everything on and
once with each ablatable component switched off, and prints the drops beside the paper's.
"""

from __future__ import annotations

import argparse
import os
from typing import Optional

import torch

from .comparison import BENCHMARK, DEMO, run_ablations, run_demo


def parse_arguments(argv: Optional[list[str]] = None) -> argparse.Namespace:
    """Command-line options, with the budget (steps, clips) filled in from the demo or benchmark preset."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", default="finsta-demo-output")
    parser.add_argument(
        "--benchmark", action="store_true",
        help=f"the longer benchmark budget ({BENCHMARK['steps']} steps per model, about 25 CPU minutes on 2 cores "
        f"instead of about 8); explicit --steps / --num-train still win",
    )  # fmt: skip
    parser.add_argument("--num-train", type=int, default=None, help=f"training clips (default {DEMO['num_train']})")
    parser.add_argument("--num-test", type=int, default=200)
    parser.add_argument(
        "--steps", type=int, default=None,
        help=f"training steps per model, the same budget for all (default {DEMO['steps']}, {BENCHMARK['steps']} with --benchmark)",
    )  # fmt: skip
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", default=None, help="comma-separated subset of the models")
    parser.add_argument("--ablations", action="store_true", help="run the ablation table instead of the comparison")
    args = parser.parse_args(argv)
    for key, value in (BENCHMARK if args.benchmark else DEMO).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def main(argv: Optional[list[str]] = None) -> None:
    args = parse_arguments(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    torch.set_num_threads(max(1, min(torch.get_num_threads(), os.cpu_count() or 1)))
    run_ablations(args) if args.ablations else run_demo(args)


__all__ = ["main", "parse_arguments"]
