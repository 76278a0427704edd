"""Retrieval evaluation for Finsta models: Recall@K / ranks, hard-negative suites, latent-DSG quality.

Everything here encodes text and video *separately*, as an index-based retrieval system must: a
caption's embedding never sees a video and a video's embedding never sees a caption (text scene
graphs lose their video ``grounding`` before encoding). Similarities are cosine similarities of the
embeddings the model returns in ``.pooler_output`` of ``get_text_features`` / ``get_video_features``.

Two evaluation settings are arguments rather than model state:

* ``mode``: the model's ``config.inference_mode`` (``"distilled"``, host only, or ``"fused"``),
  set for the call and restored afterwards;
* ``dsg``: ``"latent"`` (no ``video_scene_graph`` is passed, the model builds slots from its own
  patch tokens) or ``"annotated"`` (the processor's DSG tensors are passed). Distilled mode never
  reads a DSG, so both sources give the same numbers there.

Inputs are the per-example tensor dicts that ``FinstaProcessor`` produces (see
``training_data.encode_examples``) or raw captions/videos that are processed here chunk by chunk,
so a large test set is never decoded into memory at once.

``finsta-eval`` (``main``) runs all of it on a dataset folder read with ``retrieval_datasets``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Optional, Sequence, Union

import torch
import torch.nn.functional as F

from .latent_scene_graph import box_patch_weights, patch_centres
from .retrieval_metrics import hard_negative_accuracy, retrieval_metrics
from .scene_graph_batching import collate_scene_graphs, pad_stack, split_batch, video_graph_tensors
from .scene_graphs import ParsedTextSceneGraph, ParsedVideoSceneGraph

logger = logging.getLogger(__name__)

INFERENCE_MODES = ("distilled", "fused")
DSG_SOURCES = ("latent", "annotated")
TEXT_KEYS = ("input_ids", "attention_mask", "text_scene_graph")
VIDEO_KEYS = ("pixel_values", "video_mask", "video_scene_graph")
PROGRESS_MIN_BATCHES = 10
"""Progress bars appear by default from this many batches on."""


# ----------------------------------------------------------------------------------------------
# Settings and batching
# ----------------------------------------------------------------------------------------------


def _check_mode(mode: Optional[str]) -> None:
    if mode is not None and mode not in INFERENCE_MODES:
        raise ValueError(f"mode must be one of {INFERENCE_MODES} (or None to keep the model's), got {mode!r}")


def _check_dsg(dsg: str) -> None:
    if dsg not in DSG_SOURCES:
        raise ValueError(f"dsg must be one of {DSG_SOURCES}, got {dsg!r}")


@contextmanager
def evaluation_settings(model, mode: Optional[str] = None) -> Iterator[None]:
    """Eval mode and ``config.inference_mode = mode`` for the block; both are restored afterwards."""
    _check_mode(mode)
    previous_mode = model.config.inference_mode
    was_training = model.training
    model.eval()
    if mode is not None:
        model.config.inference_mode = mode
    try:
        with torch.no_grad():
            yield
    finally:
        model.config.inference_mode = previous_mode
        model.train(was_training)


def _model_device(model) -> torch.device:
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


def _progress(iterable: Iterable, total: int, description: str, show: Optional[bool]) -> Iterable:
    if show is None:
        show = total >= PROGRESS_MIN_BATCHES
    if not show:
        return iterable
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm is optional for the remote-code copy
        return iterable
    return tqdm(iterable, total=total, desc=description, unit="batch")


def _is_processed(items: Sequence[Any], key: str) -> bool:
    return len(items) > 0 and isinstance(items[0], Mapping) and key in items[0]


def _text_batches(
    texts: Sequence[Any],
    processor=None,
    text_scene_graphs: Optional[Sequence[Optional[ParsedTextSceneGraph]]] = None,
    batch_size: int = 64,
) -> Iterator[dict[str, Any]]:
    """Collated text batches from processed examples, or from raw captions through ``processor``."""
    processed = _is_processed(texts, "input_ids")
    if not processed and processor is None:
        raise ValueError("raw captions need a processor; pass processed examples (with input_ids) otherwise")
    for start in range(0, len(texts), batch_size):
        chunk = texts[start : start + batch_size]
        if processed:
            yield collate_examples(chunk, TEXT_KEYS)
            continue
        graphs = None if text_scene_graphs is None else list(text_scene_graphs[start : start + batch_size])
        if graphs is not None and any(graph is None for graph in graphs) and processor.parser_backend is not None:
            parsed = processor.parse_captions([c for c, g in zip(chunk, graphs) if g is None])
            filled = iter(parsed)
            graphs = [graph if graph is not None else next(filled) for graph in graphs]
        batch = dict(processor(text=list(chunk), text_scene_graphs=graphs))
        yield collate_examples(split_batch(batch, len(chunk)), TEXT_KEYS)


def _video_batches(
    videos: Sequence[Any],
    processor=None,
    video_scene_graphs: Optional[Sequence[Any]] = None,
    batch_size: int = 64,
) -> Iterator[dict[str, Any]]:
    """Collated video batches from processed examples, or from raw videos decoded through ``processor``."""
    processed = _is_processed(videos, "pixel_values")
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


def _num_batches(count: int, batch_size: int) -> int:
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


def _encode_video_batch(model, batch: Mapping[str, Any], device: torch.device, dsg: str) -> torch.Tensor:
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
    device = _model_device(model)
    batches = _text_batches(examples, batch_size=batch_size)
    total = _num_batches(len(examples), batch_size)
    with evaluation_settings(model, mode):
        embeds = [_encode_text_batch(model, batch, device) for batch in _progress(batches, total, "encoding texts", show_progress)]
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
        _require_annotated(examples)
    device = _model_device(model)
    batches = _video_batches(examples, batch_size=batch_size)
    total = _num_batches(len(examples), batch_size)
    with evaluation_settings(model, mode):
        embeds = [_encode_video_batch(model, batch, device, dsg) for batch in _progress(batches, total, "encoding videos", show_progress)]
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
    device = _model_device(model)
    batches = _text_batches(list(captions), processor, text_scene_graphs, batch_size)
    total = _num_batches(len(captions), batch_size)
    with evaluation_settings(model, mode):
        embeds = [_encode_text_batch(model, batch, device) for batch in _progress(batches, total, "encoding captions", show_progress)]
    return torch.cat(embeds)


def _require_annotated(videos: Sequence[Any], video_scene_graphs: Optional[Sequence[Any]] = None) -> None:
    """Raise unless every video has an annotated DSG with at least one object (no silent latent fallback)."""
    if _is_processed(videos, "pixel_values"):
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


# ----------------------------------------------------------------------------------------------
# Retrieval
# ----------------------------------------------------------------------------------------------


def similarity_matrix(text_embeds: torch.Tensor, video_embeds: torch.Tensor) -> torch.Tensor:
    """Cosine similarities ``[num_texts, num_videos]``."""
    return F.normalize(text_embeds.float(), dim=-1) @ F.normalize(video_embeds.float(), dim=-1).t()


def _videos_of_paired_examples(examples: Sequence[Mapping[str, Any]], caption_to_video: Sequence[int]) -> list:
    """Video j of a paired example list: the first example whose caption belongs to video j."""
    first: dict[int, int] = {}
    for position, video_index in enumerate(caption_to_video):
        first.setdefault(int(video_index), position)
    num_videos = max(first) + 1
    missing = [j for j in range(num_videos) if j not in first]
    if missing:
        raise ValueError(f"caption_to_video never names videos {missing[:5]}; every video needs a caption")
    return [examples[first[j]] for j in range(num_videos)]


def evaluate_retrieval(
    model,
    examples: Sequence[Mapping[str, Any]],
    caption_to_video: Optional[Sequence[int]] = None,
    *,
    video_examples: Optional[Sequence[Mapping[str, Any]]] = None,
    mode: str = "fused",
    dsg: str = "latent",
    batch_size: int = 64,
    video_to_text: str = "captions",
    show_progress: Optional[bool] = None,
) -> dict[str, float]:
    """t2v / v2t R@1, R@5, R@10 (percent), MdR and MnR of ``model`` (see ``retrieval_metrics``).

    Args:
        examples: processed caption examples, one per caption. Without ``video_examples`` they are
            paired (caption, video) examples: video j is taken from the first example of video j.
        caption_to_video: video index of every caption; default: caption i describes video i.
        video_examples: processed videos, one per video, when captions and videos are kept apart
            (several captions per video without repeating the pixels).
        mode, dsg: inference mode and DSG source (see the module docstring).
        video_to_text: multi-caption protocol of ``retrieval_metrics``.
    """
    _check_mode(mode)
    _check_dsg(dsg)
    if caption_to_video is None:
        caption_to_video = list(range(len(examples)))
    if len(caption_to_video) != len(examples):
        raise ValueError(f"caption_to_video has {len(caption_to_video)} entries for {len(examples)} caption examples")
    videos = video_examples if video_examples is not None else _videos_of_paired_examples(examples, caption_to_video)
    text_embeds = encode_texts(model, examples, batch_size, mode=mode, show_progress=show_progress)
    video_embeds = encode_videos(
        model, videos, batch_size, mode=mode, use_annotated_dsg=dsg == "annotated", show_progress=show_progress
    )
    similarity = similarity_matrix(text_embeds, video_embeds)
    return retrieval_metrics(similarity, [int(v) for v in caption_to_video], video_to_text=video_to_text)


# ----------------------------------------------------------------------------------------------
# Hard negatives
# ----------------------------------------------------------------------------------------------


@dataclass
class HardNegativeItem:
    """One (video, true caption, negative caption) item; graphs are gold TSGs when known."""

    video_index: int
    caption: str
    negative: str
    caption_graph: Optional[ParsedTextSceneGraph] = None
    negative_graph: Optional[ParsedTextSceneGraph] = None


def _as_item(item: Any, where: str) -> HardNegativeItem:
    """Accept a ``HardNegativeItem``, a finsta-synth ``HardNegative`` or a dict with the same fields."""
    get = item.get if isinstance(item, Mapping) else (lambda name, default=None: getattr(item, name, default))
    missing = [name for name in ("video_index", "caption", "negative") if get(name) is None]
    if missing:
        raise ValueError(f"{where}: hard-negative item lacks {missing}; expected video_index, caption, negative")
    return HardNegativeItem(
        int(get("video_index")), str(get("caption")), str(get("negative")), get("caption_graph"), get("negative_graph")
    )


def _normalise_suites(suites: Mapping[str, Sequence[Any]], num_videos: int) -> dict[str, list[HardNegativeItem]]:
    normalised = {}
    for suite, items in suites.items():
        converted = [_as_item(item, f"suite {suite!r} item {i}") for i, item in enumerate(items)]
        bad = [item.video_index for item in converted if not 0 <= item.video_index < num_videos]
        if bad:
            raise ValueError(f"suite {suite!r}: video indices {bad[:5]} are outside the {num_videos} videos given")
        normalised[suite] = converted
    return normalised


def _suite_captions(suites: Mapping[str, list[HardNegativeItem]]) -> tuple[list[str], list[Optional[ParsedTextSceneGraph]]]:
    """Distinct captions of all suites (true and negative) with their gold graph when any item gives one."""
    graphs: dict[str, Optional[ParsedTextSceneGraph]] = {}
    for items in suites.values():
        for item in items:
            for text, graph in ((item.caption, item.caption_graph), (item.negative, item.negative_graph)):
                if graphs.get(text) is None:
                    graphs[text] = graph
    return list(graphs), list(graphs.values())


def _suite_accuracies(
    video_embeds: torch.Tensor,
    caption_index: Mapping[str, int],
    caption_embeds: torch.Tensor,
    suites: Mapping[str, list[HardNegativeItem]],
) -> dict[str, Optional[float]]:
    videos = F.normalize(video_embeds.float(), dim=-1)
    captions = F.normalize(caption_embeds.float(), dim=-1)
    accuracies: dict[str, Optional[float]] = {}
    for suite, items in suites.items():
        if not items:
            logger.warning("hard-negative suite %r is empty; its accuracy is reported as None", suite)
            accuracies[suite] = None
            continue
        video_rows = videos[[item.video_index for item in items]]
        true_scores = (video_rows * captions[[caption_index[item.caption] for item in items]]).sum(-1)
        negative_scores = (video_rows * captions[[caption_index[item.negative] for item in items]]).sum(-1)
        accuracies[suite] = hard_negative_accuracy(true_scores, negative_scores)
    return accuracies


def evaluate_hard_negatives(
    model,
    processor,
    videos_examples: Sequence[Any],
    suites: Mapping[str, Sequence[Any]],
    *,
    mode: str = "fused",
    dsg: str = "latent",
    batch_size: int = 64,
    video_embeds: Optional[torch.Tensor] = None,
    show_progress: Optional[bool] = None,
) -> dict[str, Optional[float]]:
    """Per suite, the percent of items where cosine(video, true caption) > cosine(video, negative).

    Ties count half (``hard_negative_accuracy``), so an order-blind model sits at 50 on a suite whose
    negatives only reverse time. Captions use the items' gold TSGs when given (finsta-synth), else the
    processor's parser. An empty suite gives ``None``.

    Args:
        videos_examples: processed videos (or paired examples) indexed by the items' ``video_index``.
        suites: ``{suite: [HardNegative | HardNegativeItem | dict]}``, e.g. ``FinstaSynthDataset.hard_negatives``.
        video_embeds: precomputed embeddings of ``videos_examples`` in this mode and DSG source.
    """
    _check_mode(mode)
    _check_dsg(dsg)
    normalised = _normalise_suites(suites, len(videos_examples))
    if video_embeds is None:
        video_embeds = encode_videos(
            model, videos_examples, batch_size, mode=mode, use_annotated_dsg=dsg == "annotated", show_progress=show_progress
        )
    captions, graphs = _suite_captions(normalised)
    if not captions:
        return {suite: None for suite in normalised}
    caption_embeds = encode_captions(model, processor, captions, graphs, batch_size, mode=mode, show_progress=show_progress)
    return _suite_accuracies(video_embeds, {c: i for i, c in enumerate(captions)}, caption_embeds, normalised)


# ----------------------------------------------------------------------------------------------
# Latent DSG quality
# ----------------------------------------------------------------------------------------------


class SlotLocalisationCounts:
    """Running counts behind ``latent_dsg_quality``; add batches with ``update``, read with ``result``."""

    def __init__(self) -> None:
        self.gold_objects = 0
        self.objects_hit = 0
        self.track_pairs = 0
        self.consistent_pairs = 0

    def update(
        self,
        slot_weights: torch.Tensor,
        slot_mask: torch.Tensor,
        grid_size: tuple[int, int],
        gold_boxes: torch.Tensor,
        gold_mask: torch.Tensor,
    ) -> None:
        """Count one batch.

        Args:
            slot_weights: ``[B, T, S, N]`` patch-to-slot assignment (N = rows * columns, row-major).
            slot_mask: ``[B, T, S]`` slots present in the frame.
            grid_size: ``(rows, columns)`` of the patch grid.
            gold_boxes: ``[B, T, G, 4]`` normalised xyxy in the preprocessed frame.
            gold_mask: ``[B, T, G]`` gold object visible (and frame real).
        """
        weights = slot_weights.float()
        slot_mask = slot_mask.bool()
        gold_boxes = gold_boxes.float().to(weights.device)
        gold_mask = gold_mask.bool().to(weights.device)
        if weights.shape[:2] != gold_boxes.shape[:2]:
            raise ValueError(
                f"gold DSG has (batch, frames) {tuple(gold_boxes.shape[:2])} but the slots have {tuple(weights.shape[:2])}"
            )
        rows, columns = grid_size
        centres = patch_centres(rows, columns, device=weights.device)
        centroids = weights @ centres / weights.sum(-1, keepdim=True).clamp(min=1e-6)  # [B, T, S, 2]
        x, y = centroids[..., 0].unsqueeze(-2), centroids[..., 1].unsqueeze(-2)  # [B, T, 1, S]
        x1, y1, x2, y2 = (gold_boxes[..., i].unsqueeze(-1) for i in range(4))  # [B, T, G, 1]
        inside = (x >= x1) & (x <= x2) & (y >= y1) & (y <= y2) & slot_mask.unsqueeze(-2)  # [B, T, G, S]
        self.gold_objects += int(gold_mask.sum())
        self.objects_hit += int((inside.any(-1) & gold_mask).sum())

        # The slot holding most of each gold box's area (patch coverage x assignment mass).
        coverage = box_patch_weights(gold_boxes, rows, columns)  # [B, T, G, N]
        mass = coverage @ weights.transpose(-1, -2)  # [B, T, G, S]
        mass = mass.masked_fill(~slot_mask.unsqueeze(-2), -1.0)
        best_mass, owner = mass.max(-1)
        owner = torch.where(best_mass > 0, owner, torch.full_like(owner, -1))
        both_visible = gold_mask[:, 1:] & gold_mask[:, :-1]
        same = (owner[:, 1:] == owner[:, :-1]) & (owner[:, 1:] >= 0)
        self.track_pairs += int(both_visible.sum())
        self.consistent_pairs += int((same & both_visible).sum())

    def result(self) -> dict[str, Optional[float]]:
        """Percentages (``None`` without gold objects / pairs) and the counts they come from."""
        return {
            "centroid_in_box": 100.0 * self.objects_hit / self.gold_objects if self.gold_objects else None,
            "track_consistency": 100.0 * self.consistent_pairs / self.track_pairs if self.track_pairs else None,
            "gold_objects": self.gold_objects,
            "track_pairs": self.track_pairs,
        }


def _latent_slots(model, pixel_values: torch.Tensor, video_mask: Optional[torch.Tensor]):
    """The model's latent DSG on its own patch tokens: (assignment [B,T,S,N], slot mask [B,T,S], grid)."""
    host = model.host_adapter.encode_video(model.backbone, pixel_values, video_mask)
    inputs, weights = model.graph_encoder.build_video_graph(host.patch_tokens, host.grid_size, video_mask, None)
    return weights, inputs.node_mask, host.grid_size


