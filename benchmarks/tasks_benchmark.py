"""Beyond retrieval on Finsta-Synth: zero-shot classification on the order / role classes and five-way
multiple choice, plain CLIP4Clip meanP vs Finsta (fused and distilled), mean +- sd over seeds; plus
the time to classify 10,000 cached video embeddings against 400 class prompts.

Per seed: Finsta-Synth (``--num-train`` clips) with one hard-negative caption per suite (temporal,
binding, role: K = 3 per video) for both models; the demo's budget (``--steps`` 600, batch 32, lr
3e-3, the demo's tiny CLIP from pixels); the Finsta model is the latent-DSG one (no annotation at test
time). Evaluation on held-out task suites of the same seed: the classification suite (24 classes over
3 objects whose names are the grammar's captions, so the prompt template is ``{label}`` with gold
TSGs) and the multiple-choice suite (true, reversed order, swapped roles, swapped colours, another
clip's caption). Nothing is trained on the suites.

    python benchmarks/tasks_benchmark.py --output-dir tasks-benchmark            # the closing figures
    python benchmarks/tasks_benchmark.py --steps 5 --num-train 64 --seeds 0      # a quick check
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

from modeling_finsta.demo.variants import PLAIN_HOST, new_tiny_model, synth_processor, train_model
from modeling_finsta.evaluation import evaluate_classification, evaluate_multiple_choice
from modeling_finsta.synth import FinstaSynthConfig, generate_finsta_synth, synth_classification_suite, synth_multiple_choice_suite
from modeling_finsta.training import FinstaExampleDataset, finsta_synth_k_negative_examples, finsta_synth_tokenizer
from modeling_finsta.zero_shot import IDENTITY_TEMPLATES, class_scores, top_k_accuracy

VARIANTS = {
    "meanP": dict(temporal_head="meanP", **PLAIN_HOST),
    "finsta": dict(temporal_head="meanP", inference_mode="fused"),
}
ROWS = (("meanP", "distilled", "meanP host"), ("finsta", "fused", "Finsta fused"), ("finsta", "distilled", "Finsta distilled"))
METRICS = ("cls_top1", "cls_order_top1", "cls_role_top1", "mc_accuracy", "mc_temporal", "mc_role", "mc_binding", "mc_other")


def prepare(seed: int, num_train: int, image_size: int = 32, num_frames: int = 8):
    """Finsta-Synth of ``seed`` with K = 3 hard negatives per training clip, its processor and the max caption length."""
    config = FinstaSynthConfig(seed=seed, num_train=num_train, num_test=0, image_size=image_size, num_frames=num_frames)
    dataset = generate_finsta_synth(config)
    tokenizer = finsta_synth_tokenizer(config)
    return config, dataset, tokenizer


def run_seed(seed: int, args: argparse.Namespace, output: Path) -> dict[str, dict[str, float]]:
    started = time.time()
    config, dataset, tokenizer = prepare(seed, args.num_train)
    classification = synth_classification_suite(config, num_clips=args.num_clips)
    mc = synth_multiple_choice_suite(config, num_items=args.num_items)
    captions = [s.caption for s in dataset.train] + classification.class_names + [c for row in mc.candidates for c in row]
    processor, max_length = synth_processor(tokenizer, captions, config.image_size, config.num_frames, parser_backend=None)
    examples = FinstaExampleDataset(finsta_synth_k_negative_examples(dataset.train, processor, config, annotated=False))
    print(f"[seed {seed}] data ready in {time.time() - started:.0f} s (max_length {max_length})", flush=True)
    results: dict[str, dict[str, float]] = {}
    for name, overrides in VARIANTS.items():
        start = time.time()
        model = train_model(
            f"{name}-seed{seed}", new_tiny_model(overrides, processor, max_length, seed), examples, processor,
            output / "runs", steps=args.steps, batch_size=args.batch_size, learning_rate=args.learning_rate, seed=seed,
            show_progress=False,
        )  # fmt: skip
        trained = time.time() - start
        modes = ("distilled",) if name == "meanP" else ("fused", "distilled")
        cls = evaluate_classification(
            model, processor, [s.frames for s in classification.samples], classification.labels,
            classification.class_names, templates=IDENTITY_TEMPLATES, label_graphs=classification.label_graphs,
            class_groups=classification.class_groups, modes=modes, show_progress=False,
        )  # fmt: skip
        choice = evaluate_multiple_choice(
            model, processor, [s.frames for s in mc.samples], mc.candidates, mc.answers,
            candidate_graphs=mc.candidate_graphs, candidate_kinds=mc.kinds, modes=modes, show_progress=False,
        )  # fmt: skip
        for mode in modes:
            c, m = cls[mode]["latent"], choice[mode]["latent"]
            results[f"{name}/{mode}"] = {
                "cls_top1": c["top1"], "cls_order_top1": c["order_top1"], "cls_role_top1": c["role_top1"],
                "mc_accuracy": m["accuracy"], "mc_temporal": m["temporal_pairwise"], "mc_role": m["role_pairwise"],
                "mc_binding": m["binding_pairwise"], "mc_other": m["other_pairwise"],
            }  # fmt: skip
        print(f"[seed {seed}] {name}: trained in {trained:.0f} s; " + "; ".join(
            f"{mode}: cls top1 {results[f'{name}/{mode}']['cls_top1']:.1f}, mc {results[f'{name}/{mode}']['mc_accuracy']:.1f}"
            for mode in modes), flush=True)  # fmt: skip
    return results


def scoring_time(num_videos: int = 10_000, num_classes: int = 400, width: int = 512, repeats: int = 5) -> dict[str, float]:
    """Seconds to score cached video embeddings against cached class embeddings and take top-1 / top-5."""
    videos, classes = torch.randn(num_videos, width), torch.randn(num_classes, width)
    targets = torch.randint(0, num_classes, (num_videos,))
    class_scores(videos[:8], classes)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        top_k_accuracy(class_scores(videos, classes), targets)
        times.append(time.perf_counter() - start)
    return {"videos": num_videos, "classes": num_classes, "width": width, "median_seconds": statistics.median(times),
            "max_seconds": max(times), "threads": torch.get_num_threads()}  # fmt: skip


def summarise(per_seed: dict[int, dict[str, dict[str, float]]]) -> dict[str, dict[str, tuple[float, float]]]:
    summary = {}
    for key in next(iter(per_seed.values())):
        summary[key] = {}
        for metric in METRICS:
            values = [per_seed[seed][key][metric] for seed in per_seed]
            summary[key][metric] = (statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0)
    return summary


def format_summary(summary, num_seeds: int) -> str:
    header = ["model", *METRICS]
    body = []
    for name, mode, label in ROWS:
        row = summary.get(f"{name}/{mode}")
        if row is not None:
            body.append([label, *(f"{row[m][0]:.1f} +- {row[m][1]:.1f}" for m in METRICS)])
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    lines = [" | ".join(cell.ljust(width) for cell, width in zip(line, widths)) for line in [header, *body]]
    lines.insert(1, "-|-".join("-" * width for width in widths))
    return f"mean +- sd over {num_seeds} seed(s)\n" + "\n".join(lines)


def main(argv=None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", default="tasks-benchmark")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--num-train", type=int, default=4000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--num-clips", type=int, default=200, help="classification suite clips")
    parser.add_argument("--num-items", type=int, default=200, help="multiple-choice items")
    parser.add_argument(
        "--threads", type=int, default=1,
        help="torch threads (1 by default: on a shared 2-core machine two threads spin against other jobs and run 30x slower)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    torch.set_num_threads(args.threads)
    output = Path(args.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    started = time.time()
    per_seed = {seed: run_seed(seed, args, output) for seed in args.seeds}
    summary = summarise(per_seed)
    timing = scoring_time()
    report = {
        "per_seed": per_seed, "summary": summary, "scoring_10000x400": timing, "settings": vars(args),
        "total_seconds": round(time.time() - started, 1),
    }  # fmt: skip
    (output / "results.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print("\n" + format_summary(summary, len(args.seeds)))
    print(f"\n10,000 x 400 classification from cached embeddings (width 512): median {timing['median_seconds'] * 1000:.1f} ms, "
          f"max {timing['max_seconds'] * 1000:.1f} ms ({timing['threads']} threads)")  # fmt: skip
    print(f"total {report['total_seconds']:.0f} s; wrote {output / 'results.json'}")
    return report


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
