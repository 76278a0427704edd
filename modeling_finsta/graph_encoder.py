"""FinstaGraphEncoder: every new parameter Finsta adds to a host model, in one module.

It encodes the textual scene graph (TSG) with GTrm, the dynamic scene graph (DSG, latent or
annotated) with R-GTrm interleaved with STGD-GTrm, links them into the holistic scene graph (HSG)
through cross-modal coreference edges, and projects pooled graph states into the host's joint
embedding space. It also computes the two fine-grained objectives on those encodings (OSC, and PTC's
predicate term), so the dual-encoder and the generative models share them. Node features come from the
host's own token and patch states, which the model passes in; this module never calls the backbone itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .configuration_finsta import FinstaConfig
from .graph_layers import (
    INITIAL_LOG_SIGMA,
    GraphTransformerLayer,
    RecurrentGraphTransformerLayer,
    SpatioTemporalGaussianDifferentialLayer,
    allowed_to_bias,
    box_geometry,
    frame_velocity,
    previous_frame,
    tracked_nodes,
)
from .latent_scene_graph import LatentSceneGraphBuilder, box_patch_weights, pool_by_weights
from .losses import neighbourhood_mean, object_spatial_contrastive_loss, predicate_temporal_contrastive_loss
from .scene_graphs import TEXT_EDGE_TYPES, TEXT_NODE_TYPES, TextSceneGraphBatch, VideoSceneGraphBatch

INITIAL_LOGIT_SCALE = math.log(1 / 0.07)
"""Initial log inverse temperature of the graph, OSC and PTC contrasts (CLIP's initial temperature, 0.07)."""

NUM_GEOMETRIC_RELATIONS = 6  # none/self, overlapping, left of, right of, above, below
NUM_TIME_FREQUENCIES = 4


NUM_MOTION_FEATURES = 8


def track_motion_features(boxes: torch.Tensor, node_mask: torch.Tensor, scale: float = 0.1) -> torch.Tensor:
    """[ours, part of STGD] A track's signed change over its clip: ``[B, T, S, 4] -> [B, S, 8]``.

    Mean box velocity (centre and size, in units of ``scale``); the mean relative time at which the
    track is visible and at which it moves; and two relational terms from the STGD comparison of
    relative offsets r_ij(t) with r_ij(t-1): the mean change of its distance to the other tracks
    (negative when they come closer) and the mean component of its own velocity towards them (which
    tells the mover from the landmark). All flip sign or mirror (t -> 1 - t) when the clip is
    reversed, so the pooled video graph separates a clip from its reverse by construction; what
    remains to learn is which words mean which change.
    """
    geometry = box_geometry(boxes).float()
    velocity = frame_velocity(geometry, node_mask, scale)
    tracked = tracked_nodes(node_mask)
    steps = tracked.unsqueeze(-1).float().sum(1).clamp(min=1)
    mean_velocity = velocity.sum(1) / steps  # [B, S, 4]
    tau = _relative_time(node_mask).unsqueeze(-1)  # [B, T, 1]
    visible = node_mask.float()
    mean_visible_time = (visible * tau).sum(1) / visible.sum(1).clamp(min=1)  # [B, S]
    speed = velocity[..., :2].norm(dim=-1)  # [B, T, S]
    mean_moving_time = (speed * tau).sum(1) / speed.sum(1).clamp(min=1e-6)

    slots = node_mask.shape[-1]
    others = ~torch.eye(slots, dtype=torch.bool, device=node_mask.device)
    pairs = (tracked.unsqueeze(-1) & tracked.unsqueeze(-2) & others).float()  # [B, T, i, j]
    offsets = geometry[..., None, :, :2] - geometry[..., :, None, :2]  # [B, T, i, j, 2] = c_j - c_i
    previous_offsets = previous_frame(offsets)
    previous_distance = previous_offsets.norm(dim=-1)
    distance_change = (offsets.norm(dim=-1) - previous_distance) / scale
    towards = (velocity[..., None, :2] * previous_offsets).sum(-1) / previous_distance.clamp(min=1e-6)
    pair_count = pairs.sum((1, 3)).clamp(min=1)
    mean_distance_change = (distance_change * pairs).sum((1, 3)) / pair_count
    mean_towards = (towards * pairs).sum((1, 3)) / pair_count
    relational = torch.stack([mean_visible_time - 0.5, mean_moving_time - 0.5, mean_distance_change, mean_towards], dim=-1)
    return torch.cat([mean_velocity, relational], dim=-1)


def _relative_time(node_mask: torch.Tensor) -> torch.Tensor:
    """Each frame's time in its clip, 0 at the first and 1 at the last frame with a node: ``[B, T]``."""
    present = node_mask.any(-1)
    frames = node_mask.shape[1]
    index = torch.arange(frames, device=node_mask.device, dtype=torch.float32).expand(present.shape)
    last = (present.float() * index).amax(-1, keepdim=True).clamp(min=1)
    return index / last


def frame_time_features(node_mask: torch.Tensor) -> torch.Tensor:
    """[ours] Sinusoids of each frame's relative time in its clip (0 first, 1 last valid frame): ``[B, T, 2F]``.

    Added to DSG node features, they let pooled video-graph states depend on frame order: the
    same frames in reverse carry the opposite times, which a mean over frames alone would erase.
    """
    tau = _relative_time(node_mask)
    frequencies = torch.arange(1, NUM_TIME_FREQUENCIES + 1, device=node_mask.device, dtype=torch.float32) * math.pi / 2
    angles = tau.unsqueeze(-1) * frequencies
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


def gather_frames(values: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """Reorder dim 1 (frames) of ``values [B, T, ...]`` per video with ``order [B, T]`` (frame indices)."""
    index = order.view(*order.shape, *([1] * (values.dim() - 2))).expand(*order.shape, *values.shape[2:])
    return torch.gather(values, 1, index)


@dataclass
class TextGraphEncoding:
    node_states: torch.Tensor  # [B, N, H]
    node_mask: torch.Tensor  # [B, N]
    node_types: torch.Tensor  # [B, N]
    edge_types: torch.Tensor  # [B, N, N]
    pooled_token_states: torch.Tensor  # [B, N, text_hidden] span-pooled host token states
    graph_embeds: torch.Tensor  # [B, E] L2-normalised
    has_graph: torch.Tensor  # [B] caption has at least one node


@dataclass
class VideoGraphInputs:
    """DSG nodes ready for encoding; kept so the same graph can be re-encoded with frames permuted."""

    node_features: torch.Tensor  # [B, T, S, Dv] pooled patch tokens
    boxes: torch.Tensor  # [B, T, S, 4]
    node_mask: torch.Tensor  # [B, T, S]
    relation_types: Optional[torch.Tensor]  # [B, T, S, S]

    def permute_frames(self, order: torch.Tensor) -> "VideoGraphInputs":
        """Reorder frames per video with ``order [B, T]`` (frame indices)."""
        return VideoGraphInputs(
            *(None if x is None else gather_frames(x, order) for x in (self.node_features, self.boxes, self.node_mask, self.relation_types))
        )


@dataclass
class VideoGraphEncoding:
    node_states: torch.Tensor  # [B, T, S, H]
    node_mask: torch.Tensor  # [B, T, S]
    track_states: torch.Tensor  # [B, S, H] mean over the track's frames and its last (recurrent) state
    track_mask: torch.Tensor  # [B, S]
    graph_embeds: torch.Tensor  # [B, E] L2-normalised
    boxes: torch.Tensor  # [B, T, S, 4]
    frame_adjacency: torch.Tensor  # [B, T, S, S] soft within-frame neighbourhood (for 2-hop regions)


def geometric_relations(boxes: torch.Tensor, node_mask: torch.Tensor) -> torch.Tensor:
    """[ours] Coarse spatial relation ids between the boxes of a frame: ``[..., S, 4] -> [..., S, S]``.

    0 none/self, 1 overlapping, 2 j left of i, 3 j right of i, 4 j above i, 5 j below i. They give
    both DSG sources relation edges even when an annotation carries none.
    """
    centres = (boxes[..., :2] + boxes[..., 2:]) / 2
    delta = centres.unsqueeze(-3) - centres.unsqueeze(-2)  # [..., i, j, 2] = c_j - c_i
    x1 = torch.maximum(boxes[..., :, None, 0], boxes[..., None, :, 0])
    y1 = torch.maximum(boxes[..., :, None, 1], boxes[..., None, :, 1])
    x2 = torch.minimum(boxes[..., :, None, 2], boxes[..., None, :, 2])
    y2 = torch.minimum(boxes[..., :, None, 3], boxes[..., None, :, 3])
    overlapping = (x2 > x1) & (y2 > y1)
    horizontal = delta[..., 0].abs() >= delta[..., 1].abs()
    direction = torch.where(
        horizontal,
        torch.where(delta[..., 0] < 0, 2, 3),
        torch.where(delta[..., 1] < 0, 4, 5),
    )
    relation = torch.where(overlapping, torch.ones_like(direction), direction)
    valid = node_mask.unsqueeze(-1) & node_mask.unsqueeze(-2)
    valid = valid & ~torch.eye(boxes.shape[-2], dtype=torch.bool, device=boxes.device)
    return relation * valid


@torch.no_grad()
def initialize_graph_head_weights(module: nn.Module) -> bool:
    """Initialise what transformers' default ``_init_weights`` does not know of in the graph head (the
    R-GTrm GRU gate, the contrastive temperatures, STGD's Gaussian width); True when ``module`` was one."""
    from transformers import initialization as init

    if isinstance(module, nn.GRUCell):
        bound = module.hidden_size**-0.5
        for parameter in module.parameters():
            init.uniform_(parameter, -bound, bound)
    elif isinstance(module, FinstaGraphEncoder):
        for scale in (module.graph_logit_scale, module.osc_logit_scale, module.ptc_logit_scale):
            init.constant_(scale, INITIAL_LOGIT_SCALE)
    elif isinstance(module, SpatioTemporalGaussianDifferentialLayer):
        init.constant_(module.log_sigma, INITIAL_LOG_SIGMA)
        init.ones_(module.motion_attention_scale)
    else:
        return False
    return True


class FinstaGraphEncoder(nn.Module):
    """GTrm + R-GTrm + STGD-GTrm + latent DSG builder + HSG edges + projections (see module docstring)."""

    def __init__(self, config: FinstaConfig, text_hidden_size: int, vision_hidden_size: int):
        super().__init__()
        self.config = config
        hidden = config.graph_hidden_size
        heads = config.graph_num_heads
        embed_dim = config.projection_dim

        # Node features from host states.
        self.text_node_proj = nn.Linear(text_hidden_size, hidden)
        self.text_node_type_embedding = nn.Embedding(len(TEXT_NODE_TYPES) + 1, hidden)
        self.video_node_proj = nn.Linear(vision_hidden_size, hidden)
        self.video_box_proj = nn.Linear(4, hidden)
        self.video_time_proj = nn.Linear(2 * NUM_TIME_FREQUENCIES, hidden)
        self.track_summary = nn.Linear(2 * hidden, hidden)
        if config.use_stgd:
            self.track_motion_proj = nn.Linear(NUM_MOTION_FEATURES, hidden)

        # GTrm over the TSG: per-head biases for the edge type i->j and for the reverse edge j->i.
        self.text_edge_bias = nn.Embedding(len(TEXT_EDGE_TYPES) + 1, heads)
        self.text_reverse_edge_bias = nn.Embedding(len(TEXT_EDGE_TYPES) + 1, heads)
        self.text_layers = nn.ModuleList(GraphTransformerLayer(config) for _ in range(config.text_graph_num_layers))

        # R-GTrm (+ STGD-GTrm between R-GTrm layers) over the DSG.
        self.video_relation_bias = nn.Embedding(config.num_video_relation_types + 1, heads)
        self.video_geometric_bias = nn.Embedding(NUM_GEOMETRIC_RELATIONS, heads)
        self.video_layers = nn.ModuleList(
            RecurrentGraphTransformerLayer(config) for _ in range(config.video_graph_num_layers)
        )
        num_stgd = config.video_graph_num_layers - 1 if config.use_stgd else 0
        if config.use_stgd and config.video_graph_num_layers == 1:
            num_stgd = 1  # with a single R-GTrm layer, STGD follows it
        self.stgd_layers = nn.ModuleList(SpatioTemporalGaussianDifferentialLayer(config) for _ in range(num_stgd))
        self.latent_builder = LatentSceneGraphBuilder(
            config.num_latent_slots,
            config.latent_slot_iterations,
            config.latent_slot_temperature,
            config.latent_position_weight,
        )

        # Projections into the host's joint space (graph embeddings) and the loss heads.
        self.text_output_norm = nn.LayerNorm(hidden)
        self.text_graph_projection = nn.Linear(hidden, embed_dim)
        self.video_output_norm = nn.LayerNorm(hidden)
        self.video_graph_projection = nn.Linear(hidden, embed_dim)
        self.osc_text_head = nn.Linear(hidden, hidden)
        self.osc_video_head = nn.Linear(hidden, hidden)
        self.ptc_text_head = nn.Linear(hidden, hidden)
        self.ptc_video_head = nn.Linear(hidden, hidden)
        if config.token_distillation_loss_weight > 0:
            self.token_text_head = nn.Linear(text_hidden_size, hidden)
            self.token_video_head = nn.Linear(vision_hidden_size, hidden)
        self.graph_logit_scale = nn.Parameter(torch.tensor(INITIAL_LOGIT_SCALE))
        self.osc_logit_scale = nn.Parameter(torch.tensor(INITIAL_LOGIT_SCALE))
        self.ptc_logit_scale = nn.Parameter(torch.tensor(INITIAL_LOGIT_SCALE))

    # ----------------------------------------------------------------------------------- text side
    def encode_text_graph(self, token_states: torch.Tensor, graph: TextSceneGraphBatch) -> TextGraphEncoding:
        node_types = graph.node_types
        edge_types = graph.edge_types
        token_mask = graph.node_token_mask.to(token_states.dtype)
        if token_mask.shape[-1] != token_states.shape[1]:
            raise ValueError(
                f"text_scene_graph.node_token_mask covers {token_mask.shape[-1]} tokens but input_ids has "
                f"{token_states.shape[1]}: build the scene graph with the same tokenization"
            )
        node_mask = (node_types > 0) & (token_mask.sum(-1) > 0)  # a span truncated away drops its node
        if not self.config.use_predicate_attribute_nodes:
            node_mask = node_mask & (node_types != TEXT_NODE_TYPES["predicate_attribute"])
        pooled = token_mask @ token_states / token_mask.sum(-1, keepdim=True).clamp(min=1.0)
        hidden = self.text_node_proj(pooled) + self.text_node_type_embedding(node_types * node_mask)
        hidden = hidden * node_mask.unsqueeze(-1).to(hidden.dtype)

        pairs = node_mask.unsqueeze(-1) & node_mask.unsqueeze(-2)
        edges = edge_types * pairs
        reverse = edges.transpose(1, 2)
        # The capacity control has no structure to follow: its token nodes attend to one another freely.
        allowed = pairs if not self.config.use_scene_graph_structure else (edges > 0) | (reverse > 0)
        bias = (self.text_edge_bias(edges) + self.text_reverse_edge_bias(reverse)).permute(0, 3, 1, 2)
        bias = bias + allowed_to_bias(allowed, hidden.dtype).unsqueeze(1)
        for layer in self.text_layers:
            hidden = layer(hidden, bias, node_mask)

        has_graph = node_mask.any(-1)
        pooled_graph = hidden.sum(1) / node_mask.sum(-1, keepdim=True).clamp(min=1).to(hidden.dtype)
        graph_embeds = F.normalize(self.text_graph_projection(self.text_output_norm(pooled_graph)), dim=-1)
        graph_embeds = graph_embeds * has_graph.unsqueeze(-1).to(graph_embeds.dtype)
        return TextGraphEncoding(hidden, node_mask, node_types, edges, pooled, graph_embeds, has_graph)

    @staticmethod
    def token_graph(attention_mask: torch.Tensor) -> TextSceneGraphBatch:
        """[ours, capacity control] Every real token a node of one type, no edges (``use_scene_graph_structure=False``)."""
        mask = attention_mask.bool()
        node_types = mask.long() * TEXT_NODE_TYPES["object"]
        edge_types = torch.zeros(*mask.shape, mask.shape[-1], dtype=torch.long, device=mask.device)
        return TextSceneGraphBatch(node_types, torch.diag_embed(mask.float()), edge_types)

    def grid_regions(
        self, patch_tokens: torch.Tensor, grid_size: tuple[int, int], video_mask: Optional[torch.Tensor]
    ) -> tuple[VideoGraphInputs, torch.Tensor]:
        """[ours, capacity control] A fixed grid of ``num_latent_slots`` regions per frame instead of objects: the
        same encoder over the same patch tokens, with no object, track or relation structure."""
        batch, frames = patch_tokens.shape[:2]
        slots = self.config.num_latent_slots
        rows = max(r for r in range(1, int(math.isqrt(slots)) + 1) if slots % r == 0)
        columns = slots // rows
        ys, xs = torch.arange(rows, dtype=torch.float32) / rows, torch.arange(columns, dtype=torch.float32) / columns
        y, x = torch.meshgrid(ys, xs, indexing="ij")
        tiles = torch.stack([x.flatten(), y.flatten(), x.flatten() + 1 / columns, y.flatten() + 1 / rows], dim=-1)
        boxes = tiles.to(patch_tokens.device).expand(batch, frames, slots, 4)
        node_mask = torch.ones(batch, frames, slots, dtype=torch.bool, device=patch_tokens.device)
        if video_mask is not None:
            node_mask = node_mask & video_mask.bool().unsqueeze(-1)
        weights = box_patch_weights(boxes, *grid_size) * node_mask.unsqueeze(-1)
        return VideoGraphInputs(pool_by_weights(patch_tokens, weights), boxes, node_mask, None), weights

    # ---------------------------------------------------------------------------------- video side
    def build_video_graph(
        self,
        patch_tokens: torch.Tensor,
        grid_size: tuple[int, int],
        video_mask: Optional[torch.Tensor],
        video_graph: Optional[VideoSceneGraphBatch],
    ) -> tuple[VideoGraphInputs, torch.Tensor]:
        """DSG nodes from an annotated graph (boxes RoI-pooled on the patch grid) or the latent builder.

        Returns the graph inputs and the patch weights ``[B, T, S, N]`` used to pool node features.
        With ``use_scene_graph_structure=False`` (the capacity control) it is a fixed grid of regions.
        """
        if not self.config.use_scene_graph_structure:
            return self.grid_regions(patch_tokens, grid_size, video_mask)
        if video_graph is None:
            latent = self.latent_builder(patch_tokens, grid_size, video_mask)
            weights, boxes, node_mask, relations = latent["assignment"], latent["boxes"], latent["node_mask"], None
        else:
            if video_graph.boxes.shape[:2] != patch_tokens.shape[:2]:
                raise ValueError(
                    f"video_scene_graph has {tuple(video_graph.boxes.shape[:2])} (batch, frames) but pixel_values has "
                    f"{tuple(patch_tokens.shape[:2])}: give one DSG keyframe per sampled frame"
                )
            boxes = video_graph.boxes.to(torch.float32)
            node_mask = video_graph.node_mask
            if video_mask is not None:
                node_mask = node_mask & video_mask.bool().unsqueeze(-1)
            weights = box_patch_weights(boxes, *grid_size) * node_mask.unsqueeze(-1)
            relations = video_graph.relation_types
            if relations is not None and int(relations.max()) > self.config.num_video_relation_types:
                raise ValueError(
                    f"video_scene_graph.relation_types has id {int(relations.max())} but the config allows "
                    f"num_video_relation_types={self.config.num_video_relation_types}"
                )
        features = pool_by_weights(patch_tokens, weights)
        return VideoGraphInputs(features, boxes, node_mask, relations), weights

    def encode_video_graph(self, inputs: VideoGraphInputs) -> VideoGraphEncoding:
        node_mask = inputs.node_mask
        boxes = inputs.boxes
        batch, frames, slots = node_mask.shape
        dtype = self.video_node_proj.weight.dtype
        geometry = box_geometry(boxes)
        hidden = self.video_node_proj(inputs.node_features.to(dtype)) + self.video_box_proj(geometry.to(dtype))
        hidden = hidden + self.video_time_proj(frame_time_features(node_mask).to(dtype)).unsqueeze(2)
        hidden = hidden * node_mask.unsqueeze(-1).to(dtype)

        geometric = geometric_relations(boxes, node_mask)
        bias = self.video_geometric_bias(geometric)
        if inputs.relation_types is not None:
            relations = inputs.relation_types * (node_mask.unsqueeze(-1) & node_mask.unsqueeze(-2))
            bias = bias + self.video_relation_bias(relations)
        # Within a frame every visible node may attend to every other; relation types shape the bias.
        allowed = node_mask.unsqueeze(-1) & node_mask.unsqueeze(-2)
        spatial_bias = bias.permute(0, 1, 4, 2, 3).reshape(batch * frames, -1, slots, slots)
        spatial_bias = spatial_bias + allowed_to_bias(allowed, dtype).reshape(batch * frames, 1, slots, slots)

        centres = geometry[..., :2]
        for index, layer in enumerate(self.video_layers):
            hidden = layer(hidden, spatial_bias, node_mask)
            if index < len(self.stgd_layers):
                hidden = self.stgd_layers[index](hidden, spatial_bias, node_mask, geometry)

        presence = node_mask.to(hidden.dtype)
        track_count = presence.sum(1)  # [B, S]
        mean_states = hidden.sum(1) / track_count.clamp(min=1).unsqueeze(-1)
        # The state at a track's last visible frame has seen its whole history through the recurrent
        # step: it is what carries order (a mean over frames alone is nearly order-blind).
        frame_index = torch.arange(frames, device=node_mask.device).view(1, frames, 1)
        last_frame = (node_mask * frame_index).amax(1)  # [B, S]
        last_states = torch.gather(hidden, 1, last_frame.view(batch, 1, slots, 1).expand(-1, 1, -1, hidden.shape[-1]))
        track_states = self.track_summary(torch.cat([mean_states, last_states.squeeze(1)], dim=-1))
        if self.config.use_stgd:
            track_states = track_states + self.track_motion_proj(track_motion_features(boxes, node_mask).to(dtype))
        track_mask = track_count > 0
        track_states = track_states * track_mask.unsqueeze(-1).to(track_states.dtype)
        pooled = track_states.sum(1) / track_mask.sum(-1, keepdim=True).clamp(min=1).to(hidden.dtype)
        graph_embeds = F.normalize(self.video_graph_projection(self.video_output_norm(pooled)), dim=-1)

        # Soft neighbourhood within a frame for 2-hop region pooling: Gaussian proximity of centres.
        distance = ((centres.unsqueeze(-2) - centres.unsqueeze(-3)) ** 2).sum(-1)
        adjacency = torch.exp(-distance / (2 * 0.25**2)) * allowed
        if inputs.relation_types is not None:
            adjacency = torch.maximum(adjacency, (inputs.relation_types > 0).to(adjacency.dtype) * allowed)
        return VideoGraphEncoding(hidden, node_mask, track_states, track_mask, graph_embeds, boxes, adjacency)

    # ------------------------------------------------------------------------------ holistic graph
    @staticmethod
    def track_features(inputs: VideoGraphInputs) -> torch.Tensor:
        """Each track's pooled patch feature, averaged over the frames where it is visible: ``[B, S, Dv]``."""
        presence = inputs.node_mask.unsqueeze(-1).to(inputs.node_features.dtype)
        return (inputs.node_features * presence).sum(1) / presence.sum(1).clamp(min=1)

    @staticmethod
    def track_regions(encoding: VideoGraphEncoding) -> torch.Tensor:
        """2-hop neighbourhood region of every track, averaged over the frames where it is visible: ``[B, S, H]``."""
        adjacency = encoding.frame_adjacency.to(encoding.node_states.dtype)
        eye = torch.eye(adjacency.shape[-1], dtype=adjacency.dtype, device=adjacency.device)
        two_hop = eye + adjacency + adjacency @ adjacency
        two_hop = two_hop / two_hop.sum(-1, keepdim=True).clamp(min=1e-6)
        regions = two_hop @ encoding.node_states  # [B, T, S, H]
        presence = encoding.node_mask.unsqueeze(-1).to(regions.dtype)
        return (regions * presence).sum(1) / presence.sum(1).clamp(min=1)

    # ------------------------------------------------------------------------- fine-grained contrasts
    def object_spatial_contrast(
        self, text: TextGraphEncoding, video: VideoGraphEncoding, coreference: torch.Tensor
    ) -> Optional[torch.Tensor]:
        """OSC: each TSG object (with its attributes) against the 2-hop regions of its coreferent tracks
        (``coreference [B, N, S]``); None when no object has a coreferent track."""
        object_states = neighbourhood_mean(text.node_states, text.edge_types == TEXT_EDGE_TYPES["attribute"])
        is_object = (text.node_types * text.node_mask == TEXT_NODE_TYPES["object"]) & (coreference.sum(-1) > 0)
        if not is_object.any():
            return None
        return object_spatial_contrastive_loss(
            self.osc_text_head(object_states[is_object]),
            is_object.nonzero()[:, 0],
            coreference[is_object],
            self.osc_video_head(self.track_regions(video)),
            video.track_mask,
            self.osc_logit_scale.exp().clamp(max=100),
        )

    def predicate_track_contrast(
        self,
        text: TextGraphEncoding,
        video: VideoGraphEncoding,
        reordered: Sequence[VideoGraphEncoding],
        coreference: torch.Tensor,
    ) -> Optional[torch.Tensor]:
        """PTC's predicate term: each TSG predicate (pooled with its neighbours) against its subject and
        object tracks in the clip, the same tracks in the ``reordered`` clips (frames reversed, shuffled)
        and the other videos' track summaries; None when no caption has a predicate."""
        edges = text.edge_types
        is_predicate = text.node_types * text.node_mask == TEXT_NODE_TYPES["predicate"]
        if not is_predicate.any():
            return None
        predicate_states = neighbourhood_mean(text.node_states, (edges > 0) | (edges.transpose(1, 2) > 0))
        # Subject and object tracks of each predicate: the coreference rows of its arguments.
        arguments = (edges.transpose(1, 2) == TEXT_EDGE_TYPES["subject"]) | (edges == TEXT_EDGE_TYPES["object"])
        track_weights = arguments.to(coreference.dtype) @ coreference  # [B, N, S]
        uniform = video.track_mask.unsqueeze(1).to(coreference.dtype).expand_as(track_weights)
        track_weights = torch.where(track_weights.sum(-1, keepdim=True) > 0, track_weights, uniform)
        track_weights = track_weights / track_weights.sum(-1, keepdim=True).clamp(min=1e-6)
        batch_index = is_predicate.nonzero()[:, 0]
        weights = track_weights[is_predicate]  # [A, S]

        def argument_tracks(encoding: VideoGraphEncoding) -> torch.Tensor:
            tracks = self.ptc_video_head(encoding.track_states)  # [B, S, H]
            return torch.einsum("as,ash->ah", weights.to(tracks.dtype), tracks[batch_index])

        track_heads = self.ptc_video_head(video.track_states)
        track_valid = video.track_mask.unsqueeze(-1).to(track_heads.dtype)
        summaries = (track_heads * track_valid).sum(1) / track_valid.sum(1).clamp(min=1)
        return predicate_temporal_contrastive_loss(
            self.ptc_text_head(predicate_states[is_predicate]),
            batch_index,
            argument_tracks(video),
            torch.stack([argument_tracks(encoding) for encoding in reordered], dim=1),
            summaries,
            self.ptc_logit_scale.exp().clamp(max=100),
        )

    def cross_modal_edges(
        self,
        text_joint: torch.Tensor,
        text_mask: torch.Tensor,
        track_joint: torch.Tensor,
        track_mask: torch.Tensor,
        grounding: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """HSG cross-modal coreference weights ``[B, N, S]`` between TSG nodes and the paired video's tracks.

        [ours] Cosine similarity in the host's joint space, kept for the top-k tracks and softened with
        ``cross_modal_temperature``; annotated ``grounding`` rows replace inferred ones. With
        ``use_cross_modal_edges=False`` every node links uniformly to all tracks of its video, so no
        object-level correspondence is used. Rows of padded nodes are zero. No gradient: the weights
        route the contrastive targets, they are not themselves trained.
        """
        with torch.no_grad():
            valid = text_mask.unsqueeze(-1) & track_mask.unsqueeze(1)
            if not self.config.use_cross_modal_edges:
                uniform = valid.float()
                return uniform / uniform.sum(-1, keepdim=True).clamp(min=1)
            similarity = F.normalize(text_joint.float(), dim=-1) @ F.normalize(track_joint.float(), dim=-1).transpose(1, 2)
            similarity = similarity.masked_fill(~valid, float("-inf"))
            k = min(self.config.cross_modal_top_k, similarity.shape[-1])
            threshold = similarity.topk(k, dim=-1).values[..., -1:]
            similarity = similarity.masked_fill(similarity < threshold, float("-inf"))
            weights = torch.softmax(similarity / self.config.cross_modal_temperature, dim=-1)
            weights = torch.nan_to_num(weights, nan=0.0) * valid
            if grounding is not None:
                grounding = grounding.float()[..., : weights.shape[-1]]
                if grounding.shape[-1] < weights.shape[-1]:
                    grounding = F.pad(grounding, (0, weights.shape[-1] - grounding.shape[-1]))
                grounding = grounding * valid
                row_sum = grounding.sum(-1, keepdim=True)
                weights = torch.where(row_sum > 0, grounding / row_sum.clamp(min=1e-6), weights)
            return weights
