"""Training Finsta models with `transformers.Trainer`, driven by recipe files.

A recipe (``configuration/recipes/NAME.yaml``) says which model to build (a tiny CLIP from scratch,
a CLIP / X-CLIP checkpoint, or an existing Finsta folder), which data to train on (Finsta-Synth in
memory, or MSR-VTT / MSVD / DiDeMo decoded lazily from a local folder) and how to optimise.
`train` runs it and leaves a Hub-ready folder (safetensors, config, remote code, processor,
``training_summary.json``). The same code runs unchanged under ``accelerate launch``: the
contrastive loss gathers embeddings across processes with gradient (see ``losses.py``).

Checkpoints are written atomically: each ``checkpoint-N`` is written into a hidden staging folder
(``.incomplete-checkpoint-N/``) and renamed into place only when every process has finished
writing it, so a run killed while saving never leaves a ``checkpoint-N`` that ``--resume`` would
pick up half-written (the stock Trainer writes straight into ``checkpoint-N`` and resumes from the
highest-numbered folder whatever its state).

Command line::

    finsta-train --recipe synthetic-tiny --output-dir runs/tiny [--resume] [--set training.max_steps=50]
    accelerate launch --config_file configuration/accelerate/ddp.yaml -m modeling_finsta.training --recipe ...
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import logging
import os
import shutil
import sys
import time
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import torch
from torch.utils.data import Dataset
from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, rotate_checkpoints

logger = logging.getLogger(__name__)

RECIPES_FOLDER = Path(__file__).resolve().parent.parent / "configuration" / "recipes"
"""Where recipe names are looked up (``configuration/recipes/`` of the repository)."""

DATA_SOURCES = ("finsta-synth", "msrvtt", "msvd", "didemo")
DSG_SOURCES = ("latent", "annotated")
TINY_BACKBONE = "tiny-clip"
STAGING_PREFIX = ".incomplete-"
"""Prefix of the hidden folder a checkpoint is written into before it is renamed into place."""
SUMMARY_FILE = "training_summary.json"


class RecipeError(ValueError):
    """A recipe file or override is malformed; the message names the file and the key."""


# ----------------------------------------------------------------------------------------------
# Recipes
# ----------------------------------------------------------------------------------------------


@dataclass
class TinyBackboneSettings:
    """Sizes of the randomly initialised CLIP built for ``model.backbone: tiny-clip``.

    The image size is ``data.image_size`` and the text length ``data.max_length``, so the model
    always matches its processor.
    """

    vision_hidden_size: int = 64
    text_hidden_size: int = 64
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    intermediate_size_factor: int = 2
    patch_size: int = 8
    projection_dim: int = 64


@dataclass
class ModelSettings:
    """``backbone``: ``"tiny-clip"``, a CLIP / X-CLIP checkpoint (folder or Hub id) or a Finsta folder.
    ``finsta``: `FinstaConfig` arguments (temporal head, inference mode, loss weights, ablation switches)."""

    backbone: str = TINY_BACKBONE
    tiny: TinyBackboneSettings = field(default_factory=TinyBackboneSettings)
    finsta: dict = field(default_factory=dict)


@dataclass
class DataSettings:
    """What to train on and how the processor prepares it.

    ``source``: ``"finsta-synth"`` (generated in memory from ``finsta_synth``, `FinstaSynthConfig`
    arguments; its frame count and size default to ``num_frames`` / ``image_size``) or a real
    dataset (``msrvtt``, ``msvd``, ``didemo``) read from ``root`` (``split`` for training,
    ``eval_split`` optional). ``dsg``: ``"annotated"`` uses gold / ``scene_graphs/`` DSGs,
    ``"latent"`` lets the model build its own. ``hard_negatives`` adds one flipped caption per
    Finsta-Synth clip from ``hard_negative_suites`` as an extra negative.
    """

    source: str = "finsta-synth"
    finsta_synth: dict = field(default_factory=dict)
    root: Optional[str] = None
    split: str = "train"
    eval_split: Optional[str] = None
    videos_dir: Optional[str] = None
    dsg: str = "annotated"
    hard_negatives: bool = False
    hard_negative_suites: list = field(default_factory=lambda: ["temporal", "binding", "role"])
    num_frames: int = 8
    frame_sampling: str = "uniform"
    image_size: int = 32
    max_length: int = 64


@dataclass
class TrainingSettings:
    """Optimisation and bookkeeping. ``backbone_learning_rate`` (optional) gives the host backbone
    its own learning rate (CLIP4Clip fine-tunes CLIP at 1e-7 and new layers at 1e-4).
    ``save_steps: null`` writes no intermediate checkpoints. ``trainer_arguments`` passes any
    other `TrainingArguments` field through (e.g. ``ddp_find_unused_parameters``)."""

    max_steps: int = 100
    per_device_batch_size: int = 32
    gradient_accumulation_steps: int = 1
    learning_rate: float = 1e-3
    backbone_learning_rate: Optional[float] = None
    lr_scheduler_type: str = "cosine"
    warmup_ratio: float = 0.0
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    seed: int = 0
    save_steps: Optional[int] = 500
    save_total_limit: Optional[int] = 2
    logging_steps: int = 10
    eval_steps: Optional[int] = None
    dataloader_num_workers: int = 0
    bf16: bool = False
    trainer_arguments: dict = field(default_factory=dict)


@dataclass
class LoraSettings:
    """LoRA on the backbone (see ``peft_finsta.py``); the Finsta head is trained in full."""

    r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    projections: list = field(default_factory=lambda: ["q_proj", "v_proj"])
    train_temporal_head: bool = True


@dataclass
class TrainingRecipe:
    """A full training recipe; ``load_recipe`` reads one from YAML. ``peft: null`` trains in full."""

    model: ModelSettings = field(default_factory=ModelSettings)
    data: DataSettings = field(default_factory=DataSettings)
    training: TrainingSettings = field(default_factory=TrainingSettings)
    peft: Optional[LoraSettings] = None
    name: str = "unnamed"
    source: Optional[str] = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", str(hint).replace("typing.", ""))


def _check_scalar(value: Any, hint: Any, where: str) -> Any:
    """``value`` if it fits ``hint`` (ints are accepted as floats, bools never as numbers)."""
    origin = typing.get_origin(hint)
    if origin is Union:
        options = [h for h in typing.get_args(hint) if h is not type(None)]
        if value is None:
            return None
        return _check_scalar(value, options[0], where)
    expected = origin or hint
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected is float and isinstance(value, str):
        try:  # PyYAML reads 1e-4 (no dot) as a string
            return float(value)
        except ValueError:
            pass
    if expected in (int, float) and isinstance(value, bool):
        raise RecipeError(f"{where}: expected {_type_name(expected)}, got the bool {value!r}")
    if not isinstance(value, expected):
        raise RecipeError(f"{where}: expected {_type_name(expected)}, got {type(value).__name__} {value!r}")
    return value


def _build_section(cls: type, values: Any, prefix: str, origin: str) -> Any:
    """Build dataclass ``cls`` from a YAML mapping, naming ``origin`` and the dotted key on any error."""
    where = prefix or "the recipe"
    if not isinstance(values, dict):
        raise RecipeError(f"{origin}: '{where}' must be a mapping, got {type(values).__name__} {values!r}")
    hints = typing.get_type_hints(cls)
    internal = ("name", "source") if cls is TrainingRecipe else ()
    known = [f.name for f in dataclasses.fields(cls) if f.name not in internal]
    kwargs = {}
    for key, value in values.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise RecipeError(
                f"{origin}: unknown key '{dotted}'{hint} (known keys in '{where}': {', '.join(known)})"
            )
        hint_type = hints[key]
        nested = [h for h in (hint_type, *typing.get_args(hint_type)) if dataclasses.is_dataclass(h)]
        if nested and value is not None:
            kwargs[key] = _build_section(nested[0], value, dotted, origin)
        else:
            kwargs[key] = _check_scalar(value, hint_type, f"{origin}: '{dotted}'")
    return cls(**kwargs)


def _validate_recipe(recipe: TrainingRecipe, origin: str) -> None:
    from .configuration_finsta import FinstaConfig
    from .finsta_synth import HARD_NEGATIVE_SUITES, FinstaSynthConfig

    def fail(key: str, message: str) -> None:
        raise RecipeError(f"{origin}: '{key}' {message}")

    def check_keys(key: str, given: dict, allowed: Sequence[str]) -> None:
        for name in given:
            if name not in allowed:
                close = difflib.get_close_matches(str(name), allowed, n=1)
                fail(f"{key}.{name}", "is not a known option" + (f"; did you mean '{close[0]}'?" if close else ""))

    import inspect

    finsta_arguments = [n for n in inspect.signature(FinstaConfig.__init__).parameters if n not in ("self", "kwargs")]
    check_keys("model.finsta", recipe.model.finsta, [n for n in finsta_arguments if n != "backbone_config"])
    data = recipe.data
    if data.source not in DATA_SOURCES:
        fail("data.source", f"must be one of {DATA_SOURCES}, got {data.source!r}")
    if data.dsg not in DSG_SOURCES:
        fail("data.dsg", f"must be one of {DSG_SOURCES}, got {data.dsg!r}")
    if data.frame_sampling not in ("uniform", "fps"):
        fail("data.frame_sampling", f"must be 'uniform' or 'fps', got {data.frame_sampling!r}")
    check_keys("data.finsta_synth", data.finsta_synth, [f.name for f in dataclasses.fields(FinstaSynthConfig)])
    if data.source != "finsta-synth" and data.hard_negatives:
        fail("data.hard_negatives", "is only available for data.source 'finsta-synth'")
    bad_suites = [s for s in data.hard_negative_suites if s not in HARD_NEGATIVE_SUITES]
    if bad_suites:
        fail("data.hard_negative_suites", f"has unknown suites {bad_suites}; expected names from {HARD_NEGATIVE_SUITES}")
    for key in ("num_frames", "image_size", "max_length"):
        if getattr(data, key) < 1:
            fail(f"data.{key}", "must be a positive integer")
    training = recipe.training
    for key in ("max_steps", "per_device_batch_size", "gradient_accumulation_steps", "logging_steps"):
        if getattr(training, key) < 1:
            fail(f"training.{key}", "must be a positive integer")
    if not 0 <= training.warmup_ratio < 1:
        fail("training.warmup_ratio", f"must be in [0, 1), got {training.warmup_ratio}")
    allowed_passthrough = {f.name for f in dataclasses.fields(TrainingArguments)}
    for name in training.trainer_arguments:
        if name not in allowed_passthrough:
            fail(f"training.trainer_arguments.{name}", "is not a transformers.TrainingArguments field")


def _resolve_recipe_path(name_or_path: Union[str, os.PathLike]) -> Path:
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml") or candidate.is_file():
        if not candidate.is_file():
            raise FileNotFoundError(f"recipe file {candidate} does not exist")
        return candidate
    for folder in (RECIPES_FOLDER, Path.cwd() / "configuration" / "recipes"):
        path = folder / f"{name_or_path}.yaml"
        if path.is_file():
            return path
    available = sorted(p.stem for p in RECIPES_FOLDER.glob("*.yaml")) if RECIPES_FOLDER.is_dir() else []
    raise FileNotFoundError(
        f"no recipe named {str(name_or_path)!r} in {RECIPES_FOLDER} (available: {', '.join(available) or 'none'}); "
        "pass a recipe name or a path to a .yaml file"
    )


def apply_overrides(values: dict, overrides: Sequence[str]) -> dict:
    """Apply ``key=value`` overrides with dotted keys (``training.max_steps=50``) to a recipe mapping.

    Values are read as YAML, so ``50`` is an int, ``true`` a bool and ``[a, b]`` a list.
    """
    import yaml

    for override in overrides:
        key, separator, text = override.partition("=")
        key = key.strip()
        if not separator or not key:
            raise RecipeError(f"--set {override!r}: expected KEY=VALUE with a dotted key, e.g. training.max_steps=50")
        node = values
        parts = key.split(".")
        for depth, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise RecipeError(f"--set {override!r}: '{'.'.join(parts[: depth + 1])}' is not a mapping")
            node = child
        node[parts[-1]] = yaml.safe_load(text)
    return values


def load_recipe(name_or_path: Union[str, os.PathLike], overrides: Sequence[str] = ()) -> TrainingRecipe:
    """Read ``configuration/recipes/NAME.yaml`` (or a YAML path), apply ``--set`` style overrides and validate.

    Unknown keys, wrong types and impossible values raise `RecipeError` naming the file and the key.
    """
    import yaml

    path = _resolve_recipe_path(name_or_path)
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise RecipeError(f"{path}: not valid YAML: {error}") from error
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise RecipeError(f"{path}: a recipe must be a mapping with sections model / data / training / peft")
    origin = str(path) + (" (with --set overrides)" if overrides else "")
    values = apply_overrides(values, overrides)
    recipe = _build_section(TrainingRecipe, values, "", origin)
    recipe.name = path.stem
    recipe.source = str(path)
    _validate_recipe(recipe, origin)
    return recipe


# ----------------------------------------------------------------------------------------------
# Model, processor, datasets
# ----------------------------------------------------------------------------------------------


def _synth_config(recipe: TrainingRecipe):
    from .finsta_synth import FinstaSynthConfig

    settings = {"num_frames": recipe.data.num_frames, "image_size": recipe.data.image_size}
    settings.update(recipe.data.finsta_synth)
    return FinstaSynthConfig(**settings)


def _read_split(recipe: TrainingRecipe, split: str):
    from .retrieval_datasets import RETRIEVAL_DATASET_READERS

    data = recipe.data
    if not data.root:
        raise RecipeError(
            f"{recipe.source or recipe.name}: 'data.root' is required for data.source {data.source!r} "
            "(the dataset folder; e.g. --set data.root=/data/msrvtt)"
        )
    return RETRIEVAL_DATASET_READERS[data.source](data.root, split, videos_dir=data.videos_dir)


def _tiny_tokenizer(recipe: TrainingRecipe):
    """A closed-vocabulary CLIP tokenizer: Finsta-Synth's grammar, or the words of the training captions."""
    from .training_data import build_word_tokenizer, caption_words, finsta_synth_tokenizer

    if recipe.data.source == "finsta-synth":
        return finsta_synth_tokenizer(_synth_config(recipe))
    split = _read_split(recipe, recipe.data.split)
    return build_word_tokenizer(caption_words(caption for caption, _ in split.captions))


