"""The paper's protocol on Finsta-Synth: post-train an already trained host, then use the host alone
(``finsta-demo --protocol post-training``).

* Stage 0, the well-trained host: plain CLIP4Clip meanP and seqTransf trained on a pre-training split.
  Cached on disk under a fingerprint of every setting that determines it, so later runs and seeds
  reuse it; a changed setting trains a new one.
* Stage 1, from that checkpoint (``FinstaModel.from_pretrained(<stage-0 folder>, **finsta)``), a short
  Finsta post-training pass on a small disjoint post-training split, with the annotated DSG and with
  the latent DSG (gold caption graphs, no gold video information for the latent one). The control at
  equal budget continues the same host with its plain objective on the same split, for the same
  steps, with the same hard-negative captions.
* Stage 2, on the test split: the host alone (distilled) and the fused model; then each host once more
  after a short plain fine-tuning on a downstream split (the paper's fine-tuning setting).

Every seed re-runs stages 1 and 2; the table reports mean ± sd over the seeds. The transfer settings
are `TRANSFER` (each one a config or training switch marked [ours]); ``--transfer-ablations`` reports
what each contributed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Optional, Sequence

from ..modeling_finsta import FinstaModel
from ..training import FinstaExampleDataset
from .comparison import RESULT_METRICS, aggregate, beyond_noise, format_table, write_results
from .variants import PLAIN_HOST, DemoData, Variant, build_model, evaluate, prepare_data, train_model

HOSTS = ("meanP", "seqTransf")
DSG_SOURCES = ("annotated", "latent")

HARD_NEGATIVE_FIELDS = ("negative_input_ids", "negative_attention_mask", "negative_text_scene_graph", "negative_mask")
"""The per-example hard-negative caption fields (`FinstaExampleDataset`), dropped from stage 0 with ``stage0_hard_negatives=False``."""

FINSTA_ON = dict(
    inference_mode="fused", use_osc=True, use_ptc=True, graph_contrastive_loss_weight=1.0, fused_contrastive_loss_weight=1.0
)
"""What turns a plain host's config back into a Finsta one (the stage-0 host was saved with `PLAIN_HOST`)."""

TRANSFER: dict[str, Any] = dict(
    **FINSTA_ON,
    distillation_target="similarity",
    distillation_loss_weight=1.0,
    token_distillation_loss_weight=0.0,
)
"""[ours] The Finsta configuration of the post-training pass (on top of the host's own config): the host
learns to rank like the fused model (KL), besides its own objective and the graph objectives."""

TRANSFER_TRAINING: dict[str, Any] = dict(host_frozen_fraction=0.25)
"""[ours] Training switches of the post-training pass: the first ``host_frozen_fraction`` of the steps
train the fresh head alone (host frozen), so the host is then taught by a head that has learned something."""

TRANSFER_ABLATIONS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "fused embeddings (cosine) instead of rankings": (dict(distillation_target="fused_embedding"), {}),
    "no distillation into the host": (dict(distillation_loss_weight=0.0), {}),
    "+ token-level distillation": (dict(token_distillation_loss_weight=1.0), {}),
    "no head warm-up": ({}, dict(host_frozen_fraction=0.0)),
    "graph head behind a stop-gradient": (dict(graph_head_detaches_host=True), {}),
    "host towers against the other modality's fused embeddings": (dict(distillation_target="cross_modal"), {}),
    "+ the fused model's choice among each video's hard negatives": (dict(distillation_target="hard_negatives"), {}),
}
"""[ours] ``--transfer-ablations``: each changes one switch of `TRANSFER` / `TRANSFER_TRAINING`."""


@dataclass
class ProtocolBudget:
    pretrain_clips: int = 4000
    post_clips: int = 400
    downstream_clips: int = 400
    test_clips: int = 200
    pretrain_steps: int = 1200
    post_steps: int = 300
    finetune_steps: int = 100
    batch_size: int = 32
    learning_rate: float = 3e-3  # stage 0, from scratch
    head_learning_rate: float = 3e-3  # the fresh Finsta head in stage 1
    host_learning_rate: float = 5e-4  # the host in stages 1 and 2 (Finsta and the control alike)
    seeds: tuple = (0, 1, 2)
    data_seed: int = 0
    stage0_hard_negatives: bool = True  # False: stage 0 sees in-batch negatives only, as CLIP4Clip itself trains


PROTOCOL = ProtocolBudget()
QUICK = ProtocolBudget(pretrain_clips=1000, post_clips=200, downstream_clips=200, test_clips=100,
                       pretrain_steps=300, post_steps=100, finetune_steps=40, seeds=(0,))  # fmt: skip


