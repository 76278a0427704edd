"""Where a published folder came from: the converter's version and the source file's hash."""

from __future__ import annotations

import hashlib
import os
from typing import Union

CONVERTER_NAME = "finsta-transformers"


def converter_version() -> str:
    """``finsta-transformers <version>``, recorded in every model card's provenance section."""
    try:
        from importlib.metadata import version

        return f"{CONVERTER_NAME} {version(CONVERTER_NAME)}"
    except Exception:  # running from a source tree that is not installed
        return f"{CONVERTER_NAME} (uninstalled source tree)"


def file_sha256(path: Union[str, os.PathLike]) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks (the source checkpoint's hash in the card)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


__all__ = ["CONVERTER_NAME", "converter_version", "file_sha256"]
