"""Configuration of Finsta models: a backbone sub-config plus the graph head, losses and ablation switches."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator, Optional, Union

from transformers import AutoConfig, PreTrainedConfig
from transformers.models.auto.configuration_auto import CONFIG_MAPPING

SUPPORTED_BACKBONES = ("clip", "xclip", "siglip", "siglip2", "videoprism")
FRAME_WISE_BACKBONES = ("clip", "siglip", "siglip2")
"""Hosts whose image tower runs frame by frame, so a CLIP4Clip temporal head (meanP / seqTransf) pools the frames."""
TEMPORAL_HEADS = ("meanP", "seqTransf")
INFERENCE_MODES = ("distilled", "fused")
DISTILLATION_TARGETS = ("similarity", "embedding", "fused_embedding", "cross_modal", "hard_negatives")

# Each switch removes one component the paper ablates (Finsta, TPAMI 2024, ablation study).
ABLATION_SWITCHES = (
    "use_stgd",
    "use_temporal_coreference_edges",
    "use_predicate_attribute_nodes",
    "use_cross_modal_edges",
    "use_osc",
    "use_ptc",
)


class FinstaConfig(PreTrainedConfig):
    r"""
    Configuration for [`FinstaModel`]: a host video-language backbone wrapped with Finsta's graph
    Transformer head (GTrm, R-GTrm, STGD-GTrm) and fine-grained alignment losses.

    Args:
        backbone_config (`PreTrainedConfig` or `dict`, *optional*):
            Config of the host model, built with `AutoModel.from_config`. Supported `model_type`s:
            `"clip"` (CLIP4Clip: per-frame CLIP vision plus a temporal head), `"xclip"`, `"siglip"` /
            `"siglip2"` (SigLIP image tower per frame plus the same temporal head; SigLIP2 in its NaFlex
            form) and `"videoprism"` (`VideoPrismClipModel`, a video tower over a fixed frame count).
            Defaults to a `CLIPConfig()` (ViT-B/32 sizes).
        temporal_head (`str`, *optional*, defaults to `"meanP"`):
            CLIP4Clip similarity header: `"meanP"` (mean of frame embeddings) or `"seqTransf"`
            (a Transformer over frame embeddings with frame position embeddings). Used by the frame-wise
            hosts (CLIP, SigLIP, SigLIP2); ignored for X-CLIP and VideoPrism, which pool time themselves.
        temporal_num_layers (`int`, defaults to 4): layers of the seqTransf header.
        num_frame_positions (`int`, defaults to 128): size of the seqTransf frame position table.
        graph_hidden_size, graph_num_heads, graph_intermediate_size: width of the graph encoders.
        text_graph_num_layers (`int`, defaults to 2): GTrm layers over the textual scene graph.
        video_graph_num_layers (`int`, defaults to 2): R-GTrm layers over the dynamic scene graph;
            an STGD-GTrm layer follows each R-GTrm layer but the last when `use_stgd`.
        graph_dropout (`float`, defaults to 0.0).
        num_latent_slots (`int`, defaults to 6): object slots per frame of the latent DSG.
        latent_slot_iterations (`int`, defaults to 3): clustering iterations per frame.
        latent_slot_temperature (`float`, defaults to 0.0): softness of the patch-to-slot assignment; 0 gives
            hard (Lloyd) k-means, whose slots do not amplify tiny numerical differences (checkpoints saved
            with a positive value keep soft k-means).
        latent_position_weight (`float`, defaults to 0.5): weight of patch coordinates in the
            clustering features; keeps slots spatially compact so they land on objects.
        num_video_relation_types (`int`, defaults to 16): relation ids a DSG may carry (0 = none).
        cross_modal_top_k (`int`, defaults to 2): DSG tracks each TSG object links to in the HSG.
        cross_modal_temperature (`float`, defaults to 0.1): softness of the cross-modal edge weights.
        fusion_weight (`float`, defaults to 1.0): weight of the graph embedding in fused inference.
        inference_mode (`str`, defaults to `"fused"`): `"distilled"` returns the host's own
            embeddings (host cost, no scene graph); `"fused"` adds the graph encoders' embeddings.
        contrastive_loss_weight, fused_contrastive_loss_weight, graph_contrastive_loss_weight, osc_loss_weight,
        ptc_loss_weight, distillation_loss_weight (`float`): weights of the loss components.
            `contrastive_loss` is the host's own objective on the host's own embeddings, kept as it is so
            that the distilled host stays a working retrieval model; `fused_contrastive_loss` trains the
            fused embeddings (only when `inference_mode="fused"`).
        use_stgd, use_temporal_coreference_edges, use_predicate_attribute_nodes,
        use_cross_modal_edges, use_osc, use_ptc (`bool`, default `True`): ablation switches, one per
            component ablated in the paper. PTC contrasts each clip with itself with frames reversed and
            shuffled twice: per predicate (its subject/object tracks) and, [ours], per caption on the
            embedding retrieval ranks by, so that order reaches the fused embedding.
        distillation_target (`str`, defaults to `"similarity"`): what the host is distilled towards [ours].
            `"similarity"`: the fused model's retrieval distributions over the batch (KL); `"embedding"`:
            the graph embeddings themselves (1 - cosine); `"fused_embedding"`: the fused embeddings
            (1 - cosine, teacher detached), so the host learns to produce what host + graph produce;
            `"cross_modal"`: each host tower is contrasted (InfoNCE with the hard negatives) against the other
            modality's detached fused embeddings, so it learns to match a graph-aware partner;
            `"hard_negatives"`: `"similarity"` plus the fused model's choice among each video's own caption and
            its hard negatives (KL). See `losses.py`.
        token_distillation_loss_weight (`float`, defaults to 0.0): [ours] token-level transfer: the host's text
            token states of each TSG node and its patch tokens of each DSG node are pulled (through a linear head
            each) towards the graph encoder's node states (teacher detached). 0 disables it and its heads.
        graph_head_detaches_host (`bool`, defaults to `False`): [ours] the graph head reads the host's token and
            patch features (and the fused embedding its host embedding) through a stop-gradient, so the graph
            objectives train the head only (and the shared temperature) and the host's weights learn from its own
            objective and the distillation alone.
        use_scene_graph_structure (`bool`, defaults to `True`): [ours, capacity control, not a paper ablation]
            `False` keeps every encoder and loss but gives them no structure: the text graph is every token
            (fully connected, no edge types) and the video graph a fixed grid of `num_latent_slots` regions per
            frame, so a comparison shows what the scene graphs' structure adds beyond the extra capacity.
        initializer_range (`float`, defaults to 0.02).
    """

    model_type = "finsta"
    sub_configs = {"backbone_config": AutoConfig}

    def __init__(
        self,
        backbone_config: Optional[Union[PreTrainedConfig, dict[str, Any]]] = None,
        temporal_head: str = "meanP",
        temporal_num_layers: int = 4,
        num_frame_positions: int = 128,
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
        fusion_weight: float = 1.0,
        inference_mode: str = "fused",
        contrastive_loss_weight: float = 1.0,
        fused_contrastive_loss_weight: float = 1.0,
        graph_contrastive_loss_weight: float = 1.0,
        osc_loss_weight: float = 0.5,
        ptc_loss_weight: float = 0.5,
        distillation_loss_weight: float = 1.0,
        distillation_target: str = "similarity",
        token_distillation_loss_weight: float = 0.0,
        graph_head_detaches_host: bool = False,
        use_scene_graph_structure: bool = True,
        use_stgd: bool = True,
        use_temporal_coreference_edges: bool = True,
        use_predicate_attribute_nodes: bool = True,
        use_cross_modal_edges: bool = True,
        use_osc: bool = True,
        use_ptc: bool = True,
        initializer_range: float = 0.02,
        **kwargs,
    ):
        refuse_read_only_and_misspelt_keys(type(self), kwargs)
        self.backbone_config = build_backbone_config(backbone_config, "clip", "FinstaConfig")
        self.temporal_head = temporal_head
        self.temporal_num_layers = temporal_num_layers
        self.num_frame_positions = num_frame_positions
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
        self.fusion_weight = fusion_weight
        self.inference_mode = inference_mode
        self.contrastive_loss_weight = contrastive_loss_weight
        self.fused_contrastive_loss_weight = fused_contrastive_loss_weight
        self.graph_contrastive_loss_weight = graph_contrastive_loss_weight
        self.osc_loss_weight = osc_loss_weight
        self.ptc_loss_weight = ptc_loss_weight
        self.distillation_loss_weight = distillation_loss_weight
        self.distillation_target = distillation_target
        self.token_distillation_loss_weight = token_distillation_loss_weight
        self.graph_head_detaches_host = graph_head_detaches_host
        self.use_scene_graph_structure = use_scene_graph_structure
        self.use_stgd = use_stgd
        self.use_temporal_coreference_edges = use_temporal_coreference_edges
        self.use_predicate_attribute_nodes = use_predicate_attribute_nodes
        self.use_cross_modal_edges = use_cross_modal_edges
        self.use_osc = use_osc
        self.use_ptc = use_ptc
        self.initializer_range = initializer_range
        super().__init__(**kwargs)
        self._validate()

    @property
    def backbone_type(self) -> str:
        """The host's ``model_type`` (read-only: it follows ``backbone_config``)."""
        return self.backbone_config.model_type

    @property
    def projection_dim(self) -> int:
        """Size of the host's joint text-video embedding space (read-only: it follows ``backbone_config``).

        CLIP / X-CLIP: ``projection_dim``. SigLIP / SigLIP2: the vision width, which the text head
        (``text_config.projection_size``) maps onto. VideoPrism: the (shared) tower width.
        """
        return joint_embedding_size(self.backbone_config)

    @property
    def text_config(self) -> PreTrainedConfig:
        """The host's text-tower config (read-only view of ``backbone_config.text_config``)."""
        return self.backbone_config.text_config

    @property
    def vision_config(self) -> PreTrainedConfig:
        """The host's vision-tower config (read-only view of ``backbone_config.vision_config``)."""
        return self.backbone_config.vision_config

    def get_text_config(self, *args, **kwargs) -> PreTrainedConfig:
        """The host's text config (the tokenizer, special tokens and embeddings all belong to the host)."""
        return self.backbone_config.get_text_config(*args, **kwargs)

    @classmethod
    def from_dict(cls, config_dict: dict[str, Any], **kwargs) -> "FinstaConfig":
        """As transformers' ``from_dict``, but Finsta's own arguments given as keyword arguments (e.g.
        ``FinstaModel.from_pretrained(folder, temporal_head="seqTransf")``) go through ``__init__``, so they
        are validated and what derives from them (``graph_intermediate_size``) follows."""
        config_dict, kwargs = own_arguments_into_config_dict(cls, config_dict, kwargs)
        return super().from_dict(config_dict, **kwargs)

    @classmethod
    def get_config_dict(cls, pretrained_model_name_or_path, **kwargs) -> tuple[dict[str, Any], dict[str, Any]]:
        """A plain host checkpoint's config (e.g. ``openai/clip-vit-base-patch32``) becomes the
        ``backbone_config`` of a default Finsta config, so ``FinstaModel.from_pretrained(<clip folder>)``
        works without ``config=``: the backbone loads its weights and only the Finsta head is initialised."""
        config_dict, kwargs = super().get_config_dict(pretrained_model_name_or_path, **kwargs)
        config_dict = host_config_as_backbone(cls, config_dict, pretrained_model_name_or_path, SUPPORTED_BACKBONES, "CLIP / X-CLIP")
        return config_dict, kwargs

    def _validate(self) -> None:
        def fail(field: str, expected: str) -> None:
            raise ValueError(f"FinstaConfig.{field}: expected {expected}, got {getattr(self, field)!r}")

        if self.backbone_type not in SUPPORTED_BACKBONES:
            raise ValueError(
                f"FinstaConfig.backbone_config: model_type {self.backbone_type!r} is not supported; "
                f"expected one of {SUPPORTED_BACKBONES} (add a backbone adapter in backbone_adapters.py)"
            )
        if self.temporal_head not in TEMPORAL_HEADS:
            fail("temporal_head", f"one of {TEMPORAL_HEADS}")
        if self.inference_mode not in INFERENCE_MODES:
            fail("inference_mode", f"one of {INFERENCE_MODES}")
        if self.distillation_target not in DISTILLATION_TARGETS:
            fail("distillation_target", f"one of {DISTILLATION_TARGETS}")
        check_fields(self, "positive integer", ("temporal_num_layers", "num_frame_positions"))
        check_graph_head(self)
        check_fields(self, "non-negative number", ("fusion_weight", "contrastive_loss_weight", "fused_contrastive_loss_weight"))
        _validate_joint_space(self.backbone_config)
        if self.temporal_head == "seqTransf" and self.backbone_type in FRAME_WISE_BACKBONES and self.projection_dim % 64:
            raise ValueError(
                "FinstaConfig.temporal_head='seqTransf' needs backbone_config.projection_dim to be a multiple of 64 "
                f"(heads = width // 64, as in CLIP4Clip), got {self.projection_dim}"
            )


