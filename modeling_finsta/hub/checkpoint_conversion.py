"""Pure state-dict conversions from original CLIP / CLIP4Clip checkpoints to transformers layouts.

Everything here works on plain ``dict[str, torch.Tensor]`` objects and never builds a model, so the
functions can be tested in isolation and reused by the converters (``hub/converters.py``).

Sources handled:

* an OpenAI CLIP (ViT) state dict, optionally under a prefix (``"clip."`` inside CLIP4Clip);
* a CLIP4Clip training checkpoint (``torch.save(model.state_dict())``) with the ``meanP`` or
  ``seqTransf`` similarity header.

Targets:

* the transformers ``CLIPModel`` state dict (no prefix; the caller adds ``backbone.``);
* the Finsta seqTransf temporal head: ``frame_position_embeddings.weight`` and
  ``temporal_encoder.layers.{i}.*`` (``self_attn.{q,k,v,out}_proj``, ``layer_norm1``, ``mlp.fc1``,
  ``mlp.fc2``, ``layer_norm2``: the parameter names of a transformers ``CLIPEncoder``; the caller
  adds ``host_adapter.``).

Key accounting is exact: every source key is either converted or listed in ``dropped_keys`` with the
reason; anything else (an unknown key, a missing key, an unsupported CLIP4Clip variant) raises
``CheckpointConversionError`` naming the keys, so a conversion never silently loses weights.

The inverse (``export_*``, used by ``finsta-export-host``) takes a ``CLIPModel`` state dict and the
Finsta seqTransf head back to the CLIP4Clip training-checkpoint layout, one small function per
``convert_*`` and with the same exact accounting, so ``convert_*(export_*(x))`` reproduces ``x``
key for key.
"""

from __future__ import annotations

import math
import os
import re
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Optional

import torch
from transformers import CLIPConfig


class CheckpointConversionError(ValueError):
    """A checkpoint cannot be converted exactly (unknown, missing or unsupported keys or shapes)."""


MAX_LISTED_KEYS = 20
"""How many key names an error message lists before summarising the rest."""

OPENAI_METADATA_BUFFERS = {
    "input_resolution": "OpenAI JIT metadata buffer; the image size is inferred from the weights",
    "context_length": "OpenAI JIT metadata buffer; the context length is inferred from the weights",
    "vocab_size": "OpenAI JIT metadata buffer; the vocabulary size is inferred from the weights",
}
"""Scalar buffers some OpenAI CLIP dumps carry; they hold no weights and are dropped (after a check)."""

# One OpenAI ``ResidualAttentionBlock`` -> one transformers ``CLIPEncoderLayer``, except the fused
# ``attn.in_proj_*`` tensors, which ``split_fused_qkv`` handles.
_RESIDUAL_BLOCK_RENAMES = {
    "attn.out_proj.weight": "self_attn.out_proj.weight",
    "attn.out_proj.bias": "self_attn.out_proj.bias",
    "ln_1.weight": "layer_norm1.weight",
    "ln_1.bias": "layer_norm1.bias",
    "mlp.c_fc.weight": "mlp.fc1.weight",
    "mlp.c_fc.bias": "mlp.fc1.bias",
    "mlp.c_proj.weight": "mlp.fc2.weight",
    "mlp.c_proj.bias": "mlp.fc2.bias",
    "ln_2.weight": "layer_norm2.weight",
    "ln_2.bias": "layer_norm2.bias",
}
_FUSED_QKV_KEYS = ("attn.in_proj_weight", "attn.in_proj_bias")
RESIDUAL_BLOCK_SOURCE_KEYS = frozenset(_FUSED_QKV_KEYS) | frozenset(_RESIDUAL_BLOCK_RENAMES)
"""Key suffixes of one OpenAI residual attention block (after ``...resblocks.{i}.``)."""

# OpenAI CLIP keys (after the prefix) copied as they are: source -> CLIPModel key.
_OPENAI_CLIP_DIRECT_RENAMES = {
    "token_embedding.weight": "text_model.embeddings.token_embedding.weight",
    "positional_embedding": "text_model.embeddings.position_embedding.weight",
    "ln_final.weight": "text_model.final_layer_norm.weight",
    "ln_final.bias": "text_model.final_layer_norm.bias",
    "logit_scale": "logit_scale",
    "visual.conv1.weight": "vision_model.embeddings.patch_embedding.weight",
    "visual.class_embedding": "vision_model.embeddings.class_embedding",
    "visual.positional_embedding": "vision_model.embeddings.position_embedding.weight",
    "visual.ln_pre.weight": "vision_model.pre_layrnorm.weight",
    "visual.ln_pre.bias": "vision_model.pre_layrnorm.bias",
    "visual.ln_post.weight": "vision_model.post_layernorm.weight",
    "visual.ln_post.bias": "vision_model.post_layernorm.bias",
}
# OpenAI stores the projections as ``[width, embed]`` matrices used as ``x @ proj``; nn.Linear
# stores ``[out, in]``, hence the transpose.
_OPENAI_CLIP_TRANSPOSED_RENAMES = {
    "text_projection": "text_projection.weight",
    "visual.proj": "visual_projection.weight",
}
_TEXT_BLOCKS = ("transformer.resblocks.", "text_model.encoder.layers.")
_VISION_BLOCKS = ("visual.transformer.resblocks.", "vision_model.encoder.layers.")

