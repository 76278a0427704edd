"""Convert Action Genome annotations (``object_bbox_and_relationship.pkl``, ``person_bbox.pkl``) into video scene graphs.

The result is a :class:`~modeling_finsta.scene_graphs.ParsedVideoSceneGraph` validated against the
``finsta-video-scene-graph/1`` schema of ``modeling_finsta.video_scene_graph_io`` (write it with
``write_video_scene_graph`` to get the ``scene_graphs/{video_id}.json`` files the retrieval readers
and the processor read). Errors are ``VideoSceneGraphError`` naming the file, the frame key and the field.
"""

from __future__ import annotations

import logging
import math
import os
import pickle
from typing import Any, Collection, Mapping, Optional, Sequence, Union

from ..scene_graphs import ParsedVideoSceneGraph
from ..video_scene_graph_io import (
    PathLike,
    VideoSceneGraphError,
    fail,
    is_real,
    require_list,
    require_mapping,
    require_positive_number,
    video_scene_graph_from_dict,
)

logger = logging.getLogger(__name__)

ACTION_GENOME_RELATIONSHIP_FIELDS = ("attention_relationship", "spatial_relationship", "contacting_relationship")
ACTION_GENOME_PERSON_TRACK_ID = 0


def _load_pickle_or_mapping(value: Union[PathLike, Mapping], description: str) -> tuple[Mapping, str]:
    if isinstance(value, Mapping):
        return value, description
    path_text = os.fspath(value)
    with open(path_text, "rb") as handle:
        loaded = pickle.load(handle)
    if not isinstance(loaded, Mapping):
        raise VideoSceneGraphError(
            f"{path_text}: expected a dict keyed 'VIDEO.mp4/FRAME.png', got {type(loaded).__name__}"
        )
    return loaded, path_text


def _clip_pixel_box(box: Sequence[float], width: float, height: float) -> Optional[list[float]]:
    x1, y1, x2, y2 = (float(c) for c in box)
    x1, x2 = min(max(x1, 0.0), width), min(max(x2, 0.0), width)
    y1, y2 = min(max(y1, 0.0), height), min(max(y2, 0.0), height)
    if x2 <= x1 or y2 <= y1:
        return None
    return [x1 / width, y1 / height, x2 / width, y2 / height]


def _action_genome_person_box(person_entry: Any, where: str) -> Optional[list[float]]:
    """The person's xyxy pixel box of one frame, or ``None`` when the frame has no annotated person.

    ``person_bbox.pkl`` stores an ``[N, 4]`` xyxy array; N is 0 when no person was annotated. When
    several are present, the one with the highest ``bbox_score`` (else the first) is the actor.
    """
    person_entry = require_mapping(person_entry, where)
    if "bbox" not in person_entry:
        raise fail(where, "missing field 'bbox'")
    boxes = person_entry["bbox"]
    boxes = boxes.tolist() if hasattr(boxes, "tolist") else list(boxes)
    if len(boxes) == 0:
        return None
    if is_real(boxes[0]):  # a single flat box
        boxes = [boxes]
    best = 0
    scores = person_entry.get("bbox_score")
    if scores is not None:
        scores = scores.tolist() if hasattr(scores, "tolist") else list(scores)
        scores = [s[0] if isinstance(s, (list, tuple)) else s for s in scores]
        if len(scores) == len(boxes):
            best = max(range(len(scores)), key=lambda i: scores[i])
    box = list(boxes[best])
    if len(box) != 4:
        raise fail(f"{where}.bbox", f"expected rows of 4 numbers (x1, y1, x2, y2), got {box!r}")
    return box


def _action_genome_frame_size(
    person_entry: Optional[Mapping], frame_size: Optional[tuple[float, float]], where: str
) -> tuple[float, float]:
    if person_entry is not None and person_entry.get("bbox_size") is not None:
        size = list(person_entry["bbox_size"])
        if len(size) != 2:
            raise fail(f"{where}.bbox_size", f"expected (width, height), got {size!r}")
        return (
            require_positive_number(size[0], f"{where}.bbox_size[0]"),
            require_positive_number(size[1], f"{where}.bbox_size[1]"),
        )
    if frame_size is None:
        raise fail(
            where,
            "frame size unknown: pass person_bboxes (person_bbox.pkl has 'bbox_size') or frame_size=(width, height)",
        )
    return frame_size