def _update_localisation(model, counts: SlotLocalisationCounts, batch: Mapping[str, Any], gold: Mapping[str, torch.Tensor], device) -> None:
    pixel_values = batch["pixel_values"].to(device)
    video_mask = batch.get("video_mask")
    video_mask = torch.ones(pixel_values.shape[:2], dtype=torch.long, device=device) if video_mask is None else video_mask.to(device)
    weights, slot_mask, grid_size = _latent_slots(model, pixel_values, video_mask)
    gold_mask = torch.as_tensor(gold["node_mask"]).bool().to(device) & video_mask.bool().unsqueeze(-1)
    counts.update(weights, slot_mask, grid_size, torch.as_tensor(gold["boxes"]).to(device), gold_mask)


def _gold_tensors(graph: Any, example: Mapping[str, Any], index: int) -> dict[str, torch.Tensor]:
    """Gold DSG tensors aligned with the example's frames (see ``latent_dsg_quality``)."""
    if isinstance(graph, ParsedVideoSceneGraph):
        real_frames = int(torch.as_tensor(example.get("video_mask", torch.ones(example["pixel_values"].shape[0]))).sum())
        if len(graph.frames) != real_frames:
            raise ValueError(
                f"gold video graph {index} ({graph.source or 'in memory'}) has {len(graph.frames)} keyframes but the video "
                f"has {real_frames} sampled frames; pass the processor's video_scene_graph tensors instead, which "
                "follow the frame sampling and crop"
            )
        tensors = video_graph_tensors(graph, [frame.index for frame in graph.frames])
        pad = example["pixel_values"].shape[0] - real_frames
        if pad:
            tensors = {k: F.pad(v, (0, 0) * (v.dim() - 1) + (0, pad)) for k, v in tensors.items()}
        return tensors
    if isinstance(graph, Mapping) or hasattr(graph, "boxes"):
        get = graph.get if isinstance(graph, Mapping) else (lambda name: getattr(graph, name))
        if get("boxes") is None or get("node_mask") is None:
            raise ValueError(f"gold video graph {index}: expected 'boxes' and 'node_mask' tensors")
        return {"boxes": torch.as_tensor(get("boxes")), "node_mask": torch.as_tensor(get("node_mask"))}
    raise TypeError(f"gold video graph {index}: expected a ParsedVideoSceneGraph or a dict of tensors, got {type(graph).__name__}")


