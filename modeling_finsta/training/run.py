"""Training Finsta models with `transformers.Trainer`, driven by recipe files.

A recipe (``configuration/recipes/NAME.yaml``, see ``recipes.py``) says which model to build (a
tiny CLIP from scratch, a CLIP / X-CLIP checkpoint, or an existing Finsta folder), which data to
train on (Finsta-Synth in memory, or MSR-VTT / MSVD / DiDeMo decoded lazily from a local folder) and
how to optimise. `train` runs it and leaves a Hub-ready folder (safetensors, config, remote code,
processor, ``training_summary.json``). The same code runs unchanged under ``accelerate launch``: the
contrastive loss gathers embeddings across processes with gradient (see ``modeling_finsta/losses.py``).
Checkpoints are written atomically by `FinstaTrainer` (``trainer.py``).
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import torch
from torch.utils.data import Dataset
from transformers import TrainerCallback, TrainingArguments

from ..modeling_finsta import NonFiniteValueError
from .examples import FinstaExampleDataset, finsta_synth_examples, finsta_synth_hard_negatives, finsta_synth_tokenizer
from .peft_finsta import finsta_lora_config, get_finsta_peft_model
from .recipes import TINY_BACKBONE, LoraSettings, RecipeError, TrainingRecipe, load_recipe
from .tiny_clip import tiny_clip_config
from .trainer import FinstaTrainer, FreezeHostCallback, last_complete_checkpoint
from .word_tokenizer import build_word_tokenizer, caption_words

logger = logging.getLogger(__name__)

SUMMARY_FILE = "training_summary.json"


# ----------------------------------------------------------------------------------------------
# Model, processor, datasets
# ----------------------------------------------------------------------------------------------


def _synth_config(recipe: TrainingRecipe):
    from ..synth import FinstaSynthConfig

    settings = {"num_frames": recipe.data.num_frames, "image_size": recipe.data.image_size}
    settings.update(recipe.data.finsta_synth)
    return FinstaSynthConfig(**settings)


def _read_split(recipe: TrainingRecipe, split: str):
    from ..readers import RETRIEVAL_DATASET_READERS

    data = recipe.data
    if not data.root:
        raise RecipeError(
            f"{recipe.source or recipe.name}: 'data.root' is required for data.source {data.source!r} "
            "(the dataset folder; e.g. --set data.root=/data/msrvtt)"
        )
    return RETRIEVAL_DATASET_READERS[data.source](data.root, split, videos_dir=data.videos_dir)


def _tiny_tokenizer(recipe: TrainingRecipe):
    """A closed-vocabulary CLIP tokenizer: Finsta-Synth's grammar, or the words of the training captions."""
    if recipe.data.source == "finsta-synth":
        return finsta_synth_tokenizer(_synth_config(recipe))
    split = _read_split(recipe, recipe.data.split)
    return build_word_tokenizer(caption_words(caption for caption, _ in split.captions))


def _tiny_backbone_config(recipe: TrainingRecipe, tokenizer):
    tiny = recipe.model.tiny
    return tiny_clip_config(
        tokenizer,
        max_length=recipe.data.max_length,
        image_size=recipe.data.image_size,
        patch_size=tiny.patch_size,
        width=tiny.text_hidden_size,
        vision_width=tiny.vision_hidden_size,
        num_layers=tiny.num_hidden_layers,
        num_heads=tiny.num_attention_heads,
        intermediate_factor=tiny.intermediate_size_factor,
        projection_dim=tiny.projection_dim,
    )


def _processor_settings(recipe: TrainingRecipe, num_relation_types: int) -> dict[str, Any]:
    data = recipe.data
    return dict(
        num_frames=data.num_frames,
        frame_sampling=data.frame_sampling,
        max_length=data.max_length,
        # Finsta-Synth brings gold TSGs; real captions are parsed.
        parser_backend=None if data.source == "finsta-synth" else "auto",
        num_video_relation_types=num_relation_types,
    )