CLIP4CLIP_CLIP_PREFIX = "clip."
CLIP4CLIP_FRAME_POSITION_KEY = "frame_position_embeddings.weight"
CLIP4CLIP_TEMPORAL_BLOCKS_PREFIX = "transformerClip.resblocks."
TEMPORAL_FRAME_POSITION_KEY = "frame_position_embeddings.weight"
TEMPORAL_LAYERS_PREFIX = "temporal_encoder.layers."

_UNSUPPORTED_CLIP4CLIP_HEADERS = {
    "lstm_visual.": (
        "seqLSTM",
        "its LSTM similarity header has no counterpart in Finsta; convert a meanP or seqTransf checkpoint",
    ),
    "cross.": (
        "tightTransf",
        "it scores each text-video pair with a cross encoder (CLIP4Clip without --loose_type), so text and "
        "video embeddings are not independently indexable; convert a meanP or seqTransf checkpoint",
    ),
    "similarity_dense.": (
        "tightTransf",
        "it scores each text-video pair with a cross encoder (CLIP4Clip without --loose_type), so text and "
        "video embeddings are not independently indexable; convert a meanP or seqTransf checkpoint",
    ),
}


def format_key_list(keys: Iterable[str], limit: int = MAX_LISTED_KEYS) -> str:
    """Sorted, comma-separated key names, truncated after ``limit`` with a count of the rest."""
    keys = sorted(keys)
    shown = ", ".join(keys[:limit])
    if len(keys) > limit:
        shown += f", ... and {len(keys) - limit} more"
    return shown


