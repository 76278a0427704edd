"""FinstaModel: a host video-language model plus Finsta's scene-graph head and losses.

The host (``self.backbone``, built with ``AutoModel.from_config``) keeps its weights, architecture
and objective. ``self.host_adapter`` exposes its token and patch states; ``self.graph_encoder``
holds every new parameter. ``base_model_prefix = "backbone"`` lets ``FinstaModel.from_pretrained``
load a plain CLIP or X-CLIP checkpoint and initialise only the Finsta head.

A forward pass reads as: encode (host towers, then the scene graphs when needed), fuse (in
``inference_mode="fused"``), score, and, with ``return_loss``, the named objectives: the host's own,
the graph embeddings', distillation into the host, OSC and PTC (see ``losses.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Union

import torch
from safetensors import SafetensorError, safe_open
from torch import nn
from transformers import AutoModel, PreTrainedModel
from transformers import initialization as init
from transformers.modeling_outputs import BaseModelOutputWithPooling
from transformers.utils import ModelOutput, can_return_tuple, logging

from .backbone_adapters import (
    INITIAL_VIDEOPRISM_LOGIT_SCALE,
    HostTextOutput,
    HostVideoOutput,
    VideoPrismAdapter,
    build_backbone_adapter,
)
from .configuration_finsta import FinstaConfig
from .finite_checks import NonFiniteValueError, check_finite
from .graph_encoder import (
    FinstaGraphEncoder,
    TextGraphEncoding,
    VideoGraphEncoding,
    VideoGraphInputs,
    gather_frames,
    initialize_graph_head_weights,
)
from .losses import (
    clip_order_contrastive_loss,
    contrastive_loss,
    cosine_logits,
    distillation_loss,
    hard_negative_distillation_loss,
    reversed_frame_order,
    shuffled_frame_order,
    similarity_distillation_loss,
)
from .scene_graphs import TextSceneGraphBatch, VideoSceneGraphBatch

logger = logging.get_logger(__name__)

LOSS_COMPONENTS = (
    "contrastive_loss",
    "fused_contrastive_loss",
    "graph_contrastive_loss",
    "osc_loss",
    "ptc_loss",
    "distillation_loss",
    "token_distillation_loss",
)
"""Loss components of `FinstaOutput`; each is weighted by ``config.<name>_weight`` in ``loss``."""


@dataclass
class FinstaOutput(ModelOutput):
    """
    Args:
        loss: weighted sum of the active loss components (when `return_loss`).
        logits_per_text / logits_per_video: scaled cosine similarities `[B_text, B_video]` / transposed.
        text_embeds / video_embeds: the embeddings of the configured inference mode.
        host_text_embeds / host_video_embeds: the host's own embeddings (distilled mode returns these).
        text_graph_embeds / video_graph_embeds: pooled graph-encoder embeddings (None when not computed).
        contrastive_loss, fused_contrastive_loss, graph_contrastive_loss, osc_loss, ptc_loss,
            distillation_loss, token_distillation_loss: unweighted components (None when inactive). `contrastive_loss` is the
            host's own objective on its own embeddings; `fused_contrastive_loss` the same on the fused ones.
        video_graph_boxes / video_graph_node_mask: the DSG used (latent slots or annotations),
            `[B, T, S, 4]` normalised xyxy and `[B, T, S]`.
        text_model_output / vision_model_output: the host towers' own outputs (`hidden_states` and
            `attentions` with `output_hidden_states` / `output_attentions`; the vision tower's cover the
            `B * T` frames).
    """

    loss: Optional[torch.FloatTensor] = None
    logits_per_text: Optional[torch.FloatTensor] = None
    logits_per_video: Optional[torch.FloatTensor] = None
    text_embeds: Optional[torch.FloatTensor] = None
    video_embeds: Optional[torch.FloatTensor] = None
    host_text_embeds: Optional[torch.FloatTensor] = None
    host_video_embeds: Optional[torch.FloatTensor] = None
    text_graph_embeds: Optional[torch.FloatTensor] = None
    video_graph_embeds: Optional[torch.FloatTensor] = None
    contrastive_loss: Optional[torch.FloatTensor] = None
    fused_contrastive_loss: Optional[torch.FloatTensor] = None
    graph_contrastive_loss: Optional[torch.FloatTensor] = None
    osc_loss: Optional[torch.FloatTensor] = None
    ptc_loss: Optional[torch.FloatTensor] = None
    distillation_loss: Optional[torch.FloatTensor] = None
    token_distillation_loss: Optional[torch.FloatTensor] = None
    video_graph_boxes: Optional[torch.FloatTensor] = None
    video_graph_node_mask: Optional[torch.BoolTensor] = None
    text_model_output: Optional[BaseModelOutputWithPooling] = None
    vision_model_output: Optional[BaseModelOutputWithPooling] = None

    def to_tuple(self) -> tuple[Any, ...]:
        return tuple(
            self[key].to_tuple() if key in ("text_model_output", "vision_model_output") else self[key] for key in self.keys()
        )


@dataclass
class HardNegativeCaptions:
    """Hard-negative captions, ``K`` per video, encoded once per forward for the losses.

    host_embeds / embeds: ``[B, K, E]`` host and inference-mode (fused or host) embeddings;
    graph: their TSG encoding over ``B * K`` captions (None without TSGs); mask ``[B, K]``: which exist.
    """

    host_embeds: torch.Tensor
    embeds: torch.Tensor
    graph: Optional[TextGraphEncoding]
    mask: torch.Tensor

    def graph_embeds(self) -> Optional[tuple[torch.Tensor, torch.Tensor]]:
        """TSG embeddings ``[B, K, E]`` and the mask of negatives that have a graph, or None."""
        if self.graph is None:
            return None
        shape = self.mask.shape
        return self.graph.graph_embeds.view(*shape, -1), self.mask & self.graph.has_graph.view(shape)


@dataclass
class FinstaEncodings:
    """Everything one forward pass computed for a batch of (caption, video) pairs."""

    host_text: HostTextOutput
    host_video: HostVideoOutput
    video_mask: torch.Tensor
    text_graph: Optional[TextGraphEncoding]
    video_inputs: Optional[VideoGraphInputs]
    video_graph: Optional[VideoGraphEncoding]
    text_embeds: torch.Tensor  # inference-mode embeddings
    video_embeds: torch.Tensor
    text_scene_graph: Optional[TextSceneGraphBatch]

    @property
    def fused(self) -> bool:
        """Whether the inference-mode embeddings differ from the host's (fused mode with a graph)."""
        return self.text_embeds is not self.host_text.text_embeds or self.video_embeds is not self.host_video.video_embeds


