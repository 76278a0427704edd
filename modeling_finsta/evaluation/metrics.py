"""Text-video retrieval metrics: Recall@K, median and mean rank in both directions.

``evaluate`` has no such metric (and needs the Hub to load one), so this is a plain function that a
``Trainer.compute_metrics`` can call on the full caption-by-video similarity matrix.

Protocol for datasets with several captions per video (MSR-VTT train-style, MSVD):

* text -> video: every caption is a query; its rank is that of its own video among all videos.
* video -> text (``video_to_text="captions"``, the default): every video is a query over all
  captions; its rank is that of its *best-ranked* own caption, i.e. 1 + the number of other
  videos' captions scoring at least as high (a video counts as found at K if any of its captions
  is in the top K).
* video -> text (``video_to_text="videos"``): CLIP4Clip's multi-sentence evaluation
  (``tensor_video_to_text_sim``): each video's captions are first reduced to their best score,
  so a competing video counts once however many of its captions outscore. Use it to compare with
  numbers reported by CLIP4Clip-derived code. Both agree when every video has one caption.

Ties count against the model: rank = 1 + number of wrong candidates scoring at least as high as
the true one. A constant similarity matrix therefore gets the worst rank, never a lucky one.
"""

from __future__ import annotations

from typing import Sequence, Union

import numpy as np
import torch

ArrayLike = Union[np.ndarray, torch.Tensor, Sequence]

RECALL_LEVELS = (1, 5, 10)
VIDEO_TO_TEXT_PROTOCOLS = ("captions", "videos")


def _as_numpy(values: ArrayLike, name: str) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().to(device="cpu", dtype=torch.float64).numpy()
    array = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return array


def _rank_summary(ranks: np.ndarray, prefix: str) -> dict[str, float]:
    metrics = {f"{prefix}_R@{k}": float(np.mean(ranks <= k) * 100.0) for k in RECALL_LEVELS}
    metrics[f"{prefix}_MdR"] = float(np.median(ranks))
    metrics[f"{prefix}_MnR"] = float(np.mean(ranks))
    return metrics


def retrieval_metrics(
    similarity: ArrayLike, caption_to_video: Sequence[int], *, video_to_text: str = "captions"
) -> dict[str, float]:
    """Recall@1/5/10 (percent), median rank and mean rank for text->video and video->text.

    Args:
        similarity: ``[num_captions, num_videos]`` scores, higher = more similar.
        caption_to_video: for each caption (row), the index of its video (column).
        video_to_text: ``"captions"`` or ``"videos"``, how competing captions count in video->text
            ranks (see the module docstring).

    Returns:
        ``{"t2v_R@1", "t2v_R@5", "t2v_R@10", "t2v_MdR", "t2v_MnR", "v2t_R@1", ..., "v2t_MnR"}``.
        Ranks start at 1. See the module docstring for the multi-caption and tie conventions.
    """
    if video_to_text not in VIDEO_TO_TEXT_PROTOCOLS:
        raise ValueError(f"video_to_text must be one of {VIDEO_TO_TEXT_PROTOCOLS}, got {video_to_text!r}")
    scores = _as_numpy(similarity, "similarity")
    if scores.ndim != 2:
        raise ValueError(f"similarity must be [num_captions, num_videos], got shape {scores.shape}")
    num_captions, num_videos = scores.shape
    if num_captions == 0 or num_videos == 0:
        raise ValueError(f"similarity must not be empty, got shape {scores.shape}")
    targets = np.asarray(caption_to_video)
    if targets.shape != (num_captions,) or not np.issubdtype(targets.dtype, np.integer):
        raise ValueError(
            f"caption_to_video must be {num_captions} integer video indices (one per similarity row), "
            f"got shape {targets.shape} dtype {targets.dtype}"
        )
    if targets.min() < 0 or targets.max() >= num_videos:
        raise ValueError(
            f"caption_to_video must index the {num_videos} videos, got values in [{targets.min()}, {targets.max()}]"
        )
    captions_per_video = np.bincount(targets, minlength=num_videos)
    if np.any(captions_per_video == 0):
        missing = np.flatnonzero(captions_per_video == 0)[:5].tolist()
        raise ValueError(
            f"every video needs at least one caption for video->text ranks; videos without one: {missing}..."
        )

    rows = np.arange(num_captions)
    true_scores = scores[rows, targets]
    # t2v: wrong videos scoring >= the true one (the true one itself always counts once -> rank >= 1).
    text_to_video_ranks = (scores >= true_scores[:, None]).sum(axis=1)

    if video_to_text == "captions":
        # Best own-caption score per video; rank = 1 + other videos' captions scoring at least as high.
        best_true = np.full(num_videos, -np.inf)
        np.maximum.at(best_true, targets, true_scores)
        at_least_as_high = scores >= best_true[None, :]
        at_least_as_high[rows, targets] = False
        video_to_text_ranks = 1 + at_least_as_high.sum(axis=0)
    else:
        # group_best[w, v]: best score of any caption of video w against video v.
        order = np.argsort(targets, kind="stable")
        group_starts = np.searchsorted(targets[order], np.arange(num_videos))
        group_best = np.maximum.reduceat(scores[order], group_starts, axis=0)
        video_to_text_ranks = (group_best >= np.diag(group_best)[None, :]).sum(axis=0)

    return {**_rank_summary(text_to_video_ranks, "t2v"), **_rank_summary(video_to_text_ranks, "v2t")}


def hard_negative_accuracy(true_scores: ArrayLike, negative_scores: ArrayLike) -> float:
    """Percent of (item, negative) pairs where the true caption outscores the hard negative.

    A tie counts as half a win, so a model that scores everything equally gets 50 (chance), not 0
    or 100. ``negative_scores`` is ``[N]`` (one negative per item) or ``[N, M]`` (M negatives per
    item; every pair counts once).
    """
    true_array = _as_numpy(true_scores, "true_scores")
    negative_array = _as_numpy(negative_scores, "negative_scores")
    if true_array.ndim != 1 or true_array.size == 0:
        raise ValueError(f"true_scores must be a non-empty 1-D array, got shape {true_array.shape}")
    if negative_array.ndim == 1:
        negative_array = negative_array[:, None]
    if negative_array.ndim != 2 or negative_array.shape[0] != true_array.shape[0]:
        raise ValueError(
            f"negative_scores must be [{true_array.shape[0]}] or [{true_array.shape[0]}, M], "
            f"got shape {negative_array.shape}"
        )
    wins = (true_array[:, None] > negative_array).astype(np.float64)
    wins += 0.5 * (true_array[:, None] == negative_array)
    return float(wins.mean() * 100.0)
