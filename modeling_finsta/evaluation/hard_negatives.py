"""Hard-negative suites: items, their normalisation, per-suite accuracies and the ``hard_negatives/*.jsonl`` reader."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

import torch
import torch.nn.functional as F

from ..readers.text_files import DataFileError, check_text, read_jsonl
from ..scene_graphs import ParsedTextSceneGraph
from .encoding import check_dsg, check_mode, encode_captions, encode_videos
from .metrics import hard_negative_accuracy

logger = logging.getLogger(__name__)

HARD_NEGATIVES_FOLDER = "hard_negatives"
"""Folder of a dataset holding the hard-negative suites, one ``{suite}.jsonl`` each."""


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


def normalise_suites(suites: Mapping[str, Sequence[Any]], num_videos: int) -> dict[str, list[HardNegativeItem]]:
    """Suites as ``HardNegativeItem`` lists, checking that every item's video index is one of the ``num_videos``."""
    normalised = {}
    for suite, items in suites.items():
        converted = [_as_item(item, f"suite {suite!r} item {i}") for i, item in enumerate(items)]
        bad = [item.video_index for item in converted if not 0 <= item.video_index < num_videos]
        if bad:
            raise ValueError(f"suite {suite!r}: video indices {bad[:5]} are outside the {num_videos} videos given")
        normalised[suite] = converted
    return normalised


def suite_captions(suites: Mapping[str, list[HardNegativeItem]]) -> tuple[list[str], list[Optional[ParsedTextSceneGraph]]]:
    """Distinct captions of all suites (true and negative) with their gold graph when any item gives one."""
    graphs: dict[str, Optional[ParsedTextSceneGraph]] = {}
    for items in suites.values():
        for item in items:
            for text, graph in ((item.caption, item.caption_graph), (item.negative, item.negative_graph)):
                if graphs.get(text) is None:
                    graphs[text] = graph
    return list(graphs), list(graphs.values())


def suite_accuracies(
    video_embeds: torch.Tensor,
    caption_index: Mapping[str, int],
    caption_embeds: torch.Tensor,
    suites: Mapping[str, list[HardNegativeItem]],
) -> dict[str, Optional[float]]:
    """Per suite, ``hard_negative_accuracy`` of the items from precomputed video and caption embeddings (None when empty)."""
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
    check_mode(mode)
    check_dsg(dsg)
    normalised = normalise_suites(suites, len(videos_examples))
    if video_embeds is None:
        video_embeds = encode_videos(
            model, videos_examples, batch_size, mode=mode, use_annotated_dsg=dsg == "annotated", show_progress=show_progress
        )
    captions, graphs = suite_captions(normalised)
    if not captions:
        return {suite: None for suite in normalised}
    caption_embeds = encode_captions(model, processor, captions, graphs, batch_size, mode=mode, show_progress=show_progress)
    return suite_accuracies(video_embeds, {c: i for i, c in enumerate(captions)}, caption_embeds, normalised)


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
        for number, record in read_jsonl(path, "hard-negative suite"):
            try:
                video_id, caption, negative = record["video_id"], record["caption"], record["negative"]
            except (KeyError, TypeError) as error:
                raise DataFileError(
                    f"{path}: line {number}: expected an object with 'video_id', 'caption' and 'negative' ({error!r})"
                ) from None
            check_text(caption, f"{path}: line {number}: caption")
            check_text(negative, f"{path}: line {number}: negative")
            if video_id not in index:
                dropped += 1
                continue
            items.append(HardNegativeItem(index[video_id], caption, negative, graphs.get(caption), graphs.get(negative)))
        suites[path.stem] = items
    return suites, dropped


def text_prior_accuracy(suites: Mapping[str, Sequence[Any]], training_captions: Sequence[str]) -> dict[str, Optional[float]]:
    """The order-blind, video-blind reference of each suite (percent, ties half).

    The caption more probable under a unigram model of the training captions (add-one smoothing)
    wins: what a suite's text alone gives away. A suite whose negatives only reorder words sits at
    exactly 50; "appears" / "disappears" style swaps can sit above it on some seeds.
    """
    import math
    import re
    from collections import Counter

    counts = Counter(word for caption in training_captions for word in re.findall(r"[a-z]+", caption.lower()))
    total, vocabulary = sum(counts.values()), len(counts) + 1

    def log_probability(caption: str) -> float:
        return sum(math.log((counts[word] + 1) / (total + vocabulary)) for word in re.findall(r"[a-z]+", caption.lower()))

    result: dict[str, Optional[float]] = {}
    for suite, items in suites.items():
        converted = [_as_item(item, f"suite {suite!r} item {i}") for i, item in enumerate(items)]
        if not converted:
            result[suite] = None
            continue
        true = torch.tensor([log_probability(item.caption) for item in converted])
        negative = torch.tensor([log_probability(item.negative) for item in converted])
        result[suite] = hard_negative_accuracy(true, negative)
    return result
