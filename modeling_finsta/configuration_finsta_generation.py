"""Configuration of Finsta around a generative video LLM (Video-LLaVA, Qwen2-VL, Qwen2.5-VL).

A separate config class (``model_type="finsta_generation"``) rather than more backbones in
`FinstaConfig`: the generative family has its own objectives (the host's LM loss, next-token
distillation) and its own inference path (``generate``), and a plain Video-LLaVA / Qwen2-VL
``config.json`` must become the ``backbone_config`` of a default Finsta config so that
``FinstaForConditionalGeneration.from_pretrained(<host folder>)`` loads the host and initialises only
the Finsta head. The graph fields keep `FinstaConfig`'s names, so the same `FinstaGraphEncoder` reads them.
"""

from __future__ import annotations

from typing import Any, Optional, Union

from transformers import AutoConfig, PreTrainedConfig

from .configuration_finsta import (
    build_backbone_config,
    check_fields,
    check_graph_head,
    host_config_as_backbone,
    own_arguments_into_config_dict,
    refuse_read_only_and_misspelt_keys,
)

GENERATIVE_BACKBONES = ("video_llava", "qwen2_vl", "qwen2_5_vl")
"""Host ``model_type``s with an adapter in ``generative_adapters.py``."""

GENERATIVE_INFERENCE_MODES = ("distilled", "fused")
GENERATIVE_DISTILLATION_TARGETS = ("next_token", "visual_tokens")