def latent_dsg_quality(
    model,
    examples: Sequence[Mapping[str, Any]],
    gold_video_graphs: Optional[Sequence[Any]] = None,
    *,
    batch_size: int = 64,
    show_progress: Optional[bool] = None,
) -> dict[str, Optional[float]]:
    """How well the latent DSG's slots land on and follow real objects.

    ``centroid_in_box``: percent of gold objects (counted per frame) with some present slot whose
    centroid lies inside the object's box. ``track_consistency``: percent of consecutive-frame pairs
    of a visible gold object in which the slot holding most of its box area stays the same. Also
    returns ``gold_objects`` and ``track_pairs`` (the denominators).

    Args:
        examples: processed videos (``pixel_values``, ``video_mask``).
        gold_video_graphs: per video either tensors ``{"boxes": [T, G, 4], "node_mask": [T, G]}``
            aligned with the processed frames (what the processor puts in ``video_scene_graph``, the
            default when this is None) or a ``ParsedVideoSceneGraph`` with one keyframe per sampled
            frame whose boxes are valid in the preprocessed frame (no crop, e.g. finsta-synth with
            the processor's size == crop == image size).
    """
    if len(examples) == 0:
        raise ValueError("latent_dsg_quality got no examples")
    if gold_video_graphs is None:
        missing = [i for i, e in enumerate(examples) if e.get("video_scene_graph") is None]
        if missing:
            raise ValueError(f"latent_dsg_quality: examples {missing[:5]} have no video_scene_graph; pass gold_video_graphs")
        gold_video_graphs = [example["video_scene_graph"] for example in examples]
    if len(gold_video_graphs) != len(examples):
        raise ValueError(f"got {len(gold_video_graphs)} gold video graphs for {len(examples)} videos")
    gold = [_gold_tensors(graph, example, i) for i, (graph, example) in enumerate(zip(gold_video_graphs, examples))]
    counts = SlotLocalisationCounts()
    device = _model_device(model)
    starts = range(0, len(examples), batch_size)
    with evaluation_settings(model):
        for start in _progress(starts, _num_batches(len(examples), batch_size), "latent DSG quality", show_progress):
            batch = collate_examples(examples[start : start + batch_size], ("pixel_values", "video_mask"))
            gold_batch = collate_scene_graphs(gold[start : start + batch_size])
            _update_localisation(model, counts, batch, gold_batch, device)
    return counts.result()


