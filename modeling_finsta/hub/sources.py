"""What a source checkpoint brings besides its weights: its tokenizer and its image statistics,
turned into a ``FinstaProcessor``.

Shared by the converters (``hub/converters.py``) and by training from a transformers backbone, so
that both build the processor of a folder the same way.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Optional

from .progress import log


def load_tokenizer(source: Optional[str], local_files_only: bool = False, required: bool = False):
    """``AutoTokenizer.from_pretrained(source)``, or None when ``source`` is None or has no tokenizer.

    With ``required`` a source without a loadable tokenizer raises ``FileNotFoundError`` instead.
    """
    if source is None:
        return None
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(source, local_files_only=local_files_only)
    except (OSError, ValueError) as error:
        if required:
            raise FileNotFoundError(f"could not load a tokenizer from {source!r}: {error}") from error
        log(f"  no tokenizer found in {source!r} ({type(error).__name__}); the folder will have none")
        return None


def image_processor_settings(source: Optional[str], local_files_only: bool = False) -> Optional[SimpleNamespace]:
    """The source's ``preprocessor_config.json`` as attributes (read as JSON: no torchvision needed).

    None when ``source`` is None, has no such file, or the file states no ``image_mean``/``image_std``.
    Integer ``size``/``crop_size`` are expanded to the dict forms image processors use.
    """
    if source is None:
        return None
    from transformers.utils import cached_file

    try:
        path = cached_file(
            source, "preprocessor_config.json", local_files_only=local_files_only,
            _raise_exceptions_for_missing_entries=False, _raise_exceptions_for_connection_errors=False,
        )  # fmt: skip
    except OSError:
        path = None
    if path is None:
        return None
    settings = json.loads(Path(path).read_text(encoding="utf-8"))
    size, crop = settings.get("size"), settings.get("crop_size")
    if isinstance(size, int):
        settings["size"] = {"shortest_edge": size}
    if isinstance(crop, int):
        settings["crop_size"] = {"height": crop, "width": crop}
    if "image_mean" not in settings or "image_std" not in settings:
        return None
    return SimpleNamespace(**settings)


def processor_from_source(
    source: Optional[str],
    backbone_type: str,
    *,
    image_size: int,
    tokenizer: Any = None,
    local_files_only: bool = False,
    **processor_kwargs: Any,
):
    """A ``FinstaProcessor`` over the source's tokenizer and image statistics; None without a tokenizer.

    ``tokenizer`` defaults to ``AutoTokenizer.from_pretrained(source)`` (None when the source has
    none). The video preprocessing comes from the source's ``preprocessor_config.json`` when it
    states its statistics, else from the backbone family's preset (``preprocessor_for_backbone``)
    at ``image_size``. ``source`` may be None (e.g. an original CLIP4Clip checkpoint file, which
    carries neither): then only ``tokenizer`` and the preset are used. ``processor_kwargs`` go to
    ``FinstaProcessor`` (``num_frames``, ``frame_sampling``, ``max_length``, ``parser_backend``,
    ``num_video_relation_types``, ...).
    """
    if tokenizer is None:
        tokenizer = load_tokenizer(source, local_files_only)
    if tokenizer is None:
        return None
    try:
        from ..processing_finsta import FinstaProcessor
        from ..video_io import VideoPreprocessor, preprocessor_for_backbone
    except ImportError as error:  # processor module not available: the tokenizer alone is saved
        log(f"  FinstaProcessor unavailable ({error}); saving the tokenizer only")
        return None
    image_settings = image_processor_settings(source, local_files_only)
    video_preprocessing = preprocessor_for_backbone(backbone_type, size=image_size, crop_size=image_size).to_dict()
    if image_settings is not None:
        try:
            video_preprocessing = VideoPreprocessor.from_image_processor(image_settings).to_dict()
        except ValueError:
            # Not a shortest-edge processor (SigLIP resizes to height x width, SigLIP2 NaFlex to a patch
            # budget): keep the family's preset at image_size with the source's own statistics.
            video_preprocessing.update(
                image_mean=list(image_settings.image_mean), image_std=list(image_settings.image_std),
                do_normalize=bool(getattr(image_settings, "do_normalize", True)),
            )  # fmt: skip
            log(f"  {source}: preprocessing resizes to {image_size} (shortest edge) and centre-crops, with its statistics")
    return FinstaProcessor(
        tokenizer=tokenizer, video_preprocessing=video_preprocessing, backbone_type=backbone_type, **processor_kwargs
    )


__all__ = ["image_processor_settings", "load_tokenizer", "processor_from_source"]
