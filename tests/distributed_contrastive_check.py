"""Two-process check launched by tests/test_training.py (``accelerate launch --cpu --num_processes 2``).

Part 1: the gathered contrastive loss, averaged over the ranks, equals the single-process loss on
the same global batch, and a parameter's gradient after DDP's averaging equals the single-process
gradient. The single-process reference is computed before the process group exists (the loss
gathers whenever one does).

Part 2: `modeling_finsta.training.train` runs unchanged with two processes and publishes its
checkpoints only once every rank has written its part (one RNG state file per rank).

Rank 0 writes the numbers to ``--report`` (JSON); the test asserts on them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from tiny_models import example_inputs, tiny_finsta_config  # noqa: E402

from modeling_finsta import FinstaModel  # noqa: E402

GLOBAL_BATCH = 4
CHECKED_PARAMETER = "backbone.text_projection.weight"


def build_model() -> FinstaModel:
    """Same initial weights on every rank; only the (gathered) video-text contrastive loss is active."""
    torch.manual_seed(0)
    config = tiny_finsta_config(
        "clip", inference_mode="distilled", graph_contrastive_loss_weight=0.0, osc_loss_weight=0.0,
        ptc_loss_weight=0.0, distillation_loss_weight=0.0,
    )  # fmt: skip
    model = FinstaModel(config)
    model.train()
    return model


def global_batch() -> dict:
    batch = example_inputs(batch=GLOBAL_BATCH, seed=3)
    generator = torch.Generator().manual_seed(4)
    batch["negative_input_ids"] = torch.randint(0, 50, batch["input_ids"].shape, generator=generator)
    batch["negative_attention_mask"] = torch.ones_like(batch["attention_mask"])
    batch["negative_mask"] = torch.tensor([True, False, True, True])
    return batch


def rows(batch: dict, start: int, stop: int) -> dict:
    return {k: rows(v, start, stop) if isinstance(v, dict) else v[start:stop] for k, v in batch.items()}


def loss_and_gradient(model, module, batch: dict) -> tuple[float, torch.Tensor]:
    output = module(**batch, return_loss=True)
    output.loss.backward()
    return output.loss.item(), model.get_parameter(CHECKED_PARAMETER).grad.detach().clone()


def contrastive_check() -> dict:
    batch = global_batch()
    reference_model = build_model()
    reference_loss, reference_gradient = loss_and_gradient(reference_model, reference_model, batch)

    import torch.distributed as dist
    from accelerate import PartialState

    state = PartialState(cpu=True)  # initialises the gloo process group from accelerate launch's environment
    world, rank = state.num_processes, state.process_index
    local = GLOBAL_BATCH // world
    model = build_model()
    ddp = torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=True)
    loss, gradient = loss_and_gradient(model, ddp, rows(batch, rank * local, (rank + 1) * local))
    losses = [torch.zeros(1) for _ in range(world)]
    dist.all_gather(losses, torch.tensor([loss]))
    return {
        "world_size": world,
        "reference_loss": reference_loss,
        "rank_losses": [value.item() for value in losses],
        "device": str(model.device),
        "mean_rank_loss": torch.cat(losses).mean().item(),
        "backend": dist.get_backend(),
        "gradient_max_difference": (gradient - reference_gradient).abs().max().item(),
        "gradient_max_magnitude": reference_gradient.abs().max().item(),
    }


def training_check(output_dir: str) -> dict:
    from modeling_finsta.training import load_recipe, train

    recipe = load_recipe(
        "synthetic-tiny",
        [
            "model.tiny.vision_hidden_size=32", "model.tiny.text_hidden_size=32", "model.tiny.projection_dim=32",
            "model.tiny.num_hidden_layers=1", "model.finsta.graph_hidden_size=32", "data.finsta_synth.num_train=16",
            "data.finsta_synth.num_test=0", "data.num_frames=4", "training.max_steps=2", "training.save_steps=1",
            "training.save_total_limit=1", "training.per_device_batch_size=4", "training.logging_steps=1",
        ],
    )  # fmt: skip
    result = train(recipe, output_dir)
    checkpoint = os.path.join(output_dir, "checkpoint-2")
    return {
        "global_step": result.global_step,
        "train_world_size": json.load(open(os.path.join(output_dir, "training_summary.json")))["world_size"],
        "output_files": sorted(os.listdir(output_dir)),
        "checkpoint_files": sorted(os.listdir(checkpoint)) if os.path.isdir(checkpoint) else [],
        "train_loss": result.metrics.get("train_loss"),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--report", required=True)
    parser.add_argument("--output-dir", required=True)
    arguments = parser.parse_args()
    report = contrastive_check()
    report.update(training_check(arguments.output_dir))
    from accelerate import PartialState

    if PartialState(cpu=True).is_main_process:
        with open(arguments.report, "w", encoding="utf-8") as handle:
            json.dump(report, handle, indent=2)


if __name__ == "__main__":
    main()