def _unreadable_safetensors(folder) -> Optional[str]:
    """The first ``*.safetensors`` file in a local ``folder`` whose header cannot be read, if any."""
    import os

    if folder is None or not os.path.isdir(folder):
        return None
    for name in sorted(os.listdir(folder)):
        if name.endswith(".safetensors"):
            path = os.path.join(folder, name)
            try:
                with safe_open(path, framework="pt"):
                    pass
            except SafetensorError:
                return path
    return None


class FinstaPreTrainedModel(PreTrainedModel):
    config_class = FinstaConfig
    config: FinstaConfig
    base_model_prefix = "backbone"
    main_input_name = "input_ids"
    input_modalities = ("video", "text")
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_flash_attn = False  # the graph layers need an additive attention bias
    _supports_flex_attn = False
    _no_split_modules = [
        "GraphTransformerLayer",
        "RecurrentGraphTransformerLayer",
        "SpatioTemporalGaussianDifferentialLayer",
        "TemporalTransformerLayer",
    ]

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, **kwargs):
        """`PreTrainedModel.from_pretrained`; a truncated or corrupt weights file is named in the error."""
        try:
            return super().from_pretrained(pretrained_model_name_or_path, *model_args, **kwargs)
        except SafetensorError as error:
            culprit = _unreadable_safetensors(pretrained_model_name_or_path)
            raise OSError(
                f"{culprit or pretrained_model_name_or_path}: the weights file is truncated or corrupt ({error}); "
                "save or download it again"
            ) from error

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """transformers' defaults for Linear / Embedding / LayerNorm; Finsta's own parameters here."""
        super()._init_weights(module)
        if initialize_graph_head_weights(module):
            return
        if isinstance(module, VideoPrismAdapter):
            init.constant_(module.logit_scale, INITIAL_VIDEOPRISM_LOGIT_SCALE)

    def save_pretrained(self, save_directory, *args, **kwargs):
        """``PreTrainedModel.save_pretrained``, plus the zero-shot pipeline: ``config.custom_pipelines`` names
        ``pipeline_finsta.FinstaZeroShotVideoClassificationPipeline``, which travels as remote code with the model
        files, so ``pipeline("zero-shot-video-classification", model=folder, trust_remote_code=True)`` works."""
        from .pipeline_finsta import FinstaZeroShotVideoClassificationPipeline
        from .zero_shot import ZERO_SHOT_VIDEO_CLASSIFICATION

        pipelines = dict(getattr(self.config, "custom_pipelines", None) or {})
        pipelines[ZERO_SHOT_VIDEO_CLASSIFICATION] = {
            "impl": f"pipeline_finsta.{FinstaZeroShotVideoClassificationPipeline.__name__}",
            "pt": ["AutoModel"],
            "tf": [],
            "type": "multimodal",
        }
        self.config.custom_pipelines = pipelines
        return super().save_pretrained(save_directory, *args, **kwargs)


