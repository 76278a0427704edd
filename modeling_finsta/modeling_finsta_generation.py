"""FinstaForConditionalGeneration: a generative video LLM host plus Finsta's scene-graph head.

Built the way `FinstaModel` is: the host (``self.backbone``, `AutoModelForImageTextToText.from_config`)
keeps its weights, architecture and LM loss; ``self.host_adapter`` (no parameters) exposes its patch
tokens and projected visual tokens; ``self.finsta_head`` holds every new parameter (the
`FinstaGraphEncoder` and the visual-token refiner). ``base_model_prefix = "backbone"`` lets
``from_pretrained(<Video-LLaVA or Qwen2-VL folder>)`` load the host and initialise only the head.

Inference modes:

* ``fused``: the DSG (latent slots from the host's own patch tokens, or an annotated DSG) is encoded
  by R-GTrm/STGD-GTrm and spread back over the visual tokens it covers; a zero-initialised residual
  adds it to the projected tokens before they enter the LLM, through `forward` and `generate`
  (as the host's own ``mm_encoder_outputs``). A fresh head leaves generation exactly the host's.
* ``distilled``: the host alone, exactly its computation and cost.

Training (``return_loss``, default ``self.training``) runs both: the host's LM loss on its own tokens
(kept), the same on the refined tokens, a video-caption contrastive term on pooled LLM states, the
TSG-DSG graph contrast, OSC, PTC, and the transfer into the host (next-token KL). The caption's text
scene graph is encoded from the LLM's states of the caption in a text-only pass, so text never
depends on the video.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Optional, Union

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModelForImageTextToText, GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.cache_utils import Cache
from transformers.utils import ModelOutput, can_return_tuple

from .configuration_finsta_generation import FinstaGenerationConfig
from .generative_adapters import GenerativeVideoOutput, build_generative_adapter
from .finite_checks import check_finite
from .graph_encoder import (
    INITIAL_LOGIT_SCALE,
    FinstaGraphEncoder,
    TextGraphEncoding,
    VideoGraphEncoding,
    VideoGraphInputs,
    initialize_graph_head_weights,
)
from .losses import (
    clip_order_contrastive_loss,
    contrastive_loss,
    cosine_logits,
    reversed_frame_order,
    shuffled_frame_order,
)
from .scene_graphs import TextSceneGraphBatch, VideoSceneGraphBatch

GENERATIVE_LOSS_COMPONENTS = (
    "lm_loss",
    "fused_lm_loss",
    "contrastive_loss",
    "fused_contrastive_loss",
    "graph_contrastive_loss",
    "osc_loss",
    "ptc_loss",
    "distillation_loss",
)
"""Loss components of `FinstaGenerationOutput`; each is weighted by ``config.<name>_weight`` in ``loss``."""


@dataclass
class FinstaGenerationOutput(ModelOutput):
    """
    Args:
        loss: the LM loss of the inference mode, or (with `return_loss`) the weighted sum of the components.
        logits: next-token logits of the inference mode's pass `[B, L, V]`.
        past_key_values, hidden_states, attentions: the host LLM's, from the same pass.
        lm_loss, fused_lm_loss, contrastive_loss, fused_contrastive_loss, graph_contrastive_loss, osc_loss, ptc_loss,
            distillation_loss: unweighted components (None when not computed).
        visual_tokens: the host's projected visual tokens `[B, T', M, D]` (prefill steps only).
        refined_visual_tokens: the same after the graph head's residual (fused mode / training).
        text_embeds / video_embeds: pooled LLM states of the caption (text-only pass) and of the video
            tokens (host pass), when the contrastive term was computed.
        video_graph_boxes / video_graph_node_mask: the DSG used `[B, T', S, 4]` / `[B, T', S]`.
    """

    loss: Optional[torch.FloatTensor] = None
    logits: Optional[torch.FloatTensor] = None
    past_key_values: Optional[Cache] = None
    hidden_states: Optional[tuple[torch.FloatTensor, ...]] = None
    attentions: Optional[tuple[torch.FloatTensor, ...]] = None
    lm_loss: Optional[torch.FloatTensor] = None
    fused_lm_loss: Optional[torch.FloatTensor] = None
    contrastive_loss: Optional[torch.FloatTensor] = None
    fused_contrastive_loss: Optional[torch.FloatTensor] = None
    graph_contrastive_loss: Optional[torch.FloatTensor] = None
    osc_loss: Optional[torch.FloatTensor] = None
    ptc_loss: Optional[torch.FloatTensor] = None
    distillation_loss: Optional[torch.FloatTensor] = None
    visual_tokens: Optional[torch.FloatTensor] = None
    refined_visual_tokens: Optional[torch.FloatTensor] = None
    text_embeds: Optional[torch.FloatTensor] = None
    video_embeds: Optional[torch.FloatTensor] = None
    video_graph_boxes: Optional[torch.FloatTensor] = None
    video_graph_node_mask: Optional[torch.BoolTensor] = None


class ZeroInitLinear(nn.Linear):
    """A linear layer that starts at exactly zero (weight and bias), so the residual it ends starts as a no-op."""


class VisualTokenRefiner(nn.Module):
    """[ours] Spreads DSG states back over the visual tokens and maps them into the LLM's input space.

    Token m of step t gets the states of the slots (tracks) whose patches it covers: each slot's
    per-frame node state plus its whole-track summary (which carries the STGD motion features), mixed
    by the share of the token's patches assigned to the slot. A LayerNorm and a zero-initialised
    linear layer make the residual.
    """

    def __init__(self, graph_hidden_size: int, llm_hidden_size: int):
        super().__init__()
        self.norm = nn.LayerNorm(graph_hidden_size)
        self.output = ZeroInitLinear(graph_hidden_size, llm_hidden_size)

    def forward(self, token_slot_weights: torch.Tensor, slot_states: torch.Tensor) -> torch.Tensor:
        """``token_slot_weights [B, T', M, S]`` (rows sum to 1 or 0), ``slot_states [B, T', S, H]`` -> ``[B, T', M, D]``."""
        mixed = token_slot_weights.to(slot_states.dtype) @ slot_states
        return self.output(self.norm(mixed))


class FinstaGenerationHead(nn.Module):
    """Every parameter Finsta adds to a generative host: graph encoders, refiner, contrastive temperature."""

    def __init__(self, config: FinstaGenerationConfig, text_hidden_size: int, vision_hidden_size: int):
        super().__init__()
        self.graph_encoder = FinstaGraphEncoder(config, text_hidden_size, vision_hidden_size)
        self.refiner = VisualTokenRefiner(config.graph_hidden_size, text_hidden_size)
        self.contrastive_logit_scale = nn.Parameter(torch.tensor(INITIAL_LOGIT_SCALE))


@dataclass
class EncodedVideo:
    """One prefill's video side: the host's encoding, the DSG and the refined tokens (when computed)."""

    host: GenerativeVideoOutput
    graph_inputs: Optional[VideoGraphInputs] = None
    graph: Optional[VideoGraphEncoding] = None
    slot_weights: Optional[torch.Tensor] = None  # [B, T', S, M] share of each visual token in each slot
    refined_tokens: Optional[torch.Tensor] = None


class FinstaGenerationPreTrainedModel(PreTrainedModel):
    config_class = FinstaGenerationConfig
    config: FinstaGenerationConfig
    base_model_prefix = "backbone"
    main_input_name = "input_ids"
    input_modalities = ("video", "text")
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_flash_attn = False  # the graph layers need an additive attention bias
    _supports_flex_attn = False
    _skip_keys_device_placement = ["past_key_values"]
    _no_split_modules = ["GraphTransformerLayer", "RecurrentGraphTransformerLayer", "SpatioTemporalGaussianDifferentialLayer"]

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """transformers' defaults, Finsta's own parameters, and an exactly-zero refiner output."""
        if isinstance(module, ZeroInitLinear):
            init.zeros_(module.weight)
            init.zeros_(module.bias)
            return
        super()._init_weights(module)
        if not initialize_graph_head_weights(module) and isinstance(module, FinstaGenerationHead):
            init.constant_(module.contrastive_logit_scale, INITIAL_LOGIT_SCALE)


class FinstaForConditionalGeneration(FinstaGenerationPreTrainedModel, GenerationMixin):
    """Generative host + Finsta head; see the module docstring and `FinstaGenerationConfig`."""

    accepts_loss_kwargs = False

    def __init__(self, config: FinstaGenerationConfig):
        super().__init__(config)
        self.backbone = AutoModelForImageTextToText.from_config(config.backbone_config)
        self.host_adapter = build_generative_adapter(config.backbone_config)
        self.finsta_head = FinstaGenerationHead(config, self.host_adapter.text_hidden_size, self.host_adapter.vision_hidden_size)
        self.post_init()

    # ----------------------------------------------------------------------- host plumbing
    def get_input_embeddings(self) -> nn.Module:
        return self.backbone.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.backbone.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Module:
        return self.backbone.get_output_embeddings()

    def _prepare_position_ids_for_generation(self, inputs_tensor, model_kwargs):
        """The host's own (Qwen2-VL builds 3-D M-RoPE positions and keeps its rope deltas)."""
        return self.backbone._prepare_position_ids_for_generation(inputs_tensor, model_kwargs)

    def _validate_model_kwargs(self, model_kwargs: dict[str, Any]) -> None:
        """Host inputs (``mm_token_type_ids``, ``second_per_grid_ts``, ...) pass through ``forward``'s ``kwargs``
        to the host, so a new host family needs no new argument here."""
        host_arguments = set(inspect.signature(self.backbone.forward).parameters)
        super()._validate_model_kwargs({k: v for k, v in model_kwargs.items() if k not in host_arguments})

    def _expand_inputs_for_generation(self, expand_size=1, is_encoder_decoder=False, input_ids=None, **model_kwargs):
        """Beams / several return sequences: video inputs (and an annotated DSG) are repeated per video
        (Qwen's flat patches cannot be repeated row-wise), the rest as transformers does."""
        video = {name: model_kwargs.pop(name) for name in self.host_adapter.video_input_names if model_kwargs.get(name) is not None}
        graph = VideoSceneGraphBatch.from_value(model_kwargs.pop("video_scene_graph", None))
        input_ids, model_kwargs = super()._expand_inputs_for_generation(
            expand_size=expand_size, is_encoder_decoder=is_encoder_decoder, input_ids=input_ids, **model_kwargs
        )
        if expand_size > 1:
            videos = input_ids.shape[0] // expand_size
            index = torch.arange(videos, device=input_ids.device).repeat_interleave(expand_size)
            video = self.host_adapter.select_videos(video, index) if video else video
            graph = None if graph is None else graph.select(index)
        model_kwargs.update(video)
        if graph is not None:
            model_kwargs["video_scene_graph"] = graph
        return input_ids, model_kwargs

    # ------------------------------------------------------------------------------ forward
    @can_return_tuple
    def forward(
        self,
        input_ids: Optional[torch.LongTensor] = None,
        attention_mask: Optional[torch.Tensor] = None,
        position_ids: Optional[torch.LongTensor] = None,
        past_key_values: Optional[Cache] = None,
        inputs_embeds: Optional[torch.FloatTensor] = None,
        labels: Optional[torch.LongTensor] = None,
        use_cache: Optional[bool] = None,
        logits_to_keep: Union[int, torch.Tensor] = 0,
        pixel_values_videos: Optional[torch.FloatTensor] = None,
        video_grid_thw: Optional[torch.LongTensor] = None,
        video_scene_graph: Optional[Union[VideoSceneGraphBatch, dict]] = None,
        caption_input_ids: Optional[torch.LongTensor] = None,
        caption_attention_mask: Optional[torch.Tensor] = None,
        text_scene_graph: Optional[Union[TextSceneGraphBatch, dict]] = None,
        negative_caption_input_ids: Optional[torch.LongTensor] = None,
        negative_caption_attention_mask: Optional[torch.Tensor] = None,
        negative_mask: Optional[torch.Tensor] = None,
        return_loss: Optional[bool] = None,
        output_hidden_states: Optional[bool] = None,
        output_attentions: Optional[bool] = None,
        **kwargs,
    ) -> FinstaGenerationOutput:
        r"""
        Args:
            input_ids, attention_mask, position_ids, past_key_values, inputs_embeds, use_cache, logits_to_keep:
                as for the host; the prompt carries the host's expanded video placeholder tokens.
            labels: `[B, L]` targets for the LM loss (-100 outside the answer), as for the host.
            pixel_values_videos (and `video_grid_thw` for Qwen2-VL): the host's video inputs; other host
                inputs (`mm_token_type_ids`, `second_per_grid_ts`, ...) pass through `kwargs`.
            video_scene_graph: an annotated DSG per temporal step of the host (optional; latent otherwise).
            caption_input_ids, caption_attention_mask, text_scene_graph: the caption (or answer) tokenized
                alone and its TSG, for the graph objectives (text-only LLM pass).
            negative_caption_input_ids / negative_caption_attention_mask `[B, K, L]`, negative_mask `[B, K]`:
                hard-negative captions, extra candidates of the contrastive term.
            return_loss: compute Finsta's objectives (default: `self.training`); without it `loss` is the LM
                loss of the inference mode.
        """
        finsta_losses = self.training if return_loss is None else return_loss
        host_kwargs: dict[str, Any] = dict(
            attention_mask=attention_mask, position_ids=position_ids, past_key_values=past_key_values,
            use_cache=use_cache, output_attentions=output_attentions, **kwargs,
        )  # fmt: skip
        host_kwargs.pop("num_items_in_batch", None)
        video_inputs = self._video_inputs(pixel_values_videos, video_grid_thw)
        # The host still needs the video's layout (Qwen2-VL's M-RoPE positions come from video_grid_thw).
        host_kwargs.update({k: v for k, v in video_inputs.items() if k != "pixel_values_videos" and v is not None})
        if pixel_values_videos is None:  # decoding steps of `generate`, or text only: the host as it is
            out = self.backbone(
                input_ids=input_ids, inputs_embeds=inputs_embeds, labels=labels, logits_to_keep=logits_to_keep,
                output_hidden_states=output_hidden_states, **host_kwargs,
            )  # fmt: skip
            return FinstaGenerationOutput(
                loss=out.loss, logits=out.logits, past_key_values=out.past_key_values,
                hidden_states=out.hidden_states, attentions=out.attentions, lm_loss=out.loss,
            )  # fmt: skip
        if input_ids is None:
            raise ValueError("FinstaForConditionalGeneration needs input_ids (with the video placeholders) with video inputs")
        check_finite("pixel_values_videos", pixel_values_videos)
        fused_mode = self.config.inference_mode == "fused"
        text_graph = TextSceneGraphBatch.from_value(text_scene_graph)
        graph_losses = finsta_losses and self._graph_losses_active()
        encoded = self._encode_video(
            input_ids, video_inputs, VideoSceneGraphBatch.from_value(video_scene_graph), with_graph=fused_mode or finsta_losses
        )
        need_host = not fused_mode or finsta_losses
        need_fused = fused_mode or finsta_losses
        want_states = finsta_losses and caption_input_ids is not None
        want_fused_states = want_states and self.config.fused_contrastive_loss_weight > 0
        keep = 0 if finsta_losses else logits_to_keep
        host_out = fused_out = None
        if need_host:
            host_out = self._llm_pass(input_ids, encoded.host.visual_tokens, labels, keep, want_states or output_hidden_states, host_kwargs)
        if need_fused:
            fused_out = self._llm_pass(input_ids, encoded.refined_tokens, labels, keep, want_fused_states or output_hidden_states, host_kwargs)
        mode_out = fused_out if fused_mode else host_out
        losses: dict[str, Optional[torch.Tensor]] = {
            "lm_loss": None if host_out is None else host_out.loss,
            "fused_lm_loss": None if fused_out is None else fused_out.loss,
        }
        text_embeds = video_embeds = None
        if finsta_losses:
            losses["distillation_loss"] = self._distillation(host_out, fused_out, labels, encoded)
            if caption_input_ids is not None:
                text_states = self.host_adapter.text_states(self.backbone, caption_input_ids, caption_attention_mask)
                video_states = self._video_token_states(host_out.hidden_states[-1], input_ids, encoded)
                text_embeds = _masked_mean(text_states, caption_attention_mask)
                video_embeds = video_states.flatten(1, 2).mean(1)
                negatives = self._negative_caption_embeds(negative_caption_input_ids, negative_caption_attention_mask, negative_mask)
                losses["contrastive_loss"] = self._contrastive(text_embeds, video_embeds, negatives)
                if want_fused_states:
                    fused_video = self._video_token_states(fused_out.hidden_states[-1], input_ids, encoded).flatten(1, 2).mean(1)
                    losses["fused_contrastive_loss"] = self._contrastive(text_embeds, fused_video, negatives)
                if graph_losses and text_graph is not None:
                    text_encoding = self.finsta_head.graph_encoder.encode_text_graph(text_states, text_graph)
                    losses.update(self._graph_objectives(text_encoding, text_graph, encoded, video_states))
        loss = self._total_loss(losses, mode_out, finsta_losses)
        graph = encoded.graph
        return FinstaGenerationOutput(
            loss=loss,
            logits=mode_out.logits,
            past_key_values=mode_out.past_key_values,
            hidden_states=mode_out.hidden_states if output_hidden_states else None,
            attentions=mode_out.attentions,
            **{name: losses.get(name) for name in GENERATIVE_LOSS_COMPONENTS},
            visual_tokens=encoded.host.visual_tokens,
            refined_visual_tokens=encoded.refined_tokens,
            text_embeds=text_embeds,
            video_embeds=video_embeds,
            video_graph_boxes=None if graph is None else graph.boxes,
            video_graph_node_mask=None if graph is None else graph.node_mask,
        )

    # ------------------------------------------------------------------------- public API
    def get_video_features(
        self, pixel_values_videos: torch.Tensor, video_grid_thw: Optional[torch.Tensor] = None, video_scene_graph=None
    ) -> torch.Tensor:
        """The visual tokens ``[B, T', M, D]`` the LLM receives in the configured inference mode."""
        video_inputs = self._video_inputs(pixel_values_videos, video_grid_thw)
        fused = self.config.inference_mode == "fused"
        encoded = self._encode_video(None, video_inputs, VideoSceneGraphBatch.from_value(video_scene_graph), with_graph=fused)
        return encoded.refined_tokens if fused else encoded.host.visual_tokens

    @torch.no_grad()
    def score_answers(
        self,
        input_ids: torch.LongTensor,
        attention_mask: Optional[torch.Tensor],
        answer_mask: torch.Tensor,
        pixel_values_videos: torch.Tensor,
        video_grid_thw: Optional[torch.Tensor] = None,
        video_index: Optional[torch.Tensor] = None,
        video_scene_graph=None,
        **kwargs,
    ) -> torch.Tensor:
        """Summed log-likelihood ``[K]`` of the answer tokens of K sequences (multiple-choice scoring).

        ``answer_mask [K, L]`` is 1 on the tokens to score (each scored given everything before it);
        the video inputs hold V videos, encoded once, and ``video_index [K]`` (default ``arange(K)``) says
        which video each sequence shows. Host inputs such as ``mm_token_type_ids`` go in ``kwargs``.
        """
        tokens = self.get_video_features(pixel_values_videos, video_grid_thw, video_scene_graph)
        if video_index is None:
            video_index = torch.arange(input_ids.shape[0], device=input_ids.device)
        tokens = tokens[video_index]
        self.host_adapter.check_prompt(input_ids, tokens)
        if "video_grid_thw" in self.host_adapter.video_input_names:
            kwargs["video_grid_thw"] = video_grid_thw[video_index]
        out = self.backbone(
            input_ids=input_ids, attention_mask=attention_mask,
            mm_encoder_outputs={"video": self.host_adapter.host_video_features(tokens)}, **kwargs,
        )  # fmt: skip
        return answer_log_likelihood(out.logits, input_ids, answer_mask)

    # ---------------------------------------------------------------------------- internals
    def _video_inputs(self, pixel_values_videos, video_grid_thw) -> dict[str, Optional[torch.Tensor]]:
        """The video inputs the host family takes (Video-LLaVA has no ``video_grid_thw``)."""
        video_inputs = {"pixel_values_videos": pixel_values_videos, "video_grid_thw": video_grid_thw}
        return {k: v for k, v in video_inputs.items() if k in self.host_adapter.video_input_names}

    def _graph_losses_active(self) -> bool:
        config = self.config
        return (
            (config.use_osc and config.osc_loss_weight > 0)
            or (config.use_ptc and config.ptc_loss_weight > 0)
            or config.graph_contrastive_loss_weight > 0
        )

    def _encode_video(self, input_ids, video_inputs, video_graph: Optional[VideoSceneGraphBatch], *, with_graph: bool) -> EncodedVideo:
        adapter = self.host_adapter
        host = adapter.encode_video(self.backbone, video_inputs)
        steps = host.visual_tokens.shape[1]
        adapter.check_prompt(input_ids, host.visual_tokens)
        encoded = EncodedVideo(host=host)
        if not with_graph:
            return encoded
        if video_graph is not None and video_graph.boxes.shape[1] == steps * adapter.frames_per_step != steps:
            video_graph = _every_nth_frame(video_graph, adapter.frames_per_step)  # one keyframe per tubelet: its first frame
        encoder = self.finsta_head.graph_encoder
        patch_tokens = host.patch_tokens
        step_mask = torch.ones(patch_tokens.shape[:2], dtype=torch.long, device=patch_tokens.device)
        inputs, patch_weights = encoder.build_video_graph(patch_tokens, host.grid_size, step_mask, video_graph)
        graph = encoder.encode_video_graph(inputs)
        to_tokens = adapter.patch_to_token_matrix(host.grid_size, device=patch_tokens.device)  # [M, N]
        slot_weights = torch.einsum("mn,btsn->btsm", to_tokens, patch_weights.float())  # [B, T', S, M]
        slot_weights = slot_weights * graph.node_mask.unsqueeze(-1)
        token_slot = slot_weights.transpose(-1, -2)
        token_slot = token_slot / token_slot.sum(-1, keepdim=True).clamp(min=1e-6)
        slot_states = graph.node_states + graph.track_states.unsqueeze(1) * graph.node_mask.unsqueeze(-1).to(graph.node_states.dtype)
        residual = self.finsta_head.refiner(token_slot, slot_states)
        encoded.graph_inputs, encoded.graph, encoded.slot_weights = inputs, graph, slot_weights
        encoded.refined_tokens = host.visual_tokens + residual.to(host.visual_tokens.dtype)
        return encoded

    def _llm_pass(self, input_ids, visual_tokens, labels, logits_to_keep, output_hidden_states, host_kwargs):
        return self.backbone(
            input_ids=input_ids,
            mm_encoder_outputs={"video": self.host_adapter.host_video_features(visual_tokens)},
            labels=labels,
            logits_to_keep=logits_to_keep,
            output_hidden_states=output_hidden_states,
            **host_kwargs,
        )

    def _video_token_states(self, states: torch.Tensor, input_ids: torch.Tensor, encoded: EncodedVideo) -> torch.Tensor:
        """Final LLM states at the video placeholder positions, ``[B, T', M, D]`` (prompt order)."""
        batch, steps, per_step = encoded.host.visual_tokens.shape[:3]
        return states[input_ids == self.host_adapter.video_token_id].view(batch, steps, per_step, -1)

    def _negative_caption_embeds(self, negative_ids, negative_mask_tokens, negative_mask) -> Optional[tuple[torch.Tensor, torch.Tensor]]:
        """Pooled text-only LLM states of the hard-negative captions ``[B, K, D]`` and their mask ``[B, K]``."""
        if negative_ids is None:
            return None
        per_video = negative_ids.shape[:2]
        flat_mask = None if negative_mask_tokens is None else negative_mask_tokens.flatten(0, 1)
        states = self.host_adapter.text_states(self.backbone, negative_ids.flatten(0, 1), flat_mask)
        if negative_mask is None:
            negative_mask = torch.ones(per_video, dtype=torch.bool, device=negative_ids.device)
        return _masked_mean(states, flat_mask).view(*per_video, -1), negative_mask.bool()

    def _contrastive(self, text_embeds, video_embeds, negatives: Optional[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        scale = self.finsta_head.contrastive_logit_scale.exp().clamp(max=100)
        negative_embeds, negative_mask = (None, None) if negatives is None else negatives
        return contrastive_loss(text_embeds, video_embeds, scale, negative_embeds, negative_mask)

    def _distillation(self, host_out, fused_out, labels, encoded: EncodedVideo) -> Optional[torch.Tensor]:
        """Transfer into the host: next-token KL(fused || host) on the answer tokens, or a visual-token cosine."""
        config = self.config
        if config.distillation_loss_weight == 0 or encoded.refined_tokens is None:
            return None
        if config.distillation_target == "visual_tokens":
            host, refined = encoded.host.visual_tokens.float(), encoded.refined_tokens.detach().float()
            return (1 - F.cosine_similarity(host, refined, dim=-1)).mean()
        if labels is None:
            return None
        answer = labels[:, 1:] != -100
        if not answer.any():
            return None
        tau = config.distillation_temperature
        student = host_out.logits[:, :-1][answer].float() / tau
        teacher = fused_out.logits[:, :-1][answer].detach().float() / tau
        kl = F.kl_div(F.log_softmax(student, -1), F.log_softmax(teacher, -1), log_target=True, reduction="batchmean")
        return kl * tau**2

    def _graph_objectives(
        self, text: TextGraphEncoding, text_graph: TextSceneGraphBatch, encoded: EncodedVideo, video_states: torch.Tensor
    ) -> dict[str, Optional[torch.Tensor]]:
        """TSG-DSG InfoNCE, OSC and PTC, as in `FinstaModel` (graph states; cross-modal edges in the LLM's space)."""
        config, encoder, video = self.config, self.finsta_head.graph_encoder, encoded.graph
        losses: dict[str, Optional[torch.Tensor]] = {}
        has_graph = text.has_graph
        if config.graph_contrastive_loss_weight > 0 and has_graph.any():
            scale = encoder.graph_logit_scale.exp().clamp(max=100)
            if has_graph.all():  # gathered across processes, like the host's contrastive term
                losses["graph_contrastive_loss"] = contrastive_loss(text.graph_embeds, video.graph_embeds, scale)
            else:  # a subset differs in size across processes, so it stays local
                logits = cosine_logits(text.graph_embeds[has_graph], video.graph_embeds[has_graph], scale).float()
                labels = torch.arange(logits.shape[0], device=logits.device)
                losses["graph_contrastive_loss"] = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)) / 2
        need_osc = config.use_osc and config.osc_loss_weight > 0
        need_ptc = config.use_ptc and config.ptc_loss_weight > 0 and video.node_mask.shape[1] > 1
        if not (need_osc or need_ptc):
            return losses
        # Track features in the LLM's space: its states at the visual tokens each track covers.
        weights = encoded.slot_weights.to(video_states.dtype)  # [B, T', S, M]
        track_joint = torch.einsum("btsm,btmd->bsd", weights, video_states) / weights.sum((1, 3)).clamp(min=1e-6).unsqueeze(-1)
        coreference = encoder.cross_modal_edges(text.pooled_token_states, text.node_mask, track_joint, video.track_mask, text_graph.grounding)
        if need_osc:
            losses["osc_loss"] = encoder.object_spatial_contrast(text, video, coreference)
        if need_ptc:
            losses["ptc_loss"] = self._predicate_temporal_contrast(text, encoded, coreference)
        return losses

    def _predicate_temporal_contrast(self, text: TextGraphEncoding, encoded: EncodedVideo, coreference) -> torch.Tensor:
        """PTC: the clip against itself with its temporal steps reversed and shuffled, per caption (graph
        embeddings) and per predicate (its subject/object tracks). The tower outputs are reused: only the
        graph runs again (both hosts' projectors act per frame / per merge block, so reordered clips give
        the same projected tokens reordered and the LLM is not needed)."""
        encoder, video = self.finsta_head.graph_encoder, encoded.graph
        step_mask = torch.ones(video.node_mask.shape[:2], dtype=torch.long, device=video.node_mask.device)
        orders = (reversed_frame_order(step_mask), shuffled_frame_order(step_mask))
        reordered = [encoder.encode_video_graph(encoded.graph_inputs.permute_frames(order)) for order in orders]
        scale = encoder.ptc_logit_scale.exp().clamp(max=100)
        has_graph = text.has_graph
        ptc = clip_order_contrastive_loss(
            text.graph_embeds[has_graph], video.graph_embeds[has_graph],
            torch.stack([r.graph_embeds for r in reordered], dim=1)[has_graph], scale,
        )  # fmt: skip
        predicates = encoder.predicate_track_contrast(text, video, reordered, coreference)
        return ptc if predicates is None else ptc + predicates

    def _total_loss(self, losses: dict, mode_out, finsta_losses: bool) -> Optional[torch.Tensor]:
        if not finsta_losses:
            return mode_out.loss
        total = None
        for name in GENERATIVE_LOSS_COMPONENTS:
            value = losses.get(name)
            weight = getattr(self.config, f"{name}_weight")
            if value is None or weight == 0:
                continue
            total = weight * value if total is None else total + weight * value
        return total


def answer_log_likelihood(logits: torch.Tensor, input_ids: torch.Tensor, answer_mask: torch.Tensor) -> torch.Tensor:
    """Summed log-likelihood ``[K]`` of the tokens where ``answer_mask [K, L]`` is 1, each given those before it."""
    log_probs = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    token_scores = log_probs.gather(-1, input_ids[:, 1:].unsqueeze(-1)).squeeze(-1)
    return (token_scores * answer_mask[:, 1:].to(token_scores.dtype)).sum(-1)


def _masked_mean(states: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
    if mask is None:
        return states.mean(1)
    weights = mask.to(states.dtype).unsqueeze(-1)
    return (states * weights).sum(1) / weights.sum(1).clamp(min=1)


def _every_nth_frame(graph: VideoSceneGraphBatch, step: int) -> VideoSceneGraphBatch:
    """An annotated DSG per input frame -> one keyframe per temporal step (the step's first frame)."""
    return VideoSceneGraphBatch(
        boxes=graph.boxes[:, ::step],
        node_mask=graph.node_mask[:, ::step],
        relation_types=None if graph.relation_types is None else graph.relation_types[:, ::step],
    )


FinstaGenerationConfig.register_for_auto_class()
FinstaForConditionalGeneration.register_for_auto_class("AutoModelForImageTextToText")

__all__ = [
    "FinstaForConditionalGeneration",
    "FinstaGenerationOutput",
    "FinstaGenerationPreTrainedModel",
    "GENERATIVE_LOSS_COMPONENTS",
]
