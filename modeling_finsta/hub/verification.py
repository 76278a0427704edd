"""Proof that a converted folder reproduces its source: fixed inputs, the reload-and-compare check,
and an independent reference forward of original CLIP4Clip weights in their own layout.

The CLIP4Clip check compares against the *original* weights run in their own layout (fused
in_proj attention, ``x @ proj`` projections), so a wrong q/k/v split or a missing transpose in the
conversion fails the check instead of being copied faithfully into the published folder.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Optional, Union

import torch
import torch.nn.functional as F

from ..configuration_finsta import FRAME_WISE_BACKBONES
from .checkpoint_conversion import CLIP4CLIP_ATTENTION_HEAD_DIM

CLIP_LAYER_NORM_EPS = 1e-5
"""LayerNorm eps of OpenAI CLIP's towers (``nn.LayerNorm`` default)."""

CLIP4CLIP_TEMPORAL_LAYER_NORM_EPS = 1e-12
"""LayerNorm eps of CLIP4Clip's seqTransf temporal Transformer: its ``modules/module_cross.py``
defines its own TF-style ``LayerNorm`` with ``variance_epsilon=1e-12``, unlike the CLIP towers."""


class ConversionVerificationError(RuntimeError):
    """The reloaded converted folder does not reproduce the source's embeddings."""


@dataclass
class EmbeddingCheck:
    """Largest absolute differences between the converted model and the source, per modality."""

    text_max_abs_diff: float
    video_max_abs_diff: float
    video_level: str