def build_model_and_processor(recipe: TrainingRecipe):
    """The `FinstaModel` and `FinstaProcessor` a recipe describes, with the recipe's seed.

    ``tiny-clip`` builds a random CLIP sized by ``model.tiny`` with a closed-vocabulary tokenizer;
    a CLIP / X-CLIP checkpoint loads its backbone weights and initialises only the Finsta head; a
    Finsta folder loads as is (``model.finsta`` overrides its config, e.g. the inference mode).
    """
    from transformers import AutoConfig, set_seed

    from ..configuration_finsta import FinstaConfig
    from ..modeling_finsta import FinstaModel
    from ..processing_finsta import FinstaProcessor
    from ..video_io import preprocessor_for_backbone

    set_seed(recipe.training.seed)
    overrides = dict(recipe.model.finsta)
    backbone = recipe.model.backbone
    if backbone == TINY_BACKBONE:
        overrides.setdefault("num_frame_positions", max(recipe.data.num_frames, 16))
        tokenizer = _tiny_tokenizer(recipe)
        special_tokens = {  # stated up front, so Trainer has nothing to realign
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        }
        config = FinstaConfig(backbone_config=_tiny_backbone_config(recipe, tokenizer), **special_tokens, **overrides)
        model = FinstaModel(config)
        size = recipe.data.image_size
        processor = FinstaProcessor(
            tokenizer=tokenizer,
            video_preprocessing=preprocessor_for_backbone("clip", size=size, crop_size=size).to_dict(),
            backbone_type="clip",
            **_processor_settings(recipe, config.num_video_relation_types),
        )
        return model, processor

    source_config = AutoConfig.from_pretrained(backbone)
    if source_config.model_type == "finsta":
        model = FinstaModel.from_pretrained(backbone, **overrides)
        return model, FinstaProcessor.from_pretrained(backbone)

    from transformers import AutoTokenizer

    from ..hub import processor_from_source

    config = FinstaConfig(backbone_config=source_config, **overrides)
    model = FinstaModel.from_pretrained(backbone, config=config)
    processor = processor_from_source(
        backbone,
        config.backbone_type,
        image_size=source_config.vision_config.image_size,
        tokenizer=AutoTokenizer.from_pretrained(backbone),
        **_processor_settings(recipe, config.num_video_relation_types),
    )
    return model, processor


class LazyRetrievalDataset(Dataset):
    """One example per caption of a `RetrievalSplit`, decoded and processed on ``__getitem__``.

    Decoding happens in the DataLoader workers (``training.dataloader_num_workers``), so a real
    dataset never has to fit in memory. With ``annotated=True`` each video's
    ``scene_graphs/{video_id}.json`` becomes its DSG.
    """

    def __init__(self, split, processor, annotated: bool = False, where: str = "dataset"):
        if annotated and split.scene_graph_paths is None:
            raise FileNotFoundError(
                f"{where}: data.dsg is 'annotated' but the dataset folder has no scene_graphs/ folder; "
                "add one (scene_graphs/{video_id}.json) or set data.dsg: latent"
            )
        self.split = split
        self.processor = processor
        self.annotated = annotated

    def __len__(self) -> int:
        return len(self.split.captions)

    def __getitem__(self, index: int) -> dict[str, Any]:
        caption, video_index = self.split.captions[index]
        _, path = self.split.videos[video_index]
        graphs = [self.split.scene_graph_paths[video_index]] if self.annotated else None
        batch = self.processor(text=[caption], videos=[str(path)], video_scene_graphs=graphs)
        return _first_example(dict(batch))


def _first_example(batch: dict[str, Any]) -> dict[str, Any]:
    return {key: _first_example(value) if isinstance(value, dict) else value[0] for key, value in batch.items()}


def build_datasets(recipe: TrainingRecipe, processor) -> dict[str, Dataset]:
    """``{"train": ..., "test": ...}`` for the recipe's data (``"test"`` only where the source has one).

    Finsta-Synth is generated and processed in memory (`FinstaExampleDataset`); real datasets are
    `LazyRetrievalDataset` over the local folder.
    """
    data = recipe.data
    annotated = data.dsg == "annotated"
    if data.source == "finsta-synth":
        from ..synth import generate_finsta_synth

        config = _synth_config(recipe)
        synth = generate_finsta_synth(config)
        negatives = None
        if data.hard_negatives:
            negatives = finsta_synth_hard_negatives(synth.train, config, data.hard_negative_suites, seed=config.seed)
        datasets: dict[str, Dataset] = {
            "train": FinstaExampleDataset(
                finsta_synth_examples(synth.train, processor, annotated=annotated, hard_negatives=negatives)
            )
        }
        if synth.test:
            datasets["test"] = FinstaExampleDataset(finsta_synth_examples(synth.test, processor, annotated=annotated))
        return datasets
    datasets = {
        "train": LazyRetrievalDataset(_read_split(recipe, data.split), processor, annotated, f"{data.root} ({data.split})")
    }
    if data.eval_split:
        datasets["test"] = LazyRetrievalDataset(
            _read_split(recipe, data.eval_split), processor, annotated, f"{data.root} ({data.eval_split})"
        )
    return datasets


# ----------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------


