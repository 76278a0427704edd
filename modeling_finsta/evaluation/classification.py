"""Action recognition, zero-shot or with a trained head: top-1 / top-5 for every inference mode and DSG source.

Videos are decoded once (chunk by chunk, through the processor) and embedded in every requested
(mode, DSG source) setting from the same batch; the class side is one prompt-ensemble embedding per
class (``zero_shot.encode_class_prompts``), so scoring ``N`` videos against ``C`` classes is one
``[N, E] x [E, C]`` product. A `FinstaForVideoClassification` evaluated without class names uses its
trained head instead.
"""

from __future__ import annotations

import time
from typing import Any, Mapping, Optional, Sequence

import torch
import torch.nn.functional as F

from ..scene_graphs import ParsedTextSceneGraph
from ..zero_shot import DEFAULT_TEMPLATES, class_scores, encode_class_prompts, top_k_accuracy
from .encoding import (
    INFERENCE_MODES,
    check_dsg,
    check_mode,
    encode_video_batch,
    evaluation_settings,
    model_device,
    num_batches,
    progress,
    require_annotated,
    video_batches,
)


def video_settings(modes: Sequence[str], dsg_sources: Sequence[str]) -> list[tuple[str, str]]:
    """Distinct (mode, DSG source) pairs to embed videos in: distilled mode reads no DSG, so it is one setting."""
    modes, dsg_sources = list(modes), list(dsg_sources)
    if not modes or not dsg_sources:
        raise ValueError("need at least one mode and one DSG source")
    settings: list[tuple[str, str]] = []
    for mode in modes:
        check_mode(mode)
        for dsg in dsg_sources:
            check_dsg(dsg)
            setting = (mode, "latent") if mode == "distilled" else (mode, dsg)
            if setting not in settings:
                settings.append(setting)
    return settings


def embed_videos(
    model,
    processor,
    videos: Sequence[Any],
    settings: Sequence[tuple[str, str]],
    *,
    video_scene_graphs: Optional[Sequence[Any]] = None,
    batch_size: int = 64,
    show_progress: Optional[bool] = None,
) -> dict[tuple[str, str], torch.Tensor]:
    """Video embeddings ``[N, E]`` (float32, CPU) for every setting, decoding each video once."""
    if len(videos) == 0:
        raise ValueError("no videos to embed")
    if video_scene_graphs is not None and len(video_scene_graphs) != len(videos):
        raise ValueError(f"got {len(video_scene_graphs)} video_scene_graphs for {len(videos)} videos")
    if any(dsg == "annotated" for _, dsg in settings):
        require_annotated(videos, video_scene_graphs)
    device = model_device(model)
    parts: dict[tuple[str, str], list[torch.Tensor]] = {setting: [] for setting in settings}
    batches = video_batches(videos, processor, video_scene_graphs, batch_size)
    for batch in progress(batches, num_batches(len(videos), batch_size), "encoding videos", show_progress):
        for mode, dsg in settings:
            with evaluation_settings(model, mode):
                parts[(mode, dsg)].append(encode_video_batch(model, batch, device, dsg))
    return {setting: torch.cat(chunks) for setting, chunks in parts.items()}


def head_scores(model, video_embeds: torch.Tensor) -> torch.Tensor:
    """A trained classification head's logits on (normalised) video embeddings."""
    classifier = model.classifier
    with torch.no_grad():
        weight = classifier.weight.detach().float().cpu()
        bias = None if classifier.bias is None else classifier.bias.detach().float().cpu()
        return F.linear(F.normalize(video_embeds.float(), dim=-1), weight, bias)


def evaluate_classification(
    model,
    processor,
    videos: Sequence[Any],
    labels: Sequence[int],
    class_names: Optional[Sequence[str]] = None,
    *,
    templates: Sequence[str] = DEFAULT_TEMPLATES,
    label_graphs: Optional[Sequence[Optional[ParsedTextSceneGraph]]] = None,
    video_scene_graphs: Optional[Sequence[Any]] = None,
    class_groups: Optional[Mapping[str, Sequence[int]]] = None,
    modes: Sequence[str] = INFERENCE_MODES,
    dsg_sources: Sequence[str] = ("latent",),
    ks: Sequence[int] = (1, 5),
    batch_size: int = 64,
    show_progress: Optional[bool] = None,
) -> dict[str, Any]:
    """Top-k accuracy (ties broken at random, see ``zero_shot.top_k_accuracy``) per mode and DSG source.

    Args:
        videos: raw videos decoded through ``processor``, or processed examples with ``pixel_values``.
        labels: class index of every video.
        class_names: zero-shot: the classes' names, through ``templates`` (use ``["{label}"]`` when the
            names are whole captions) and, in fused mode, their gold TSGs ``label_graphs`` where given.
            None: the model's trained head (`FinstaForVideoClassification`).
        class_groups: ``{group: class indices}``; each group adds ``<group>_top1`` over its videos
            (e.g. Finsta-Synth's ``order`` and ``role`` classes).

    Returns:
        ``{mode: {dsg: {"top1", "top5", ...}}, "num_videos", "num_classes", "scoring_seconds"}`` where
        ``scoring_seconds`` times the class scoring (the matrix product and top-k) of the last setting.
    """
    targets = torch.as_tensor(list(labels), dtype=torch.long)
    if targets.numel() != len(videos):
        raise ValueError(f"got {targets.numel()} labels for {len(videos)} videos")
    if class_names is None and not hasattr(model, "classifier"):
        raise ValueError("evaluate_classification needs class_names (zero-shot) or a model with a trained classifier head")
    settings = video_settings(modes, dsg_sources)
    video_embeddings = embed_videos(
        model, processor, videos, settings, video_scene_graphs=video_scene_graphs, batch_size=batch_size,
        show_progress=show_progress,
    )  # fmt: skip
    num_classes = len(class_names) if class_names is not None else model.config.num_labels
    results: dict[str, Any] = {"num_videos": len(videos), "num_classes": num_classes}
    class_embeds = {}
    if class_names is not None:
        for mode in dict.fromkeys(mode for mode, _ in settings):
            class_embeds[mode] = encode_class_prompts(
                model, processor, class_names, templates, label_graphs=label_graphs, mode=mode, batch_size=batch_size
            ).embeds
    groups = {name: torch.as_tensor(list(indices), dtype=torch.long) for name, indices in (class_groups or {}).items()}
    for mode in modes:
        results[mode] = {}
        for dsg in dsg_sources:
            setting = (mode, "latent") if mode == "distilled" else (mode, dsg)
            embeds = video_embeddings[setting]
            start = time.perf_counter()
            scores = class_scores(embeds, class_embeds[mode]) if class_names is not None else head_scores(model, embeds)
            metrics: dict[str, Any] = top_k_accuracy(scores, targets, ks)
            results["scoring_seconds"] = round(time.perf_counter() - start, 4)
            for name, indices in groups.items():
                rows = torch.isin(targets, indices)
                metrics[f"{name}_top1"] = top_k_accuracy(scores[rows], targets[rows], (1,))["top1"] if rows.any() else None
            results[mode][dsg] = metrics
    return results


__all__ = ["embed_videos", "evaluate_classification", "head_scores", "video_settings"]
