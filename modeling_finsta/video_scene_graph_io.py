"""Read and write annotated video scene graphs (DSGs) as JSON, and convert Action Genome annotations.

The JSON schema (``"finsta-video-scene-graph/1"``) is::

    {
      "schema": "finsta-video-scene-graph/1",   # optional
      "video": "video12.mp4",                    # optional
      "width": 320, "height": 240,               # required when box_units == "pixels"
      "fps": 30.0, "num_frames": 90,             # optional
      "box_format": "xyxy",                      # "xyxy" (default) or "xywh"
      "box_units": "pixels",                     # "pixels" (default) or "normalized"
      "frames": [                                # at least one, sorted by frame_index, no duplicates
        {"frame_index": 0, "timestamp": 0.0,
         "objects": [{"track_id": 1, "label": "circle", "box": [4, 5, 12, 13], "attributes": ["red"]}],
         "relations": [{"subject": 1, "predicate": "left of", "object": 2}]}
      ]
    }

In memory a graph is a :class:`~.scene_graphs.ParsedVideoSceneGraph` whose boxes are always normalised
``(x1, y1, x2, y2)`` clipped to ``[0, 1]`` with positive area. Files are checked strictly because a
wrong box or a dangling relation would silently train the model on the wrong object; every error
names the file, the frame (its position and ``frame_index``) and the field.
"""

from __future__ import annotations

import json
import logging
import math
import numbers
import os
import pickle
from pathlib import Path
from typing import Any, Collection, Mapping, Optional, Sequence, Union

from .scene_graphs import ParsedVideoSceneGraph, VideoKeyframe, VideoObject, VideoRelation

logger = logging.getLogger(__name__)

VIDEO_SCENE_GRAPH_SCHEMA = "finsta-video-scene-graph/1"
KNOWN_VIDEO_SCENE_GRAPH_SCHEMAS = frozenset({VIDEO_SCENE_GRAPH_SCHEMA})
BOX_FORMATS = ("xyxy", "xywh")
BOX_UNITS = ("pixels", "normalized")

# Normalised coordinates may overshoot [0, 1] by this much (rounding, detector boxes touching the
# border) and are clipped; anything further out is almost surely pixels labelled as normalised.
NORMALIZED_BOX_TOLERANCE = 0.05

PathLike = Union[str, "os.PathLike[str]"]


class VideoSceneGraphError(ValueError):
    """An annotated video scene graph is malformed; the message says where and what was expected."""


# ----------------------------------------------------------------------------------------------
# Small typed checks. ``where`` is the full location prefix, e.g. "a.json: frames[2] (frame_index 40)".
# ----------------------------------------------------------------------------------------------


def _fail(where: str, message: str) -> VideoSceneGraphError:
    return VideoSceneGraphError(f"{where}: {message}")