# ----------------------------------------------------------------------------------------------
# Everything at once
# ----------------------------------------------------------------------------------------------


def _video_settings(modes: Sequence[str], dsg_sources: Sequence[str]) -> list[tuple[str, str]]:
    """Distinct (mode, dsg) encodings to compute: distilled mode reads no DSG, so it is encoded once."""
    settings = []
    for mode in modes:
        for dsg in dsg_sources:
            setting = (mode, "latent") if mode == "distilled" else (mode, dsg)
            if setting not in settings:
                settings.append(setting)
    return settings


def evaluate_model(
    model,
    processor,
    captions: Sequence[Any],
    videos: Sequence[Any],
    caption_to_video: Optional[Sequence[int]] = None,
    *,
    text_scene_graphs: Optional[Sequence[Optional[ParsedTextSceneGraph]]] = None,
    video_scene_graphs: Optional[Sequence[Any]] = None,
    hard_negatives: Optional[Mapping[str, Sequence[Any]]] = None,
    modes: Sequence[str] = INFERENCE_MODES,
    dsg_sources: Sequence[str] = DSG_SOURCES,
    measure_latent_dsg: bool = True,
    batch_size: int = 64,
    video_to_text: str = "captions",
    show_progress: Optional[bool] = None,
) -> dict[str, Any]:
    """Retrieval metrics and hard-negative accuracies for every mode and DSG source, plus latent-DSG quality.

    Videos are decoded once: every (mode, DSG source) embedding and the latent-DSG measurement are
    computed from the same batch. Text embeddings depend only on the mode.

    Args:
        captions: raw caption strings, or processed examples with ``input_ids`` (one per caption).
        videos: raw videos (paths, arrays, ...) decoded through ``processor``, or processed examples
            with ``pixel_values`` (one per video).
        caption_to_video: video index of every caption; default: caption i describes video i.
        text_scene_graphs: gold TSG per raw caption (None entries are parsed by the processor).
        video_scene_graphs: annotated DSG per raw video (``ParsedVideoSceneGraph``, JSON path or None).
        hard_negatives: ``{suite: items}`` (see ``evaluate_hard_negatives``); indices refer to ``videos``.
        modes, dsg_sources: subsets of ``INFERENCE_MODES`` and ``DSG_SOURCES``. ``"annotated"`` needs
            a DSG for every video.
        measure_latent_dsg: add ``latent_dsg_quality`` against the annotated DSGs when there are any.

    Returns:
        ``{mode: {dsg: {"t2v_R@1", ..., "v2t_MnR", "<suite>_acc", ...}}}`` for every requested mode and
        DSG source (distilled entries are identical across DSG sources), plus ``"num_captions"``,
        ``"num_videos"`` and, when measured, ``"latent_dsg_quality"``
        (``{"centroid_in_box", "track_consistency", "gold_objects", "track_pairs"}``).
    """
    modes, dsg_sources = list(modes), list(dsg_sources)
    if not modes or not dsg_sources:
        raise ValueError("evaluate_model needs at least one mode and one DSG source")
    for mode in modes:
        _check_mode(mode)
    for dsg in dsg_sources:
        _check_dsg(dsg)
    if len(videos) == 0 or len(captions) == 0:
        raise ValueError("evaluate_model needs at least one caption and one video")
    if caption_to_video is None:
        caption_to_video = list(range(len(captions)))
    if len(caption_to_video) != len(captions):
        raise ValueError(f"caption_to_video has {len(caption_to_video)} entries for {len(captions)} captions")
    if video_scene_graphs is not None and len(video_scene_graphs) != len(videos):
        raise ValueError(f"got {len(video_scene_graphs)} video_scene_graphs for {len(videos)} videos")
    if text_scene_graphs is not None and len(text_scene_graphs) != len(captions):
        raise ValueError(f"got {len(text_scene_graphs)} text_scene_graphs for {len(captions)} captions")
    settings = _video_settings(modes, dsg_sources)
    if any(dsg == "annotated" for _, dsg in settings):
        _require_annotated(videos, video_scene_graphs)
    suites = None if hard_negatives is None else _normalise_suites(hard_negatives, len(videos))
    device = _model_device(model)

    # One pass over the videos for every setting (and the latent-DSG measurement).
    video_embeds: dict[tuple[str, str], list[torch.Tensor]] = {setting: [] for setting in settings}
    counts = SlotLocalisationCounts()
    batches = _video_batches(videos, processor, video_scene_graphs, batch_size)
    total = _num_batches(len(videos), batch_size)
    for batch in _progress(batches, total, "encoding videos", show_progress):
        for mode, dsg in settings:
            with evaluation_settings(model, mode):
                video_embeds[(mode, dsg)].append(_encode_video_batch(model, batch, device, dsg))
        if measure_latent_dsg and batch.get("video_scene_graph") is not None and hasattr(model, "graph_encoder"):
            with evaluation_settings(model):
                _update_localisation(model, counts, batch, batch["video_scene_graph"], device)
    stacked = {setting: torch.cat(parts) for setting, parts in video_embeds.items()}

    results: dict[str, Any] = {"num_captions": len(captions), "num_videos": len(videos)}
    targets = [int(v) for v in caption_to_video]
    suite_texts, suite_graphs = _suite_captions(suites) if suites else ([], [])
    for mode in modes:
        text_embeds = encode_captions_or_examples(model, processor, captions, text_scene_graphs, batch_size, mode, show_progress)
        suite_embeds = None
        if suite_texts:
            suite_embeds = encode_captions(model, processor, suite_texts, suite_graphs, batch_size, mode=mode, show_progress=show_progress)
        results[mode] = {}
        for dsg in dsg_sources:
            setting = (mode, "latent") if mode == "distilled" else (mode, dsg)
            metrics: dict[str, Any] = retrieval_metrics(
                similarity_matrix(text_embeds, stacked[setting]), targets, video_to_text=video_to_text
            )
            if suites is not None:
                if suite_embeds is None:
                    accuracies = {suite: None for suite in suites}
                else:
                    accuracies = _suite_accuracies(
                        stacked[setting], {c: i for i, c in enumerate(suite_texts)}, suite_embeds, suites
                    )
                metrics.update({f"{suite}_acc": value for suite, value in accuracies.items()})
            results[mode][dsg] = metrics
    if measure_latent_dsg and counts.gold_objects:
        results["latent_dsg_quality"] = counts.result()
    return results


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
    if _is_processed(captions, "input_ids"):
        return encode_texts(model, captions, batch_size, mode=mode, show_progress=show_progress)
    return encode_captions(model, processor, list(captions), text_scene_graphs, batch_size, mode=mode, show_progress=show_progress)


