"""The one builder of tiny, randomly initialised generative video LLM hosts (Video-LLaVA-, Qwen2-VL- and
Qwen2.5-VL-style), trained from scratch on the generative Finsta-Synth on a CPU and used by the tests.

Each is the real transformers architecture (`VideoLlavaConfig`, `Qwen2VLConfig`, `Qwen2_5_VLConfig`)
at a few layers and a tiny vocabulary, so everything Finsta does to a 7B host (token layout, window
permutation, M-RoPE, ``mm_encoder_outputs``) is exercised exactly.
"""

from __future__ import annotations

from typing import Any

from transformers import PreTrainedConfig
from transformers.models.auto.configuration_auto import CONFIG_MAPPING

TINY_VIDEO_LLM_FAMILIES = ("video_llava", "qwen2_vl", "qwen2_5_vl")
VIDEO_TOKEN = "<video>"
"""The placeholder token the tiny hosts' tokenizers add (its id becomes ``video_token_id``)."""


def video_llm_tokenizer(words):
    """A closed-vocabulary tokenizer (`build_word_tokenizer`) plus the ``<video>`` placeholder token."""
    from .word_tokenizer import build_word_tokenizer

    tokenizer = build_word_tokenizer(words)
    tokenizer.add_special_tokens({"additional_special_tokens": [VIDEO_TOKEN]})
    return tokenizer


def tiny_video_llm_config(
    family: str,
    tokenizer: Any = None,
    *,
    vocab_size: int | None = None,
    video_token_id: int | None = None,
    image_size: int = 32,
    patch_size: int = 4,
    vision_width: int = 32,
    vision_layers: int = 2,
    text_width: int = 64,
    text_layers: int = 2,
    num_heads: int = 4,
    max_positions: int = 1024,
) -> PreTrainedConfig:
    """A tiny host config of ``family`` (one of `TINY_VIDEO_LLM_FAMILIES`).

    Args:
        tokenizer: gives ``vocab_size``, the special token ids and ``video_token_id`` (its ``<video>``).
        image_size / patch_size: frames are ``image_size`` squared; Video-LLaVA sees ``(image_size /
            patch_size)**2 + 1`` tokens per frame, Qwen2-VL ``(image_size / patch_size / 2)**2`` per 2-frame tubelet.
        vision_width / vision_layers, text_width / text_layers, num_heads: tower and LLM sizes.
    """
    if family not in TINY_VIDEO_LLM_FAMILIES:
        raise ValueError(f"tiny_video_llm_config: family must be one of {TINY_VIDEO_LLM_FAMILIES}, got {family!r}")
    if tokenizer is not None:
        vocab_size = vocab_size or len(tokenizer)
        video_token_id = video_token_id if video_token_id is not None else tokenizer.convert_tokens_to_ids(VIDEO_TOKEN)
        special = dict(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    else:
        if vocab_size is None or video_token_id is None:
            raise ValueError("tiny_video_llm_config: give a tokenizer, or vocab_size and video_token_id")
        special = dict(bos_token_id=0, eos_token_id=1, pad_token_id=1)
    head_dim = text_width // num_heads
    text = dict(
        vocab_size=vocab_size, hidden_size=text_width, intermediate_size=2 * text_width, num_hidden_layers=text_layers,
        num_attention_heads=num_heads, num_key_value_heads=max(1, num_heads // 2), max_position_embeddings=max_positions,
        **special,
    )  # fmt: skip
    if family == "video_llava":
        grid = image_size // patch_size
        return CONFIG_MAPPING["video_llava"](
            vision_config=dict(
                model_type="clip_vision_model", hidden_size=vision_width, intermediate_size=2 * vision_width,
                num_hidden_layers=vision_layers, num_attention_heads=num_heads, image_size=image_size,
                patch_size=patch_size, projection_dim=vision_width,
            ),
            text_config=dict(model_type="llama", **text),
            image_token_index=vocab_size + 7,  # no image placeholder in these vocabularies
            video_token_index=video_token_id,
            vision_feature_layer=-1,
            image_seq_length=grid * grid,
            video_seq_length=8 * (grid * grid + 1),
        )  # fmt: skip
    quarter = head_dim // 2
    sections = [quarter - 2 * (quarter // 3), quarter // 3, quarter // 3]  # M-RoPE sections (t, h, w) sum to head_dim / 2
    text["rope_parameters"] = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": sections}
    ids = dict(image_token_id=vocab_size + 7, video_token_id=video_token_id, vision_start_token_id=vocab_size + 8, vision_end_token_id=vocab_size + 9)
    if family == "qwen2_vl":
        vision = dict(
            depth=vision_layers, embed_dim=vision_width, hidden_size=text_width, num_heads=num_heads, patch_size=patch_size,
            spatial_merge_size=2, temporal_patch_size=2, mlp_ratio=2,
        )  # fmt: skip
        return CONFIG_MAPPING["qwen2_vl"](vision_config=vision, text_config=text, **ids)
    vision = dict(
        depth=vision_layers, hidden_size=vision_width, intermediate_size=2 * vision_width, out_hidden_size=text_width,
        num_heads=num_heads, patch_size=patch_size, spatial_merge_size=2, temporal_patch_size=2,
        window_size=4 * patch_size,  # 2 x 2 merge blocks per attention window
        # the last block attends over the whole frame, as every 8th does in the real tower (a 1-block tower stays windowed)
        fullatt_block_indexes=[vision_layers - 1] if vision_layers > 1 else [],
    )  # fmt: skip
    return CONFIG_MAPPING["qwen2_5_vl"](vision_config=vision, text_config=text, **ids)


__all__ = ["TINY_VIDEO_LLM_FAMILIES", "VIDEO_TOKEN", "tiny_video_llm_config", "video_llm_tokenizer"]