def _tiny_backbone_config(recipe: TrainingRecipe, tokenizer):
    from transformers import CLIPConfig

    tiny = recipe.model.tiny

    def tower(hidden: int) -> dict:
        return dict(
            hidden_size=hidden,
            intermediate_size=hidden * tiny.intermediate_size_factor,
            num_hidden_layers=tiny.num_hidden_layers,
            num_attention_heads=tiny.num_attention_heads,
        )

    return CLIPConfig(
        text_config=dict(
            tower(tiny.text_hidden_size),
            vocab_size=len(tokenizer),
            max_position_embeddings=recipe.data.max_length,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        ),
        vision_config=dict(tower(tiny.vision_hidden_size), image_size=recipe.data.image_size, patch_size=tiny.patch_size),
        projection_dim=tiny.projection_dim,
    )


def _processor_settings(recipe: TrainingRecipe, backbone_type: str, num_relation_types: int) -> dict[str, Any]:
    data = recipe.data
    return dict(
        backbone_type=backbone_type,
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

    from .configuration_finsta import FinstaConfig
    from .modeling_finsta import FinstaModel
    from .processing_finsta import FinstaProcessor
    from .video_io import VideoPreprocessor, preprocessor_for_backbone

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
            **_processor_settings(recipe, "clip", config.num_video_relation_types),
        )
        return model, processor

    source_config = AutoConfig.from_pretrained(backbone)
    if source_config.model_type == "finsta":
        model = FinstaModel.from_pretrained(backbone, **overrides)
        return model, FinstaProcessor.from_pretrained(backbone)

    from transformers import AutoTokenizer

    from .conversion_cli import _image_processor_settings

    config = FinstaConfig(backbone_config=source_config, **overrides)
    model = FinstaModel.from_pretrained(backbone, config=config)
    backbone_type = config.backbone_type
    image_settings = _image_processor_settings(backbone)
    if image_settings is not None:
        video_preprocessing = VideoPreprocessor.from_image_processor(image_settings).to_dict()
    else:
        size = source_config.vision_config.image_size
        video_preprocessing = preprocessor_for_backbone(backbone_type, size=size, crop_size=size).to_dict()
    processor = FinstaProcessor(
        tokenizer=AutoTokenizer.from_pretrained(backbone),
        video_preprocessing=video_preprocessing,
        **_processor_settings(recipe, backbone_type, config.num_video_relation_types),
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
        from .finsta_synth import generate_finsta_synth
        from .training_data import FinstaExampleDataset, finsta_synth_examples, finsta_synth_hard_negatives

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
# Atomic checkpoints
# ----------------------------------------------------------------------------------------------


def _fsync_tree(folder: Path) -> None:
    """Flush every file (and folder entry) under ``folder`` to disk before it is published."""
    for path in sorted(folder.rglob("*"), reverse=True):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
    _fsync_folder(folder)


def _fsync_folder(folder: Path) -> None:
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:  # some platforms cannot open folders
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def _is_complete_checkpoint(folder: Path) -> bool:
    """Trainer writes ``trainer_state.json`` last; a folder without it was not finished."""
    return folder.is_dir() and (folder / "trainer_state.json").is_file()


def last_complete_checkpoint(output_dir: Union[str, os.PathLike]) -> Optional[Path]:
    """The highest ``checkpoint-N`` in ``output_dir`` that was completely written, or None.

    Staging folders (``.incomplete-checkpoint-N``) never match, and a ``checkpoint-N`` without its
    ``trainer_state.json`` (e.g. written by a non-atomic writer that was killed) is skipped.
    """
    folder = Path(output_dir)
    if not folder.is_dir():
        return None
    steps = []
    for child in folder.iterdir():
        name = child.name
        if name.startswith(f"{PREFIX_CHECKPOINT_DIR}-") and name[len(PREFIX_CHECKPOINT_DIR) + 1 :].isdigit():
            steps.append((int(name[len(PREFIX_CHECKPOINT_DIR) + 1 :]), child))
    for _, child in sorted(steps, reverse=True):
        if _is_complete_checkpoint(child):
            return child
        logger.warning("ignoring incomplete checkpoint %s (no trainer_state.json)", child)
    return None


class FinstaTrainer(Trainer):
    """`Trainer` with atomic checkpoints and an optional separate learning rate for the backbone.

    Args:
        backbone_learning_rate: learning rate of the host backbone's own weights (names under
            ``backbone.``, LoRA adapters excluded); the rest (Finsta head, temporal header, LoRA)
            uses ``args.learning_rate``. None: one learning rate for everything.
    """

    def __init__(self, *args, backbone_learning_rate: Optional[float] = None, **kwargs):
        self.backbone_learning_rate = backbone_learning_rate
        self._checkpoint_staging_dir: Optional[str] = None
        super().__init__(*args, **kwargs)

    # ---- optimiser ---------------------------------------------------------------------------
    def create_optimizer(self, model=None) -> torch.optim.Optimizer:
        if self.backbone_learning_rate is None or self.optimizer is not None:
            return super().create_optimizer(model)
        opt_model = self.model if model is None else model
        decay = set(self.get_decay_parameter_names(opt_model))
        groups: dict[tuple[bool, bool], list] = {}
        for name, parameter in opt_model.named_parameters():
            if not parameter.requires_grad:
                continue
            in_backbone = ".backbone." in f".{name}" and "lora_" not in name
            groups.setdefault((in_backbone, name in decay), []).append(parameter)
        parameter_groups = [
            {
                "params": parameters,
                "weight_decay": self.args.weight_decay if decays else 0.0,
                "lr": self.backbone_learning_rate if in_backbone else self.args.learning_rate,
            }
            for (in_backbone, decays), parameters in sorted(groups.items())
        ]
        optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, opt_model)
        optimizer_kwargs.pop("params", None)
        self.optimizer = optimizer_cls(parameter_groups, **optimizer_kwargs)
        return self.optimizer

    # ---- atomic checkpoints ------------------------------------------------------------------
    def _get_output_dir(self, trial) -> str:
        # While a checkpoint is being written, Trainer's run folder is the staging folder.
        if self._checkpoint_staging_dir is not None:
            return self._checkpoint_staging_dir
        return super()._get_output_dir(trial)

    def _save_checkpoint(self, model, trial) -> None:
        run_dir = Path(super()._get_output_dir(trial))
        name = f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        staging = run_dir / f"{STAGING_PREFIX}{name}"
        if self.args.should_save and staging.exists():
            shutil.rmtree(staging)  # left over by a run killed while saving
        self.accelerator.wait_for_everyone()
        self._checkpoint_staging_dir = str(staging)
        try:
            super()._save_checkpoint(model, trial)
        finally:
            self._checkpoint_staging_dir = None
        # Every process (sharded optimiser states, per-rank RNG states) must be done writing.
        self.accelerator.wait_for_everyone()
        if self.args.should_save:
            if self.state.best_global_step:
                best = run_dir / f"{PREFIX_CHECKPOINT_DIR}-{self.state.best_global_step}"
                if best.name == name or best.is_dir():
                    self.state.best_model_checkpoint = str(best)
                    self.state.save_to_json(str(staging / name / "trainer_state.json"))
            self._publish_checkpoint(staging / name, run_dir / name)
            shutil.rmtree(staging, ignore_errors=True)
            rotate_checkpoints(
                output_dir=str(run_dir),
                save_total_limit=self.args.save_total_limit,
                best_model_checkpoint=self.state.best_model_checkpoint,
                use_mtime=False,
            )
        self.accelerator.wait_for_everyone()

    @staticmethod
    def _publish_checkpoint(staged: Path, final: Path) -> None:
        """Rename a finished checkpoint into place (replacing an older one of the same step)."""
        _fsync_tree(staged)
        if final.exists():
            replaced = final.parent / f"{STAGING_PREFIX}replaced-{final.name}"
            shutil.rmtree(replaced, ignore_errors=True)
            os.replace(final, replaced)
            os.replace(staged, final)
            shutil.rmtree(replaced, ignore_errors=True)
        else:
            os.replace(staged, final)
        _fsync_folder(final.parent)


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
    from .peft_finsta import finsta_lora_config, get_finsta_peft_model

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
    from .processing_finsta import FinstaDataCollator

    trainer = FinstaTrainer(
        model=model,
        args=args,
        data_collator=FinstaDataCollator(processor),
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=processor,
        callbacks=list(callbacks or []),
        backbone_learning_rate=recipe.training.backbone_learning_rate,
    )
    checkpoint = last_complete_checkpoint(output_dir) if resume else None
    if resume and checkpoint is None:
        logger.warning("train(resume=True): no complete checkpoint in %s; starting from step 0", output_dir)
    output = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint is not None else None)

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