def evaluate_finsta_synth(model, processor, dataset, **kwargs: Any) -> dict[str, Any]:
    """``evaluate_model`` on a ``FinstaSynthDataset``'s test split with its gold graphs and all its suites."""
    samples = dataset.test
    return evaluate_model(
        model,
        processor,
        [sample.caption for sample in samples],
        [sample.frames for sample in samples],
        text_scene_graphs=[sample.text_graph for sample in samples],
        video_scene_graphs=[sample.video_graph for sample in samples],
        hard_negatives=kwargs.pop("hard_negatives", dataset.hard_negatives),
        **kwargs,
    )


# ----------------------------------------------------------------------------------------------
# Reporting
# ----------------------------------------------------------------------------------------------

TABLE_METRICS = ("t2v_R@1", "t2v_R@5", "t2v_R@10", "t2v_MdR", "t2v_MnR", "v2t_R@1", "v2t_R@5", "v2t_R@10", "v2t_MdR", "v2t_MnR")


def _format_value(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}" if isinstance(value, float) else str(value)


def format_results_table(results: Mapping[str, Any]) -> str:
    """A plain-text table of ``evaluate_model`` results: one row per mode and DSG source."""
    rows = [(mode, dsg, metrics) for mode in INFERENCE_MODES if mode in results for dsg, metrics in results[mode].items()]
    if not rows:
        return "(no results)"
    suite_columns = [key for key in rows[0][2] if key.endswith("_acc")]
    header = ["mode", "dsg", *TABLE_METRICS, *suite_columns]
    body = [
        [mode, dsg if mode == "fused" else f"{dsg} (host only)", *(_format_value(m.get(k)) for k in (*TABLE_METRICS, *suite_columns))]
        for mode, dsg, m in rows
    ]
    widths = [max(len(str(line[i])) for line in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(str(cell).rjust(width) for cell, width in zip(line, widths)) for line in [header, *body]]
    lines.insert(1, "  ".join("-" * width for width in widths))
    quality = results.get("latent_dsg_quality")
    if quality:
        lines.append(
            f"latent DSG: {_format_value(quality['centroid_in_box'])}% of {quality['gold_objects']} gold objects have a slot "
            f"centroid in their box; track consistency {_format_value(quality['track_consistency'])}% "
            f"over {quality['track_pairs']} frame pairs"
        )
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# Dataset-folder helpers and the command line
# ----------------------------------------------------------------------------------------------

TEXT_SCENE_GRAPHS_FILE = "text_scene_graphs.jsonl"
HARD_NEGATIVES_FOLDER = "hard_negatives"


def read_text_scene_graphs(path: Union[str, Path]) -> dict[str, ParsedTextSceneGraph]:
    """``{caption: graph}`` from a ``text_scene_graphs.jsonl`` (lines ``{"caption", "graph"}``, as finsta-synth exports)."""
    path = Path(path)
    graphs: dict[str, ParsedTextSceneGraph] = {}
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                graphs[record["caption"]] = ParsedTextSceneGraph.from_dict(record["graph"])
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
                raise ValueError(f"{path}: line {number}: expected {{'caption': str, 'graph': {{...}}}} ({error})") from error
    return graphs


def read_hard_negative_suites(
    folder: Union[str, Path],
    video_ids: Sequence[str],
    text_scene_graphs: Optional[Mapping[str, ParsedTextSceneGraph]] = None,
) -> tuple[dict[str, list[HardNegativeItem]], int]:
    """Suites from ``hard_negatives/{suite}.jsonl`` (``video_id``, ``caption``, ``negative`` per line).

    Items are mapped onto ``video_ids`` (the evaluated split); items of other videos are dropped and
    counted. Returns ``(suites, dropped)``.
    """
    folder = Path(folder)
    files = sorted(folder.glob("*.jsonl"))
    if not files:
        raise FileNotFoundError(f"{folder}: no hard-negative suites (*.jsonl) found")
    index = {video_id: i for i, video_id in enumerate(video_ids)}
    graphs = text_scene_graphs or {}
    suites: dict[str, list[HardNegativeItem]] = {}
    dropped = 0
    for path in files:
        items = []
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    video_id, caption, negative = record["video_id"], record["caption"], record["negative"]
                except (json.JSONDecodeError, KeyError, TypeError) as error:
                    raise ValueError(
                        f"{path}: line {number}: expected an object with 'video_id', 'caption' and 'negative' ({error})"
                    ) from error
                if video_id not in index:
                    dropped += 1
                    continue
                items.append(HardNegativeItem(index[video_id], caption, negative, graphs.get(caption), graphs.get(negative)))
        suites[path.stem] = items
    return suites, dropped


def _build_argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="finsta-eval",
        description="Text-video retrieval (R@1/5/10, MdR, MnR), hard-negative suites and latent-DSG quality of a Finsta model.",
    )
    parser.add_argument("--model", required=True, help="saved model folder (AutoModel, trust_remote_code) with its processor")
    parser.add_argument("--data", required=True, help="dataset folder")
    parser.add_argument("--dataset", required=True, choices=["msrvtt", "msvd", "didemo"])
    parser.add_argument("--split", default="test")
    parser.add_argument("--modes", nargs="+", choices=INFERENCE_MODES, default=list(INFERENCE_MODES))
    parser.add_argument(
        "--dsg", nargs="+", choices=DSG_SOURCES, default=None,
        help="DSG sources; default: latent, plus annotated when every video has scene_graphs/{id}.json",
    )
    parser.add_argument("--hard-negatives", action="store_true", help="also score hard_negatives/*.jsonl of the dataset folder")
    parser.add_argument("--output", default=None, help="write the results as JSON here")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--video-to-text", choices=["captions", "videos"], default="captions", help="multi-caption v2t protocol")
    parser.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    return parser


