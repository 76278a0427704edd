"""LoRA for generative Finsta models: adapters on the LLM's attention projections, the vision-to-LLM
projector and the Finsta head trained in full, the vision tower frozen.

The targets are one regex anchored at the host's language model (``backbone.model.language_model.``),
so neither the vision tower (Qwen2-VL's blocks) nor the graph encoder's own ``q_proj``/``v_proj`` layers
are wrapped; ``modules_to_save`` is ``finsta_head`` (every new parameter, one module) plus the host
family's projector (``multi_modal_projector`` for Video-LLaVA, ``merger`` for Qwen2-VL).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Optional

LLM_LORA_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj")


def llm_lora_target_regex(projections: Sequence[str] = LLM_LORA_PROJECTIONS) -> str:
    """A PEFT ``target_modules`` regex for ``projections`` inside the host LLM only."""
    if not projections or not all(re.fullmatch(r"\w+", name) for name in projections):
        raise ValueError(f"llm_lora_target_regex: give plain module names, got {projections!r}")
    return r"backbone\.model\.language_model\..*\.(" + "|".join(projections) + r")"


def generative_modules_to_save(model: Any, train_projector: bool = True) -> list[str]:
    """``finsta_head`` (absent on a plain host) plus the host's projector modules."""
    modules = ["finsta_head"] if hasattr(model, "finsta_head") else []
    if train_projector:
        adapter = getattr(model, "host_adapter", None)
        if adapter is not None:
            modules += list(adapter.projector_module_names)
        else:  # a plain host: its projector by family
            modules += ["multi_modal_projector"] if model.config.model_type == "video_llava" else ["merger"]
    return modules


def get_generative_peft_model(
    model: Any,
    r: int = 8,
    lora_alpha: int = 16,
    lora_dropout: float = 0.0,
    projections: Sequence[str] = LLM_LORA_PROJECTIONS,
    train_projector: bool = True,
    lora_config: Optional[Any] = None,
):
    """Wrap a `FinstaForConditionalGeneration` with LoRA on its LLM and check that the adapters landed there only."""
    from peft import LoraConfig, get_peft_model

    lora_config = lora_config or LoraConfig(
        r=r, lora_alpha=lora_alpha, lora_dropout=lora_dropout, target_modules=llm_lora_target_regex(projections),
        modules_to_save=generative_modules_to_save(model, train_projector), bias="none",
    )  # fmt: skip
    peft_model = get_peft_model(model, lora_config)
    wrapped = [name for name, module in peft_model.named_modules() if hasattr(module, "lora_A")]
    if not wrapped:
        raise ValueError(f"LoRA targets {lora_config.target_modules!r} matched no module of the host LLM")
    outside = [name for name in wrapped if ".language_model." not in name]
    if outside:
        raise ValueError(f"LoRA targets reached modules outside the host LLM: {outside[:5]}")
    return peft_model


__all__ = ["LLM_LORA_PROJECTIONS", "generative_modules_to_save", "get_generative_peft_model", "llm_lora_target_regex"]