class FinstaModel(FinstaPreTrainedModel):
    """Host backbone + Finsta graph head; see the module docstring and `FinstaConfig`."""

    accepts_loss_kwargs = False

    def __init__(self, config: FinstaConfig):
        super().__init__(config)
        self._build_host_and_head(config)
        self.post_init()

    def _build_host_and_head(self, config: FinstaConfig) -> None:
        """The host (Auto-built from ``config.backbone_config``), its adapter and the graph head."""
        self.backbone = AutoModel.from_config(config.backbone_config)
        self.host_adapter = build_backbone_adapter(config)
        self.graph_encoder = FinstaGraphEncoder(
            config, self.host_adapter.text_hidden_size, self.host_adapter.vision_hidden_size
        )

    def get_input_embeddings(self) -> nn.Module:
        return self.backbone.text_model.embeddings.token_embedding

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.backbone.text_model.embeddings.token_embedding = value

    # ------------------------------------------------------------------------------ public API
    @can_return_tuple
    def get_text_features(
        self,
        input_ids: torch.Tensor,
        attention_mask: Optional[torch.Tensor] = None,
        text_scene_graph: Optional[Union[TextSceneGraphBatch, dict]] = None,
        output_hidden_states: Optional[bool] = None,
        output_attentions: Optional[bool] = None,
        **kwargs,
    ) -> BaseModelOutputWithPooling:
        """Text embeddings of the configured inference mode in `.pooler_output`; never depend on a video.

        ``hidden_states`` / ``attentions`` are the host text tower's (with ``output_hidden_states`` /
        ``output_attentions``).
        """
        host = self.host_adapter.encode_text(
            self.backbone, input_ids, attention_mask, **self._tower_kwargs(output_hidden_states, output_attentions, kwargs)
        )
        text_encoding = None
        if self.config.inference_mode == "fused":
            text_encoding = self._encode_text_graph(host, input_ids, attention_mask, text_scene_graph)
        embeds = self._output_embeds(host.text_embeds, text_encoding)
        tower = host.tower_output
        return BaseModelOutputWithPooling(
            last_hidden_state=host.token_states, pooler_output=embeds, hidden_states=tower.hidden_states, attentions=tower.attentions
        )

    @can_return_tuple
    def get_video_features(
        self,
        pixel_values: torch.Tensor,
        video_mask: Optional[torch.Tensor] = None,
        video_scene_graph: Optional[Union[VideoSceneGraphBatch, dict]] = None,
        output_hidden_states: Optional[bool] = None,
        output_attentions: Optional[bool] = None,
        **kwargs,
    ) -> BaseModelOutputWithPooling:
        """Video embeddings of the configured inference mode in `.pooler_output`; never depend on a text.

        In fused mode the DSG is the annotated one when given, else the latent one built from the
        host's own patch tokens. In distilled mode this is exactly the host's computation.
        ``last_hidden_state`` holds the vision tower's final token states per frame ``[B, T, 1 + N, D]``
        (class token first); ``hidden_states`` / ``attentions`` are the tower's over the ``B * T`` frames.
        """
        check_finite("pixel_values", pixel_values)
        video_inputs = self._video_inputs(kwargs)
        host = self.host_adapter.encode_video(
            self.backbone, pixel_values, video_mask,
            **self._tower_kwargs(output_hidden_states, output_attentions, kwargs), **video_inputs,
        )  # fmt: skip
        video_encoding = None
        if self.config.inference_mode == "fused":
            video_encoding = self._encode_video_graph(host, video_mask, VideoSceneGraphBatch.from_value(video_scene_graph))[1]
        embeds = self._output_embeds(host.video_embeds, video_encoding)
        tower = host.tower_output
        frame_tokens = tower.last_hidden_state.view(*pixel_values.shape[:2], *tower.last_hidden_state.shape[1:])
        return BaseModelOutputWithPooling(
            last_hidden_state=frame_tokens, pooler_output=embeds, hidden_states=tower.hidden_states, attentions=tower.attentions
        )

    @can_return_tuple
    def forward(
        self,
        input_ids: Optional[torch.LongTensor] = None,
        attention_mask: Optional[torch.Tensor] = None,
        pixel_values: Optional[torch.FloatTensor] = None,
        video_mask: Optional[torch.Tensor] = None,
        text_scene_graph: Optional[Union[TextSceneGraphBatch, dict]] = None,
        video_scene_graph: Optional[Union[VideoSceneGraphBatch, dict]] = None,
        return_loss: Optional[bool] = None,
        negative_input_ids: Optional[torch.LongTensor] = None,
        negative_attention_mask: Optional[torch.Tensor] = None,
        negative_text_scene_graph: Optional[Union[TextSceneGraphBatch, dict]] = None,
        negative_mask: Optional[torch.Tensor] = None,
        output_hidden_states: Optional[bool] = None,
        output_attentions: Optional[bool] = None,
        **kwargs,
    ) -> FinstaOutput:
        r"""
        Args:
            input_ids, attention_mask: tokenized captions `[B, L]`.
            pixel_values: videos `[B, T, C, H, W]`; video_mask `[B, T]` marks real (1) vs padded (0) frames.
            text_scene_graph: padded TSG tensors (`TextSceneGraphBatch` or its dict), optional.
            video_scene_graph: padded annotated DSG tensors, optional; without it the latent DSG is used.
            return_loss: compute the losses; defaults to `self.training`.
            negative_input_ids, negative_attention_mask, negative_text_scene_graph: hard-negative captions,
                used only by the losses as extra candidates for their own video: one per video (`[B, L]`)
                or K per video (`[B, K, L]`, e.g. multiple-choice answers); `negative_mask` (`[B]` or
                `[B, K]`) marks which exist.
            output_hidden_states, output_attentions: passed to the host towers (`text_model_output`,
                `vision_model_output`).
            return_dict: `False` returns a tuple (transformers' convention).
        """
        if input_ids is None or pixel_values is None:
            raise ValueError("FinstaModel.forward needs both input_ids and pixel_values")
        check_finite("pixel_values", pixel_values)
        if return_loss is None:
            return_loss = self.training
        if video_mask is None:
            video_mask = torch.ones(pixel_values.shape[:2], dtype=torch.long, device=pixel_values.device)
        video_inputs = self._video_inputs(kwargs)
        tower_kwargs = self._tower_kwargs(output_hidden_states, output_attentions, kwargs)
        encoded = self._encode(
            input_ids, attention_mask, pixel_values, video_mask,
            TextSceneGraphBatch.from_value(text_scene_graph), VideoSceneGraphBatch.from_value(video_scene_graph),
            with_graphs=self.config.inference_mode == "fused" or (return_loss and self._graph_losses_active()),
            tower_kwargs=tower_kwargs, video_inputs=video_inputs,
        )  # fmt: skip
        logit_scale = self.host_adapter.contrastive_logit_scale(self.backbone)
        logits_per_text = cosine_logits(encoded.text_embeds, encoded.video_embeds, logit_scale)

        losses: dict[str, Optional[torch.Tensor]] = dict.fromkeys(LOSS_COMPONENTS)
        total = None
        if return_loss:
            negatives = None
            if negative_input_ids is not None:
                negatives = self._encode_negatives(
                    negative_input_ids, negative_attention_mask, negative_text_scene_graph, negative_mask,
                    with_graphs=encoded.text_graph is not None,
                )  # fmt: skip
            losses.update(self._losses(encoded, negatives, logit_scale))
            total = sum(getattr(self.config, f"{name}_weight") * value for name, value in losses.items() if value is not None)
            check_finite("the loss", total)

        text_graph, video_graph = encoded.text_graph, encoded.video_graph
        return FinstaOutput(
            loss=total,
            logits_per_text=logits_per_text,
            logits_per_video=logits_per_text.t(),
            text_embeds=encoded.text_embeds,
            video_embeds=encoded.video_embeds,
            host_text_embeds=encoded.host_text.text_embeds,
            host_video_embeds=encoded.host_video.video_embeds,
            text_graph_embeds=None if text_graph is None else text_graph.graph_embeds,
            video_graph_embeds=None if video_graph is None else video_graph.graph_embeds,
            video_graph_boxes=None if video_graph is None else video_graph.boxes,
            video_graph_node_mask=None if video_graph is None else video_graph.node_mask,
            text_model_output=encoded.host_text.tower_output,
            vision_model_output=encoded.host_video.tower_output,
            **losses,
        )

    # -------------------------------------------------------------------------------- encoding
    def _video_inputs(self, kwargs: dict) -> dict[str, Any]:
        """Pop the host's extra video inputs (``host_adapter.video_input_names``, e.g. SigLIP2's NaFlex
        ``pixel_attention_mask`` / ``spatial_shapes``) out of ``kwargs``."""
        return {name: kwargs.pop(name) for name in self.host_adapter.video_input_names if kwargs.get(name) is not None}

    def _tower_kwargs(self, output_hidden_states, output_attentions, extra: dict) -> dict[str, Any]:
        """What reaches the host towers (argument, else the config's value); anything unknown is refused by name."""
        extra = {k: v for k, v in extra.items() if k not in ("num_items_in_batch",) and v is not None}
        if extra:
            raise TypeError(f"FinstaModel got unexpected keyword arguments {sorted(extra)}")
        return {
            "output_hidden_states": self.config.output_hidden_states if output_hidden_states is None else output_hidden_states,
            "output_attentions": self.config.output_attentions if output_attentions is None else output_attentions,
        }

    def _encode_text_graph(
        self, host: HostTextOutput, input_ids, attention_mask, text_scene_graph
    ) -> Optional[TextGraphEncoding]:
        graph = TextSceneGraphBatch.from_value(text_scene_graph)
        token_states = self._host_features(host.token_states)
        if not self.config.use_scene_graph_structure:  # the capacity control: every token, no structure
            mask = attention_mask if attention_mask is not None else torch.ones(token_states.shape[:2], device=token_states.device)
            return self.graph_encoder.encode_text_graph(token_states, self.graph_encoder.token_graph(mask))
        if graph is None:
            if input_ids is not None and self.config.inference_mode == "fused":
                logger.warning_once(
                    "FinstaModel (fused mode): captions came without a text_scene_graph, so their fused embeddings are "
                    "the host's alone and do not match captions encoded with one. Pass what the processor returns: "
                    "model.get_text_features(**processor(text=captions)) (its parser builds the graph)."
                )
            return None
        encoding = self.graph_encoder.encode_text_graph(token_states, graph)
        if input_ids is not None and self.config.inference_mode == "fused" and attention_mask is not None:
            wordy = attention_mask.sum(-1) > 2  # more than the start and end tokens
            if bool((wordy & ~encoding.has_graph).any()):
                logger.warning_once(
                    "FinstaModel (fused mode): some captions have words but an empty text scene graph; their fused "
                    "embeddings are the host's alone."
                )
        return encoding

    def _host_features(self, features: torch.Tensor) -> torch.Tensor:
        """What the graph head reads of the host: behind a stop-gradient with ``graph_head_detaches_host``."""
        return features.detach() if self.config.graph_head_detaches_host else features

    def _encode_video_graph(
        self, host: HostVideoOutput, video_mask, video_graph: Optional[VideoSceneGraphBatch]
    ) -> tuple[VideoGraphInputs, VideoGraphEncoding]:
        inputs, _ = self.graph_encoder.build_video_graph(self._host_features(host.patch_tokens), host.grid_size, video_mask, video_graph)
        return inputs, self.graph_encoder.encode_video_graph(inputs)

    def _encode(
        self, input_ids, attention_mask, pixel_values, video_mask, text_graph, video_graph, *, with_graphs: bool, tower_kwargs,
        video_inputs: Optional[dict] = None,
    ) -> FinstaEncodings:
        host_text = self.host_adapter.encode_text(self.backbone, input_ids, attention_mask, **tower_kwargs)
        host_video = self.host_adapter.encode_video(self.backbone, pixel_values, video_mask, **tower_kwargs, **(video_inputs or {}))
        text_encoding = video_inputs = video_encoding = None
        if with_graphs:
            text_encoding = self._encode_text_graph(host_text, input_ids, attention_mask, text_graph)
            video_inputs, video_encoding = self._encode_video_graph(host_video, video_mask, video_graph)
        return FinstaEncodings(
            host_text=host_text,
            host_video=host_video,
            video_mask=video_mask,
            text_graph=text_encoding,
            video_inputs=video_inputs,
            video_graph=video_encoding,
            text_embeds=self._output_embeds(host_text.text_embeds, text_encoding),
            video_embeds=self._output_embeds(host_video.video_embeds, video_encoding),
            text_scene_graph=text_graph,
        )

    def _encode_negatives(self, input_ids, attention_mask, text_scene_graph, mask, *, with_graphs: bool) -> HardNegativeCaptions:
        """Encode ``[B, L]`` (one per video) or ``[B, K, L]`` hard-negative captions as ``[B, K, ...]``."""
        per_video = input_ids.shape[:-1] if input_ids.dim() == 3 else (input_ids.shape[0], 1)
        flat = lambda value: None if value is None else value.reshape(-1, *value.shape[len(per_video) if input_ids.dim() == 3 else 1 :])  # noqa: E731
        host = self.host_adapter.encode_text(self.backbone, flat(input_ids), flat(attention_mask))
        graph = None
        if with_graphs and (text_scene_graph is not None or not self.config.use_scene_graph_structure):
            tensors = text_scene_graph.to_dict() if isinstance(text_scene_graph, TextSceneGraphBatch) else text_scene_graph
            graph = self._encode_text_graph(
                host, None, flat(attention_mask), None if tensors is None else {k: flat(v) for k, v in tensors.items()}
            )
        if mask is None:
            mask = torch.ones(per_video, dtype=torch.bool, device=input_ids.device)
        return HardNegativeCaptions(
            host_embeds=host.text_embeds.view(*per_video, -1),
            embeds=self._output_embeds(host.text_embeds, graph).view(*per_video, -1),
            graph=graph,
            mask=mask.bool().view(per_video),
        )

    def _graph_losses_active(self) -> bool:
        config = self.config
        return (
            (config.use_osc and config.osc_loss_weight > 0)
            or (config.use_ptc and config.ptc_loss_weight > 0)
            or config.graph_contrastive_loss_weight > 0
            or config.distillation_loss_weight > 0
            or config.token_distillation_loss_weight > 0
        )

    def _output_embeds(
        self, host_embeds: torch.Tensor, encoding: Optional[Union[TextGraphEncoding, VideoGraphEncoding]]
    ) -> torch.Tensor:
        """Distilled mode: the host embedding as is. Fused: normalised host + weighted graph embedding."""
        if self.config.inference_mode == "distilled":
            return host_embeds
        return self._fuse(host_embeds, encoding)

    def _fuse(
        self, host_embeds: torch.Tensor, encoding: Optional[Union[TextGraphEncoding, VideoGraphEncoding]]
    ) -> torch.Tensor:
        if encoding is None:
            return host_embeds
        graph = encoding.graph_embeds
        if isinstance(encoding, TextGraphEncoding):  # captions without nodes stay host-only
            graph = graph * encoding.has_graph.unsqueeze(-1).to(graph.dtype)
        fused = nn.functional.normalize(self._host_features(host_embeds), dim=-1) + self.config.fusion_weight * graph.to(host_embeds.dtype)
        return nn.functional.normalize(fused, dim=-1)

    # ---------------------------------------------------------------------------------- losses
    def _losses(
        self, encoded: FinstaEncodings, negatives: Optional[HardNegativeCaptions], logit_scale: torch.Tensor
    ) -> dict[str, Optional[torch.Tensor]]:
        """The named objectives; graph terms only when both graphs were encoded."""
        losses = self._host_objective(encoded, negatives, logit_scale)
        if encoded.text_graph is None or encoded.video_graph is None:
            return losses
        losses["graph_contrastive_loss"] = self._graph_objective(encoded, negatives)
        losses["distillation_loss"] = self._distillation(encoded, negatives, logit_scale)
        losses["token_distillation_loss"] = self._token_distillation(encoded)
        config = self.config
        need_osc = config.use_osc and config.osc_loss_weight > 0
        need_ptc = config.use_ptc and config.ptc_loss_weight > 0 and encoded.video_mask.shape[1] > 1
        if need_osc or need_ptc:
            coreference = self._coreference(encoded)
            if need_osc:
                losses["osc_loss"] = self.graph_encoder.object_spatial_contrast(encoded.text_graph, encoded.video_graph, coreference)
            if need_ptc:
                losses["ptc_loss"] = self._predicate_temporal_contrast(encoded, coreference, logit_scale)
        return losses

    def _host_objective(self, encoded: FinstaEncodings, negatives: Optional[HardNegativeCaptions], logit_scale) -> dict:
        """The host keeps its own InfoNCE on its own embeddings (so the distilled host stays a retrieval
        model); the fused embeddings, when they differ from the host's, get the same loss."""
        host_negatives = None if negatives is None else negatives.host_embeds
        mask = None if negatives is None else negatives.mask
        losses: dict[str, Optional[torch.Tensor]] = {
            "contrastive_loss": self.host_adapter.host_contrastive_loss(
                self.backbone, encoded.host_text.text_embeds, encoded.host_video.video_embeds, logit_scale, host_negatives, mask
            )
        }
        if encoded.fused and self.config.fused_contrastive_loss_weight > 0:
            losses["fused_contrastive_loss"] = contrastive_loss(
                encoded.text_embeds, encoded.video_embeds, logit_scale, None if negatives is None else negatives.embeds, mask
            )
        return losses

    def _graph_objective(self, encoded: FinstaEncodings, negatives: Optional[HardNegativeCaptions]) -> Optional[torch.Tensor]:
        """InfoNCE between the pooled TSG and DSG embeddings (captions without a graph left out)."""
        if self.config.graph_contrastive_loss_weight == 0:
            return None
        text, video = encoded.text_graph, encoded.video_graph
        has_graph = text.has_graph
        if not has_graph.any():
            return None
        scale = self.graph_encoder.graph_logit_scale.exp().clamp(max=100)
        if has_graph.all():
            negative_graph = None if negatives is None else negatives.graph_embeds()
            negative_embeds, negative_mask = negative_graph if negative_graph is not None else (None, None)
            return contrastive_loss(text.graph_embeds, video.graph_embeds, scale, negative_embeds, negative_mask)
        # A subset differs in size across processes, so it is not gathered.
        logits = cosine_logits(text.graph_embeds[has_graph], video.graph_embeds[has_graph], scale).float()
        labels = torch.arange(logits.shape[0], device=logits.device)
        return (nn.functional.cross_entropy(logits, labels) + nn.functional.cross_entropy(logits.t(), labels)) / 2

    def _distillation(self, encoded: FinstaEncodings, negatives: Optional[HardNegativeCaptions], logit_scale) -> Optional[torch.Tensor]:
        """Transfer into the host (``config.distillation_target``): rank like the fused model (``"similarity"``,
        plus its choice among each video's hard negatives with ``"hard_negatives"``), match the graph or fused
        embeddings (``"embedding"``, ``"fused_embedding"``), or contrast against them (``"cross_modal"``)."""
        config = self.config
        if config.distillation_loss_weight == 0:
            return None
        host_text, host_video = encoded.host_text.text_embeds, encoded.host_video.video_embeds
        if config.distillation_target == "embedding":
            return distillation_loss(host_text, encoded.text_graph.graph_embeds, encoded.text_graph.has_graph) + distillation_loss(
                host_video, encoded.video_graph.graph_embeds
            )
        if config.distillation_target == "cross_modal":
            return self._cross_modal_distillation(encoded, negatives, logit_scale)
        # The teacher is the fused model: in fused mode those are the embeddings already computed.
        embeddings_only = config.distillation_target == "fused_embedding"  # no hard negatives to fuse
        teacher_text, teacher_video, teacher_negative = self._fused_teacher(encoded, None if embeddings_only else negatives)
        if embeddings_only:
            return distillation_loss(host_text, teacher_text, encoded.text_graph.has_graph) + distillation_loss(
                host_video, teacher_video
            )
        rankings = similarity_distillation_loss(
            host_text, host_video, teacher_text, teacher_video, logit_scale,
            None if negatives is None else negatives.host_embeds, teacher_negative, None if negatives is None else negatives.mask,
        )  # fmt: skip
        if config.distillation_target == "hard_negatives" and negatives is not None:
            return rankings + hard_negative_distillation_loss(
                host_text, host_video, negatives.host_embeds, teacher_text, teacher_video, teacher_negative, logit_scale, negatives.mask
            )
        return rankings

    def _fused_teacher(self, encoded: FinstaEncodings, negatives: Optional[HardNegativeCaptions]):
        """The fused model's text, video and hard-negative embeddings, detached (computed when not in fused mode)."""
        if encoded.fused:
            text, video = encoded.text_embeds, encoded.video_embeds
            negative = None if negatives is None else negatives.embeds
        else:
            text = self._fuse(encoded.host_text.text_embeds, encoded.text_graph)
            video = self._fuse(encoded.host_video.video_embeds, encoded.video_graph)
            negative = None
            if negatives is not None:
                negative = self._fuse(negatives.host_embeds.flatten(0, 1), negatives.graph).view_as(negatives.host_embeds)
        return text.detach(), video.detach(), None if negative is None else negative.detach()

    def _cross_modal_distillation(
        self, encoded: FinstaEncodings, negatives: Optional[HardNegativeCaptions], logit_scale: torch.Tensor
    ) -> torch.Tensor:
        """[ours] Each host tower learns against a fixed, graph-aware partner: host videos against the fused
        captions (and the fused hard negatives), host captions (and host hard negatives) against the fused
        videos. Only the host's own towers receive gradients."""
        teacher_text, teacher_video, teacher_negative = self._fused_teacher(encoded, negatives)
        mask = None if negatives is None else negatives.mask
        host_negative = None if negatives is None else negatives.host_embeds
        video_term = contrastive_loss(teacher_text, encoded.host_video.video_embeds, logit_scale, teacher_negative, mask)
        text_term = contrastive_loss(encoded.host_text.text_embeds, teacher_video, logit_scale, host_negative, mask)
        return (video_term + text_term) / 2

    def _token_distillation(self, encoded: FinstaEncodings) -> Optional[torch.Tensor]:
        """[ours] Token-level transfer: the host's own token / patch features of each graph node, through a
        linear head, towards that node's graph-encoder state (detached), so the structure the graph layers
        compute is pulled into the host's states themselves."""
        if self.config.token_distillation_loss_weight == 0:
            return None
        encoder, text, video = self.graph_encoder, encoded.text_graph, encoded.video_graph
        text_term = distillation_loss(encoder.token_text_head(text.pooled_token_states), text.node_states, text.node_mask)
        video_term = distillation_loss(
            encoder.token_video_head(encoded.video_inputs.node_features.to(video.node_states.dtype)),
            video.node_states,
            video.node_mask,
        )
        return text_term + video_term

    def _coreference(self, encoded: FinstaEncodings) -> torch.Tensor:
        """HSG cross-modal coreference edges ``[B, N, S]`` between TSG nodes and the paired video's tracks."""
        text, video = encoded.text_graph, encoded.video_graph
        return self.graph_encoder.cross_modal_edges(
            self.host_adapter.text_tokens_to_joint(self.backbone, text.pooled_token_states),
            text.node_mask,
            self.host_adapter.patch_tokens_to_joint(self.backbone, self.graph_encoder.track_features(encoded.video_inputs)),
            video.track_mask,
            None if encoded.text_scene_graph is None else encoded.text_scene_graph.grounding,
        )

    def _predicate_temporal_contrast(self, encoded: FinstaEncodings, coreference: torch.Tensor, logit_scale) -> torch.Tensor:
        """PTC: each clip against itself with frames reversed and shuffled, per caption on the retrieval
        embedding and per predicate on its subject/object tracks. Host frame embeddings are reused, so
        only the temporal head and the graph encoder run again on the reordered clips."""
        encoder, video_mask = self.graph_encoder, encoded.video_mask
        orders = (reversed_frame_order(video_mask), shuffled_frame_order(video_mask))
        reordered = [encoder.encode_video_graph(encoded.video_inputs.permute_frames(order)) for order in orders]
        reordered_embeds = []
        for order, encoding in zip(orders, reordered):
            host_embeds, _ = self.host_adapter.pool_frames(
                self.backbone, gather_frames(encoded.host_video.frame_inputs, order), gather_frames(video_mask, order)
            )
            reordered_embeds.append(self._output_embeds(host_embeds, encoding))
        ptc = clip_order_contrastive_loss(
            encoded.text_embeds, encoded.video_embeds, torch.stack(reordered_embeds, dim=1), logit_scale
        )
        predicates = encoder.predicate_track_contrast(encoded.text_graph, encoded.video_graph, reordered, coreference)
        return ptc if predicates is None else ptc + predicates


