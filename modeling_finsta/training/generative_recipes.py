"""Recipes for generative Finsta models (``configuration/recipes/generative-*.yaml``) and running them.

A recipe has four sections; unknown keys fail with the file and the dotted key (`RecipeError`):

* ``model``: ``backbone`` (``tiny-video-llava``, ``tiny-qwen2-vl``, ``tiny-qwen2.5-vl``, or a Hub id /
  folder of a Video-LLaVA / Qwen2-VL / Qwen2.5-VL checkpoint), ``variant`` (``finsta`` or ``host``, the
  plain-host baseline), ``finsta`` (any `FinstaGenerationConfig` argument), ``tiny`` (sizes of a tiny
  host, see `tiny_video_llm_config`), ``dtype``;
* ``data``: ``source`` (``finsta-synth``, ``msrvtt-qa``, ``msvd-qa``, ``msrvtt-caption``), ``root``,
  ``split``, ``num_frames``, ``image_size`` (tiny hosts; real hosts use their own), ``dsg``
  (``annotated``: Finsta-Synth's gold DSGs; ``latent``), ``prompt_template``, ``finsta_synth``
  (`FinstaSynthConfig` arguments);
* ``training``: ``max_steps``, ``batch_size``, ``learning_rate``, ``seed``, ``bf16``, ``trainer_arguments``;
* ``peft``: ``lora_r`` (0: no LoRA), ``lora_alpha``, ``train_projector``.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence, Union

from .recipes import RECIPES_FOLDER, RecipeError, apply_overrides

TINY_HOSTS = {"tiny-video-llava": "video_llava", "tiny-qwen2-vl": "qwen2_vl", "tiny-qwen2.5-vl": "qwen2_5_vl"}
GENERATIVE_DATA_SOURCES = ("finsta-synth", "msrvtt-qa", "msvd-qa", "msrvtt-caption")


@dataclass
class GenerativeModelSettings:
    backbone: str = "tiny-video-llava"
    variant: str = "finsta"
    finsta: dict[str, Any] = field(default_factory=dict)
    tiny: dict[str, Any] = field(default_factory=dict)
    dtype: Optional[str] = None


@dataclass
class GenerativeDataSettings:
    source: str = "finsta-synth"
    root: Optional[str] = None
    split: str = "train"
    num_frames: int = 4
    image_size: int = 32
    dsg: str = "annotated"
    prompt_template: Optional[str] = None
    finsta_synth: dict[str, Any] = field(default_factory=dict)


@dataclass
class GenerativeTrainingSettings:
    max_steps: int = 100
    batch_size: int = 16
    learning_rate: float = 2e-3
    seed: int = 0
    bf16: bool = False
    trainer_arguments: dict[str, Any] = field(default_factory=dict)


@dataclass
class GenerativePeftSettings:
    lora_r: int = 0
    lora_alpha: int = 16
    train_projector: bool = True


@dataclass
class GenerativeRecipe:
    model: GenerativeModelSettings = field(default_factory=GenerativeModelSettings)
    data: GenerativeDataSettings = field(default_factory=GenerativeDataSettings)
    training: GenerativeTrainingSettings = field(default_factory=GenerativeTrainingSettings)
    peft: GenerativePeftSettings = field(default_factory=GenerativePeftSettings)
    name: str = ""


_SECTIONS = {
    "model": GenerativeModelSettings,
    "data": GenerativeDataSettings,
    "training": GenerativeTrainingSettings,
    "peft": GenerativePeftSettings,
}


def load_generative_recipe(name_or_path: Union[str, os.PathLike], overrides: Sequence[str] = ()) -> GenerativeRecipe:
    """Read a generative recipe (name in ``configuration/recipes`` or a path), apply ``key=value`` overrides, validate."""
    import yaml

    path = Path(name_or_path)
    if not path.is_file():
        path = RECIPES_FOLDER / f"{name_or_path}.yaml"
    if not path.is_file():
        available = sorted(p.stem for p in RECIPES_FOLDER.glob("generative-*.yaml"))
        raise FileNotFoundError(f"no generative recipe {str(name_or_path)!r} (available: {', '.join(available)})")
    values = apply_overrides(yaml.safe_load(path.read_text(encoding="utf-8")) or {}, overrides)
    if not isinstance(values, dict):
        raise RecipeError(f"{path}: a recipe must be a mapping with sections {sorted(_SECTIONS)}")
    values.pop("kind", None)
    recipe = GenerativeRecipe(name=path.stem)
    for key, value in values.items():
        if key not in _SECTIONS:
            raise RecipeError(f"{path}: unknown section {key!r} (expected {sorted(_SECTIONS)})")
        if not isinstance(value, dict):
            raise RecipeError(f"{path}: section {key!r} must be a mapping")
        known = {f.name: f for f in dataclasses.fields(_SECTIONS[key])}
        for name, item in value.items():
            if name not in known:
                raise RecipeError(f"{path}: unknown key {key}.{name} (known: {', '.join(sorted(known))})")
            default = getattr(_SECTIONS[key](), name)
            if default is not None and item is not None and not isinstance(item, type(default)) and not (isinstance(default, float) and isinstance(item, int)):
                raise RecipeError(f"{path}: {key}.{name} must be a {type(default).__name__}, got {item!r}")
        setattr(recipe, key, _SECTIONS[key](**value))
    if recipe.model.variant not in ("finsta", "host"):
        raise RecipeError(f"{path}: model.variant must be 'finsta' or 'host', got {recipe.model.variant!r}")
    if recipe.data.source not in GENERATIVE_DATA_SOURCES:
        raise RecipeError(f"{path}: data.source must be one of {GENERATIVE_DATA_SOURCES}, got {recipe.data.source!r}")
    if recipe.data.dsg not in ("annotated", "latent"):
        raise RecipeError(f"{path}: data.dsg must be 'annotated' or 'latent', got {recipe.data.dsg!r}")
    if recipe.data.source != "finsta-synth" and not recipe.data.root:
        raise RecipeError(f"{path}: data.root is needed for data.source={recipe.data.source!r}")
    return recipe


def build_generative_setup(recipe: GenerativeRecipe):
    """(model, processor, training examples) of a recipe; real checkpoints load with only the head initialised."""
    import torch

    from ..configuration_finsta_generation import FinstaGenerationConfig
    from ..modeling_finsta_generation import FinstaForConditionalGeneration
    from ..processing_finsta_generation import FinstaGenerationProcessor
    from .generative import synth_examples
    from .tiny_video_llm import tiny_video_llm_config, video_llm_tokenizer

    data, model_settings = recipe.data, recipe.model
    prompt = data.prompt_template
    synth = None
    if data.source == "finsta-synth":
        from ..synth import FinstaSynthConfig
        from ..synth.generative import generate_generative_finsta_synth, generative_vocabulary

        settings = {"objects_per_clip": 3, "num_frames": data.num_frames, "image_size": data.image_size, **data.finsta_synth}
        synth = generate_generative_finsta_synth(FinstaSynthConfig(**settings))
    torch.manual_seed(recipe.training.seed)
    if model_settings.backbone in TINY_HOSTS:
        if synth is None:
            raise RecipeError(f"recipe {recipe.name}: a tiny host has a closed vocabulary; train it on data.source=finsta-synth")
        tokenizer = video_llm_tokenizer(generative_vocabulary(synth) + ["question", "answer", ":"])
        host_config = tiny_video_llm_config(TINY_HOSTS[model_settings.backbone], tokenizer, image_size=data.image_size, **model_settings.tiny)
        model = FinstaForConditionalGeneration(FinstaGenerationConfig(backbone_config=host_config, **model_settings.finsta))
        prompt = prompt or "{video} question: {question} answer:"
        processor = FinstaGenerationProcessor.from_host_config(tokenizer, host_config, num_frames=data.num_frames, image_size=data.image_size, prompt_template=prompt)
    else:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(model_settings.backbone)
        dtype = getattr(torch, model_settings.dtype) if model_settings.dtype else None
        model = FinstaForConditionalGeneration.from_pretrained(model_settings.backbone, dtype=dtype, **model_settings.finsta)
        vision = model.config.backbone_config.vision_config
        size = vision.image_size if model.config.backbone_type == "video_llava" else 14 * 2 * 16  # Qwen: 448 px frames
        processor = FinstaGenerationProcessor.from_host_config(
            tokenizer, model.config.backbone_config, num_frames=data.num_frames, image_size=size,
            **({"prompt_template": prompt} if prompt else {}), parser_backend="auto",
        )  # fmt: skip
    if model_settings.variant == "host":
        model = model.backbone
    if synth is not None:
        examples = synth_examples(synth, "train", dsg=data.dsg)
    else:
        examples = _dataset_examples(data)
    return model, processor, examples


def _dataset_examples(data: GenerativeDataSettings) -> list[dict[str, Any]]:
    """Raw examples from a dataset folder (videos decoded by the processor at collation time)."""
    from ..readers import find_video, read_msrvtt_captions, read_video_qa

    root = Path(data.root)
    if data.source == "msrvtt-caption":
        records = read_msrvtt_captions(root, data.split)
        return [
            {"question": "describe the video.", "answer": caption, "video": find_video(root, "msrvtt", r.video_id), "caption": caption}
            for r in records for caption in r.captions
        ]  # fmt: skip
    dataset = "msrvtt" if data.source == "msrvtt-qa" else "msvd"
    return [
        {"question": r.question, "answer": r.answer, "video": find_video(root, dataset, r.video_id), "caption": f"{r.question} {r.answer}"}
        for r in read_video_qa(root, dataset, data.split)
    ]


def run_generative_recipe(recipe: GenerativeRecipe, output_dir: Union[str, os.PathLike]):
    """Train a recipe and save the model (merged when LoRA was used) and processor in ``output_dir``."""
    from .generative import train_generative
    from .generative_peft import get_generative_peft_model

    model, processor, examples = build_generative_setup(recipe)
    if recipe.peft.lora_r > 0:
        model = get_generative_peft_model(model, r=recipe.peft.lora_r, lora_alpha=recipe.peft.lora_alpha, train_projector=recipe.peft.train_projector)
    training = recipe.training
    model, result, _ = train_generative(
        model, processor, examples, str(output_dir), max_steps=training.max_steps, batch_size=training.batch_size,
        learning_rate=training.learning_rate, seed=training.seed, bf16=training.bf16, **training.trainer_arguments,
    )  # fmt: skip
    if recipe.peft.lora_r > 0:
        model = model.merge_and_unload()
    model.save_pretrained(output_dir)
    processor.save_pretrained(output_dir)
    return model, processor, result


__all__ = [
    "GENERATIVE_DATA_SOURCES",
    "TINY_HOSTS",
    "GenerativeRecipe",
    "build_generative_setup",
    "load_generative_recipe",
    "run_generative_recipe",
]
