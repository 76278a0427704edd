"""From parsed scene graphs to the padded tensors `FinstaModel` reads, and back-and-forth padding.

* Token alignment: a TSG node's character spans are mapped onto the tokenizer's offset mapping, so
  the model mean-pools the text encoder's token states over exactly the node's words. A span cut
  off by ``max_length`` gives an all-zero row (the model then ignores the node).
* Video graphs: annotated keyframes are mapped onto the sampled frames (nearest keyframe by frame
  index), boxes follow the resize + centre crop of preprocessing, tracks become slots (slot = track),
  predicates become relation ids through a vocabulary or a stable hash.
* Padding: per-example tensors of different sizes are padded into a batch (used by the collator).
"""

from __future__ import annotations

import zlib
from typing import Any, Mapping, Optional, Sequence

import torch

from .scene_graphs import (
    TEXT_EDGE_TYPES,
    TEXT_NODE_TYPES,
    ParsedTextSceneGraph,
    ParsedVideoSceneGraph,
)


def text_graph_tensors(
    graph: ParsedTextSceneGraph,
    offsets: Sequence[tuple[int, int]],
    max_nodes: Optional[int] = None,
) -> dict[str, torch.Tensor]:
    """One caption's TSG as ``node_types [N]``, ``node_token_mask [N, L]``, ``edge_types [N, N]``.

    ``offsets`` is the tokenizer's offset mapping for the caption (special and padding tokens have
    empty ``(0, 0)`` spans and never match a node).
    """
    nodes = graph.nodes if max_nodes is None else graph.nodes[:max_nodes]
    length = len(offsets)
    node_types = torch.tensor([TEXT_NODE_TYPES[node.kind] for node in nodes], dtype=torch.long)
    token_mask = torch.zeros(len(nodes), length)
    for n, node in enumerate(nodes):
        for start, end in node.spans:
            for t, (token_start, token_end) in enumerate(offsets):
                if token_end > token_start and token_start < end and token_end > start:
                    token_mask[n, t] = 1.0
    edge_types = torch.zeros(len(nodes), len(nodes), dtype=torch.long)
    for source, target, kind in graph.edges:
        if source < len(nodes) and target < len(nodes):
            edge_types[source, target] = TEXT_EDGE_TYPES[kind]
    return {"node_types": node_types, "node_token_mask": token_mask, "edge_types": edge_types}


def relation_id(predicate: str, vocabulary: Optional[Sequence[str]], num_relation_types: int) -> int:
    """Relation id in ``1..num_relation_types``: vocabulary position, else a stable hash bucket."""
    key = " ".join(predicate.lower().split())
    if vocabulary is not None and key in vocabulary:
        return 1 + list(vocabulary).index(key) % num_relation_types
    return 1 + zlib.crc32(key.encode("utf-8")) % num_relation_types


def crop_box(box: Sequence[float], frame_size: tuple[int, int], size: int, crop_size: tuple[int, int]) -> list[float]:
    """Normalised box in the original frame -> normalised box in the resized, centre-cropped frame."""
    height, width = frame_size
    scale = size / min(height, width)
    new_h, new_w = height * scale, width * scale
    crop_h, crop_w = crop_size
    top, left = (new_h - crop_h) / 2, (new_w - crop_w) / 2
    x1, y1, x2, y2 = box
    result = [
        (x1 * new_w - left) / crop_w,
        (y1 * new_h - top) / crop_h,
        (x2 * new_w - left) / crop_w,
        (y2 * new_h - top) / crop_h,
    ]
    return [min(max(v, 0.0), 1.0) for v in result]


