"""Backbone adapters: the one small interface between a host video-language model and Finsta.

An adapter turns the host's forward into what Finsta needs, text token states and a pooled text
embedding, per-frame patch tokens and a pooled video embedding, and maps token/patch states into the
host's joint space (for cross-modal edges). It never owns the backbone: `FinstaModel.backbone` stays
the plain `AutoModel`, so checkpoints of the host load unchanged. Host-specific extra modules (the
CLIP4Clip seqTransf header) live on the adapter.

Adding a backbone family means writing one adapter class and adding it to `BACKBONE_ADAPTERS`.
Families: CLIP4Clip (``clip``), X-CLIP (``xclip``), SigLIP / SigLIP2 NaFlex (``siglip``,
``siglip2``: the image tower per frame, then the CLIP4Clip temporal head; the host keeps its sigmoid
loss) and VideoPrism (``videoprism``: a factorised space-time video tower over a fixed frame count).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn
from transformers.activations import ACT2FN
from transformers.modeling_outputs import BaseModelOutputWithPooling
from transformers.modeling_layers import GradientCheckpointingLayer

from .attention import BiasedSelfAttention
from .configuration_finsta import FinstaConfig
from .losses import contrastive_loss, sigmoid_contrastive_loss

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


def _check_frame_batch(pixel_values: torch.Tensor) -> None:
    """``ValueError`` unless ``pixel_values`` is a 5-D ``[batch, frames, channels, height, width]`` tensor."""
    if pixel_values.dim() != 5:
        raise ValueError(
            f"pixel_values must be [batch, frames, channels, height, width], got shape {tuple(pixel_values.shape)}"
        )


class BackboneAdapter(nn.Module):
    """Interface every host family implements; see the module docstring.

    ``video_input_names``: extra video inputs the host's vision tower takes besides ``pixel_values``
    (e.g. SigLIP2's NaFlex ``pixel_attention_mask`` / ``spatial_shapes``); `FinstaModel` routes
    keyword arguments of these names to ``encode_video``.
    """

    video_input_names: tuple[str, ...] = ()

    def __init__(self, config: FinstaConfig):
        super().__init__()
        self.backbone_config = config.backbone_config

    def contrastive_logit_scale(self, backbone: nn.Module) -> torch.Tensor:
        """Inverse temperature of the InfoNCE terms (host, fused, PTC, distillation): the host's own, at most 100."""
        return backbone.logit_scale.exp().clamp(max=100)

    def host_contrastive_loss(
        self,
        backbone: nn.Module,
        text_embeds: torch.Tensor,
        video_embeds: torch.Tensor,
        logit_scale: torch.Tensor,
        negative_text_embeds: Optional[torch.Tensor] = None,
        negative_mask: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """The host's own objective on its own embeddings (symmetric InfoNCE unless the family says otherwise)."""
        return contrastive_loss(text_embeds, video_embeds, logit_scale, negative_text_embeds, negative_mask)

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
        _check_frame_batch(pixel_values)
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


class SiglipAdapter(Clip4ClipAdapter):
    """SigLIP (Zhai et al. 2023) as a CLIP4Clip-style video host: the image tower runs frame by frame,
    then the meanP / seqTransf temporal head pools the frame embeddings.

    * Text: the last position of the max-length-padded caption, through the text head (SigLIP's own
      pooling). The attention mask is *not* passed: SigLIP was trained without one and pools the
      last (padding) position, so masking would change its embeddings.
    * Video: the attention-pooling head's output per frame (there is no class token; every output
      token is a patch). Patch states are already post-layer-normed.
    * Joint space: the vision width; token states reach it through the text head, patch states
      through the vision pooling head applied to each patch alone [ours].
    * Objective: the pairwise sigmoid loss with the host's ``logit_scale`` / ``logit_bias``
      (``losses.sigmoid_contrastive_loss``); Finsta's own InfoNCE terms use the same scale, at most 100.
    """

    def __init__(self, config: FinstaConfig):
        super().__init__(config)
        if not getattr(config.backbone_config.vision_config, "vision_use_head", True):
            raise ValueError(
                f"FinstaConfig.backbone_config: {config.backbone_type} vision_config.vision_use_head is False; the "
                "attention-pooling head is SigLIP's image embedding, Finsta needs it"
            )

    def encode_text(self, backbone, input_ids, attention_mask, **tower_kwargs):
        outputs = backbone.text_model(input_ids=input_ids, **tower_kwargs)
        return HostTextOutput(token_states=outputs.last_hidden_state, text_embeds=outputs.pooler_output, tower_output=outputs)

    def text_tokens_to_joint(self, backbone, token_states):
        return backbone.text_model.head(token_states)

    def patch_tokens_to_joint(self, backbone, patch_states):
        width = patch_states.shape[-1]
        pooled = backbone.vision_model.head(patch_states.reshape(-1, 1, width))
        return pooled.view(*patch_states.shape[:-1], -1)

    def host_contrastive_loss(self, backbone, text_embeds, video_embeds, logit_scale, negative_text_embeds=None, negative_mask=None):
        return sigmoid_contrastive_loss(
            text_embeds, video_embeds, backbone.logit_scale.exp(), backbone.logit_bias, negative_text_embeds, negative_mask
        )

    def _encode_frames(self, backbone, pixel_values, **tower_kwargs):
        _check_frame_batch(pixel_values)
        batch, frames = pixel_values.shape[:2]
        outputs = backbone.vision_model(pixel_values=pixel_values.flatten(0, 1), **tower_kwargs)
        vision = backbone.config.vision_config
        rows, columns = pixel_values.shape[-2] // vision.patch_size, pixel_values.shape[-1] // vision.patch_size
        patches = outputs.last_hidden_state
        if rows * columns != patches.shape[1]:
            raise ValueError(f"SigLIP patch tokens ({patches.shape[1]}) do not form the {rows}x{columns} grid of the frames")
        frame_embeds = outputs.pooler_output.view(batch, frames, -1)
        return frame_embeds, patches.reshape(batch, frames, rows * columns, -1), (rows, columns), outputs


def patchify_frames(frames: torch.Tensor, patch_size: int) -> torch.Tensor:
    """``[M, C, H, W]`` frames -> NaFlex patch rows ``[M, (H/p) * (W/p), p * p * C]``, row-major patches.

    Each row holds one patch's pixels as (patch row, patch column, channel), the layout SigLIP2's
    image processors produce, so a frame patchified here equals the processor's output.
    """
    count, channels, height, width = frames.shape
    if height % patch_size or width % patch_size:
        raise ValueError(f"frames of {height}x{width} pixels do not divide into {patch_size}-pixel patches")
    rows, columns = height // patch_size, width // patch_size
    patches = frames.reshape(count, channels, rows, patch_size, columns, patch_size)
    return patches.permute(0, 2, 4, 3, 5, 1).reshape(count, rows * columns, patch_size * patch_size * channels)


class Siglip2Adapter(SiglipAdapter):
    """SigLIP2 in its NaFlex form (``Siglip2Model``): like SigLIP, with patchified, maskable inputs.

    ``pixel_values`` is either ``[B, T, C, H, W]`` (patchified here, every patch valid, grid H/p x W/p;
    what `FinstaProcessor` produces) or NaFlex's own ``[B, T, P, p*p*C]`` with ``pixel_attention_mask``
    ``[B, T, P]`` (or ``[B, P]``) and ``spatial_shapes`` ``[B, 2]`` (or ``[B, T, 2]``) in patches. The
    latent DSG needs one patch grid per batch, so NaFlex videos of one batch must share their
    spatial shape (resize them to one aspect ratio otherwise); the valid patches come first.
    """

    video_input_names = ("pixel_attention_mask", "spatial_shapes")

    def _encode_frames(self, backbone, pixel_values, pixel_attention_mask=None, spatial_shapes=None, **tower_kwargs):
        patch_size = backbone.config.vision_config.patch_size
        if pixel_values.dim() == 5:
            batch, frames = pixel_values.shape[:2]
            if pixel_attention_mask is not None or spatial_shapes is not None:
                raise ValueError(
                    "SigLIP2: pixel_attention_mask / spatial_shapes go with NaFlex patches [B, T, P, p*p*C], not with "
                    "[B, T, C, H, W] frames (which are patchified here)"
                )
            rows, columns = pixel_values.shape[-2] // patch_size, pixel_values.shape[-1] // patch_size
            patches = patchify_frames(pixel_values.flatten(0, 1), patch_size)
            mask = torch.ones(patches.shape[:2], dtype=torch.long, device=patches.device)
        elif pixel_values.dim() == 4:
            batch, frames = pixel_values.shape[:2]
            if spatial_shapes is None:
                raise ValueError("SigLIP2 NaFlex pixel_values [B, T, P, p*p*C] need spatial_shapes [B, 2] (patch rows, columns)")
            shapes = spatial_shapes.reshape(-1, 2)
            if not bool((shapes == shapes[0]).all()):
                raise ValueError(
                    f"SigLIP2: the videos of a batch have different spatial_shapes {sorted(set(map(tuple, shapes.tolist())))}; "
                    "Finsta's latent DSG needs one patch grid per batch: resize the frames to one shape"
                )
            rows, columns = (int(v) for v in shapes[0])
            patches = pixel_values.flatten(0, 1)
            if pixel_attention_mask is None:
                mask = torch.zeros(patches.shape[:2], dtype=torch.long, device=patches.device)
                mask[:, : rows * columns] = 1
            else:
                mask = pixel_attention_mask.reshape(batch, -1, patches.shape[1]).expand(batch, frames, -1).flatten(0, 1)
                if not bool((mask.long().sum(-1) == rows * columns).all()):
                    raise ValueError(
                        f"SigLIP2: pixel_attention_mask marks a number of valid patches other than spatial_shapes' "
                        f"{rows}x{columns} in some frames"
                    )
        else:
            raise ValueError(
                "SigLIP2 pixel_values must be frames [B, T, C, H, W] or NaFlex patches [B, T, P, p*p*C], got shape "
                f"{tuple(pixel_values.shape)}"
            )
        spatial = torch.tensor([rows, columns], device=patches.device).expand(patches.shape[0], 2)
        outputs = backbone.vision_model(
            pixel_values=patches, pixel_attention_mask=mask, spatial_shapes=spatial, **tower_kwargs
        )
        patch_tokens = outputs.last_hidden_state[:, : rows * columns]
        frame_embeds = outputs.pooler_output.view(batch, frames, -1)
        return frame_embeds, patch_tokens.reshape(batch, frames, rows * columns, -1), (rows, columns), outputs


INITIAL_VIDEOPRISM_LOGIT_SCALE = math.log(1 / 0.07)
"""[ours] VideoPrism's HF module has no learnable temperature; the adapter adds one, at CLIP's initial 0.07."""


class VideoPrismAdapter(BackboneAdapter):
    """VideoPrism (Zhao et al. 2024, ``VideoPrismClipModel``): a factorised video encoder whose spatial
    Transformer runs per frame and whose temporal Transformer, auxiliary layers and attention pooling
    head make the video embedding; a text encoder whose appended class token is the text embedding.

    * Frames: exactly ``vision_config.num_frames`` (the temporal position table), no frame mask.
    * Per-frame patches: the spatial encoder's output (after its layer norm), ``[B, T, N, D]``; these
      are also ``frame_inputs``, so `pool_frames` (temporal layers, auxiliary layers, pooling head)
      re-runs only the temporal part for PTC's reordered clips.
    * Text token states: the tower's output without the appended class token (causal attention).
    * Joint space: the shared width; token states are already in it; a patch reaches it through the
      auxiliary layers and pooling head applied to that patch alone [ours].
    * Objective: symmetric InfoNCE with a learnable temperature held here (``logit_scale``) [ours]:
      the HF module ships none.
    """

    def __init__(self, config: FinstaConfig):
        super().__init__(config)
        self.logit_scale = nn.Parameter(torch.tensor(INITIAL_VIDEOPRISM_LOGIT_SCALE))

    def contrastive_logit_scale(self, backbone):
        return self.logit_scale.exp().clamp(max=100)

    def encode_text(self, backbone, input_ids, attention_mask, **tower_kwargs):
        outputs = backbone.text_model(input_ids=input_ids, attention_mask=attention_mask, **tower_kwargs)
        return HostTextOutput(
            token_states=outputs.last_hidden_state[:, :-1], text_embeds=outputs.pooler_output, tower_output=outputs
        )

    def text_tokens_to_joint(self, backbone, token_states):
        return token_states

    def patch_tokens_to_joint(self, backbone, patch_states):
        video_model = backbone.video_model
        hidden = patch_states.reshape(-1, 1, patch_states.shape[-1])
        for layer in video_model.auxiliary_layers:
            hidden = layer(hidden)
        pooled = video_model.head_layernorm(video_model.head(hidden)[0])
        return pooled.view(*patch_states.shape[:-1], -1)

    def _check_frames(self, backbone, frames: int) -> None:
        expected = backbone.config.vision_config.num_frames
        if frames != expected:
            raise ValueError(
                f"VideoPrism backbone was built for {expected} frames (vision_config.num_frames), got pixel_values "
                f"with {frames}"
            )

    def _encode_frames(self, backbone, pixel_values, **tower_kwargs):
        _check_frame_batch(pixel_values)
        batch, frames = pixel_values.shape[:2]
        self._check_frames(backbone, frames)
        vision_model = backbone.video_model.vision_model
        if any(tower_kwargs.get(key) for key in ("output_hidden_states", "output_attentions")):
            # The tower itself collects hidden states / attentions; its temporal half is re-run in pool_frames.
            tower = vision_model(pixel_values_videos=pixel_values, **tower_kwargs)
            spatial = tower.last_spatial_hidden_state
        else:
            tower = None
            spatial = vision_model.spatial_embeddings(pixel_values)
            for layer in vision_model.spatial_layers:
                spatial = layer(spatial)
        features = vision_model.layernorm1(spatial)  # [B * T, N, D]
        vision = backbone.config.vision_config
        image_size = vision.image_size if isinstance(vision.image_size, (list, tuple)) else (vision.image_size,) * 2
        rows, columns = image_size[0] // vision.tubelet_size[1], image_size[1] // vision.tubelet_size[2]
        if rows * columns != features.shape[1]:
            raise ValueError(f"VideoPrism patch tokens ({features.shape[1]}) do not form a {rows}x{columns} grid")
        outputs = BaseModelOutputWithPooling(
            last_hidden_state=features,
            hidden_states=None if tower is None else tower.hidden_states,
            attentions=None if tower is None else tower.attentions,
        )
        patch_tokens = features.view(batch, frames, rows * columns, -1)
        return patch_tokens, patch_tokens, (rows, columns), outputs

    def pool_frames(self, backbone, frame_inputs, video_mask):
        """Temporal Transformer over each patch position, auxiliary layers, attention pooling: ``[B, T, N, D]``
        per-frame patch features -> (video embedding ``[B, E]``, per-frame mean patch state ``[B, T, D]``)."""
        if video_mask is not None and not bool(video_mask.bool().all()):
            raise ValueError(
                "VideoPrism has no frame mask: every video needs vision_config.num_frames real frames (sample a "
                "short video with repeated frames instead of padding it)"
            )
        batch, frames, patches, width = frame_inputs.shape
        self._check_frames(backbone, frames)
        video_model = backbone.video_model
        vision_model = video_model.vision_model
        hidden = vision_model.temporal_embeddings(frame_inputs.flatten(0, 1), (batch, frames, 0, 0, 0))
        for layer in vision_model.temporal_layers:
            hidden = layer(hidden)
        hidden = vision_model.layernorm2(hidden)  # [B * N, T, D]
        hidden = hidden.view(batch, patches, frames, width).transpose(1, 2).reshape(batch, frames * patches, width)
        for layer in video_model.auxiliary_layers:
            hidden = layer(hidden)
        video_embeds = video_model.head_layernorm(video_model.head(hidden)[0]).reshape(batch, -1)
        if video_model.config.apply_l2norm:  # VideoPrism's own l2norm (eps inside the root)
            video_embeds = video_embeds * torch.rsqrt((video_embeds * video_embeds).sum(-1, keepdim=True) + 1e-6)
        return video_embeds, hidden.view(batch, frames, patches, width).mean(2)


BACKBONE_ADAPTERS: dict[str, type[BackboneAdapter]] = {
    "clip": Clip4ClipAdapter,
    "xclip": XClipAdapter,
    "siglip": SiglipAdapter,
    "siglip2": Siglip2Adapter,
    "videoprism": VideoPrismAdapter,
}


def build_backbone_adapter(config: FinstaConfig) -> BackboneAdapter:
    try:
        adapter_class = BACKBONE_ADAPTERS[config.backbone_type]
    except KeyError:
        raise ValueError(
            f"no backbone adapter for model_type {config.backbone_type!r}; known: {sorted(BACKBONE_ADAPTERS)}"
        ) from None
    return adapter_class(config)
