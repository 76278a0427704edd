"""``finsta-synth``: generate and export the Finsta-Synth dataset (also ``python -m modeling_finsta.synth``)."""

from __future__ import annotations

import argparse
from typing import Optional, Sequence

from .config import FinstaSynthConfig
from .dataset import generate_finsta_synth
from .export import export_finsta_synth


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``finsta-synth --out DIR [--num-train N --num-test M --seed S ...]``, or ``python -m modeling_finsta.synth``."""
    parser = argparse.ArgumentParser(description="Generate and export the Finsta-Synth dataset (MSR-VTT layout).")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--num-train", type=int, default=1000)
    parser.add_argument("--num-test", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-frames", type=int, default=8)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--objects-per-clip", type=int, default=2)
    parser.add_argument("--fps", type=float, default=1.0)
    parser.add_argument("--codec", default="libx264", choices=["libx264", "mpeg4"])
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = parser.parse_args(argv)
    config = FinstaSynthConfig(
        seed=args.seed,
        num_train=args.num_train,
        num_test=args.num_test,
        num_frames=args.num_frames,
        image_size=args.image_size,
        objects_per_clip=args.objects_per_clip,
        fps=args.fps,
    )
    dataset = generate_finsta_synth(config)
    export_finsta_synth(dataset, args.out, codec=args.codec, progress=not args.no_progress)
    counts = ", ".join(f"{name} {len(items)}" for name, items in dataset.hard_negatives.items())
    print(
        f"wrote {len(dataset.train)} train and {len(dataset.test)} test clips to {args.out} (hard negatives: {counts})"
    )
    return 0
