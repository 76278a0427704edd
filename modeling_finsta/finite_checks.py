"""NaN / Inf checks on inputs and losses: a clear error naming what and where, never a silent NaN."""

from __future__ import annotations

from typing import Optional

import torch


class NonFiniteValueError(ValueError):
    """An input or the loss holds NaN or Inf (raised instead of computing or training on it)."""


def check_finite(name: str, value: Optional[torch.Tensor]) -> None:
    """Raise `NonFiniteValueError` naming ``name`` and the batch items when ``value`` holds NaN or Inf."""
    if value is None or not value.is_floating_point():
        return
    finite = torch.isfinite(value)
    if bool(finite.all()):
        return
    bad = (~finite).flatten(1).any(-1).nonzero().flatten().tolist() if value.dim() > 1 else []
    raise NonFiniteValueError(
        f"{name} contains NaN or Inf values (batch items {bad[:10]}); check the decoded frames and the preprocessing"
        if bad
        else f"{name} contains NaN or Inf values"
    )


__all__ = ["NonFiniteValueError", "check_finite"]
