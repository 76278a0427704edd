"""``finsta-eval`` (``python -m modeling_finsta.evaluation``): evaluate a saved Finsta model on a dataset folder.

The folder is read with ``modeling_finsta.readers.load_retrieval_split`` (MSR-VTT, MSVD, DiDeMo
layouts), plus its optional ``scene_graphs/``, ``text_scene_graphs.jsonl`` and ``hard_negatives/``.
``--task classification`` / ``--task multiple-choice`` are handled in ``task_cli.py``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Optional, Sequence

import torch

from ..scene_graphs import ParsedTextSceneGraph
from .encoding import DSG_SOURCES, INFERENCE_MODES
from .hard_negatives import HARD_NEGATIVES_FOLDER, read_hard_negative_suites
from .model_evaluation import TEXT_SCENE_GRAPHS_FILE, evaluate_model, format_results_table, read_text_scene_graphs
from .task_cli import TASK_DATASETS, TASKS, add_task_arguments, run_task

RETRIEVAL_DATASETS = ("msrvtt", "msvd", "didemo")


def _build_argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="finsta-eval",
        description="Text-video retrieval (R@1/5/10, MdR, MnR), hard-negative suites and latent-DSG quality of a Finsta model.",
    )
    parser.add_argument("--model", required=True, help="saved model folder (AutoModel, trust_remote_code) with its processor")
    parser.add_argument("--data", required=True, help="dataset folder")
    parser.add_argument(
        "--task", choices=TASKS, default="retrieval",
        help="retrieval (default), classification (zero-shot, or a FinstaForVideoClassification head) or multiple-choice",
    )  # fmt: skip
    parser.add_argument("--dataset", required=True, choices=[*RETRIEVAL_DATASETS, *TASK_DATASETS])
    parser.add_argument("--split", default="test")
    parser.add_argument("--modes", nargs="+", choices=INFERENCE_MODES, default=list(INFERENCE_MODES))
    parser.add_argument(
        "--dsg", nargs="+", choices=DSG_SOURCES, default=None,
        help="DSG sources; default: latent, plus annotated when every video has scene_graphs/{id}.json",
    )
    parser.add_argument("--hard-negatives", action="store_true", help="also score hard_negatives/*.jsonl of the dataset folder")
    parser.add_argument("--output", default=None, help="write the results as JSON here")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--video-to-text", choices=["captions", "videos"], default="captions", help="multi-caption v2t protocol")
    parser.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    add_task_arguments(parser)
    return parser


def _load_model_and_processor(folder: str, device: str):
    from transformers import AutoModel

    from ..processing_finsta import FinstaProcessor

    model = AutoModel.from_pretrained(folder, trust_remote_code=True)
    model.to(device).eval()
    processor = FinstaProcessor.from_pretrained(folder)
    return model, processor


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``finsta-eval --model DIR --data ROOT --dataset msrvtt|msvd|didemo [--split test] ...``"""
    parser = _build_argument_parser()
    args = parser.parse_args(argv)
    if args.task != "retrieval":
        return run_task(args, parser)
    if args.dataset not in RETRIEVAL_DATASETS:
        parser.error(f"--dataset {args.dataset} is not a retrieval dataset ({', '.join(RETRIEVAL_DATASETS)}); pass --task")
    from ..readers import load_retrieval_split

    root = Path(args.data)
    split = load_retrieval_split(args.dataset, root, args.split)
    scene_graph_paths = split.scene_graph_paths
    complete_graphs = scene_graph_paths is not None and all(path is not None for path in scene_graph_paths)
    if args.dsg is None:
        dsg_sources = ["latent", "annotated"] if complete_graphs else ["latent"]
        if not complete_graphs:
            print(f"note: {root / 'scene_graphs'} does not cover every video; evaluating the latent DSG only")
    else:
        dsg_sources = list(dict.fromkeys(args.dsg))
        if "annotated" in dsg_sources and not complete_graphs:
            parser.error(f"--dsg annotated needs scene_graphs/{{video_id}}.json for every video of the split under {root}")

    gold_text_graphs: dict[str, ParsedTextSceneGraph] = {}
    if (root / TEXT_SCENE_GRAPHS_FILE).exists():
        gold_text_graphs = read_text_scene_graphs(root / TEXT_SCENE_GRAPHS_FILE)
    hard_negatives = None
    if args.hard_negatives:
        hard_negatives, dropped = read_hard_negative_suites(root / HARD_NEGATIVES_FOLDER, split.video_ids, gold_text_graphs)
        if dropped:
            print(f"note: {dropped} hard-negative items name videos outside the {args.split} split and were skipped")

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    model, processor = _load_model_and_processor(args.model, device)
    captions = [caption for caption, _ in split.captions]
    text_graphs = [gold_text_graphs.get(caption) for caption in captions] if gold_text_graphs else None
    if text_graphs is None and processor.parser_backend is None:
        print("note: the processor has no caption parser and the dataset no text_scene_graphs.jsonl; fused text embeddings are host-only")
    results = evaluate_model(
        model,
        processor,
        captions,
        [str(path) for _, path in split.videos],
        split.caption_to_video,
        text_scene_graphs=text_graphs,
        video_scene_graphs=[None if p is None else str(p) for p in scene_graph_paths] if complete_graphs else None,
        hard_negatives=hard_negatives,
        modes=args.modes,
        dsg_sources=dsg_sources,
        batch_size=args.batch_size,
        video_to_text=args.video_to_text,
        show_progress=False if args.no_progress else None,
    )
    results["meta"] = {"model": str(args.model), "data": str(root), "dataset": args.dataset, "split": args.split}
    print(f"{args.dataset} {args.split}: {results['num_captions']} captions, {results['num_videos']} videos")
    print(format_results_table(results))
    if args.output:
        output = Path(args.output)
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {output}")
    return 0