@dataclass
class FinstaVideoClassifierOutput(ModelOutput):
    """
    Args:
        loss: cross-entropy (single-label) or binary cross-entropy (multi-label) when `labels` are given.
        logits: `[B, num_labels]` class scores.
        video_embeds: the video embeddings the head reads (inference mode of the config), `[B, E]`.
        hidden_states / attentions: the host vision tower's, over the `B * T` frames (when requested).
    """

    loss: Optional[torch.FloatTensor] = None
    logits: Optional[torch.FloatTensor] = None
    video_embeds: Optional[torch.FloatTensor] = None
    hidden_states: Optional[tuple[torch.FloatTensor, ...]] = None
    attentions: Optional[tuple[torch.FloatTensor, ...]] = None


class FinstaForVideoClassification(FinstaModel):
    """Action recognition: a linear head on the L2-normalised video embedding of the configured inference mode.

    It is a `FinstaModel` plus ``classifier`` (same parameter names), so a Finsta checkpoint, or a plain
    host checkpoint, loads with only the head (and, for a host, the Finsta head) initialised:
    ``FinstaForVideoClassification.from_pretrained(folder, num_labels=400, id2label=...)``. The text tower
    stays, so `initialize_classifier_from_prompts` can start the head at the zero-shot classifier (class
    prompt embeddings times the host's logit scale), from which fine-tuning with `Trainer` proceeds; the
    examples need ``pixel_values``, ``video_mask`` (optionally ``video_scene_graph``) and ``labels``.
    """

    main_input_name = "pixel_values"
    input_modalities = ("video",)

    def __init__(self, config: FinstaConfig):
        FinstaPreTrainedModel.__init__(self, config)  # FinstaModel's modules, built once (one post_init), then the head
        self._build_host_and_head(config)
        self.classifier = nn.Linear(config.projection_dim, config.num_labels)
        self.post_init()

    def initialize_classifier_from_text(self, class_embeds: torch.Tensor, logit_scale: Optional[float] = None) -> None:
        """Set the head to the zero-shot classifier: weight ``= scale * normalize(class_embeds)``, bias 0.

        ``class_embeds`` ``[num_labels, E]`` are class text embeddings (e.g. a prompt ensemble); ``logit_scale``
        defaults to the host's contrastive scale, so the logits equal the zero-shot scores times that scale.
        """
        if class_embeds.shape != self.classifier.weight.shape:
            raise ValueError(
                f"class_embeds must be [num_labels={self.config.num_labels}, {self.config.projection_dim}], "
                f"got {tuple(class_embeds.shape)}"
            )
        if logit_scale is None:
            logit_scale = float(self.host_adapter.contrastive_logit_scale(self.backbone).detach())
        with torch.no_grad():
            weight = nn.functional.normalize(class_embeds.float(), dim=-1) * logit_scale
            self.classifier.weight.copy_(weight.to(self.classifier.weight))
            self.classifier.bias.zero_()

    def initialize_classifier_from_prompts(
        self, processor, class_names: Optional[list[str]] = None, templates: Optional[list[str]] = None, **kwargs
    ):
        """Encode the class names through a prompt ensemble (``zero_shot.encode_class_prompts``; default
        names: ``config.id2label`` in id order) and start the head there; returns the class embeddings."""
        from .zero_shot import DEFAULT_TEMPLATES, encode_class_prompts

        if class_names is None:
            class_names = [self.config.id2label[i] for i in range(self.config.num_labels)]
        if len(class_names) != self.config.num_labels:
            raise ValueError(f"got {len(class_names)} class names for num_labels={self.config.num_labels}")
        classes = encode_class_prompts(self, processor, class_names, templates or DEFAULT_TEMPLATES, **kwargs)
        self.initialize_classifier_from_text(classes.embeds)
        self.config.id2label = dict(enumerate(class_names))
        self.config.label2id = {name: index for index, name in enumerate(class_names)}
        return classes

    @can_return_tuple
    def forward(
        self,
        pixel_values: Optional[torch.FloatTensor] = None,
        video_mask: Optional[torch.Tensor] = None,
        video_scene_graph: Optional[Union[VideoSceneGraphBatch, dict]] = None,
        labels: Optional[torch.Tensor] = None,
        output_hidden_states: Optional[bool] = None,
        output_attentions: Optional[bool] = None,
        return_loss: Optional[bool] = None,
        **kwargs,
    ) -> FinstaVideoClassifierOutput:
        r"""
        Args:
            pixel_values / video_mask / video_scene_graph: as `FinstaModel.get_video_features`.
            labels: class ids `[B]` (single-label) or multi-hot `[B, num_labels]` floats (multi-label).
            return_loss: accepted for `FinstaDataCollator` batches; the loss is computed whenever `labels` are given.
        """
        if pixel_values is None:
            raise ValueError("FinstaForVideoClassification.forward needs pixel_values")
        video = self.get_video_features(
            pixel_values, video_mask, video_scene_graph, output_hidden_states, output_attentions, return_dict=True, **kwargs
        )
        embeds = video.pooler_output
        logits = self.classifier(nn.functional.normalize(embeds, dim=-1).to(self.classifier.weight.dtype))
        loss = None
        if labels is not None:
            loss = self._classification_loss(logits, labels)
        return FinstaVideoClassifierOutput(
            loss=loss, logits=logits, video_embeds=embeds, hidden_states=video.hidden_states, attentions=video.attentions
        )

    def _classification_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        problem = self.config.problem_type
        if problem is None:
            problem = "single_label_classification" if labels.dtype in (torch.long, torch.int) else "multi_label_classification"
        if problem == "single_label_classification":
            if labels.dim() != 1 or bool(((labels < 0) | (labels >= self.config.num_labels)).any()):
                raise ValueError(f"labels must be class ids in [0, {self.config.num_labels}) of shape [B], got {labels.tolist()}")
            return nn.functional.cross_entropy(logits.float(), labels.long())
        if problem == "multi_label_classification":
            if labels.shape != logits.shape:
                raise ValueError(f"multi-label labels must be [B, {self.config.num_labels}], got {tuple(labels.shape)}")
            return nn.functional.binary_cross_entropy_with_logits(logits.float(), labels.float())
        raise ValueError(
            f"FinstaForVideoClassification supports problem_type 'single_label_classification' or "
            f"'multi_label_classification', got {problem!r}"
        )

    def save_pretrained(self, save_directory, *args, **kwargs):
        """Also map ``AutoModel`` to `FinstaModel`, so the folder serves retrieval and zero-shot as well."""
        auto_map = dict(getattr(self.config, "auto_map", None) or {})
        auto_map.setdefault("AutoModel", f"modeling_finsta.{FinstaModel.__name__}")
        self.config.auto_map = auto_map
        return super().save_pretrained(save_directory, *args, **kwargs)


FinstaConfig.register_for_auto_class()
FinstaModel.register_for_auto_class("AutoModel")
FinstaForVideoClassification.register_for_auto_class("AutoModelForVideoClassification")

__all__ = [
    "NonFiniteValueError",
    "check_finite",
    "FinstaEncodings",
    "FinstaForVideoClassification",
    "FinstaModel",
    "FinstaOutput",
    "FinstaPreTrainedModel",
    "FinstaVideoClassifierOutput",
    "HardNegativeCaptions",
    "LOSS_COMPONENTS",
]
