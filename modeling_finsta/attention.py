"""Multi-head self-attention for Finsta's own layers, dispatched like the attention of transformers' models.

The graph layers and the CLIP4Clip seqTransf header both use `BiasedSelfAttention`: queries, keys
and values from one input, an additive bias ``[B, heads, N, N]`` carrying masks (``-inf``) and edge
preferences. Which kernel runs is read from the model config at every call (``config._attn_implementation``,
as in ``x_clip``), so ``from_pretrained(..., attn_implementation="eager")`` and a later
``model.set_attn_implementation("sdpa")`` reach these layers as they reach the backbone's.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: Optional[torch.Tensor],
    dropout: float = 0.0,
    scaling: Optional[float] = None,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain softmax attention over ``[B, heads, N, head_dim]``; returns ``([B, N, heads, head_dim], weights)``."""
    scaling = query.shape[-1] ** -0.5 if scaling is None else scaling
    weights = torch.matmul(query, key.transpose(-1, -2)) * scaling
    if attention_mask is not None:
        weights = weights + attention_mask
    weights = torch.softmax(weights.float(), dim=-1).to(query.dtype)
    weights = F.dropout(weights, p=dropout, training=module.training)
    return torch.matmul(weights, value).transpose(1, 2).contiguous(), weights


def attention_function(config) -> Callable:
    """The attention kernel ``config._attn_implementation`` names (eager when unset)."""
    return ALL_ATTENTION_FUNCTIONS.get_interface(getattr(config, "_attn_implementation", None), eager_attention_forward)


class BiasedSelfAttention(nn.Module):
    """Multi-head self-attention whose pattern and preferences come in as an additive bias."""

    is_causal = False

    def __init__(self, config, hidden_size: int, num_heads: int, dropout: float = 0.0):
        super().__init__()
        if hidden_size % num_heads:
            raise ValueError(f"attention width {hidden_size} is not a multiple of its {num_heads} heads")
        self.config = config
        self.num_heads = num_heads
        self.head_dim = hidden_size // num_heads
        self.dropout = dropout
        self.q_proj = nn.Linear(hidden_size, hidden_size)
        self.k_proj = nn.Linear(hidden_size, hidden_size)
        self.v_proj = nn.Linear(hidden_size, hidden_size)
        self.out_proj = nn.Linear(hidden_size, hidden_size)

    def forward(self, hidden_states: torch.Tensor, attention_bias: Optional[torch.Tensor]) -> torch.Tensor:
        batch, length, _ = hidden_states.shape
        shape = (batch, length, self.num_heads, self.head_dim)
        query = self.q_proj(hidden_states).view(shape).transpose(1, 2)
        key = self.k_proj(hidden_states).view(shape).transpose(1, 2)
        value = self.v_proj(hidden_states).view(shape).transpose(1, 2)
        bias = None if attention_bias is None else attention_bias.to(query.dtype)
        attended, _ = attention_function(self.config)(
            self,
            query,
            key,
            value,
            bias,
            dropout=self.dropout if self.training else 0.0,
            scaling=self.head_dim**-0.5,
            is_causal=False,
        )
        return self.out_proj(attended.reshape(batch, length, -1))


__all__ = ["BiasedSelfAttention", "attention_function", "eager_attention_forward"]