@dataclass
class ProtocolData:
    data: DemoData
    pretrain: FinstaExampleDataset
    post: FinstaExampleDataset
    downstream: FinstaExampleDataset
    fingerprint_settings: dict = field(default_factory=dict)


def split_examples(examples: FinstaExampleDataset, budget: ProtocolBudget) -> tuple[FinstaExampleDataset, ...]:
    """Disjoint pre-training / post-training / downstream splits of the training clips (in that order)."""
    items = examples.examples
    first, second = budget.pretrain_clips, budget.pretrain_clips + budget.post_clips
    return (
        FinstaExampleDataset(items[:first]),
        FinstaExampleDataset(items[first:second]),
        FinstaExampleDataset(items[second : second + budget.downstream_clips]),
    )


def prepare_protocol_data(budget: ProtocolBudget) -> ProtocolData:
    total = budget.pretrain_clips + budget.post_clips + budget.downstream_clips
    data = prepare_data(total, budget.test_clips, budget.data_seed)
    pretrain, post, downstream = split_examples(data.examples, budget)
    settings = {"synth": {k: v for k, v in asdict(data.dataset.config).items()}, "max_length": data.max_length}
    return ProtocolData(data, pretrain, post, downstream, settings)


def stage0_fingerprint(host: str, budget: ProtocolBudget, protocol_data: ProtocolData) -> tuple[str, dict[str, Any]]:
    """A hash of everything that determines the stage-0 host (data, model, budget, code version)."""
    from .. import __name__ as package

    try:
        from importlib.metadata import version

        code_version = version("finsta-transformers")
    except Exception:  # not installed as a distribution
        code_version = "source"
    model = build_model(Variant(dict(temporal_head=host, **PLAIN_HOST), None, None, host), protocol_data.data, seed=0)
    settings = {
        "host": host,
        "package": package,
        "code_version": code_version,
        "data": protocol_data.fingerprint_settings,
        "pretrain_steps": budget.pretrain_steps,
        "stage0_hard_negatives": budget.stage0_hard_negatives,
        "batch_size": budget.batch_size,
        "learning_rate": budget.learning_rate,
        "config": model.config.to_diff_dict(),
    }
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16], settings


def stage0_host(host: str, budget: ProtocolBudget, protocol_data: ProtocolData, cache_dir: Path, progress: bool) -> Path:
    """The cached stage-0 host folder, trained (and published atomically) when no valid one exists."""
    fingerprint, settings = stage0_fingerprint(host, budget, protocol_data)
    folder = cache_dir / f"stage0-{host}-{fingerprint}"
    if (folder / "fingerprint.json").is_file() and (folder / "model.safetensors").is_file():
        print(f"[stage 0] reusing {folder}", flush=True)
        return folder
    variant = Variant(dict(temporal_head=host, **PLAIN_HOST), None, None, host)
    examples = protocol_data.pretrain.without("video_scene_graph", "grounding")
    if not budget.stage0_hard_negatives:
        examples = examples.without(*HARD_NEGATIVE_FIELDS)
    model = train_model(
        f"stage0-{host}", build_model(variant, protocol_data.data, seed=0),
        examples, protocol_data.data.processor, cache_dir / "runs", steps=budget.pretrain_steps, batch_size=budget.batch_size,
        learning_rate=budget.learning_rate, seed=0, show_progress=progress,
    )  # fmt: skip
    staging = cache_dir / f".incomplete-{folder.name}"
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging)
    protocol_data.data.processor.save_pretrained(staging)
    (staging / "fingerprint.json").write_text(json.dumps(settings, indent=2, sort_keys=True, default=str) + "\n")
    shutil.rmtree(folder, ignore_errors=True)
    staging.replace(folder)
    return folder


def post_train(
    name: str,
    stage0: Path,
    examples: FinstaExampleDataset,
    protocol_data: ProtocolData,
    budget: ProtocolBudget,
    seed: int,
    output: Path,
    overrides: dict[str, Any],
    training: dict[str, Any],
    progress: bool,
    model_class: type = FinstaModel,
) -> FinstaModel:
    """Stage 1: load the stage-0 host with ``overrides`` (only the new head is fresh) and train ``post_steps``.

    ``model_class``: a `FinstaModel` subclass to post-train instead (``benchmarks/shared_reader_probe.py``)."""
    import torch

    torch.manual_seed(seed)
    model = model_class.from_pretrained(stage0, **overrides)
    frozen = int(budget.post_steps * training.get("host_frozen_fraction", 0.0))
    return train_model(
        name, model, examples, protocol_data.data.processor, output / "runs", steps=budget.post_steps,
        batch_size=budget.batch_size, learning_rate=budget.head_learning_rate, seed=seed, show_progress=progress,
        host_frozen_steps=frozen, backbone_learning_rate=budget.host_learning_rate,
    )  # fmt: skip


