"""``finsta-demo``: the embedded default, Finsta vs plain CLIP4Clip and two controls on Finsta-Synth,
trained and measured side by side (tooling: never travels with a checkpoint).

``variants.py`` holds the compared models (`VARIANTS`), the Finsta-Synth data they share and how one is
built, trained and evaluated; ``comparison.py`` the seeds-and-splits comparison and its report
(`run_demo`) and the ablations (`run_ablations`); ``post_training.py`` the paper's post-training
protocol (`run_protocol`); ``cli.py`` the command line (`parse_arguments`, `main`; its docstring is the
``--help`` text).
"""

from .cli import main, parse_arguments
from .comparison import (
    BENCHMARK,
    DEMO,
    PAPER_ABLATION_DROPS,
    RESULT_METRICS,
    aggregate,
    beyond_noise,
    format_table,
    mean_and_sd,
    run_ablations,
    run_demo,
    summarise,
)
from .variants import (
    DEMO_VARIANTS,
    PLAIN_HOST,
    SAVED_VARIANT,
    VARIANTS,
    DemoData,
    Variant,
    build_model,
    evaluate,
    finsta_head_settings,
    prepare_data,
    shuffled_text_graph,
    train_model,
)

__all__ = [
    "BENCHMARK",
    "DEMO",
    "DEMO_VARIANTS",
    "PAPER_ABLATION_DROPS",
    "PLAIN_HOST",
    "RESULT_METRICS",
    "SAVED_VARIANT",
    "VARIANTS",
    "DemoData",
    "Variant",
    "aggregate",
    "beyond_noise",
    "build_model",
    "evaluate",
    "finsta_head_settings",
    "format_table",
    "main",
    "mean_and_sd",
    "parse_arguments",
    "prepare_data",
    "run_ablations",
    "run_demo",
    "shuffled_text_graph",
    "summarise",
    "train_model",
]