def joint_embedding_size(backbone_config: PreTrainedConfig) -> int:
    """Width of the space a host's text and video embeddings share (see ``FinstaConfig.projection_dim``)."""
    model_type = backbone_config.model_type
    if model_type in ("siglip", "siglip2", "videoprism"):
        return backbone_config.vision_config.hidden_size
    return backbone_config.projection_dim


def _validate_joint_space(backbone_config: PreTrainedConfig) -> None:
    """Hosts without projection layers must have text and video towers that meet in one width."""
    model_type = backbone_config.model_type
    vision_width = backbone_config.vision_config.hidden_size
    if model_type in ("siglip", "siglip2"):
        text_width = backbone_config.text_config.projection_size
        if text_width != vision_width:
            raise ValueError(
                f"FinstaConfig.backbone_config: {model_type} text_config.projection_size ({text_width}) must equal "
                f"vision_config.hidden_size ({vision_width}), the joint embedding space of SigLIP"
            )
    elif model_type == "videoprism":
        text_width = backbone_config.text_config.hidden_size
        if text_width != vision_width:
            raise ValueError(
                f"FinstaConfig.backbone_config: videoprism text_config.hidden_size ({text_width}) must equal "
                f"vision_config.hidden_size ({vision_width}); VideoPrism has no projection layers"
            )
        tubelet = list(backbone_config.vision_config.tubelet_size)
        if tubelet[0] != 1:
            raise ValueError(
                f"FinstaConfig.backbone_config: videoprism vision_config.tubelet_size {tubelet} has a temporal extent; "
                "Finsta needs per-frame patches (tubelet_size [1, p, p], as in VideoPrism's factorised encoder)"
            )


