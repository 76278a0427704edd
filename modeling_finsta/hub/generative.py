"""From a Video-LLaVA / Qwen2-VL / Qwen2.5-VL checkpoint (Hub id or folder) to a Finsta generative folder.

`convert_video_llm_to_finsta` loads the host into `FinstaForConditionalGeneration` (only the Finsta head
is initialised; legacy Hub layouts such as ``LanguageBind/Video-LLaVA-7B-hf``'s ``language_model.model.*``
keys are renamed by transformers' own conversion mapping, scoped to ``backbone.``), checks on a fixed
random video that the fresh model's logits equal the host's (loaded on its own with
`AutoModelForImageTextToText`), and writes safetensors, ``config.json`` with remote code, a
`FinstaGenerationProcessor` built from the host's tokenizer, and a model card. With ``HF_HUB_OFFLINE=1``
the Hub id is read from the local cache.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional, Union

import torch

from ..training.generative import HOST_INPUTS

HUB_VIDEO_LLMS = {
    "LanguageBind/Video-LLaVA-7B-hf": "finsta-video-llava-7b",
    "Qwen/Qwen2-VL-2B-Instruct": "finsta-qwen2-vl-2b-instruct",
}
"""Hub checkpoints with a card data file in ``model_cards/`` (any other host checkpoint converts too)."""


def _probe_inputs(processor) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (processor.num_frames, processor.image_size, processor.image_size, 3), generator=generator)
    batch = dict(processor(questions=["what happens?"], videos=[frames.to(torch.uint8).numpy()]))
    return {k: v for k, v in batch.items() if k in HOST_INPUTS}


def convert_video_llm_to_finsta(
    source: Union[str, os.PathLike],
    output_dir: Union[str, os.PathLike],
    *,
    num_frames: int = 8,
    image_size: Optional[int] = None,
    prompt_template: Optional[str] = None,
    card_data: Optional[Union[str, os.PathLike]] = None,
    atol: float = 1e-5,
    **finsta_kwargs: Any,
) -> Path:
    """Convert ``source`` and return ``output_dir``; raises when the fresh model does not reproduce the host."""
    from transformers import AutoModelForImageTextToText, AutoTokenizer

    from ..modeling_finsta_generation import FinstaForConditionalGeneration
    from ..processing_finsta_generation import FinstaGenerationProcessor
    from .model_cards import default_model_cards_dir, load_card_data, render_model_card

    output_dir = Path(output_dir)
    model = FinstaForConditionalGeneration.from_pretrained(source, **finsta_kwargs).eval()
    host = AutoModelForImageTextToText.from_pretrained(source).eval()
    tokenizer = AutoTokenizer.from_pretrained(source)
    backbone_config = model.config.backbone_config
    if image_size is None:
        image_size = backbone_config.vision_config.image_size if backbone_config.model_type == "video_llava" else 448
    settings = {"prompt_template": prompt_template} if prompt_template else {}
    processor = FinstaGenerationProcessor.from_host_config(tokenizer, backbone_config, num_frames=num_frames, image_size=image_size, **settings)
    inputs = _probe_inputs(processor)
    with torch.no_grad():
        expected = host(**inputs).logits
        got = model(**inputs).logits
    difference = (expected.float() - got.float()).abs().max().item()
    if difference > atol:
        raise RuntimeError(f"{source}: the converted model's logits differ from the host's by {difference:.3g} (> {atol})")
    model.save_pretrained(output_dir)
    processor.save_pretrained(output_dir)
    name = HUB_VIDEO_LLMS.get(str(source))
    folder = default_model_cards_dir()
    data_path = Path(card_data) if card_data else (folder / f"{name}.yaml" if folder is not None and name else None)
    if data_path is not None and data_path.is_file():
        card = render_model_card(
            load_card_data(data_path), folder / "template.md",
            provenance={"source": str(source), "max_logit_difference": difference},
            preprocessing_overrides={"num_frames": num_frames, "image_size": image_size},
        )  # fmt: skip
        card.data.pipeline_tag = "video-text-to-text"
        card.save(output_dir / "README.md")
    return output_dir


__all__ = ["HUB_VIDEO_LLMS", "convert_video_llm_to_finsta"]
