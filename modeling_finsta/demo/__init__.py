"""``finsta-demo``: the embedded default, Finsta vs plain CLIP4Clip on Finsta-Synth, trained and measured
side by side (tooling: never travels with a checkpoint).

``comparison.py`` holds the variants and their training, evaluation and report (`run_demo`,
`run_ablations`); ``cli.py`` the command line (`parse_arguments`, `main`; its docstring is the
``--help`` text).
"""

from .comparison import (
    BENCHMARK,
    DEMO,
    PAPER_ABLATION_DROPS,
    PLAIN_HOST,
    RESULT_METRICS,
    evaluate_variant,
    finsta_head_settings,
    format_table,
    model_variants,
    prepare_data,
    run_ablations,
    run_demo,
    summarise,
    train_variant,
)
from .cli import main, parse_arguments

__all__ = [
    "BENCHMARK",
    "DEMO",
    "PAPER_ABLATION_DROPS",
    "PLAIN_HOST",
    "RESULT_METRICS",
    "evaluate_variant",
    "finsta_head_settings",
    "format_table",
    "main",
    "model_variants",
    "parse_arguments",
    "prepare_data",
    "run_ablations",
    "run_demo",
    "summarise",
    "train_variant",
]