def read_action_genome_annotations(
    object_bbox_and_relationship: Union[PathLike, Mapping],
    video_id: str,
    *,
    person_bboxes: Union[PathLike, Mapping, None] = None,
    frame_size: Optional[tuple[float, float]] = None,
    fps: Optional[float] = None,
    ignored_predicates: Collection[str] = ("unsure",),
) -> ParsedVideoSceneGraph:
    """Convert one video of Action Genome annotations into a :class:`ParsedVideoSceneGraph`.

    Args:
        object_bbox_and_relationship: ``object_bbox_and_relationship.pkl`` (path or loaded dict),
            keyed ``"VIDEO.mp4/FRAME.png"``; each value lists objects ``{"class", "bbox": [x, y, w, h]
            or None, "visible", "attention_relationship", "spatial_relationship",
            "contacting_relationship", "metadata"}``.
        video_id: ``"001YG"`` or ``"001YG.mp4"``.
        person_bboxes: ``person_bbox.pkl`` (path or dict), same keys, values ``{"bbox": [N, 4] xyxy,
            "bbox_size": (width, height), ...}``. Without it the graph has no person and therefore
            no relations (Action Genome relations all have the person as subject).
        frame_size: ``(width, height)`` in pixels, used when ``person_bboxes`` gives no ``bbox_size``.
        fps: if given, keyframe timestamps are ``frame_index / fps``.
        ignored_predicates: relationship names to drop (``"unsure"`` carries no meaning).

    Track ids: the person is track 0; object classes get 1, 2, ... in order of first appearance
    (Action Genome annotates one instance per class, so the class is the track). A class repeated
    within a frame gets a further track for each extra instance. Predicates have underscores
    replaced by spaces (``"in_front_of"`` -> ``"in front of"``) so they read like caption text.
    Invisible objects and objects without a box are left out; boxes are clipped to the frame and
    boxes with no area left are dropped with a warning.
    """
    objects_by_frame, objects_source = _load_pickle_or_mapping(
        object_bbox_and_relationship, "object_bbox_and_relationship"
    )
    persons_by_frame, persons_source = (None, "person_bbox")
    if person_bboxes is not None:
        persons_by_frame, persons_source = _load_pickle_or_mapping(person_bboxes, "person_bbox")
    else:
        logger.warning(
            "No person_bboxes given for Action Genome video %s: the graph will have no relations.", video_id
        )
    if frame_size is not None:
        frame_size = (
            require_positive_number(frame_size[0], "frame_size[0]"),
            require_positive_number(frame_size[1], "frame_size[1]"),
        )

    video_name = video_id if video_id.endswith(".mp4") else f"{video_id}.mp4"
    prefix = f"{video_name}/"
    frame_keys = [key for key in objects_by_frame if isinstance(key, str) and key.startswith(prefix)]
    if not frame_keys:
        example = next(iter(objects_by_frame), None)
        raise VideoSceneGraphError(
            f"{objects_source}: no frames of video {video_name!r} "
            f"(keys look like 'VIDEO.mp4/FRAME.png', e.g. {example!r})"
        )

    keyed_frames = []
    for key in frame_keys:
        stem = key[len(prefix) :].rsplit(".", 1)[0]
        if not stem.isdigit():
            raise VideoSceneGraphError(f"{objects_source}[{key!r}]: frame name must be a number like '000089.png'")
        keyed_frames.append((int(stem), key))
    keyed_frames.sort()

    track_ids: dict[tuple[str, int], int] = {}
    frames = []
    for frame_index, key in keyed_frames:
        where = f"{objects_source}[{key!r}]"
        person_entry = None
        if persons_by_frame is not None:
            person_entry = persons_by_frame.get(key)
            if person_entry is None:
                raise VideoSceneGraphError(f"{persons_source}: missing frame {key!r} present in {objects_source}")
        width, height = _action_genome_frame_size(person_entry, frame_size, f"{persons_source}[{key!r}]")

        frame_objects: list[dict] = []
        relations: list[dict] = []
        person_present = False
        if person_entry is not None:
            person_box = _action_genome_person_box(person_entry, f"{persons_source}[{key!r}]")
            if person_box is not None:
                normalized = _clip_pixel_box(person_box, width, height)
                if normalized is None:
                    logger.warning("%s: person box %s has no area inside the frame; dropped", where, person_box)
                else:
                    person_present = True
                    frame_objects.append(
                        {"track_id": ACTION_GENOME_PERSON_TRACK_ID, "label": "person", "box": normalized}
                    )

        class_counts: dict[str, int] = {}
        for position, entry in enumerate(require_list(objects_by_frame[key], where)):
            entry_where = f"{where}[{position}]"
            entry = require_mapping(entry, entry_where)
            if not entry.get("visible", True) or entry.get("bbox") is None:
                continue
            label = entry.get("class")
            if not isinstance(label, str):
                raise fail(f"{entry_where}.class", f"expected a class name string, got {label!r}")
            bbox = entry["bbox"]
            bbox = bbox.tolist() if hasattr(bbox, "tolist") else list(bbox)
            if len(bbox) != 4 or not all(is_real(c) and math.isfinite(c) for c in bbox):
                raise fail(f"{entry_where}.bbox", f"expected 4 finite numbers (x, y, w, h), got {bbox!r}")
            x, y, w, h = bbox
            normalized = _clip_pixel_box([x, y, x + w, y + h], width, height)
            if normalized is None:
                logger.warning("%s: %s box %s has no area inside the frame; dropped", entry_where, label, bbox)
                continue
            occurrence = class_counts.get(label, 0)
            class_counts[label] = occurrence + 1
            track_id = track_ids.setdefault((label, occurrence), len(track_ids) + 1)
            frame_objects.append({"track_id": track_id, "label": label, "box": normalized})
            if not person_present:
                continue
            for field_name in ACTION_GENOME_RELATIONSHIP_FIELDS:
                for predicate in entry.get(field_name) or []:
                    if not isinstance(predicate, str):
                        raise fail(f"{entry_where}.{field_name}", f"expected relationship names, got {predicate!r}")
                    if predicate in ignored_predicates:
                        continue
                    relation = {
                        "subject": ACTION_GENOME_PERSON_TRACK_ID,
                        "predicate": predicate.replace("_", " "),
                        "object": track_id,
                    }
                    if relation not in relations:
                        relations.append(relation)

        frame_data: dict[str, Any] = {"frame_index": frame_index, "objects": frame_objects, "relations": relations}
        if fps is not None:
            frame_data["timestamp"] = frame_index / fps
        frames.append(frame_data)

    document = {"box_format": "xyxy", "box_units": "normalized", "frames": frames}
    return video_scene_graph_from_dict(document, source=f"{objects_source} (video {video_name})")