def video_graph_tensors(
    graph: ParsedVideoSceneGraph,
    frame_indices: Sequence[int],
    *,
    frame_size: Optional[tuple[int, int]] = None,
    resize_to: Optional[int] = None,
    crop_size: Optional[tuple[int, int]] = None,
    relation_vocabulary: Optional[Sequence[str]] = None,
    num_relation_types: int = 16,
) -> dict[str, torch.Tensor]:
    """One video's DSG as ``boxes [T, S, 4]``, ``node_mask [T, S]``, ``relation_types [T, S, S]``.

    ``frame_indices`` are the source frame indices of the sampled frames; each takes the keyframe
    nearest to it. Slot s is the s-th track in order of first appearance. With ``frame_size``,
    ``resize_to`` and ``crop_size`` the boxes follow the preprocessing's resize and centre crop; a
    box cropped away entirely marks its node absent.
    """
    if not graph.frames:
        raise ValueError(f"{graph.source or 'video scene graph'}: no keyframes")
    tracks = {track: slot for slot, track in enumerate(graph.track_ids())}
    keyframe_indices = torch.tensor([frame.index for frame in graph.frames], dtype=torch.float32)
    frames = len(frame_indices)
    slots = max(len(tracks), 1)
    boxes = torch.zeros(frames, slots, 4)
    node_mask = torch.zeros(frames, slots, dtype=torch.bool)
    relations = torch.zeros(frames, slots, slots, dtype=torch.long)
    for t, index in enumerate(frame_indices):
        keyframe = graph.frames[int((keyframe_indices - float(index)).abs().argmin())]
        for obj in keyframe.objects:
            box = list(obj.box)
            if frame_size is not None and resize_to is not None and crop_size is not None:
                box = crop_box(box, frame_size, resize_to, crop_size)
            if box[2] - box[0] <= 0 or box[3] - box[1] <= 0:
                continue
            slot = tracks[obj.track_id]
            boxes[t, slot] = torch.tensor(box)
            node_mask[t, slot] = True
        for relation in keyframe.relations:
            subject, obj = tracks[relation.subject], tracks[relation.object]
            if node_mask[t, subject] and node_mask[t, obj]:
                relations[t, subject, obj] = relation_id(relation.predicate, relation_vocabulary, num_relation_types)
    return {"boxes": boxes, "node_mask": node_mask, "relation_types": relations}


def grounding_tensor(text_graph: ParsedTextSceneGraph, video_graph: ParsedVideoSceneGraph, max_nodes: int, slots: int) -> torch.Tensor:
    """Annotated cross-modal edges ``[N, S]``: a TSG object refers to the tracks whose label matches its lemma.

    A track label matches when it equals the object's lemma or ends with it ("red ball" ~ "ball").
    """
    labels = video_graph.track_labels()
    track_labels = [(labels.get(track) or "").lower().split() for track in video_graph.track_ids()]
    grounding = torch.zeros(max_nodes, slots)
    for n, node in enumerate(text_graph.nodes[:max_nodes]):
        if node.kind != "object":
            continue
        lemma = node.lemma.lower().split()
        for s, words in enumerate(track_labels[:slots]):
            if words and lemma and (words == lemma or words[-len(lemma):] == lemma):
                grounding[n, s] = 1.0
    return grounding


def pad_stack(tensors: Sequence[torch.Tensor], value: float = 0) -> torch.Tensor:
    """Stack tensors of equal rank, padding every dimension at the end to the largest size."""
    shape = [max(t.shape[d] for t in tensors) for d in range(tensors[0].dim())]
    out = tensors[0].new_full((len(tensors), *shape), value)
    for i, tensor in enumerate(tensors):
        out[(i, *[slice(0, s) for s in tensor.shape])] = tensor
    return out


def collate_scene_graphs(graphs: Sequence[Optional[dict[str, torch.Tensor]]]) -> Optional[dict[str, torch.Tensor]]:
    """Pad a list of per-example scene-graph tensor dicts into one batch (``None`` entries: empty graphs)."""
    present = [g for g in graphs if g is not None]
    if not present:
        return None
    template = present[0]
    filled = []
    for graph in graphs:
        if graph is None:
            graph = {key: value[(slice(0, 0),) * min(value.dim(), 2)] if key != "node_token_mask" else value[:0] for key, value in template.items()}
        filled.append(graph)
    return {key: pad_stack([g[key] for g in filled]) for key in template}


def split_batch(batch: Mapping[str, Any], size: int) -> list[dict[str, Any]]:
    """A processor batch -> per-example dicts of unbatched tensors (scene-graph dicts kept as dicts).

    The inverse of collating: `collate_scene_graphs` / `pad_stack` pad such examples back together.
    """
    examples: list[dict[str, Any]] = [{} for _ in range(size)]
    for key, value in batch.items():
        if value is None:
            continue
        for index in range(size):
            examples[index][key] = {k: v[index] for k, v in value.items()} if isinstance(value, Mapping) else value[index]
    return examples