def fixed_verification_inputs(
    vocab_size: int,
    context_length: int,
    image_size: int,
    num_frames: int = 4,
    eos_token_id: Optional[int] = None,
    num_channels: int = 3,
    seed: int = 0,
) -> dict[str, torch.Tensor]:
    """Deterministic captions and videos for the equality check.

    Two captions of different lengths (end token at a different place in each, zeros after it) and
    two videos, the second with its last frame padded, so pooling and masking are exercised too.
    """
    generator = torch.Generator().manual_seed(seed)
    length = min(context_length, 12)
    eos = vocab_size - 1 if eos_token_id is None or eos_token_id >= vocab_size else eos_token_id
    input_ids = torch.zeros(2, length, dtype=torch.long)
    for row, end in enumerate((length // 2, length - 1)):
        input_ids[row, :end] = torch.randint(1, max(2, vocab_size - 2), (end,), generator=generator)
        input_ids[row, end] = eos
    pixel_values = torch.randn(2, num_frames, num_channels, image_size, image_size, generator=generator)
    video_mask = torch.ones(2, num_frames, dtype=torch.long)
    if num_frames > 1:
        video_mask[1, -1] = 0
    return {"input_ids": input_ids, "pixel_values": pixel_values, "video_mask": video_mask}


def host_embeddings(model, inputs: Mapping[str, torch.Tensor]):
    """A Finsta model's host alone (its distilled mode) on fixed ``inputs``: the text embeddings ``[B, E]``
    and the host's video output (``video_embeds``, and ``frame_inputs``, the per-frame embeddings the
    temporal head reads). Frame-wise hosts (CLIP, SigLIP, SigLIP2) pool with the frame mask; X-CLIP and
    VideoPrism have none."""
    text = model.host_adapter.encode_text(model.backbone, inputs["input_ids"], None).text_embeds
    video_mask = inputs.get("video_mask") if model.config.backbone_type in FRAME_WISE_BACKBONES else None
    return text, model.host_adapter.encode_video(model.backbone, inputs["pixel_values"], video_mask)


def verify_backbone_embeddings(
    folder: Union[str, os.PathLike],
    inputs: Mapping[str, torch.Tensor],
    expected_text_embeds: torch.Tensor,
    expected_video_embeds: torch.Tensor,
    *,
    video_level: str = "video",
    tolerance: float = 1e-5,
) -> EmbeddingCheck:
    """Reload ``folder`` as a user would (``AutoModel``, remote code) and compare its backbone's
    embeddings with the source's on ``inputs``.

    ``video_level="video"`` compares the host's pooled video embedding (temporal head included);
    ``"frames"`` compares per-frame image embeddings ``[B * T, E]``, for a freshly initialised
    temporal head that the source never had. Raises ``ConversionVerificationError`` with the
    largest difference when either exceeds ``tolerance``.
    """
    from transformers import AutoModel

    if video_level not in ("video", "frames"):
        raise ValueError(f"video_level: expected 'video' or 'frames', got {video_level!r}")
    model = AutoModel.from_pretrained(os.fspath(folder), trust_remote_code=True, dtype=torch.float32).eval()
    with torch.no_grad():
        text, host_video = host_embeddings(model, inputs)
        if video_level == "video":
            video = host_video.video_embeds
        else:  # the per-frame image embeddings the temporal head reads
            video = host_video.frame_inputs.flatten(0, 1)
    return compare_embeddings(
        text, expected_text_embeds, video, expected_video_embeds, video_level=video_level, tolerance=tolerance,
        failure=f"{folder}: the reloaded conversion does not reproduce the source",
    )  # fmt: skip


def compare_embeddings(
    text: torch.Tensor,
    expected_text: torch.Tensor,
    video: torch.Tensor,
    expected_video: torch.Tensor,
    *,
    video_level: str,
    tolerance: float,
    failure: str,
) -> EmbeddingCheck:
    """The equality check shared by the converters and ``finsta-export-host``: largest absolute
    differences per modality; ``ConversionVerificationError`` (``failure``: what did not reproduce
    what, then the numbers) when either exceeds ``tolerance`` or the shapes differ."""
    check = EmbeddingCheck(
        text_max_abs_diff=_max_abs_diff(text, expected_text, "text"),
        video_max_abs_diff=_max_abs_diff(video, expected_video, "video"),
        video_level=video_level,
    )
    failures = [
        f"{name} embeddings differ by up to {value:.3g} (tolerance {tolerance:g})"
        for name, value in (("text", check.text_max_abs_diff), (video_level, check.video_max_abs_diff))
        if not value <= tolerance
    ]
    if failures:
        raise ConversionVerificationError(f"{failure}: " + "; ".join(failures))
    return check


def clip4clip_mean_pooling(frame_embeds: torch.Tensor, video_mask: torch.Tensor) -> torch.Tensor:
    """CLIP4Clip meanP from per-frame embeddings ``[B, T, E]``: L2-normalise each frame, average the
    valid frames (``video_mask`` 1), L2-normalise. What a plain ``CLIPModel`` user computes on top of
    ``get_image_features`` to get the video embedding of a CLIP4Clip meanP host."""
    per_frame = F.normalize(frame_embeds, dim=-1)
    valid = video_mask.to(per_frame.dtype).unsqueeze(-1)
    return F.normalize((per_frame * valid).sum(1) / valid.sum(1).clamp(min=1.0), dim=-1)


def _max_abs_diff(actual: torch.Tensor, expected: torch.Tensor, name: str) -> float:
    if actual.shape != expected.shape:
        raise ConversionVerificationError(
            f"{name} embeddings: converted shape {tuple(actual.shape)} != source shape {tuple(expected.shape)}"
        )
    return float((actual.float() - expected.float()).abs().max())


# ------------------------------------------------------------------ reference forward, original layout


def _original_block(
    x: torch.Tensor,
    weights: Mapping[str, torch.Tensor],
    prefix: str,
    num_heads: int,
    attn_mask=None,
    eps: float = CLIP_LAYER_NORM_EPS,
):
    width = x.shape[-1]
    h = F.layer_norm(x, (width,), weights[prefix + "ln_1.weight"], weights[prefix + "ln_1.bias"], eps)
    attended, _ = F.multi_head_attention_forward(
        h, h, h, width, num_heads,
        weights[prefix + "attn.in_proj_weight"], weights[prefix + "attn.in_proj_bias"],
        None, None, False, 0.0,
        weights[prefix + "attn.out_proj.weight"], weights[prefix + "attn.out_proj.bias"],
        training=False, need_weights=False, attn_mask=attn_mask,
    )  # fmt: skip
    x = x + attended
    h = F.layer_norm(x, (width,), weights[prefix + "ln_2.weight"], weights[prefix + "ln_2.bias"], eps)
    h = F.linear(h, weights[prefix + "mlp.c_fc.weight"], weights[prefix + "mlp.c_fc.bias"])
    h = h * torch.sigmoid(1.702 * h)
    return x + F.linear(h, weights[prefix + "mlp.c_proj.weight"], weights[prefix + "mlp.c_proj.bias"])


def _original_num_blocks(weights: Mapping[str, torch.Tensor], blocks_prefix: str) -> int:
    return len({key[len(blocks_prefix) :].split(".")[0] for key in weights if key.startswith(blocks_prefix)})


@torch.no_grad()
def clip4clip_reference_embeddings(
    weights: Mapping[str, torch.Tensor],
    input_ids: torch.Tensor,
    pixel_values: torch.Tensor,
    video_mask: torch.Tensor,
    attention_head_dim: int = CLIP4CLIP_ATTENTION_HEAD_DIM,
) -> tuple[torch.Tensor, torch.Tensor]:
    """CLIP4Clip's own text embedding and normalised video embedding, computed from original weights.

    ``weights`` is a CLIP4Clip state dict without the DataParallel ``module.`` prefix (strip it
    first with ``strip_data_parallel_prefix``). The CLIP towers use LayerNorm eps 1e-5, the
    seqTransf temporal Transformer 1e-12, as in CLIP4Clip.
    """
    p = "clip."
    weights = {key: value.float() for key, value in weights.items()}
    # text: OpenAI CLIP encode_text (causal mask, end token = highest id)
    length = input_ids.shape[1]
    x = weights[p + "token_embedding.weight"][input_ids] + weights[p + "positional_embedding"][:length]
    causal = torch.full((length, length), float("-inf")).triu_(1)
    x = x.transpose(0, 1)
    for index in range(_original_num_blocks(weights, p + "transformer.resblocks.")):
        x = _original_block(x, weights, f"{p}transformer.resblocks.{index}.", x.shape[-1] // attention_head_dim, causal)
    x = x.transpose(0, 1)
    x = F.layer_norm(x, (x.shape[-1],), weights[p + "ln_final.weight"], weights[p + "ln_final.bias"])
    text = x[torch.arange(x.shape[0]), input_ids.argmax(dim=-1)] @ weights[p + "text_projection"]

    # frames: OpenAI CLIP encode_image per frame
    batch, frames = pixel_values.shape[:2]
    conv = weights[p + "visual.conv1.weight"]
    x = F.conv2d(pixel_values.flatten(0, 1), conv, stride=conv.shape[-1])
    x = x.flatten(2).transpose(1, 2)
    cls = weights[p + "visual.class_embedding"].expand(x.shape[0], 1, -1)
    x = torch.cat([cls, x], dim=1) + weights[p + "visual.positional_embedding"]
    x = F.layer_norm(x, (x.shape[-1],), weights[p + "visual.ln_pre.weight"], weights[p + "visual.ln_pre.bias"])
    x = x.transpose(0, 1)
    for index in range(_original_num_blocks(weights, p + "visual.transformer.resblocks.")):
        x = _original_block(x, weights, f"{p}visual.transformer.resblocks.{index}.", x.shape[-1] // attention_head_dim)
    x = F.layer_norm(x[0], (x.shape[-1],), weights[p + "visual.ln_post.weight"], weights[p + "visual.ln_post.bias"])
    frame_embeds = (x @ weights[p + "visual.proj"]).view(batch, frames, -1)

    # CLIP4Clip similarity header (seqTransf: frame positions + transformerClip + residual)
    if "frame_position_embeddings.weight" in weights:
        width = frame_embeds.shape[-1]
        heads = width // attention_head_dim
        x = frame_embeds + weights["frame_position_embeddings.weight"][:frames].unsqueeze(0)
        mask = ((1.0 - video_mask.float()).unsqueeze(1) * -1000000.0).expand(-1, frames, -1)
        mask = mask.repeat_interleave(heads, dim=0)
        x = x.transpose(0, 1)
        for index in range(_original_num_blocks(weights, "transformerClip.resblocks.")):
            x = _original_block(
                x, weights, f"transformerClip.resblocks.{index}.", heads, mask, eps=CLIP4CLIP_TEMPORAL_LAYER_NORM_EPS
            )
        frame_embeds = x.transpose(0, 1) + frame_embeds
    return text, clip4clip_mean_pooling(frame_embeds, video_mask)


__all__ = [
    "host_embeddings",
    "CLIP4CLIP_TEMPORAL_LAYER_NORM_EPS",
    "CLIP_LAYER_NORM_EPS",
    "ConversionVerificationError",
    "EmbeddingCheck",
    "clip4clip_mean_pooling",
    "clip4clip_reference_embeddings",
    "compare_embeddings",
    "fixed_verification_inputs",
    "verify_backbone_embeddings",
]