def check_state_dict_keys(expected_keys: Iterable[str], provided_keys: Iterable[str], context: str) -> None:
    """Raise ``CheckpointConversionError`` unless both key sets are identical.

    ``context`` names what is being checked (e.g. the file), so the message says where to look.
    """
    expected, provided = set(expected_keys), set(provided_keys)
    missing, unexpected = expected - provided, provided - expected
    if not missing and not unexpected:
        return
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing key(s): {format_key_list(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s): {format_key_list(unexpected)}")
    raise CheckpointConversionError(f"{context}: " + "; ".join(problems))


def _as_linear_weight(projection: torch.Tensor, key: str) -> torch.Tensor:
    if projection.dim() != 2:
        raise CheckpointConversionError(
            f"{key}: expected a [width, embed] matrix, got shape {tuple(projection.shape)}"
        )
    return projection.t().contiguous()


def split_fused_qkv(
    in_proj_weight: torch.Tensor, in_proj_bias: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Split ``nn.MultiheadAttention``'s fused input projection into separate q, k, v projections.

    The fused weight is ``[3 * width, width]`` with rows in q, k, v order (bias likewise), which is
    the order ``nn.MultiheadAttention`` applies them in. Returns
    ``(q_weight, q_bias, k_weight, k_bias, v_weight, v_bias)`` as independent contiguous tensors (no
    shared storage, so the result can be saved with safetensors).
    """
    if in_proj_weight.dim() != 2 or in_proj_weight.shape[0] != 3 * in_proj_weight.shape[1]:
        raise CheckpointConversionError(
            f"fused in_proj_weight: expected shape [3 * width, width], got {tuple(in_proj_weight.shape)}"
        )
    width = in_proj_weight.shape[1]
    if tuple(in_proj_bias.shape) != (3 * width,):
        raise CheckpointConversionError(
            f"fused in_proj_bias: expected shape [{3 * width}] to match in_proj_weight, "
            f"got {tuple(in_proj_bias.shape)}"
        )
    q_weight, k_weight, v_weight = (part.clone() for part in in_proj_weight.chunk(3, dim=0))
    q_bias, k_bias, v_bias = (part.clone() for part in in_proj_bias.chunk(3, dim=0))
    return q_weight, q_bias, k_weight, k_bias, v_weight, v_bias


CLIP4CLIP_ATTENTION_HEAD_DIM = 64
"""Width of one attention head in OpenAI's ViT CLIP (and so in CLIP4Clip): heads = width // 64."""

_CLIP_ENCODER_LAYER_QKV_KEYS = (  # in the order split_fused_qkv returns them
    "self_attn.q_proj.weight",
    "self_attn.q_proj.bias",
    "self_attn.k_proj.weight",
    "self_attn.k_proj.bias",
    "self_attn.v_proj.weight",
    "self_attn.v_proj.bias",
)


def convert_residual_block(
    state_dict: Mapping[str, torch.Tensor], source_prefix: str, target_prefix: str
) -> dict[str, torch.Tensor]:
    """Convert one OpenAI ``ResidualAttentionBlock`` into one transformers ``CLIPEncoderLayer``.

    ``source_prefix`` is e.g. ``"clip.transformer.resblocks.3."`` and ``target_prefix`` e.g.
    ``"text_model.encoder.layers.3."`` (both with the trailing dot). The keys under
    ``source_prefix`` must be exactly the block's keys: a missing or unknown one raises, naming it.
    """
    check_state_dict_keys(
        {source_prefix + suffix for suffix in RESIDUAL_BLOCK_SOURCE_KEYS},
        {key for key in state_dict if key.startswith(source_prefix)},
        f"residual attention block {source_prefix!r}",
    )
    qkv = split_fused_qkv(state_dict[source_prefix + "attn.in_proj_weight"], state_dict[source_prefix + "attn.in_proj_bias"])
    converted = {target_prefix + key: tensor for key, tensor in zip(_CLIP_ENCODER_LAYER_QKV_KEYS, qkv)}
    for source_suffix, target_suffix in _RESIDUAL_BLOCK_RENAMES.items():
        converted[target_prefix + target_suffix] = state_dict[source_prefix + source_suffix]
    return converted


def count_residual_blocks(state_dict: Mapping[str, torch.Tensor], blocks_prefix: str) -> int:
    """Number of blocks ``{blocks_prefix}{i}.*``; raises if the indices are not exactly 0..n-1."""
    pattern = re.compile(re.escape(blocks_prefix) + r"(\d+)\.")
    indices = {int(match.group(1)) for key in state_dict if (match := pattern.match(key))}
    if indices != set(range(len(indices))):
        absent = sorted(set(range(max(indices) + 1)) - indices)
        raise CheckpointConversionError(
            f"blocks under {blocks_prefix!r} are not numbered 0..{max(indices)}: block(s) {absent} are missing"
        )
    return len(indices)


def _count_tower_blocks(state_dict: Mapping[str, torch.Tensor], blocks_prefix: str, context: str) -> int:
    num_blocks = count_residual_blocks(state_dict, blocks_prefix)
    if num_blocks == 0:
        raise CheckpointConversionError(f"{context}: no residual blocks under {blocks_prefix!r}")
    return num_blocks


def _refuse_unsupported_openai_visual(state_dict: Mapping[str, torch.Tensor], prefix: str) -> None:
    if any(key.startswith(prefix + "visual.conv2.") for key in state_dict):
        raise CheckpointConversionError(
            f"{prefix}visual.conv2.weight found: this checkpoint was trained with CLIP4Clip's "
            "'--linear_patch 3d' (a 3-D patch embedding over frame pairs), which transformers' CLIPModel "
            "cannot represent; only '--linear_patch 2d' checkpoints can be converted"
        )
    if prefix + "visual.conv1.weight" not in state_dict and any(
        key.startswith(prefix + "visual.layer1.") for key in state_dict
    ):
        raise CheckpointConversionError(
            f"{prefix}visual.layer1.* found: this is a ResNet CLIP (RN50, RN101, ...); only ViT CLIP checkpoints "
            "can be converted to transformers' CLIPModel"
        )


def _require(state_dict: Mapping[str, torch.Tensor], keys: Iterable[str], context: str) -> None:
    missing = [key for key in keys if key not in state_dict]
    if missing:
        raise CheckpointConversionError(f"{context}: {len(missing)} missing key(s): {format_key_list(missing)}")


def _metadata_value(tensor: torch.Tensor) -> int:
    return int(tensor.reshape(-1)[0].item()) if tensor.numel() == 1 else -1


def infer_openai_clip_config(
    state_dict: Mapping[str, torch.Tensor], prefix: str = "clip.", attention_head_dim: int = CLIP4CLIP_ATTENTION_HEAD_DIM
) -> CLIPConfig:
    """Infer the transformers ``CLIPConfig`` of an OpenAI ViT CLIP state dict from its tensor shapes.

    Follows OpenAI's own ``build_model``: heads are ``width // attention_head_dim`` (64 in every
    released model; the checkpoint does not store it), image size is the positional grid times the
    patch size. The text end-of-text token is the last vocabulary id (OpenAI's tokenizer), so
    transformers' first-EOS pooling picks the same position as OpenAI's ``argmax`` pooling.
    """
    _refuse_unsupported_openai_visual(state_dict, prefix)
    context = f"OpenAI CLIP state dict (prefix {prefix!r})"
    _require(
        state_dict, [prefix + key for key in (*_OPENAI_CLIP_DIRECT_RENAMES, *_OPENAI_CLIP_TRANSPOSED_RENAMES)], context
    )
    text_layers = _count_tower_blocks(state_dict, prefix + _TEXT_BLOCKS[0], context)
    vision_layers = _count_tower_blocks(state_dict, prefix + _VISION_BLOCKS[0], context)
    _require(
        state_dict,
        [prefix + _TEXT_BLOCKS[0] + "0.mlp.c_fc.weight", prefix + _VISION_BLOCKS[0] + "0.mlp.c_fc.weight"],
        context,
    )

    def num_heads(width: int, tower: str) -> int:
        if width % attention_head_dim:
            raise CheckpointConversionError(
                f"{tower} width {width} is not a multiple of attention_head_dim={attention_head_dim}; "
                "cannot infer the number of attention heads"
            )
        return width // attention_head_dim

    patch_weight = state_dict[prefix + "visual.conv1.weight"]
    vision_width, num_channels, patch_size, patch_width = patch_weight.shape
    if patch_size != patch_width:
        raise CheckpointConversionError(
            f"{prefix}visual.conv1.weight: expected square patches, got {tuple(patch_weight.shape)}"
        )
    num_positions = state_dict[prefix + "visual.positional_embedding"].shape[0]
    grid = math.isqrt(num_positions - 1)
    if grid * grid != num_positions - 1:
        raise CheckpointConversionError(
            f"{prefix}visual.positional_embedding has {num_positions} rows; "
            "expected 1 + grid**2 for a square patch grid"
        )
    text_width = state_dict[prefix + "ln_final.weight"].shape[0]
    vocab_size = state_dict[prefix + "token_embedding.weight"].shape[0]
    context_length = state_dict[prefix + "positional_embedding"].shape[0]
    projection_dim = state_dict[prefix + "text_projection"].shape[1]
    visual_projection = state_dict[prefix + "visual.proj"]
    if tuple(visual_projection.shape) != (vision_width, projection_dim):
        raise CheckpointConversionError(
            f"{prefix}visual.proj: expected shape {(vision_width, projection_dim)} "
            f"(vision width, text projection dim), got {tuple(visual_projection.shape)}"
        )

    text_config = {
        "hidden_size": text_width,
        "intermediate_size": state_dict[prefix + _TEXT_BLOCKS[0] + "0.mlp.c_fc.weight"].shape[0],
        "num_hidden_layers": text_layers,
        "num_attention_heads": num_heads(text_width, "text"),
        "max_position_embeddings": context_length,
        "vocab_size": vocab_size,
        "hidden_act": "quick_gelu",
        "projection_dim": projection_dim,
        "bos_token_id": vocab_size - 2,
        "eos_token_id": vocab_size - 1,
    }
    vision_config = {
        "hidden_size": vision_width,
        "intermediate_size": state_dict[prefix + _VISION_BLOCKS[0] + "0.mlp.c_fc.weight"].shape[0],
        "num_hidden_layers": vision_layers,
        "num_attention_heads": num_heads(vision_width, "vision"),
        "num_channels": num_channels,
        "image_size": grid * patch_size,
        "patch_size": patch_size,
        "hidden_act": "quick_gelu",
        "projection_dim": projection_dim,
    }
    _check_openai_metadata(state_dict, prefix)
    return CLIPConfig(text_config=text_config, vision_config=vision_config, projection_dim=projection_dim)


def _check_openai_metadata(state_dict: Mapping[str, torch.Tensor], prefix: str) -> None:
    """Dropped metadata buffers must agree with the weights; a disagreement means a corrupt or mixed dump."""
    implied = {}
    if prefix + "visual.conv1.weight" in state_dict and prefix + "visual.positional_embedding" in state_dict:
        grid = math.isqrt(state_dict[prefix + "visual.positional_embedding"].shape[0] - 1)
        implied["input_resolution"] = grid * state_dict[prefix + "visual.conv1.weight"].shape[-1]
    if prefix + "positional_embedding" in state_dict:
        implied["context_length"] = state_dict[prefix + "positional_embedding"].shape[0]
    if prefix + "token_embedding.weight" in state_dict:
        implied["vocab_size"] = state_dict[prefix + "token_embedding.weight"].shape[0]
    for name, expected in implied.items():
        key = prefix + name
        if key in state_dict and _metadata_value(state_dict[key]) != expected:
            raise CheckpointConversionError(
                f"{key} = {state_dict[key].tolist()} disagrees with the weights, which imply {expected}"
            )


def convert_openai_clip_state_dict(
    state_dict: Mapping[str, torch.Tensor], prefix: str = "clip."
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Convert the OpenAI ViT CLIP weights under ``prefix`` into a transformers ``CLIPModel`` state dict.

    Only keys starting with ``prefix`` are considered (``prefix=""`` means the whole dict). Each of
    them is converted or dropped with a reason; any other key under the prefix, or a missing one,
    raises ``CheckpointConversionError`` naming it. Returns ``(clip_state_dict, dropped_keys)``,
    ``dropped_keys`` mapping each dropped source key to why. The result has no ``position_ids``
    buffers (transformers does not persist them).
    """
    _refuse_unsupported_openai_visual(state_dict, prefix)
    source_keys = {key for key in state_dict if key.startswith(prefix)}
    if not source_keys:
        raise CheckpointConversionError(
            f"no key starts with {prefix!r}: this is not an OpenAI CLIP state dict under that prefix"
        )
    context = f"OpenAI CLIP state dict (prefix {prefix!r})"
    _require(
        state_dict, [prefix + key for key in (*_OPENAI_CLIP_DIRECT_RENAMES, *_OPENAI_CLIP_TRANSPOSED_RENAMES)], context
    )

    converted: dict[str, torch.Tensor] = {}
    consumed: set[str] = set()
    for source, target in _OPENAI_CLIP_DIRECT_RENAMES.items():
        converted[target] = state_dict[prefix + source]
        consumed.add(prefix + source)
    for source, target in _OPENAI_CLIP_TRANSPOSED_RENAMES.items():
        converted[target] = _as_linear_weight(state_dict[prefix + source], prefix + source)
        consumed.add(prefix + source)

    for source_blocks, target_blocks in (_TEXT_BLOCKS, _VISION_BLOCKS):
        num_blocks = _count_tower_blocks(state_dict, prefix + source_blocks, context)
        for index in range(num_blocks):
            block_prefix = f"{prefix}{source_blocks}{index}."
            converted.update(convert_residual_block(state_dict, block_prefix, f"{target_blocks}{index}."))
            consumed.update(block_prefix + suffix for suffix in RESIDUAL_BLOCK_SOURCE_KEYS)

    _check_openai_metadata(state_dict, prefix)
    dropped = {
        prefix + name: reason for name, reason in OPENAI_METADATA_BUFFERS.items() if prefix + name in state_dict
    }
    leftover = source_keys - consumed - set(dropped)
    if leftover:
        raise CheckpointConversionError(
            f"{context}: {len(leftover)} key(s) have no counterpart in transformers' CLIPModel: "
            f"{format_key_list(leftover)}"
        )
    return converted, dropped


def detect_clip4clip_temporal_head(state_dict: Mapping[str, torch.Tensor]) -> str:
    """Which CLIP4Clip similarity header a checkpoint was trained with: ``"meanP"`` or ``"seqTransf"``.

    Refuses, with the reason, the variants Finsta cannot host: ``seqLSTM``, ``tightTransf`` and the
    3-D linear patch. A ``seqTransf`` header with zero layers (only the frame position table) is
    still ``"seqTransf"``.
    """
    if not any(key.startswith(CLIP4CLIP_CLIP_PREFIX) for key in state_dict):
        hint = ""
        if "visual.conv1.weight" in state_dict or "token_embedding.weight" in state_dict:
            hint = (
                " It looks like a plain OpenAI CLIP state dict: "
                "use convert_openai_clip_state_dict(state_dict, prefix='')."
            )
        elif any(key.startswith(("text_model.", "vision_model.")) for key in state_dict):
            hint = " It looks like a transformers CLIPModel state dict, which needs no conversion."
        raise CheckpointConversionError(
            f"not a CLIP4Clip checkpoint: no key starts with {CLIP4CLIP_CLIP_PREFIX!r}.{hint}"
        )
    _refuse_unsupported_openai_visual(state_dict, CLIP4CLIP_CLIP_PREFIX)
    for key_prefix, (header, reason) in _UNSUPPORTED_CLIP4CLIP_HEADERS.items():
        found = [key for key in state_dict if key.startswith(key_prefix)]
        if found:
            raise CheckpointConversionError(
                f"CLIP4Clip '{header}' similarity header detected (keys {format_key_list(found, limit=3)}): "
                f"it is not supported because {reason}"
            )
    has_blocks = any(key.startswith(CLIP4CLIP_TEMPORAL_BLOCKS_PREFIX) for key in state_dict)
    if has_blocks and CLIP4CLIP_FRAME_POSITION_KEY not in state_dict:
        raise CheckpointConversionError(
            f"CLIP4Clip seqTransf header is incomplete: {CLIP4CLIP_TEMPORAL_BLOCKS_PREFIX}* is present "
            f"but {CLIP4CLIP_FRAME_POSITION_KEY} is missing"
        )
    return "seqTransf" if CLIP4CLIP_FRAME_POSITION_KEY in state_dict else "meanP"


def convert_clip4clip_temporal_head(
    state_dict: Mapping[str, torch.Tensor],
) -> tuple[dict[str, torch.Tensor], int, int]:
    """Convert CLIP4Clip's seqTransf header into Finsta's temporal head layout.

    ``frame_position_embeddings.weight`` is kept; ``transformerClip.resblocks.{i}.*`` becomes
    ``temporal_encoder.layers.{i}.*`` (``CLIPEncoder`` parameter names). Returns
    ``(temporal_state_dict, num_layers, num_frame_positions)``. The blocks must be as wide as the
    frame position table with a ``4 * width`` MLP, as CLIP4Clip builds them.
    """
    _require(state_dict, [CLIP4CLIP_FRAME_POSITION_KEY], "CLIP4Clip seqTransf header")
    frame_positions = state_dict[CLIP4CLIP_FRAME_POSITION_KEY]
    if frame_positions.dim() != 2:
        raise CheckpointConversionError(
            f"{CLIP4CLIP_FRAME_POSITION_KEY}: expected [num_positions, width], got {tuple(frame_positions.shape)}"
        )
    num_frame_positions, width = frame_positions.shape
    converted = {TEMPORAL_FRAME_POSITION_KEY: frame_positions}
    num_layers = count_residual_blocks(state_dict, CLIP4CLIP_TEMPORAL_BLOCKS_PREFIX)
    for index in range(num_layers):
        block_prefix = f"{CLIP4CLIP_TEMPORAL_BLOCKS_PREFIX}{index}."
        expected_shapes = {
            "attn.in_proj_weight": (3 * width, width),
            "mlp.c_fc.weight": (4 * width, width),
            "mlp.c_proj.weight": (width, 4 * width),
        }
        block = convert_residual_block(state_dict, block_prefix, f"{TEMPORAL_LAYERS_PREFIX}{index}.")
        for suffix, shape in expected_shapes.items():
            if tuple(state_dict[block_prefix + suffix].shape) != shape:
                raise CheckpointConversionError(
                    f"{block_prefix + suffix}: expected shape {shape} (width {width} from "
                    f"{CLIP4CLIP_FRAME_POSITION_KEY}, MLP 4 * width), "
                    f"got {tuple(state_dict[block_prefix + suffix].shape)}"
                )
        converted.update(block)
    return converted, num_layers, num_frame_positions


def _temporal_source_keys(state_dict: Mapping[str, torch.Tensor], num_layers: int) -> set[str]:
    keys = {CLIP4CLIP_FRAME_POSITION_KEY}
    for index in range(num_layers):
        keys.update(f"{CLIP4CLIP_TEMPORAL_BLOCKS_PREFIX}{index}.{suffix}" for suffix in RESIDUAL_BLOCK_SOURCE_KEYS)
    return keys


@dataclass
class ConvertedClip4Clip:
    """Everything a CLIP4Clip checkpoint turns into.

    For ``temporal_head == "meanP"`` the temporal fields are empty/``None``: the header has no
    weights. ``dropped_keys`` maps every source key that was deliberately not converted to why.
    """

    clip_config: CLIPConfig
    clip_state_dict: dict[str, torch.Tensor]
    temporal_head: str
    temporal_state_dict: dict[str, torch.Tensor] = field(default_factory=dict)
    temporal_num_layers: int | None = None
    num_frame_positions: int | None = None
    temporal_num_attention_heads: int | None = None
    dropped_keys: dict[str, str] = field(default_factory=dict)


def strip_data_parallel_prefix(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the ``module.`` prefix that ``nn.DataParallel``/DDP adds, when every key carries it."""
    if state_dict and all(key.startswith("module.") for key in state_dict):
        return {key[len("module.") :]: value for key, value in state_dict.items()}
    return dict(state_dict)


def convert_clip4clip_checkpoint(
    state_dict: Mapping[str, torch.Tensor], attention_head_dim: int = CLIP4CLIP_ATTENTION_HEAD_DIM
) -> ConvertedClip4Clip:
    """Convert a CLIP4Clip training state dict (``meanP`` or ``seqTransf``) with exact key accounting.

    ``clip.*`` becomes a transformers ``CLIPModel`` state dict (no prefix), the seqTransf header a
    temporal-head dict (``frame_position_embeddings.*``/``temporal_encoder.*``, no prefix). Every
    source key is converted or listed in ``dropped_keys``; any other key raises
    ``CheckpointConversionError`` naming it. A ``module.`` prefix on every key (DataParallel) is
    removed first. The temporal encoder has ``width // attention_head_dim`` heads, as in CLIP4Clip.
    """
    state_dict = strip_data_parallel_prefix(state_dict)
    temporal_head = detect_clip4clip_temporal_head(state_dict)
    clip_config = infer_openai_clip_config(state_dict, CLIP4CLIP_CLIP_PREFIX, attention_head_dim)
    clip_state_dict, dropped_keys = convert_openai_clip_state_dict(state_dict, CLIP4CLIP_CLIP_PREFIX)
    result = ConvertedClip4Clip(
        clip_config=clip_config,
        clip_state_dict=clip_state_dict,
        temporal_head=temporal_head,
        dropped_keys=dropped_keys,
    )
    consumed = {key for key in state_dict if key.startswith(CLIP4CLIP_CLIP_PREFIX)}

    if temporal_head == "seqTransf":
        temporal_state_dict, num_layers, num_frame_positions = convert_clip4clip_temporal_head(state_dict)
        width = temporal_state_dict[TEMPORAL_FRAME_POSITION_KEY].shape[1]
        if width != clip_config.projection_dim:
            raise CheckpointConversionError(
                f"{CLIP4CLIP_FRAME_POSITION_KEY}: the seqTransf width {width} differs from the CLIP projection dim "
                f"{clip_config.projection_dim}; the temporal head runs on projected frame embeddings, "
                "so they must match"
            )
        if width % attention_head_dim:
            raise CheckpointConversionError(
                f"seqTransf width {width} is not a multiple of attention_head_dim={attention_head_dim}"
            )
        result.temporal_state_dict = temporal_state_dict
        result.temporal_num_layers = num_layers
        result.num_frame_positions = num_frame_positions
        result.temporal_num_attention_heads = width // attention_head_dim
        consumed |= _temporal_source_keys(state_dict, num_layers)

    leftover = set(state_dict) - consumed
    if leftover:
        raise CheckpointConversionError(
            f"CLIP4Clip checkpoint ({temporal_head}): {len(leftover)} key(s) are neither converted nor known "
            f"droppable: {format_key_list(leftover)}"
        )
    return result


# --------------------------------------------------------------------------------- the inverse
# transformers / Finsta layouts -> the original OpenAI CLIP / CLIP4Clip layout, used by
# ``finsta-export-host`` (``hub/export.py``). Each ``export_*`` undoes the ``convert_*`` of the same
# name, with the same exact key accounting, so ``convert(export(x)) == x`` key for key.

CLIP_ENCODER_LAYER_KEYS = frozenset(_CLIP_ENCODER_LAYER_QKV_KEYS) | frozenset(_RESIDUAL_BLOCK_RENAMES.values())
"""Key suffixes of one transformers ``CLIPEncoderLayer`` (after ``...layers.{i}.``)."""


def _independent(tensor: torch.Tensor) -> torch.Tensor:
    """A contiguous CPU copy sharing no storage with the model, so ``torch.save`` writes only this tensor."""
    return tensor.detach().to("cpu", copy=True).contiguous()


def fuse_qkv(
    q_weight: torch.Tensor,
    q_bias: torch.Tensor,
    k_weight: torch.Tensor,
    k_bias: torch.Tensor,
    v_weight: torch.Tensor,
    v_bias: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Inverse of ``split_fused_qkv``: separate q, k, v projections -> ``nn.MultiheadAttention``'s fused
    ``(in_proj_weight [3 * width, width], in_proj_bias [3 * width])``, rows in q, k, v order."""
    width = q_weight.shape[-1]
    for name, tensor, shape in (
        ("q_weight", q_weight, (width, width)), ("k_weight", k_weight, (width, width)),
        ("v_weight", v_weight, (width, width)), ("q_bias", q_bias, (width,)), ("k_bias", k_bias, (width,)),
        ("v_bias", v_bias, (width,)),
    ):  # fmt: skip
        if tuple(tensor.shape) != shape:
            raise CheckpointConversionError(
                f"fuse_qkv: {name} has shape {tuple(tensor.shape)}, expected {shape} (width {width} from q_weight)"
            )
    fused_weight, fused_bias = torch.cat([q_weight, k_weight, v_weight]), torch.cat([q_bias, k_bias, v_bias])
    return fused_weight.detach().cpu(), fused_bias.detach().cpu()


def export_residual_block(
    state_dict: Mapping[str, torch.Tensor], source_prefix: str, target_prefix: str
) -> dict[str, torch.Tensor]:
    """Inverse of ``convert_residual_block``: one transformers ``CLIPEncoderLayer`` -> one OpenAI
    ``ResidualAttentionBlock``.

    ``source_prefix`` is e.g. ``"text_model.encoder.layers.3."``, ``target_prefix`` e.g.
    ``"clip.transformer.resblocks.3."``. The keys under ``source_prefix`` must be exactly the layer's.
    """
    check_state_dict_keys(
        {source_prefix + suffix for suffix in CLIP_ENCODER_LAYER_KEYS},
        {key for key in state_dict if key.startswith(source_prefix)},
        f"CLIP encoder layer {source_prefix!r}",
    )
    in_proj_weight, in_proj_bias = fuse_qkv(*(state_dict[source_prefix + key] for key in _CLIP_ENCODER_LAYER_QKV_KEYS))
    exported = {target_prefix + "attn.in_proj_weight": in_proj_weight, target_prefix + "attn.in_proj_bias": in_proj_bias}
    for original_suffix, transformers_suffix in _RESIDUAL_BLOCK_RENAMES.items():
        exported[target_prefix + original_suffix] = _independent(state_dict[source_prefix + transformers_suffix])
    return exported


def export_openai_clip_state_dict(
    clip_state_dict: Mapping[str, torch.Tensor], prefix: str = "clip."
) -> dict[str, torch.Tensor]:
    """Inverse of ``convert_openai_clip_state_dict``: a transformers ``CLIPModel`` state dict -> OpenAI
    ViT CLIP keys under ``prefix`` (fused ``in_proj`` attention, ``[width, embed]`` projections).

    Every key must be consumed: an unknown one (a PEFT-wrapped layer, a ``position_ids`` buffer of an
    old transformers) or a missing one raises ``CheckpointConversionError`` naming it.
    """
    context = "transformers CLIPModel state dict"
    _require(clip_state_dict, [*_OPENAI_CLIP_DIRECT_RENAMES.values(), *_OPENAI_CLIP_TRANSPOSED_RENAMES.values()], context)
    exported: dict[str, torch.Tensor] = {}
    consumed: set[str] = set()
    for original, transformers_key in _OPENAI_CLIP_DIRECT_RENAMES.items():
        exported[prefix + original] = _independent(clip_state_dict[transformers_key])
        consumed.add(transformers_key)
    for original, transformers_key in _OPENAI_CLIP_TRANSPOSED_RENAMES.items():
        # nn.Linear's [out, in] back to OpenAI's [width, embed] used as ``x @ proj``
        exported[prefix + original] = _as_linear_weight(clip_state_dict[transformers_key], transformers_key).cpu()
        consumed.add(transformers_key)
    for original_blocks, transformers_blocks in (_TEXT_BLOCKS, _VISION_BLOCKS):
        num_layers = _count_tower_blocks(clip_state_dict, transformers_blocks, context)
        for index in range(num_layers):
            layer_prefix = f"{transformers_blocks}{index}."
            exported.update(export_residual_block(clip_state_dict, layer_prefix, f"{prefix}{original_blocks}{index}."))
            consumed.update(layer_prefix + suffix for suffix in CLIP_ENCODER_LAYER_KEYS)
    leftover = set(clip_state_dict) - consumed
    if leftover:
        raise CheckpointConversionError(
            f"{context}: {len(leftover)} key(s) have no counterpart in OpenAI CLIP: {format_key_list(leftover)}"
        )
    return exported


def export_clip4clip_temporal_head(temporal_state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Inverse of ``convert_clip4clip_temporal_head``: Finsta's seqTransf head (``frame_position_embeddings.weight``,
    ``temporal_encoder.layers.{i}.*``, no ``host_adapter.`` prefix) -> CLIP4Clip's
    ``frame_position_embeddings.weight`` and ``transformerClip.resblocks.{i}.*``. Keys must match exactly."""
    _require(temporal_state_dict, [TEMPORAL_FRAME_POSITION_KEY], "Finsta seqTransf head")
    exported = {CLIP4CLIP_FRAME_POSITION_KEY: _independent(temporal_state_dict[TEMPORAL_FRAME_POSITION_KEY])}
    num_layers = count_residual_blocks(temporal_state_dict, TEMPORAL_LAYERS_PREFIX)
    expected = {TEMPORAL_FRAME_POSITION_KEY}
    for index in range(num_layers):
        layer_prefix = f"{TEMPORAL_LAYERS_PREFIX}{index}."
        exported.update(
            export_residual_block(temporal_state_dict, layer_prefix, f"{CLIP4CLIP_TEMPORAL_BLOCKS_PREFIX}{index}.")
        )
        expected.update(layer_prefix + suffix for suffix in CLIP_ENCODER_LAYER_KEYS)
    check_state_dict_keys(expected, temporal_state_dict.keys(), "Finsta seqTransf head")
    return exported


def export_clip4clip_checkpoint(
    clip_state_dict: Mapping[str, torch.Tensor], temporal_state_dict: Optional[Mapping[str, torch.Tensor]] = None
) -> dict[str, torch.Tensor]:
    """Inverse of ``convert_clip4clip_checkpoint``: a ``CLIPModel`` state dict, plus Finsta's seqTransf
    head for a seqTransf model (None for meanP, whose header has no weights), -> a CLIP4Clip training
    checkpoint state dict (``clip.*``, ``frame_position_embeddings.weight``, ``transformerClip.*``),
    what CLIP4Clip's ``torch.save(model.state_dict())`` writes. The tensors share no storage with the inputs.
    """
    exported = export_openai_clip_state_dict(clip_state_dict, CLIP4CLIP_CLIP_PREFIX)
    if temporal_state_dict is not None:
        temporal = export_clip4clip_temporal_head(temporal_state_dict)
        width = temporal[CLIP4CLIP_FRAME_POSITION_KEY].shape[-1]
        projection_dim = exported[CLIP4CLIP_CLIP_PREFIX + "text_projection"].shape[1]
        if width != projection_dim:
            raise CheckpointConversionError(
                f"Finsta seqTransf head: width {width} differs from the CLIP projection dim {projection_dim}; "
                "CLIP4Clip runs its temporal Transformer on projected frame embeddings"
            )
        exported.update(temporal)
    return exported


def load_original_checkpoint(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Load an original checkpoint file as a flat ``{name: tensor}`` state dict, on CPU, safely.

    Accepts what ``torch.save(model.state_dict(), path)`` writes (CLIP4Clip's ``pytorch_model.bin.N``)
    and ``.safetensors`` files. Pickles are read with ``weights_only=True``, so a pickled model
    object, a TorchScript archive or any other file is refused with an explanation instead of
    executing code.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    expected = "expected a state dict saved with torch.save(model.state_dict(), path) or a .safetensors file"
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        try:
            return load_file(path, device="cpu")
        except Exception as error:
            raise CheckpointConversionError(f"{path}: not a readable safetensors file ({error})") from error
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            if any("/code/" in name for name in archive.namelist()):
                raise CheckpointConversionError(
                    f"{path} is a TorchScript archive (like OpenAI's released ViT-B-32.pt), not a state dict. If you "
                    "trust it, run `torch.jit.load(path, map_location='cpu').state_dict()` yourself, save that dict "
                    "with torch.save, and convert it (prefix ''); " + expected
                )
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise CheckpointConversionError(
            f"{path}: could not be read with torch.load(weights_only=True) ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''}); {expected}. A pickled model object is refused "
            "on purpose: save its state_dict() instead"
        ) from error
    if not isinstance(loaded, Mapping):
        raise CheckpointConversionError(f"{path} holds a {type(loaded).__name__}, not a state dict; {expected}")
    not_tensors = [
        str(key) for key, value in loaded.items() if not (isinstance(key, str) and isinstance(value, torch.Tensor))
    ]
    if not_tensors:
        raise CheckpointConversionError(
            f"{path} is a dict but not a flat state dict: entries {format_key_list(not_tensors, limit=5)} are not "
            "name -> tensor (a training checkpoint wrapping the weights, e.g. under 'state_dict'? pass that inner "
            f"dict instead); {expected}"
        )
    return dict(loaded)


__all__ = [
    "CLIP4CLIP_ATTENTION_HEAD_DIM",
    "CLIP4CLIP_CLIP_PREFIX",
    "CLIP4CLIP_FRAME_POSITION_KEY",
    "CLIP4CLIP_TEMPORAL_BLOCKS_PREFIX",
    "MAX_LISTED_KEYS",
    "OPENAI_METADATA_BUFFERS",
    "RESIDUAL_BLOCK_SOURCE_KEYS",
    "TEMPORAL_FRAME_POSITION_KEY",
    "TEMPORAL_LAYERS_PREFIX",
    "CLIP_ENCODER_LAYER_KEYS",
    "CheckpointConversionError",
    "ConvertedClip4Clip",
    "check_state_dict_keys",
    "convert_clip4clip_checkpoint",
    "convert_clip4clip_temporal_head",
    "convert_openai_clip_state_dict",
    "convert_residual_block",
    "count_residual_blocks",
    "detect_clip4clip_temporal_head",
    "export_clip4clip_checkpoint",
    "export_clip4clip_temporal_head",
    "export_openai_clip_state_dict",
    "export_residual_block",
    "format_key_list",
    "fuse_qkv",
    "infer_openai_clip_config",
    "load_original_checkpoint",
    "split_fused_qkv",
    "strip_data_parallel_prefix",
]