@dataclass
class TrainingResult:
    """What `train` returns: the trained (unwrapped, LoRA-merged) model and where it was saved."""

    model: Any
    processor: Any
    output_dir: Path
    global_step: int
    metrics: dict[str, Any]
    log_history: list[dict[str, Any]]
    resumed_from: Optional[Path] = None


def training_arguments(recipe: TrainingRecipe, output_dir: Union[str, os.PathLike], has_eval: bool = False) -> TrainingArguments:
    """The `TrainingArguments` of a recipe (Trainer's progress bars on, no reporting integrations)."""
    settings = recipe.training
    save = settings.save_steps is not None and settings.save_steps > 0
    evaluate = has_eval and settings.eval_steps is not None and settings.eval_steps > 0
    arguments: dict[str, Any] = dict(
        output_dir=str(output_dir),
        max_steps=settings.max_steps,
        per_device_train_batch_size=settings.per_device_batch_size,
        per_device_eval_batch_size=settings.per_device_batch_size,
        gradient_accumulation_steps=settings.gradient_accumulation_steps,
        learning_rate=settings.learning_rate,
        lr_scheduler_type=settings.lr_scheduler_type,
        warmup_steps=settings.warmup_ratio,  # a float in [0, 1) is a ratio of max_steps
        weight_decay=settings.weight_decay,
        max_grad_norm=settings.max_grad_norm,
        seed=settings.seed,
        data_seed=settings.seed,
        save_strategy="steps" if save else "no",
        save_steps=settings.save_steps if save else 500,
        save_total_limit=settings.save_total_limit,
        logging_steps=settings.logging_steps,
        eval_strategy="steps" if evaluate else "no",
        eval_steps=settings.eval_steps if evaluate else None,
        prediction_loss_only=True,
        dataloader_num_workers=settings.dataloader_num_workers,
        dataloader_pin_memory=torch.cuda.is_available(),
        bf16=settings.bf16,
        remove_unused_columns=False,  # scene-graph inputs are nested dicts the signature check would drop
        report_to=[],
        disable_tqdm=False,
    )
    arguments.update(settings.trainer_arguments)
    return TrainingArguments(**arguments)


def _apply_lora(model, settings: LoraSettings):
    config = finsta_lora_config(
        model.config,
        r=settings.r,
        lora_alpha=settings.lora_alpha,
        lora_dropout=settings.lora_dropout,
        projections=settings.projections,
        train_temporal_head=settings.train_temporal_head,
    )
    return get_finsta_peft_model(model, config)


def _is_peft_model(model) -> bool:
    return hasattr(model, "peft_config") and hasattr(model, "merge_and_unload")


