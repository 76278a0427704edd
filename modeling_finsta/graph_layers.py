"""Graph Transformer layers over padded dense node tensors: GTrm, R-GTrm and STGD-GTrm.

Graphs are dense: nodes ``[B, N, H]``, an additive attention bias ``[B, heads, N, N]`` that carries
edge types and masks (``-inf`` where attention is not allowed). Every node may attend to itself, so
padded rows never produce NaN; their outputs are zeroed. Dense masked attention is faster than a
sparse graph library at scene-graph sizes (tens of nodes).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from transformers.modeling_layers import GradientCheckpointingLayer

from .attention import BiasedSelfAttention

INITIAL_LOG_SIGMA = math.log(0.1)
"""STGD's Gaussian width starts at 0.1 of the image size."""


def box_geometry(boxes: torch.Tensor) -> torch.Tensor:
    """Normalised ``(x1, y1, x2, y2)`` boxes -> ``(centre x, centre y, width, height)``."""
    return torch.cat([(boxes[..., :2] + boxes[..., 2:]) / 2, boxes[..., 2:] - boxes[..., :2]], dim=-1)


def previous_frame(values: torch.Tensor, first: str = "repeat") -> torch.Tensor:
    """``values [B, T, ...]`` shifted one frame later: frame t holds frame t-1's value.

    Frame 0 has no predecessor: it repeats itself (``"repeat"``) or gets zeros/False (``"zero"``).
    """
    head = values[:, :1] if first == "repeat" else torch.zeros_like(values[:, :1])
    return torch.cat([head, values[:, :-1]], dim=1)


def tracked_nodes(node_mask: torch.Tensor) -> torch.Tensor:
    """Nodes visible in frame t and in frame t-1 (so they have a temporal coreferent): ``[B, T, S]``."""
    return node_mask & previous_frame(node_mask, first="zero")


def frame_velocity(geometry: torch.Tensor, node_mask: torch.Tensor, scale) -> torch.Tensor:
    """Per-frame change of each tracked node's box geometry, in units of ``scale`` (0 where untracked)."""
    return (geometry - previous_frame(geometry)) / scale * tracked_nodes(node_mask).unsqueeze(-1)


