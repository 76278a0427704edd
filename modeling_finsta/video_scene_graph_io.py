"""Read and write annotated video scene graphs (DSGs) as JSON.

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

Dataset-specific converters into this schema (e.g. Action Genome) live in ``modeling_finsta.readers``
(tooling that does not travel with a checkpoint); they reuse the public typed checks below.
"""

from __future__ import annotations

import json
import math
import numbers
import os
from pathlib import Path
from typing import Any, Collection, Mapping, Optional, Sequence, Union

from .scene_graphs import ParsedVideoSceneGraph, VideoKeyframe, VideoObject, VideoRelation

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


def fail(where: str, message: str) -> VideoSceneGraphError:
    """The error to raise for ``message`` at ``where``."""
    return VideoSceneGraphError(f"{where}: {message}")


def is_integer(value: Any) -> bool:
    """An integral number that is not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_real(value: Any) -> bool:
    """A real number that is not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def require_int(value: Any, where: str, *, minimum: Optional[int] = None) -> int:
    """``value`` as an int (at least ``minimum`` when given), else a ``VideoSceneGraphError`` naming ``where``."""
    if not is_integer(value) or (minimum is not None and value < minimum):
        expected = "an int" if minimum is None else f"an int >= {minimum}"
        raise fail(where, f"expected {expected}, got {value!r}")
    return int(value)


def require_positive_number(value: Any, where: str) -> float:
    """``value`` as a positive finite float, else a ``VideoSceneGraphError`` naming ``where``."""
    if not is_real(value) or not math.isfinite(value) or value <= 0:
        raise fail(where, f"expected a positive finite number, got {value!r}")
    return float(value)


def require_list(value: Any, where: str) -> list:
    """``value`` (a list or tuple) as a list, else a ``VideoSceneGraphError`` naming ``where``."""
    if not isinstance(value, (list, tuple)):
        raise fail(where, f"expected a list, got {type(value).__name__}")
    return list(value)


def require_mapping(value: Any, where: str) -> Mapping:
    """``value`` if it is a mapping, else a ``VideoSceneGraphError`` naming ``where``."""
    if not isinstance(value, Mapping):
        raise fail(where, f"expected an object (dict), got {type(value).__name__}")
    return value


def require_choice(value: Any, choices: Sequence[str], where: str) -> str:
    """``value`` if it is one of ``choices``, else a ``VideoSceneGraphError`` naming ``where``."""
    if value not in choices:
        raise fail(where, f"expected one of {list(choices)}, got {value!r}")
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
            raise fail(where, f"expected 4 numbers, got {type(value).__name__}")
        coordinates = list(value.tolist() if hasattr(value, "tolist") else value)
        if len(coordinates) != 4:
            raise fail(where, f"expected 4 numbers, got {len(coordinates)}")
        for coordinate in coordinates:
            if not is_real(coordinate) or not math.isfinite(coordinate):
                raise fail(where, f"expected 4 finite numbers, got {coordinates!r}")
        x1, y1, a, b = (float(c) for c in coordinates)
        if self.box_format == "xywh":
            if a <= 0 or b <= 0:
                raise fail(where, f"xywh box must have positive width and height, got {coordinates!r}")
            x2, y2 = x1 + a, y1 + b
        else:
            x2, y2 = a, b
            if x2 <= x1 or y2 <= y1:
                raise fail(where, f"xyxy box must have x2 > x1 and y2 > y1, got {coordinates!r}")

        if self.box_units == "pixels":
            x1, x2 = x1 / self.width, x2 / self.width
            y1, y2 = y1 / self.height, y2 / self.height
        else:
            low, high = -NORMALIZED_BOX_TOLERANCE, 1 + NORMALIZED_BOX_TOLERANCE
            if not all(low <= c <= high for c in (x1, y1, x2, y2)):
                raise fail(
                    where,
                    f"normalized coordinates must lie in [0, 1], got {coordinates!r} "
                    '(pixel boxes need "box_units": "pixels" with width and height)',
                )

        clipped = tuple(min(max(c, 0.0), 1.0) for c in (x1, y1, x2, y2))
        if clipped[2] <= clipped[0] or clipped[3] <= clipped[1]:
            raise fail(where, f"box {coordinates!r} has no area inside the frame")
        return clipped


def _parse_object(data: Any, where: str, convert_box: _BoxConverter) -> VideoObject:
    data = require_mapping(data, where)
    if "track_id" not in data:
        raise fail(where, "missing field 'track_id'")
    track_id = require_int(data["track_id"], f"{where}.track_id")
    label = data.get("label")
    if label is not None and not isinstance(label, str):
        raise fail(f"{where}.label", f"expected a string or null, got {label!r}")
    if "box" not in data:
        raise fail(where, "missing field 'box'")
    box = convert_box(data["box"], f"{where}.box")
    attributes = require_list(data.get("attributes", []), f"{where}.attributes")
    for position, attribute in enumerate(attributes):
        if not isinstance(attribute, str):
            raise fail(f"{where}.attributes[{position}]", f"expected a string, got {attribute!r}")
    return VideoObject(track_id=track_id, box=box, label=label, attributes=attributes)