def _save_final(trainer: FinstaTrainer, model, processor, output_dir: Path, summary: dict) -> Any:
    """Write the Hub-ready folder: weights, config and remote code, processor, training summary."""
    if _is_peft_model(model):
        if trainer.args.should_save:
            model.save_pretrained(output_dir / "adapter")  # the LoRA adapter alone, for reference
        model = model.merge_and_unload()
        if trainer.args.should_save:
            model.save_pretrained(output_dir)
            if processor is not None:
                processor.save_pretrained(output_dir)
    else:
        trainer.save_model(str(output_dir))  # gathers FSDP / ZeRO shards; saves the processor too
    if trainer.args.should_save:
        if processor is None:
            logger.warning("train: no processor given; %s holds the model only", output_dir)
        (output_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")
    trainer.accelerator.wait_for_everyone()
    return model


def train(
    recipe: Union[TrainingRecipe, str, os.PathLike],
    output_dir: Union[str, os.PathLike],
    *,
    resume: bool = False,
    train_dataset: Optional[Dataset] = None,
    eval_dataset: Optional[Dataset] = None,
    model=None,
    processor=None,
    callbacks: Optional[Sequence[TrainerCallback]] = None,
) -> TrainingResult:
    """Train a Finsta model as ``recipe`` says and save a Hub-ready folder in ``output_dir``.

    Args:
        recipe: a `TrainingRecipe`, a recipe name (``"synthetic-tiny"``) or a YAML path.
        output_dir: checkpoints (``checkpoint-N``) and the final model go here.
        resume: continue from the last complete checkpoint in ``output_dir`` (from scratch if none).
        train_dataset / eval_dataset: ready datasets of processed examples (e.g. several variants
            sharing one in-memory dataset); built from the recipe when not given.
        model / processor: a ready `FinstaModel` and `FinstaProcessor`; built from the recipe when
            not given. ``recipe.peft`` wraps the model with LoRA (merged again before saving).
        callbacks: extra `TrainerCallback`s.
    """
    started = time.time()
    if not isinstance(recipe, TrainingRecipe):
        recipe = load_recipe(recipe)
    output_dir = Path(output_dir)
    if model is None:
        model, built_processor = build_model_and_processor(recipe)
        processor = processor if processor is not None else built_processor
    if train_dataset is None:
        if processor is None:
            raise ValueError("train: give a processor (or no model) so the recipe's datasets can be built")
        datasets = build_datasets(recipe, processor)
        train_dataset = datasets["train"]
        if eval_dataset is None and recipe.training.eval_steps:
            eval_dataset = datasets.get("test")
    if recipe.peft is not None and not _is_peft_model(model):
        model = _apply_lora(model, recipe.peft)

    args = training_arguments(recipe, output_dir, has_eval=eval_dataset is not None)
    from ..processing_finsta import FinstaDataCollator

    trainer = FinstaTrainer(
        model=model,
        args=args,
        data_collator=FinstaDataCollator(processor),
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=processor,
        callbacks=list(callbacks or [])
        + ([FreezeHostCallback(recipe.training.host_frozen_steps)] if recipe.training.host_frozen_steps > 0 else []),
        backbone_learning_rate=recipe.training.backbone_learning_rate,
    )
    checkpoint = last_complete_checkpoint(output_dir) if resume else None
    if resume and checkpoint is None:
        logger.warning("train(resume=True): no complete checkpoint in %s; starting from step 0", output_dir)
    elif checkpoint is not None and trainer.args.should_save:
        print(f"resuming from {checkpoint} (step {checkpoint_step(checkpoint)} of {args.max_steps})", flush=True)
    try:
        output = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint is not None else None)
    except NonFiniteValueError as error:
        last = last_complete_checkpoint(output_dir)
        raise TrainingDivergedError(
            f"training stopped at step {trainer.state.global_step}: {error}. Nothing was trained on it; "
            + (f"the last complete checkpoint is {last} (--resume continues from it)" if last else "no checkpoint was written yet")
            + "; lower the learning rate, check the data, or enable gradient clipping (training.max_grad_norm)."
        ) from error
    # Trainer's train_loss covers only the steps of this process; the logs cover the whole run.
    output.metrics["train_loss"] = mean_logged_loss(trainer.state.log_history, output.metrics.get("train_loss"))

    summary = {
        "recipe": recipe.to_dict(),
        "global_step": trainer.state.global_step,
        "resumed_from": None if checkpoint is None else checkpoint.name,
        "metrics": output.metrics,
        "world_size": trainer.args.world_size,
        "train_examples": len(train_dataset),
        "wall_seconds": round(time.time() - started, 2),
        "versions": _versions(),
        "log_history": trainer.state.log_history,
    }
    final_model = _save_final(trainer, trainer.model, processor, output_dir, summary)
    return TrainingResult(
        model=final_model,
        processor=processor,
        output_dir=output_dir,
        global_step=trainer.state.global_step,
        metrics=dict(output.metrics),
        log_history=list(trainer.state.log_history),
        resumed_from=checkpoint,
    )


class TrainingDivergedError(RuntimeError):
    """Training stopped because the loss (or an input) was NaN or Inf; the message says where and what to do."""


def checkpoint_step(checkpoint: Path) -> int:
    """The global step a ``checkpoint-N`` folder was written at."""
    return int(Path(checkpoint).name.rsplit("-", 1)[-1])


def mean_logged_loss(log_history: Sequence[dict[str, Any]], fallback: Optional[float] = None) -> Optional[float]:
    """Mean training loss over the whole run from Trainer's logs (each logged loss averages the steps since the
    previous log), so a resumed run reports the same mean as an uninterrupted one."""
    total, steps, previous = 0.0, 0, 0
    for entry in log_history:
        if "loss" in entry and "step" in entry:
            span = entry["step"] - previous
            total, steps, previous = total + entry["loss"] * span, steps + span, entry["step"]
    return total / steps if steps else fallback


def _versions() -> dict[str, str]:
    import transformers

    versions = {"torch": torch.__version__, "transformers": transformers.__version__}
    try:
        from importlib.metadata import version

        versions["finsta-transformers"] = version("finsta-transformers")
    except Exception:  # not installed as a distribution
        pass
    return versions


__all__ = [
    "SUMMARY_FILE",
    "TrainingDivergedError",
    "checkpoint_step",
    "mean_logged_loss",
    "LazyRetrievalDataset",
    "TrainingResult",
    "build_datasets",
    "build_model_and_processor",
    "train",
    "training_arguments",
]
