"""Evaluation settings, batching and the separate text / video encoders of ``modeling_finsta.evaluation``.

Text and video are encoded *separately*, as an index-based retrieval system must (see the package
docstring): a caption's embedding never sees a video (text scene graphs lose their video
``grounding`` before encoding) and a video's embedding never sees a caption.

Inputs are the per-example tensor dicts that ``FinstaProcessor`` produces (see
``modeling_finsta.training.encode_examples``) or raw captions/videos that are processed here chunk
by chunk, so a large test set is never decoded into memory at once.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Any, Iterable, Iterator, Mapping, Optional, Sequence

import torch

from ..configuration_finsta import inference_mode_as
from ..scene_graph_batching import collate_scene_graphs, pad_stack, split_batch
from ..scene_graphs import ParsedTextSceneGraph

INFERENCE_MODES = ("distilled", "fused")
DSG_SOURCES = ("latent", "annotated")
TEXT_KEYS = ("input_ids", "attention_mask", "text_scene_graph")
VIDEO_KEYS = ("pixel_values", "video_mask", "video_scene_graph")
PROGRESS_MIN_BATCHES = 10
"""Progress bars appear by default from this many batches on."""


# ----------------------------------------------------------------------------------------------
# Settings and batching
# ----------------------------------------------------------------------------------------------


def check_mode(mode: Optional[str]) -> None:
    """Raise unless ``mode`` is one of ``INFERENCE_MODES`` or None (keep the model's)."""
    if mode is not None and mode not in INFERENCE_MODES:
        raise ValueError(f"mode must be one of {INFERENCE_MODES} (or None to keep the model's), got {mode!r}")


def check_dsg(dsg: str) -> None:
    """Raise unless ``dsg`` is one of ``DSG_SOURCES``."""
    if dsg not in DSG_SOURCES:
        raise ValueError(f"dsg must be one of {DSG_SOURCES}, got {dsg!r}")


@contextmanager
def evaluation_settings(model, mode: Optional[str] = None) -> Iterator[None]:
    """Eval mode and ``config.inference_mode = mode`` for the block; both are restored afterwards."""
    check_mode(mode)
    was_training = model.training
    model.eval()
    try:
        with inference_mode_as(model, mode), torch.no_grad():
            yield
    finally:
        model.train(was_training)


def model_device(model) -> torch.device:
    """The device of ``model`` (its ``.device``, else its first parameter's, else CPU)."""
    device = getattr(model, "device", None)
    if isinstance(device, torch.device):
        return device
    parameter = next(iter(model.parameters()), None) if hasattr(model, "parameters") else None
    return parameter.device if parameter is not None else torch.device("cpu")


def _to_device(value: Any, device: torch.device) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, Mapping):
        return {key: _to_device(item, device) for key, item in value.items()}
    return value


