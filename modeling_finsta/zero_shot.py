"""Zero-shot video classification with a dual encoder: class names -> prompts -> one text embedding per
class, then a matrix product with (cached) video embeddings.

* ``render_prompts``: every class name through every template of an ensemble ("a video of a person
  {label}." ...); a class name's gold text scene graph, when given, follows it into the prompt with its
  character spans shifted (`prompt_text_graph`), so fused mode can use exact TSGs.
* ``ensemble_class_embeddings``: the prompt-ensemble embedding of each class, as CLIP does it: the
  mean of the L2-normalised prompt embeddings, normalised again.
* ``encode_class_prompts``: the above through a Finsta model and processor, in batches, in the
  model's inference mode (or one given); returns a `ClassPromptEmbeddings` to cache and reuse.
* ``class_scores`` / ``top_k_predictions`` / ``top_k_accuracy``: cosine scores of ``N`` videos against
  ``C`` classes as one ``[N, E] x [E, C]`` product, the best ``k`` labels, and top-k accuracy where a tie
  at the k-th place counts as the chance that random tie-breaking puts the true class inside.

This module travels with a saved checkpoint (the zero-shot pipeline imports it), so it needs only
torch and the model's own files.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

import torch
import torch.nn.functional as F

from .configuration_finsta import inference_mode_as
from .scene_graphs import ParsedTextSceneGraph

LABEL_FIELD = "{label}"

DEFAULT_TEMPLATES: tuple[str, ...] = (
    "a video of a person {label}.",
    "a video of {label}.",
    "a clip of a person {label}.",
    "a person {label}.",
    "footage of someone {label}.",
    "a video showing {label}.",
)
"""[ours] A small action-recognition prompt ensemble (person-centred, as Kinetics labels are verbs)."""

IDENTITY_TEMPLATES: tuple[str, ...] = (LABEL_FIELD,)
"""The class name itself as the only prompt (e.g. when class names are full captions, as in Finsta-Synth)."""

ZERO_SHOT_VIDEO_CLASSIFICATION = "zero-shot-video-classification"
"""The pipeline task name (transformers has a zero-shot *image* classification task, no video one)."""


def check_templates(templates: Sequence[str]) -> list[str]:
    """Templates as a list; each must contain ``{label}`` exactly once (a clear error names the bad one)."""
    templates = [templates] if isinstance(templates, str) else list(templates)
    if not templates:
        raise ValueError("zero-shot classification needs at least one prompt template")
    for index, template in enumerate(templates):
        if not isinstance(template, str) or template.count(LABEL_FIELD) != 1:
            raise ValueError(
                f"prompt template {index} ({template!r}) must contain {LABEL_FIELD!r} exactly once, e.g. "
                "'a video of a person {label}.'"
            )
    return templates


def check_labels(labels: Sequence[str]) -> list[str]:
    """Class names as a list of distinct non-empty strings."""
    labels = [labels] if isinstance(labels, str) else list(labels)
    if not labels:
        raise ValueError("zero-shot classification needs at least one class name (candidate_labels)")
    bad = [label for label in labels if not isinstance(label, str) or not label.strip()]
    if bad:
        raise ValueError(f"class names must be non-empty strings, got {bad[:3]}")
    seen: set[str] = set()
    repeated = [label for label in labels if label in seen or seen.add(label)]
    if repeated:
        raise ValueError(f"class names repeat: {repeated[:3]} (each class needs one name)")
    return labels


def prompt_text_graph(graph: ParsedTextSceneGraph, template: str) -> ParsedTextSceneGraph:
    """The scene graph of ``template`` filled with ``graph.caption``: the label's nodes and edges, spans
    shifted by the template's prefix (the template's own words add no nodes)."""
    prefix, suffix = template.split(LABEL_FIELD)
    shift = len(prefix)
    data = graph.to_dict()
    data["caption"] = prefix + graph.caption + suffix
    for node in data["nodes"]:
        node["spans"] = [[start + shift, end + shift] for start, end in node["spans"]]
    return ParsedTextSceneGraph.from_dict(data)


def render_prompts(
    labels: Sequence[str],
    templates: Sequence[str] = DEFAULT_TEMPLATES,
    label_graphs: Optional[Sequence[Optional[ParsedTextSceneGraph]]] = None,
) -> tuple[list[str], Optional[list[Optional[ParsedTextSceneGraph]]]]:
    """Prompts class-major (``C * M``: class 0 with every template, then class 1, ...) and their graphs.

    ``label_graphs`` (one per class, or None) are gold TSGs of the class names; the prompts' graphs
    are derived from them (None where a class has none, for the processor's parser to fill).
    """
    labels, templates = check_labels(labels), check_templates(templates)
    if label_graphs is not None and len(label_graphs) != len(labels):
        raise ValueError(f"got {len(label_graphs)} label graphs for {len(labels)} class names")
    prompts = [template.replace(LABEL_FIELD, label) for label in labels for template in templates]
    if label_graphs is None:
        return prompts, None
    graphs = [
        None if graph is None else prompt_text_graph(graph, template) for graph in label_graphs for template in templates
    ]
    return prompts, graphs


def ensemble_class_embeddings(prompt_embeds: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``[C * M, E]`` class-major prompt embeddings -> ``[C, E]``: mean of the normalised prompts, normalised."""
    if prompt_embeds.dim() != 2 or prompt_embeds.shape[0] % num_classes:
        raise ValueError(
            f"prompt embeddings of shape {tuple(prompt_embeds.shape)} are not {num_classes} classes x M templates"
        )
    per_class = F.normalize(prompt_embeds.float(), dim=-1).view(num_classes, -1, prompt_embeds.shape[-1])
    return F.normalize(per_class.mean(1), dim=-1)


@dataclass
class ClassPromptEmbeddings:
    """The cached text side of zero-shot classification: one normalised embedding per class."""

    labels: list[str]
    templates: list[str]
    embeds: torch.Tensor  # [C, E], L2-normalised, float32
    mode: str  # the inference mode they were computed in

    def scores(self, video_embeds: torch.Tensor) -> torch.Tensor:
        """Cosine similarity ``[N, C]`` of videos with every class (see `class_scores`)."""
        return class_scores(video_embeds, self.embeds)


def _model_inference_mode(model) -> str:
    return getattr(model.config, "inference_mode", "distilled")


def encode_class_prompts(
    model,
    processor,
    labels: Sequence[str],
    templates: Sequence[str] = DEFAULT_TEMPLATES,
    *,
    label_graphs: Optional[Sequence[Optional[ParsedTextSceneGraph]]] = None,
    mode: Optional[str] = None,
    batch_size: int = 256,
) -> ClassPromptEmbeddings:
    """Embed every prompt once with ``model.get_text_features`` (no gradient) and ensemble per class.

    ``mode`` (``"distilled"`` / ``"fused"``) overrides the model's ``config.inference_mode`` for the call;
    in fused mode each prompt's TSG comes from ``label_graphs`` or, where none, the processor's parser.
    """
    labels, templates = check_labels(labels), check_templates(templates)
    prompts, graphs = render_prompts(labels, templates, label_graphs)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    try:
        chunks = []
        with inference_mode_as(model, mode), torch.no_grad():
            for start in range(0, len(prompts), batch_size):
                part = slice(start, start + batch_size)
                batch = processor(text=prompts[part], text_scene_graphs=None if graphs is None else graphs[part])
                text_graph = batch.get("text_scene_graph")
                output = model.get_text_features(
                    input_ids=batch["input_ids"].to(device),
                    attention_mask=batch["attention_mask"].to(device),
                    text_scene_graph=None if text_graph is None else {k: v.to(device) for k, v in text_graph.items()},
                )
                chunks.append(output.pooler_output.float().cpu())
            used_mode = _model_inference_mode(model)
    finally:
        model.train(was_training)
    return ClassPromptEmbeddings(labels, templates, ensemble_class_embeddings(torch.cat(chunks), len(labels)), used_mode)


def class_scores(video_embeds: torch.Tensor, class_embeds: torch.Tensor) -> torch.Tensor:
    """Cosine similarities ``[N, C]`` of ``N`` video embeddings with ``C`` class embeddings: one matrix product."""
    return F.normalize(video_embeds.float(), dim=-1) @ F.normalize(class_embeds.float(), dim=-1).t()


def top_k_predictions(scores: torch.Tensor, k: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` best ``(scores, class indices)`` per row, best first (``k`` capped at the class count)."""
    return scores.topk(min(k, scores.shape[-1]), dim=-1)


def top_k_accuracy(scores: Any, targets: Any, ks: Sequence[int] = (1, 5)) -> dict[str, float]:
    """Percent of rows whose true class is among the ``k`` best, for each ``k``; ties broken at random.

    With ``g`` classes scoring strictly higher than the true one and ``e`` others scoring exactly the
    same, the true class is in the top ``k`` with probability ``clip((k - g) / (e + 1), 0, 1)``: so a
    model that scores every class the same gets ``k / C``, not 100 or 0.
    """
    scores = torch.as_tensor(scores, dtype=torch.float64)
    targets = torch.as_tensor(targets, dtype=torch.long)
    if scores.dim() != 2 or targets.shape != scores.shape[:1]:
        raise ValueError(f"scores must be [N, C] and targets [N], got {tuple(scores.shape)} and {tuple(targets.shape)}")
    if scores.shape[0] == 0:
        raise ValueError("top_k_accuracy got no rows")
    if bool(((targets < 0) | (targets >= scores.shape[1])).any()):
        raise ValueError(f"targets must be class indices in [0, {scores.shape[1]})")
    true = scores.gather(1, targets[:, None])
    higher = (scores > true).sum(-1).double()
    equal = (scores == true).sum(-1).double() - 1
    results = {}
    for k in ks:
        chance = ((k - higher) / (equal + 1)).clamp(0, 1)
        results[f"top{k}"] = float(100 * chance.mean())
    return results


def zero_shot_pipeline(model, processor, **kwargs):
    """The ``zero-shot-video-classification`` pipeline over an in-memory model and processor."""
    from .pipeline_finsta import FinstaZeroShotVideoClassificationPipeline

    return FinstaZeroShotVideoClassificationPipeline(model=model, processor=processor, **kwargs)


__all__ = [
    "DEFAULT_TEMPLATES",
    "IDENTITY_TEMPLATES",
    "LABEL_FIELD",
    "ZERO_SHOT_VIDEO_CLASSIFICATION",
    "ClassPromptEmbeddings",
    "check_labels",
    "check_templates",
    "class_scores",
    "encode_class_prompts",
    "ensemble_class_embeddings",
    "prompt_text_graph",
    "render_prompts",
    "top_k_accuracy",
    "top_k_predictions",
    "zero_shot_pipeline",
]
