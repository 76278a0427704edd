"""Training `FinstaForConditionalGeneration` (or its plain host) with `transformers.Trainer`.

Examples are raw dicts (``question``, ``answer``, ``video`` frames or path, optional ``caption``,
``text_graph``, ``video_graph``, ``negative_captions``); `GenerativeCollator` turns a list of them
into one batch with the model's `FinstaGenerationProcessor`. The same code trains the host alone
(``finsta=False``: only the host's own inputs and LM loss), which is the equal-budget baseline.
LoRA on the LLM (``lora_r > 0``) goes through `get_generative_peft_model`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

import torch
from transformers import TrainingArguments

from .examples import FinstaExampleDataset
from .trainer import FinstaTrainer

HOST_VIDEO_INPUTS = ("pixel_values_videos", "video_grid_thw", "mm_token_type_ids")
"""The host's video-side inputs (besides the token ids and mask)."""
HOST_INPUTS = ("input_ids", "attention_mask", "labels") + HOST_VIDEO_INPUTS


GenerativeExamples = FinstaExampleDataset
"""A list of raw examples (dicts) as a map-style dataset (the same class as `FinstaExampleDataset`)."""


def synth_examples(dataset, split: str = "train", dsg: str = "annotated") -> list[dict[str, Any]]:
    """Raw examples of a `GenerativeFinstaSynth` split: every QA and caption item with its clip's caption,
    gold TSG, DSG (``dsg="annotated"``; ``"latent"`` leaves it out) and hard-negative captions."""
    samples = dataset.train if split == "train" else dataset.test
    items = dataset.train_items if split == "train" else dataset.test_items
    negatives = dataset.train_negatives if split == "train" else {}
    examples = []
    for item in items:
        sample = samples[item.video_index]
        example = {
            "question": item.question, "answer": item.answer, "video": sample.frames, "caption": sample.caption,
            "text_graph": sample.text_graph, "category": item.category,
            "negative_captions": list(negatives.get(item.video_index, [])),
        }  # fmt: skip
        if dsg == "annotated":
            example["video_graph"] = sample.video_graph
        examples.append(example)
    return examples


@dataclass
class GenerativeCollator:
    """Batches raw examples with a `FinstaGenerationProcessor`; ``finsta=False`` keeps only the host's inputs."""

    processor: Any
    finsta: bool = True

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        with_captions = self.finsta and all(e.get("caption") for e in examples)
        graphs = [e.get("video_graph") for e in examples]
        negatives = [e.get("negative_captions") or [] for e in examples]
        batch = dict(
            self.processor(
                questions=[e["question"] for e in examples],
                videos=[e["video"] for e in examples],
                answers=[e["answer"] for e in examples],
                captions=[e["caption"] for e in examples] if with_captions else None,
                text_scene_graphs=[e.get("text_graph") for e in examples] if with_captions and all(e.get("text_graph") for e in examples) else None,
                video_scene_graphs=graphs if self.finsta and any(g is not None for g in graphs) else None,
                negative_captions=negatives if with_captions and any(negatives) else None,
            )
        )
        if not self.finsta:
            batch = {k: v for k, v in batch.items() if k in HOST_INPUTS}
        return batch


def generative_training_arguments(output_dir: str, *, max_steps: int, batch_size: int, learning_rate: float, seed: int, **overrides) -> TrainingArguments:
    settings: dict[str, Any] = dict(
        output_dir=output_dir, max_steps=max_steps, per_device_train_batch_size=batch_size, learning_rate=learning_rate,
        warmup_steps=max(1, max_steps // 20), lr_scheduler_type="cosine", weight_decay=0.01, logging_steps=max(1, max_steps // 10),
        save_strategy="no", report_to=[], seed=seed, data_seed=seed, remove_unused_columns=False, dataloader_num_workers=0,
        use_cpu=not torch.cuda.is_available(), disable_tqdm=True,
    )  # fmt: skip
    settings.update(overrides)
    return TrainingArguments(**settings)


def train_generative(
    model,
    processor,
    examples: Sequence[dict[str, Any]],
    output_dir: str,
    *,
    max_steps: int,
    batch_size: int = 16,
    learning_rate: float = 1e-3,
    seed: int = 0,
    finsta: Optional[bool] = None,
    **trainer_arguments,
):
    """Train ``model`` (a `FinstaForConditionalGeneration`, or a plain host with ``finsta=False``) and return it.

    ``finsta`` defaults to whether the model is a Finsta model; the host baseline sees the same examples,
    order, batch size, steps and schedule (equal budget).
    """
    if finsta is None:
        finsta = hasattr(model, "finsta_head") or hasattr(getattr(model, "base_model", None), "finsta_head")
    arguments = generative_training_arguments(
        output_dir, max_steps=max_steps, batch_size=batch_size, learning_rate=learning_rate, seed=seed, **trainer_arguments
    )
    trainer = FinstaTrainer(
        model=model, args=arguments, train_dataset=GenerativeExamples(examples), data_collator=GenerativeCollator(processor, finsta=finsta)
    )
    result = trainer.train()
    model.eval()
    return model, result, trainer.state.log_history


__all__ = ["GenerativeCollator", "GenerativeExamples", "generative_training_arguments", "synth_examples", "train_generative"]