def collate_examples(examples: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> dict[str, Any]:
    """Pad per-example tensor dicts into one batch, keeping only ``keys`` (missing keys are skipped).

    Scene-graph dicts are padded with ``collate_scene_graphs``; the text graph's ``grounding`` (a
    link to the paired video) is dropped so that text encoding cannot depend on a video.
    """
    batch: dict[str, Any] = {}
    for key in keys:
        values = [example.get(key) for example in examples]
        if all(value is None for value in values):
            continue
        if key.endswith("scene_graph"):
            if key == "text_scene_graph":
                values = [None if v is None else {k: t for k, t in v.items() if k != "grounding"} for v in values]
            batch[key] = collate_scene_graphs(values)
        else:
            missing = [i for i, value in enumerate(values) if value is None]
            if missing:
                raise ValueError(f"examples {missing[:5]} have no {key!r} but others in the batch do")
            batch[key] = pad_stack(values, value=0)
    return batch


def progress(iterable: Iterable, total: int, description: str, show: Optional[bool]) -> Iterable:
    """``iterable`` under a tqdm bar when ``show`` (None: from ``PROGRESS_MIN_BATCHES`` batches on) and tqdm is installed."""
    if show is None:
        show = total >= PROGRESS_MIN_BATCHES
    if not show:
        return iterable
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm is optional for the remote-code copy
        return iterable
    return tqdm(iterable, total=total, desc=description, unit="batch")


def is_processed(items: Sequence[Any], key: str) -> bool:
    """Whether ``items`` are processed example dicts (the first one has ``key``) rather than raw inputs."""
    return len(items) > 0 and isinstance(items[0], Mapping) and key in items[0]


def _text_batches(
    texts: Sequence[Any],
    processor=None,
    text_scene_graphs: Optional[Sequence[Optional[ParsedTextSceneGraph]]] = None,
    batch_size: int = 64,
) -> Iterator[dict[str, Any]]:
    """Collated text batches from processed examples, or from raw captions through ``processor``."""
    processed = is_processed(texts, "input_ids")
    if not processed and processor is None:
        raise ValueError("raw captions need a processor; pass processed examples (with input_ids) otherwise")
    for start in range(0, len(texts), batch_size):
        chunk = texts[start : start + batch_size]
        if processed:
            yield collate_examples(chunk, TEXT_KEYS)
            continue
        graphs = None if text_scene_graphs is None else list(text_scene_graphs[start : start + batch_size])
        batch = dict(processor(text=list(chunk), text_scene_graphs=graphs))
        yield collate_examples(split_batch(batch, len(chunk)), TEXT_KEYS)


def video_batches(
    videos: Sequence[Any],
    processor=None,
    video_scene_graphs: Optional[Sequence[Any]] = None,
    batch_size: int = 64,
) -> Iterator[dict[str, Any]]:
    """Collated video batches from processed examples, or from raw videos decoded through ``processor``."""
    processed = is_processed(videos, "pixel_values")
    if not processed and processor is None:
        raise ValueError("raw videos need a processor; pass processed examples (with pixel_values) otherwise")
    for start in range(0, len(videos), batch_size):
        chunk = videos[start : start + batch_size]
        if processed:
            yield collate_examples(chunk, VIDEO_KEYS)
            continue
        graphs = None if video_scene_graphs is None else list(video_scene_graphs[start : start + batch_size])
        if graphs is not None and all(graph is None for graph in graphs):
            graphs = None
        batch = dict(processor(videos=list(chunk), video_scene_graphs=graphs))
        yield {key: batch[key] for key in VIDEO_KEYS if batch.get(key) is not None}


def num_batches(count: int, batch_size: int) -> int:
    """Number of batches of ``batch_size`` (>= 1) needed for ``count`` items."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return math.ceil(count / batch_size)


# ----------------------------------------------------------------------------------------------
# Encoding
# ----------------------------------------------------------------------------------------------


def _encode_text_batch(model, batch: Mapping[str, Any], device: torch.device) -> torch.Tensor:
    batch = _to_device(batch, device)
    output = model.get_text_features(
        input_ids=batch["input_ids"],
        attention_mask=batch.get("attention_mask"),
        text_scene_graph=batch.get("text_scene_graph"),
    )
    return output.pooler_output.detach().float().cpu()


def encode_video_batch(model, batch: Mapping[str, Any], device: torch.device, dsg: str) -> torch.Tensor:
    """Video embeddings of one collated batch with the given DSG source (float32, CPU)."""
    graph = None
    if dsg == "annotated":
        graph = batch.get("video_scene_graph")
        if graph is None:
            raise ValueError("dsg='annotated' needs video_scene_graph tensors for every video; this batch has none")
    batch = _to_device(batch, device)
    output = model.get_video_features(
        pixel_values=batch["pixel_values"],
        video_mask=batch.get("video_mask"),
        video_scene_graph=None if graph is None else _to_device(graph, device),
    )
    return output.pooler_output.detach().float().cpu()


def encode_texts(
    model,
    examples: Sequence[Mapping[str, Any]],
    batch_size: int = 64,
    *,
    mode: Optional[str] = None,
    show_progress: Optional[bool] = None,
) -> torch.Tensor:
    """Caption embeddings ``[N, E]`` (float32, CPU) from processed examples, in batches, without gradient.

    Reads only ``input_ids``, ``attention_mask`` and ``text_scene_graph`` of each example (a paired
    example's video fields are ignored). ``mode`` overrides ``config.inference_mode`` for the call.
    """
    if len(examples) == 0:
        raise ValueError("encode_texts got no examples")
    device = model_device(model)
    batches = _text_batches(examples, batch_size=batch_size)
    total = num_batches(len(examples), batch_size)
    with evaluation_settings(model, mode):
        embeds = [_encode_text_batch(model, batch, device) for batch in progress(batches, total, "encoding texts", show_progress)]
    return torch.cat(embeds)


def encode_videos(
    model,
    examples: Sequence[Mapping[str, Any]],
    batch_size: int = 64,
    *,
    mode: Optional[str] = None,
    use_annotated_dsg: bool = False,
    show_progress: Optional[bool] = None,
) -> torch.Tensor:
    """Video embeddings ``[N, E]`` (float32, CPU) from processed examples, in batches, without gradient.

    Reads only ``pixel_values``, ``video_mask`` and (with ``use_annotated_dsg``) ``video_scene_graph``;
    without it the model's latent DSG is used. ``mode`` overrides ``config.inference_mode`` for the call.
    """
    if len(examples) == 0:
        raise ValueError("encode_videos got no examples")
    dsg = "annotated" if use_annotated_dsg else "latent"
    if use_annotated_dsg:
        require_annotated(examples)
    device = model_device(model)
    batches = video_batches(examples, batch_size=batch_size)
    total = num_batches(len(examples), batch_size)
    with evaluation_settings(model, mode):
        embeds = [encode_video_batch(model, batch, device, dsg) for batch in progress(batches, total, "encoding videos", show_progress)]
    return torch.cat(embeds)


def encode_captions(
    model,
    processor,
    captions: Sequence[str],
    text_scene_graphs: Optional[Sequence[Optional[ParsedTextSceneGraph]]] = None,
    batch_size: int = 64,
    *,
    mode: Optional[str] = None,
    show_progress: Optional[bool] = None,
) -> torch.Tensor:
    """Embeddings ``[N, E]`` of raw captions: gold TSGs where given, else the processor's parser."""
    if len(captions) == 0:
        raise ValueError("encode_captions got no captions")
    if text_scene_graphs is not None and len(text_scene_graphs) != len(captions):
        raise ValueError(f"got {len(text_scene_graphs)} text_scene_graphs for {len(captions)} captions")
    device = model_device(model)
    batches = _text_batches(list(captions), processor, text_scene_graphs, batch_size)
    total = num_batches(len(captions), batch_size)
    with evaluation_settings(model, mode):
        embeds = [_encode_text_batch(model, batch, device) for batch in progress(batches, total, "encoding captions", show_progress)]
    return torch.cat(embeds)


def require_annotated(videos: Sequence[Any], video_scene_graphs: Optional[Sequence[Any]] = None) -> None:
    """Raise unless every video has an annotated DSG with at least one object (no silent latent fallback)."""
    if is_processed(videos, "pixel_values"):
        missing = [
            index
            for index, example in enumerate(videos)
            if example.get("video_scene_graph") is None or not bool(torch.as_tensor(example["video_scene_graph"]["node_mask"]).any())
        ]
    else:
        graphs = video_scene_graphs if video_scene_graphs is not None else [None] * len(videos)
        missing = [index for index, graph in enumerate(graphs) if graph is None]
    if missing:
        raise ValueError(
            f"dsg='annotated' needs an annotated video scene graph for every video; {len(missing)} of {len(videos)} "
            f"have none (e.g. videos {missing[:5]}). Evaluate them with dsg='latent' or supply the graphs."
        )


def encode_captions_or_examples(
    model,
    processor,
    captions: Sequence[Any],
    text_scene_graphs: Optional[Sequence[Optional[ParsedTextSceneGraph]]] = None,
    batch_size: int = 64,
    mode: Optional[str] = None,
    show_progress: Optional[bool] = None,
) -> torch.Tensor:
    """``encode_texts`` for processed examples, ``encode_captions`` for raw strings."""
    if is_processed(captions, "input_ids"):
        return encode_texts(model, captions, batch_size, mode=mode, show_progress=show_progress)
    return encode_captions(model, processor, list(captions), text_scene_graphs, batch_size, mode=mode, show_progress=show_progress)
