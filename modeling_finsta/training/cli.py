"""``finsta-train``: train a Finsta model from a recipe, on one process or under ``accelerate launch``.

Command line::

    finsta-train --recipe synthetic-tiny --output-dir runs/tiny [--resume] [--set training.max_steps=50]
    accelerate launch --config_file configuration/accelerate/ddp.yaml -m modeling_finsta.training --recipe ...

(``python -m modeling_finsta.training`` runs the same `main`, see ``__main__.py``.)
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Optional, Sequence

from .recipes import RecipeError, load_recipe
from .run import TrainingDivergedError, train


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``finsta-train``: train from a recipe (also under ``accelerate launch``)."""
    parser = argparse.ArgumentParser(prog="finsta-train", description="Train a Finsta model from a recipe.")
    parser.add_argument("--recipe", required=True, help="recipe name in configuration/recipes/ or a YAML path")
    parser.add_argument("--output-dir", required=True, help="checkpoints and the final Hub-ready model go here")
    parser.add_argument("--resume", action="store_true", help="continue from the last complete checkpoint")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a recipe value with a dotted key, e.g. --set training.max_steps=50 (repeatable)",
    )  # fmt: skip
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        recipe = load_recipe(arguments.recipe, arguments.overrides)
    except (RecipeError, FileNotFoundError) as error:
        print(f"finsta-train: {error}", file=sys.stderr)
        return 2
    try:
        result = train(recipe, arguments.output_dir, resume=arguments.resume)
    except TrainingDivergedError as error:
        print(f"finsta-train: {error}", file=sys.stderr)
        return 1
    if int(os.environ.get("RANK", "0")) == 0:
        loss = result.metrics.get("train_loss")
        print(
            f"finsta-train: {recipe.name}: {result.global_step} steps"
            + (f", mean train loss {loss:.4f}" if loss is not None else "")
            + f"; model saved in {result.output_dir}"
        )
    return 0


__all__ = ["main"]
