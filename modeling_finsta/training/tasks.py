"""Training data for the tasks beyond retrieval: action-recognition examples (``labels``) and examples
with ``K`` hard-negative captions per video (``negative_input_ids [K, L]``, ``negative_mask [K]``).

* ``classification_examples``: processed videos plus their class id, for `FinstaForVideoClassification`
  trained with `Trainer` (``modeling_finsta.training.train``).
* ``k_negative_examples``: (caption, video) pairs each with up to ``K`` hard-negative captions, which
  every contrastive term of `FinstaModel` uses as extra candidates for their own video.
* ``multiple_choice_examples``: multiple-choice QA as such pairs: the right candidate (with the
  question) is the caption and the other candidates are its hard negatives.
* ``finsta_synth_k_negative_examples``: Finsta-Synth training clips with one hard negative per suite
  (temporal, binding, role) where the suite applies: the multiple-choice training signal.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import torch

from ..scene_graph_batching import collate_scene_graphs, split_batch
from ..scene_graphs import ParsedTextSceneGraph, ParsedVideoSceneGraph
from .examples import encode_examples


def classification_examples(
    processor,
    videos: Sequence[Any],
    labels: Sequence[int],
    *,
    video_scene_graphs: Optional[Sequence[Optional[ParsedVideoSceneGraph]]] = None,
    chunk_size: int = 64,
) -> list[dict[str, Any]]:
    """Per video: ``pixel_values``, ``video_mask`` (and ``video_scene_graph``) and ``labels`` (a class id)."""
    if len(videos) != len(labels):
        raise ValueError(f"classification_examples: {len(videos)} videos but {len(labels)} labels")
    if video_scene_graphs is not None and len(video_scene_graphs) != len(videos):
        raise ValueError(f"classification_examples: {len(video_scene_graphs)} video scene graphs for {len(videos)} videos")
    examples: list[dict[str, Any]] = []
    for start in range(0, len(videos), chunk_size):
        stop = min(start + chunk_size, len(videos))
        graphs = None if video_scene_graphs is None else list(video_scene_graphs[start:stop])
        batch = dict(processor(videos=list(videos[start:stop]), video_scene_graphs=graphs))
        for example, label in zip(split_batch(batch, stop - start), labels[start:stop]):
            example["labels"] = torch.tensor(int(label))
            examples.append(example)
    return examples


def k_negative_examples(
    processor,
    captions: Sequence[str],
    videos: Sequence[Any],
    negatives: Sequence[Sequence[Optional[str]]],
    *,
    text_scene_graphs: Optional[Sequence[Optional[ParsedTextSceneGraph]]] = None,
    negative_graphs: Optional[Sequence[Sequence[Optional[ParsedTextSceneGraph]]]] = None,
    video_scene_graphs: Optional[Sequence[Optional[ParsedVideoSceneGraph]]] = None,
    chunk_size: int = 64,
) -> list[dict[str, Any]]:
    """Processed (caption, video) examples, each with ``K`` hard-negative captions.

    ``negatives[i]`` lists example ``i``'s negatives (``None`` entries, or shorter lists, are missing
    ones: ``negative_mask`` is False there); ``negative_graphs`` gives their gold TSGs in the same shape.
    Each example gets ``negative_input_ids`` / ``negative_attention_mask`` ``[K, L]``,
    ``negative_mask [K]`` and, with graphs, ``negative_text_scene_graph`` (``[K, N, ...]`` tensors).
    """
    if not len(captions) == len(videos) == len(negatives):
        raise ValueError(f"k_negative_examples: {len(captions)} captions, {len(videos)} videos, {len(negatives)} negative lists")
    k = max((len(items) for items in negatives), default=0)
    if k == 0:
        raise ValueError("k_negative_examples: no hard negatives given")
    examples = encode_examples(
        processor, captions, videos, video_scene_graphs=video_scene_graphs, text_scene_graphs=text_scene_graphs,
        chunk_size=chunk_size,
    )  # fmt: skip
    for start in range(0, len(captions), chunk_size):
        stop = min(start + chunk_size, len(captions))
        texts, graphs, present = [], [], []
        for i in range(start, stop):
            row = list(negatives[i]) + [None] * (k - len(negatives[i]))
            row_graphs = [None] * k if negative_graphs is None else list(negative_graphs[i]) + [None] * (k - len(negative_graphs[i]))
            for text, graph in zip(row, row_graphs):
                present.append(text is not None)
                texts.append(text if text is not None else captions[i])  # a placeholder, masked out
                graphs.append(graph if text is not None else (None if text_scene_graphs is None else text_scene_graphs[i]))
        use_graphs = negative_graphs is not None and all(g is not None for g, p in zip(graphs, present) if p)
        encoded = split_batch(dict(processor(text=texts, text_scene_graphs=graphs if use_graphs else None)), len(texts))
        for offset, example in enumerate(examples[start:stop]):
            rows = encoded[offset * k : (offset + 1) * k]
            example["negative_input_ids"] = torch.stack([row["input_ids"] for row in rows])
            example["negative_attention_mask"] = torch.stack([row["attention_mask"] for row in rows])
            example["negative_mask"] = torch.tensor(present[offset * k : (offset + 1) * k])
            if all("text_scene_graph" in row for row in rows):
                example["negative_text_scene_graph"] = collate_scene_graphs([row["text_scene_graph"] for row in rows])
    return examples


def multiple_choice_examples(
    processor,
    videos: Sequence[Any],
    candidates: Sequence[Sequence[str]],
    answers: Sequence[int],
    *,
    questions: Optional[Sequence[Optional[str]]] = None,
    candidate_graphs: Optional[Sequence[Sequence[Optional[ParsedTextSceneGraph]]]] = None,
    video_scene_graphs: Optional[Sequence[Optional[ParsedVideoSceneGraph]]] = None,
    chunk_size: int = 64,
) -> list[dict[str, Any]]:
    """Multiple-choice training pairs: the right candidate is the caption, the others its ``K - 1`` hard negatives.

    With ``questions`` each candidate is scored as ``"question candidate"``, as in evaluation.
    """
    if not len(videos) == len(candidates) == len(answers):
        raise ValueError(f"multiple_choice_examples: {len(videos)} videos, {len(candidates)} candidate lists, {len(answers)} answers")

    def text(index: int, option: str) -> str:
        question = None if questions is None else questions[index]
        return option if not question else f"{question.strip()} {option.strip()}"

    captions, negatives, graphs, negative_graphs = [], [], [], []
    for index, (options, answer) in enumerate(zip(candidates, answers)):
        if not 0 <= answer < len(options):
            raise ValueError(f"multiple_choice_examples: item {index}: answer {answer} is not one of {len(options)} candidates")
        captions.append(text(index, options[answer]))
        negatives.append([text(index, option) for k, option in enumerate(options) if k != answer])
        if candidate_graphs is not None:
            graphs.append(candidate_graphs[index][answer])
            negative_graphs.append([g for k, g in enumerate(candidate_graphs[index]) if k != answer])
    return k_negative_examples(
        processor, captions, videos, negatives,
        text_scene_graphs=graphs if candidate_graphs is not None and questions is None else None,
        negative_graphs=negative_graphs if candidate_graphs is not None and questions is None else None,
        video_scene_graphs=video_scene_graphs, chunk_size=chunk_size,
    )  # fmt: skip


def finsta_synth_k_negative_examples(
    samples,
    processor,
    config,
    *,
    suites: Sequence[str] = ("temporal", "binding", "role"),
    annotated: bool = True,
    chunk_size: int = 64,
) -> list[dict[str, Any]]:
    """Finsta-Synth clips with one hard negative per suite in ``suites`` (K = len(suites); masked where a
    suite does not apply to a clip), with gold TSGs and (``annotated``) gold DSGs."""
    from ..synth import build_hard_negatives

    by_suite = build_hard_negatives(samples, config)
    per_clip: list[dict[str, Any]] = [{} for _ in samples]
    for suite in suites:
        if suite not in by_suite:
            raise ValueError(f"unknown hard-negative suite {suite!r}; known: {sorted(by_suite)}")
        for negative in by_suite[suite]:
            per_clip[negative.video_index][suite] = negative
    negatives = [[None if suite not in row else row[suite].negative for suite in suites] for row in per_clip]
    graphs = [[None if suite not in row else row[suite].negative_graph for suite in suites] for row in per_clip]
    return k_negative_examples(
        processor, [s.caption for s in samples], [s.frames for s in samples], negatives,
        text_scene_graphs=[s.text_graph for s in samples], negative_graphs=graphs,
        video_scene_graphs=[s.video_graph for s in samples] if annotated else None, chunk_size=chunk_size,
    )  # fmt: skip


__all__ = [
    "classification_examples",
    "finsta_synth_k_negative_examples",
    "k_negative_examples",
    "multiple_choice_examples",
]