def _versions() -> dict[str, str]:
    import transformers

    versions = {"torch": torch.__version__, "transformers": transformers.__version__}
    try:
        from importlib.metadata import version

        versions["finsta-transformers"] = version("finsta-transformers")
    except Exception:  # not installed as a distribution
        pass
    return versions


# ----------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``finsta-train``: train from a recipe (also under ``accelerate launch``)."""
    parser = argparse.ArgumentParser(prog="finsta-train", description="Train a Finsta model from a recipe.")
    parser.add_argument("--recipe", required=True, help="recipe name in configuration/recipes/ or a YAML path")
    parser.add_argument("--output-dir", required=True, help="checkpoints and the final Hub-ready model go here")
    parser.add_argument("--resume", action="store_true", help="continue from the last complete checkpoint")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a recipe value with a dotted key, e.g. --set training.max_steps=50 (repeatable)",
    )  # fmt: skip
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        recipe = load_recipe(arguments.recipe, arguments.overrides)
    except (RecipeError, FileNotFoundError) as error:
        print(f"finsta-train: {error}", file=sys.stderr)
        return 2
    result = train(recipe, arguments.output_dir, resume=arguments.resume)
    if int(os.environ.get("RANK", "0")) == 0:
        loss = result.metrics.get("train_loss")
        print(
            f"finsta-train: {recipe.name}: {result.global_step} steps"
            + (f", mean train loss {loss:.4f}" if loss is not None else "")
            + f"; model saved in {result.output_dir}"
        )
    return 0


__all__ = [
    "DataSettings",
    "FinstaTrainer",
    "LazyRetrievalDataset",
    "LoraSettings",
    "ModelSettings",
    "RecipeError",
    "TinyBackboneSettings",
    "TrainingRecipe",
    "TrainingResult",
    "TrainingSettings",
    "apply_overrides",
    "build_datasets",
    "build_model_and_processor",
    "last_complete_checkpoint",
    "load_recipe",
    "main",
    "train",
    "training_arguments",
]


if __name__ == "__main__":
    sys.exit(main())

