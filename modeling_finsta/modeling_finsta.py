"""FinstaModel: a host video-language model plus Finsta's scene-graph head and losses.

The host (``self.backbone``, built with ``AutoModel.from_config``) keeps its weights, architecture
and objective. ``self.host_adapter`` exposes its token and patch states; ``self.graph_encoder``
holds every new parameter. ``base_model_prefix = "backbone"`` lets ``FinstaModel.from_pretrained``
load a plain CLIP or X-CLIP checkpoint and initialise only the Finsta head.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModel, PreTrainedModel
from transformers import initialization as init
from transformers.modeling_outputs import BaseModelOutputWithPooling
from transformers.utils import ModelOutput

from .backbone_adapters import HostVideoOutput, build_backbone_adapter
from .configuration_finsta import FinstaConfig
from .graph_encoder import FinstaGraphEncoder, TextGraphEncoding, VideoGraphEncoding, VideoGraphInputs, gather_frames
from .graph_layers import SpatioTemporalGaussianDifferentialLayer
from .losses import (
    clip_order_contrastive_loss,
    contrastive_loss,
    distillation_loss,
    neighbourhood_mean,
    object_spatial_contrastive_loss,
    predicate_temporal_contrastive_loss,
    reversed_frame_order,
    shuffled_frame_order,
    similarity_distillation_loss,
)
from .scene_graphs import TEXT_EDGE_TYPES, TEXT_NODE_TYPES, TextSceneGraphBatch, VideoSceneGraphBatch


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
            distillation_loss: unweighted components (None when inactive). `contrastive_loss` is the
            host's own objective on its own embeddings; `fused_contrastive_loss` the same on the fused ones.
        video_graph_boxes / video_graph_node_mask: the DSG used (latent slots or annotations),
            `[B, T, S, 4]` normalised xyxy and `[B, T, S]`.
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
    video_graph_boxes: Optional[torch.FloatTensor] = None
    video_graph_node_mask: Optional[torch.BoolTensor] = None


class FinstaPreTrainedModel(PreTrainedModel):
    config_class = FinstaConfig
    config: FinstaConfig
    base_model_prefix = "backbone"
    main_input_name = "input_ids"
    input_modalities = ("video", "text")
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _no_split_modules = [
        "GraphTransformerLayer",
        "RecurrentGraphTransformerLayer",
        "SpatioTemporalGaussianDifferentialLayer",
    ]

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, mean=0.0, std=std)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, nn.GRUCell):
            bound = module.hidden_size**-0.5
            for parameter in module.parameters():
                init.uniform_(parameter, -bound, bound)
        if isinstance(module, FinstaGraphEncoder):
            for scale in (module.graph_logit_scale, module.osc_logit_scale, module.ptc_logit_scale):
                init.constant_(scale, 2.6592)  # log(1 / 0.07), CLIP's initial temperature
        elif isinstance(module, SpatioTemporalGaussianDifferentialLayer):
            init.constant_(module.log_sigma, -2.3026)  # sigma = 0.1 of the image size
            init.ones_(module.motion_attention_scale)


class FinstaModel(FinstaPreTrainedModel):
    """Host backbone + Finsta graph head; see the module docstring and `FinstaConfig`."""

    accepts_loss_kwargs = False

    def __init__(self, config: FinstaConfig):
        super().__init__(config)
        self.backbone = AutoModel.from_config(config.backbone_config)
        self.host_adapter = build_backbone_adapter(config)
        self.graph_encoder = FinstaGraphEncoder(
            config, self.host_adapter.text_hidden_size, self.host_adapter.vision_hidden_size
        )
        self.post_init()

    # ------------------------------------------------------------------------------ public API
    def get_text_features(
        self,
        input_ids: torch.Tensor,
        attention_mask: Optional[torch.Tensor] = None,
        text_scene_graph: Optional[Union[TextSceneGraphBatch, dict]] = None,
        **kwargs,
    ) -> BaseModelOutputWithPooling:
        """Text embeddings of the configured inference mode in `.pooler_output`; never depend on a video."""
        host = self.host_adapter.encode_text(self.backbone, input_ids, attention_mask)
        graph = TextSceneGraphBatch.from_value(text_scene_graph)
        text_encoding = None
        if self.config.inference_mode == "fused" and graph is not None:
            text_encoding = self.graph_encoder.encode_text_graph(host.token_states, graph)
        embeds = self._output_embeds(host.text_embeds, text_encoding)
        return BaseModelOutputWithPooling(last_hidden_state=host.token_states, pooler_output=embeds)

    def get_video_features(
        self,
        pixel_values: torch.Tensor,
        video_mask: Optional[torch.Tensor] = None,
        video_scene_graph: Optional[Union[VideoSceneGraphBatch, dict]] = None,
        **kwargs,
    ) -> BaseModelOutputWithPooling:
        """Video embeddings of the configured inference mode in `.pooler_output`; never depend on a text.

        In fused mode the DSG is the annotated one when given, else the latent one built from the
        host's own patch tokens. In distilled mode this is exactly the host's computation.
        """
        host = self.host_adapter.encode_video(self.backbone, pixel_values, video_mask)
        video_encoding = None
        if self.config.inference_mode == "fused":
            graph = VideoSceneGraphBatch.from_value(video_scene_graph)
            inputs, _ = self.graph_encoder.build_video_graph(host.patch_tokens, host.grid_size, video_mask, graph)
            video_encoding = self.graph_encoder.encode_video_graph(inputs)
        embeds = self._output_embeds(host.video_embeds, video_encoding)
        return BaseModelOutputWithPooling(last_hidden_state=host.frame_embeds, pooler_output=embeds)

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
        **kwargs,
    ) -> FinstaOutput:
        r"""
        Args:
            input_ids, attention_mask: tokenized captions `[B, L]`.
            pixel_values: videos `[B, T, C, H, W]`; video_mask `[B, T]` marks real (1) vs padded (0) frames.
            text_scene_graph: padded TSG tensors (`TextSceneGraphBatch` or its dict), optional.
            video_scene_graph: padded annotated DSG tensors, optional; without it the latent DSG is used.
            return_loss: compute the losses; defaults to `self.training`.
            negative_input_ids, negative_attention_mask, negative_text_scene_graph: one hard-negative
                caption per video (e.g. the caption of the reversed clip), used only by the losses as
                an extra candidate for its own video; `negative_mask [B]` marks which videos have one.
        """
        if input_ids is None or pixel_values is None:
            raise ValueError("FinstaModel.forward needs both input_ids and pixel_values")
        if return_loss is None:
            return_loss = self.training
        text_graph = TextSceneGraphBatch.from_value(text_scene_graph)
        video_graph = VideoSceneGraphBatch.from_value(video_scene_graph)
        if video_mask is None:
            video_mask = torch.ones(pixel_values.shape[:2], dtype=torch.long, device=pixel_values.device)

        host_text = self.host_adapter.encode_text(self.backbone, input_ids, attention_mask)
        host_video = self.host_adapter.encode_video(self.backbone, pixel_values, video_mask)

        needs_graph = self.config.inference_mode == "fused" or (return_loss and self._graph_losses_active())
        text_encoding: Optional[TextGraphEncoding] = None
        video_encoding: Optional[VideoGraphEncoding] = None
        video_inputs: Optional[VideoGraphInputs] = None
        if needs_graph:
            if text_graph is not None:
                text_encoding = self.graph_encoder.encode_text_graph(host_text.token_states, text_graph)
            video_inputs, _ = self.graph_encoder.build_video_graph(
                host_video.patch_tokens, host_video.grid_size, video_mask, video_graph
            )
            video_encoding = self.graph_encoder.encode_video_graph(video_inputs)

        text_embeds = self._output_embeds(host_text.text_embeds, text_encoding)
        video_embeds = self._output_embeds(host_video.video_embeds, video_encoding)
        logit_scale = self.backbone.logit_scale.exp().clamp(max=100)
        logits_per_text = logit_scale * F.normalize(text_embeds, dim=-1) @ F.normalize(video_embeds, dim=-1).t()

        losses: dict[str, Optional[torch.Tensor]] = {}
        total = None
        if return_loss:
            negatives = None
            if negative_input_ids is not None:
                negative_host = self.host_adapter.encode_text(self.backbone, negative_input_ids, negative_attention_mask)
                negative_graph = TextSceneGraphBatch.from_value(negative_text_scene_graph)
                negative_encoding = None
                if needs_graph and negative_graph is not None:
                    negative_encoding = self.graph_encoder.encode_text_graph(negative_host.token_states, negative_graph)
                if negative_mask is None:
                    negative_mask = torch.ones(negative_input_ids.shape[0], dtype=torch.bool, device=negative_input_ids.device)
                negatives = (
                    negative_host.text_embeds,
                    self._output_embeds(negative_host.text_embeds, negative_encoding),
                    negative_encoding,
                    negative_mask.bool(),
                )
            losses = self._losses(
                text_embeds, video_embeds, logit_scale, host_text, host_video, text_graph, text_encoding,
                video_inputs, video_encoding, video_mask, negatives,
            )
            weights = {
                "contrastive_loss": self.config.contrastive_loss_weight,
                "fused_contrastive_loss": self.config.fused_contrastive_loss_weight,
                "graph_contrastive_loss": self.config.graph_contrastive_loss_weight,
                "osc_loss": self.config.osc_loss_weight,
                "ptc_loss": self.config.ptc_loss_weight,
                "distillation_loss": self.config.distillation_loss_weight,
            }
            total = sum(weights[name] * value for name, value in losses.items() if value is not None)

        return FinstaOutput(
            loss=total,
            logits_per_text=logits_per_text,
            logits_per_video=logits_per_text.t(),
            text_embeds=text_embeds,
            video_embeds=video_embeds,
            host_text_embeds=host_text.text_embeds,
            host_video_embeds=host_video.video_embeds,
            text_graph_embeds=None if text_encoding is None else text_encoding.graph_embeds,
            video_graph_embeds=None if video_encoding is None else video_encoding.graph_embeds,
            video_graph_boxes=None if video_encoding is None else video_encoding.boxes,
            video_graph_node_mask=None if video_encoding is None else video_encoding.node_mask,
            **losses,
        )

    # ------------------------------------------------------------------------------- internals
    def _graph_losses_active(self) -> bool:
        config = self.config
        return (
            (config.use_osc and config.osc_loss_weight > 0)
            or (config.use_ptc and config.ptc_loss_weight > 0)
            or config.graph_contrastive_loss_weight > 0
            or config.distillation_loss_weight > 0
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
        fused = F.normalize(host_embeds, dim=-1)
        if encoding is not None:
            graph = encoding.graph_embeds
            if isinstance(encoding, TextGraphEncoding):  # captions without nodes stay host-only
                graph = graph * encoding.has_graph.unsqueeze(-1).to(graph.dtype)
            fused = fused + self.config.fusion_weight * graph.to(fused.dtype)
        return F.normalize(fused, dim=-1)

    def _losses(
        self,
        text_embeds,
        video_embeds,
        logit_scale,
        host_text,
        host_video: HostVideoOutput,
        text_graph: Optional[TextSceneGraphBatch],
        text_encoding: Optional[TextGraphEncoding],
        video_inputs: Optional[VideoGraphInputs],
        video_encoding: Optional[VideoGraphEncoding],
        video_mask: torch.Tensor,
        negatives: Optional[tuple[torch.Tensor, torch.Tensor, Optional[TextGraphEncoding], torch.Tensor]] = None,
    ) -> dict[str, Optional[torch.Tensor]]:
        config = self.config
        encoder = self.graph_encoder
        negative_host_embeds, negative_embeds, negative_encoding, negative_mask = (
            negatives if negatives is not None else (None, None, None, None)
        )
        # The host keeps its own objective on its own embeddings (so the distilled host stays a
        # retrieval model); the fused embeddings, when they differ from the host's, get the same loss.
        fused = config.inference_mode == "fused" and (text_encoding is not None or video_encoding is not None)
        losses: dict[str, Optional[torch.Tensor]] = {
            "contrastive_loss": contrastive_loss(
                host_text.text_embeds, host_video.video_embeds, logit_scale, negative_host_embeds, negative_mask
            ),
            "fused_contrastive_loss": None,
            "graph_contrastive_loss": None,
            "osc_loss": None,
            "ptc_loss": None,
            "distillation_loss": None,
        }
        if fused and config.fused_contrastive_loss_weight > 0:
            losses["fused_contrastive_loss"] = contrastive_loss(
                text_embeds, video_embeds, logit_scale, negative_embeds, negative_mask
            )
        if text_encoding is None or video_encoding is None:
            return losses
        has_graph = text_encoding.has_graph
        graph_scale = encoder.graph_logit_scale.exp().clamp(max=100)
        if config.graph_contrastive_loss_weight > 0 and has_graph.any():
            if has_graph.all():
                negative_graph_embeds = negative_graph_mask = None
                if negative_encoding is not None:
                    negative_graph_embeds = negative_encoding.graph_embeds
                    negative_graph_mask = negative_mask & negative_encoding.has_graph
                losses["graph_contrastive_loss"] = contrastive_loss(
                    text_encoding.graph_embeds, video_encoding.graph_embeds, graph_scale, negative_graph_embeds,
                    negative_graph_mask,
                )
            else:  # a subset differs in size across processes, so it is not gathered
                logits = graph_scale * text_encoding.graph_embeds[has_graph] @ video_encoding.graph_embeds[has_graph].t()
                labels = torch.arange(logits.shape[0], device=logits.device)
                losses["graph_contrastive_loss"] = (
                    F.cross_entropy(logits.float(), labels) + F.cross_entropy(logits.t().float(), labels)
                ) / 2
        if config.distillation_loss_weight > 0 and config.distillation_target == "embedding":
            losses["distillation_loss"] = distillation_loss(
                host_text.text_embeds, text_encoding.graph_embeds, has_graph
            ) + distillation_loss(host_video.video_embeds, video_encoding.graph_embeds)
        elif config.distillation_loss_weight > 0:
            # The teacher is the fused model: in fused mode those are the embeddings already computed.
            if fused:
                teacher_text, teacher_video, negative_teacher = text_embeds, video_embeds, negative_embeds
            else:
                teacher_text = self._fuse(host_text.text_embeds, text_encoding)
                teacher_video = self._fuse(host_video.video_embeds, video_encoding)
                negative_teacher = None
                if negative_host_embeds is not None:
                    negative_teacher = self._fuse(negative_host_embeds, negative_encoding)
            losses["distillation_loss"] = similarity_distillation_loss(
                host_text.text_embeds, host_video.video_embeds, teacher_text, teacher_video, logit_scale,
                negative_host_embeds, negative_teacher, negative_mask,
            )  # fmt: skip

        need_osc = config.use_osc and config.osc_loss_weight > 0
        need_ptc = config.use_ptc and config.ptc_loss_weight > 0 and video_mask.shape[1] > 1
        if not (need_osc or need_ptc):
            return losses

        # HSG: cross-modal coreference edges between TSG nodes and the paired video's tracks.
        presence = video_inputs.node_mask.unsqueeze(-1).to(video_inputs.node_features.dtype)
        track_features = (video_inputs.node_features * presence).sum(1) / presence.sum(1).clamp(min=1)
        coreference = encoder.cross_modal_edges(
            self.host_adapter.text_tokens_to_joint(self.backbone, text_encoding.pooled_token_states),
            text_encoding.node_mask,
            self.host_adapter.patch_tokens_to_joint(self.backbone, track_features),
            video_encoding.track_mask,
            None if text_graph is None else text_graph.grounding,
        )
        edges = text_encoding.edge_types
        states = text_encoding.node_states
        node_types = text_encoding.node_types * text_encoding.node_mask

        if need_osc:
            attribute_edges = edges == TEXT_EDGE_TYPES["attribute"]
            object_states = neighbourhood_mean(states, attribute_edges)
            is_object = (node_types == TEXT_NODE_TYPES["object"]) & (coreference.sum(-1) > 0)
            if is_object.any():
                batch_index = is_object.nonzero()[:, 0]
                anchors = F.normalize(encoder.osc_text_head(object_states[is_object]), dim=-1)
                regions = self._track_regions(video_encoding)
                regions = F.normalize(encoder.osc_video_head(regions), dim=-1)
                losses["osc_loss"] = object_spatial_contrastive_loss(
                    anchors,
                    batch_index,
                    coreference[is_object],
                    regions,
                    video_encoding.track_mask,
                    encoder.osc_logit_scale.exp().clamp(max=100),
                )

        if need_ptc:
            # PTC's order negatives: the same videos with frames reversed and shuffled. Host frame
            # embeddings are reused, so only the temporal head and the graph encoder run again.
            orders = (reversed_frame_order(video_mask), shuffled_frame_order(video_mask))
            reordered = [encoder.encode_video_graph(video_inputs.permute_frames(order)) for order in orders]
            reordered_embeds = []
            for order, encoding in zip(orders, reordered):
                host_embeds, _ = self.host_adapter.pool_frames(
                    self.backbone, gather_frames(host_video.frame_inputs, order), gather_frames(video_mask, order)
                )
                reordered_embeds.append(self._output_embeds(host_embeds, encoding))
            ptc = clip_order_contrastive_loss(text_embeds, video_embeds, torch.stack(reordered_embeds, dim=1), logit_scale)

            is_predicate = node_types == TEXT_NODE_TYPES["predicate"]
            if is_predicate.any():
                connected = (edges > 0) | (edges.transpose(1, 2) > 0)
                predicate_states = neighbourhood_mean(states, connected)
                # Subject and object tracks of each predicate: the coreference rows of its arguments.
                arguments = (edges.transpose(1, 2) == TEXT_EDGE_TYPES["subject"]) | (edges == TEXT_EDGE_TYPES["object"])
                track_weights = arguments.to(coreference.dtype) @ coreference  # [B, N, S]
                uniform = video_encoding.track_mask.unsqueeze(1).to(coreference.dtype).expand_as(track_weights)
                track_weights = torch.where(track_weights.sum(-1, keepdim=True) > 0, track_weights, uniform)
                track_weights = track_weights / track_weights.sum(-1, keepdim=True).clamp(min=1e-6)

                batch_index = is_predicate.nonzero()[:, 0]
                anchors = F.normalize(encoder.ptc_text_head(predicate_states[is_predicate]), dim=-1)
                weights = track_weights[is_predicate]  # [A, S]

                def track_summary(encoding: VideoGraphEncoding) -> torch.Tensor:
                    tracks = encoder.ptc_video_head(encoding.track_states)  # [B, S, H]
                    return F.normalize(torch.einsum("as,ash->ah", weights.to(tracks.dtype), tracks[batch_index]), dim=-1)

                track_heads = encoder.ptc_video_head(video_encoding.track_states)
                track_valid = video_encoding.track_mask.unsqueeze(-1).to(track_heads.dtype)
                summaries = F.normalize((track_heads * track_valid).sum(1) / track_valid.sum(1).clamp(min=1), dim=-1)
                ptc = ptc + predicate_temporal_contrastive_loss(
                    anchors,
                    batch_index,
                    track_summary(video_encoding),
                    torch.stack([track_summary(encoding) for encoding in reordered], dim=1),
                    summaries,
                    encoder.ptc_logit_scale.exp().clamp(max=100),
                )
            losses["ptc_loss"] = ptc
        return losses

    @staticmethod
    def _track_regions(encoding: VideoGraphEncoding) -> torch.Tensor:
        """2-hop neighbourhood region of every track, averaged over the frames where it is visible: [B, S, H]."""
        adjacency = encoding.frame_adjacency.to(encoding.node_states.dtype)
        eye = torch.eye(adjacency.shape[-1], dtype=adjacency.dtype, device=adjacency.device)
        two_hop = eye + adjacency + adjacency @ adjacency
        two_hop = two_hop / two_hop.sum(-1, keepdim=True).clamp(min=1e-6)
        regions = two_hop @ encoding.node_states  # [B, T, S, H]
        presence = encoding.node_mask.unsqueeze(-1).to(regions.dtype)
        return (regions * presence).sum(1) / presence.sum(1).clamp(min=1)


FinstaConfig.register_for_auto_class()
FinstaModel.register_for_auto_class("AutoModel")

__all__ = ["FinstaModel", "FinstaOutput", "FinstaPreTrainedModel"]