def allowed_to_bias(allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Boolean ``[..., N, N]`` attention permission -> additive bias (0 allowed, -inf blocked); self always allowed."""
    eye = torch.eye(allowed.shape[-1], dtype=torch.bool, device=allowed.device)
    allowed = allowed | eye
    return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill(~allowed, float("-inf"))


class GraphFeedForward(nn.Module):
    def __init__(self, hidden_size: int, intermediate_size: int, dropout: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(hidden_size, intermediate_size)
        self.fc2 = nn.Linear(intermediate_size, hidden_size)
        self.dropout = nn.Dropout(dropout)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.fc2(F.gelu(self.fc1(hidden_states))))


class GraphTransformerBlock(nn.Module):
    """Pre-norm edge-aware attention (a bias per edge type and head) plus FFN; padded nodes are zeroed.

    [ours] Edge-aware attention in the style of Dwivedi & Bresson (2020): a node attends to its
    neighbours and itself; the edge types enter as learned per-head additive biases. A plain module:
    `GraphTransformerLayer` checkpoints it as a whole layer, and R-GTrm uses it as its spatial step
    inside its own checkpoint (no checkpoint nested in another).
    """

    def __init__(self, config):
        super().__init__()
        hidden, dropout = config.graph_hidden_size, config.graph_dropout
        self.attention_norm = nn.LayerNorm(hidden)
        self.attention = BiasedSelfAttention(config, hidden, config.graph_num_heads, dropout)
        self.feed_forward_norm = nn.LayerNorm(hidden)
        self.feed_forward = GraphFeedForward(hidden, config.graph_intermediate_size, dropout)
        self.dropout = nn.Dropout(dropout)

    def forward(self, hidden_states: torch.Tensor, attention_bias: torch.Tensor, node_mask: torch.Tensor) -> torch.Tensor:
        hidden_states = hidden_states + self.dropout(self.attention(self.attention_norm(hidden_states), attention_bias))
        hidden_states = hidden_states + self.feed_forward(self.feed_forward_norm(hidden_states))
        return hidden_states * node_mask.unsqueeze(-1).to(hidden_states.dtype)


class GraphTransformerLayer(GradientCheckpointingLayer, GraphTransformerBlock):
    """GTrm layer over the TSG: a `GraphTransformerBlock` (same parameters) checkpointed as a layer."""


class RecurrentGraphTransformerLayer(GradientCheckpointingLayer):
    """R-GTrm layer: spatial graph attention within each keyframe, then a recurrent temporal step.

    The spatial step runs on all frames at once (frames folded into the batch). The temporal step
    passes each node's state to its coreferent node in the next frame. Slot index is the track, so
    the coreference edge of node s at frame t is node s at frame t-1: attention restricted to that
    single edge reduces to taking its state, which a GRU gate merges with the spatial output. Only
    this gate runs frame by frame; it is what makes the encoder order-sensitive. A node missing in
    a frame carries its track state forward unchanged.
    """

    def __init__(self, config):
        super().__init__()
        hidden_size = config.graph_hidden_size
        self.spatial = GraphTransformerBlock(config)
        self.use_temporal_coreference = config.use_temporal_coreference_edges
        if self.use_temporal_coreference:
            self.temporal_norm = nn.LayerNorm(hidden_size)
            self.temporal_gate = nn.GRUCell(hidden_size, hidden_size)

    def forward(self, hidden_states: torch.Tensor, spatial_bias: torch.Tensor, node_mask: torch.Tensor) -> torch.Tensor:
        batch, frames, slots, hidden = hidden_states.shape
        spatial = self.spatial(
            hidden_states.reshape(batch * frames, slots, hidden), spatial_bias, node_mask.reshape(batch * frames, slots)
        ).view(batch, frames, slots, hidden)
        if not self.use_temporal_coreference:
            return spatial
        inputs = self.temporal_norm(spatial)
        state = spatial.new_zeros(batch * slots, hidden)
        outputs = []
        for frame in range(frames):
            present = node_mask[:, frame].reshape(-1, 1)
            updated = self.temporal_gate(inputs[:, frame].reshape(batch * slots, hidden), state)
            state = torch.where(present, updated, state)
            outputs.append(state.view(batch, slots, hidden))
        temporal = torch.stack(outputs, dim=1)
        return (spatial + temporal) * node_mask.unsqueeze(-1).to(spatial.dtype)


class SpatioTemporalGaussianDifferentialLayer(GradientCheckpointingLayer):
    """STGD-GTrm layer: makes the DSG encoder sensitive to change, computed for all frames at once.

    [ours, concrete form of the paper's Gaussian differential] For node i at frame t with its
    coreferent i' at t-1 and same-frame neighbours j, relative offsets r_ij(t) = c_j(t) - c_i(t) are
    compared with r_ij(t-1) through a Gaussian kernel of learnable width sigma. Their mean over j,
    times a self-motion kernel on c_i(t) - c_i(t-1), is the node's stationarity g; motion saliency
    mu = 1 - g. Differential features, temporal h_i(t) - h_i(t-1), the node's own box velocity and a
    motion-weighted spatial Laplacian sum_j w_ij (h_i - h_j), enter through a gated residual; mu of the key node biases
    attention so moving neighbours attract it.
    """

    def __init__(self, config):
        super().__init__()
        hidden_size, num_heads, dropout = config.graph_hidden_size, config.graph_num_heads, config.graph_dropout
        intermediate_size = config.graph_intermediate_size
        self.num_heads = num_heads
        self.log_sigma = nn.Parameter(torch.tensor(INITIAL_LOG_SIGMA))
        self.motion_attention_scale = nn.Parameter(torch.ones(num_heads))
        self.input_norm = nn.LayerNorm(hidden_size)
        self.attention = BiasedSelfAttention(config, hidden_size, num_heads, dropout)
        self.differential_proj = nn.Linear(2 * hidden_size, hidden_size)
        self.motion_proj = nn.Linear(4, hidden_size)
        self.gate = nn.Linear(3 * hidden_size + 1, hidden_size)
        self.feed_forward_norm = nn.LayerNorm(hidden_size)
        self.feed_forward = GraphFeedForward(hidden_size, intermediate_size, dropout)

    def motion_saliency(
        self, centres: torch.Tensor, node_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns (mu [B,T,S], pairwise relative motion [B,T,S,S], has-previous mask [B,T,S])."""
        previous_centres = previous_frame(centres)
        tracked = tracked_nodes(node_mask)
        offsets = centres.unsqueeze(-3) - centres.unsqueeze(-2)  # [B,T,S(i),S(j),2] = c_j - c_i
        previous_offsets = previous_centres.unsqueeze(-3) - previous_centres.unsqueeze(-2)
        two_sigma_sq = 2 * self.log_sigma.exp() ** 2
        pair_kernel = torch.exp(-((offsets - previous_offsets) ** 2).sum(-1) / two_sigma_sq)
        pair_valid = tracked.unsqueeze(-1) & tracked.unsqueeze(-2)
        pair_valid = pair_valid & ~torch.eye(centres.shape[2], dtype=torch.bool, device=centres.device)
        neighbour_count = pair_valid.sum(-1)
        relative_stationarity = torch.where(
            neighbour_count > 0,
            (pair_kernel * pair_valid).sum(-1) / neighbour_count.clamp(min=1),
            torch.ones_like(pair_kernel[..., 0]),
        )
        self_stationarity = torch.exp(-((centres - previous_centres) ** 2).sum(-1) / two_sigma_sq)
        stationarity = torch.where(tracked, relative_stationarity * self_stationarity, torch.ones_like(self_stationarity))
        pair_motion = (1 - pair_kernel) * pair_valid
        return 1 - stationarity, pair_motion, tracked

    def forward(
        self,
        hidden_states: torch.Tensor,
        spatial_bias: torch.Tensor,
        node_mask: torch.Tensor,
        geometry: torch.Tensor,
    ) -> torch.Tensor:
        """``geometry [B, T, S, 4]``: box centre and size per node (see `box_geometry`)."""
        batch, frames, slots, hidden = hidden_states.shape
        dtype = hidden_states.dtype
        geometry = geometry.float()
        saliency, pair_motion, tracked = self.motion_saliency(geometry[..., :2], node_mask)
        # The node's own displacement and growth since t-1, in units of sigma: its sign flips when
        # time runs backwards, which is what makes pooled states tell a clip from its reverse.
        velocity = frame_velocity(geometry, node_mask, self.log_sigma.exp())
        temporal_difference = (hidden_states - previous_frame(hidden_states)) * tracked.unsqueeze(-1).to(dtype)
        weights = pair_motion / pair_motion.sum(-1, keepdim=True).clamp(min=1e-6)
        weights = weights.to(dtype)
        # sum_j w_ij (h_i - h_j) = (sum_j w_ij) h_i - W h
        laplacian = weights.sum(-1, keepdim=True) * hidden_states - weights @ hidden_states

        normed = self.input_norm(hidden_states)
        motion_bias = saliency.to(dtype).reshape(batch * frames, 1, 1, slots) * self.motion_attention_scale.view(
            1, -1, 1, 1
        ).to(dtype)
        attended = self.attention(normed.reshape(batch * frames, slots, hidden), spatial_bias + motion_bias)
        attended = attended.view(batch, frames, slots, hidden)
        differential = torch.cat([temporal_difference, laplacian], dim=-1)
        gate = torch.sigmoid(self.gate(torch.cat([normed, differential, saliency.unsqueeze(-1).to(dtype)], dim=-1)))
        hidden_states = hidden_states + attended + gate * (self.differential_proj(differential) + self.motion_proj(velocity.to(dtype)))
        hidden_states = hidden_states + self.feed_forward(self.feed_forward_norm(hidden_states))
        return hidden_states * node_mask.unsqueeze(-1).to(dtype)