def _is_integer(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _require_int(value: Any, where: str, *, minimum: Optional[int] = None) -> int:
    if not _is_integer(value) or (minimum is not None and value < minimum):
        expected = "an int" if minimum is None else f"an int >= {minimum}"
        raise _fail(where, f"expected {expected}, got {value!r}")
    return int(value)


def _require_positive_number(value: Any, where: str) -> float:
    if not _is_real(value) or not math.isfinite(value) or value <= 0:
        raise _fail(where, f"expected a positive finite number, got {value!r}")
    return float(value)


def _require_list(value: Any, where: str) -> list:
    if not isinstance(value, (list, tuple)):
        raise _fail(where, f"expected a list, got {type(value).__name__}")
    return list(value)


def _require_mapping(value: Any, where: str) -> Mapping:
    if not isinstance(value, Mapping):
        raise _fail(where, f"expected an object (dict), got {type(value).__name__}")
    return value


def _require_choice(value: Any, choices: Sequence[str], where: str) -> str:
    if value not in choices:
        raise _fail(where, f"expected one of {list(choices)}, got {value!r}")
    return value


# ----------------------------------------------------------------------------------------------
# dict -> ParsedVideoSceneGraph
# ----------------------------------------------------------------------------------------------


class _BoxConverter:
    """Turns a box in the file's format and units into a normalised, clipped xyxy tuple."""

    def __init__(self, box_format: str, box_units: str, width: Optional[float], height: Optional[float]):
        self.box_format = box_format
        self.box_units = box_units
        self.width = width
        self.height = height

    def __call__(self, value: Any, where: str) -> tuple[float, float, float, float]:
        if not isinstance(value, (list, tuple)) and not hasattr(value, "tolist"):
            raise _fail(where, f"expected 4 numbers, got {type(value).__name__}")
        coordinates = list(value.tolist() if hasattr(value, "tolist") else value)
        if len(coordinates) != 4:
            raise _fail(where, f"expected 4 numbers, got {len(coordinates)}")
        for coordinate in coordinates:
            if not _is_real(coordinate) or not math.isfinite(coordinate):
                raise _fail(where, f"expected 4 finite numbers, got {coordinates!r}")
        x1, y1, a, b = (float(c) for c in coordinates)
        if self.box_format == "xywh":
            if a <= 0 or b <= 0:
                raise _fail(where, f"xywh box must have positive width and height, got {coordinates!r}")
            x2, y2 = x1 + a, y1 + b
        else:
            x2, y2 = a, b
            if x2 <= x1 or y2 <= y1:
                raise _fail(where, f"xyxy box must have x2 > x1 and y2 > y1, got {coordinates!r}")

        if self.box_units == "pixels":
            x1, x2 = x1 / self.width, x2 / self.width
            y1, y2 = y1 / self.height, y2 / self.height
        else:
            low, high = -NORMALIZED_BOX_TOLERANCE, 1 + NORMALIZED_BOX_TOLERANCE
            if not all(low <= c <= high for c in (x1, y1, x2, y2)):
                raise _fail(
                    where,
                    f"normalized coordinates must lie in [0, 1], got {coordinates!r} "
                    '(pixel boxes need "box_units": "pixels" with width and height)',
                )

        clipped = tuple(min(max(c, 0.0), 1.0) for c in (x1, y1, x2, y2))
        if clipped[2] <= clipped[0] or clipped[3] <= clipped[1]:
            raise _fail(where, f"box {coordinates!r} has no area inside the frame")
        return clipped


def _parse_object(data: Any, where: str, convert_box: _BoxConverter) -> VideoObject:
    data = _require_mapping(data, where)
    if "track_id" not in data:
        raise _fail(where, "missing field 'track_id'")
    track_id = _require_int(data["track_id"], f"{where}.track_id")
    label = data.get("label")
    if label is not None and not isinstance(label, str):
        raise _fail(f"{where}.label", f"expected a string or null, got {label!r}")
    if "box" not in data:
        raise _fail(where, "missing field 'box'")
    box = convert_box(data["box"], f"{where}.box")
    attributes = _require_list(data.get("attributes", []), f"{where}.attributes")
    for position, attribute in enumerate(attributes):
        if not isinstance(attribute, str):
            raise _fail(f"{where}.attributes[{position}]", f"expected a string, got {attribute!r}")
    return VideoObject(track_id=track_id, box=box, label=label, attributes=attributes)


def _parse_relation(data: Any, where: str, track_ids: Collection[int]) -> VideoRelation:
    data = _require_mapping(data, where)
    for name in ("subject", "predicate", "object"):
        if name not in data:
            raise _fail(where, f"missing field {name!r}")
    subject = _require_int(data["subject"], f"{where}.subject")
    target = _require_int(data["object"], f"{where}.object")
    predicate = data["predicate"]
    if not isinstance(predicate, str) or not predicate.strip():
        raise _fail(f"{where}.predicate", f"expected a non-empty string, got {predicate!r}")
    for name, track_id in (("subject", subject), ("object", target)):
        if track_id not in track_ids:
            raise _fail(
                f"{where}.{name}",
                f"track {track_id} is not an object of this frame (tracks here: {sorted(track_ids)})",
            )
    return VideoRelation(subject=subject, predicate=predicate, object=target)


def _parse_frame(data: Any, where: str, convert_box: _BoxConverter, num_frames: Optional[int]) -> VideoKeyframe:
    data = _require_mapping(data, where)
    if "frame_index" not in data:
        raise _fail(where, "missing field 'frame_index'")
    frame_index = _require_int(data["frame_index"], f"{where}.frame_index", minimum=0)
    if num_frames is not None and frame_index >= num_frames:
        raise _fail(f"{where}.frame_index", f"{frame_index} is beyond num_frames {num_frames}")
    where = f"{where} (frame_index {frame_index})"

    timestamp = data.get("timestamp")
    if timestamp is not None:
        if not _is_real(timestamp) or not math.isfinite(timestamp) or timestamp < 0:
            raise _fail(f"{where}: timestamp", f"expected seconds >= 0, got {timestamp!r}")
        timestamp = float(timestamp)

    objects = []
    seen_tracks: set[int] = set()
    for position, object_data in enumerate(_require_list(data.get("objects", []), f"{where}: objects")):
        video_object = _parse_object(object_data, f"{where}: objects[{position}]", convert_box)
        if video_object.track_id in seen_tracks:
            raise _fail(
                f"{where}: objects[{position}].track_id",
                f"track {video_object.track_id} appears twice in this frame",
            )
        seen_tracks.add(video_object.track_id)
        objects.append(video_object)

    relations = [
        _parse_relation(relation_data, f"{where}: relations[{position}]", seen_tracks)
        for position, relation_data in enumerate(_require_list(data.get("relations", []), f"{where}: relations"))
    ]
    return VideoKeyframe(index=frame_index, objects=objects, relations=relations, timestamp=timestamp)


def video_scene_graph_from_dict(data: Mapping[str, Any], *, source: str = "<dict>") -> ParsedVideoSceneGraph:
    """Validate a decoded ``finsta-video-scene-graph/1`` document and build the in-memory graph.

    ``source`` names the document in error messages (``read_video_scene_graph`` passes the path).
    Raises :class:`VideoSceneGraphError` on the first problem found.
    """
    data = _require_mapping(data, source)
    schema = data.get("schema")
    if schema is not None and schema not in KNOWN_VIDEO_SCENE_GRAPH_SCHEMAS:
        raise _fail(
            f"{source}: schema", f"unknown schema {schema!r}; expected {sorted(KNOWN_VIDEO_SCENE_GRAPH_SCHEMAS)}"
        )
    box_format = _require_choice(data.get("box_format", "xyxy"), BOX_FORMATS, f"{source}: box_format")
    box_units = _require_choice(data.get("box_units", "pixels"), BOX_UNITS, f"{source}: box_units")

    size = {}
    for name in ("width", "height"):
        value = data.get(name)
        if value is None:
            if box_units == "pixels":
                raise _fail(source, f"missing field {name!r}, required because box_units is 'pixels'")
            size[name] = None
        else:
            size[name] = _require_positive_number(value, f"{source}: {name}")
    if data.get("fps") is not None:
        _require_positive_number(data["fps"], f"{source}: fps")
    num_frames = data.get("num_frames")
    if num_frames is not None:
        num_frames = _require_int(num_frames, f"{source}: num_frames", minimum=1)
    video = data.get("video")
    if video is not None and not isinstance(video, str):
        raise _fail(f"{source}: video", f"expected a file name string, got {video!r}")

    if "frames" not in data:
        raise _fail(source, "missing field 'frames'")
    frames_data = _require_list(data["frames"], f"{source}: frames")
    if not frames_data:
        raise _fail(f"{source}: frames", "expected at least one frame, got none")

    convert_box = _BoxConverter(box_format, box_units, size["width"], size["height"])
    frames: list[VideoKeyframe] = []
    for position, frame_data in enumerate(frames_data):
        frame = _parse_frame(frame_data, f"{source}: frames[{position}]", convert_box, num_frames)
        if frames and frame.index <= frames[-1].index:
            raise _fail(
                f"{source}: frames[{position}] (frame_index {frame.index})",
                f"frame_index must be greater than the previous frame's ({frames[-1].index}); "
                "frames must be sorted by frame_index without duplicates",
            )
        frames.append(frame)
    return ParsedVideoSceneGraph(frames=frames, source=source)


def read_video_scene_graph(path: PathLike) -> ParsedVideoSceneGraph:
    """Read and validate one annotated video scene graph JSON file."""
    path_text = os.fspath(path)
    with open(path_text, encoding="utf-8") as handle:
        try:
            data = json.load(handle)
        except json.JSONDecodeError as error:
            raise VideoSceneGraphError(
                f"{path_text}: invalid JSON at line {error.lineno} column {error.colno}: {error.msg}"
            ) from error
    return video_scene_graph_from_dict(data, source=path_text)


# ----------------------------------------------------------------------------------------------
# ParsedVideoSceneGraph -> dict / file
# ----------------------------------------------------------------------------------------------


def video_scene_graph_to_dict(
    graph: ParsedVideoSceneGraph,
    *,
    width: Optional[int] = None,
    height: Optional[int] = None,
    video: Optional[str] = None,
    fps: Optional[float] = None,
    num_frames: Optional[int] = None,
) -> dict:
    """Serialise a graph as a ``finsta-video-scene-graph/1`` dict with normalised xyxy boxes.

    The result is validated by reading it back, so an invalid in-memory graph (a relation to a
    missing track, unsorted frames, an empty box) fails here instead of producing an unreadable file.
    """
    data: dict[str, Any] = {"schema": VIDEO_SCENE_GRAPH_SCHEMA}
    optional = {"video": video, "width": width, "height": height, "fps": fps, "num_frames": num_frames}
    data.update({key: value for key, value in optional.items() if value is not None})
    data["box_format"] = "xyxy"
    data["box_units"] = "normalized"
    data["frames"] = [_frame_to_dict(frame) for frame in graph.frames]
    video_scene_graph_from_dict(data, source=graph.source or "<ParsedVideoSceneGraph>")
    return data


def _frame_to_dict(frame: VideoKeyframe) -> dict:
    frame_data: dict[str, Any] = {"frame_index": frame.index}
    if frame.timestamp is not None:
        frame_data["timestamp"] = float(frame.timestamp)
    frame_data["objects"] = [
        {
            "track_id": obj.track_id,
            "label": obj.label,
            "box": [float(c) for c in obj.box],
            "attributes": list(obj.attributes),
        }
        for obj in frame.objects
    ]
    frame_data["relations"] = [
        {"subject": rel.subject, "predicate": rel.predicate, "object": rel.object} for rel in frame.relations
    ]
    return frame_data


def write_video_scene_graph(
    graph: ParsedVideoSceneGraph,
    path: PathLike,
    *,
    width: Optional[int] = None,
    height: Optional[int] = None,
    video: Optional[str] = None,
    fps: Optional[float] = None,
    num_frames: Optional[int] = None,
) -> None:
    """Write ``graph`` as JSON (see :func:`video_scene_graph_to_dict`), creating parent folders."""
    data = video_scene_graph_to_dict(graph, width=width, height=height, video=video, fps=fps, num_frames=num_frames)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=1)
        handle.write("\n")