def _parse_relation(data: Any, where: str, track_ids: Collection[int]) -> VideoRelation:
    data = require_mapping(data, where)
    for name in ("subject", "predicate", "object"):
        if name not in data:
            raise fail(where, f"missing field {name!r}")
    subject = require_int(data["subject"], f"{where}.subject")
    target = require_int(data["object"], f"{where}.object")
    predicate = data["predicate"]
    if not isinstance(predicate, str) or not predicate.strip():
        raise fail(f"{where}.predicate", f"expected a non-empty string, got {predicate!r}")
    for name, track_id in (("subject", subject), ("object", target)):
        if track_id not in track_ids:
            raise fail(
                f"{where}.{name}",
                f"track {track_id} is not an object of this frame (tracks here: {sorted(track_ids)})",
            )
    return VideoRelation(subject=subject, predicate=predicate, object=target)


def _parse_frame(data: Any, where: str, convert_box: _BoxConverter, num_frames: Optional[int]) -> VideoKeyframe:
    data = require_mapping(data, where)
    if "frame_index" not in data:
        raise fail(where, "missing field 'frame_index'")
    frame_index = require_int(data["frame_index"], f"{where}.frame_index", minimum=0)
    if num_frames is not None and frame_index >= num_frames:
        raise fail(f"{where}.frame_index", f"{frame_index} is beyond num_frames {num_frames}")
    where = f"{where} (frame_index {frame_index})"

    timestamp = data.get("timestamp")
    if timestamp is not None:
        if not is_real(timestamp) or not math.isfinite(timestamp) or timestamp < 0:
            raise fail(f"{where}: timestamp", f"expected seconds >= 0, got {timestamp!r}")
        timestamp = float(timestamp)

    objects = []
    seen_tracks: set[int] = set()
    for position, object_data in enumerate(require_list(data.get("objects", []), f"{where}: objects")):
        video_object = _parse_object(object_data, f"{where}: objects[{position}]", convert_box)
        if video_object.track_id in seen_tracks:
            raise fail(
                f"{where}: objects[{position}].track_id",
                f"track {video_object.track_id} appears twice in this frame",
            )
        seen_tracks.add(video_object.track_id)
        objects.append(video_object)

    relations = [
        _parse_relation(relation_data, f"{where}: relations[{position}]", seen_tracks)
        for position, relation_data in enumerate(require_list(data.get("relations", []), f"{where}: relations"))
    ]
    return VideoKeyframe(index=frame_index, objects=objects, relations=relations, timestamp=timestamp)


def video_scene_graph_from_dict(data: Mapping[str, Any], *, source: str = "<dict>") -> ParsedVideoSceneGraph:
    """Validate a decoded ``finsta-video-scene-graph/1`` document and build the in-memory graph.

    ``source`` names the document in error messages (``read_video_scene_graph`` passes the path).
    Raises :class:`VideoSceneGraphError` on the first problem found.
    """
    data = require_mapping(data, source)
    schema = data.get("schema")
    if schema is not None and schema not in KNOWN_VIDEO_SCENE_GRAPH_SCHEMAS:
        raise fail(
            f"{source}: schema", f"unknown schema {schema!r}; expected {sorted(KNOWN_VIDEO_SCENE_GRAPH_SCHEMAS)}"
        )
    box_format = require_choice(data.get("box_format", "xyxy"), BOX_FORMATS, f"{source}: box_format")
    box_units = require_choice(data.get("box_units", "pixels"), BOX_UNITS, f"{source}: box_units")

    size = {}
    for name in ("width", "height"):
        value = data.get(name)
        if value is None:
            if box_units == "pixels":
                raise fail(source, f"missing field {name!r}, required because box_units is 'pixels'")
            size[name] = None
        else:
            size[name] = require_positive_number(value, f"{source}: {name}")
    if data.get("fps") is not None:
        require_positive_number(data["fps"], f"{source}: fps")
    num_frames = data.get("num_frames")
    if num_frames is not None:
        num_frames = require_int(num_frames, f"{source}: num_frames", minimum=1)
    video = data.get("video")
    if video is not None and not isinstance(video, str):
        raise fail(f"{source}: video", f"expected a file name string, got {video!r}")

    if "frames" not in data:
        raise fail(source, "missing field 'frames'")
    frames_data = require_list(data["frames"], f"{source}: frames")
    if not frames_data:
        raise fail(f"{source}: frames", "expected at least one frame, got none")

    convert_box = _BoxConverter(box_format, box_units, size["width"], size["height"])
    frames: list[VideoKeyframe] = []
    for position, frame_data in enumerate(frames_data):
        frame = _parse_frame(frame_data, f"{source}: frames[{position}]", convert_box, num_frames)
        if frames and frame.index <= frames[-1].index:
            raise fail(
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
