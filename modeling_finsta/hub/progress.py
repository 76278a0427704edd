"""Progress messages of the converters and the publisher."""

from __future__ import annotations


def log(message: str) -> None:
    """Progress messages of the converters and the publisher (stdout, flushed)."""
    print(message, flush=True)


__all__ = ["log"]
