"""Multiple-choice video QA by scoring: each video against its own ``K`` candidates (captions, or
question + answer), ranked by cosine similarity of separately computed embeddings; accuracy.

A tie at the top counts as the chance that random tie-breaking picks the right candidate (so a model
that scores all candidates alike gets ``1 / K``). With ``candidate_kinds`` (what each wrong candidate
is, e.g. Finsta-Synth's ``temporal`` / ``role`` / ``binding`` / ``other``) it also reports, per kind, how
often the right candidate beats that one (ties half).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import torch
import torch.nn.functional as F

from ..scene_graphs import ParsedTextSceneGraph
from .classification import embed_videos, video_settings
from .encoding import INFERENCE_MODES, encode_captions


def multiple_choice_accuracy(scores: Sequence[Sequence[float]], answers: Sequence[int]) -> float:
    """Percent of items whose right candidate scores highest; a tie for the top counts ``1 / (tied count)``."""
    if len(scores) != len(answers) or not scores:
        raise ValueError(f"multiple_choice_accuracy: {len(scores)} score rows for {len(answers)} answers")
    total = 0.0
    for index, (row, answer) in enumerate(zip(scores, answers)):
        row = torch.as_tensor(row, dtype=torch.float64)
        if not 0 <= answer < row.numel():
            raise ValueError(f"item {index}: answer {answer} is not one of its {row.numel()} candidates")
        best = row.max()
        if row[answer] == best:
            total += 1.0 / float((row == best).sum())
    return 100.0 * total / len(answers)


def candidate_texts(candidates: Sequence[Sequence[str]], questions: Optional[Sequence[Optional[str]]]) -> list[list[str]]:
    """The texts to score: each candidate, prefixed by its item's question when there is one."""
    texts = []
    for index, options in enumerate(candidates):
        question = None if questions is None else questions[index]
        texts.append([option if not question else f"{question.strip()} {option.strip()}" for option in options])
    return texts


def evaluate_multiple_choice(
    model,
    processor,
    videos: Sequence[Any],
    candidates: Sequence[Sequence[str]],
    answers: Sequence[int],
    *,
    questions: Optional[Sequence[Optional[str]]] = None,
    candidate_graphs: Optional[Sequence[Sequence[Optional[ParsedTextSceneGraph]]]] = None,
    candidate_kinds: Optional[Sequence[Sequence[str]]] = None,
    video_scene_graphs: Optional[Sequence[Any]] = None,
    modes: Sequence[str] = INFERENCE_MODES,
    dsg_sources: Sequence[str] = ("latent",),
    batch_size: int = 64,
    show_progress: Optional[bool] = None,
) -> dict[str, Any]:
    """Accuracy per mode and DSG source (plus ``<kind>_pairwise`` with ``candidate_kinds``).

    Args:
        videos: raw videos (decoded through ``processor``) or processed examples, one per item.
        candidates / answers: ``K`` candidate texts per item and the index of the right one.
        questions: per item a question prefixed to every candidate, or None.
        candidate_graphs: gold TSGs of the candidates (used in fused mode, where there is no question).
    """
    if not len(videos) == len(candidates) == len(answers):
        raise ValueError(f"{len(videos)} videos, {len(candidates)} candidate lists and {len(answers)} answers")
    texts = candidate_texts(candidates, questions)
    graphs: dict[str, Optional[ParsedTextSceneGraph]] = {}
    for index, row in enumerate(texts):
        for k, text in enumerate(row):
            graph = None if candidate_graphs is None or questions is not None else candidate_graphs[index][k]
            if graphs.get(text) is None:
                graphs[text] = graph
    distinct = list(graphs)
    position = {text: i for i, text in enumerate(distinct)}
    settings = video_settings(modes, dsg_sources)
    video_embeds = embed_videos(
        model, processor, videos, settings, video_scene_graphs=video_scene_graphs, batch_size=batch_size,
        show_progress=show_progress,
    )  # fmt: skip
    results: dict[str, Any] = {"num_items": len(videos), "num_candidates": max(len(row) for row in texts)}
    for mode in modes:
        text_embeds = F.normalize(
            encode_captions(model, processor, distinct, list(graphs.values()), batch_size, mode=mode, show_progress=show_progress),
            dim=-1,
        )
        results[mode] = {}
        for dsg in dsg_sources:
            setting = (mode, "latent") if mode == "distilled" else (mode, dsg)
            videos_normed = F.normalize(video_embeds[setting], dim=-1)
            scores = [
                (text_embeds[[position[text] for text in row]] @ videos_normed[index]).tolist() for index, row in enumerate(texts)
            ]
            metrics: dict[str, Any] = {"accuracy": multiple_choice_accuracy(scores, answers)}
            if candidate_kinds is not None:
                metrics.update(pairwise_by_kind(scores, answers, candidate_kinds))
            results[mode][dsg] = metrics
    return results


def pairwise_by_kind(scores: Sequence[Sequence[float]], answers: Sequence[int], kinds: Sequence[Sequence[str]]) -> dict[str, float]:
    """Per distractor kind: percent of (item, distractor) pairs where the right candidate scores higher (ties half)."""
    wins: dict[str, list[float]] = {}
    for row, answer, row_kinds in zip(scores, answers, kinds):
        for k, kind in enumerate(row_kinds):
            if k == answer:
                continue
            wins.setdefault(kind, []).append(1.0 if row[answer] > row[k] else 0.5 if row[answer] == row[k] else 0.0)
    return {f"{kind}_pairwise": 100.0 * sum(values) / len(values) for kind, values in wins.items()}


__all__ = ["candidate_texts", "evaluate_multiple_choice", "multiple_choice_accuracy", "pairwise_by_kind"]
