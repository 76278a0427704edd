"""The one builder of the tiny, randomly initialised CLIP trained from pixels.

Used by ``model.backbone: tiny-clip`` recipes (sized by ``model.tiny``), by ``finsta-demo`` and by
the tests (``tests/tiny_models.py``), so the three always describe the same kind of backbone.
"""

from __future__ import annotations

from typing import Any, Optional

from transformers import CLIPConfig


def tiny_clip_config(
    tokenizer: Any = None,
    *,
    vocab_size: Optional[int] = None,
    max_length: int,
    image_size: int,
    patch_size: int = 4,
    width: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    intermediate_factor: int = 2,
    projection_dim: Optional[int] = None,
    vision_width: Optional[int] = None,
) -> CLIPConfig:
    """A small CLIP config: text and vision towers of ``width`` (``num_layers`` layers, ``num_heads``
    heads, MLPs of ``intermediate_factor * width``).

    Args:
        tokenizer: its special token ids become the text tower's ``bos/eos/pad_token_id``; its
            length is the default ``vocab_size``.
        vocab_size: text vocabulary size (default ``len(tokenizer)``).
        max_length: text positions (the processor's ``max_length``).
        image_size / patch_size: the vision tower's input; the default 4-pixel patches keep each
            Finsta-Synth object (32x32 frames) on 2x2 patches.
        projection_dim: size of the joint embedding space (default ``width``).
        vision_width: width of the vision tower when it differs from the text tower's (default
            ``width``; recipes size the two towers separately).
    """
    if vocab_size is None:
        if tokenizer is None:
            raise ValueError("tiny_clip_config: give a tokenizer or a vocab_size")
        vocab_size = len(tokenizer)

    def tower(hidden: int) -> dict[str, int]:
        return dict(
            hidden_size=hidden,
            intermediate_size=intermediate_factor * hidden,
            num_hidden_layers=num_layers,
            num_attention_heads=num_heads,
        )

    text_config: dict[str, Any] = dict(tower(width), vocab_size=vocab_size, max_position_embeddings=max_length)
    if tokenizer is not None:
        text_config.update(
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    return CLIPConfig(
        text_config=text_config,
        vision_config=dict(
            tower(width if vision_width is None else vision_width), image_size=image_size, patch_size=patch_size
        ),
        projection_dim=width if projection_dim is None else projection_dim,
    )


__all__ = ["tiny_clip_config"]