READ_ONLY_FIELDS = ("projection_dim", "backbone_type", "text_config", "vision_config")

GRAPH_INTEGER_FIELDS = (
    "graph_hidden_size", "graph_num_heads", "graph_intermediate_size", "text_graph_num_layers",
    "video_graph_num_layers", "num_latent_slots", "latent_slot_iterations", "num_video_relation_types",
    "cross_modal_top_k",
)  # fmt: skip
"""Graph-encoder fields every Finsta config has (this one and the generative one) that are positive integers."""

GRAPH_NON_NEGATIVE_FIELDS = (
    "latent_slot_temperature", "graph_dropout", "latent_position_weight", "graph_contrastive_loss_weight",
    "osc_loss_weight", "ptc_loss_weight", "distillation_loss_weight", "token_distillation_loss_weight",
)  # fmt: skip
"""Graph-encoder fields and shared loss weights that are non-negative numbers."""

_KINDS = {
    "positive integer": lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1,
    "positive number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0,
    "non-negative number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0,
    "bool": lambda v: isinstance(v, bool),
}


def check_fields(config: PreTrainedConfig, kind: str, fields) -> None:
    """Raise a ValueError naming the config class, the field, what was expected and what it got."""
    for field in fields:
        value = getattr(config, field)
        if not _KINDS[kind](value):
            raise ValueError(f"{type(config).__name__}.{field}: expected a {kind}, got {value!r}")
    if "graph_dropout" in fields and config.graph_dropout >= 1:
        raise ValueError(f"{type(config).__name__}.graph_dropout: expected a number in [0, 1), got {config.graph_dropout!r}")


