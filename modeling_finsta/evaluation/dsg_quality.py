"""Latent-DSG quality: how well the latent scene graph's slots land on and follow the gold objects."""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import torch
import torch.nn.functional as F

from ..latent_scene_graph import box_patch_weights, patch_centres
from ..scene_graph_batching import collate_scene_graphs, video_graph_tensors
from ..scene_graphs import ParsedVideoSceneGraph
from .encoding import collate_examples, evaluation_settings, model_device, num_batches, progress


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


def update_localisation(model, counts: SlotLocalisationCounts, batch: Mapping[str, Any], gold: Mapping[str, torch.Tensor], device) -> None:
    """Add one collated video batch to ``counts``: the model's latent slots against the gold ``boxes`` / ``node_mask``."""
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
    device = model_device(model)
    starts = range(0, len(examples), batch_size)
    with evaluation_settings(model):
        for start in progress(starts, num_batches(len(examples), batch_size), "latent DSG quality", show_progress):
            batch = collate_examples(examples[start : start + batch_size], ("pixel_values", "video_mask"))
            gold_batch = collate_scene_graphs(gold[start : start + batch_size])
            update_localisation(model, counts, batch, gold_batch, device)
    return counts.result()
