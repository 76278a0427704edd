"""Evaluation of generative video LLMs (Finsta or plain hosts): open-ended QA, captioning, multiple choice.

* Open-ended QA: greedy `generate`, exact match after normalisation (lower case, punctuation and
  articles' spacing collapsed), per question category.
* Captioning: BLEU-4 and CIDEr(-D) from ``pycocoevalcap`` (its pure-Python ``Bleu`` and ``Cider``
  scorers; the Java-based PTB tokenizer, METEOR and SPICE are not used: captions are lower-cased and
  split on non-letters here instead).
* Multiple choice: each candidate's summed log-likelihood as the answer to the prompt
  (`FinstaForConditionalGeneration.score_answers`, or the same computation on a plain host); the
  video is encoded once per item.

``mode`` (``"fused"`` / ``"distilled"``) sets a Finsta model's ``config.inference_mode`` for the call
and restores it; plain hosts ignore it. ``video_scene_graphs`` (one annotated DSG per video, aligned
with ``videos``) gives a fused Finsta model the DSG it was trained with; without them it builds the
latent DSG from its own patch tokens.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any, Optional, Sequence

import torch

from ..configuration_finsta import inference_mode_as
from ..modeling_finsta_generation import answer_log_likelihood
from ..training.generative import HOST_VIDEO_INPUTS

_WORDS = re.compile(r"[a-z0-9]+")


def normalize_answer(text: str) -> str:
    """Lower case, words only, single spaces: "The red circle." -> "the red circle"."""
    return " ".join(_WORDS.findall(text.lower()))


def exact_match(prediction: str, reference: str) -> bool:
    return normalize_answer(prediction) == normalize_answer(reference)


def caption_scores(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> dict[str, float]:
    """Corpus BLEU-4 and CIDEr-D (pycocoevalcap, x100) of predictions against one or more references each."""
    try:
        from pycocoevalcap.bleu.bleu import Bleu
        from pycocoevalcap.cider.cider import Cider
    except ImportError as error:  # pragma: no cover - the extra is part of the test environment
        raise ImportError("captioning metrics need pycocoevalcap: pip install 'finsta-transformers[captioning]'") from error
    if len(predictions) != len(references):
        raise ValueError(f"got {len(predictions)} predictions for {len(references)} reference lists")
    results = {i: [normalize_answer(p) or "empty"] for i, p in enumerate(predictions)}
    golds = {i: [normalize_answer(r) for r in refs] for i, refs in enumerate(references)}
    bleu, _ = Bleu(4).compute_score(golds, results, verbose=0)
    cider, _ = Cider().compute_score(golds, results)
    return {"bleu4": 100 * float(bleu[3]), "cider": 100 * float(cider)}


def _video_kwargs(batch: dict[str, Any]) -> dict[str, Any]:
    return {k: batch[k] for k in HOST_VIDEO_INPUTS if k in batch}


def _graph_kwargs(model, batch: dict[str, Any]) -> dict[str, Any]:
    """The annotated DSG for a Finsta model (a plain host takes none)."""
    if "video_scene_graph" not in batch or not hasattr(model, "finsta_head"):
        return {}
    return {"video_scene_graph": batch["video_scene_graph"]}


def _check_graph_count(video_scene_graphs: Optional[Sequence[Any]], videos: Sequence[Any]) -> None:
    if video_scene_graphs is not None and len(video_scene_graphs) != len(videos):
        raise ValueError(f"got {len(video_scene_graphs)} video_scene_graphs for {len(videos)} videos; pass one per video (aligned)")


@torch.no_grad()
def generate_answers(
    model, processor, questions: Sequence[str], videos: Sequence[Any], *, batch_size: int = 16, max_new_tokens: int = 16,
    mode: Optional[str] = None, video_scene_graphs: Optional[Sequence[Any]] = None,
) -> list[str]:
    """Greedy answers, one per (question, video) (and per annotated DSG, when given)."""
    _check_graph_count(video_scene_graphs, videos)
    tokenizer = processor.tokenizer
    answers: list[str] = []
    model.eval()
    with inference_mode_as(model, mode):
        for start in range(0, len(questions), batch_size):
            graphs = None if video_scene_graphs is None else list(video_scene_graphs[start : start + batch_size])
            batch = processor(
                questions=list(questions[start : start + batch_size]), videos=list(videos[start : start + batch_size]), video_scene_graphs=graphs
            )  # fmt: skip
            generated = model.generate(
                input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], **_video_kwargs(batch), **_graph_kwargs(model, batch),
                max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
            )  # fmt: skip
            answers += tokenizer.batch_decode(generated[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
    return [answer.strip() for answer in answers]


def evaluate_open_ended(
    model, processor, items: Sequence[Any], videos: Sequence[Any], *, mode: Optional[str] = None,
    video_scene_graphs: Optional[Sequence[Any]] = None, **kwargs,
) -> dict[str, Any]:
    """Exact-match accuracy (x100) overall and per ``item.category`` (caption items are scored as captions).

    ``items`` have ``question``, ``answer``, ``category`` and ``video_index`` (into ``videos`` and
    ``video_scene_graphs``).
    """
    _check_graph_count(video_scene_graphs, videos)

    def graphs_of(chosen):
        return None if video_scene_graphs is None else [video_scene_graphs[i.video_index] for i in chosen]

    qa = [item for item in items if item.category != "caption"]
    captions = [item for item in items if item.category == "caption"]
    results: dict[str, Any] = {}
    if qa:
        predictions = generate_answers(
            model, processor, [i.question for i in qa], [videos[i.video_index] for i in qa], mode=mode, video_scene_graphs=graphs_of(qa), **kwargs
        )  # fmt: skip
        per_category: dict[str, list[bool]] = defaultdict(list)
        for item, prediction in zip(qa, predictions):
            per_category[item.category].append(exact_match(prediction, item.answer))
        results["qa_accuracy"] = 100 * sum(map(sum, per_category.values())) / len(qa)
        for category, hits in sorted(per_category.items()):
            results[f"qa_{category}"] = 100 * sum(hits) / len(hits)
        results["examples"] = [
            {"question": i.question, "answer": i.answer, "prediction": p} for i, p in list(zip(qa, predictions))[:5]
        ]
    if captions:
        predictions = generate_answers(
            model, processor, [i.question for i in captions], [videos[i.video_index] for i in captions], mode=mode,
            video_scene_graphs=graphs_of(captions), **{"max_new_tokens": 24, **kwargs},
        )  # fmt: skip
        results.update(caption_scores(predictions, [[i.answer] for i in captions]))
        results["caption_examples"] = [{"reference": i.answer, "prediction": p} for i, p in list(zip(captions, predictions))[:3]]
    return results


@torch.no_grad()
def candidate_log_likelihoods(
    model, processor, question: str, video: Any, candidates: Sequence[str], mode: Optional[str] = None, video_scene_graph: Any = None
) -> torch.Tensor:
    """Summed log-likelihood of each candidate answer to ``question`` about ``video``: ``[K]``."""
    batch = dict(processor(questions=[question] * len(candidates), answers=list(candidates)))
    batch.update(processor(videos=[video], video_scene_graphs=None if video_scene_graph is None else [video_scene_graph]))  # encoded once
    labels = batch["labels"]
    answer_mask = labels != -100
    index = torch.zeros(len(candidates), dtype=torch.long)
    extra = {"mm_token_type_ids": batch["mm_token_type_ids"]} if "mm_token_type_ids" in batch else {}
    video_inputs = {k: batch[k] for k in ("pixel_values_videos", "video_grid_thw") if k in batch}
    model.eval()
    with inference_mode_as(model, mode):
        if hasattr(model, "score_answers"):
            return model.score_answers(
                batch["input_ids"], batch["attention_mask"], answer_mask, video_index=index, **video_inputs, **extra, **_graph_kwargs(model, batch)
            )  # fmt: skip
        # A plain host: the same sum over its own logits (video inputs repeated per candidate).
        if "video_grid_thw" in video_inputs:
            grid = video_inputs["video_grid_thw"]
            video_inputs = {"pixel_values_videos": video_inputs["pixel_values_videos"].repeat(len(candidates), 1), "video_grid_thw": grid.repeat(len(candidates), 1)}
        else:
            video_inputs = {"pixel_values_videos": video_inputs["pixel_values_videos"].repeat(len(candidates), 1, 1, 1, 1)}
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], **video_inputs, **extra).logits
        return answer_log_likelihood(logits, batch["input_ids"], answer_mask)


def evaluate_generative_multiple_choice(
    model, processor, items: Sequence[Any], videos: Sequence[Any], question: str, *, mode: Optional[str] = None,
    video_scene_graphs: Optional[Sequence[Any]] = None,
) -> dict[str, float]:
    """MC accuracy (x100): the true candidate (``item.answer_index``) must score highest; plus, per
    negative kind, how often the true candidate beats that negative (ties count half)."""
    _check_graph_count(video_scene_graphs, videos)
    correct = 0
    pairwise: dict[str, list[float]] = defaultdict(list)
    for item in items:
        graph = None if video_scene_graphs is None else video_scene_graphs[item.video_index]
        scores = candidate_log_likelihoods(model, processor, question, videos[item.video_index], item.candidates, mode=mode, video_scene_graph=graph)
        true = scores[item.answer_index]
        correct += int(int(scores.argmax()) == item.answer_index and (scores == true).sum() == 1)
        for k, kind in enumerate(item.kinds):
            if k != item.answer_index:
                pairwise[kind].append(1.0 if true > scores[k] else 0.5 if true == scores[k] else 0.0)
    results = {"mc_accuracy": 100 * correct / max(len(items), 1)}
    for kind, values in sorted(pairwise.items()):
        results[f"mc_{kind}"] = 100 * sum(values) / len(values)
    return results


__all__ = [
    "candidate_log_likelihoods",
    "caption_scores",
    "evaluate_generative_multiple_choice",
    "evaluate_open_ended",
    "exact_match",
    "generate_answers",
    "normalize_answer",
]