def _load_model_and_processor(folder: str, device: str):
    from transformers import AutoModel

    from .processing_finsta import FinstaProcessor

    model = AutoModel.from_pretrained(folder, trust_remote_code=True)
    model.to(device).eval()
    processor = FinstaProcessor.from_pretrained(folder)
    return model, processor


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``finsta-eval --model DIR --data ROOT --dataset msrvtt|msvd|didemo [--split test] ...``"""
    parser = _build_argument_parser()
    args = parser.parse_args(argv)
    from .retrieval_datasets import load_retrieval_split

    root = Path(args.data)
    split = load_retrieval_split(args.dataset, root, args.split)
    scene_graph_paths = split.scene_graph_paths
    complete_graphs = scene_graph_paths is not None and all(path is not None for path in scene_graph_paths)
    if args.dsg is None:
        dsg_sources = ["latent", "annotated"] if complete_graphs else ["latent"]
        if not complete_graphs:
            print(f"note: {root / 'scene_graphs'} does not cover every video; evaluating the latent DSG only")
    else:
        dsg_sources = list(dict.fromkeys(args.dsg))
        if "annotated" in dsg_sources and not complete_graphs:
            parser.error(f"--dsg annotated needs scene_graphs/{{video_id}}.json for every video of the split under {root}")

    gold_text_graphs: dict[str, ParsedTextSceneGraph] = {}
    if (root / TEXT_SCENE_GRAPHS_FILE).exists():
        gold_text_graphs = read_text_scene_graphs(root / TEXT_SCENE_GRAPHS_FILE)
    hard_negatives = None
    if args.hard_negatives:
        hard_negatives, dropped = read_hard_negative_suites(root / HARD_NEGATIVES_FOLDER, split.video_ids, gold_text_graphs)
        if dropped:
            print(f"note: {dropped} hard-negative items name videos outside the {args.split} split and were skipped")

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    model, processor = _load_model_and_processor(args.model, device)
    captions = [caption for caption, _ in split.captions]
    text_graphs = [gold_text_graphs.get(caption) for caption in captions] if gold_text_graphs else None
    if text_graphs is None and processor.parser_backend is None:
        print("note: the processor has no caption parser and the dataset no text_scene_graphs.jsonl; fused text embeddings are host-only")
    results = evaluate_model(
        model,
        processor,
        captions,
        [str(path) for _, path in split.videos],
        split.caption_to_video,
        text_scene_graphs=text_graphs,
        video_scene_graphs=[None if p is None else str(p) for p in scene_graph_paths] if complete_graphs else None,
        hard_negatives=hard_negatives,
        modes=args.modes,
        dsg_sources=dsg_sources,
        batch_size=args.batch_size,
        video_to_text=args.video_to_text,
        show_progress=False if args.no_progress else None,
    )
    results["meta"] = {"model": str(args.model), "data": str(root), "dataset": args.dataset, "split": args.split}
    print(f"{args.dataset} {args.split}: {results['num_captions']} captions, {results['num_videos']} videos")
    print(format_results_table(results))
    if args.output:
        output = Path(args.output)
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {output}")
    return 0


__all__ = [
    "DSG_SOURCES",
    "INFERENCE_MODES",
    "HardNegativeItem",
    "SlotLocalisationCounts",
    "collate_examples",
    "encode_captions",
    "encode_texts",
    "encode_videos",
    "evaluate_finsta_synth",
    "evaluate_hard_negatives",
    "evaluate_model",
    "evaluate_retrieval",
    "evaluation_settings",
    "format_results_table",
    "latent_dsg_quality",
    "main",
    "read_hard_negative_suites",
    "read_text_scene_graphs",
    "similarity_matrix",
]


if __name__ == "__main__":
    raise SystemExit(main())
