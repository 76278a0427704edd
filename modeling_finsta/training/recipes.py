"""Training recipes: the YAML schema (``configuration/recipes/NAME.yaml``), loading, ``--set`` overrides
and validation.

A recipe says which model to build (``model``), which data to train on (``data``), how to optimise
(``training``) and whether to train LoRA adapters (``peft``); see `TrainingRecipe` and its sections.
`load_recipe` reads one and raises `RecipeError` naming the file and the dotted key of any mistake.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence, Union

from transformers import TrainingArguments

RECIPES_FOLDER = Path(__file__).resolve().parent.parent.parent / "configuration" / "recipes"
"""Where recipe names are looked up (``configuration/recipes/`` of the repository)."""

DATA_SOURCES = ("finsta-synth", "msrvtt", "msvd", "didemo")
DSG_SOURCES = ("latent", "annotated")
TINY_BACKBONE = "tiny-clip"


class RecipeError(ValueError):
    """A recipe file or override is malformed; the message names the file and the key."""


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
    other `TrainingArguments` field through (e.g. ``ddp_find_unused_parameters``).
    ``host_frozen_steps`` [ours]: for the first N steps only the Finsta head trains (the host backbone
    and its temporal head are frozen), so that a post-trained host is taught by a graph head that
    has already learned something rather than by a random one (single process; under DDP set
    ``trainer_arguments.ddp_find_unused_parameters: true``)."""

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
    host_frozen_steps: int = 0
    trainer_arguments: dict = field(default_factory=dict)


@dataclass
class LoraSettings:
    """LoRA on the backbone (see ``training/peft_finsta.py``); the Finsta head is trained in full."""

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
    from ..configuration_finsta import FinstaConfig
    from ..synth import HARD_NEGATIVE_SUITES, FinstaSynthConfig

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
    if training.host_frozen_steps < 0:
        fail("training.host_frozen_steps", "must be >= 0")
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


__all__ = [
    "DATA_SOURCES",
    "DSG_SOURCES",
    "RECIPES_FOLDER",
    "TINY_BACKBONE",
    "DataSettings",
    "LoraSettings",
    "ModelSettings",
    "RecipeError",
    "TinyBackboneSettings",
    "TrainingRecipe",
    "TrainingSettings",
    "apply_overrides",
    "load_recipe",
]