def as_plain_host(model: FinstaModel) -> FinstaModel:
    """The same weights used as a plain host: its own objective only, host embeddings at inference."""
    for key, value in PLAIN_HOST.items():
        setattr(model.config, key, value)
    return model


def host_rows(model: FinstaModel, protocol_data: ProtocolData, dsg: str, fused: bool) -> dict[str, dict]:
    """Test-split metrics of ``model``: the host alone (``"distilled"``) and, with ``fused``, the fused model."""
    variant = Variant(dict(inference_mode="fused") if fused else PLAIN_HOST, "gold", dsg, "")
    evaluation = evaluate(model, protocol_data.data, variant)
    source = "annotated" if dsg == "annotated" else "latent"
    return {mode: {m: evaluation[mode][source].get(m) for m in RESULT_METRICS} for mode in variant.modes}


def run_seed(
    seed: int,
    protocol_data: ProtocolData,
    budget: ProtocolBudget,
    stage0: dict[str, Path],
    output: Path,
    overrides: dict[str, Any],
    training: dict[str, Any],
    progress: bool,
    finetune: bool = True,
) -> dict[str, dict[str, float]]:
    """Stages 1 and 2 for one seed: ``{row: metrics}``."""
    data = protocol_data.data
    rows: dict[str, dict[str, float]] = {}
    annotated = protocol_data.post
    latent = annotated.without("video_scene_graph", "grounding")
    for host in stage0:
        control = post_train(
            f"{host}-control-seed{seed}", stage0[host], latent, protocol_data, budget, seed, output, dict(PLAIN_HOST), {}, progress
        )
        rows[f"{host} control"] = host_rows(control, protocol_data, "latent", fused=False)["distilled"]
        hosts_to_finetune = {"control": control}
        for dsg, examples in (("annotated", annotated), ("latent", latent)):
            model = post_train(
                f"{host}-finsta-{dsg}-seed{seed}", stage0[host], examples, protocol_data, budget, seed, output,
                overrides, training, progress,
            )  # fmt: skip
            results = host_rows(model, protocol_data, dsg, fused=True)
            rows[f"{host} Finsta {dsg}, host alone"] = results["distilled"]
            rows[f"{host} Finsta {dsg}, fused"] = results["fused"]
            hosts_to_finetune[f"Finsta {dsg}"] = model
        if finetune:
            downstream = protocol_data.downstream.without("video_scene_graph", "grounding")
            for label, model in hosts_to_finetune.items():
                tuned = train_model(
                    f"{host}-{label.replace(' ', '-')}-finetuned-seed{seed}", as_plain_host(model), downstream, data.processor,
                    output / "runs", steps=budget.finetune_steps, batch_size=budget.batch_size,
                    learning_rate=budget.host_learning_rate, seed=seed, show_progress=progress,
                )  # fmt: skip
                rows[f"{host} {label}, fine-tuned host"] = host_rows(tuned, protocol_data, "latent", fused=False)["distilled"]
    return rows


PROTOCOL_METRICS = ("t2v_R@1", "t2v_R@5", "temporal_acc", "binding_acc", "role_acc", "static_acc")


def format_protocol_table(table: dict[str, dict[str, list]], seeds: int) -> str:
    return format_table(table, seeds, PROTOCOL_METRICS)


def targets(table: dict[str, dict[str, list]]) -> list[str]:
    """The issue's targets, host alone vs the equal-budget control (means over seeds)."""
    lines = []
    for host in HOSTS:
        control = table.get(f"{host} control")
        for dsg in DSG_SOURCES:
            alone = table.get(f"{host} Finsta {dsg}, host alone")
            if control is None or alone is None:
                continue
            metrics = ("t2v_R@1", "temporal_acc", "binding_acc", "role_acc", "static_acc")
            # rounded so that a difference printed as +3.0 never reads "missed" through float error
            deltas = {m: round(alone[m][0] - control[m][0], 6) for m in metrics}
            wanted = {"t2v_R@1": 3.0, "binding_acc": 10.0, "role_acc": 10.0, **({"temporal_acc": 10.0} if host == "seqTransf" else {})}
            parts = [f"{m} {deltas[m]:+.1f} ({'met' if deltas[m] >= t else 'missed'}, target +{t:g})" for m, t in wanted.items()]
            if min(control[m][2] for m in metrics) < 2:
                parts.append("one seed: no standard deviation to compare the drops with")
            else:
                below = [m for m in metrics if deltas[m] < -max(control[m][1] or 0.0, alone[m][1] or 0.0)]
                parts.append(f"more than one sd below the control on {below}" if below else "no suite more than one sd below the control")
            noise = [m for m in metrics if beyond_noise(alone[m], control[m])]
            if noise:
                parts.append(f"beyond the noise: {noise}")
            lines.append(f"{host}, {dsg} DSG, host alone vs control: " + "; ".join(parts))
    return lines