def check_graph_head(config: PreTrainedConfig) -> None:
    """The graph-encoder fields shared by every Finsta config."""
    check_fields(config, "positive integer", GRAPH_INTEGER_FIELDS)
    if config.graph_hidden_size % config.graph_num_heads:
        raise ValueError(
            f"{type(config).__name__}.graph_hidden_size: expected a multiple of graph_num_heads={config.graph_num_heads}, "
            f"got {config.graph_hidden_size}"
        )
    check_fields(config, "positive number", ("cross_modal_temperature",))
    check_fields(config, "non-negative number", GRAPH_NON_NEGATIVE_FIELDS)
    check_fields(config, "bool", (*ABLATION_SWITCHES, "use_scene_graph_structure"))


def refuse_read_only_and_misspelt_keys(config_class: type, kwargs: dict[str, Any]) -> None:
    """Clear errors for derived fields and for near-misses of a Finsta config's own arguments.

    Other extra keys pass through to `PreTrainedConfig` as transformers configs do (``bos_token_id``,
    ``tie_word_embeddings``, keys written by other versions, ...).
    """
    import difflib
    import inspect

    name = config_class.__name__
    for key in kwargs:
        if key in READ_ONLY_FIELDS:
            raise ValueError(
                f"{name}.{key} is read-only: it is derived from backbone_config "
                f"(set backbone_config.{'model_type' if key == 'backbone_type' else key} instead)"
            )
    own = [field for field in inspect.signature(config_class.__init__).parameters if field not in ("self", "kwargs")]
    base = set(PreTrainedConfig().to_dict()) | {"name_or_path", "attn_implementation", "torch_dtype"}
    for key in kwargs:
        if key in base or key.startswith("_"):
            continue
        close = difflib.get_close_matches(key, own, n=1, cutoff=0.85)
        if close:
            raise ValueError(f"{name} got an unknown argument {key!r}; did you mean {close[0]!r}?")


