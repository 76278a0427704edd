"""``finsta-eval --task classification | multiple-choice``: the same modes, DSG sources and progress bars
as retrieval, on datasets read with ``modeling_finsta.readers`` (Kinetics, SSv2, UCF-101, HMDB-51;
MSR-VTT-MC). A dataset folder's ``text_scene_graphs.jsonl`` gives gold TSGs for class names / candidates
(a finsta-synth task export has one); ``scene_graphs/{video_id}.json`` enables ``--dsg annotated``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch

from ..zero_shot import DEFAULT_TEMPLATES
from .encoding import INFERENCE_MODES
from .model_evaluation import TEXT_SCENE_GRAPHS_FILE, read_text_scene_graphs

TASKS = ("retrieval", "classification", "multiple-choice")
CLASSIFICATION_DATASETS = ("kinetics", "kinetics400", "ssv2", "ucf101", "hmdb51")
MULTIPLE_CHOICE_DATASETS = ("msrvtt-mc",)
TASK_DATASETS = (*CLASSIFICATION_DATASETS, *MULTIPLE_CHOICE_DATASETS)


def add_task_arguments(parser: argparse.ArgumentParser) -> None:
    """Options used only by ``--task classification`` / ``multiple-choice``."""
    group = parser.add_argument_group("classification and multiple choice")
    group.add_argument(
        "--templates", nargs="+", default=None,
        help="prompt templates with {label} for zero-shot classification (default: a person-action ensemble; "
        "'{label}' alone when class names are whole captions, as in a finsta-synth export)",
    )  # fmt: skip
    group.add_argument("--use-head", action="store_true", help="score with the model's trained classifier head (no prompts)")
    group.add_argument("--fold", type=int, default=1, help="UCF-101 / HMDB-51 split fold (1-3)")
    group.add_argument("--top-k", type=int, nargs="+", default=[1, 5], help="top-k accuracies to report")


def load_model_and_processor(folder: str, device: str):
    """``AutoModel`` (remote code allowed) in eval mode on ``device`` and the folder's ``AutoProcessor``."""
    from transformers import AutoModel, AutoProcessor

    model = AutoModel.from_pretrained(folder, trust_remote_code=True).to(device).eval()
    return model, AutoProcessor.from_pretrained(folder, trust_remote_code=True)


def _dsg_sources(args, parser, scene_graph_paths, root: Path) -> list[str]:
    complete = scene_graph_paths is not None and all(path is not None for path in scene_graph_paths)
    if args.dsg is None:
        return ["latent", "annotated"] if complete else ["latent"]
    sources = list(dict.fromkeys(args.dsg))
    if "annotated" in sources and not complete:
        parser.error(f"--dsg annotated needs scene_graphs/{{video_id}}.json for every video of the split under {root}")
    return sources


def format_task_table(results: dict[str, Any], metrics: list[str]) -> str:
    """One row per mode and DSG source."""
    header = ["mode", "dsg", *metrics]
    rows = []
    for mode in INFERENCE_MODES:
        for dsg, values in results.get(mode, {}).items():
            cells = [f"{values[m]:.1f}" if isinstance(values.get(m), float) else "-" for m in metrics]
            rows.append([mode, dsg if mode == "fused" else f"{dsg} (host only)", *cells])
    widths = [max(len(line[i]) for line in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.rjust(width) for cell, width in zip(line, widths)) for line in [header, *rows]]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def run_task(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Run ``--task classification`` or ``--task multiple-choice`` (see the module docstring)."""
    from ..readers import load_classification_split, load_multiple_choice_split
    from .classification import evaluate_classification
    from .multiple_choice import evaluate_multiple_choice

    root = Path(args.data)
    expected = CLASSIFICATION_DATASETS if args.task == "classification" else MULTIPLE_CHOICE_DATASETS
    if args.dataset not in expected:
        parser.error(f"--task {args.task} needs --dataset one of {', '.join(expected)}, got {args.dataset}")
    extra = {"fold": args.fold} if args.dataset in ("ucf101", "hmdb51") else {}
    if args.task == "classification":
        split = load_classification_split(args.dataset, root, args.split, **extra)
    else:
        split = load_multiple_choice_split(args.dataset, root, args.split)
    dsg_sources = _dsg_sources(args, parser, split.scene_graph_paths, root)
    gold = read_text_scene_graphs(root / TEXT_SCENE_GRAPHS_FILE) if (root / TEXT_SCENE_GRAPHS_FILE).exists() else {}
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    model, processor = load_model_and_processor(args.model, device)
    videos = [str(path) for _, path in split.videos]
    graphs = None
    if "annotated" in dsg_sources:
        graphs = [str(path) for path in split.scene_graph_paths]
    common = dict(
        video_scene_graphs=graphs, modes=args.modes, dsg_sources=dsg_sources, batch_size=args.batch_size,
        show_progress=False if args.no_progress else None,
    )  # fmt: skip
    if args.task == "classification":
        if args.use_head and not hasattr(model, "classifier"):
            # AutoModel gives the FinstaModel of the folder; the head lives in FinstaForVideoClassification.
            from transformers import AutoModelForVideoClassification

            model = AutoModelForVideoClassification.from_pretrained(args.model, trust_remote_code=True).to(device).eval()
        names = None if args.use_head else split.class_names
        results = evaluate_classification(
            model, processor, videos, split.labels, names, templates=args.templates or list(DEFAULT_TEMPLATES),
            label_graphs=None if names is None else [gold.get(name) for name in names], ks=args.top_k, **common,
        )  # fmt: skip
        metrics = [f"top{k}" for k in args.top_k]
        summary = f"{args.dataset} {args.split}: {results['num_videos']} videos, {results['num_classes']} classes"
    else:
        texts = [split.candidate_texts(i) for i in range(len(split.videos))]
        results = evaluate_multiple_choice(
            model, processor, videos, split.candidates, split.answers, questions=split.questions,
            candidate_graphs=[[gold.get(text) for text in row] for row in texts], **common,
        )  # fmt: skip
        metrics = ["accuracy"]
        summary = f"{args.dataset} {args.split}: {results['num_items']} items, {results['num_candidates']} candidates each"
    results["meta"] = {"model": str(args.model), "data": str(root), "dataset": args.dataset, "split": args.split, "task": args.task}
    print(summary)
    print(format_task_table(results, metrics))
    if args.output:
        output = Path(args.output)
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {output}")
    return 0


__all__ = ["CLASSIFICATION_DATASETS", "MULTIPLE_CHOICE_DATASETS", "TASKS", "TASK_DATASETS", "add_task_arguments", "format_task_table",
           "load_model_and_processor", "run_task"]
