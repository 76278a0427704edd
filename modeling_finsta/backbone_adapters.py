"""Backbone adapters: the one small interface between a host video-language model and Finsta.

An adapter turns the host's forward into what Finsta needs, text token states and a pooled text
embedding, per-frame patch tokens and a pooled video embedding, and maps token/patch states into the
host's joint space (for cross-modal edges). It never owns the backbone: `FinstaModel.backbone` stays
the plain `AutoModel`, so checkpoints of the host load unchanged. Host-specific extra modules (the
CLIP4Clip seqTransf header) live on the adapter.

Adding a backbone family means writing one adapter class and adding it to `BACKBONE_ADAPTERS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn
from transformers.activations import ACT2FN
from transformers.modeling_outputs import BaseModelOutputWithPooling
from transformers.modeling_layers import GradientCheckpointingLayer

from .attention import BiasedSelfAttention
from .configuration_finsta import FinstaConfig

CLIP4CLIP_TEMPORAL_LAYER_NORM_EPS = 1e-12
"""CLIP4Clip's temporal Transformer normalises with eps 1e-12 (its own LayerNorm), unlike CLIP's towers (1e-5)."""


@dataclass
class HostTextOutput:
    token_states: torch.Tensor  # [B, L, text_hidden] final-layer token states
    text_embeds: torch.Tensor  # [B, E] the host's own pooled text embedding
    tower_output: Optional[BaseModelOutputWithPooling] = None  # the text tower's own output (hidden states, attentions)


@dataclass
class HostVideoOutput:
    video_embeds: torch.Tensor  # [B, E] the host's own pooled video embedding
    frame_embeds: torch.Tensor  # [B, T, E] per-frame embeddings in the joint space (after the temporal head)
    frame_inputs: torch.Tensor  # [B, T, E] per-frame embeddings before the temporal head (see `pool_frames`)
    patch_tokens: torch.Tensor  # [B, T, N, vision_hidden] final-layer patch tokens (no class token)
    grid_size: tuple[int, int]  # patch grid (rows, columns); N = rows * columns
    tower_output: Optional[BaseModelOutputWithPooling] = None  # the vision tower's output over B * T frames


class BackboneAdapter(nn.Module):
    """Interface every host family implements; see the module docstring."""

    def __init__(self, config: FinstaConfig):
        super().__init__()
        self.backbone_config = config.backbone_config

    @property
    def text_hidden_size(self) -> int:
        return self.backbone_config.text_config.hidden_size

    @property
    def vision_hidden_size(self) -> int:
        return self.backbone_config.vision_config.hidden_size

    def encode_text(
        self, backbone: nn.Module, input_ids: torch.Tensor, attention_mask: Optional[torch.Tensor], **tower_kwargs
    ) -> HostTextOutput:
        """``tower_kwargs`` (``output_hidden_states``, ``output_attentions``) go to the host's text tower."""
        outputs = backbone.text_model(input_ids=input_ids, attention_mask=attention_mask, **tower_kwargs)
        return HostTextOutput(
            token_states=outputs.last_hidden_state,
            text_embeds=backbone.text_projection(outputs.pooler_output),
            tower_output=outputs,
        )

    def encode_video(
        self, backbone: nn.Module, pixel_values: torch.Tensor, video_mask: Optional[torch.Tensor], **tower_kwargs
    ) -> HostVideoOutput:
        """``tower_kwargs`` (``output_hidden_states``, ``output_attentions``) go to the host's vision tower."""
        frame_inputs, patch_tokens, grid, outputs = self._encode_frames(backbone, pixel_values, **tower_kwargs)
        video_embeds, frame_embeds = self.pool_frames(backbone, frame_inputs, video_mask)
        return HostVideoOutput(video_embeds, frame_embeds, frame_inputs, patch_tokens, grid, outputs)

    def pool_frames(
        self, backbone: nn.Module, frame_inputs: torch.Tensor, video_mask: Optional[torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The host's temporal head: per-frame embeddings ``[B, T, E]`` -> (video embedding, frame states).

        Separate from the per-frame tower so that a clip with its frames reordered (PTC's negatives)
        costs only this head, not another pass of the vision tower.
        """
        raise NotImplementedError

    def text_tokens_to_joint(self, backbone: nn.Module, token_states: torch.Tensor) -> torch.Tensor:
        """Token states (already final-layer-normed by the text tower) -> joint space."""
        return backbone.text_projection(token_states)

    def patch_tokens_to_joint(self, backbone: nn.Module, patch_states: torch.Tensor) -> torch.Tensor:
        """Patch states -> joint space, through the same norm and projection as the class token."""
        return backbone.visual_projection(backbone.vision_model.post_layernorm(patch_states))

    def _encode_frames(self, backbone: nn.Module, pixel_values: torch.Tensor, **tower_kwargs):
        if pixel_values.dim() != 5:
            raise ValueError(
                f"pixel_values must be [batch, frames, channels, height, width], got shape {tuple(pixel_values.shape)}"
            )
        batch, frames = pixel_values.shape[:2]
        outputs = backbone.vision_model(pixel_values=pixel_values.flatten(0, 1), **tower_kwargs)
        frame_embeds = backbone.visual_projection(outputs.pooler_output).view(batch, frames, -1)
        patches = outputs.last_hidden_state[:, 1:, :]
        rows = backbone.config.vision_config.image_size // backbone.config.vision_config.patch_size
        columns = patches.shape[1] // rows
        if rows * columns != patches.shape[1]:
            raise ValueError(f"patch tokens ({patches.shape[1]}) do not form a {rows}-row grid")
        patch_tokens = patches.reshape(batch, frames, rows * columns, -1)
        return frame_embeds, patch_tokens, (rows, columns), outputs


def _masked_mean(values: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
    """Mean over dim 1 of ``values [B, T, D]`` where ``mask [B, T]`` is 1."""
    if mask is None:
        return values.mean(dim=1)
    weights = mask.to(values.dtype).unsqueeze(-1)
    return (values * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


def _l2_normalize(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True).clamp(min=1e-6)


class TemporalMLP(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.fc1 = nn.Linear(width, 4 * width)
        self.fc2 = nn.Linear(4 * width, width)
        self.activation = ACT2FN["quick_gelu"]

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.activation(self.fc1(hidden_states)))


class TemporalTransformerLayer(GradientCheckpointingLayer):
    """One pre-norm block of CLIP4Clip's seqTransf header (attention over frames, quick-GELU MLP).

    Parameter names follow transformers' CLIP encoder layer (``self_attn.{q,k,v,out}_proj``,
    ``layer_norm1``, ``mlp.fc1``/``fc2``, ``layer_norm2``), which the CLIP4Clip converter writes.
    """

    def __init__(self, config: FinstaConfig, width: int):
        super().__init__()
        self.self_attn = BiasedSelfAttention(config, width, width // 64)
        self.layer_norm1 = nn.LayerNorm(width, eps=CLIP4CLIP_TEMPORAL_LAYER_NORM_EPS)
        self.mlp = TemporalMLP(width)
        self.layer_norm2 = nn.LayerNorm(width, eps=CLIP4CLIP_TEMPORAL_LAYER_NORM_EPS)

    def forward(self, hidden_states: torch.Tensor, attention_bias: Optional[torch.Tensor]) -> torch.Tensor:
        hidden_states = hidden_states + self.self_attn(self.layer_norm1(hidden_states), attention_bias)
        return hidden_states + self.mlp(self.layer_norm2(hidden_states))


class TemporalTransformer(nn.Module):
    """CLIP4Clip's seqTransf Transformer over frame embeddings: heads = width // 64, as in CLIP4Clip."""

    def __init__(self, config: FinstaConfig, width: int, num_layers: int):
        super().__init__()
        self.layers = nn.ModuleList(TemporalTransformerLayer(config, width) for _ in range(num_layers))

    def forward(self, hidden_states: torch.Tensor, attention_bias: Optional[torch.Tensor]) -> torch.Tensor:
        for layer in self.layers:
            hidden_states = layer(hidden_states, attention_bias)
        return hidden_states


class Clip4ClipAdapter(BackboneAdapter):
    """CLIP4Clip (Luo et al. 2021): CLIP applied per frame, then the meanP or seqTransf header.

    Frame embeddings are L2-normalised and mean-pooled over valid frames, then normalised again, as
    in CLIP4Clip's similarity computation. seqTransf adds frame position embeddings, runs a
    non-causal Transformer over frames (padded frames masked) and adds the input back.
    """

    def __init__(self, config: FinstaConfig):
        super().__init__(config)
        self.temporal_head = config.temporal_head
        if self.temporal_head == "seqTransf":
            width = config.projection_dim
            self.frame_position_embeddings = nn.Embedding(config.num_frame_positions, width)
            self.temporal_encoder = TemporalTransformer(config, width, config.temporal_num_layers)

    def pool_frames(self, backbone, frame_inputs, video_mask):
        frame_embeds = frame_inputs
        if self.temporal_head == "seqTransf":
            frame_embeds = self._temporal_transformer(frame_inputs, video_mask)
        video_embeds = _l2_normalize(_masked_mean(_l2_normalize(frame_embeds), video_mask))
        return video_embeds, frame_embeds

    def _temporal_transformer(self, frame_embeds: torch.Tensor, video_mask: Optional[torch.Tensor]) -> torch.Tensor:
        batch, frames, _ = frame_embeds.shape
        if frames > self.frame_position_embeddings.num_embeddings:
            raise ValueError(
                f"seqTransf supports at most {self.frame_position_embeddings.num_embeddings} frames, got {frames}"
            )
        positions = torch.arange(frames, device=frame_embeds.device)
        hidden = frame_embeds + self.frame_position_embeddings(positions).unsqueeze(0)
        attention_bias = None
        if video_mask is not None:
            blocked = (1.0 - video_mask.to(hidden.dtype))[:, None, None, :] * torch.finfo(hidden.dtype).min
            attention_bias = blocked.expand(batch, 1, frames, frames)
        return self.temporal_encoder(hidden, attention_bias) + frame_embeds


class XClipAdapter(BackboneAdapter):
    """X-CLIP (Ni et al. 2022): cross-frame communication inside the ViT, then the multi-frame
    integration Transformer. Only X-CLIP's video-independent text embedding is used, so text and
    video embeddings stay independently computable (the prompt generator is not used)."""

    def encode_video(self, backbone, pixel_values, video_mask, **tower_kwargs):
        expected = backbone.config.vision_config.num_frames
        if pixel_values.dim() == 5 and pixel_values.shape[1] != expected:
            raise ValueError(
                f"X-CLIP backbone was built for {expected} frames (vision_config.num_frames), "
                f"got pixel_values with {pixel_values.shape[1]}"
            )
        return super().encode_video(backbone, pixel_values, video_mask, **tower_kwargs)

    def pool_frames(self, backbone, frame_inputs, video_mask):
        return backbone.mit(frame_inputs).pooler_output, frame_inputs


BACKBONE_ADAPTERS: dict[str, type[BackboneAdapter]] = {
    "clip": Clip4ClipAdapter,
    "xclip": XClipAdapter,
}


def build_backbone_adapter(config: FinstaConfig) -> BackboneAdapter:
    try:
        adapter_class = BACKBONE_ADAPTERS[config.backbone_type]
    except KeyError:
        raise ValueError(
            f"no backbone adapter for model_type {config.backbone_type!r}; known: {sorted(BACKBONE_ADAPTERS)}"
        ) from None
    return adapter_class(config)