def build_backbone_config(
    value: Optional[Union[PreTrainedConfig, dict[str, Any]]], default_model_type: str, owner: str
) -> PreTrainedConfig:
    """Accept a config object or its dict (as stored in config.json) and return a config object."""
    if value is None:
        return CONFIG_MAPPING[default_model_type]()
    if isinstance(value, PreTrainedConfig):
        return value
    if isinstance(value, dict):
        data = dict(value)
        model_type = data.pop("model_type", None)
        if model_type is None:
            raise ValueError(f"{owner}.backbone_config: the dict needs a 'model_type' (e.g. {default_model_type!r})")
        if model_type not in CONFIG_MAPPING:
            raise ValueError(f"{owner}.backbone_config: unknown model_type {model_type!r}")
        return CONFIG_MAPPING[model_type](**data)
    raise TypeError(f"{owner}.backbone_config: expected a PreTrainedConfig, a dict or None, got {type(value).__name__}")


def own_arguments_into_config_dict(cls, config_dict: dict[str, Any], kwargs: dict[str, Any]) -> tuple[dict, dict]:
    """``(config_dict, kwargs)`` for ``PreTrainedConfig.from_dict`` with the config's own ``__init__`` arguments
    moved from ``kwargs`` into ``config_dict``: ``from_dict`` would set them as plain attributes after
    ``__init__``, unvalidated and without what derives from them (``graph_intermediate_size``)."""
    import inspect

    own = set(inspect.signature(cls.__init__).parameters) - {"self", "kwargs", "backbone_config"}
    config_dict, kwargs = dict(config_dict), dict(kwargs)
    for key in [k for k in kwargs if k in own]:
        config_dict[key] = kwargs.pop(key)
        if key == "graph_hidden_size" and "graph_intermediate_size" not in kwargs:
            config_dict.pop("graph_intermediate_size", None)
    return config_dict, kwargs


def host_config_as_backbone(config_class: type, config_dict: dict[str, Any], source, supported, wraps: str) -> dict[str, Any]:
    """``get_config_dict`` for a Finsta config: a plain host's config.json becomes the ``backbone_config``
    of a default Finsta config; a missing one or an unsupported host is a clear error."""
    if not config_dict:  # transformers returns {} (a default config) when the file is missing
        raise FileNotFoundError(
            f"{source}: no config.json found; a {config_class.__name__} folder (or a plain {wraps} checkpoint) "
            "needs its config.json next to the weights (save_pretrained writes both)"
        )
    model_type = config_dict.get("model_type")
    if model_type is not None and model_type != config_class.model_type:
        if model_type not in supported:
            raise ValueError(
                f"{source}: config.json has model_type {model_type!r}; {config_class.__name__} wraps one of "
                f"{tuple(supported)} (or loads a saved {config_class.model_type!r} folder)"
            )
        config_dict = {"model_type": config_class.model_type, "backbone_config": config_dict}
    return config_dict


@contextmanager
def inference_mode_as(model, mode: Optional[str]) -> Iterator[Any]:
    """``model.config.inference_mode = mode`` for the block, restored afterwards (also on error). ``None``,
    or a model whose config has no ``inference_mode`` (a plain host), leaves the model as it is."""
    config = getattr(model, "config", None)
    if mode is None or not hasattr(config, "inference_mode"):
        yield model
        return
    previous = config.inference_mode
    config.inference_mode = mode
    try:
        yield model
    finally:
        config.inference_mode = previous


__all__ = ["FRAME_WISE_BACKBONES", "SUPPORTED_BACKBONES", "FinstaConfig", "inference_mode_as", "joint_embedding_size"]