class FinstaGenerationConfig(PreTrainedConfig):
    r"""
    Configuration for [`FinstaForConditionalGeneration`]: a generative video LLM (the host, kept as it
    is) plus Finsta's graph head, which refines the host's projected visual tokens.

    Args:
        backbone_config (`PreTrainedConfig` or `dict`): the host's config, built with
            `AutoModelForImageTextToText.from_config`; `model_type` one of `GENERATIVE_BACKBONES`.
            Defaults to a `VideoLlavaConfig()` (Video-LLaVA-7B sizes).
        graph_hidden_size, graph_num_heads, graph_intermediate_size, text_graph_num_layers,
        video_graph_num_layers, graph_dropout, num_latent_slots, latent_slot_iterations,
        latent_slot_temperature, latent_position_weight, num_video_relation_types, cross_modal_top_k,
        cross_modal_temperature: the graph encoders, exactly as in `FinstaConfig`. The joint space of
            the graph embeddings is the LLM's width (`projection_dim`, read-only).
        inference_mode (`str`, defaults to `"fused"`): `"fused"` refines the visual tokens with the
            graph head before they enter the LLM (in `forward` and `generate`); `"distilled"` runs the
            host alone, exactly its own computation and cost.
        lm_loss_weight (`float`, 1.0): the host's own LM loss (answer tokens), on the host's own tokens.
        fused_lm_loss_weight (`float`, 1.0): the same LM loss with the refined tokens (trains the head).
        contrastive_loss_weight (`float`, 0.5): video-caption InfoNCE on pooled LLM states (the caption
            from a text-only pass, the video from its token positions in the host pass).
        fused_contrastive_loss_weight (`float`, 0.5): [ours] the same InfoNCE with the video pooled from the
            fused pass (refined tokens), so the graph-refined video tokens are trained to tell the caption from
            its hard negatives too, not only to lower the LM loss. 0 skips the fused pass's hidden states.
        graph_contrastive_loss_weight, osc_loss_weight, ptc_loss_weight (`float`, 0.5): the graph
            objectives of `FinstaModel` (TSG vs DSG InfoNCE, OSC, PTC).
        distillation_loss_weight (`float`, 1.0): transfer into the host.
        distillation_target (`str`, `"next_token"`): `"next_token"` is KL(fused || host) between the
            next-token distributions on the answer tokens (teacher detached); `"visual_tokens"` is
            1 - cosine between the host's and the refined visual tokens (refined side detached).
        distillation_temperature (`float`, 1.0): softmax temperature of the next-token KL.
        use_stgd, use_temporal_coreference_edges, use_predicate_attribute_nodes, use_cross_modal_edges,
        use_osc, use_ptc (`bool`, `True`): ablation switches, as in `FinstaConfig`.
        initializer_range (`float`, 0.02).
    """

    model_type = "finsta_generation"
    sub_configs = {"backbone_config": AutoConfig}

    def __init__(
        self,
        backbone_config: Optional[Union[PreTrainedConfig, dict[str, Any]]] = None,
        graph_hidden_size: int = 256,
        graph_num_heads: int = 4,
        graph_intermediate_size: Optional[int] = None,
        text_graph_num_layers: int = 2,
        video_graph_num_layers: int = 2,
        graph_dropout: float = 0.0,
        num_latent_slots: int = 6,
        latent_slot_iterations: int = 3,
        latent_slot_temperature: float = 0.0,
        latent_position_weight: float = 0.5,
        num_video_relation_types: int = 16,
        cross_modal_top_k: int = 2,
        cross_modal_temperature: float = 0.1,
        inference_mode: str = "fused",
        lm_loss_weight: float = 1.0,
        fused_lm_loss_weight: float = 1.0,
        contrastive_loss_weight: float = 0.5,
        fused_contrastive_loss_weight: float = 0.5,
        graph_contrastive_loss_weight: float = 0.5,
        osc_loss_weight: float = 0.5,
        ptc_loss_weight: float = 0.5,
        distillation_loss_weight: float = 1.0,
        distillation_target: str = "next_token",
        distillation_temperature: float = 1.0,
        use_stgd: bool = True,
        use_temporal_coreference_edges: bool = True,
        use_predicate_attribute_nodes: bool = True,
        use_cross_modal_edges: bool = True,
        use_osc: bool = True,
        use_ptc: bool = True,
        use_scene_graph_structure: bool = True,
        token_distillation_loss_weight: float = 0.0,
        initializer_range: float = 0.02,
        **kwargs,
    ):
        refuse_read_only_and_misspelt_keys(type(self), kwargs)
        self.backbone_config = build_backbone_config(backbone_config, "video_llava", "FinstaGenerationConfig")
        self.graph_hidden_size = graph_hidden_size
        self.graph_num_heads = graph_num_heads
        self.graph_intermediate_size = graph_intermediate_size or 4 * graph_hidden_size
        self.text_graph_num_layers = text_graph_num_layers
        self.video_graph_num_layers = video_graph_num_layers
        self.graph_dropout = graph_dropout
        self.num_latent_slots = num_latent_slots
        self.latent_slot_iterations = latent_slot_iterations
        self.latent_slot_temperature = latent_slot_temperature
        self.latent_position_weight = latent_position_weight
        self.num_video_relation_types = num_video_relation_types
        self.cross_modal_top_k = cross_modal_top_k
        self.cross_modal_temperature = cross_modal_temperature
        self.inference_mode = inference_mode
        self.lm_loss_weight = lm_loss_weight
        self.fused_lm_loss_weight = fused_lm_loss_weight
        self.contrastive_loss_weight = contrastive_loss_weight
        self.fused_contrastive_loss_weight = fused_contrastive_loss_weight
        self.graph_contrastive_loss_weight = graph_contrastive_loss_weight
        self.osc_loss_weight = osc_loss_weight
        self.ptc_loss_weight = ptc_loss_weight
        self.distillation_loss_weight = distillation_loss_weight
        self.distillation_target = distillation_target
        self.distillation_temperature = distillation_temperature
        self.use_stgd = use_stgd
        self.use_temporal_coreference_edges = use_temporal_coreference_edges
        self.use_predicate_attribute_nodes = use_predicate_attribute_nodes
        self.use_cross_modal_edges = use_cross_modal_edges
        self.use_osc = use_osc
        self.use_ptc = use_ptc
        # Graph-encoder switches shared with `FinstaConfig` (the capacity control and token-level transfer);
        # the generative model keeps them at their defaults.
        self.use_scene_graph_structure = use_scene_graph_structure
        self.token_distillation_loss_weight = token_distillation_loss_weight
        self.initializer_range = initializer_range
        kwargs.setdefault("tie_word_embeddings", False)  # the host ties its own weights (if its config says so)
        super().__init__(**kwargs)
        self._validate()

    @property
    def backbone_type(self) -> str:
        return self.backbone_config.model_type

    @property
    def text_config(self) -> PreTrainedConfig:
        """The host LLM's config."""
        return self.backbone_config.text_config

    @property
    def vision_config(self) -> PreTrainedConfig:
        return self.backbone_config.vision_config

    @property
    def projection_dim(self) -> int:
        """Joint space of the graph embeddings: the LLM's width (read-only)."""
        return self.backbone_config.text_config.hidden_size

    def get_text_config(self, *args, **kwargs) -> PreTrainedConfig:
        """The host's text config: `generate` sizes its cache and reads special tokens from it."""
        return self.backbone_config.get_text_config(*args, **kwargs)

    @classmethod
    def from_dict(cls, config_dict: dict[str, Any], **kwargs) -> "FinstaGenerationConfig":
        """As transformers' ``from_dict``, but Finsta's own keyword arguments go through ``__init__`` (validated,
        with what derives from them), as for `FinstaConfig`."""
        config_dict, kwargs = own_arguments_into_config_dict(cls, config_dict, kwargs)
        return super().from_dict(config_dict, **kwargs)

    @classmethod
    def get_config_dict(cls, pretrained_model_name_or_path, **kwargs) -> tuple[dict[str, Any], dict[str, Any]]:
        """A plain host ``config.json`` (e.g. ``LanguageBind/Video-LLaVA-7B-hf``) becomes the
        ``backbone_config`` of a default Finsta config, so ``from_pretrained(<host>)`` needs no ``config=``."""
        config_dict, kwargs = super().get_config_dict(pretrained_model_name_or_path, **kwargs)
        config_dict = host_config_as_backbone(cls, config_dict, pretrained_model_name_or_path, GENERATIVE_BACKBONES, "video-LLM")
        return config_dict, kwargs

    def _validate(self) -> None:
        def fail(field: str, expected: str) -> None:
            raise ValueError(f"FinstaGenerationConfig.{field}: expected {expected}, got {getattr(self, field)!r}")

        if self.backbone_type not in GENERATIVE_BACKBONES:
            raise ValueError(
                f"FinstaGenerationConfig.backbone_config: model_type {self.backbone_type!r} is not supported; "
                f"expected one of {GENERATIVE_BACKBONES} (add an adapter in generative_adapters.py)"
            )
        if self.inference_mode not in GENERATIVE_INFERENCE_MODES:
            fail("inference_mode", f"one of {GENERATIVE_INFERENCE_MODES}")
        if self.distillation_target not in GENERATIVE_DISTILLATION_TARGETS:
            fail("distillation_target", f"one of {GENERATIVE_DISTILLATION_TARGETS}")
        check_graph_head(self)
        check_fields(self, "non-negative number", ("lm_loss_weight", "fused_lm_loss_weight", "contrastive_loss_weight", "fused_contrastive_loss_weight"))
        check_fields(self, "positive number", ("distillation_temperature",))


__all__ = ["FinstaGenerationConfig", "GENERATIVE_BACKBONES"]
