"""Finsta vs plain CLIP4Clip and two controls on Finsta-Synth, trained and measured side by side (``finsta-demo``).

`run_demo` trains every model of the chosen `VARIANTS` with the same budget for each seed, evaluates
retrieval and the hard-negative suites on the in-distribution test split and on the compositional
held-out split, in both inference modes where they apply, writes ``results.json`` after every model
(a crash keeps what was measured), and prints one table of mean ± standard deviation over the seeds
beside each suite's text-only reference, followed by the differences that exceed the noise.
`run_ablations` trains the annotated Finsta model with everything on and with each ablatable
component off, and prints the drops beside the paper's (`PAPER_ABLATION_DROPS`).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

from ..configuration_finsta import ABLATION_SWITCHES
from .variants import DEMO_VARIANTS, SAVED_VARIANT, VARIANTS, build_model, evaluate, prepare_data, train_model

RESULT_METRICS = ("t2v_R@1", "t2v_R@5", "v2t_R@1", "temporal_acc", "binding_acc", "role_acc", "static_acc")
SUITE_METRICS = ("temporal_acc", "binding_acc", "role_acc", "static_acc")
SPLIT_NAMES = {"test": "in-distribution test", "compositional": "compositional held-out"}

# Paper's ablation (Finsta, TPAMI 2024): average change over tasks when a component is removed.
PAPER_ABLATION_DROPS = {
    "use_ptc": -7.9,
    "use_osc": -5.9,
    "use_stgd": -5.1,
    "use_temporal_coreference_edges": -3.7,
    "use_predicate_attribute_nodes": -2.9,
    "use_cross_modal_edges": -2.4,
}

# Budgets. Finsta-Synth clips are cheap to make (about 3 ms each), and more clips matter more than more
# steps: with 1000 clips every model over-fits the training split. The demo runs one seed of the main
# models; the benchmark runs every model on three seeds, since one seed moves the suites by several points.
DEMO = dict(steps=600, num_train=4000, seeds=(0,), variants=DEMO_VARIANTS)
BENCHMARK = dict(steps=800, num_train=4000, seeds=(0, 1, 2), variants=tuple(VARIANTS))
NUM_COMPOSITIONAL = 200


def row_names(name: str) -> list[tuple[str, str]]:
    """``(row, mode)`` of a variant in the table: plain hosts have one row, Finsta models one per mode."""
    variant = VARIANTS[name]
    return [(name, "distilled")] if variant.plain else [(f"{name}_{mode}", mode) for mode in variant.modes]


def summarise(name: str, evaluation: dict[str, Any]) -> dict[str, dict[str, Optional[float]]]:
    dsg = "annotated" if VARIANTS[name].dsg == "annotated" else "latent"
    return {row: {m: evaluation[mode][dsg].get(m) for m in RESULT_METRICS} for row, mode in row_names(name)}


def mean_and_sd(values: Sequence[Optional[float]]) -> tuple[Optional[float], Optional[float]]:
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    mean = sum(values) / len(values)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
    return mean, sd


def aggregate(per_seed: dict[str, dict[str, dict[str, dict[str, float]]]]) -> dict[str, dict[str, dict[str, list]]]:
    """``{split: {row: {metric: [mean, sd, n]}}}`` from ``{seed: {split: {row: {metric: value}}}}``."""
    result: dict[str, dict[str, dict[str, list]]] = {}
    for seed_results in per_seed.values():
        for split, rows in seed_results.items():
            for row, metrics in rows.items():
                for metric, value in metrics.items():
                    result.setdefault(split, {}).setdefault(row, {}).setdefault(metric, []).append(value)
    return {
        split: {row: {m: [*mean_and_sd(v), len([x for x in v if x is not None])] for m, v in metrics.items()} for row, metrics in rows.items()}
        for split, rows in result.items()
    }


def format_cell(cell: Optional[Sequence], seeds: int) -> str:
    if cell is None or cell[0] is None:
        return "-"
    return f"{cell[0]:.1f} ± {cell[1]:.1f}" if seeds > 1 else f"{cell[0]:.1f}"


def aligned(header: Sequence[str], body: Sequence[Sequence[str]]) -> str:
    """A plain-text table: every column right-aligned to its widest cell."""
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    return "\n".join("  ".join(cell.rjust(w) for cell, w in zip(line, widths)) for line in [header, *body])


def format_table(rows: dict[str, dict[str, Sequence]], seeds: int, metrics: Sequence[str] = RESULT_METRICS) -> str:
    return aligned(["model", *metrics], [[name, *(format_cell(row.get(m), seeds) for m in metrics)] for name, row in rows.items()])


def beyond_noise(a: Sequence, b: Sequence) -> Optional[bool]:
    """Whether mean ``a`` differs from mean ``b`` by more than twice the standard error of the difference
    (a Welch-style criterion over the seeds; one seed cannot tell)."""
    if a is None or b is None or a[0] is None or b[0] is None or min(a[2], b[2]) < 2:
        return None
    standard_error = math.sqrt(a[1] ** 2 / a[2] + b[1] ** 2 / b[2])
    return abs(a[0] - b[0]) > 2 * max(standard_error, 1e-9)


def difference_table(table: dict[str, dict[str, Sequence]], seeds: int) -> Optional[str]:
    """Each Finsta / control row minus the better plain host and minus the capacity control of the same
    mode, per metric; ``*`` marks a difference beyond the noise (`beyond_noise`). None with one seed."""
    if seeds < 2:
        return None
    hosts = [row for row in ("meanP", "seqTransf") if row in table]
    metrics = ("t2v_R@1", *SUITE_METRICS)
    rows = {}
    for row in table:
        if row in hosts:
            continue
        mode = "fused" if row.endswith("_fused") else "distilled"
        control = f"capacity_control_{mode}"
        cells = []
        for metric in metrics:
            parts = []
            candidates = [h for h in hosts if table[h].get(metric) and table[h][metric][0] is not None]
            references = [max(candidates, key=lambda h: table[h][metric][0])] if candidates else []
            references += [control] if control in table and control != row else []
            for reference in references:
                a, b = table[row].get(metric), table[reference].get(metric)
                if a is None or b is None or a[0] is None or b[0] is None:
                    continue
                parts.append(f"{a[0] - b[0]:+.1f}{'*' if beyond_noise(a, b) else ''}")
            cells.append(" / ".join(parts) or "-")
        rows[row] = cells
    if not rows:
        return None
    return aligned(["model (vs best host / vs capacity control)", *metrics], [[row, *cells] for row, cells in rows.items()])


def run_demo(args: argparse.Namespace) -> dict[str, Any]:
    """Train and evaluate every chosen model for every seed; see the module docstring."""
    from ..evaluation import text_prior_accuracy

    started = time.time()
    output = Path(args.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    names = [n for n in args.variants if not args.only or n in args.only.split(",")]
    unknown = [n for n in (args.only.split(",") if args.only else []) if n not in VARIANTS]
    if unknown:
        raise SystemExit(f"finsta-demo: unknown model(s) {unknown}; choose from {list(VARIANTS)}")
    per_seed: dict[str, dict] = {}
    report: dict[str, Any] = {"settings": {k: v for k, v in vars(args).items() if k != "func"}, "train_seconds": {}}
    measured: set[tuple[str, int]] = set()
    if getattr(args, "resume", False):
        per_seed, report, measured = load_measured(output, report)
    for seed in args.seeds:
        data = prepare_data(args.num_train, args.num_test, seed, num_compositional=args.num_compositional)
        dataset = data.dataset
        splits = ["test"] + (["compositional"] if dataset.compositional else [])
        print(
            f"Finsta-Synth seed {seed}: {len(dataset.train)} train / {len(dataset.test)} test / "
            f"{len(dataset.compositional)} compositional clips; suites "
            + "; ".join(
                f"{SPLIT_NAMES[s]} {{{', '.join(f'{k}: {len(v)}' for k, v in dataset.split(s)[1].items())}}}"
                for s in splits
            ),
            flush=True,
        )
        training_captions = [s.caption for s in dataset.train]
        seed_results = per_seed.setdefault(str(seed), {})
        for split in splits:
            prior = text_prior_accuracy(dataset.split(split)[1], training_captions)
            seed_results.setdefault(split, {})["text-only reference"] = {f"{k}_acc": v for k, v in prior.items()}
        for name in names:
            if (name, seed) in measured:
                print(f"[{name}-seed{seed}] measured already in {output / 'results.json'} (--resume)", flush=True)
                continue
            variant = VARIANTS[name]
            start = time.time()
            model = train_model(
                name, build_model(variant, data, seed), data.training_examples(variant), data.processor, output / "runs",
                steps=args.steps, batch_size=args.batch_size, learning_rate=args.learning_rate, seed=seed,
                show_progress=args.progress,
            )  # fmt: skip
            report["train_seconds"][f"{name}/seed{seed}"] = round(time.time() - start, 1)
            for split in splits:
                evaluation = evaluate(model, data, variant, split, show_progress=args.progress)
                seed_results[split].update(summarise(name, evaluation))
                if "latent_dsg_quality" in evaluation:
                    report.setdefault("latent_dsg_quality", {})[f"{name}/seed{seed}/{split}"] = evaluation["latent_dsg_quality"]
            if name == SAVED_VARIANT and seed == args.seeds[0]:
                model.save_pretrained(output / "finsta-checkpoint")
                data.processor.save_pretrained(output / "finsta-checkpoint")
            write_results(output, per_seed, report, started)  # after every model: a crash keeps what was measured
    table = aggregate(per_seed)
    seeds = len(args.seeds)
    for split in table:
        rows = {row: values for row, values in table[split].items() if row != "text-only reference"}
        print(f"\n{SPLIT_NAMES[split]} split, {'mean ± sd over ' + str(seeds) + ' seeds' if seeds > 1 else 'one seed'}:")
        print(format_table(rows, seeds))
        print("text-only reference (order- and video-blind unigram prior): " + ", ".join(
            f"{m} {format_cell(table[split]['text-only reference'].get(m), seeds)}" for m in SUITE_METRICS
        ))  # fmt: skip
        differences = difference_table(rows, seeds)
        if differences:
            print("differences; * = beyond the noise (more than twice the standard error of the difference over seeds):")
            print(differences)
    if "latent_dsg_quality" in report:
        values = list(report["latent_dsg_quality"].values())
        centroid = mean_and_sd([q["centroid_in_box"] for q in values])[0]
        consistency = mean_and_sd([q["track_consistency"] for q in values])[0]
        print(
            f"\nlatent DSG: {centroid:.1f}% of gold objects have a slot centroid inside their box; track consistency "
            f"{consistency:.1f}% (an untrained model already scores about as high: this shows the clustering "
            "finds the objects, not that training helps)"
        )
    report["total_seconds"] = round(time.time() - started, 1)
    write_results(output, per_seed, report, started)
    print(f"\nwrote {output / 'results.json'}" + (f" and {output / 'finsta-checkpoint'}" if (output / "finsta-checkpoint").exists() else ""))
    print(f"total {report['total_seconds']:.0f} s")
    return {"per_seed": per_seed, "table": table, **report}


# The settings that determine a measurement: ``--resume`` reuses one only when all of them match.
RESUME_SETTINGS = ("steps", "num_train", "num_test", "num_compositional", "batch_size", "learning_rate")


def load_measured(output: Path, report: dict[str, Any]) -> tuple[dict[str, dict], dict[str, Any], set[tuple[str, int]]]:
    """What an earlier run in ``output`` already measured with the same settings, for ``--resume``: its
    per-seed numbers, its report (training times, latent-DSG quality) and the ``(model, seed)`` pairs done.
    A model counts as done only when every one of its rows is present on every split of that seed."""
    path = output / "results.json"
    if not path.is_file():
        return {}, report, set()
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
        per_seed, details = saved["per_seed"], saved["_details"]
        settings = details["settings"]
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise SystemExit(f"finsta-demo --resume: {path} is not a results.json written by finsta-demo ({error})") from None
    wanted = report["settings"]
    different = {k: (settings.get(k), wanted.get(k)) for k in RESUME_SETTINGS if settings.get(k) != wanted.get(k)}
    if different:
        raise SystemExit(
            f"finsta-demo --resume: {path} was measured with other settings "
            + ", ".join(f"{k}={old!r} (now {new!r})" for k, (old, new) in different.items())
            + "; use another --output-dir or drop --resume"
        )
    measured = set()
    for seed, splits in per_seed.items():
        for name in VARIANTS:
            rows = [row for row, _ in row_names(name)]
            if splits and all(row in splits.get(split, {}) for split in splits for row in rows):
                measured.add((name, int(seed)))
    report = {**report, "train_seconds": dict(details.get("train_seconds", {}))}
    if "latent_dsg_quality" in details:
        report["latent_dsg_quality"] = dict(details["latent_dsg_quality"])
    return per_seed, report, measured


def write_results(output: Path, per_seed: dict, report: dict, started: float) -> None:
    """``results.json``: the aggregated table, every seed's numbers and the run's details; written atomically."""
    payload = {
        "table": aggregate(per_seed),
        "per_seed": per_seed,
        "_details": {**report, "elapsed_seconds": round(time.time() - started, 1)},
    }
    path = output / "results.json"
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
    partial.replace(path)


def run_ablations(args: argparse.Namespace) -> dict[str, Any]:
    """The annotated Finsta model with everything on and with each ablatable component off (first seed)."""
    output = Path(args.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    seed = args.seeds[0]
    data = prepare_data(args.num_train, args.num_test, seed)
    variant = VARIANTS["finsta_gold_annotated"]
    rows: dict[str, dict[str, float]] = {}
    for switch in ("full", *ABLATION_SWITCHES):
        extra = {} if switch == "full" else {switch: False}
        model = train_model(
            switch, build_model(variant, data, seed, **extra), data.training_examples(variant), data.processor,
            output / "ablation-runs", steps=args.steps, batch_size=args.batch_size, learning_rate=args.learning_rate,
            seed=seed, show_progress=args.progress,
        )  # fmt: skip
        evaluation = evaluate(model, data, variant)
        rows[switch] = {m: evaluation["fused"]["annotated"].get(m) for m in RESULT_METRICS}
    full = rows["full"]
    suites = ("temporal_acc", "binding_acc", "role_acc", "t2v_R@1")
    lines = [f"{'removed':<32} {'avg change':>10} {'paper':>7}  " + "  ".join(f"{s:>12}" for s in suites)]
    ranking = []
    for switch in ABLATION_SWITCHES:
        deltas = [rows[switch][s] - full[s] for s in suites]
        average = sum(deltas) / len(deltas)
        ranking.append((average, switch))
        lines.append(f"{switch:<32} {average:>10.1f} {PAPER_ABLATION_DROPS[switch]:>7.1f}  " + "  ".join(f"{d:>12.1f}" for d in deltas))
    print("\nFull model: " + ", ".join(f"{s} {full[s]:.1f}" for s in suites))
    print("\n".join(lines))
    print("ours, largest drop first: " + " > ".join(s for _, s in sorted(ranking)))
    print("paper:                    " + " > ".join(PAPER_ABLATION_DROPS))
    report = {"full": full, "ablations": rows, "paper": PAPER_ABLATION_DROPS, "settings": vars(args)}
    with open(output / "ablations.json", "w") as handle:
        json.dump(report, handle, indent=2, default=str)
    return report


__all__ = [
    "BENCHMARK",
    "DEMO",
    "NUM_COMPOSITIONAL",
    "PAPER_ABLATION_DROPS",
    "RESULT_METRICS",
    "aggregate",
    "aligned",
    "beyond_noise",
    "difference_table",
    "format_table",
    "mean_and_sd",
    "run_ablations",
    "run_demo",
    "summarise",
    "write_results",
]
