"""The embedded default: Finsta vs plain CLIP4Clip and two controls on Finsta-Synth, trained and measured side by side.

``finsta-demo`` (CPU, no downloads) generates Finsta-Synth, trains with the same budget plain CLIP4Clip
meanP and seqTransf, a capacity control (Finsta's head and losses with no scene graph), Finsta with
gold caption graphs and the annotated DSG, and Finsta fully automatic (captions parsed by the
project's parser, latent DSG from the host's own patch tokens, no gold video information), evaluates
retrieval and the temporal / binding / role / static suites on the in-distribution test split and
on a compositional held-out split in both inference modes, prints one table, writes
``results.json`` after every model and keeps the fully automatic checkpoint (loadable with
``AutoModel.from_pretrained(folder, trust_remote_code=True)``).

``--benchmark`` trains every model (also Finsta with gold captions + latent DSG and the
shuffled-graph control) on three seeds and reports mean ± sd. ``--ablations`` trains the annotated
Finsta model with each ablatable component off. ``--protocol post-training`` runs the paper's
protocol: a well-trained host, a short Finsta post-training pass from it against an equal-budget
control, then the host alone (see ``post_training.py``).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Optional

import torch

from .comparison import BENCHMARK, DEMO, NUM_COMPOSITIONAL, run_ablations, run_demo


def parse_arguments(argv: Optional[list[str]] = None) -> argparse.Namespace:
    """Command-line options, with the budget (steps, clips, seeds, models) filled in from the chosen preset."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", default="finsta-demo-output")
    parser.add_argument(
        "--benchmark", action="store_true",
        help=f"every model, {len(BENCHMARK['seeds'])} seeds, {BENCHMARK['steps']} steps per model; explicit options still win",
    )  # fmt: skip
    parser.add_argument("--protocol", choices=["post-training"], default=None, help="run the paper's post-training protocol")
    parser.add_argument("--quick", action="store_true", help="with --protocol: the short budget (one seed)")
    parser.add_argument("--transfer-ablations", action="store_true", help="with --protocol: what each transfer switch contributes")
    parser.add_argument("--cache-dir", default=None, help="with --protocol: where stage-0 hosts are cached (default OUTPUT/stage0-cache)")
    parser.add_argument("--ablation-seeds", type=int, nargs="+", default=None,
                        help="with --transfer-ablations: the seeds of the switch table (default: the first seed)")
    parser.add_argument("--post-clips", type=int, default=None,
                        help="with --protocol: clips of the post-training split (default: the budget's; a new stage 0 follows)")
    parser.add_argument("--stage0-in-batch-negatives-only", action="store_true",
                        help="with --protocol: train stage 0 as CLIP4Clip itself trains, without the hard-negative captions (a new stage 0 follows)")
    parser.add_argument("--num-train", type=int, default=None, help=f"training clips (default {DEMO['num_train']})")
    parser.add_argument("--num-test", type=int, default=200)
    parser.add_argument(
        "--num-compositional", type=int, default=NUM_COMPOSITIONAL,
        help="clips of the compositional held-out split (0: none)",
    )  # fmt: skip
    parser.add_argument(
        "--steps", type=int, default=None,
        help=f"training steps per model, the same budget for all (default {DEMO['steps']}, {BENCHMARK['steps']} with --benchmark)",
    )  # fmt: skip
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="data and training seeds (default: the preset's)")
    parser.add_argument("--seed", type=int, default=None, help="one seed (same as --seeds N)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--only", default=None, help="comma-separated subset of the models")
    parser.add_argument(
        "--resume", action="store_true",
        help="keep the models OUTPUT/results.json already measured with the same settings and train only the rest",
    )  # fmt: skip
    parser.add_argument("--ablations", action="store_true", help="run the ablation table instead of the comparison")
    parser.add_argument(
        "--no-progress", dest="progress", action="store_false",
        help="no progress bars (the default when stderr is not a terminal, e.g. in logs)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.post_clips is not None and args.post_clips <= 0:
        parser.error(f"--post-clips must be a positive number of clips, got {args.post_clips}")
    if args.ablation_seeds and not args.transfer_ablations:
        parser.error("--ablation-seeds needs --transfer-ablations")
    if args.seed is not None:
        args.seeds = [args.seed]
    if args.protocol is not None:
        return args
    preset = BENCHMARK if args.benchmark else DEMO
    for key in ("steps", "num_train", "seeds"):
        if getattr(args, key) is None:
            setattr(args, key, preset[key])
    args.seeds = list(args.seeds)
    args.variants = list(preset["variants"])
    if args.progress:
        args.progress = sys.stderr.isatty()
    return args


def main(argv: Optional[list[str]] = None) -> None:
    args = parse_arguments(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    torch.set_num_threads(max(1, min(torch.get_num_threads(), os.cpu_count() or 1)))
    if args.protocol == "post-training":
        from .post_training import run_protocol

        run_protocol(args)
    elif args.ablations:
        run_ablations(args)
    else:
        run_demo(args)


__all__ = ["main", "parse_arguments"]
