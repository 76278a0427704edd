"""LoRA for Finsta: low-rank adapters on the backbone, the Finsta head trained in full.

Two traps this recipe avoids (both checked on peft 0.21):

* ``target_modules=["q_proj", "v_proj"]`` also matches the graph encoder's and the seqTransf
  header's attention layers; the targets here are one regex anchored at ``backbone.``.
* ``modules_to_save`` refuses ``ModuleList``/``ModuleDict``: every new Finsta parameter lives in
  the single module ``graph_encoder`` (and the CLIP4Clip header in ``host_adapter``), which PEFT
  copies and trains in full, and which ``save_pretrained`` stores with the adapter.

Recipe::

    from peft import PeftModel, get_peft_model
    model = get_peft_model(finsta_model, finsta_lora_config(finsta_model.config))
    ...train (Trainer works; see tests/test_peft_finsta.py)...
    model.save_pretrained("adapter")                       # LoRA + graph_encoder (+ host_adapter)
    model = PeftModel.from_pretrained(FinstaModel.from_pretrained(base), "adapter")
    merged = model.merge_and_unload()                     # a plain FinstaModel
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Optional

DEFAULT_LORA_PROJECTIONS = ("q_proj", "v_proj")


def backbone_lora_target_regex(projections: Sequence[str] = DEFAULT_LORA_PROJECTIONS) -> str:
    """A PEFT ``target_modules`` regex matching ``projections`` inside ``backbone.`` only.

    PEFT full-matches a string target against each module name, so this never reaches
    ``graph_encoder.*`` or ``host_adapter.temporal_encoder.*``.
    """
    if not projections:
        raise ValueError("backbone_lora_target_regex: give at least one projection name, e.g. ('q_proj', 'v_proj')")
    for name in projections:
        if not re.fullmatch(r"\w+", name):
            raise ValueError(f"backbone_lora_target_regex: {name!r} is not a plain module name")
    return r"backbone\..*\.(" + "|".join(projections) + r")"


def finsta_modules_to_save(config: Any) -> list[str]:
    """The Finsta modules trained in full: ``graph_encoder``, plus ``host_adapter`` when it has weights
    (the CLIP4Clip seqTransf header of a frame-wise host, VideoPrism's temperature); the meanP and
    X-CLIP adapters have none."""
    from ..configuration_finsta import FRAME_WISE_BACKBONES

    modules = ["graph_encoder"]
    if (config.backbone_type in FRAME_WISE_BACKBONES and config.temporal_head == "seqTransf") or config.backbone_type == "videoprism":
        modules.append("host_adapter")
    return modules


def finsta_lora_config(
    config: Any,
    r: int = 8,
    lora_alpha: int = 16,
    lora_dropout: float = 0.0,
    projections: Sequence[str] = DEFAULT_LORA_PROJECTIONS,
    train_temporal_head: bool = True,
    **lora_kwargs: Any,
):
    """A ``peft.LoraConfig`` for a ``FinstaModel`` with ``config``: LoRA on the backbone's
    ``projections``, the Finsta head (and the seqTransf header, unless ``train_temporal_head=False``)
    trained in full through ``modules_to_save``."""
    from peft import LoraConfig

    modules_to_save = finsta_modules_to_save(config)
    if not train_temporal_head and "host_adapter" in modules_to_save:
        modules_to_save.remove("host_adapter")
    return LoraConfig(
        r=r,
        lora_alpha=lora_alpha,
        lora_dropout=lora_dropout,
        target_modules=backbone_lora_target_regex(projections),
        modules_to_save=modules_to_save,
        bias="none",
        **lora_kwargs,
    )


def get_finsta_peft_model(model: Any, lora_config: Optional[Any] = None, **config_kwargs: Any):
    """Wrap ``model`` with ``finsta_lora_config`` (or ``lora_config``) and check the targets landed
    only in the backbone, so a regex typo fails here instead of silently training the wrong layers."""
    from peft import get_peft_model

    lora_config = lora_config or finsta_lora_config(model.config, **config_kwargs)
    peft_model = get_peft_model(model, lora_config)
    wrapped = [name for name, module in peft_model.named_modules() if hasattr(module, "lora_A")]
    if not wrapped:
        raise ValueError(f"LoRA targets {lora_config.target_modules!r} matched no module of the backbone")
    outside = [name for name in wrapped if ".backbone." not in f".{name}"]
    if outside:
        raise ValueError(f"LoRA targets reached modules outside the backbone: {outside[:5]}")
    return peft_model


__all__ = [
    "DEFAULT_LORA_PROJECTIONS",
    "backbone_lora_target_regex",
    "finsta_lora_config",
    "finsta_modules_to_save",
    "get_finsta_peft_model",
]