# ----------------------------------------------------------------------------------------------
# Action Genome
# ----------------------------------------------------------------------------------------------

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
    person_entry = _require_mapping(person_entry, where)
    if "bbox" not in person_entry:
        raise _fail(where, "missing field 'bbox'")
    boxes = person_entry["bbox"]
    boxes = boxes.tolist() if hasattr(boxes, "tolist") else list(boxes)
    if len(boxes) == 0:
        return None
    if _is_real(boxes[0]):  # a single flat box
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
        raise _fail(f"{where}.bbox", f"expected rows of 4 numbers (x1, y1, x2, y2), got {box!r}")
    return box


def _action_genome_frame_size(
    person_entry: Optional[Mapping], frame_size: Optional[tuple[float, float]], where: str
) -> tuple[float, float]:
    if person_entry is not None and person_entry.get("bbox_size") is not None:
        size = list(person_entry["bbox_size"])
        if len(size) != 2:
            raise _fail(f"{where}.bbox_size", f"expected (width, height), got {size!r}")
        return (
            _require_positive_number(size[0], f"{where}.bbox_size[0]"),
            _require_positive_number(size[1], f"{where}.bbox_size[1]"),
        )
    if frame_size is None:
        raise _fail(
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
            _require_positive_number(frame_size[0], "frame_size[0]"),
            _require_positive_number(frame_size[1], "frame_size[1]"),
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
        for position, entry in enumerate(_require_list(objects_by_frame[key], where)):
            entry_where = f"{where}[{position}]"
            entry = _require_mapping(entry, entry_where)
            if not entry.get("visible", True) or entry.get("bbox") is None:
                continue
            label = entry.get("class")
            if not isinstance(label, str):
                raise _fail(f"{entry_where}.class", f"expected a class name string, got {label!r}")
            bbox = entry["bbox"]
            bbox = bbox.tolist() if hasattr(bbox, "tolist") else list(bbox)
            if len(bbox) != 4 or not all(_is_real(c) and math.isfinite(c) for c in bbox):
                raise _fail(f"{entry_where}.bbox", f"expected 4 finite numbers (x, y, w, h), got {bbox!r}")
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
                        raise _fail(f"{entry_where}.{field_name}", f"expected relationship names, got {predicate!r}")
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