def run_protocol(args: argparse.Namespace) -> dict[str, Any]:
    """``finsta-demo --protocol post-training [--quick] [--transfer-ablations]``."""
    import sys

    started = time.time()
    budget = getattr(args, "budget", None) or (QUICK if args.quick else PROTOCOL)
    if getattr(args, "seeds", None):
        budget = replace(budget, seeds=tuple(args.seeds))
    if getattr(args, "post_clips", None):
        budget = replace(budget, post_clips=int(args.post_clips))
    if getattr(args, "stage0_in_batch_negatives_only", False):
        budget = replace(budget, stage0_hard_negatives=False)
    output = Path(args.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    cache_dir = Path(getattr(args, "cache_dir", None) or output / "stage0-cache")
    progress = bool(args.progress) and sys.stderr.isatty()
    protocol_data = prepare_protocol_data(budget)
    stage0 = {host: stage0_host(host, budget, protocol_data, cache_dir, progress) for host in HOSTS}
    overrides, training = dict(TRANSFER), dict(TRANSFER_TRAINING)
    report: dict[str, Any] = {"budget": asdict(budget), "transfer": overrides, "transfer_training": training}
    per_seed: dict[str, dict] = {}
    for seed in budget.seeds:
        per_seed[str(seed)] = {"test": run_seed(seed, protocol_data, budget, stage0, output, overrides, training, progress)}
        write_results(output, per_seed, report, started)
    table = aggregate(per_seed)["test"]
    seeds = len(budget.seeds)
    print(f"\npost-training protocol, test split, {'mean ± sd over ' + str(seeds) + ' seeds' if seeds > 1 else 'one seed'}:")
    print(format_protocol_table(table, seeds))
    for line in targets(table):
        print(line)
    if getattr(args, "transfer_ablations", False):
        report["transfer_ablations"] = run_transfer_ablations(
            protocol_data, budget, stage0, output, progress, getattr(args, "ablation_seeds", None)
        )
    report["total_seconds"] = round(time.time() - started, 1)
    write_results(output, per_seed, report, started)
    print(f"\nwrote {output / 'results.json'}; total {report['total_seconds']:.0f} s")
    return {"table": table, "per_seed": per_seed, **report}


def run_transfer_ablations(protocol_data, budget, stage0, output, progress, seeds: Optional[Sequence[int]] = None) -> dict[str, Any]:
    """Each transfer switch changed alone: the meanP host alone after post-training with the latent DSG,
    beside the equal-budget control, on ``seeds`` (default: the budget's first seed); mean ± sd over them.

    Returns ``{"per_seed": {seed: {row: metrics}}, "table": {row: {metric: [mean, sd, n]}}}``.
    """
    seeds = list(seeds) if seeds else [budget.seeds[0]]
    latent = protocol_data.post.without("video_scene_graph", "grounding")
    folder = output / "ablations"
    per_seed: dict[str, dict] = {}
    for seed in seeds:
        control = post_train(f"ablation-control-seed{seed}", stage0["meanP"], latent, protocol_data, budget, seed, folder,
                             dict(PLAIN_HOST), {}, progress)  # fmt: skip
        rows = {"control (plain objective)": host_rows(control, protocol_data, "latent", fused=False)["distilled"]}
        for label, (config_change, training_change) in {"default": ({}, {}), **TRANSFER_ABLATIONS}.items():
            model = post_train(
                f"ablation-{len(rows)}-seed{seed}", stage0["meanP"], latent, protocol_data, budget, seed, folder,
                {**TRANSFER, **config_change}, {**TRANSFER_TRAINING, **training_change}, progress,
            )  # fmt: skip
            rows[label] = host_rows(model, protocol_data, "latent", fused=False)["distilled"]
        per_seed[str(seed)] = {"ablations": rows}
    table = aggregate(per_seed)["ablations"]
    which = f"mean ± sd over seeds {seeds}" if len(seeds) > 1 else f"seed {seeds[0]}"
    print(f"\ntransfer switches (meanP host alone after post-training with the latent DSG, {which}):")
    print(format_protocol_table(table, len(seeds)))
    return {"per_seed": per_seed, "table": table}


__all__ = [
    "HOSTS",
    "PROTOCOL",
    "QUICK",
    "TRANSFER",
    "TRANSFER_ABLATIONS",
    "TRANSFER_TRAINING",
    "ProtocolBudget",
    "as_plain_host",
    "run_protocol",
    "split_examples",
    "stage0_fingerprint",
    "stage0_host",
]
